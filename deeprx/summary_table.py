"""Markdown table of one or more evaluation runs, read from their summary.json files.

Example usage:
  python -m deeprx.summary_table data/results/baselines-cpu-1dmrs data/results/baselines-cpu-2dmrs

The results pages (deeprx/evaluation/results_pages.py) render evaluation folders with it.
"""

import os
import sys

from deeprx.evaluation.results_pages import summary_table


def main(argv):
    if len(argv) < 2:
        print("usage: python -m deeprx.summary_table RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    for run_dir in argv[1:]:
        if not os.path.isfile(os.path.join(run_dir, "summary.json")):
            print(f"error: {run_dir}: no summary.json (not an evaluation output directory)", file=sys.stderr)
            return 2
    print(summary_table(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
