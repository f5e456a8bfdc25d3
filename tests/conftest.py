"""Shared fixtures: tiny scenarios of the real code paths (real Sionna, real CLIs)."""

import dataclasses
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deeprx.core import config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny():
    return config.get_preset("tiny").scenario


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The one smoke.flags training run (6 steps, then its final evaluation) of a test session,
    shared by every test that needs a trained model, read-only: {"workdir", "stdout"}. Under
    pytest-xdist the workers share it too: the first to ask trains it, under a file lock in
    the session's common temporary directory, and the others wait for it."""
    import fcntl
    import json
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # every worker's basetemp is a directory of this one
    record = root / "smoke_run.json"
    with open(root / "smoke_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            workdir = str(root / "smoke")
            result = run_module("deeprx.train", "--flagfile=smoke.flags", f"--workdir={workdir}")
            assert result.returncode == 0, result.stderr[-3000:]
            record.write_text(json.dumps({"workdir": workdir, "stdout": result.stdout}))
    return json.loads(record.read_text())


def awgn_scenario(num_prb=4, modulation="16qam"):
    """One Rx antenna, flat unit channel, no interferer: the textbook AWGN link."""
    base = config.get_preset("tiny").scenario
    return dataclasses.replace(
        base, num_rx=1, interferer=None, modulation=modulation,
        carrier=dataclasses.replace(base.carrier, num_prb=num_prb),
        channel=dataclasses.replace(base.channel, family="awgn"))


def free_ports(count):
    """`count` TCP ports on 127.0.0.1 that were free a moment ago."""
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_module(module, *args, timeout=600, cwd=REPO):
    """Runs `python -m module args...` from the repo root (or `cwd`); returns CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def processes_naming(workdir):
    """Processes (other than pytest) whose command line names `workdir`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if workdir.encode() in f.read() and int(pid) != os.getpid():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids
