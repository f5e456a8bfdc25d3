"""The student-size map (deeprx.kd_map) from published sweeps: its pairing and intervals agree
with the sweep's own kd_summary.json, sizes are ordered and must share their teacher, and bad
input is one line."""

import json
import os
import shutil

import pytest

from conftest import REPO, run_module
from deeprx.experiments import kd_map
from deeprx.core import io as io_lib

PUBLISHED = os.path.join(REPO, "data", "results", "kd-cpu-2dmrs")


def test_the_map_of_a_published_sweep_agrees_with_its_kd_summary(tmp_path):
    result = run_module("deeprx.kd_map", f"--sizes={PUBLISHED}", "--teacher_name=teacher-cpu-2dmrs",
                        f"--out={tmp_path}", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "kd_map.json") as f:
        the_map = json.load(f)
    size, = the_map["sizes"]
    final, = io_lib.read_json(os.path.join(PUBLISHED, "kd_summary.json"))["final"]
    # kd_summary.final_rows paired the same runs from the sweep's own records
    for name, key in (("kd_minus_scratch_gm_ber", "gm_ber_diff"), ("gain_db_1e-2", "gain_db_at_1e-2"),
                      ("gain_db_1e-3", "gain_db_at_1e-3")):
        assert [size[name][part] for part in ("mean", "low", "high", "n")] == pytest.approx(
            [final[f"{key}_{part}"] for part in ("mean", "ci_low", "ci_high", "n")], abs=2e-4), name
    assert size["seeds"] == [0, 1, 2] and size["parameters"] == 121_307 and size["flops_ratio"] == pytest.approx(
        size["mflops"] / the_map["teacher"]["mflops"], abs=1e-3)
    seed0 = io_lib.read_json(os.path.join(PUBLISHED, "by-run", "kd-318M-t0.5-a0.5-T3-dmrs2-s0", "summary.json"))
    assert size["kd"]["gm_ber"][0] == seed0["kd-318M-t0.5-a0.5-T3-dmrs2-s0"]["gm_ber"]
    assert the_map["references"]["ls_lmmse"]["gm_ber"] == pytest.approx(seed0["ls_lmmse"]["gm_ber"], abs=1e-6)
    assert (tmp_path / "kd_map.md").read_text() in result.stdout and os.path.getsize(tmp_path / "kd_map.png") > 0


def test_sizes_are_ordered_by_flops_and_must_share_their_teacher(tmp_path):
    small = tmp_path / "small"
    shutil.copytree(PUBLISHED, small)
    for run in os.listdir(small / "by-run"):
        path = small / "by-run" / run / "train.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "flops_per_slot": record["flops_per_slot"] // 10}))
    the_map = kd_map.build([PUBLISHED, str(small)], "t")
    assert [size["folder"] for size in the_map["sizes"]] == [str(small), PUBLISHED]
    summary = json.loads((small / "kd_summary.json").read_text())
    (small / "kd_summary.json").write_text(json.dumps({**summary, "teacher_mflops": 100.0}))
    with pytest.raises(ValueError, match="every size must distil the same teacher"):
        kd_map.build([PUBLISHED, str(small)], "t")
    bad = run_module("deeprx.kd_map", f"--sizes={tmp_path}", f"--out={tmp_path}/out", timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: --sizes: no kd_summary.json in")


def test_a_condition_off_the_training_distribution_is_compared_seed_by_seed(tmp_path):
    size = tmp_path / "size"
    shutil.copytree(PUBLISHED, size)
    condition = size / "conditions" / "interference-0.9"
    condition.mkdir(parents=True)
    # KD 0.1 ahead in GM BER and 1 dB at BER 1e-2 on seeds 0 and 1; seed 2's KD student was not
    # evaluated there, so only two seeds pair.
    entries = {}
    for seed in (0, 1, 2):
        entries[f"scratch-318M-dmrs2-s{seed}"] = {"gm_ber": -2.0, "sinr_at_ber_1e-2": 11.0 + seed,
                                                  "sinr_at_ber_1e-3": None}
        if seed < 2:
            entries[f"kd-318M-t0.5-a0.5-T3-dmrs2-s{seed}"] = {"gm_ber": -2.1, "sinr_at_ber_1e-2": 10.0 + seed,
                                                               "sinr_at_ber_1e-3": 20.0}
    io_lib.write_json(str(condition / "summary.json"), entries)
    io_lib.write_json(str(condition / "config.json"), {"command": "python -m deeprx.evaluate --interference_share=0.9"})
    entry = kd_map.build([str(size)], "t")["sizes"][0]["conditions"]["interference-0.9"]
    assert entry["seeds"] == [0, 1] and entry["command"].endswith("--interference_share=0.9")
    assert entry["kd_minus_scratch_gm_ber"]["mean"] == pytest.approx(-0.1) and entry["kd_minus_scratch_gm_ber"]["n"] == 2
    assert entry["gain_db_1e-2"]["mean"] == pytest.approx(1.0) and entry["gain_db_1e-3"]["n"] == 0
    assert entry["kd"]["sinr_1e-2"] == [10.0, 11.0]
    table = kd_map.markdown(kd_map.build([str(size)], "t"))
    assert "| interference-0.9 | 319.1 | 2 | -0.100 [-0.100, -0.100] (n=2) | +1.000 [+1.000, +1.000] (n=2) |" in table
