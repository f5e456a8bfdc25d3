import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sionna.phy.channel.tr38901 import tdl

from deeprx.core import config

from deeprx.simulation import data


@pytest.fixture(scope="module")
def generator(tiny):
    return data.SlotGenerator(tiny, "train")


def _measured_sinr_db(batch, scenario):
    """SINR of each slot measured on its data REs: |h x|^2 over |y - h x|^2."""
    pilots = data.pilot_grid(scenario)
    mask = batch.data_mask.numpy()[..., None] > 0
    x = _transmitted_symbols(batch, scenario, pilots)
    signal = batch.h.numpy() * x[..., None]
    impairment = batch.y.numpy() - signal
    p_signal = (np.abs(signal) ** 2 * mask).sum(axis=(1, 2, 3))
    p_impairment = (np.abs(impairment) ** 2 * mask).sum(axis=(1, 2, 3))
    return 10 * np.log10(p_signal / p_impairment)


def _transmitted_symbols(batch, scenario, pilots):
    from sionna.phy.mapping import Mapper
    m = scenario.bits_per_symbol
    b, t, k = batch.bits.shape[:3]
    symbols = Mapper("qam", m)(tf.reshape(batch.bits, [b, t, k * m])).numpy()
    return np.where(batch.data_mask.numpy() > 0, symbols, pilots)


def test_shapes_and_dtypes_of_every_output(generator, tiny):
    batch = generator(3, seed=1)
    k = tiny.carrier.num_subcarriers
    expected = {
        "inputs": ((3, 14, k, 10), tf.float32), "bits": ((3, 14, k, 4), tf.float32),
        "data_mask": ((3, 14, k), tf.float32), "sinr_db": ((3,), tf.float32),
        "y": ((3, 14, k, 2), tf.complex64), "h": ((3, 14, k, 2), tf.complex64),
        "noise_var": ((3,), tf.float32)}
    for name, (shape, dtype) in expected.items():
        value = getattr(batch, name)
        assert tuple(value.shape) == shape, name
        assert value.dtype == dtype, name
    assert set(np.unique(batch.bits.numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("num_rx", [1, 4])
def test_input_channels_follow_the_number_of_antennas(tiny, num_rx):
    scenario = dataclasses.replace(tiny, num_rx=num_rx)
    batch = data.SlotGenerator(scenario)(2, seed=0)
    assert batch.inputs.shape[-1] == 2 * (2 * num_rx + 1) == scenario.num_input_channels


def test_inputs_hold_y_pilots_and_raw_ls_at_pilot_res_only(generator, tiny):
    batch = generator(2, seed=4)
    n = tiny.num_rx
    inputs = batch.inputs.numpy()
    y = inputs[..., :n] + 1j * inputs[..., n:2 * n]
    np.testing.assert_allclose(y, batch.y.numpy(), atol=1e-6)
    pilots = data.pilot_grid(tiny)
    np.testing.assert_allclose(inputs[0, ..., 2 * n] + 1j * inputs[0, ..., 2 * n + 1], pilots, atol=1e-7)
    raw_ls = inputs[..., 2 * n + 2:3 * n + 2] + 1j * inputs[..., 3 * n + 2:]
    np.testing.assert_allclose(raw_ls, batch.y.numpy() * np.conj(pilots)[None, ..., None], atol=1e-5)
    off_pilot = np.abs(pilots) == 0
    assert np.all(raw_ls[:, off_pilot] == 0)
    # DMRS: QPSK of unit power on the even subcarriers of symbol 2 only.
    assert np.allclose(np.abs(pilots[2, 0::2]), 1.0) and np.all(pilots[2, 1::2] == 0)
    assert np.count_nonzero(pilots) == tiny.carrier.num_subcarriers // 2
    assert np.all(batch.data_mask.numpy()[:, 2] == 0) and batch.data_mask.numpy().sum() == 2 * 13 * 24


def test_interferer_uses_another_dmrs_sequence(tiny):
    assert not np.allclose(data.pilot_grid(tiny), data.pilot_grid(tiny, scrambling_id=1))


def test_same_seed_same_batch_and_other_seed_other_batch(generator):
    first, again, other = generator(4, seed=11), generator(4, seed=11), generator(4, seed=12)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(first.y.numpy(), other.y.numpy())
    assert not np.array_equal(first.bits.numpy(), other.bits.numpy())


def test_channel_is_normalized_per_slot(generator):
    h = generator(8, seed=3).h.numpy()
    energy = np.mean(np.abs(h) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(energy, 1.0, rtol=1e-4)


def test_training_draws_snr_and_sir_from_their_ranges(tiny):
    scenario = dataclasses.replace(tiny, snr_db=(200.0, 200.0),
                                   interferer=config.InterfererConfig(sir_db=(10.0, 10.0)))
    batch = data.SlotGenerator(scenario)(32, seed=5)
    np.testing.assert_allclose(batch.sinr_db.numpy(), 10.0, atol=1e-3)
    # Noise-free, so the only impairment is the interferer: measured SINR is its SIR.
    assert abs(np.mean(_measured_sinr_db(batch, scenario)) - 10.0) < 0.5
    without = data.SlotGenerator(dataclasses.replace(scenario, interferer=None))(8, seed=5)
    assert np.all(without.sinr_db.numpy() > 150.0)
    assert np.all(_measured_sinr_db(without, scenario) > 100.0)  # float32 round-off only


@pytest.mark.parametrize("sinr_db", [0.0, 10.0, 20.0])
def test_measured_sinr_matches_the_requested_sinr(generator, tiny, sinr_db):
    batch = generator(32, seed=6, sinr_db=sinr_db)
    np.testing.assert_allclose(batch.sinr_db.numpy(), sinr_db, atol=1e-3)
    np.testing.assert_allclose(batch.noise_var.numpy(), 10 ** (-sinr_db / 10), rtol=1e-4)
    assert abs(np.mean(_measured_sinr_db(batch, tiny)) - sinr_db) < 0.5


def test_interferer_share_is_capped_at_fixed_sinr(tiny):
    scenario = dataclasses.replace(tiny, snr_db=(200.0, 200.0),
                                   interferer=config.InterfererConfig(sir_db=(0.0, 0.0)))
    batch = data.SlotGenerator(scenario)(16, seed=2, sinr_db=10.0)
    # SIR 0 dB alone would exceed the 10 dB SINR budget: the interferer gets half of it.
    clean = dataclasses.replace(scenario, interferer=None)
    noise_only = data.SlotGenerator(clean)(16, seed=2, sinr_db=10.0)
    assert abs(np.mean(_measured_sinr_db(batch, scenario)) - 10.0) < 0.5
    assert abs(np.mean(_measured_sinr_db(noise_only, clean)) - 10.0) < 0.5


def test_an_interference_limited_point_gives_the_interferer_its_share(tiny):
    """EvalConfig.interference_share: at a fixed SINR the interferer takes exactly that share
    of interference + noise, whatever its drawn SIR (10..30 dB would give it at most 1/11 of
    a 10 dB SINR budget): the interferer's received power and the noise's, per slot."""
    generator = data.SlotGenerator(tiny)
    batch = generator(16, seed=3, sinr_db=10.0, interference_share=0.9)
    impairment = batch.noise_var.numpy()
    interference = np.mean(np.abs(batch.h_interference.numpy()) ** 2, axis=(1, 2, 3))  # unit-power channel
    np.testing.assert_allclose(impairment, 0.1, rtol=1e-5)
    np.testing.assert_allclose(batch.noise_power.numpy(), 0.1 * 0.1, rtol=1e-4)
    assert abs(np.mean(interference) / 0.1 - 0.9) < 0.1  # the channel's power varies by slot
    drawn = generator(16, seed=3, sinr_db=10.0)
    assert np.all(drawn.noise_power.numpy() >= 0.5 * 0.1 - 1e-7)  # capped: noise keeps at least half
    with pytest.raises(ValueError, match="interference_share needs a fixed sinr_db"):
        generator(4, seed=0, interference_share=0.9)
    with pytest.raises(ValueError, match="interference_share must be in"):
        config.EvalConfig(interference_share=1.0)


def test_cdl_channel_family_generates(tiny):
    scenario = dataclasses.replace(tiny, channel=dataclasses.replace(tiny.channel, family="cdl"))
    batch = data.SlotGenerator(scenario, "test")(3, seed=0)
    assert batch.h.shape == (3, 14, 24, 2)
    np.testing.assert_allclose(np.mean(np.abs(batch.h.numpy()) ** 2, axis=(1, 2, 3)), 1.0, rtol=1e-4)


def test_a_batch_is_split_across_the_channel_models_of_its_set(tiny):
    # The three training models: a batch of 5 draws 2, 2 and 1 slots from B, C and D, in that
    # order, one normalized response each.
    sampler = data.ChannelSampler(tiny, "train")
    draws = []

    def recording(model):
        def draw(size, *args):
            a, tau = model(size, *args)
            draws.append((size, a.shape[-2]))  # the model's number of paths
            return a, tau
        return draw

    sampler._models = [recording(model) for model in sampler._models]
    h = sampler(5)
    paths = [int(tdl.TDL(name, 1e-7, 3.5e9).num_clusters) for name in ("B", "C", "D")]
    assert len(set(paths)) == 3 and draws == list(zip((2, 2, 1), paths))
    assert h.shape == (5, 14, 24, 2)
    np.testing.assert_allclose(np.mean(np.abs(h.numpy()) ** 2, axis=(1, 2, 3)), 1.0, rtol=1e-4)
    draws.clear()
    assert sampler(2).shape[0] == 2 and [size for size, _ in draws] == [1, 1]  # D gets none


def test_slot_seed_is_stable_and_distinct():
    assert data.slot_seed("eval", 1, 0, 0) == data.slot_seed("eval", 1, 0, 0)
    assert data.slot_seed("eval", 1, 0, 0) != data.slot_seed("eval", 1, 0, 1)
    assert 0 <= data.slot_seed("x") < 2 ** 63
