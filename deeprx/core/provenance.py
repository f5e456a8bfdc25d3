"""Where a result comes from: date, machine, CPU model (with its int8/bf16 extensions) and the
git commit of the code, recorded in every result file (a figure must name the CPU it was
measured on)."""

import os
import platform
import time

from deeprx import REPO_ROOT


def cpu_model():
    """The CPU's model name and its int8/bf16 extensions (/proc/cpuinfo), e.g. "Intel(R) Xeon(R)
    Processor (avx512f, avx512_vnni, avx512_bf16, amx_bf16)"; "unknown CPU" without /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or "unknown CPU")
    cpu_flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
                         []))
    extensions = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                  if f in cpu_flags]
    return f"{name} ({', '.join(extensions) or 'no AVX2'})"


def code_version():
    """The git commit of this code ("abc1234", "+ local changes" when deeprx/ or edge/ differ from
    it), or "unknown" outside a git checkout."""
    import subprocess
    repo = REPO_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--", "deeprx", "edge"], cwd=repo,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + (" + local changes" if changed.stdout.strip() else "")


def provenance():
    """Date, machine and CPU model, for every result file."""
    return {"date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "cpu": cpu_model()}
