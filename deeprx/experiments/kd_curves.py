"""Two student arms over training budgets (KD against scratch; with --hint_arm_weight also
KD with a feature hint against KD and against scratch), paired by seed (same initial weights,
same batches), with 95% confidence intervals across seeds: the sweep's step 4 reads the
learning curves (curve.csv, deeprx/network/curves.py) of its students.

At every budget (a step both curves of every seed have) and for each measure, the paired
difference per seed (arm A against arm B, e.g. KD against scratch), its mean and the 95%
Student-t interval of the mean across seeds:
  gm_ber_diff       GM BER of A - B (< 0: A better)
  gain_db_at_1e-2   SINR B needs at BER 1e-2 - SINR A needs (> 0: A better), and
  gain_db_at_1e-3   at 1e-3; edge/ber.py's crossing rule on the curve's points (at least
                    MIN_BIT_ERRORS errors above the target; a curve that floors or comes back
                    gives none); the mean is over the seeds where both students cross.
"""

import dataclasses
import math
import os

from deeprx.network import curves
from deeprx.core import io as io_lib
from edge import ber as ber_lib

# Student t quantile 0.975 by degrees of freedom (beyond 30: the normal's 1.96).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042}
MEASURES = ("gm_ber_diff", "gain_db_at_1e-2", "gain_db_at_1e-3")


def t_975(df):
    if df in T_975:
        return T_975[df]
    below = [d for d in T_975 if d < df]
    return 1.96 if df > 30 else T_975[max(below)]


def mean_interval(values):
    """(mean, 95% low, 95% high, n) of a sample; the interval is None below two values."""
    n = len(values)
    if not n:
        return None, None, None, 0
    mean = sum(values) / n
    if n < 2:
        return mean, None, None, n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_975(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def sinr_points(row):
    """The SINR points (dB) of a curve.csv row, from its ber_<SINR>dB columns."""
    return sorted(float(key[4:-2]) for key in row if key.startswith("ber_") and key.endswith("dB"))


def curve_summary(row, bits_per_point):
    """{gm_ber, sinr_at_ber_1e-2, sinr_at_ber_1e-3} of one curve.csv row (its bit errors are
    BER x the bits of a point: curves.CURVE_SLOTS_PER_POINT slots)."""
    points = [(s, int(round(float(row[curves.ber_column(s)]) * bits_per_point)), bits_per_point)
              for s in sinr_points(row)]
    entry = {"gm_ber": float(row["gm_ber"])}
    for target in ber_lib.TARGET_BERS:
        entry[ber_lib.target_key(target)] = ber_lib.target_crossing(points, target)[0]
    return entry


def budget_rows(pairs, bits_per_point):
    """pairs: {seed: (arm A's curve rows, arm B's)}, e.g. KD and scratch. One row per budget
    (steps every curve has): slots seen, and per measure its per-seed values (A - B), mean,
    interval and n."""
    steps = None
    for a_rows, b_rows in pairs.values():
        have = {int(r["step"]) for r in a_rows} & {int(r["step"]) for r in b_rows}
        steps = have if steps is None else steps & have
    rows = []
    for step in sorted(steps or ()):
        per_seed = {name: {} for name in MEASURES}
        slots = None
        for seed, (a_rows, b_rows) in sorted(pairs.items()):
            a_row = next(r for r in a_rows if int(r["step"]) == step)
            b_row = next(r for r in b_rows if int(r["step"]) == step)
            slots = int(a_row["slots_seen"])
            a, b = (curve_summary(r, bits_per_point) for r in (a_row, b_row))
            per_seed["gm_ber_diff"][seed] = round(a["gm_ber"] - b["gm_ber"], 6)
            for key, gain in ber_lib.sinr_gains(a, b).items():
                if gain is not None:
                    per_seed[key][seed] = gain
        rows.append({"step": step, "slots_seen": slots, "seeds": len(pairs), **paired_columns(per_seed)})
    return rows


def paired_columns(per_seed):
    """per_seed: {measure: {seed: A - B}} (a seed missing where its curves reached no crossing).
    Per measure: mean, 95% interval, n and the per-seed values, as kd_curves.csv's columns."""
    row = {}
    for name, values in per_seed.items():
        mean, low, high, n = mean_interval(list(values.values()))
        row.update({f"{name}_mean": _round(mean), f"{name}_ci_low": _round(low), f"{name}_ci_high": _round(high),
                    f"{name}_n": n, f"{name}_by_seed": " ".join(f"{s}:{v:+.4f}" for s, v in values.items())})
    return row


def cell(row, name):
    """One measure of a paired_columns row as markdown: mean [95% interval] (n seeds)."""
    if row[f"{name}_mean"] is None:
        return "none reached"
    interval = ("" if row[f"{name}_ci_low"] is None
                else f" [{row[f'{name}_ci_low']:+.3f}, {row[f'{name}_ci_high']:+.3f}]")
    return f"{row[f'{name}_mean']:+.3f}{interval} (n={row[f'{name}_n']})"


def _round(value):
    return None if value is None else round(value, 4)


# The comparisons of step 4: (arm A, arm B), named "A - B"; the first is the headline, whose
# plots keep the name kd_curves_dmrs<N>.png.
KD_VS_SCRATCH = ("KD", "scratch")
HINT_VS_KD = ("KD+hint", "KD")
HINT_VS_SCRATCH = ("KD+hint", "scratch")


def comparison_name(arms):
    return f"{arms[0]} - {arms[1]}"


def plot_name(arms, dmrs):
    slug = "" if arms == KD_VS_SCRATCH else "_" + "_vs_".join(a.lower().replace("+", "_") for a in arms)
    return f"kd_curves{slug}_dmrs{dmrs}.png"


def columns():
    return ("comparison", "num_dmrs", "step", "slots_seen", "seeds") + tuple(
        f"{name}_{part}" for name in MEASURES for part in ("mean", "ci_low", "ci_high", "n", "by_seed"))


def markdown(rows):
    """The budget table: mean [95% interval] (n seeds) per measure, A - B per comparison."""
    lines = ["| A - B | DMRS | step | slots | GM BER A - B (< 0: A better) | SINR gain at 1e-2 dB (> 0: A better) "
             "| at 1e-3 |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['comparison']} | {row['num_dmrs']} | {row['step']} | {row['slots_seen']:,} | "
                     + " | ".join(cell(row, name) for name in MEASURES) + " |")
    return "\n".join(lines) + "\n"


def write_budgets(sweep, comparisons, title, log=print):
    """SWEEP/kd_curves.csv and a kd_curves*_dmrs<N>.png per comparison and DMRS count from the
    learning curves of step 4's students. comparisons: [((arm A, arm B), {(dmrs, seed): (run A,
    run B)})], e.g. (KD_VS_SCRATCH, KD and scratch runs). Returns the budget rows (none when the
    runs have no curves: --curve_every=0)."""
    from deeprx.evaluation import plots  # matplotlib: only once there is something to draw
    budgets = []
    for arms, pairs in comparisons:
        for dmrs in sorted({dmrs for dmrs, _ in pairs}):
            curve_pairs = {}
            for seed in sorted(seed for d, seed in pairs if d == dmrs):
                paths = [os.path.join(run.workdir, curves.CURVE_FILENAME) for run in pairs[dmrs, seed]]
                if not all(os.path.isfile(p) for p in paths):
                    log(f"no learning curves in {pairs[dmrs, seed][0].workdir} (--curve_every=0): no budgets",
                        flush=True)
                    return []
                curve_pairs[seed] = tuple(io_lib.read_csv(p) for p in paths)
            scenario = dataclasses.replace(sweep.scenario,
                                           dmrs=dataclasses.replace(sweep.scenario.dmrs, num_symbols=dmrs))
            rows = [{"comparison": comparison_name(arms), "num_dmrs": dmrs, **row} for row in budget_rows(
                curve_pairs, curves.CURVE_SLOTS_PER_POINT * scenario.data_bits_per_slot)]
            budgets += rows
            path = os.path.join(sweep.workdir, plot_name(arms, dmrs))
            plots.kd_curves(curve_pairs, rows, path, f"{comparison_name(arms)} over training, {dmrs} DMRS: {title}, "
                            f"{len(curve_pairs)} seeds, {curves.CURVE_SLOTS_PER_POINT} curve slots per SINR point",
                            arms)
            log(f"Wrote {path}", flush=True)
    path = os.path.join(sweep.workdir, "kd_curves.csv")
    io_lib.write_table(path, budgets, columns())
    log(f"Wrote {path}", flush=True)
    return budgets
