"""Child processes of the project's CLIs, and training runs as such children.

`Job`/`run`: the one way a parent (sweep, ablation, study, benchmarks) runs `python -m
MODULE ARGS`: its output appended to a log file after a `$ command` header, progress
lines echoed if asked, the child killed with its parent (SIGKILL too), and on failure a
JobError naming the command, the exit status, the log and its last lines.
`Runner`: `python -m deeprx.train` runs of a sweep or an ablation, a few at a time,
skipped when finished, resumed when not.

Flag-free library code (the CLIs define the flags).
"""

import dataclasses
import os
import subprocess
import sys
import threading
import time
from typing import Optional, Tuple

from deeprx.core import cli
from deeprx.core import kd_flags
from deeprx.core import scenario_flags
from deeprx.core import workdir as workdir_lib
from edge import ber as ber_lib

# Child output kept in the log but not echoed: TensorFlow's start-up chatter.
QUIET_PREFIXES = ("WARNING: All log messages", "I0000", "W0000", "E0000", "INFO: Created TensorFlow Lite")
TAIL_LINES = 8


class JobError(RuntimeError):
    """A child CLI failed: the message names the command, its log and the log's last lines."""


def command_line(args):
    return "python -m " + " ".join(args)


class Job:
    """`python -m ARGS` started now, its output appended to `log_path`; echo(line) gets each
    non-empty line that is not TensorFlow start-up chatter. Use as a context manager (or
    call stop()) so that an error in the parent stops the child."""

    def __init__(self, args, log_path, env=None, echo=None):
        self.args, self.log_path, self.command = tuple(args), log_path, command_line(args)
        self.tail = []
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        self._log = open(log_path, "a")
        self._log.write(f"\n$ {self.command}\n")
        self._log.flush()
        self.process = subprocess.Popen([sys.executable, "-m", *self.args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
                                        preexec_fn=cli.die_with_parent)
        self._copier = threading.Thread(target=self._copy, args=(echo,), daemon=True)
        self._copier.start()

    def _copy(self, echo):
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            self.tail = (self.tail + [line.rstrip()])[-TAIL_LINES:]
            if echo and line.strip() and not line.startswith(QUIET_PREFIXES):
                echo(line.rstrip())

    def running(self):
        return self.process.poll() is None or self._copier.is_alive()

    def wait(self):
        """Waits for the end; JobError if the child failed."""
        self.process.wait()
        self._copier.join()
        self._log.close()
        if self.process.returncode != 0:
            raise JobError(f"`{self.command}` failed (exit status {self.process.returncode}); the end of "
                           f"{self.log_path}:\n" + "\n".join(self.tail))

    def stop(self):
        """Stops a running child (SIGTERM, then SIGKILL after 30 s); the log is kept."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._copier.join()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is not None:
            self.stop()


def run(args, log_path, env=None, echo=None):
    """Runs `python -m ARGS` to completion (see Job); returns its command line."""
    with Job(args, log_path, env, echo) as job:
        job.wait()
    return job.command


# The flags of python -m deeprx.train that a parent (a sweep, an ablation) passes on to its runs.
TRAIN_FLAGS = ("steps", "batch_size", "learning_rate", "warmup_steps", "final_lr_fraction",
               "checkpoint_every", "log_every", "seed", "xla", "optimizer", "schedule", "sinr_sampling",
               "train_sinr_db", "aux_channel_weight", "train_num_prb", "curve_every")
TEACHER_FLAGS = (*scenario_flags.FLAG_NAMES, "model_variant",
                 "width_multiplier", "model_mflops", "depth_multiplier", *TRAIN_FLAGS, "eval", "eval_max_bits")
STUDENT_FLAGS = tuple(name for name in TEACHER_FLAGS if name != "seed") + ("seed",)
KD_FLAGS = ("teacher", "student_variant", *kd_flags.FLAG_NAMES)


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
    def dir(self):
        return workdir_lib.RunDir(self.workdir)


class Runner:
    """Trains runs as deeprx.train processes, `parallel` at a time, skipping finished ones.

    With parallel > 1 each process gets an equal share of the CPU cores as TensorFlow
    threads: on 2 cores, two 1-thread runs train about 1.4x faster in total than one
    2-thread run (docs/distillation.md)."""

    def __init__(self, workdir, parallel=1, log=print, progress_every=600.0):
        self.workdir, self.parallel, self.log = workdir, parallel, log
        self.progress_every = progress_every  # seconds between progress lines of the running runs
        self.trained = 0

    def ensure(self, runs, label):
        """Trains every unfinished run of `runs` (independent of each other)."""
        todo = []
        for run in dict.fromkeys(runs):  # once each, in order
            if run.dir.finished():
                self.log(f"  {label} {run.name}: finished earlier, skipped", flush=True)
            else:
                todo.append(run)
        env = dict(os.environ)
        if self.parallel > 1 and len(todo) > 1:
            threads = str(max(1, (os.cpu_count() or 1) // min(self.parallel, len(todo))))
            env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
        running, total, last_progress = [], len(todo), time.time()
        try:
            while todo or running:
                while todo and len(running) < self.parallel:
                    run = todo.pop(0)
                    running.append((run, self._start(run, label, env), time.time()))
                time.sleep(0.5)
                for item in [item for item in running if not item[1].running()]:
                    running.remove(item)
                    self._finish(*item, label)
                if running and time.time() - last_progress >= self.progress_every:
                    last_progress = time.time()
                    self._progress([run for run, _, _ in running], total - len(todo) - len(running), total, label)
        finally:
            for _, job, _ in running:  # on an error or Ctrl-C: stop the others (they resume later)
                job.stop()

    def _start(self, run, label, env):
        if not run.external:
            self._claim(run, command_line(("deeprx.train", *run.args)))
        log_path = self._log_path(run)
        resuming = os.path.isdir(os.path.join(run.workdir, "checkpoints"))
        self.log(f"  {label} {run.name}: training ({'resuming, ' if resuming else ''}"
                 f"output in {log_path})", flush=True)
        return Job(("deeprx.train", *run.args), log_path, env)

    def _finish(self, run, job, start, label):
        try:
            job.wait()
        except JobError as error:
            raise JobError(f"{run.name} failed: {error}\nFix the cause and rerun the same command: "
                           "finished runs are kept.") from None
        self.trained += 1
        self.log(f"  {label} {run.name}: done in {(time.time() - start) / 60:.1f} min, "
                 f"Geometric Mean BER {run.dir.result()['gm_ber']:.3f}", flush=True)

    def _progress(self, runs, done, total, label):
        """One line per running run: its last progress line (step, rate, ETA)."""
        for run in runs:
            self.log(f"  {label} {run.name}: {last_step_line(self._log_path(run)) or 'starting'} "
                     f"[{done} of {total} done]", flush=True)

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


def last_step_line(log_path, tail_bytes=16384):
    """The last "step N/M | ..." progress line of a deeprx.train log, or None."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - tail_bytes))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.startswith("step ")), None)
