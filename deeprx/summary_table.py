"""Markdown table of one or more evaluation runs, read from their summary.json files.

Example usage:
  python -m deeprx.summary_table data/results/baselines-cpu-1dmrs data/results/baselines-cpu-2dmrs

The results pages (python -m deeprx.results_pages) render evaluation folders with it.
"""

import json
import os
import sys

HEADER = ("| run | DMRS | receiver | SINR at BER 1e-2 [dB] | SINR at BER 1e-3 [dB] | Geometric Mean BER |\n"
          "|---|---|---|---|---|---|")


def _fmt(entry, key):
    """The SINR at a target BER, or the summary's note on why there is none ("floor at ...")."""
    value = entry[key]
    if value is not None:
        return f"{value:.2f}"
    return entry.get("note_" + key.rsplit("_", 1)[1], "not reached")


def table(run_dirs):
    lines = [HEADER]
    for run_dir in run_dirs:
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(run_dir, "config.json")) as f:
            run_config = json.load(f)
        dmrs = run_config["scenario"]["dmrs"]["num_symbols"]
        for receiver, entry in summary.items():
            lines.append(f"| {os.path.basename(os.path.normpath(run_dir))} | {dmrs} | {receiver} | "
                         f"{_fmt(entry, 'sinr_at_ber_1e-2')} | {_fmt(entry, 'sinr_at_ber_1e-3')} | "
                         f"{entry['gm_ber']:.3f} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) < 2:
        print("usage: python -m deeprx.summary_table RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    for run_dir in argv[1:]:
        if not os.path.isfile(os.path.join(run_dir, "summary.json")):
            print(f"error: {run_dir}: no summary.json (not an evaluation output directory)", file=sys.stderr)
            return 2
    print(table(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
