"""README result tables are those of the committed runs: deeprx.summary_table, the study report, the KD sweep."""

import os

from conftest import REPO, run_module
from deeprx import summary_table
from deeprx.experiments import sweep as sweep_lib
from edge import ber as ber_lib

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


def test_readme_kd_table_is_the_committed_sweeps():
    published = os.path.join(REPO, "data/results/kd-cpu")
    with open(os.path.join(published, "kd_summary.md")) as f:
        table = f.read().split("\n\n", 1)[1]
    summary = ber_lib.read_json(os.path.join(published, "kd_summary.json"))
    assert table == sweep_lib.kd_table(summary["runs"])
    with open(os.path.join(REPO, "README.md")) as f:
        assert table in f.read()


@pytest.mark.parametrize("step_csv, heading, column", [
    ("alpha_T.csv", "**Step 3, alpha and T**", "gm_ber"),
    ("student_size.csv", "**Step 1, student size**", "gm_ber"),
    ("teacher_size.csv", "**Step 2, teacher size**", "gm_ber"),
    ("teacher_size.csv", "**Step 2, teacher size**", "teacher_gm_ber"),
])
def test_readme_sweep_step_tables_quote_the_committed_csvs(step_csv, heading, column):
    rows = ber_lib.read_csv(os.path.join(REPO, "data/results/kd-cpu", step_csv))
    with open(os.path.join(REPO, "README.md")) as f:
        section = f.read().split(heading, 1)[1].split("\n![", 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| ")]
    for row in rows:
        value = f"{float(row[column]):.3f}"
        assert any(f"| {value} |" in line for line in table_rows), (step_csv, row["run"], value)
