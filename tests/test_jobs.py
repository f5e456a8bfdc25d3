"""The one child-process runner (deeprx.core.jobs) that sweep, ablation, study and the
benchmarks share: log file, echo, the tail on failure, stop, death with the parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, processes_naming
from deeprx.core import jobs


def _module(tmp_path, name, code):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    return dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")


def test_a_failing_child_raises_with_its_command_and_the_tail_of_its_log(tmp_path):
    env = _module(tmp_path, "failing_child", """
        import sys
        print("WARNING: All log messages before absl::InitializeLog() is called go to STDERR")
        for i in range(20):
            print("line", i)
        sys.exit(3)
    """)
    log = tmp_path / "logs" / "child.log"
    echoed = []
    with pytest.raises(jobs.JobError) as error:
        jobs.run(("failing_child", "--flag=1"), str(log), env=env, echo=echoed.append)
    message = str(error.value)
    assert "`python -m failing_child --flag=1` failed (exit status 3)" in message and str(log) in message
    assert "line 19" in message and "line 11" not in message  # the last lines only
    assert echoed == [f"line {i}" for i in range(20)]  # start-up chatter is not echoed
    text = log.read_text()
    assert text.startswith("\n$ python -m failing_child --flag=1\n") and "WARNING: All log" in text
    again = tmp_path / "ok.py"
    again.write_text("print('fine')\n")
    assert jobs.run(("ok",), str(log), env=env) == "python -m ok"
    assert log.read_text().endswith("$ python -m ok\nfine\n")  # appended, not overwritten
    assert text in log.read_text()


def test_stop_ends_a_running_child(tmp_path):
    env = _module(tmp_path, "sleeper", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    job = jobs.Job(("sleeper",), str(tmp_path / "sleeper.log"), env=env)
    deadline = time.time() + 30
    while "up" not in job.tail and time.time() < deadline:
        time.sleep(0.05)
    assert job.running() and job.tail == ["up"]
    start = time.time()
    job.stop()
    assert not job.running() and job.process.returncode == -signal.SIGTERM and time.time() - start < 10


def test_a_child_dies_with_its_parent(tmp_path):
    marker = str(tmp_path / "orphan-marker")
    env = _module(tmp_path, "sleeper", "import time, sys\nprint('up', flush=True)\ntime.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from deeprx.core import jobs
        job = jobs.Job(("sleeper", {marker!r}), {marker + '.log'!r})
        print(job.process.pid, flush=True)
        time.sleep(120)
    """)], env=env, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert child in processes_naming(marker)
    parent.kill()  # SIGKILL: the parent runs no clean-up of its own
    parent.wait()
    deadline = time.time() + 10
    while child in processes_naming(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert child not in processes_naming(marker)


def test_a_long_run_reports_its_progress_from_its_log(tmp_path):
    """Runner prints, every progress_every seconds, each running run's last step line."""
    env = _module(tmp_path, "stepper", """
        import time
        print("WARNING: start-up chatter", flush=True)
        for step in (1, 2, 3):
            print(f"step {step}/3 | loss 0.5 | ETA 0:00:0{3 - step}", flush=True)
            time.sleep(0.8)
    """)

    class Dir:
        def finished(self):
            return False

        def result(self):
            return {"gm_ber": -1.5}

    class Run:
        name, external, workdir, dir, args = "stepper-run", True, str(tmp_path / "run"), Dir(), ()

    class Stepper(jobs.LocalBackend):
        def submit(self, items):
            return [jobs.LocalJob(jobs.Job(("stepper",), log_path, env)) for _, _, log_path, _ in items]

    lines = []
    runner = jobs.Runner(str(tmp_path / "sweep"), log=lambda line, **_: lines.append(line), progress_every=0.5,
                         backend=Stepper())
    runner.ensure([Run()], "[test]")
    progress = [line for line in lines if "[0 of 1 done]" in line]
    assert progress and all(line.startswith("  [test] stepper-run: step ") for line in progress), lines
    assert lines[-1].startswith("  [test] stepper-run: done in") and "-1.500" in lines[-1]
    assert jobs.last_step_line(runner._log_path(Run())) == "step 3/3 | loss 0.5 | ETA 0:00:00"
    assert jobs.last_step_line(str(tmp_path / "missing.log")) is None
