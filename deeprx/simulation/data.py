"""In-graph 5G uplink slot generator built on Sionna (TensorFlow, Sionna 1.x).

Sionna is imported only here and in `deeprx.simulation.baselines`. One call draws a batch of
slots inside a tf.function:

    bits -> QAM (Gray, TS 38.211) -> resource grid with DMRS -> 38.901 TDL/CDL channel
    with per-slot delay spread and UE speed -> co-channel interferer -> noise

and returns the model inputs, the true bits and what the classical receivers need.
The channel is evaluated per OFDM symbol in the frequency domain (time variation
across symbols, no inter-carrier interference), as Sionna's OFDMChannel does.

Randomness: every call re-keys Sionna's global TensorFlow generator from `seed`, so
the same seed gives the same batch (in the same execution mode: XLA draws another,
equally valid stream). Use `slot_seed(...)` to derive seeds for steps and points.
"""

import hashlib
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf
from sionna.phy import config as sionna_config
from sionna.phy.channel import cir_to_ofdm_channel, subcarrier_frequencies
from sionna.phy.channel.tr38901 import CDL, TDL, PanelArray
from sionna.phy.mapping import Mapper
from sionna.phy.nr.utils import generate_prng_seq

from deeprx.core import config as config_lib
# Reference delay spread the Sionna models are built with; each slot rescales delays.
_REFERENCE_DELAY_SPREAD_S = 100e-9
# At a fixed SINR, the interferer may take at most this share of interference + noise.
MAX_INTERFERENCE_SHARE = 0.5


class Batch(NamedTuple):
    """One batch of slots. K = subcarriers, m = bits per symbol, N = receive antennas.

    inputs:    [batch, 14, K, 2*(2N+1)] float32, channels in this order:
               Re Y_0..Y_{N-1}, Im Y_0..Y_{N-1}, Re Xp, Im Xp, Re Hr_0.., Im Hr_0..
               (Y received grid, Xp pilot grid, Hr = Y*conj(Xp) raw LS at pilot REs).
    bits:      [batch, 14, K, m] float32, transmitted bits of each RE (0 off data REs).
    data_mask: [batch, 14, K] float32, 1 on data REs, 0 on DMRS symbols.
    sinr_db:   [batch] float32, per-slot SINR (see deeprx.core.config for the definition).
    y:         [batch, 14, K, N] complex64, received grid.
    h:         [batch, 14, K, N] complex64, true channel of the wanted user.
    noise_var: [batch] float32, noise plus interference power per RE and antenna.
    h_interference: [batch, 14, K, N] complex64, the interferer's channel times its amplitude
               (zeros without an interferer): what a genie receiver knows of it.
    noise_power: [batch] float32, the thermal noise power alone per RE and antenna.
    """
    inputs: tf.Tensor
    bits: tf.Tensor
    data_mask: tf.Tensor
    sinr_db: tf.Tensor
    y: tf.Tensor
    h: tf.Tensor
    noise_var: tf.Tensor
    h_interference: tf.Tensor
    noise_power: tf.Tensor


def slot_seed(*parts) -> int:
    """A stable 63-bit seed from any tuple of ints/strings, e.g. ("eval", 1, point, i)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def pilot_grid(scenario: config_lib.ScenarioConfig, scrambling_id: Optional[int] = None) -> np.ndarray:
    """DMRS of port 0, configuration type 1, as a [14, K] complex64 grid (0 elsewhere).

    r(n) = ((1 - 2c(2n)) + j(1 - 2c(2n+1))) / sqrt(2) with the Gold sequence c
    initialised per TS 38.211 6.4.1.1.1.1 (slot 0, n_SCID = 0), mapped to
    subcarriers k = 2n of each DMRS symbol.
    """
    n_id = scenario.dmrs.scrambling_id if scrambling_id is None else scrambling_id
    num_symbols, num_subcarriers = scenario.grid_shape
    grid = np.zeros((num_symbols, num_subcarriers), np.complex64)
    num_pilots = num_subcarriers // 2
    for l in scenario.dmrs.positions:
        c_init = (2**17 * (num_symbols * 0 + l + 1) * (2 * n_id + 1) + 2 * n_id) % 2**31
        c = generate_prng_seq(2 * num_pilots, c_init).astype(np.float32)
        grid[l, 0::2] = ((1 - 2 * c[0::2]) + 1j * (1 - 2 * c[1::2])) / np.sqrt(2.0)
    return grid


def data_mask(scenario: config_lib.ScenarioConfig) -> np.ndarray:
    """[14, K] float32: 1 on data REs (every RE of a non-DMRS symbol)."""
    mask = np.ones(scenario.grid_shape, np.float32)
    mask[list(scenario.dmrs.positions), :] = 0.0
    return mask


class ChannelSampler:
    """Draws normalized frequency responses [batch, 14, K, N] complex64.

    The batch is split evenly across the models of the chosen channel set; each slot
    draws its delay spread and UE speed uniformly from the configured ranges. The
    response is normalized to unit average energy per RE and receive antenna over
    the slot (`cir_to_ofdm_channel(normalize=True)`).
    """

    def __init__(self, scenario: config_lib.ScenarioConfig, channel_set: str):
        channel = scenario.channel
        self._scenario = scenario
        self._family = channel.family
        self._delay_spread_s = tuple(1e-9 * v for v in channel.delay_spread_ns)
        self._frequencies = subcarrier_frequencies(
            scenario.carrier.num_subcarriers, scenario.carrier.subcarrier_spacing_hz)
        self._sampling_frequency = 1.0 / scenario.carrier.ofdm_symbol_duration_s
        speed = dict(min_speed=float(channel.speed_mps[0]), max_speed=float(channel.speed_mps[1]))
        self._models = []
        if self._family == "tdl":
            for name in channel.models(channel_set):
                self._models.append(TDL(name, _REFERENCE_DELAY_SPREAD_S, channel.carrier_frequency_hz,
                                        num_rx_ant=scenario.num_rx, num_tx_ant=1, **speed))
        elif self._family == "cdl":
            fc = channel.carrier_frequency_hz
            ut_array = PanelArray(num_rows_per_panel=1, num_cols_per_panel=1, polarization="single",
                                  polarization_type="V", antenna_pattern="omni", carrier_frequency=fc)
            bs_array = PanelArray(num_rows_per_panel=1, num_cols_per_panel=scenario.num_rx,
                                  polarization="single", polarization_type="V",
                                  antenna_pattern="38.901", carrier_frequency=fc)
            for name in channel.models(channel_set):
                self._models.append(CDL(name, _REFERENCE_DELAY_SPREAD_S, fc, ut_array, bs_array,
                                        "uplink", **speed))

    def __call__(self, batch_size: int) -> tf.Tensor:
        num_symbols, num_subcarriers = self._scenario.grid_shape
        if self._family == "awgn":
            return tf.ones([batch_size, num_symbols, num_subcarriers, self._scenario.num_rx], tf.complex64)
        responses = []
        count = len(self._models)
        for index, model in enumerate(self._models):
            size = batch_size // count + (1 if index < batch_size % count else 0)
            if size == 0:
                continue
            a, tau = model(size, num_symbols, self._sampling_frequency)
            spread = sionna_config.tf_rng.uniform([size, 1, 1, 1], *self._delay_spread_s, tf.float32)
            tau = tau * spread / _REFERENCE_DELAY_SPREAD_S
            h = cir_to_ofdm_channel(self._frequencies, a, tau, normalize=True)
            # [size, 1, N, 1, 1, 14, K] -> [size, 14, K, N]
            responses.append(tf.transpose(h[:, 0, :, 0, 0], [0, 2, 3, 1]))
        return tf.concat(responses, axis=0)


def _db_to_linear(value_db):
    return tf.pow(10.0, -value_db / 10.0)


class SlotGenerator:
    """Draws batches of uplink slots: `generator(batch_size, seed, sinr_db=None) -> Batch`.

    Args:
      scenario: the ScenarioConfig.
      channel_set: "train" or "test" (the disjoint channel model sets).
      coderate: None for uncoded random bits; a code rate for one 5G LDPC transport block
        per slot (deeprx.simulation.coding.SlotCode, then `generator.code`). The channels,
        noise and interferer of a seed are the same either way.

    Call args:
      batch_size: Python int.
      seed: int (or int64 scalar tensor); same seed, same batch.
      sinr_db: None to draw SNR (and SIR) from the scenario's ranges, as in training;
        or a float / [batch] tensor to fix each slot's SINR, as in evaluation. Then
        the interferer keeps its drawn SIR unless it alone would exceed
        MAX_INTERFERENCE_SHARE of the interference-plus-noise power, in which case it
        takes exactly that share; noise fills the rest.
      interference_share: with sinr_db, a share in (0, 1) that the interferer takes of the
        interference-plus-noise power at every slot instead (an interference-limited
        evaluation, EvalConfig.interference_share); noise fills the rest.
    """

    def __init__(self, scenario: config_lib.ScenarioConfig, channel_set: str = "train", coderate=None):
        self.scenario = scenario
        self.channel_set = channel_set
        self.code = None
        if coderate is not None:
            from deeprx.simulation import coding
            self.code = coding.SlotCode(scenario, coderate, data_mask(scenario))
        bits_per_symbol = scenario.bits_per_symbol
        self._mapper = Mapper("qam", bits_per_symbol)
        self._pilots = tf.constant(pilot_grid(scenario))
        self._interferer_pilots = tf.constant(pilot_grid(scenario, scenario.dmrs.scrambling_id + 1))
        self._data_mask = tf.constant(data_mask(scenario))
        self._channel = ChannelSampler(scenario, channel_set)
        # Sionna makes its global generator (a variable) when first asked; asked here, eagerly,
        # and not in the first trace of draw: a tf.function that creates a variable is traced
        # twice, and this trace (the training step's too) takes seconds.
        sionna_config.tf_rng  # noqa: B018
        self._graph = tf.function(self.draw)

    def __call__(self, batch_size: int, seed, sinr_db=None, interference_share=None) -> Batch:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if interference_share is not None and (sinr_db is None or self.scenario.interferer is None):
            raise ValueError("interference_share needs a fixed sinr_db and a scenario with an interferer")
        seed = tf.convert_to_tensor(seed, tf.int64)
        if sinr_db is not None:
            sinr_db = tf.broadcast_to(tf.cast(sinr_db, tf.float32), [batch_size])
        return self._graph(batch_size, seed, sinr_db, interference_share)

    def _grid(self, batch_size, pilots, code_seed=None):
        """Random data on data REs (a transport block of self.code with `code_seed`),
        `pilots` on DMRS REs: bits [B,14,K,m], grid [B,14,K]."""
        num_symbols, num_subcarriers = self.scenario.grid_shape
        m = self.scenario.bits_per_symbol
        bits = sionna_config.tf_rng.uniform([batch_size, num_symbols, num_subcarriers, m], 0, 2, tf.int32)
        bits = tf.cast(bits, tf.float32) * self._data_mask[:, :, None]
        if code_seed is not None:  # drawn above all the same, so the rest of the slot does not change
            bits = self.code.encode(batch_size, code_seed)
        symbols = self._mapper(tf.reshape(bits, [batch_size, num_symbols, num_subcarriers * m]))
        grid = tf.where(self._data_mask > 0, symbols, pilots)
        return bits, grid

    def draw(self, batch_size, seed, sinr_db=None, interference_share=None):
        """The un-wrapped generator, for use inside another tf.function (seed: int64 tensor)."""
        zero = tf.constant(0, tf.int64)
        sionna_config.tf_rng.reset(tf.stack([zero, zero, seed]))
        rng = sionna_config.tf_rng
        interferer = self.scenario.interferer

        bits, x = self._grid(batch_size, self._pilots, None if self.code is None else seed)
        h = self._channel(batch_size)
        signal = h * x[..., None]

        sir_db = None
        if interferer is not None:
            sir_db = rng.uniform([batch_size], *interferer.sir_db, tf.float32)
        if sinr_db is None:
            noise_power = _db_to_linear(rng.uniform([batch_size], *self.scenario.snr_db, tf.float32))
            interference_power = tf.zeros([batch_size]) if sir_db is None else _db_to_linear(sir_db)
        else:
            impairment = _db_to_linear(sinr_db)
            if sir_db is None:
                interference_power = tf.zeros([batch_size])
            elif interference_share is not None:
                interference_power = interference_share * impairment
            else:
                interference_power = tf.minimum(_db_to_linear(sir_db), MAX_INTERFERENCE_SHARE * impairment)
            noise_power = impairment - interference_power
        impairment = noise_power + interference_power
        sinr_db = -10.0 * tf.math.log(impairment) / tf.math.log(10.0)

        y = signal
        h_interference = tf.zeros_like(h)
        if interferer is not None:
            _, x_i = self._grid(batch_size, self._interferer_pilots)
            h_i = self._channel(batch_size)
            h_interference = tf.complex(tf.sqrt(interference_power), 0.0)[:, None, None, None] * h_i
            y = y + h_interference * x_i[..., None]
        shape = tf.shape(y)
        noise_std = tf.sqrt(noise_power / 2.0)[:, None, None, None]
        noise = tf.complex(rng.normal(shape) * noise_std, rng.normal(shape) * noise_std)
        y = y + noise

        pilots = tf.broadcast_to(self._pilots[None, :, :, None], [batch_size, *self.scenario.grid_shape, 1])
        raw_ls = y * tf.math.conj(pilots)
        inputs = tf.concat([tf.math.real(y), tf.math.imag(y), tf.math.real(pilots), tf.math.imag(pilots),
                            tf.math.real(raw_ls), tf.math.imag(raw_ls)], axis=-1)
        mask = tf.broadcast_to(self._data_mask, [batch_size, *self.scenario.grid_shape])
        return Batch(inputs=inputs, bits=bits, data_mask=mask, sinr_db=sinr_db, y=y, h=h,
                     noise_var=impairment, h_interference=h_interference, noise_power=noise_power)
