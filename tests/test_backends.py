"""`deeprx.sweep --backend=slurm|ray` against real clusters started here (tests/clusters.py):
the same KD summary as --backend=local, one job array, a rerun that submits nothing, a
driver killed mid-run and rerun (re-attached, nothing trained twice), a Slurm time-limit
signal (checkpoint, requeue, resume), multiworker training across the tasks of `srun -n 2`,
and one clear line for each kind of bad input before anything is submitted."""

import glob
import json
import os
import subprocess
import sys
import time

import pytest

from clusters import RayCluster, SlurmCluster
from conftest import REPO, run_module

# sweep-tiny.flags' step 4 for one seed and one DMRS count: a KD student and its scratch twin,
# trained long enough (24 steps) to be stopped in the middle.
STEP4 = ["--flagfile=sweep-tiny.flags", "--sweep_steps=4", "--fig6_kd=flags", "--seeds=0", "--dmrs_counts=1",
         "--parallel=2", "--student_steps=24", "--curve_every=8"]


def _summary(workdir):
    with open(os.path.join(workdir, "kd_summary.json")) as f:
        return {(r["seed"], r["num_dmrs"]): r for r in json.load(f)["runs"]}


def _headers(workdir, run_glob):
    """How many times each run's training was started: the `$ python -m deeprx.train` headers
    of its log."""
    return {os.path.basename(path): open(path).read().count("$ python -m deeprx.train")
            for path in glob.glob(os.path.join(workdir, "logs", run_glob))}


def _assert_same_numbers(workdir, local_workdir):
    """GM BER equal to 3 decimals (a run's thread count moves the 4th)."""
    got, expected = _summary(workdir), _summary(local_workdir)
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        for name in ("gm_ber_kd", "gm_ber_scratch"):
            assert abs(got[key][name] - row[name]) < 5e-4, (name, got[key], row)


@pytest.fixture(scope="module")
def local(smoke_run, tmp_path_factory):
    """The step-4 sweep on this machine, from the smoke teacher every test session trains once
    (sweep-tiny.flags' teacher is smoke.flags'): the reference numbers."""
    workdir = str(tmp_path_factory.mktemp("local") / "sweep")
    result = run_module("deeprx.sweep", *STEP4, f"--teacher={smoke_run['workdir']}", f"--workdir={workdir}",
                        timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {"workdir": workdir, "teacher": smoke_run["workdir"]}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = SlurmCluster.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def _sweep(cluster, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "deeprx.sweep", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=dict(cluster.env, PYTHONPATH=REPO))


def test_a_slurm_sweep_survives_its_driver_and_a_time_limit_and_gives_the_local_numbers(local, slurm, tmp_path):
    """One job array for the KD student and its scratch twin. The driver is SIGKILLed once
    both train; Slurm then sends the KD run's job the time-limit signal (USR2): the training
    checkpoints at its step and the job is requeued. The rerun driver re-attaches to both jobs,
    submits none, and every run finishes: KD trained before the signal and resumed once after
    it, scratch once, and their GM BERs are the local run's. A third run submits nothing."""
    workdir = str(tmp_path / "sweep")
    args = (*STEP4, f"--teacher={local['teacher']}", "--backend=slurm", "--time_limit_min=30", f"--workdir={workdir}")
    driver = subprocess.Popen([sys.executable, "-m", "deeprx.sweep", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=dict(slurm.env, PYTHONPATH=REPO))
    kd_log = glob.escape(workdir) + "/logs/kd-*.log"
    deadline = time.time() + 600
    while time.time() < deadline and not any("step 1/24" in open(p).read() for p in glob.glob(kd_log)):
        time.sleep(0.5)
    driver.kill()
    driver.wait()
    records = {os.path.basename(os.path.dirname(p)): json.load(open(p))
               for p in glob.glob(os.path.join(workdir, "runs", "*", "backend_job.json"))}
    assert len(records) == 2 and {r["backend"] for r in records.values()} == {"slurm"}, records
    array, = {r["job_id"].split("_")[0] for r in records.values()}
    assert {r["job_id"] for r in records.values()} == {f"{array}_{i}" for i in (0, 1)}
    kd_job = next(r["job_id"] for name, r in records.items() if name.startswith("kd-"))
    assert slurm.jobs()[kd_job] == "RUNNING"
    subprocess.run(["scancel", "--signal=USR2", kd_job], env=slurm.env, check=True)
    deadline = time.time() + 120
    while time.time() < deadline and slurm.jobs().get(kd_job) != "PENDING":
        time.sleep(0.5)
    # Slurm holds a requeued job for two minutes (BeginTime): the rerun driver finds it pending
    # (so it cannot have finished yet) and re-attaches; then the test lets it start.
    rerun = subprocess.Popen([sys.executable, "-m", "deeprx.sweep", *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env=dict(slurm.env, PYTHONPATH=REPO, PYTHONUNBUFFERED="1"))
    output = []
    for line in rerun.stdout:
        output.append(line)
        if f"re-attached to slurm job {kd_job}" in line:
            subprocess.run(["scontrol", "update", f"JobId={kd_job}", "StartTime=now"], env=slurm.env, check=True)
            break
    output.append(rerun.communicate(timeout=900)[0])
    stdout = "".join(output)
    assert rerun.returncode == 0, stdout[-3000:]
    assert f"re-attached to slurm job {kd_job}" in stdout and "training on slurm" not in stdout
    kd_text = open(glob.glob(kd_log)[0]).read()
    assert "asked to stop (SIGTERM or SIGUSR2); checkpoint saved" in kd_text and "Resuming from checkpoint at step" in kd_text
    assert sorted(_headers(workdir, "*.log").values()) == [1, 2]  # scratch once; KD before and after the requeue
    assert glob.glob(os.path.join(workdir, "slurm", "*_log.out"))
    _assert_same_numbers(workdir, local["workdir"])

    known = slurm.jobs()
    again = _sweep(slurm, *args)
    assert again.returncode == 0 and "training on slurm" not in again.stdout, again.stdout[-2000:]
    assert slurm.jobs() == known


def test_multiworker_training_reads_its_cluster_from_an_srun_step(slurm, tmp_path):
    workdir = str(tmp_path / "run")
    result = subprocess.run(["srun", "-n", "2", "--cpus-per-task=1", sys.executable, "-m", "deeprx.train",
                             "--flagfile=smoke.flags", "--distribute=multiworker", "--noeval", f"--workdir={workdir}"],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env=dict(slurm.env, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("on 2 replicas (multiworker)") == 2 and result.stdout.count("step 6/6") == 1
    assert os.path.isfile(os.path.join(workdir, "model.keras"))


def test_a_ray_sweep_gives_the_local_numbers_and_reattaches(local, tmp_path):
    reason = RayCluster.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = RayCluster().start()
    try:
        workdir = str(tmp_path / "sweep")
        args = (*STEP4, f"--teacher={local['teacher']}", "--backend=ray", f"--ray_address={cluster.address}",
                f"--workdir={workdir}")
        result = _sweep(cluster, *args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert result.stdout.count("training on ray") == 2
        _assert_same_numbers(workdir, local["workdir"])
        records = [json.load(open(p)) for p in glob.glob(os.path.join(workdir, "runs", "*", "backend_job.json"))]
        assert len(records) == 2 and {r["backend"] for r in records} == {"ray"}
        bad = _sweep(cluster, *STEP4, "--backend=ray", "--cpus_per_run=64", f"--ray_address={cluster.address}",
                     f"--workdir={tmp_path}/other", timeout=300)
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
            f"error: --backend: a run asks for 64 CPUs (--cpus_per_run) but the largest node of the Ray cluster at "
            f"{cluster.address} has 2")
    finally:
        cluster.stop()


def _error_line(result):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


def test_bad_backend_input_fails_in_one_line_before_anything_is_submitted(slurm, tmp_path):
    base = ["--flagfile=sweep-tiny.flags", f"--workdir={tmp_path}/sweep"]
    unknown = run_module("deeprx.sweep", *base, "--backend=kubernetes", timeout=120)
    assert "--backend" in _error_line(unknown) and "local" in _error_line(unknown)
    no_slurm = subprocess.run([sys.executable, "-m", "deeprx.sweep", *base, "--backend=slurm"], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=REPO, PATH=os.path.dirname(sys.executable)))
    assert _error_line(no_slurm).startswith("error: --backend: --backend=slurm needs Slurm's commands, and sbatch")
    silent = run_module("deeprx.sweep", *base, "--backend=ray", "--ray_address=127.0.0.1:9", timeout=120)
    assert _error_line(silent).startswith("error: --backend: the Ray cluster at --ray_address=127.0.0.1:9 does not "
                                          "answer")
    too_big = _sweep(slurm, *base, "--backend=slurm", "--cpus_per_run=64", timeout=120)
    assert _error_line(too_big) == ("error: --backend: a run asks for 64 CPUs (--cpus_per_run) but the largest node "
                                    f"of partition 'debug' has {os.cpu_count()}")
    assert not os.path.isdir(os.path.join(tmp_path, "sweep", "runs"))  # nothing trained or submitted
