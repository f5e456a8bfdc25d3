"""`python -m deeprx.sweep`: the four-step KD study on the tiny preset, rerun, bad flags."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, processes_naming, run_module
from deeprx.core import workdir as workdir_lib
from deeprx.experiments import kd_curves
from deeprx.experiments import kd_summary
from deeprx.experiments import sweep as sweep_lib

# sweep-tiny.flags with the smallest grids that still cover every step and both DMRS counts
# (one seed: 10 runs; the seed axis is the same loop as the DMRS axis of step 4).
TINY = ["--flagfile=sweep-tiny.flags", "--alphas=0.1,0.5", "--temperatures=3", "--seeds=0", "--parallel=2"]
STEP_FILES = ("alpha_T.csv", "alpha_T.png", "ber_vs_sinr.csv", "ber_vs_sinr_dmrs1.png", "ber_vs_sinr_dmrs2.png",
              "student_size.csv", "student_size.png", "teacher_size.csv", "teacher_size.png", "kd_summary.json",
              "kd_summary.md", "kd_curves.csv", "kd_curves_dmrs1.png", "kd_curves_dmrs2.png")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("sweep") / "kd")
    result = run_module("deeprx.sweep", *TINY, f"--workdir={workdir}", timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def _table(workdir, name):
    with open(os.path.join(workdir, name), newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_sweep_writes_every_step(tiny_sweep):
    workdir, result = tiny_sweep
    for name in STEP_FILES:
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, "kd_summary.json")) as f:
        summary = json.load(f)
    assert sorted((r["seed"], r["num_dmrs"]) for r in summary["runs"]) == [(0, 1), (0, 2)]
    with open(os.path.join(workdir, "kd_summary.md")) as f:
        text = f.read()
    table, rest = text.split("\n\n", 1)[1].split("\nFinal evaluation", 1)
    final_text, budgets_text = rest.split("\nOver training budgets", 1)
    assert kd_curves.markdown(summary["budgets"]) in budgets_text
    assert kd_summary.final_table(summary["final"]) in final_text
    assert [(r["num_dmrs"], r["seeds"], r["gm_ber_diff_n"]) for r in summary["final"]] == [(1, 1, 1), (2, 1, 1)]
    assert table == kd_summary.kd_table(summary["runs"]) and table in result.stdout
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("| 1", "0"), ("| 2", "0")]
    for row, entry in zip(rows, sorted(summary["runs"], key=lambda e: (e["num_dmrs"], e["seed"]))):
        assert float(row[4]) == pytest.approx(entry["gm_ber_kd"] - entry["gm_ber_scratch"], abs=1e-3)
    for entry in summary["runs"]:
        assert set(entry) == {"seed", "num_dmrs", "gm_ber_kd", "gm_ber_scratch", "gain_db_at_1e-2", "gain_db_at_1e-3",
                              "kd_share"}
        assert -10 < entry["gm_ber_kd"] < 0 and -10 < entry["gm_ber_scratch"] < 0
        assert 0 < entry["kd_share"] < 1 and f"| {entry['kd_share']:.0%} |" in table
    # Learning curves every 2 of the 4 student steps: KD vs scratch at both budgets, per DMRS count.
    budgets = _table(workdir, "kd_curves.csv")
    assert [(r["num_dmrs"], r["step"], r["seeds"]) for r in budgets] == [
        ("1", "2", "1"), ("1", "4", "1"), ("2", "2", "1"), ("2", "4", "1")]
    for row, budget in zip(budgets, summary["budgets"]):
        assert float(row["gm_ber_diff_mean"]) == budget["gm_ber_diff_mean"]
        assert budget["gm_ber_diff_ci_low"] is None and budget["gm_ber_diff_n"] == 1  # one seed: no interval
    # Step 4 distills with the best (alpha, T) of step 3.
    alpha_t = _table(workdir, "alpha_T.csv")
    best = min((r for r in alpha_t if r["grid"] != "none (scratch)"), key=lambda r: float(r["gm_ber"]))
    assert (summary["alpha"], summary["temperature"]) == (float(best["alpha"]), float(best["temperature"]))
    # KD and scratch students are the same network; every step-4 curve shares the SINR grid.
    assert len({r["parameters"] for r in alpha_t}) == 1
    curves = _table(workdir, "ber_vs_sinr.csv")
    roles = {(r["num_dmrs"], r["role"], r["seed"]) for r in curves}
    for dmrs in ("1", "2"):
        assert {(dmrs, "teacher", ""), (dmrs, "ls_lmmse", ""), (dmrs, "perfect_lmmse", "")} <= roles
        assert {(dmrs, role, "0") for role in ("kd_student", "scratch_student")} <= roles
    assert len({r["sinr_db"] for r in curves}) == 4
    # Step 1: the base student and the extra size; step 2: the base teacher and a smaller one.
    sizes = _table(workdir, "student_size.csv")
    assert [r["role"] for r in sizes] == ["teacher", "scratch student", "scratch student"]
    assert float(sizes[1]["mflops"]) < float(sizes[2]["mflops"]) < float(sizes[0]["mflops"])
    teachers = _table(workdir, "teacher_size.csv")
    assert len(teachers) == 2 and teachers[0]["teacher_mflops"] < teachers[1]["teacher_mflops"]
    assert len({r["mflops"] for r in teachers}) == 1  # one student size for every teacher
    assert "Sweep done: 10 runs trained now" in result.stdout
    # Whatever needs no other run trains first, teachers first; KD students wait for their teacher.
    ready = [line.split()[1].rstrip(":") for line in result.stdout.splitlines() if "[ready]" in line and
             ": training (" in line]
    assert [name.split("-")[0] for name in ready] == ["teacher"] * 3 + ["scratch"] * 3, ready


def test_publish_copies_results_but_no_weights(tiny_sweep, tmp_path):
    workdir, _ = tiny_sweep
    dest = tmp_path / "published"
    result = run_module("deeprx.sweep", *TINY, f"--workdir={workdir}", f"--publish={dest}", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training" not in result.stdout and "and 10 finished runs" in result.stdout
    assert sorted(os.listdir(dest)) == sorted(STEP_FILES + ("by-run",))
    assert len(os.listdir(dest / "by-run")) == 10
    for run in os.listdir(dest / "by-run"):
        assert sorted(os.listdir(dest / "by-run" / run)) == ["ber.csv", "ber.png", "config.json", "curve.csv",
                                                              "summary.json", "sweep_command.txt", "train.json"], run
    assert not [path for path in dest.rglob("*") if path.suffix in (".keras", ".index")]


def test_rerun_skips_finished_runs_and_rejects_changed_flags(tiny_sweep):
    workdir, _ = tiny_sweep
    again = run_module("deeprx.sweep", *TINY, f"--workdir={workdir}", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Sweep done: 0 runs trained now" in again.stdout and "training" not in again.stdout
    os.remove(os.path.join(workdir, "runs", "scratch-6.56M-dmrs2-s0", "eval", "summary.json"))
    changed = run_module("deeprx.sweep", *TINY, f"--workdir={workdir}", "--student_steps=5", timeout=300)
    assert changed.returncode != 0 and "holds a run of another command" in changed.stderr


def test_flag_kd_trains_with_the_ready_runs_and_sigterm_stops_the_sweep(tiny_sweep, tmp_path):
    """--fig6_kd=flags: step 4's KD students of trained teachers start with the other ready runs,
    as do step 2's. SIGTERM (a nohup'd sweep ignores SIGINT) stops the sweep and its training
    processes; the same command then finishes steps 2 and 4, with step 4's KD+hint arm (1 DMRS)
    compared with its KD and scratch twins."""
    finished_sweep, _ = tiny_sweep
    workdir = str(tmp_path / "kd")
    for name in os.listdir(os.path.join(finished_sweep, "runs")):
        if name.startswith("teacher-"):
            shutil.copytree(os.path.join(finished_sweep, "runs", name), os.path.join(workdir, "runs", name))
    args = (*TINY, "--sweep_steps=2,4", "--fig6_kd=flags", "--hint_arm_weight=0.5", "--hint_arm_dmrs_counts=1",
            f"--workdir={workdir}")
    process = subprocess.Popen([sys.executable, "-m", "deeprx.sweep", *args], cwd=REPO,
                               env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if ": training (" in line:
            break
    assert lines[-1].startswith("  [ready] kd-") and "-a0.5-T3-dmrs1-s0:" in lines[-1], "".join(lines)
    with pytest.raises(workdir_lib.Busy, match="is in use by another sweep driver"):  # one driver at a time
        with workdir_lib.hold(workdir, "sweep driver"):
            pass
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 1 and "stopped by signal 15" in output, output[-2000:]
    assert processes_naming(workdir) == []
    rerun = run_module("deeprx.sweep", *args, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    ready = [line.split()[1].rstrip(":") for line in rerun.stdout.splitlines()
             if line.startswith("  [ready]") and ": training (" in line]
    # Step 2's KD student of the width-0.1 teacher, then step 4's seed by seed: per DMRS count
    # the KD student beside its scratch twin (1 DMRS: also step 2's), then the KD+hint student.
    assert [name.split("-")[0] for name in ready] == ["kd", "kd", "scratch", "kd", "kd", "scratch"], ready
    assert [name for name in ready if "-hint0.5-" in name] == [ready[3]] and ready[3].endswith("-dmrs1-s0")
    assert [name.rsplit("-", 2)[-2] for name in ready[1:]] == ["dmrs1"] * 3 + ["dmrs2"] * 2, ready
    assert "-t0.1-" in ready[0] and "[2 teacher_size]" in rerun.stdout
    assert ": training (" not in "".join(line for line in rerun.stdout.splitlines(True)
                                         if line.startswith("  [2 teacher_size]"))
    assert len(_table(workdir, "teacher_size.csv")) == 2
    with open(os.path.join(workdir, "kd_summary.json")) as f:
        summary = json.load(f)
    assert (summary["alpha"], summary["temperature"], summary["chosen_by"]) == (0.5, 3.0, "--alpha and --temperature")
    assert len(summary["runs"]) == 2 and not os.path.exists(os.path.join(workdir, "alpha_T.csv"))
    # The hint arm: its runs in kd_summary, its budgets against KD and scratch, 1 DMRS only.
    hint, = summary["hint"]["runs"]
    assert summary["hint"]["kd_feature_weight"] == 0.5 and (hint["num_dmrs"], hint["seed"]) == (1, 0)
    kd_dmrs1, = [e for e in summary["runs"] if e["num_dmrs"] == 1]
    assert hint["gm_ber_kd"] == kd_dmrs1["gm_ber_kd"] and hint["gm_ber_hint"] != hint["gm_ber_kd"]
    assert 0 < hint["kd_share"] < 1 and 0 < hint["feature_share"] < 1
    budgets = _table(workdir, "kd_curves.csv")
    assert sorted({(r["comparison"], r["num_dmrs"]) for r in budgets}) == [
        ("KD - scratch", "1"), ("KD - scratch", "2"), ("KD+hint - KD", "1"), ("KD+hint - scratch", "1")]
    by = {(r["comparison"], r["step"]): float(r["gm_ber_diff_mean"]) for r in budgets if r["num_dmrs"] == "1"}
    for step in ("2", "4"):  # differences of the same curves: (hint - KD) + (KD - scratch) = hint - scratch
        assert by["KD+hint - KD", step] + by["KD - scratch", step] == pytest.approx(by["KD+hint - scratch", step],
                                                                                 abs=2e-4)
    plots = sorted(name for name in os.listdir(workdir) if name.startswith("kd_curves") and name.endswith(".png"))
    assert plots == ["kd_curves_dmrs1.png", "kd_curves_dmrs2.png", "kd_curves_kd_hint_vs_kd_dmrs1.png",
                     "kd_curves_kd_hint_vs_scratch_dmrs1.png"]
    with open(os.path.join(workdir, "kd_summary.md")) as f:
        assert kd_summary.hint_table(summary["hint"]["runs"]) in f.read()


@pytest.mark.parametrize("flag, needle", [
    ("--temperatures=1,0", "--temperatures: every value must be positive"),
    ("--alphas=-1", "--alphas: every value must be >= 0"),
    ("--seeds=0,x", "--seeds: 'x' is not a number"),
    ("--seeds=1,1", "--seeds: values repeat"),
    ("--dmrs_counts=3", "--dmrs_counts: every value must be 1 or 2"),
    ("--student_ratios=1e-6", "--student_ratios: a FLOP budget"),
    ("--model_mflops=5", "--model_mflops"),
    ("--alphas=0.1,5", "--alphas: alpha must be in [0, 1] for the hinton form"),
    ("--dmrs_teachers=2", "--dmrs_teachers: expected N:MODEL such as 2:pretrained:teacher-cpu-2dmrs, got '2'"),
    ("--dmrs_teachers=1:runs/x", "--dmrs_teachers: '1:runs/x': give each DMRS count other than --teacher's (1)"),
    ("--dmrs_teachers=2:/nonexistent", "--dmrs_teachers: '/nonexistent' is not a finished run"),
    ("--dmrs_teachers=2:pretrained:nope", "--dmrs_teachers: "),
    ("--hint_arm_weight=-1", "--hint_arm_weight: must be >= 0"),
    ("--hint_arm_dmrs_counts=1", "--hint_arm_dmrs_counts: give --hint_arm_weight > 0 too"),
])
def test_bad_sweep_flags_fail_before_compute(tmp_path, flag, needle):
    result = run_module("deeprx.sweep", "--flagfile=sweep-tiny.flags", f"--workdir={tmp_path}/kd", flag, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr
    assert not os.path.exists(f"{tmp_path}/kd")


def test_gain_is_scratch_sinr_minus_kd_sinr():
    kd = {"gm_ber": -2.0, "sinr_at_ber_1e-2": 10.0, "sinr_at_ber_1e-3": None}
    scratch = {"gm_ber": -1.5, "sinr_at_ber_1e-2": 12.5, "sinr_at_ber_1e-3": 20.0}
    assert kd_summary.kd_entry(1, 2, kd, scratch) == {
        "seed": 1, "num_dmrs": 2, "gm_ber_kd": -2.0, "gm_ber_scratch": -1.5,
        "gain_db_at_1e-2": 2.5, "gain_db_at_1e-3": None, "kd_share": None}
    assert kd_summary.kd_table([kd_summary.kd_entry(1, 2, kd, scratch)]).rstrip().endswith("| not recorded |")


def test_final_evaluations_are_paired_by_seed_per_dmrs_count():
    def entry(seed, dmrs, kd, scratch, gain):
        return {"seed": seed, "num_dmrs": dmrs, "gm_ber_kd": kd, "gm_ber_scratch": scratch,
                "gain_db_at_1e-2": gain, "gain_db_at_1e-3": None, "kd_share": 0.2}
    rows = kd_summary.final_rows([entry(1, 2, -2.0, -2.1, -0.5), entry(0, 2, -2.0, -2.0, None),
                                  entry(2, 2, -2.2, -2.0, 1.5), entry(0, 1, -1.1, -1.0, 0.2)])
    assert [(r["num_dmrs"], r["seeds"]) for r in rows] == [(1, 1), (2, 3)]
    two = rows[1]
    assert two["gm_ber_diff_by_seed"] == "0:+0.0000 1:+0.1000 2:-0.2000"
    mean, low, high, n = kd_curves.mean_interval([0.0, 0.1, -0.2])
    assert (two["gm_ber_diff_mean"], two["gm_ber_diff_ci_low"], two["gm_ber_diff_ci_high"]) == pytest.approx(
        (mean, low, high), abs=1e-4)
    assert two["gain_db_at_1e-2_n"] == 2 and two["gain_db_at_1e-2_mean"] == pytest.approx(0.5)  # seed 0: no crossing
    assert two["gain_db_at_1e-3_mean"] is None
    table = kd_summary.final_table(rows)
    assert "| 2 | 3 | -0.033 [" in table and "| +0.500 [" in table and "| none reached |" in table


def test_given_teachers_of_each_dmrs_count_are_used_not_trained(tmp_path):
    """--teacher gives the base DMRS count's teacher, --dmrs_teachers the others' (e.g. the
    shipped 1- and 2-DMRS teachers): step 4 distils from them instead of training its own."""
    import dataclasses
    from deeprx.core import config
    from deeprx.cli import train_flags
    sweep = sweep_lib.Sweep(
        workdir=str(tmp_path), scenario=config.get_preset("tiny").scenario, base_width=0.5, base_dmrs=1,
        base_ratio=0.3, base_alpha=0.5, base_temperature=3.0, base_teacher_dir="pretrained:t1", seeds=(0,),
        student_steps=1, student_ratios=(0.3,), teacher_widths=(0.35, 0.5), alphas=(0.5,), temperatures=(3.0,),
        dmrs_counts=(1, 2), fig6_kd="flags", steps=(4,),
        train_values=tuple(dict({name: None for name in train_flags.TEACHER_FLAGS + train_flags.KD_FLAGS},
                                depth_multiplier=2, model_variant="paper").items()),
        dmrs_teacher_dirs=((2, "pretrained:t2"),))
    one, two = sweep_lib.teacher_run(sweep, 0.5, 1), sweep_lib.teacher_run(sweep, 0.5, 2)
    assert (one.external, one.workdir) == (True, "pretrained:t1")
    assert (two.external, two.workdir) == (True, "pretrained:t2")
    kd = sweep_lib.kd_run(sweep, two, 1e6, 0.5, 3.0, 2, 0)
    assert "--teacher=pretrained:t2" in kd.args and "--num_dmrs=2" in kd.args
    other_width = sweep_lib.teacher_run(sweep, 0.35, 2)
    assert not other_width.external and other_width.workdir == os.path.join(str(tmp_path), "runs", "teacher-w0.35-dmrs2")
    trained = sweep_lib.teacher_run(dataclasses.replace(sweep, dmrs_teacher_dirs=()), 0.5, 2)
    assert not trained.external and trained.workdir == os.path.join(str(tmp_path), "runs", "teacher-w0.5-dmrs2")


def test_an_edge_sweep_trains_kd_and_scratch_students_of_the_same_edge_network(tmp_path):
    """--student_variant=edge (sweep-kd-curves.flags): the KD student and its scratch twin are
    the same edge-variant network, as deeprx.train builds them from the sweep's arguments."""
    from deeprx.core import config
    from deeprx.cli import train_flags
    values = dict({name: None for name in train_flags.TEACHER_FLAGS + train_flags.KD_FLAGS}, preset="cpu", depth_multiplier=2,
                  model_variant="paper", width_multiplier=0.5, student_variant="edge", alpha=0.5,
                  temperature=3.0, kd_form="hinton", kd_reduction="mean", student_flops_ratio=11 / 30)
    sweep = sweep_lib.Sweep(
        workdir=str(tmp_path), scenario=config.get_preset("cpu").scenario, base_width=0.5, base_dmrs=1,
        base_ratio=11 / 30, base_alpha=0.5, base_temperature=3.0, base_teacher_dir="pretrained:teacher-cpu-1dmrs",
        seeds=(0,), student_steps=1, student_ratios=(11 / 30,), teacher_widths=(0.5,), alphas=(0.5,),
        temperatures=(3.0,), dmrs_counts=(1,), fig6_kd="flags", steps=(4,), train_values=tuple(values.items()))
    teacher = sweep_lib.teacher_run(sweep, 0.5, 1)
    kd = sweep_lib.kd_run(sweep, teacher, sweep.base_student_flops, 0.5, 3.0, 1, 0)
    scratch = sweep_lib.scratch_run(sweep, sweep.base_ratio, 1, 0)
    assert "--student_variant=edge" in kd.args and "--model_variant=edge" in scratch.args
    script = ("import json, sys\nfrom absl import flags\nfrom deeprx import train\ntrain.define_flags()\n"
              "flags.FLAGS(['train', *json.loads(sys.argv[1])])\n"
              "print(repr(train.run_from_flags().model_config))\n")
    configs = []
    for run in (kd, scratch):
        result = subprocess.run([sys.executable, "-c", script, json.dumps(list(run.args))], cwd=REPO,
                                env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        configs.append(result.stdout.strip().splitlines()[-1])
    assert configs[0] == configs[1] and "variant='edge'" in configs[0], configs
