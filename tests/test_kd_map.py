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
    # Beating ls_lmmse, recounted from each run's own summary.json: lower GM BER and SINR at 1e-3.
    ls = seed0["ls_lmmse"]
    beating = {arm: [] for arm in kd_map.ARMS}
    for run in sorted(os.listdir(os.path.join(PUBLISHED, "by-run"))):
        own = io_lib.read_json(os.path.join(PUBLISHED, "by-run", run, "summary.json"))[run]
        if own["gm_ber"] < ls["gm_ber"] and own["sinr_at_ber_1e-3"] < ls["sinr_at_ber_1e-3"]:
            beating[run.split("-")[0]].append(int(run.rsplit("-s", 1)[1]))
    assert size["beats_ls_lmmse"]["float"] == beating and beating["scratch"]
    assert the_map["smallest_beating_ls_lmmse"]["float"] == {"mflops": size["mflops"],
                                                             "flops_ratio": size["flops_ratio"], **beating}


def test_sizes_are_ordered_by_flops_and_must_share_their_teacher(tmp_path):
    small = tmp_path / "small"
    shutil.copytree(PUBLISHED, small)
    for run in os.listdir(small / "by-run"):
        path = small / "by-run" / run / "train.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "flops_per_slot": record["flops_per_slot"] // 10}))
    for run in os.listdir(small / "by-run"):  # the small students lose to ls_lmmse
        path = small / "by-run" / run / "summary.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, run: {**record[run], "gm_ber": -1.0}}))
    the_map = kd_map.build([PUBLISHED, str(small)], "t")
    assert [size["folder"] for size in the_map["sizes"]] == [str(small), PUBLISHED]
    assert the_map["sizes"][0]["beats_ls_lmmse"]["float"] == {"kd": [], "scratch": []}
    assert the_map["smallest_beating_ls_lmmse"]["float"]["mflops"] == the_map["sizes"][1]["mflops"]
    assert "none of the 1 smaller size(s)" in kd_map.markdown(the_map)
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


def _price_record(models, energies=(20.0, 5.0)):
    """A deeprx.price record of students `models` {name: (float GM BER, int8 GM BER, cost at 1e-2,
    int8 SINR at 1e-3)}, all of one shape whose float and int8 energies are `energies` (mJ)."""
    def speed(mj, rate):
        return {"backend": "ai_edge_litert", "latency_ms": 1e3 / rate, "inferences_per_s": rate,
                "energy_mj_per_inference": mj, "cpu_ms_per_inference": mj / 4}
    return {"models": {name: {"shape": "edge-w0.3-d2", "edgetpu": {"operators": 107, "mapped": 107, "cut_at": None},
                              "float": {"gm_ber": f}, "int8": {"gm_ber": i, "sinr_1e-3": x}, "int8_cost_db_1e-2": c,
                              "int8_cost_db_1e-3": None} for name, (f, i, c, x) in models.items()},
            "shapes": {"edge-w0.3-d2": {"float": speed(energies[0], 300), "int8": speed(energies[1], 400)}},
            "threads": 2, "energy_source": "process CPU time x 4 W per busy core (estimated)", "cpu": "Test CPU"}


def test_a_priced_size_gets_its_int8_figures_seed_by_seed_and_a_pareto_front(tmp_path):
    size = tmp_path / "size"
    shutil.copytree(PUBLISHED, size)
    # seed 2's scratch student was not priced: its arm has two seeds
    # int8 against ls_lmmse (GM BER -1.990, 18.51 dB at 1e-3): KD seed 0 loses on GM BER, seed 1
    # on SINR, seed 2 beats it; scratch loses on GM BER.
    models = {f"kd-318M-t0.5-a0.5-T3-dmrs2-s{s}": (-2.0 - s / 10, -1.9 - s / 10, 0.2, (18.0, 19.0, 18.0)[s])
              for s in (0, 1, 2)}
    models.update({f"scratch-318M-dmrs2-s{s}": (-1.8, -1.7, 0.4, 17.0) for s in (0, 1)})
    (size / "price").mkdir(exist_ok=True)  # the published size may have its own: replaced
    io_lib.write_json(str(size / "price" / "price.json"), _price_record(models))
    the_map = kd_map.build([str(size)], "t")
    entry = the_map["sizes"][0]["int8"]
    assert the_map["sizes"][0]["beats_ls_lmmse"]["int8"] == {"kd": [2], "scratch": []}
    assert the_map["smallest_beating_ls_lmmse"]["int8"]["kd"] == [2]
    assert entry["kd"]["seeds"] == [0, 1, 2] and entry["kd"]["gm_ber"] == pytest.approx([-1.9, -2.0, -2.1])
    assert entry["kd"]["float_gm_ber"] == pytest.approx([-2.0, -2.1, -2.2])
    assert entry["scratch"]["seeds"] == [0, 1] and entry["scratch"]["cost_db_1e-2"] == [0.4, 0.4]
    assert entry["int8"]["energy_mj_per_inference"] == 5.0 and entry["float"]["inferences_per_s"] == 300
    table = kd_map.markdown(kd_map.build([str(size)], "t"))
    assert "| 319.1 | -2.000 / -1.700 | 1/3 / 0/2 | 0.200 / 0.400 | 300 / 400 | 20.00 / 5.00 | 107/107 |" in table
    # The front: (1, -1) beats (2, -0.5); (2, -1.5) is on it; (3, -1.2) is beaten by (2, -1.5).
    assert kd_map.pareto_front([(2, -0.5), (1, -1.0), (3, -1.2), (2, -1.5)]) == [(1, -1.0), (2, -1.5)]
    written = run_module("deeprx.kd_map", f"--sizes={size}", f"--out={tmp_path / 'out'}", timeout=120)
    assert written.returncode == 0, written.stderr[-2000:]
    assert os.path.getsize(tmp_path / "out" / "kd_map_pareto.png") > 10_000
