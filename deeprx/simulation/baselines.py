"""Classical receivers: LS + interpolation + LMMSE + max-log demapping, and the same with the
true channel; each with the interferer as white noise or rejected (IRC).

All take a `deeprx.simulation.data.Batch` and return LLRs [batch, 14, K, m] float32 in the
layout a neural receiver uses, with the convention LLR = log(P(b=1) / P(b=0))
(positive means bit 1; Sionna's convention, and sigmoid(LLR) = P(b=1)).
  ls_lmmse, perfect_lmmse  the interferer as white noise: covariance `batch.noise_var` x I
                           (noise plus interference power, handed to them);
  ls_irc                   interference rejection combining as a base station does it: the
                           interference-plus-noise covariance (N x N per RE) estimated from
                           the residuals of the DMRS REs after the LS channel estimate,
                           averaged over a window of pilots in frequency and over the DMRS
                           symbols, held over the slot; then LMMSE with it;
  perfect_irc              the genie: the true channels of both users and the noise power,
                           covariance h_I h_I^H + noise x I per RE: the upper reference.
"""

import numpy as np
import tensorflow as tf
from sionna.phy.mapping import Demapper
from sionna.phy.mimo import lmmse_equalizer

from deeprx.core import config as config_lib
from deeprx.simulation import data as data_lib


def interpolation_matrix(positions, size) -> np.ndarray:
    """[size, len(positions)] weights of piecewise-linear interpolation from samples
    at `positions` (sorted) to 0..size-1, holding the end values outside them."""
    positions = np.asarray(positions, np.float64)
    weights = np.zeros((size, len(positions)), np.float32)
    for target in range(size):
        if target <= positions[0]:
            weights[target, 0] = 1.0
        elif target >= positions[-1]:
            weights[target, -1] = 1.0
        else:
            right = int(np.searchsorted(positions, target, side="right"))
            left = right - 1
            frac = (target - positions[left]) / (positions[right] - positions[left])
            weights[target, left] = 1.0 - frac
            weights[target, right] = frac
    return weights


class _LmmseReceiver:
    """LMMSE equalization (Sionna's lmmse_equalizer, one stream over N antennas) and
    max-log demapping, given a channel estimate."""

    def __init__(self, scenario: config_lib.ScenarioConfig):
        self.scenario = scenario
        self._demapper = Demapper("maxlog", "qam", scenario.bits_per_symbol)
        self._graph = tf.function(self._receive)

    def channel_estimate(self, batch: data_lib.Batch) -> tf.Tensor:
        raise NotImplementedError

    def covariance(self, batch: data_lib.Batch, h_hat: tf.Tensor) -> tf.Tensor:
        """Interference-plus-noise covariance [B, 14, K, N, N]: white, noise_var x I."""
        return _white(batch.noise_var, h_hat.shape[:3], self.scenario.num_rx)

    def __call__(self, batch: data_lib.Batch) -> tf.Tensor:
        return self._graph(batch)

    def _receive(self, batch):
        h_hat = self.channel_estimate(batch)                      # [B, 14, K, N]
        s = self.covariance(batch, h_hat)
        x_hat, no_eff = lmmse_equalizer(batch.y, h_hat[..., None], s)  # [B, 14, K, 1]
        llr = self._demapper(x_hat, no_eff)                       # [B, 14, K, m]
        return llr


def _white(power, grid_shape, num_rx):
    """power [B] x I, broadcast to [B, 14, K, N, N]."""
    s = tf.complex(tf.maximum(power, 1e-12), 0.0)[:, None, None, None, None] * tf.eye(num_rx, dtype=tf.complex64)
    return tf.broadcast_to(s, [*grid_shape, num_rx, num_rx])


class PerfectLmmse(_LmmseReceiver):
    """perfect_lmmse: LMMSE with the true channel of the wanted user (a bound)."""
    name = "perfect_lmmse"

    def channel_estimate(self, batch):
        return batch.h


def uniform_pdp_correlation(frequency_offsets_hz, max_delay_s) -> np.ndarray:
    """Frequency correlation E[h(f + d) h*(f)] of a channel whose power-delay profile
    is uniform on [0, max_delay_s]: (1 - exp(-j 2 pi d tau)) / (j 2 pi d tau)."""
    x = 2.0 * np.pi * np.asarray(frequency_offsets_hz, np.float64) * max_delay_s
    safe = np.where(np.abs(x) < 1e-12, 1.0, x)
    return np.where(np.abs(x) < 1e-12, 1.0 + 0j, (1.0 - np.exp(-1j * safe)) / (1j * safe))


class LsLmmse(_LmmseReceiver):
    """ls_lmmse: LS at the DMRS REs; LMMSE (Wiener) interpolation over subcarriers;
    linear interpolation over OFDM symbols (held constant with one DMRS symbol); LMMSE
    equalization; max-log demapping.

    The Wiener filter is the robust design of Li, Cimini and Sollenberger (IEEE Trans.
    Commun. 1998): it assumes a uniform power-delay profile whose rms delay spread is
    the scenario's largest (max delay = sqrt(12) x that spread) and uses each slot's
    noise-plus-interference variance. It knows nothing else of the channel.
    """
    name = "ls_lmmse"

    def __init__(self, scenario: config_lib.ScenarioConfig):
        super().__init__(scenario)
        num_symbols, num_subcarriers = scenario.grid_shape
        pilot_subcarriers = np.arange(0, num_subcarriers, 2)
        pilots = data_lib.pilot_grid(scenario)
        self._pilot_symbols = list(scenario.dmrs.positions)
        self._pilot_subcarriers = pilot_subcarriers
        # 1 / pilot value at each pilot RE: [n_dmrs, K/2]
        self._inverse_pilots = tf.constant(
            1.0 / pilots[np.ix_(self._pilot_symbols, pilot_subcarriers)], tf.complex64)
        max_delay_s = np.sqrt(12.0) * 1e-9 * max(scenario.channel.delay_spread_ns[1], 1.0)
        spacing = scenario.carrier.subcarrier_spacing_hz
        all_f = spacing * np.arange(num_subcarriers)
        pilot_f = spacing * pilot_subcarriers
        self._r_pp = tf.constant(uniform_pdp_correlation(pilot_f[:, None] - pilot_f[None, :], max_delay_s),
                                 tf.complex64)                       # [P, P]
        self._r_kp = tf.constant(uniform_pdp_correlation(all_f[:, None] - pilot_f[None, :], max_delay_s),
                                 tf.complex64)                       # [K, P]
        self._time_weights = tf.constant(
            interpolation_matrix(self._pilot_symbols, num_symbols), tf.complex64)

    def channel_estimate(self, batch):
        y = tf.gather(batch.y, self._pilot_symbols, axis=1)
        y = tf.gather(y, self._pilot_subcarriers, axis=2)            # [B, L, P, N]
        h_ls = y * self._inverse_pilots[None, :, :, None]
        batch_size, num_dmrs, num_pilots, num_rx = h_ls.shape
        # Wiener over subcarriers: h = R_kp (R_pp + no I)^-1 h_ls, per slot.
        columns = tf.reshape(tf.transpose(h_ls, [0, 2, 1, 3]), [-1, num_pilots, num_dmrs * num_rx])
        no = tf.complex(tf.maximum(batch.noise_var, 1e-12), 0.0)[:, None, None]
        system = self._r_pp[None] + no * tf.eye(num_pilots, dtype=tf.complex64)[None]
        h_freq = tf.matmul(self._r_kp[None], tf.linalg.solve(system, columns))   # [B, K, L*N]
        h_freq = tf.reshape(h_freq, [-1, h_freq.shape[1], num_dmrs, num_rx])
        return tf.einsum("tl,bkln->btkn", self._time_weights, h_freq)


class PerfectIrc(PerfectLmmse):
    """perfect_irc: the true channel and the true interference-plus-noise covariance
    h_I h_I^H + noise x I of each RE (the interferer's symbols have unit power): the bound
    every receiver of the comparison is measured against."""
    name = "perfect_irc"

    def covariance(self, batch, h_hat):
        h_i = batch.h_interference                                 # [B, 14, K, N]
        outer = h_i[..., :, None] * tf.math.conj(h_i[..., None, :])
        return outer + _white(batch.noise_power, h_hat.shape[:3], self.scenario.num_rx)


class LsIrc(LsLmmse):
    """ls_irc: ls_lmmse's channel estimate; the interference-plus-noise covariance from the
    DMRS residuals e = y - h_hat x_p at the pilot REs (there the interferer sends its own
    DMRS), e e^H averaged over the DMRS symbols and a sliding window of `window_pilots`
    pilots in frequency (12 = two PRBs on the comb-2 DMRS), each subcarrier taking its
    nearest pilot's, held over the slot's symbols; `loading` x its mean diagonal is added
    (a few samples make a 2x2 estimate noisy); then IRC-LMMSE and max-log demapping."""
    name = "ls_irc"

    def __init__(self, scenario: config_lib.ScenarioConfig, window_pilots: int = 12, loading: float = 0.05):
        super().__init__(scenario)
        num_pilots = len(self._pilot_subcarriers)
        half = window_pilots // 2
        window = np.array([[1.0 if abs(p - q) <= half else 0.0 for q in range(num_pilots)]
                           for p in range(num_pilots)], np.float32)
        self._window = tf.constant(window / window.sum(axis=1, keepdims=True), tf.complex64)  # [P, P]
        self._nearest_pilot = tf.constant(np.minimum(np.arange(scenario.grid_shape[1]) // 2, num_pilots - 1))
        self._loading = loading

    def covariance(self, batch, h_hat):
        def at_pilots(grid):
            return tf.gather(tf.gather(grid, self._pilot_symbols, axis=1), self._pilot_subcarriers, axis=2)
        residual = at_pilots(batch.y) - at_pilots(h_hat) / self._inverse_pilots[None, :, :, None]  # [B, L, P, N]
        outer = residual[..., :, None] * tf.math.conj(residual[..., None, :])                      # [B, L, P, N, N]
        per_pilot = tf.einsum("pq,blqmn->bpmn", self._window, outer) / len(self._pilot_symbols)
        num_rx = self.scenario.num_rx
        diagonal = tf.math.real(tf.linalg.trace(per_pilot)) / num_rx                               # [B, P]
        per_pilot += tf.complex(self._loading * diagonal, 0.0)[..., None, None] * tf.eye(num_rx, dtype=tf.complex64)
        per_subcarrier = tf.gather(per_pilot, self._nearest_pilot, axis=1)                         # [B, K, N, N]
        return tf.broadcast_to(per_subcarrier[:, None], [*h_hat.shape[:3], num_rx, num_rx])


CLASSICAL_RECEIVERS = {cls.name: cls for cls in (LsLmmse, PerfectLmmse, LsIrc, PerfectIrc)}
