"""Real clusters on this machine for the backend tests, started and stopped by the tests.

SlurmCluster: a single-node Slurm (Debian's slurm-wlm and munge; installed by
tests/install_cluster_tools.sh, which `make test` runs) with its own munge key and socket,
slurm.conf, state and logs in a temporary directory: munged, slurmctld and slurmd as root
(proctrack/linuxproc, task/none, no accounting database), 2 CPUs, requeue allowed.
RayCluster: a Ray head on 127.0.0.1 with 2 CPUs, its own temporary directory.

Each has `unavailable()`: why it cannot start here (a test then skips with that reason), or None.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from conftest import free_ports

SLURM_DAEMONS = ("munged", "slurmctld", "slurmd")
SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


def _wait(predicate, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


class SlurmCluster:
    def __init__(self, root):
        self.root = str(root)
        self.conf = os.path.join(self.root, "slurm.conf")
        self.node = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    @staticmethod
    def unavailable():
        if os.geteuid() != 0:
            return "the single-node Slurm runs its daemons as root; run the tests as root"
        missing = [name for name in SLURM_DAEMONS + SLURM_COMMANDS
                   if not shutil.which(name) and not os.path.isfile(f"/usr/sbin/{name}")]
        if missing:
            return (f"Slurm is not installed ({', '.join(missing)} missing): run "
                    "`bash tests/install_cluster_tools.sh` (apt-get: slurm-wlm, munge)")
        return None

    def _daemon(self, name):
        return shutil.which(name) or f"/usr/sbin/{name}"

    def start(self):
        os.makedirs(os.path.join(self.root, "state"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "spool"), exist_ok=True)
        os.chmod(self.root, 0o700)
        key = os.path.join(self.root, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.socket = os.path.join(self.root, "munge.socket")
        subprocess.run([self._daemon("munged"), "--force", f"--socket={self.socket}", f"--key-file={key}",
                        f"--pid-file={self.root}/munged.pid", f"--log-file={self.root}/munged.log",
                        f"--seed-file={self.root}/munged.seed"], check=True, capture_output=True, timeout=30)
        ctld_port, d_port = free_ports(2)
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=deeprxtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={self.root}/state
SlurmdSpoolDir={self.root}/spool
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmctldLogFile={self.root}/slurmctld.log
SlurmdLogFile={self.root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobRequeue=1
SwitchType=switch/none
MinJobAge=600
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([self._daemon(daemon), "-f", self.conf], check=True, capture_output=True, timeout=60,
                           env=self.env)
        _wait(self._node_ready, 60, f"the Slurm node to come up ({self.root}/slurmd.log)")
        return self

    def _node_ready(self):
        result = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
        return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed", "allocated")

    def jobs(self):
        """{job id: state} of the jobs the controller knows (finished ones for MinJobAge)."""
        result = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True,
                                env=self.env, check=True)
        return dict(line.split() for line in result.stdout.splitlines() if line.strip())

    def stop(self):
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env)
        for name in ("slurmd", "slurmctld", "munged"):
            path = os.path.join(self.root, f"{name}.pid")
            try:
                with open(path) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 15)
                _wait(lambda: not os.path.exists(f"/proc/{pid}"), 3, f"{name} to stop")
            except RuntimeError:
                os.kill(pid, 9)
            except (OSError, ValueError):
                pass


class RayCluster:
    def __init__(self):
        # Ray's sockets live under its temporary directory, and a Unix socket path has at most
        # 107 bytes: a short directory of its own, not pytest's.
        self.root = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
        self.port = free_ports(1)[0]
        self.address = f"127.0.0.1:{self.port}"
        # Ray binds a node to the machine's network address unless it runs as a one-machine
        # cluster (this variable off): then everything stays on 127.0.0.1.
        self.env = dict(os.environ, RAY_TMPDIR=self.root, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")

    @staticmethod
    def unavailable():
        import importlib.util
        if importlib.util.find_spec("ray") is None:
            return "ray is not installed: pip install -e '.[cluster]'"
        return None

    def _ray(self, *args, timeout=120):
        return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), *args], capture_output=True,
                              text=True, env=self.env, timeout=timeout)

    def start(self):
        result = self._ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                           "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                           f"--temp-dir={self.root}")
        if result.returncode:
            raise RuntimeError("ray start failed:\n" + result.stdout[-2000:] + result.stderr[-2000:])
        return self

    def stop(self):
        self._ray("stop", "--force")
        shutil.rmtree(self.root, ignore_errors=True)
