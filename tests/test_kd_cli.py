"""`python -m deeprx.train --flagfile=kd.flags` through the smoke settings."""

import json
import os

import pytest

from conftest import run_module

KD_SMOKE = ["--flagfile=kd.flags", "--flagfile=smoke.flags"]


@pytest.fixture(scope="module")
def kd_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kd")
    teacher, student = str(root / "teacher"), str(root / "student")
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={teacher}", "--train_teacher_if_missing",
                        f"--workdir={student}")
    assert result.returncode == 0, result.stderr[-3000:]
    return teacher, student, result


def test_kd_flags_train_the_missing_teacher_then_the_student(kd_run):
    teacher, student, result = kd_run
    assert "training it first" in result.stdout and "distilling from" in result.stdout
    assert "distillation_loss" in result.stdout
    for run in (teacher, student):
        for name in ("model.keras", "train.json", "eval/summary.json", "checkpoints/checkpoint"):
            assert os.path.exists(os.path.join(run, name)), (run, name)
    with open(os.path.join(teacher, "train.json")) as f:
        teacher_flops = json.load(f)["flops_per_slot"]
    with open(os.path.join(student, "train.json")) as f:
        trained = json.load(f)
    student_flops = trained["flops_per_slot"]
    assert student_flops == pytest.approx(11 / 30 * teacher_flops, rel=0.10)
    # The KD term's share of the loss and of the gradient norm, logged and in train.json.
    assert "kd_share" in result.stdout and "kd_grad_share" in result.stdout
    assert 0 < trained["final_kd_share"] < 1 and 0 < trained["final_kd_grad_share"] < 1
    with open(os.path.join(student, "config.json")) as f:
        settings = json.load(f)
    kd = settings["kd"]
    # The deployable student by default: the edge variant, from the paper-variant teacher of teacher.flags.
    with open(os.path.join(teacher, "config.json")) as f:
        assert (json.load(f)["model"]["variant"], settings["model"]["variant"]) == ("paper", "edge")
    assert settings["scenario"]["dmrs"]["num_symbols"] == 2
    assert (kd["alpha"], kd["temperature"], kd["form"], kd["reduction"]) == (0.5, 3.0, "hinton", "mean")


def test_kd_rerun_resumes_and_reuses_the_teacher(kd_run):
    teacher, student, _ = kd_run
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={teacher}", f"--workdir={student}",
                        "--steps=7", "--noeval")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from checkpoint at step 6" in result.stdout and "training it first" not in result.stdout


@pytest.mark.parametrize("flag, needle", [
    ("--temperature=0", "--temperature: temperature must be positive"),
    ("--alpha=-1", "--alpha: alpha must be >= 0"),
    ("--kd_form=softmax", "--kd_form"),
])
def test_bad_kd_flags_fail_before_compute(tmp_path, flag, needle):
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={tmp_path}/t", f"--workdir={tmp_path}/s", flag,
                        timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and needle in lines[0], result.stderr
    assert not os.path.exists(f"{tmp_path}/s")


def test_missing_teacher_names_the_command_that_trains_it(tmp_path):
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={tmp_path}/t", f"--workdir={tmp_path}/s",
                        timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1
    assert lines[0].startswith("error: --teacher: no trained teacher")
    assert "python -m deeprx.train --preset=tiny" in lines[0] and f"--workdir={tmp_path}/t" in lines[0]
    assert not os.path.exists(f"{tmp_path}/s")


def test_teacher_of_another_grid_is_rejected(kd_run, tmp_path):
    teacher, _, _ = kd_run
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={teacher}", "--modulation=qpsk",
                        f"--workdir={tmp_path}/s", timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "trained on another scenario (modulation differ)" in lines[0]


def test_a_teacher_teaches_on_another_prb_count(kd_run, tmp_path):
    """The fully convolutional teacher (2 PRB here, 8 PRB shipped for the cpu preset) runs on
    the student's grid: the study distils demo students (4 PRB) from the shipped teacher."""
    teacher, _, _ = kd_run
    student = str(tmp_path / "student-4prb")
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={teacher}", "--num_prb=4", "--steps=2", "--noeval",
                        f"--workdir={student}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distilling from" in result.stdout and "distillation_loss" in result.stdout
    with open(os.path.join(student, "config.json")) as f:
        assert json.load(f)["scenario"]["carrier"]["num_prb"] == 4


def test_an_edge_variant_student_from_a_paper_teacher(kd_run, tmp_path):
    teacher, _, _ = kd_run
    student = str(tmp_path / "edge-student")
    result = run_module("deeprx.train", *KD_SMOKE, f"--teacher={teacher}", "--student_variant=edge", "--steps=2",
                        "--noeval", f"--workdir={student}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(teacher, "config.json")) as f:
        teacher_model = json.load(f)["model"]
    with open(os.path.join(student, "config.json")) as f:
        student_model = json.load(f)["model"]
    assert teacher_model["variant"] == "paper" and student_model["variant"] == "edge"
    assert student_model["width_multiplier"] < teacher_model["width_multiplier"]
