"""The shared CLI plumbing: nested flagfiles resolve relative to the file that includes
them, whatever the working directory; a missing or self-including flagfile is one line."""

import os

import pytest

from conftest import REPO, run_module
from deeprx import cli


def test_nested_flagfiles_resolve_relative_to_the_including_file(tmp_path, monkeypatch):
    (tmp_path / "arms").mkdir()
    (tmp_path / "base.flags").write_text("# the base\n--steps=10\n--seed=1\n")
    (tmp_path / "arms" / "arm.flags").write_text("--flagfile=../base.flags\n// another comment\n--seed=2\n")
    monkeypatch.chdir("/")
    assert cli.expand_flagfiles([f"--flagfile={tmp_path}/arms/arm.flags", "--steps=3"]) == \
        ["--steps=10", "--seed=1", "--seed=2", "--steps=3"]  # later flags win, as on a command line
    monkeypatch.chdir(tmp_path / "arms")
    assert cli.expand_flagfiles(["--flagfile=arm.flags"])[:2] == ["--steps=10", "--seed=1"]


def test_missing_and_self_including_flagfiles_are_flag_errors(tmp_path):
    (tmp_path / "a.flags").write_text("--flagfile=b.flags\n")
    (tmp_path / "b.flags").write_text("--flagfile=a.flags\n")
    with pytest.raises(cli.FlagError, match="includes itself"):
        cli.expand_flagfiles([f"--flagfile={tmp_path}/a.flags"])
    (tmp_path / "c.flags").write_text("--flagfile=nowhere.flags\n")
    with pytest.raises(cli.FlagError, match=r"no file .*nowhere.flags \(included by .*c.flags"):
        cli.expand_flagfiles([f"--flagfile={tmp_path}/c.flags"])


def test_the_repo_flagfiles_nest_from_another_working_directory(tmp_path):
    """kd.flags includes teacher.flags: from /tmp the CLI still finds it, and bad flags of
    the nest fail in one line before any compute."""
    result = run_module("deeprx.train", f"--flagfile={os.path.join(REPO, 'kd.flags')}",
                        f"--workdir={tmp_path}/s", f"--teacher={tmp_path}/t", "--steps=-1", timeout=120,
                        cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["error: --steps: steps must be a positive integer, got -1"]
