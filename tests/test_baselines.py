import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

from conftest import awgn_scenario
from deeprx.simulation import baselines
from deeprx.simulation import data


def gray_16qam_ber(snr_db):
    """Exact BER of Gray-coded 16-QAM on AWGN, Es/N0 = snr (unit-energy symbols)."""
    a = math.sqrt(10 ** (snr_db / 10) / 5)
    q = norm.sf
    return (3 * q(a) + 2 * q(3 * a) - q(5 * a)) / 4


def simulate_ber(receivers, scenario, sinr_db, num_bits, channel_set="test", batch_size=128, seed=0):
    generator = data.SlotGenerator(scenario, channel_set)
    errors = {r.name: 0 for r in receivers}
    bits, index = 0, 0
    while bits < num_bits:
        batch = generator(batch_size, seed=data.slot_seed("test", seed, sinr_db, index), sinr_db=sinr_db)
        mask = batch.data_mask.numpy()[..., None] > 0
        truth = batch.bits.numpy() > 0.5
        for receiver in receivers:
            llr = receiver(batch).numpy()
            assert llr.shape == batch.bits.shape
            errors[receiver.name] += int(np.sum(((llr > 0) != truth) & mask))
        bits += int(mask.sum()) * scenario.bits_per_symbol
        index += 1
    return {name: e / bits for name, e in errors.items()}


def test_interpolation_matrix_is_linear_with_held_ends():
    w = baselines.interpolation_matrix([2, 11], 14)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[0], [1, 0])
    np.testing.assert_allclose(w[13], [0, 1])
    np.testing.assert_allclose(w[5], [6 / 9, 3 / 9])
    np.testing.assert_allclose(baselines.interpolation_matrix([2], 14), np.ones((14, 1)))


def test_uniform_pdp_correlation():
    r = baselines.uniform_pdp_correlation(np.array([0.0, 1e5, -1e5]), 1e-6)
    assert r[0] == 1.0
    assert abs(r[1]) < 1.0 and np.isclose(r[1], np.conj(r[2]))


def _static_noiseless(tiny, delay_spread_ns):
    channel = dataclasses.replace(tiny.channel, speed_mps=(0.0, 0.0), delay_spread_ns=delay_spread_ns)
    return dataclasses.replace(tiny, interferer=None, channel=channel)


def test_noiseless_static_channel_perfect_csi_recovers_every_bit(tiny):
    scenario = _static_noiseless(tiny, tiny.channel.delay_spread_ns)
    ber = simulate_ber([baselines.PerfectLmmse(scenario)], scenario, 200.0, 50_000, channel_set="train")
    assert ber == {"perfect_lmmse": 0.0}


def test_noiseless_static_short_channel_ls_recovers_every_bit(tiny):
    # Within the Wiener filter's delay assumption, pilots and data line up exactly.
    scenario = _static_noiseless(tiny, (10.0, 100.0))
    ber = simulate_ber([baselines.LsLmmse(scenario)], scenario, 200.0, 50_000, channel_set="train")
    assert ber == {"ls_lmmse": 0.0}


def test_awgn_16qam_matches_closed_form_gray_ber():
    scenario = awgn_scenario(num_prb=4)
    perfect, ls = baselines.PerfectLmmse(scenario), baselines.LsLmmse(scenario)
    for snr_db, num_bits in ((10.0, 200_000), (13.0, 400_000), (16.0, 1_200_000)):
        theory = gray_16qam_ber(snr_db)
        assert 1e-3 < theory < 1e-1
        ber = simulate_ber([perfect, ls], scenario, snr_db, num_bits, seed=int(snr_db))
        assert ber["perfect_lmmse"] == pytest.approx(theory, rel=0.10), snr_db
        # ls_lmmse within 1 dB: at least as good as theory 1 dB lower, worse than perfect CSI.
        assert ber["perfect_lmmse"] < ber["ls_lmmse"] < gray_16qam_ber(snr_db - 1.0), snr_db


def test_llrs_are_log_p1_over_p0_and_finite(tiny):
    batch = data.SlotGenerator(tiny, "test")(8, seed=9, sinr_db=30.0)
    llr = baselines.PerfectLmmse(tiny)(batch)
    assert llr.dtype == tf.float32 and bool(tf.reduce_all(tf.math.is_finite(llr)))
    # Positive LLR decides 1: at 30 dB almost every data bit is right with that sign rule.
    mask = batch.data_mask.numpy()[..., None] > 0
    agree = ((llr.numpy() > 0) == (batch.bits.numpy() > 0.5))[np.broadcast_to(mask, llr.shape)]
    assert agree.mean() > 0.99


# ------------------------------------------------------------------- interference rejection

def test_without_an_interferer_irc_is_the_white_noise_receiver(tiny):
    """No interferer: the genie covariance is noise x I, so perfect_irc is perfect_lmmse exactly;
    ls_irc's estimated covariance costs it little against ls_lmmse."""
    scenario = dataclasses.replace(tiny, interferer=None)
    batch = data.SlotGenerator(scenario, "test")(16, seed=3, sinr_db=12.0)
    np.testing.assert_allclose(baselines.PerfectIrc(scenario)(batch).numpy(),
                               baselines.PerfectLmmse(scenario)(batch).numpy(), rtol=1e-4, atol=1e-3)
    ber = simulate_ber([baselines.LsIrc(scenario), baselines.LsLmmse(scenario)], scenario, 12.0, 150_000)
    assert ber["ls_irc"] == pytest.approx(ber["ls_lmmse"], rel=0.25), ber


def test_irc_rejects_a_strong_interferer_with_two_antennas(tiny):
    """SNR 30 dB, one interferer at SIR 0-3 dB, 2 receive antennas: combining that treats the
    interferer as white noise sees about SINR 0 dB; IRC nulls it (one interferer, two
    antennas) and is far better, estimated (ls_irc) or given (perfect_irc)."""
    assert tiny.num_rx == 2
    scenario = dataclasses.replace(tiny, snr_db=(30.0, 30.0), interferer=dataclasses.replace(
        tiny.interferer, sir_db=(0.0, 3.0)))
    generator = data.SlotGenerator(scenario, "test")
    receivers = [baselines.LsLmmse(scenario), baselines.PerfectLmmse(scenario), baselines.LsIrc(scenario),
                 baselines.PerfectIrc(scenario)]
    errors, bits = {r.name: 0 for r in receivers}, 0
    for index in range(4):
        batch = generator(32, seed=data.slot_seed("irc", index))  # the scenario's SNR and SIR draws
        mask = batch.data_mask.numpy()[..., None] > 0
        truth = batch.bits.numpy() > 0.5
        for receiver in receivers:
            errors[receiver.name] += int(np.sum(((receiver(batch).numpy() > 0) != truth) & mask))
        bits += int(mask.sum()) * scenario.bits_per_symbol
    ber = {name: e / bits for name, e in errors.items()}
    assert ber["perfect_lmmse"] > 0.05, ber  # the interferer does hurt the white-noise receiver
    assert ber["perfect_irc"] < 0.1 * ber["perfect_lmmse"], ber
    # Estimated, the covariance also holds the LS estimate's error (the interferer's DMRS, as
    # strong as the wanted one's, corrupts it): a clear but smaller gain (measured: 0.135 vs 0.253).
    assert ber["ls_irc"] < 0.7 * ber["ls_lmmse"], ber
    assert ber["perfect_irc"] <= ber["ls_irc"], ber
