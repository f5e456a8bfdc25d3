"""kd_summary.json's entries (a KD student against its scratch twin; a KD+hint student against
both) and kd_summary.md, the tables a reader looks at."""

from deeprx.experiments import kd_curves
from deeprx.core import io as io_lib
from edge import ber as ber_lib


def kd_entry(seed, dmrs, kd, scratch):
    """One kd_summary.json entry (gains: ber.sinr_gains of KD over scratch; kd_share: the KD term's
    share of the KD student's loss on its last progress line, None if that run's record lost it)."""
    return {"seed": seed, "num_dmrs": dmrs, "gm_ber_kd": kd["gm_ber"], "gm_ber_scratch": scratch["gm_ber"],
            **ber_lib.sinr_gains(kd, scratch), "kd_share": kd.get("kd_share")}


def hint_entry(seed, dmrs, hint, kd, scratch):
    """One entry of kd_summary.json's hint runs: the KD+hint student against KD and scratch."""
    return {"seed": seed, "num_dmrs": dmrs, "gm_ber_hint": hint["gm_ber"], "gm_ber_kd": kd["gm_ber"],
            "gm_ber_scratch": scratch["gm_ber"],
            **{f"{key}_vs_kd": gain for key, gain in ber_lib.sinr_gains(hint, kd).items()},
            "kd_share": hint.get("kd_share"), "feature_share": hint.get("feature_share")}


def final_rows(entries):
    """The final evaluations of kd_entry's runs, KD - scratch paired by seed: per DMRS count, the
    mean and 95% interval across seeds of each kd_curves.MEASURES (a gain only where both
    students reached the target BER)."""
    rows = []
    for dmrs in sorted({e["num_dmrs"] for e in entries}):
        per_seed = {name: {} for name in kd_curves.MEASURES}
        for e in _ordered(e for e in entries if e["num_dmrs"] == dmrs):
            per_seed["gm_ber_diff"][e["seed"]] = round(e["gm_ber_kd"] - e["gm_ber_scratch"], 6)
            for name in kd_curves.MEASURES[1:]:
                if e[name] is not None:
                    per_seed[name][e["seed"]] = e[name]
        rows.append({"num_dmrs": dmrs, "seeds": len(per_seed["gm_ber_diff"]), **kd_curves.paired_columns(per_seed)})
    return rows


def final_table(rows):
    """final_rows as markdown."""
    return _table(("DMRS symbols", "seeds", "GM BER KD - scratch (< 0: KD better)", "SINR gain at BER 1e-2 dB "
                   "(> 0: KD better)", "at BER 1e-3"),
                  [(r["num_dmrs"], r["seeds"], *(kd_curves.cell(r, name) for name in kd_curves.MEASURES))
                   for r in rows])


def kd_table(entries):
    """kd_summary.json's runs as a markdown table (kd_summary.md), per DMRS count and seed."""
    return _table(("DMRS symbols", "seed", "Geometric Mean BER, KD", "from scratch", "KD - scratch (< 0: KD better)",
                   "SINR gain at BER 1e-2 (> 0: KD better)", "at BER 1e-3", "KD share of the loss (last log)"),
                  [(e["num_dmrs"], e["seed"], f"{e['gm_ber_kd']:.3f}", f"{e['gm_ber_scratch']:.3f}",
                    f"{e['gm_ber_kd'] - e['gm_ber_scratch']:+.3f}", ber_lib.gain_text(e["gain_db_at_1e-2"]),
                    ber_lib.gain_text(e["gain_db_at_1e-3"]), _share(e.get("kd_share")))
                   for e in _ordered(entries)])


def hint_table(entries):
    """kd_summary.json's hint runs as a markdown table."""
    return _table(("DMRS symbols", "seed", "Geometric Mean BER, KD+hint", "KD", "from scratch",
                   "KD+hint - KD (< 0: hint better)", "SINR gain over KD at BER 1e-2", "at BER 1e-3",
                   "KD share, hint share of the loss (last log)"),
                  [(e["num_dmrs"], e["seed"], f"{e['gm_ber_hint']:.3f}", f"{e['gm_ber_kd']:.3f}",
                    f"{e['gm_ber_scratch']:.3f}", f"{e['gm_ber_hint'] - e['gm_ber_kd']:+.3f}",
                    ber_lib.gain_text(e["gain_db_at_1e-2_vs_kd"]), ber_lib.gain_text(e["gain_db_at_1e-3_vs_kd"]),
                    f"{_share(e.get('kd_share'))}, {_share(e.get('feature_share'))}")
                   for e in _ordered(entries)])


def _share(value):
    return "not recorded" if value is None else f"{value:.0%}"


def _ordered(entries):
    return sorted(entries, key=lambda e: (e["num_dmrs"], e["seed"]))


def _table(header, rows):
    """results_pages' markdown table of `rows` (tuples in `header`'s order), newline-ended."""
    return io_lib.markdown_table(header, [dict(zip(header, row)) for row in rows]) + "\n"


def markdown(summary):
    """kd_summary.md: the settings, the per-seed tables and the budgets of a kd_summary.json."""
    hint = summary.get("hint")
    return (f"KD vs scratch students ({summary['student_mflops']:g} MFLOPs per slot, {summary['student_steps']} "
            f"steps), teacher {summary['teacher_mflops']:g} MFLOPs; alpha {summary['alpha']:g}, T "
            f"{summary['temperature']:g} ({summary['chosen_by']}).\n\n{kd_table(summary['runs'])}"
            + (f"\nFinal evaluation, paired by seed (mean [95% t interval] across seeds):\n\n"
               f"{final_table(summary['final'])}" if summary.get("final") else "")
            + (f"\nKD with a feature hint (--kd_feature_weight={hint['kd_feature_weight']:g}) against KD and "
               f"scratch:\n\n{hint_table(hint['runs'])}" if hint else "")
            + (f"\nOver training budgets (paired by seed; mean [95% t interval] across seeds):\n\n"
               f"{kd_curves.markdown(summary['budgets'])}" if summary["budgets"] else ""))
