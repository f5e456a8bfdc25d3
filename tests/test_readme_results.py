"""README result tables are the output of deeprx.summary_table on the committed runs."""

import os

from conftest import REPO, run_module
from deeprx import summary_table

import pytest

TABLES = {
    "baselines": ["data/results/baselines-cpu-1dmrs", "data/results/baselines-cpu-2dmrs"],
    "teacher": ["data/results/teacher-cpu"],
}


@pytest.mark.parametrize("table_name", sorted(TABLES))
def test_readme_table_matches_committed_summaries(table_name):
    runs = TABLES[table_name]
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    for run in runs:
        for name in ("ber.csv", "summary.json", "ber.png", "config.json"):
            assert os.path.isfile(os.path.join(REPO, run, name)), (run, name)
    assert summary_table.table([os.path.join(REPO, run) for run in runs]) in readme


def test_summary_table_cli_rejects_a_directory_without_summary(tmp_path):
    result = run_module("deeprx.summary_table", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "no summary.json" in result.stderr


def test_readme_study_table_is_the_committed_reports():
    with open(os.path.join(REPO, "data/results/study-demo/report.md")) as f:
        report = f.read()
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    table = report.split("## Models", 1)[1].split("\n\n")[1]
    assert table.count("\n") >= 6 and table in readme
