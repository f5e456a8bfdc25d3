"""Where a sweep's training runs go: this machine (deeprx.core.jobs.LocalBackend), a Slurm
cluster through submitit, or a Ray cluster. Each run stays one resumable
`python -m deeprx.train` process writing its own run directory, on a filesystem every node
sees, with the driver's Python and working directory; the backend only decides where and
when it runs (the interface: deeprx.core.jobs.LocalBackend's docstring).

  slurm  one job array per submission (submitit), its tasks throttled to --parallel at a
         time; per run --cpus_per_run, --gpus_per_run, --mem_per_run_gb, --time_limit_min,
         --partition. On the time-limit signal (USR2, --signal_delay_s before the limit)
         the training saves a checkpoint at the step it reached and the job is requeued; the
         requeued job resumes from it. submitit's files: DIR/slurm/.
  ray    each run a detached Ray actor (it outlives the driver) holding --cpus_per_run and
         --gpus_per_run while its training process runs; --ray_address: a running cluster's
         head (host:port), or auto on one of its nodes.

Killing the driver leaves cluster jobs running: the same command re-attaches to them (the
job of each run is in RUN/backend_job.json) and resubmits only the runs whose jobs died.
Flag-free library code (the CLIs define the flags).
"""

import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time

from deeprx.core import jobs

BACKENDS = ("local", "slurm", "ray")


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one run asks of a cluster."""
    cpus: int = 1
    gpus: int = 0
    mem_gb: float = 0.0      # 0: the scheduler's default
    time_min: int = 0        # 0: the partition's limit
    partition: str = ""      # "": the default partition
    signal_delay_s: int = 120  # Slurm: the checkpoint signal comes this long before the time limit

    def check(self):
        if self.cpus < 1 or self.gpus < 0 or self.mem_gb < 0 or self.time_min < 0 or self.signal_delay_s < 1:
            raise ValueError(f"resources must be positive (CPUs >= 1, the rest >= 0), got {self}")


def make(name, workdir, resources, parallel, ray_address="auto"):
    """The backend called `name`; ValueError for an unknown one."""
    if name == "local":
        return jobs.LocalBackend()
    resources.check()
    if name == "slurm":
        return SlurmBackend(os.path.join(workdir, "slurm"), resources, parallel)
    if name == "ray":
        return RayBackend(ray_address, resources)
    raise ValueError(f"must be one of {', '.join(BACKENDS)}, got {name!r}")


def _thread_env(env, cpus):
    """TensorFlow in a run uses the CPUs the run was given."""
    return dict(env, TF_NUM_INTRAOP_THREADS=str(cpus), TF_NUM_INTEROP_THREADS=str(cpus))


def _log_tail(path, lines=jobs.TAIL_LINES):
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _at_normal_priority():
    """A subprocess preexec_fn: dies with its parent, and runs at niceness 0 where allowed (Ray
    runs its workers at a lower priority, which starves a training beside other work)."""
    jobs.die_with_parent()
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:  # lowering niceness needs CAP_SYS_NICE: a dedicated node has nothing to yield to
        pass


def _start_training(args, log_path, cwd, env, where):
    """The run's deeprx.train process, its output appended to log_path after a header."""
    log = open(log_path, "a")
    log.write(f"\n$ {jobs.command_line(('deeprx.train', *args))}  [{where}]\n")
    log.flush()
    return subprocess.Popen([sys.executable, "-m", "deeprx.train", *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=_at_normal_priority)


def _failed(command, status, log_path):
    return jobs.JobError(f"`{jobs.command_line(('deeprx.train', *command))}` failed (exit status {status}); "
                         f"the end of {log_path}:\n{_log_tail(log_path)}")


# ---------------------------------------------------------------------------- Slurm

class TrainCommand:
    """What a Slurm job runs (submitit pickles it): the run's deeprx.train process. On the
    time-limit signal submitit calls checkpoint(): the process saves a checkpoint at the step
    it reached (deeprx.train on SIGTERM) and the job is requeued with a fresh TrainCommand,
    which resumes from it."""

    def __init__(self, args, log_path, cwd, cpus):
        self.args, self.log_path, self.cwd, self.cpus = tuple(args), log_path, cwd, cpus
        self._process = None

    def __getstate__(self):
        return {**self.__dict__, "_process": None}

    def __call__(self):
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ.get("SLURM_JOB_ID", "?")
        where = f"slurm job {job} on {socket.gethostname()}"
        self._process = _start_training(self.args, self.log_path, self.cwd, _thread_env(os.environ, self.cpus), where)
        status = self._process.wait()
        if status:
            raise _failed(self.args, status, self.log_path)
        return status

    def checkpoint(self, *args, **kwargs):
        import submitit
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # deeprx.train: checkpoint at this step, exit
            try:
                self._process.wait(timeout=max(30, self.cpus * 30))
            except subprocess.TimeoutExpired:
                self._process.kill()
        return submitit.helpers.DelayedSubmission(TrainCommand(self.args, self.log_path, self.cwd, self.cpus))


ALIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}


class _Squeue:
    """Job states from one `squeue` call for every job, at most every `every` seconds (a
    finished job leaves squeue after the cluster's MinJobAge: then it has no state)."""

    def __init__(self, every=5.0):
        self.every, self.when, self.states = every, 0.0, {}

    def state(self, job_id):
        if time.time() - self.when > self.every:
            result = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T"], capture_output=True,
                                    text=True)
            if result.returncode == 0:
                self.states = dict(line.split()[:2] for line in result.stdout.splitlines() if line.strip())
                self.when = time.time()
        return self.states.get(job_id)


class SlurmRun:
    def __init__(self, job, log_path, squeue):
        self.job, self.log_path, self.squeue = job, log_path, squeue
        self.job_id = job.job_id
        self.record = {"folder": str(job.paths.folder)}
        self.since = time.time()

    def poll(self):
        """None while Slurm lists the job as alive (or it was submitted moments ago and is not
        listed yet); else 0 if submitit wrote a successful result, 1 if not."""
        if self.job.paths.result_pickle.exists():
            return 0 if self._outcome() == "success" else 1
        state = self.squeue.state(self.job_id)
        if state is None and time.time() - self.since < 30:
            return None
        if state is None:  # gone from the listing: one fresh listing before calling it ended
            self.squeue.when = 0.0
            state = self.squeue.state(self.job_id)
        if state is not None and state in ALIVE_STATES:
            return None
        return 0 if self.job.paths.result_pickle.exists() and self._outcome() == "success" else 1

    def _outcome(self):
        import pickle
        with open(self.job.paths.result_pickle, "rb") as f:
            return pickle.load(f)[0]

    def wait(self):
        if self.poll() != 0:
            state = self.squeue.state(self.job_id) or "gone from squeue"
            raise jobs.JobError(f"slurm job {self.job_id} ({state}) did not finish its run; the end of "
                                f"{self.log_path}:\n{_log_tail(self.log_path)}\nsubmitit's log: "
                                f"{self.job.paths.stderr}")

    def cancel(self):
        self.job.cancel(check=False)


class SlurmBackend:
    name = "slurm"
    detached = True

    def __init__(self, folder, resources, parallel):
        self.folder, self.resources, self.parallel = folder, resources, parallel
        self.squeue = _Squeue()

    def capacity(self, parallel):
        return None  # one array; Slurm runs `parallel` of its tasks at a time

    def environment(self, env, parallel, todo):
        return env

    def check(self):
        missing = [name for name in ("sbatch", "squeue", "scancel", "sinfo") if not shutil.which(name)]
        if missing:
            raise jobs.BackendError(f"--backend=slurm needs Slurm's commands, and {', '.join(missing)} is not on "
                                    "PATH: run the sweep on a Slurm login node, or use --backend=local or ray")
        result = subprocess.run(["sinfo", "-h", "-o", "%P|%c|%m|%G"], capture_output=True, text=True)
        if result.returncode:
            raise jobs.BackendError(f"sinfo failed ({result.stderr.strip() or result.returncode}): is the Slurm "
                                    "controller up? (SLURM_CONF, slurmctld)")
        partitions = {}
        for line in result.stdout.splitlines():
            name, cpus, mem, gres = line.split("|")
            cpus, mem = int(cpus.rstrip("+")), int(mem.rstrip("+"))
            key = name.rstrip("*")
            old = partitions.get(key, (0, 0, False, False))
            partitions[key] = (max(old[0], cpus), max(old[1], mem), old[2] or "gpu" in gres, old[3] or name.endswith("*"))
        wanted = self.resources.partition or next((p for p, v in partitions.items() if v[3]), None)
        if wanted not in partitions:
            raise jobs.BackendError(f"no Slurm partition {wanted!r} (--partition); the cluster has "
                                    f"{', '.join(sorted(partitions)) or 'none'}")
        cpus, mem, gpus, _ = partitions[wanted]
        r = self.resources
        if r.cpus > cpus:
            raise jobs.BackendError(f"a run asks for {r.cpus} CPUs (--cpus_per_run) but the largest node of "
                                    f"partition {wanted!r} has {cpus}")
        if r.mem_gb and r.mem_gb * 1024 > mem:
            raise jobs.BackendError(f"a run asks for {r.mem_gb:g} GB (--mem_per_run_gb) but the largest node of "
                                    f"partition {wanted!r} has {mem / 1024:.1f} GB")
        if r.gpus and not gpus:
            raise jobs.BackendError(f"a run asks for {r.gpus} GPU(s) (--gpus_per_run) but partition {wanted!r} "
                                    "has no GPU GRES")

    def submit(self, items):
        import submitit
        executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=1000)
        r = self.resources
        executor.update_parameters(
            job_name="deeprx", ntasks_per_node=1, cpus_per_task=r.cpus, array_parallelism=self.parallel,
            signal_delay_s=r.signal_delay_s, **({"partition": r.partition} if r.partition else {}),
            **({"mem": f"{int(r.mem_gb * 1024)}M"} if r.mem_gb else {}), time=r.time_min or None,
            **({"gpus_per_node": r.gpus} if r.gpus else {}))
        with executor.batch():
            submitted = [executor.submit(TrainCommand(args, log_path, os.getcwd(), r.cpus))
                         for _, args, log_path, _ in items]
        return [SlurmRun(job, log_path, self.squeue) for job, (_, _, log_path, _) in zip(submitted, items)]

    def attach(self, record, log_path):
        import submitit
        if self.squeue.state(record["job_id"]) not in ALIVE_STATES:  # a listing of the last 5 s
            return None
        job = submitit.SlurmJob(folder=record["folder"], job_id=record["job_id"])
        return SlurmRun(job, log_path, self.squeue)


# ---------------------------------------------------------------------------- Ray

RAY_NAMESPACE = "deeprx"


class TrainActor:
    """A Ray actor (detached: it outlives the driver) running one run's deeprx.train process."""

    def __init__(self, args, log_path, cwd, cpus):
        where = f"ray actor on {socket.gethostname()}"
        self.process = _start_training(args, log_path, cwd, _thread_env(os.environ, cpus), where)

    def poll(self):
        return self.process.poll()

    def cancel(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        return self.process.returncode


class RayRun:
    def __init__(self, actor, name, log_path, args):
        self.actor, self.job_id, self.log_path, self.args = actor, name, log_path, args
        self.record = {"actor": name, "namespace": RAY_NAMESPACE}
        self._pending = None
        self.status = None

    def poll(self):
        import ray
        if self.status is not None:
            return self.status
        if self._pending is None:
            self._pending = self.actor.poll.remote()
        ready, _ = ray.wait([self._pending], timeout=0)
        if not ready:
            return None  # the actor waits for resources, or is busy
        try:
            status = ray.get(self._pending)
        except ray.exceptions.RayActorError:
            status = 1  # the actor died (its node left the cluster, or it was killed)
        self._pending = None
        if status is not None:
            self.status = status
            ray.kill(self.actor)  # frees the run's CPUs and GPUs
        return status

    def wait(self):
        while self.poll() is None:
            time.sleep(0.5)
        if self.status:
            raise _failed(self.args, self.status, self.log_path)

    def cancel(self):
        import ray
        try:
            ray.get(self.actor.cancel.remote(), timeout=60)
        finally:
            ray.kill(self.actor)


class RayBackend:
    name = "ray"
    detached = True

    def __init__(self, address, resources):
        self.address, self.resources = address, resources

    def capacity(self, parallel):
        return None  # every run an actor at once; Ray starts each when its CPUs are free

    def environment(self, env, parallel, todo):
        return env

    def _connect(self):
        import ray
        if ray.is_initialized():
            return
        if self.address != "auto":
            host, _, port = self.address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=5).close()
            except (OSError, ValueError) as error:
                raise jobs.BackendError(f"the Ray cluster at --ray_address={self.address} does not answer ({error}): "
                                        "start a head there (`ray start --head`) or give its host:port") from None
        try:
            ray.init(address=self.address, namespace=RAY_NAMESPACE, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise jobs.BackendError(f"could not join a Ray cluster at --ray_address={self.address} "
                                    f"({str(error).splitlines()[0]}): start one with `ray start --head`") from None

    def check(self):
        import ray
        self._connect()
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        cpus = max((node.get("CPU", 0) for node in nodes), default=0)
        gpus = max((node.get("GPU", 0) for node in nodes), default=0)
        if self.resources.cpus > cpus:
            raise jobs.BackendError(f"a run asks for {self.resources.cpus} CPUs (--cpus_per_run) but the largest "
                                    f"node of the Ray cluster at {self.address} has {cpus:g}")
        if self.resources.gpus > gpus:
            raise jobs.BackendError(f"a run asks for {self.resources.gpus} GPU(s) (--gpus_per_run) but the largest "
                                    f"node of the Ray cluster at {self.address} has {gpus:g}")

    @staticmethod
    def actor_name(args):
        """The run's actor: its workdir's name and a digest of its path (unique on the cluster)."""
        workdir = next(arg.split("=", 1)[1] for arg in args if arg.startswith("--workdir="))
        digest = hashlib.sha1(os.path.abspath(workdir).encode()).hexdigest()[:12]
        return f"{os.path.basename(os.path.normpath(workdir))}-{digest}"

    def submit(self, items):
        import ray
        self._connect()
        actor_class = ray.remote(TrainActor)
        handles = []
        for _, args, log_path, _ in items:
            name = self.actor_name(args)
            actor = actor_class.options(name=name, namespace=RAY_NAMESPACE, lifetime="detached",
                                        num_cpus=self.resources.cpus, num_gpus=self.resources.gpus,
                                        max_restarts=0).remote(args, log_path, os.getcwd(), self.resources.cpus)
            handles.append(RayRun(actor, name, log_path, args))
        return handles

    def attach(self, record, log_path):
        import ray
        self._connect()
        try:
            actor = ray.get_actor(record["actor"], namespace=record.get("namespace", RAY_NAMESPACE))
        except ValueError:
            return None  # no such actor: it ended (or its cluster restarted)
        return RayRun(actor, record["actor"], log_path, ())
