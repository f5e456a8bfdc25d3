"""Child processes of the project's CLIs, and training runs as such children.

`Job`/`run`: the one way a parent (sweep, ablation, study, benchmarks) runs `python -m
MODULE ARGS`: its output appended to a log file after a `$ command` header, progress
lines echoed if asked, the child killed with its parent (SIGKILL too), and on failure a
JobError naming the command, the exit status, the log and its last lines.
`Runner`: `python -m deeprx.train` runs of a sweep or an ablation through a backend
(`LocalBackend`: a few at a time on this machine; deeprx.experiments.backends: Slurm, Ray),
skipped when finished, resumed when not, re-attached to when a cluster still trains them.

Flag-free library code (the CLIs define the flags).
"""

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional, Tuple

from deeprx.core import workdir as workdir_lib
from deeprx.core import io as io_lib

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
                                        preexec_fn=die_with_parent)
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


class LocalJob:
    """A run started by LocalBackend: a Job on this machine (it dies with the driver)."""

    def __init__(self, job):
        self.job, self.log_path = job, job.log_path
        self.job_id = str(job.process.pid)

    def poll(self):
        """None while the run trains, else its exit status."""
        return None if self.job.running() else self.job.process.wait()

    def wait(self):
        self.job.wait()

    def cancel(self):
        self.job.stop()


class LocalBackend:
    """Runs on this machine, `parallel` processes at a time sharing its cores (today's runner).

    The backend interface (deeprx.experiments.backends has the cluster ones): `name`;
    `capacity(parallel)`, how many runs the Runner keeps submitted at once (None: all, the
    cluster queues them); `check()`, a BackendError before anything is submitted (the CLI
    calls it once, before any run);
    `submit([(run, args, log_path, env)])`, one handle per run (a cluster's as one array);
    `attach(record, log_path)`, the handle of a run's job still alive from an earlier driver,
    else None; a handle has `job_id`, `log_path`, `poll()` (None while alive, else the exit
    status), `wait()` (JobError on failure) and `cancel()`. Local runs die with the driver, so
    none is ever re-attached."""

    name = "local"
    detached = False  # its runs end with the driver

    def capacity(self, parallel):
        return parallel

    def check(self):
        pass

    def environment(self, env, parallel, todo):
        """With parallel > 1 each process gets an equal share of the CPU cores as TensorFlow
        threads: on 2 cores, two 1-thread runs train about 1.4x faster in total than one
        2-thread run (docs/distillation.md)."""
        if parallel > 1 and todo > 1:
            threads = str(max(1, (os.cpu_count() or 1) // min(parallel, todo)))
            env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
        return env

    def submit(self, items):
        return [LocalJob(Job(("deeprx.train", *args), log_path, env)) for _, args, log_path, env in items]

    def attach(self, record, log_path):
        del record, log_path
        return None


class BackendError(ValueError):
    """A backend cannot run this: one line saying what and what to do, before any submission."""


BACKEND_RECORD = "backend_job.json"  # in a run directory: the job that trains it


class Runner:
    """Trains runs as deeprx.train processes through a backend (LocalBackend: `parallel` at a
    time on this machine), skipping finished ones. Each submitted run's job is recorded in its
    directory (BACKEND_RECORD); a rerun of the driver re-attaches to a cluster job still alive
    instead of submitting the run again, and resubmits the runs whose jobs died."""

    def __init__(self, workdir, parallel=1, log=print, progress_every=600.0, backend=None):
        self.workdir, self.parallel, self.log = workdir, parallel, log
        self.progress_every = progress_every  # seconds between progress lines of the running runs
        self.backend = backend or LocalBackend()
        self.trained = 0

    def ensure(self, runs, label):
        """Trains every unfinished run of `runs` (independent of each other)."""
        todo, running = [], []
        for run in dict.fromkeys(runs):  # once each, in order
            handle = self._attach(run)
            if run.dir.finished():
                self.log(f"  {label} {run.name}: finished earlier, skipped", flush=True)
                if handle:  # a job that outlived its driver after the run finished (a Ray actor)
                    handle.cancel()
                continue
            if handle:
                self.log(f"  {label} {run.name}: re-attached to {self.backend.name} job {handle.job_id}, still "
                         f"training (output in {handle.log_path})", flush=True)
                running.append((run, handle, time.time()))
            else:
                todo.append(run)
        env = self.backend.environment(dict(os.environ), self.parallel, len(todo))
        total, last_progress = len(todo) + len(running), time.time()
        capacity = self.backend.capacity(self.parallel)
        try:
            while todo or running:
                free = len(todo) if capacity is None else capacity - len(running)
                if todo and free > 0:
                    batch, todo = todo[:free], todo[free:]
                    running += [(run, handle, time.time()) for run, handle in zip(batch, self._submit(batch, label, env))]
                time.sleep(0.5)
                for item in [item for item in running if item[1].poll() is not None]:
                    running.remove(item)
                    self._finish(*item, label)
                if running and time.time() - last_progress >= self.progress_every:
                    last_progress = time.time()
                    self._progress([run for run, _, _ in running], total - len(todo) - len(running), total, label)
        except BaseException:
            if self.backend.detached and running:
                self.log(f"  {label} {len(running)} {self.backend.name} job(s) left running; rerun the same command "
                         "to re-attach to them", flush=True)
            else:  # on an error or Ctrl-C: stop the others (they resume later)
                for _, handle, _ in running:
                    handle.cancel()
            raise

    def _attach(self, run):
        """The handle of the run's job still alive from an earlier driver of this backend, or None."""
        path = os.path.join(run.workdir, BACKEND_RECORD)
        if run.external or not os.path.isfile(path):
            return None
        record = io_lib.read_json(path)
        if record.get("backend") != self.backend.name:
            return None
        return self.backend.attach(record, self._log_path(run))

    def _submit(self, runs, label, env):
        items = []
        for run in runs:
            if not run.external:
                self._claim(run, command_line(("deeprx.train", *run.args)))
            resuming = os.path.isdir(os.path.join(run.workdir, "checkpoints"))
            where = "" if self.backend.name == "local" else f" on {self.backend.name}"
            self.log(f"  {label} {run.name}: training{where} ({'resuming, ' if resuming else ''}"
                     f"output in {self._log_path(run)})", flush=True)
            items.append((run, run.args, self._log_path(run), env))
        handles = self.backend.submit(items)
        for run, handle in zip(runs, handles):
            if not run.external:
                io_lib.write_json(os.path.join(run.workdir, BACKEND_RECORD),
                                   {"backend": self.backend.name, "job_id": handle.job_id,
                                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                    **getattr(handle, "record", {})})
        return handles

    def _finish(self, run, handle, start, label):
        try:
            handle.wait()
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
            io_lib.atomic_write(path, lambda f: f.write(command + "\n"))


def last_step_line(log_path, tail_bytes=16384):
    """The last "step N/M | ..." progress line of a deeprx.train log, or None."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - tail_bytes))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.startswith("step ")), None)


def die_with_parent():
    """A subprocess preexec_fn: the child gets SIGKILL when its parent process dies, however
    the parent died (Linux prctl PR_SET_PDEATHSIG), so no training outlives its sweep or study."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:  # not Linux: children of a killed parent finish on their own
        pass
