"""Publishing a sweep (python -m deeprx.sweep --publish=DEST): the step files, and of each
finished run its results, settings and command, never checkpoints or weights."""

import fnmatch
import os
import shutil

from deeprx.core import workdir as workdir_lib

# What --publish copies: the steps' outputs, and of each finished run (into by-run/<run>/)
# its results, settings and command, never checkpoints or weights.
STEP_FILES = ("alpha_T.csv", "alpha_T.png", "ber_vs_sinr.csv", "ber_vs_sinr_dmrs*.png", "kd_summary.json",
              "kd_summary.md", "kd_curves.csv", "kd_curves*_dmrs*.png", "student_size.csv", "student_size.png",
              "teacher_size.csv", "teacher_size.png")
RUN_FILES = ("train.json", "config.json", "sweep_command.txt", "curve.csv", "eval/summary.json", "eval/ber.csv",
             "eval/ber.png")


def publish(workdir, dest, log=print):
    """Copies what is finished in the sweep `workdir` to `dest`; returns the number of runs."""
    present = sorted(os.listdir(workdir))
    copied = [name for pattern in STEP_FILES for name in fnmatch.filter(present, pattern)
              if os.path.isfile(os.path.join(workdir, name))]
    runs_dir = os.path.join(workdir, "runs")
    runs = sorted(name for name in (os.listdir(runs_dir) if os.path.isdir(runs_dir) else ())
                  if workdir_lib.RunDir(os.path.join(runs_dir, name)).finished())
    for name in copied:
        shutil.copyfile(os.path.join(workdir, name), os.path.join(_made(dest), name))
    for name in runs:
        for path in RUN_FILES:
            source = os.path.join(runs_dir, name, path)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(_made(os.path.join(dest, "by-run", name)),
                                                     os.path.basename(path)))
    log(f"Published to {dest}: {len(copied)} step files ({', '.join(copied) or 'none yet'}) and {len(runs)} "
        "finished runs", flush=True)
    return len(runs)


def _made(path):
    os.makedirs(path, exist_ok=True)
    return path
