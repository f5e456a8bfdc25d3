"""tf.distribute strategies for training: one device, the local devices, or several machines.

  none:        the default strategy (one device: a GPU if TensorFlow sees one, else the CPU).
  mirrored:    MirroredStrategy over the local GPUs (or, with none, the local logical CPUs),
               gradients all-reduced every step.
  multiworker: MultiWorkerMirroredStrategy across the machines of the TF_CONFIG environment
               variable, or, without one, of the Slurm job step it runs in (`srun -n N`:
               TensorFlow's SlurmClusterResolver reads the step's nodes and tasks; docs/cluster.md).
               Every worker runs the same command; worker 0 is the chief and writes the run
               directory's outputs.

The global batch (--batch_size) is split evenly across the replicas; see
deeprx.network.training.Trainer.
"""

import json
import os

STRATEGIES = ("none", "mirrored", "multiworker")


def slurm_step_tasks():
    """The tasks of the Slurm job step this process is one of, without a TF_CONFIG (0 when it
    is not under srun, or TF_CONFIG says the cluster)."""
    if "TF_CONFIG" in os.environ or "SLURM_PROCID" not in os.environ:
        return 0
    try:
        return int(os.environ.get("SLURM_STEP_NUM_TASKS") or 0)  # srun sets it; a batch script does not
    except ValueError:
        return 0


def _slurm_port_base():
    """The first port of the workers on a node: the same in every task of a job step, apart
    between jobs sharing a node."""
    return 20000 + (int(os.environ.get("SLURM_JOB_ID") or 0) * 16) % 40000


def check(name):
    """ValueError unless `name` is a strategy this machine can start (before any compute)."""
    if name not in STRATEGIES:
        raise ValueError(f"must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multiworker" and slurm_step_tasks() > 1:
        return  # the cluster is the Slurm job step's
    if name == "multiworker":
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG", ""))["cluster"]
        except (ValueError, KeyError, TypeError):
            raise ValueError("multiworker needs the TF_CONFIG environment variable (JSON with 'cluster' and "
                             "'task'), or to run as one of several tasks of a Slurm job step (srun -n N), see "
                             "docs/cluster.md") from None
        if not cluster.get("worker"):
            raise ValueError("TF_CONFIG's cluster lists no worker")


def make(name, cpu_replicas=0):
    """The tf.distribute strategy called `name` (see the module docstring). With mirrored on a
    machine without GPUs, `cpu_replicas` > 1 splits the CPU into that many logical devices,
    one replica each (to run the distributed path where there is no GPU, e.g. in tests); it
    must be called before TensorFlow has run anything."""
    import tensorflow as tf
    check(name)
    if name == "mirrored":
        if not tf.config.list_physical_devices("GPU") and cpu_replicas > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker" and slurm_step_tasks() > 1:
        gpus = int(os.environ.get("SLURM_GPUS_ON_NODE", "0") or 0)
        # The resolver hands out GPU ids to a node's tasks and places no more tasks than it has
        # ids (and divides by zero without GPUs): on CPU nodes, one unused id per task.
        ids = dict(gpus_per_node=gpus, auto_set_gpu=True) if gpus else dict(
            gpus_per_node=slurm_step_tasks(), gpus_per_task=1, auto_set_gpu=False)
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=_slurm_port_base(), **ids)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief():
    """True on the process that writes a run's outputs: always, but under multiworker only on
    the chief (task "chief", or worker 0 when the cluster has no chief)."""
    if slurm_step_tasks() > 1:
        return os.environ["SLURM_PROCID"] == "0"
    try:
        config = json.loads(os.environ.get("TF_CONFIG", ""))
    except ValueError:
        return True
    task, cluster = config.get("task", {}), config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index", 0) == 0
