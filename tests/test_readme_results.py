"""Quoted results are the committed files': each results folder's README.md is what its files
give (deeprx.results_pages), README's study table is the committed report's, the sweep's
table is what its summary gives, and every relative link of the docs resolves."""

import glob
import os
import re
import shutil

from conftest import REPO, run_module
from deeprx.evaluation import results_pages
from deeprx.experiments import kd_summary
from deeprx.core import io as io_lib

RESULTS = os.path.join(REPO, "data", "results")


def test_every_results_page_is_what_its_files_give():
    result = run_module("deeprx.results_pages", "--check", timeout=120)
    assert result.returncode == 0, result.stderr
    folders = results_pages.folders(RESULTS)
    assert len(folders) >= 8 and all(os.path.isfile(os.path.join(f, "README.md")) for f in folders)
    # Every top-level folder, and a nested one that has its own NOTES.md.
    assert set(glob.glob(os.path.join(RESULTS, "*", ""))) <= {os.path.join(f, "") for f in folders}
    assert os.path.join(RESULTS, "energy-cpu", "kernels") in folders


def test_a_changed_result_makes_its_page_stale_until_regenerated(tmp_path):
    shutil.copytree(os.path.join(RESULTS, "baselines-cpu-1dmrs"), tmp_path / "baselines")
    summary_path = tmp_path / "baselines" / "summary.json"
    summary = io_lib.read_json(str(summary_path))
    summary["ls_lmmse"]["gm_ber"] = -3.25
    io_lib.write_json(str(summary_path), summary)
    (tmp_path / "baselines" / "model_int8.tflite").write_bytes(b"not committed")  # .gitignore'd
    stale = run_module("deeprx.results_pages", f"--results={tmp_path}", "--check", timeout=120)
    assert stale.returncode == 1 and "baselines/README.md" in stale.stderr
    assert run_module("deeprx.results_pages", f"--results={tmp_path}", timeout=120).returncode == 0
    page = (tmp_path / "baselines" / "README.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| baselines | 1 | ls_lmmse |"))
    assert row.endswith("| -3.250 |") and "Discussion:" in page  # the new value, and NOTES.md kept
    assert "`summary.json`" in page and "model_int8.tflite" not in page  # a fresh clone has no .tflite
    assert run_module("deeprx.results_pages", f"--results={tmp_path}", "--check", timeout=120).returncode == 0


def test_summary_table_cli_rejects_a_directory_without_summary(tmp_path):
    result = run_module("deeprx.summary_table", str(tmp_path), timeout=60)
    assert result.returncode == 2 and "no summary.json" in result.stderr


def test_readme_study_table_is_the_committed_reports():
    with open(os.path.join(RESULTS, "study-demo", "report.md")) as f:
        report = f.read()
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    table = report.split("## Models", 1)[1].split("\n\n")[1]
    assert table.count("\n") >= 6 and table in readme


def test_the_kd_table_is_what_the_sweep_summary_gives():
    published = os.path.join(RESULTS, "kd-cpu")
    with open(os.path.join(published, "kd_summary.md")) as f:
        table = f.read().split("\n\n")[1]  # the per-seed table; the hint table and budgets follow
    summary = io_lib.read_json(os.path.join(published, "kd_summary.json"))
    assert table.strip() == kd_summary.kd_table(summary["runs"]).strip()


def test_every_relative_link_of_the_docs_resolves():
    documents = [os.path.join(REPO, name) for name in ("README.md", "BUILD_NOTES.md")]
    documents += glob.glob(os.path.join(REPO, "docs", "*.md")) + glob.glob(os.path.join(RESULTS, "*", "README.md"))
    broken = []
    for document in documents:
        with open(document) as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not os.path.exists(os.path.join(os.path.dirname(document), target)):
                broken.append((os.path.relpath(document, REPO), target))
    assert not broken


def test_a_commands_markdown_brings_its_plots_and_an_unrenderable_record_no_heading(tmp_path):
    folder = tmp_path / "result"
    folder.mkdir()
    (folder / "kd_map.md").write_text("| a |\n|---|\n| 1 |\n")
    for name in ("kd_map.png", "kd_map_pareto.png", "other.png"):
        (folder / name).write_bytes(b"png")
    (folder / "kd_map.json").write_text('{"sizes": [{"mflops": 1}]}')
    text = results_pages.page(str(folder))
    assert "![kd_map](kd_map.png)" in text and "![kd_map_pareto](kd_map_pareto.png)" in text
    assert "![other]" not in text and "## kd_map.json" not in text and "`kd_map.json`" in text
