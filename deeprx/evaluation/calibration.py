"""LLR calibration: do a receiver's LLRs mean what they say?

A bit decided with |LLR| = L is wrong with probability 1 / (1 + e^L) if the LLR is a true
log-likelihood ratio. Bits are binned by |LLR| (LLR_EDGES); in each bin the empirical LLR is
ln((right + 0.5) / (wrong + 0.5)) of its decisions. A calibrated receiver has empirical LLR
= mean |LLR| in every bin; an overconfident one (which a channel decoder punishes and
uncoded BER never shows) has empirical < mean |LLR|. `overconfidence` is the bits-weighted
mean of mean |LLR| - empirical LLR over the bins with at least MIN_ERRORS errors (where the
empirical LLR is measured): > 0 overconfident, < 0 underconfident, about 0 calibrated.
"""

import math

import numpy as np

LLR_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, math.inf)
COLUMNS = ("receiver", "llr_low", "llr_high", "bits", "bit_errors", "mean_abs_llr", "empirical_llr")
MIN_ERRORS = 10


class Calibration:
    """|LLR| histogram of one receiver's data bits, with the wrong decisions of each bin."""

    def __init__(self):
        bins = len(LLR_EDGES) - 1
        self.bits, self.errors, self.abs_sum = np.zeros(bins, np.int64), np.zeros(bins, np.int64), np.zeros(bins)

    def add(self, llrs, wrong):
        """llrs and wrong (bool): the data bits of a batch, any shape, the same for both."""
        magnitude = np.abs(np.asarray(llrs, np.float64)).ravel()
        wrong = np.asarray(wrong, bool).ravel()
        index = np.clip(np.searchsorted(LLR_EDGES, magnitude, side="right") - 1, 0, len(LLR_EDGES) - 2)
        self.bits += np.bincount(index, minlength=len(self.bits))
        self.errors += np.bincount(index, weights=wrong, minlength=len(self.bits)).astype(np.int64)
        self.abs_sum += np.bincount(index, weights=magnitude, minlength=len(self.bits))

    def rows(self, receiver):
        rows = []
        for i, bits in enumerate(self.bits):
            if bits:
                errors = int(self.errors[i])
                rows.append({"receiver": receiver, "llr_low": LLR_EDGES[i], "llr_high": LLR_EDGES[i + 1],
                             "bits": int(bits), "bit_errors": errors,
                             "mean_abs_llr": round(float(self.abs_sum[i] / bits), 4),
                             "empirical_llr": round(math.log((bits - errors + 0.5) / (errors + 0.5)), 4)})
        return rows


def overconfidence(rows):
    """Bits-weighted mean |LLR| - empirical LLR over bins with >= MIN_ERRORS errors, or None."""
    measured = [row for row in rows if int(row["bit_errors"]) >= MIN_ERRORS]
    if not measured:
        return None
    total = sum(int(row["bits"]) for row in measured)
    gap = sum(int(row["bits"]) * (float(row["mean_abs_llr"]) - float(row["empirical_llr"])) for row in measured)
    return round(gap / total, 4)
