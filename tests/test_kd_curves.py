"""KD vs scratch over budgets: paired differences and their 95% intervals across seeds."""

import math

import pytest

from deeprx.experiments import kd_curves
from deeprx.network import curves

SINR = (0.0, 5.0, 10.0, 15.0)
BITS = 100_000


def _row(step, bers):
    gm = sum(math.log10(max(b, 1e-6)) for b in bers) / len(bers)
    return {"step": str(step), "slots_seen": str(16 * step), "gm_ber": str(gm),
            **{curves.ber_column(s): "%.6e" % b for s, b in zip(SINR, bers)}}


def test_mean_interval_is_students_t():
    mean, low, high, n = kd_curves.mean_interval([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)  # sd 1, t(0.975, 2 df)
    assert (mean, n) == (2.0, 3) and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert kd_curves.mean_interval([0.5])[1:] == (None, None, 1)
    assert kd_curves.t_975(40) == 1.96 and kd_curves.t_975(22) == 2.086


def test_budgets_pair_seeds_and_refuse_misleading_crossings():
    scratch = [0.2, 0.05, 0.012, 0.003]   # crosses 1e-2 between 10 and 15 dB
    better = [0.2, 0.03, 0.006, 0.001]     # crosses 1e-2 between 5 and 10 dB
    comes_back = [0.1, 0.02, 0.005, 0.011]  # below 1e-2 at 10 dB, back above at 15 dB: no crossing
    pairs = {
        0: ([_row(100, scratch), _row(200, better)], [_row(100, scratch), _row(200, scratch)]),
        1: ([_row(100, scratch), _row(200, better)], [_row(100, scratch), _row(200, scratch), _row(300, scratch)]),
        2: ([_row(100, scratch), _row(200, comes_back)], [_row(100, scratch), _row(200, scratch)]),
    }
    rows = kd_curves.budget_rows(pairs, BITS)
    assert [r["step"] for r in rows] == [100, 200]  # only the budgets every curve has
    first, second = rows
    assert first["gm_ber_diff_mean"] == 0 and first["gm_ber_diff_ci_low"] == first["gm_ber_diff_ci_high"] == 0
    assert first["gain_db_at_1e-2_n"] == 3 and first["gain_db_at_1e-2_mean"] == 0
    # Budget 200: KD better on every seed in GM BER; seed 2's curve comes back above 1e-2.
    diffs = [float(pair.split(":")[1]) for pair in second["gm_ber_diff_by_seed"].split()]
    assert len(diffs) == 3 and all(d < 0 for d in diffs)
    assert second["gm_ber_diff_mean"] == pytest.approx(sum(diffs) / 3, abs=1e-4)
    assert second["gm_ber_diff_ci_low"] < second["gm_ber_diff_mean"] < second["gm_ber_diff_ci_high"]
    assert second["gain_db_at_1e-2_n"] == 2 and "2:" not in second["gain_db_at_1e-2_by_seed"]
    gain = second["gain_db_at_1e-2_mean"]
    assert 2.0 < gain < 6.0  # the crossing moved from 10..15 dB to 5..10 dB
    assert second["gain_db_at_1e-2_ci_low"] == second["gain_db_at_1e-2_ci_high"] == gain  # equal seeds: no spread
    table = kd_curves.markdown([{"comparison": "KD - scratch", "num_dmrs": 1, **r} for r in rows])
    assert "| KD - scratch | 1 | 200 | 3,200 |" in table and "(n=2)" in table
