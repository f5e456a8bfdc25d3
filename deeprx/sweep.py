"""The paper's knowledge-distillation study (PAPER.md section 2) as one resumable command.

Example usage:
  python -m deeprx.sweep --flagfile=sweep-tiny.flags --workdir=/tmp/kd-tiny
  nohup python -m deeprx.sweep --flagfile=sweep-cpu.flags --workdir=runs/kd-cpu > runs/kd-cpu.log 2>&1 &
  python -m deeprx.sweep --flagfile=sweep-cpu.flags --workdir=runs/kd-cpu --publish=data/results/kd-cpu

A sweep flagfile sets deeprx.train's teacher and KD flags (sweep-cpu.flags includes kd.flags,
which includes teacher.flags) and the sweep's grids. Each run is one `python -m deeprx.train`
process in DIR/runs/<run> (its output in DIR/logs/<run>.log). A run whose model and
evaluation exist is skipped and an interrupted one resumes from its last checkpoint, so the
same command continues an interrupted sweep. The teacher of --teacher is used as the base
teacher (trained there first if missing); the other teachers are trained in DIR/runs.

The steps (the paper's figures), each writing DIR/<step>.csv and PNG plots:
  1 student_size  students of several sizes from scratch: Geometric Mean BER vs FLOPs (Fig. 3)
  2 teacher_size  the base student distilled from teachers of several sizes (Fig. 4)
  3 alpha_T       the alpha grid at the base T, the T grid at the base alpha (Table III, Fig. 5)
  4 ber_vs_sinr   BER vs SINR of teacher, KD student, scratch student, ls_lmmse and
                  perfect_lmmse for each DMRS count (Fig. 6); writes DIR/kd_summary.json
Steps 1-3 train with the first seed and the base DMRS count, step 4 with every seed and DMRS
count. Sizes are FLOPs per slot; student sizes are ratios of the base teacher's (the base
student: --student_flops_ratio). Step 4 distills with the (alpha, T) of step 3's best run
(--fig6_kd=best: the paper chose its alpha and T by such a search) or with --alpha and
--temperature (--fig6_kd=flags). Every run that needs no other run first trains at the start
(teachers first, the longest), so all --parallel processes stay busy; then the steps run in
the order 3, 4, 1, 2, training what is left (KD students of new teachers, step 4's KD students)
and writing their figures: the headline first. Beyond the paper, --hint_arm_weight=W adds to
step 4 a KD student with a feature hint (--kd_feature_weight=W) per seed, compared over the
budgets with its KD and scratch twins the same way as KD with scratch.
"""

import os
import signal

from absl import flags

from deeprx import train as train_lib
from deeprx import cli
from deeprx.core import config as config_lib
from deeprx.core import kd_config
from deeprx.core import workdir as workdir_lib
from deeprx.cli import train_flags
from deeprx.cli import scenario_flags
from deeprx.experiments import backends
from deeprx.experiments import kd_summary
from deeprx.experiments import sweep as sweep_lib
from deeprx.experiments import sweep_publish
from deeprx.network import model as model_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_list("seeds", ["0", "1", "2"], "training seeds of the step-4 students (steps 1-3 use the first)")
    flags.DEFINE_integer("student_steps", 1000, "training steps of every student (teachers: --steps)")
    flags.DEFINE_list("student_ratios", ["0.15", "0.25", "0.6"],
                      "step 1: student FLOPs / base teacher's (the base student is added)")
    flags.DEFINE_list("teacher_widths", ["0.35"], "step 2: teacher width multipliers (the base teacher is added)")
    flags.DEFINE_list("alphas", ["0.1", "0.5", "0.9", "0.98", "0.999"], "step 3: alpha grid, at --temperature")
    flags.DEFINE_list("temperatures", ["1", "2", "3", "4", "5"], "step 3: T grid, at --alpha")
    flags.DEFINE_list("dmrs_counts", ["1", "2"], "step 4: DMRS symbols per slot")
    flags.DEFINE_list("dmrs_teachers", [], "step 4: the trained teacher of another DMRS count than --teacher's, "
                      "N:MODEL (a run directory or pretrained:NAME), e.g. 2:pretrained:teacher-cpu-2dmrs; "
                      "without one the sweep trains it in DIR/runs")
    flags.DEFINE_float("hint_arm_weight", 0.0, "step 4: with W > 0, also a KD student with a feature hint "
                       "(--kd_feature_weight=W) per seed, paired with its KD and scratch twins over the budgets")
    flags.DEFINE_list("hint_arm_dmrs_counts", [], "step 4: the DMRS counts the hint arm trains for (default: all "
                      "of --dmrs_counts)")
    flags.DEFINE_enum("fig6_kd", "best", ["best", "flags"],
                      "step 4 (alpha, T): step 3's best run, or --alpha/--temperature")
    flags.DEFINE_list("sweep_steps", ["1", "2", "3", "4"], "the steps to run")
    flags.DEFINE_integer("parallel", 1, "training runs at a time (local: sharing this machine's cores; slurm: the "
                         "job array's tasks at a time)")
    flags.DEFINE_enum("backend", "local", list(backends.BACKENDS), "where the runs train: this machine, a Slurm "
                      "cluster (submitit) or a Ray cluster; a rerun re-attaches to cluster jobs still running")
    flags.DEFINE_string("ray_address", "auto", "--backend=ray: the cluster's head, host:port (auto: on a node)")
    flags.DEFINE_integer("cpus_per_run", 1, "--backend=slurm/ray: CPUs per run (TensorFlow threads)")
    flags.DEFINE_integer("gpus_per_run", 0, "--backend=slurm/ray: GPUs per run")
    flags.DEFINE_float("mem_per_run_gb", 0.0, "--backend=slurm: memory per run (0: the partition's default)")
    flags.DEFINE_integer("time_limit_min", 0, "--backend=slurm: time limit per job in minutes (0: the partition's); "
                         "at the limit a run checkpoints and is requeued")
    flags.DEFINE_string("partition", "", "--backend=slurm: partition (default: the cluster's default)")
    flags.DEFINE_integer("signal_delay_s", 120, "--backend=slurm: the checkpoint signal comes this long before the "
                         "time limit")
    flags.DEFINE_string("publish", None, "train nothing: copy the step files and every finished run's small files "
                                         "of --workdir into this directory (e.g. data/results/kd-cpu)")
    train_lib.define_flags()  # a sweep flagfile sets the training flags it passes on


def _numbers(name, cast, check, what):
    values = []
    for text in getattr(FLAGS, name):
        try:
            value = cast(text)
        except ValueError:
            raise cli.FlagError(name, f"{text!r} is not a number") from None
        if not check(value):
            raise cli.FlagError(name, f"every value must be {what}, got {text!r}")
        values.append(value)
    if not values:
        raise cli.FlagError(name, "give at least one value")
    if len(set(values)) != len(values):
        raise cli.FlagError(name, f"values repeat in {','.join(getattr(FLAGS, name))}")
    return tuple(values)


def sweep_from_flags():
    """The Sweep the flags describe; raises cli.FlagError before any compute."""
    _, scenario = scenario_flags.scenario_from_flags(FLAGS)
    if not FLAGS.workdir:
        raise cli.FlagError("workdir", "a sweep directory is required")
    if FLAGS.model_mflops:
        raise cli.FlagError("model_mflops", "the sweep sizes its teachers by --width_multiplier and "
                                            "--teacher_widths; leave --model_mflops at 0")
    if not FLAGS.eval:
        raise cli.FlagError("eval", "the sweep compares evaluated runs; drop --noeval")
    if FLAGS.student_steps < 1:
        raise cli.FlagError("student_steps", f"must be a positive integer, got {FLAGS.student_steps}")
    positive = (lambda v: v > 0, "positive")
    sweep = sweep_lib.Sweep(
        workdir=FLAGS.workdir, scenario=scenario, base_width=FLAGS.width_multiplier,
        base_dmrs=scenario.dmrs.num_symbols, base_ratio=FLAGS.student_flops_ratio,
        base_alpha=FLAGS.alpha, base_temperature=FLAGS.temperature, base_teacher_dir=FLAGS.teacher,
        seeds=_numbers("seeds", int, lambda v: v >= 0, "a non-negative integer"),
        student_steps=FLAGS.student_steps,
        student_ratios=tuple(sorted(set(_numbers("student_ratios", float, *positive)) | {FLAGS.student_flops_ratio})),
        teacher_widths=tuple(sorted(set(_numbers("teacher_widths", float, *positive)) | {FLAGS.width_multiplier})),
        alphas=_numbers("alphas", float, lambda v: v >= 0, ">= 0"),
        temperatures=_numbers("temperatures", float, *positive),
        dmrs_counts=_numbers("dmrs_counts", int, lambda v: v in config_lib.DMRS_POSITIONS,
                             " or ".join(map(str, config_lib.DMRS_POSITIONS))),
        fig6_kd=FLAGS.fig6_kd,
        steps=_numbers("sweep_steps", int, lambda v: v in sweep_lib.STEPS, "one of 1, 2, 3, 4"),
        train_values=tuple((name, getattr(FLAGS, name)) for name in train_flags.TEACHER_FLAGS + train_flags.KD_FLAGS),
        dmrs_teacher_dirs=_dmrs_teachers(scenario.dmrs.num_symbols), parallel=FLAGS.parallel,
        hint_weight=FLAGS.hint_arm_weight, hint_dmrs_counts=_hint_dmrs_counts())
    if sweep.parallel < 1:
        raise cli.FlagError("parallel", f"must be a positive integer, got {sweep.parallel}")
    for alpha in sweep.alphas + (sweep.base_alpha,):
        for temperature in sweep.temperatures + (sweep.base_temperature,):
            with cli.flag("alphas" if alpha in sweep.alphas else "alpha"):
                kd_config.check_kd_settings(alpha, temperature, FLAGS.kd_form, FLAGS.kd_reduction)
    for width in sweep.teacher_widths:
        with cli.flag("teacher_widths"):
            sweep.model_config(width)
    base = sweep.model_config(sweep.base_width)
    for ratio in sweep.student_ratios:
        with cli.flag("student_ratios"):
            model_lib.student_config(base, scenario, ratio, FLAGS.student_variant)
    return sweep


def _hint_dmrs_counts():
    """The DMRS counts of step 4's KD+hint arm: none without --hint_arm_weight."""
    if FLAGS.hint_arm_weight < 0:
        raise cli.FlagError("hint_arm_weight", f"must be >= 0 (0: no hint arm), got {FLAGS.hint_arm_weight}")
    if not FLAGS.hint_arm_weight:
        if FLAGS.hint_arm_dmrs_counts:
            raise cli.FlagError("hint_arm_dmrs_counts", "give --hint_arm_weight > 0 too, or drop this flag")
        return ()
    if not FLAGS.hint_arm_dmrs_counts:
        return tuple(int(count) for count in FLAGS.dmrs_counts)
    return _numbers("hint_arm_dmrs_counts", int, lambda v: str(v) in FLAGS.dmrs_counts,
                    f"one of --dmrs_counts ({','.join(FLAGS.dmrs_counts)})")


def _dmrs_teachers(base_dmrs):
    """((DMRS count, teacher spec), ...) of --dmrs_teachers, each a finished run of that DMRS count."""
    teachers = {}
    with cli.flag("dmrs_teachers"):
        for entry in FLAGS.dmrs_teachers:
            count, _, spec = entry.partition(":")
            if not count.isdigit() or not spec:
                raise ValueError(f"expected N:MODEL such as 2:pretrained:teacher-cpu-2dmrs, got {entry!r}")
            count = int(count)
            if count not in config_lib.DMRS_POSITIONS or count == base_dmrs or count in teachers:
                raise ValueError(f"{entry!r}: give each DMRS count other than --teacher's ({base_dmrs}) at most once, "
                                 f"from {' or '.join(map(str, config_lib.DMRS_POSITIONS))}")
            run_dir = workdir_lib.RunDir(spec)
            if not run_dir.finished():
                raise ValueError(f"{spec!r} is not a finished run (model.keras, train.json and eval/summary.json)")
            if run_dir.num_dmrs != count:
                raise ValueError(f"{spec!r} was trained with {run_dir.num_dmrs} DMRS symbol(s), not {count}")
            teachers[count] = spec
    return tuple(sorted(teachers.items()))


def backend_from_flags(sweep):
    """The backend of --backend, checked (a cluster's: reachable, the resources a run asks
    exist there) before any run is submitted; raises cli.FlagError."""
    resources = backends.Resources(cpus=FLAGS.cpus_per_run, gpus=FLAGS.gpus_per_run, mem_gb=FLAGS.mem_per_run_gb,
                                   time_min=FLAGS.time_limit_min, partition=FLAGS.partition,
                                   signal_delay_s=FLAGS.signal_delay_s)
    with cli.flag("backend"):
        backend = backends.make(FLAGS.backend, sweep.workdir, resources, sweep.parallel, FLAGS.ray_address)
        backend.check()
    return backend


def _stop(signum, frame):
    del frame
    raise SystemExit(f"stopped by signal {signum}; rerun the same command to resume")


def main(argv):
    del argv
    sweep = sweep_from_flags()
    if FLAGS.publish:
        if not os.path.isdir(sweep.workdir):
            raise cli.FlagError("workdir", f"no sweep at {sweep.workdir!r} to publish")
        sweep_publish.publish(sweep.workdir, FLAGS.publish)
        return
    # A sweep started with nohup/& ignores SIGINT and dies on SIGTERM without stopping its
    # training processes: both now stop them (they resume from their checkpoints on rerun).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    backend = backend_from_flags(sweep)
    with workdir_lib.hold(sweep.workdir, "sweep driver"):  # two would train the same runs twice
        summary = sweep_lib.run_sweep(sweep, backend=backend)
    if summary:
        print(kd_summary.kd_table(summary), flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
