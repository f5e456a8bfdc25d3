"""The main job, python -m deeprx.study, on the tiny preset: killed (SIGKILL) during a stage,
rerun to the end, then checked artifact by artifact against the files it was built from."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, processes_naming, run_module
from deeprx.experiments import study_layout
from deeprx.core import io as io_lib
from deeprx.core import workdir as workdir_lib

ARGS = ("--flagfile=study.flags", "--preset=tiny", "--energy_source=rated:10")
MODELS = study_layout.MODELS


@pytest.fixture(scope="module")
def study(tmp_path_factory, smoke_run):
    """A study with a given teacher (the session's smoke run, as the demo takes the shipped
    one), killed once the runner stage has written part of its output, then rerun (the runner
    stage: one of the cheapest to do twice)."""
    workdir = str(tmp_path_factory.mktemp("study") / "tiny")
    args = (*ARGS, f"--teacher={smoke_run['workdir']}")
    env = dict(os.environ, PYTHONPATH=REPO)
    process = subprocess.Popen([sys.executable, "-m", "deeprx.study", *args, f"--workdir={workdir}"], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_output, partial = [], os.path.join(workdir, "runner", "teacher", "runner.json")
    deadline = time.time() + 1200
    for line in process.stdout:
        first_output.append(line)
        if line.startswith("[7/9] runner"):
            break
    while not os.path.isfile(partial) and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert os.path.isfile(partial), "".join(first_output[-30:])
    with pytest.raises(workdir_lib.Busy, match="is in use by another study"):  # one study at a time there
        with workdir_lib.hold(workdir, "study"):
            pass
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = time.time()
    time.sleep(1)
    orphans = processes_naming(workdir)
    done_before = {name: io_lib.read_json(os.path.join(workdir, name, "done.json"))
                   for name in study_layout.STAGE_NAMES[:6]}
    assert not os.path.exists(os.path.join(workdir, "runner", "done.json"))
    rerun = run_module("deeprx.study", *args, f"--workdir={workdir}", timeout=1200)
    return {"workdir": workdir, "args": args, "teacher": smoke_run["workdir"], "killed_at": killed_at,
            "orphans": orphans, "done_before": done_before, "rerun": rerun, "first_output": "".join(first_output)}


def test_killed_study_reruns_only_the_interrupted_stage(study):
    rerun, workdir = study["rerun"], study["workdir"]
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert study["orphans"] == [], "children of the killed study kept running"
    for index, name in enumerate(study_layout.STAGE_NAMES[:6]):  # finished stages: not redone
        assert f"[{index + 1}/9] {name}: finished earlier, skipped" in rerun.stdout
        assert io_lib.read_json(os.path.join(workdir, name, "done.json")) == study["done_before"][name]
    assert "[7/9] runner: test vectors, edge.runner on the CPU interpreter: latency and BER: interrupted earlier, " \
           "redoing it from a clean directory" in rerun.stdout
    for model in MODELS:  # the interrupted stage was redone from scratch, all of it
        assert os.path.getmtime(os.path.join(workdir, "runner", model, "runner.json")) > study["killed_at"]
    assert os.path.getmtime(os.path.join(workdir, "runner", "vectors.npz")) > study["killed_at"]
    assert "[9/9] report" in rerun.stdout and "study ETA" in study["first_output"]
    # The copied teacher took well under its 1 s estimate: that must not scale the next estimates
    # down (a training's estimate is at least its 20 s of process start).
    scratch = next(line for line in study["first_output"].splitlines() if line.startswith("[2/9] scratch"))
    assert int(re.search(r"\(about (\d+) s;", scratch).group(1)) >= 20, scratch
    # A third run has nothing left to do.
    again = run_module("deeprx.study", *study["args"], f"--workdir={workdir}", timeout=120)
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 9, again.stdout


def _table(report):
    """{row label: [cells]} of report.md's model table."""
    lines = report.split("## Models", 1)[1].split("\n\n", 2)[1].splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return header, {cells[0]: cells[1:] for cells in
                    ([cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:])}


def _close(text, value, decimals):
    if value is None:
        return text == "-"
    return abs(float(text.replace(",", "")) - value) <= 0.5 * 10 ** -decimals + 1e-9


def test_study_writes_every_artifact_and_its_report_matches_the_files(study):
    workdir = study["workdir"]
    read = lambda *parts: io_lib.read_json(os.path.join(workdir, *parts))  # noqa: E731
    for name in study_layout.STAGE_NAMES:
        assert read(name, "done.json")["stage"] == name
        if name not in ("report", "teacher"):  # these run no command (the given teacher is copied in)
            assert os.path.getsize(os.path.join(workdir, "logs", name + ".log")) > 0
    assert read("teacher", "done.json")["commands"] == []
    for path in ("report.md", "summary.json", "study.json", "report/pareto.png", "ber/ber.csv", "ber/ber.png",
                 "runner/vectors.npz", *(f"int8/{m}_int8.tflite" for m in MODELS),
                 *(f"edgetpu/{m}_int8.preflight.json" for m in MODELS),
                 *(f"runner/{m}/ber.csv" for m in MODELS), *(f"energy/{m}/blocks.png" for m in MODELS)):
        assert os.path.getsize(os.path.join(workdir, path)) > 0, path

    with open(os.path.join(workdir, "report.md")) as f:
        report = f.read()
    # The given teacher was copied in, not trained: same weights, named in the report.
    with open(os.path.join(study["teacher"], "model.keras"), "rb") as given, \
            open(os.path.join(workdir, "teacher", "model.keras"), "rb") as copied:
        assert given.read() == copied.read()
    assert read("teacher", "source.json")["teacher"] == study["teacher"]
    assert not os.path.isdir(os.path.join(workdir, "teacher", "checkpoints"))
    assert f"Teacher `{study['teacher']}`, trained earlier (not by this study): paper variant, width x0.125, 6 steps" \
        in report
    assert read("summary.json")["teacher"] == study["teacher"]
    header, rows = _table(report)
    assert header[0] == "model" and set(rows) == {"teacher", "student from scratch", "KD student", "ls_lmmse",
                                                  "perfect_lmmse", "ls_irc", "perfect_irc"}
    ber = read("ber", "summary.json")
    summary = read("summary.json")
    for model, label in (("teacher", "teacher"), ("scratch", "student from scratch"), ("kd", "KD student")):
        train, runner = read(model, "train.json"), read("runner", model, "runner.json")
        measured = read("energy", model, "energy.json")["measured"]
        preflight = read("edgetpu", f"{model}_int8.preflight.json")
        cells = dict(zip(header[1:], rows[label]))
        assert int(cells["parameters"].replace(",", "")) == train["parameters"]
        assert _close(cells["MFLOPs per slot"], train["flops_per_slot"] / 1e6, 1)
        assert _close(cells["GM BER"], ber[model]["gm_ber"], 3)
        assert _close(cells["SINR at BER 1e-2 [dB]"], ber[model]["sinr_at_ber_1e-2"], 1)
        assert _close(cells["int8 GM BER"], ber[f"{model}_int8"]["gm_ber"], 3)
        assert _close(cells["int8 latency [ms]"], runner["timing"]["mean_ms"], 2)
        assert _close(cells["int8 inferences/s"], runner["timing"]["inferences_per_s"], 0)
        for kind in ("float", "int8"):
            mj = 1e3 * measured[kind]["joules_per_inference"]
            assert float(cells[f"{kind} energy [mJ/inference]"]) == pytest.approx(mj, rel=5e-3)
            assert summary["models"][model][f"{kind}_mj_per_inference"] == pytest.approx(mj)
            assert "rated" in summary["models"][model][f"{kind}_energy_source"]
        assert cells["Edge TPU ops mapped"] == f"{preflight['mapped']}/{len(preflight['operators'])}"
        assert summary["models"][model]["gm_ber"] == ber[model]["gm_ber"]
    for name in ("ls_lmmse", "perfect_lmmse", "ls_irc", "perfect_irc"):
        assert _close(dict(zip(header[1:], rows[name]))["GM BER"], ber[name]["gm_ber"], 3)
    # The students share one architecture; only the edge variant maps whole onto the Edge TPU.
    assert summary["models"]["kd"]["parameters"] == summary["models"]["scratch"]["parameters"]
    assert summary["models"]["teacher"]["parameters"] > summary["models"]["kd"]["parameters"]
    for model in ("scratch", "kd"):
        assert summary["models"][model]["edgetpu_mapped_count"] == summary["models"][model]["edgetpu_operators"]
    assert summary["models"]["teacher"]["edgetpu_cut_at"] is not None
    kd = summary["kd_vs_scratch"]
    assert kd["gm_ber_difference"] == pytest.approx(ber["kd"]["gm_ber"] - ber["scratch"]["gm_ber"], abs=1e-4)
    assert f"GM BER: KD {ber['kd']['gm_ber']:.3f}, scratch {ber['scratch']['gm_ber']:.3f}" in report
    # The energy source is named in full wherever a figure of it appears.
    assert "source: rated power 10 W x measured time (estimated)" in report
    assert all(summary["models"][m][f"{kind}_energy_source"] == "rated power 10 W x measured time (estimated)"
               for m in MODELS for kind in ("float", "int8"))
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert os.path.isfile(os.path.join(workdir, image)), image
    assert io_lib.read_csv(os.path.join(workdir, "ber", "ber.csv"))


@pytest.mark.parametrize("args, message", [
    # The paper preset has study sizes (docs/cluster.md), but the shipped teacher is of the cpu scenario.
    (("--preset=paper",), "--teacher: teacher 'pretrained:teacher-cpu-1dmrs': the model was trained on another "
                          "scenario (channel, modulation differ)"),
    (("--redo=training",), "--redo: unknown stage 'training'"),
    (("--alpha=-1",), "--alpha: alpha must be >= 0"),
    (("--temperature=0",), "--temperature: temperature must be positive"),
    (("--student_steps=0",), "--student_steps: student_steps must be a positive integer"),
    (("--teacher_steps=many",), "--teacher_steps: 'many' is not an integer"),
    (("--student_flops_ratio=0.0001",), "--student_flops_ratio: a FLOP budget"),
    (("--energy_source=volts",), "--energy_source: unknown power source"),
    (("--teacher=pretrained:nope",), "--teacher: teacher 'pretrained:nope': no shipped model 'nope'"),
    (("--teacher=/nonexistent/run",), "--teacher: teacher '/nonexistent/run': no model.keras in"),
])
def test_bad_study_flags_fail_before_any_stage(tmp_path, args, message):
    workdir = str(tmp_path / "study")
    result = run_module("deeprx.study", *ARGS, f"--workdir={workdir}", *args, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not os.path.exists(workdir)


def test_a_teacher_of_another_scenario_is_refused_before_any_stage(smoke_run, tmp_path):
    workdir = str(tmp_path / "study")
    result = run_module("deeprx.study", *ARGS, f"--teacher={smoke_run['workdir']}", "--modulation=qpsk",
                        f"--workdir={workdir}", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--teacher: teacher" in result.stderr and "trained on another scenario (modulation differ)" in result.stderr
    assert not os.path.exists(workdir)


def test_the_study_trains_its_teacher_when_asked(tmp_path):
    """--teacher=train: the teacher stage runs deeprx.train with the preset's teacher size."""
    from deeprx.core import config as config_lib
    from deeprx.experiments import study_config, study_stages
    scenario = config_lib.get_preset("tiny").scenario
    config = study_config.StudyConfig(workdir=str(tmp_path / "study"), preset_name="tiny", scenario=scenario,
                                      scenario_args=("--preset=tiny",), size=study_config.SIZES["tiny"])
    assert config.trains_teacher
    context = study_stages.Context(config, "teacher", log=lambda *a, **k: None)
    os.makedirs(context.dir)
    study_stages.run_teacher(context)
    train = io_lib.read_json(os.path.join(context.dir, "train.json"))
    assert train["steps"] == config.size.teacher_steps and os.path.isfile(os.path.join(context.dir, "model.keras"))
    assert context.commands[0].startswith("python -m deeprx.train --preset=tiny --model_variant=paper")


def test_a_workdir_of_other_settings_is_refused(study):
    result = run_module("deeprx.study", *study["args"], f"--workdir={study['workdir']}", "--alpha=0.1", timeout=120)
    assert result.returncode == 2 and "holds a study with other settings (alpha differ" in result.stderr
    with open(os.path.join(study["workdir"], "study.json")) as f:
        assert json.load(f)["settings"]["alpha"] == 0.5


def test_every_preset_has_study_sizes():
    """deeprx.study looks its sizes up by --preset, whose values are the presets."""
    from deeprx.core import config
    from deeprx.experiments import study_config
    assert set(study_config.SIZES) == set(config.PRESETS)
