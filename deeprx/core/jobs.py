"""Training runs as child processes: `python -m deeprx.train` runs of a sweep or an ablation,
trained a few at a time with a log file each, skipped when finished, resumed when not.

Flag-free library code (deeprx.sweep and deeprx.ablation define the flags).
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Optional, Tuple

from deeprx.core import cli
from deeprx.core import scenario_flags
from edge import ber as ber_lib


# The flags of python -m deeprx.train that a parent (a sweep, an ablation) passes on to its runs.
TRAIN_FLAGS = ("steps", "batch_size", "learning_rate", "warmup_steps", "final_lr_fraction",
               "checkpoint_every", "log_every", "seed", "xla", "optimizer", "schedule", "sinr_sampling",
               "train_sinr_db", "aux_channel_weight", "train_num_prb", "curve_every")
TEACHER_FLAGS = (*scenario_flags.FLAG_NAMES, "model_variant",
                 "width_multiplier", "model_mflops", "depth_multiplier", *TRAIN_FLAGS, "eval", "eval_max_bits")
STUDENT_FLAGS = tuple(name for name in TEACHER_FLAGS if name != "seed") + ("seed",)
KD_FLAGS = ("teacher", "alpha", "temperature", "kd_form", "kd_reduction", "student_flops_ratio")


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """One `python -m deeprx.train` run of a sweep or an ablation."""
    name: str
    workdir: str
    args: Tuple[str, ...]
    role: str                      # teacher, scratch, kd or arm
    external: bool = False         # the --teacher directory, not the sweep's own
    width: Optional[float] = None  # a teacher's width multiplier

    @property
    def receiver(self):
        """Its name in its eval/ber.csv (deeprx.train names the model after its workdir)."""
        return os.path.basename(os.path.normpath(self.workdir))


def finished(run):
    return finished_dir(run.workdir)


def finished_dir(workdir):
    """A run directory holding its model, train.json and evaluation."""
    return all(os.path.isfile(os.path.join(workdir, *parts))
               for parts in (("model.keras",), ("train.json",), ("eval", "summary.json")))


class Runner:
    """Trains runs as deeprx.train processes, `parallel` at a time, skipping finished ones.

    With parallel > 1 each process gets an equal share of the CPU cores as TensorFlow
    threads: on 2 cores, two 1-thread runs train about 1.4x faster in total than one
    2-thread run (README "Knowledge distillation")."""

    def __init__(self, workdir, parallel=1, log=print):
        self.workdir, self.parallel, self.log = workdir, parallel, log
        self.trained = 0

    def ensure(self, runs, label):
        """Trains every unfinished run of `runs` (independent of each other)."""
        todo = []
        for run in dict.fromkeys(runs):  # once each, in order
            if finished(run):
                self.log(f"  {label} {run.name}: finished earlier, skipped", flush=True)
            else:
                todo.append(run)
        env = dict(os.environ)
        if self.parallel > 1 and len(todo) > 1:
            threads = str(max(1, (os.cpu_count() or 1) // min(self.parallel, len(todo))))
            env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
        running = []
        try:
            while todo or running:
                while todo and len(running) < self.parallel:
                    run = todo.pop(0)
                    running.append((run, self._start(run, label, env), time.time()))
                time.sleep(0.5)
                for item in [item for item in running if item[1].poll() is not None]:
                    running.remove(item)
                    self._finish(*item, label)
        finally:
            for _, process, _ in running:  # on an error or Ctrl-C: stop the others (they resume later)
                process.terminate()
                process.wait()

    def _start(self, run, label, env):
        command = " ".join(["python -m deeprx.train", *run.args])
        if not run.external:
            self._claim(run, command)
        log_path = self._log_path(run)
        resuming = os.path.isdir(os.path.join(run.workdir, "checkpoints"))
        self.log(f"  {label} {run.name}: training ({'resuming, ' if resuming else ''}"
                 f"output in {log_path})", flush=True)
        with open(log_path, "a") as log_file:
            log_file.write(f"\n$ {command}\n")
            log_file.flush()
            return subprocess.Popen([sys.executable, "-m", "deeprx.train", *run.args], stdout=log_file,
                                    stderr=subprocess.STDOUT, env=env, preexec_fn=cli.die_with_parent)

    def _finish(self, run, process, start, label):
        if process.returncode != 0:
            with open(self._log_path(run)) as f:
                tail = "".join(f.readlines()[-8:])
            raise RuntimeError(f"{run.name} failed (exit status {process.returncode}); the end of "
                               f"{self._log_path(run)}:\n{tail}\nFix the cause and rerun the same command: "
                               "finished runs are kept.")
        self.trained += 1
        self.log(f"  {label} {run.name}: done in {(time.time() - start) / 60:.1f} min, "
                 f"Geometric Mean BER {result(run)['gm_ber']:.3f}", flush=True)

    def _log_path(self, run):
        path = os.path.join(self.workdir, "logs", run.name + ".log")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def _claim(self, run, command):
        """Records the run's command in its workdir; a workdir of another command is an error."""
        os.makedirs(run.workdir, exist_ok=True)
        path = os.path.join(run.workdir, "sweep_command.txt")
        if os.path.isfile(path):
            with open(path) as f:
                previous = f.read().strip()
            if previous != command:
                raise RuntimeError(f"{run.workdir} holds a run of another command ({path}); the "
                                   f"flags changed since. Use another --workdir or the earlier flags.")
        else:
            ber_lib.atomic_write(path, lambda f: f.write(command + "\n"))


def result(run):
    """The run's evaluation summary: gm_ber, sinr_at_ber_1e-2, sinr_at_ber_1e-3, plus
    its parameters and FLOPs per slot."""
    with open(os.path.join(run.workdir, "eval", "summary.json")) as f:
        summary = json.load(f)[run.receiver]
    with open(os.path.join(run.workdir, "train.json")) as f:
        trained = json.load(f)
    return {**summary, "parameters": trained["parameters"], "flops_per_slot": trained["flops_per_slot"]}


def ber_rows(run, receivers=None):
    """The run's ber.csv rows, of its own model or of `receivers`."""
    rows = ber_lib.read_csv(os.path.join(run.workdir, "eval", "ber.csv"))
    return [row for row in rows if row["receiver"] in (receivers or (run.receiver,))]
