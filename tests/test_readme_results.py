"""README result tables are the output of deeprx.summary_table on the committed runs."""

import os

from conftest import REPO, run_module
from deeprx import summary_table

BASELINE_RUNS = ["data/results/baselines-cpu-1dmrs", "data/results/baselines-cpu-2dmrs"]


def test_readme_baseline_table_matches_committed_summaries():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    table = summary_table.table([os.path.join(REPO, run) for run in BASELINE_RUNS])
    assert table.replace(REPO + "/", "") in readme
    for run in BASELINE_RUNS:
        for name in ("ber.csv", "summary.json", "ber.png", "config.json"):
            assert os.path.isfile(os.path.join(REPO, run, name)), (run, name)


def test_summary_table_cli_rejects_a_directory_without_summary(tmp_path):
    result = run_module("deeprx.summary_table", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "no summary.json" in result.stderr
