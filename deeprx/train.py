"""Train DeepRx on in-graph Sionna slots (from scratch, or distilled from a teacher),
then run the bench on it.

Example usage:
  python -m deeprx.train --flagfile=teacher.flags --workdir=runs/teacher-cpu-1dmrs
  python -m deeprx.train --flagfile=kd.flags --workdir=runs/kd-student-cpu

Rerun with the same --workdir to resume from the last checkpoint (step count and
optimizer state continue). From scratch, the model is sized by --width_multiplier or by
--model_mflops (a FLOP budget per slot). With --teacher=DIR the run distills a student
whose FLOPs are --student_flops_ratio x the teacher's; --width_multiplier/--model_mflops
then describe the teacher that --train_teacher_if_missing trains first.
Flagfiles may include flagfiles (kd.flags includes teacher.flags); relative paths are
read from the current directory; later flags win. The flags become a checked
train_run.Run, trained by deeprx/network/train_run.py.
"""

import dataclasses
import signal
import sys

from absl import flags

from deeprx import cli
from deeprx.core import config as config_lib
from deeprx.cli import train_flags
from deeprx.cli import kd_flags
from deeprx.cli import scenario_flags
from deeprx.core import workdir as workdir_lib
from deeprx.network import distribute as distribute_lib
from deeprx.network import model as model_lib
from deeprx.network import saved
from deeprx.network import train_run

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("workdir", None, "run directory (created; reused to resume)")
    flags.DEFINE_enum("model_variant", "paper", ["paper", "edge"],
                      "paper: the paper's dilations; edge: equal dilations for the Edge TPU")
    flags.DEFINE_float("width_multiplier", 1.0, "scales every width of DeepRx")
    flags.DEFINE_float("model_mflops", 0.0, "FLOP budget per slot in MFLOPs; >0 overrides width_multiplier")
    flags.DEFINE_integer("depth_multiplier", 2, "depthwise conv depth multiplier")
    flags.DEFINE_integer("steps", 2000, "training steps (total, across resumes)")
    flags.DEFINE_integer("batch_size", 16, "slots per step")
    flags.DEFINE_float("learning_rate", 1e-3, "peak Adam learning rate")
    flags.DEFINE_integer("warmup_steps", 100, "linear warm-up steps")
    flags.DEFINE_float("final_lr_fraction", 0.01, "cosine decay ends at this fraction of the peak")
    flags.DEFINE_integer("checkpoint_every", 500, "steps between checkpoints")
    flags.DEFINE_integer("log_every", 50, "steps between progress lines")
    flags.DEFINE_integer("seed", 0, "training seed: initial weights and training slots")
    flags.DEFINE_bool("xla", False, "XLA-compile the forward/backward pass (off: measured far slower on this CPU, "
                      "BUILD_NOTES.md)")
    flags.DEFINE_enum("optimizer", "adam", list(config_lib.OPTIMIZERS), "adam, or lamb (the DeepRx paper's)")
    flags.DEFINE_enum("schedule", "cosine", list(config_lib.SCHEDULES),
                      "after the warm-up: cosine decay, or flat_linear (flat to half the steps, then linear decay)")
    flags.DEFINE_enum("sinr_sampling", "snr_sir", list(config_lib.SINR_SAMPLINGS),
                      "training slots: snr_sir draws SNR and SIR independently from the scenario's ranges; sinr "
                      "draws the SINR from --train_sinr_db and splits it as the evaluation does")
    flags.DEFINE_string("train_sinr_db", None, "sinr sampling: training SINR range LO:HI in dB (default: the "
                        f"preset's evaluation grid +-{config_lib.TRAIN_SINR_MARGIN_DB:g} dB)")
    flags.DEFINE_float("aux_channel_weight", 0.0, "weight of the auxiliary channel-estimate loss (0: none)")
    flags.DEFINE_integer("train_num_prb", None, "train on this many PRB (default: the scenario's); the model is "
                         "saved and evaluated on the scenario's grid")
    flags.DEFINE_integer("curve_every", 0, "steps between learning-curve points in curve.csv (0: none)")
    flags.DEFINE_enum("distribute", "none", list(distribute_lib.STRATEGIES),
                      "none: one device; mirrored: the local GPUs; multiworker: the machines of TF_CONFIG")
    flags.DEFINE_integer("cpu_replicas", 0, "mirrored without GPUs: split the CPU into this many replicas "
                         "(to run the distributed path on a CPU)")
    flags.DEFINE_bool("eval", True, "run the bench on the trained model at the end")
    flags.DEFINE_integer("eval_max_bits", None, "override the preset's bits per SINR point in the final evaluation")
    # Knowledge distillation (PAPER.md section 2).
    flags.DEFINE_string("teacher", None, "teacher run directory: distill a student from it")
    kd_flags.define_flags()
    flags.DEFINE_string("teacher_cache", None, "KD: a directory where runs of the same teacher and training slots "
                        "(seed, grid) share the teacher's logits of each step, whatever the student: the first "
                        "run writes them, later ones read them instead of running the teacher (same results)")
    flags.DEFINE_bool("train_teacher_if_missing", False, "KD: train the teacher first if --teacher has none")
    flags.DEFINE_enum("student_variant", "edge", ["paper", "edge"],
                      "KD: the student's network: edge (every operator maps to the Edge TPU, whatever the "
                      "teacher's variant) or paper (the paper's dilations)")
    scenario_flags.define_flags()




def _model_config_from_flags(scenario):
    with cli.flag("width_multiplier"):
        model_config = model_lib.DeepRxConfig(width_multiplier=FLAGS.width_multiplier,
                                              depth_multiplier=FLAGS.depth_multiplier, variant=FLAGS.model_variant)
    if FLAGS.model_mflops < 0:
        raise cli.FlagError("model_mflops", f"must be >= 0 (0 keeps --width_multiplier), got {FLAGS.model_mflops}")
    if FLAGS.model_mflops > 0:
        with cli.flag("model_mflops"):
            model_config = model_lib.size_for_flops(model_config, scenario, FLAGS.model_mflops * 1e6)
    return model_config


def teacher_command(teacher_dir):
    """The exact command that trains the teacher --teacher expects, from the resolved flags."""
    return " ".join(["python -m deeprx.train", *cli.flag_args(train_flags.TEACHER_FLAGS), f"--workdir={teacher_dir}"])


def _read_teacher(teacher_dir, scenario):
    """The teacher's DeepRxConfig from its run settings; FlagError if it was trained on another
    scenario (only the PRB count may differ: the fully convolutional teacher runs on the
    student's grid, so a teacher shipped for the `cpu` preset teaches on `demo`)."""
    teacher = workdir_lib.RunDir(teacher_dir)
    try:
        teacher.check(scenario)
    except ValueError as error:
        raise cli.FlagError("teacher", f"{teacher_dir!r}: {error}") from None
    return saved.model_config(teacher)


def run_from_flags():
    """The Run the flags describe; raises cli.FlagError before any compute."""

    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    if not FLAGS.workdir:
        raise cli.FlagError("workdir", "a run directory is required")
    model_config = _model_config_from_flags(scenario)
    settings = {name: getattr(FLAGS, name) for name in train_flags.TRAIN_FLAGS}
    if settings["train_sinr_db"] is not None:
        with cli.flag("train_sinr_db"):
            settings["train_sinr_db"] = scenario_flags.parse_pair(settings["train_sinr_db"])
    elif settings["sinr_sampling"] == "sinr":
        settings["train_sinr_db"] = config_lib.train_sinr_range(preset.evaluation)
    with cli.settings(fallback="steps"):
        train_config = config_lib.TrainConfig(**settings)
    with cli.flag("distribute"):
        distribute_lib.check(FLAGS.distribute)
    evaluation = preset.evaluation
    if FLAGS.eval_max_bits is not None:
        with cli.flag("eval_max_bits"):
            evaluation = dataclasses.replace(evaluation, max_bits=FLAGS.eval_max_bits)
    run = train_run.Run(FLAGS.workdir, preset.name, scenario, model_config, train_config, evaluation,
                        distribute=FLAGS.distribute, cpu_replicas=FLAGS.cpu_replicas, evaluate=FLAGS.eval,
                        teacher_cache=FLAGS.teacher_cache)

    if FLAGS.teacher_cache and not FLAGS.teacher:
        raise cli.FlagError("teacher_cache", "shares a teacher's logits between KD runs: give --teacher too")
    if FLAGS.teacher_cache and (FLAGS.distribute != "none" or FLAGS.kd_feature_weight):
        raise cli.FlagError("teacher_cache", "is for one device and logits-only KD: leave --distribute at none "
                                             "and --kd_feature_weight at 0")
    if FLAGS.teacher:
        with cli.flag("teacher"):
            teacher_dir = workdir_lib.resolve(FLAGS.teacher)
        if train_config.aux_channel_weight:
            raise cli.FlagError("aux_channel_weight", "is for training from scratch, not with --teacher")
        with cli.settings(fallback="teacher"):
            kd = kd_flags.kd_config(FLAGS, teacher_dir)
        teacher_run = None
        if workdir_lib.RunDir(teacher_dir).has_model():
            teacher_config = _read_teacher(teacher_dir, scenario)
        elif FLAGS.train_teacher_if_missing:
            teacher_config = model_config
            teacher_run = dataclasses.replace(run, workdir=teacher_dir)
            with cli.flag("teacher"):
                workdir_lib.check_workdir(teacher_dir, teacher_run.settings())
        else:
            raise cli.FlagError("teacher", f"no trained teacher in {teacher_dir!r}; train it with: "
                                           f"{teacher_command(teacher_dir)} (or add --train_teacher_if_missing)")
        with cli.flag("student_flops_ratio"):
            student_config = model_lib.student_config(teacher_config, scenario, kd.student_flops_ratio,
                                                      FLAGS.student_variant)
        run = dataclasses.replace(run, model_config=student_config, kd=kd, teacher_run=teacher_run)
    with cli.flag("workdir"):
        workdir_lib.check_workdir(run.workdir, run.settings())
    return run


def train_and_evaluate(run, command):
    """train_run.train_and_evaluate, its stops and collapses as exit codes: 1 on a collapse, 143
    (SIGTERM's) when asked to stop, the checkpoint saved."""
    from deeprx.network import training
    try:
        train_run.train_and_evaluate(run, command, flags_text=cli.own_flags_text())
    except training.TrainingCollapsed as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    except training.TrainingStopped as stopped:
        print(f"{stopped}: rerun the same command to resume", flush=True)
        sys.exit(128 + signal.SIGTERM)


def main(argv):
    del argv
    run = run_from_flags()
    if run.teacher_run is not None:
        print(f"No teacher in {run.kd.teacher}: training it first (--train_teacher_if_missing)", flush=True)
        train_and_evaluate(run.teacher_run, teacher_command(run.kd.teacher))
        run = run_from_flags()  # the student is sized from the teacher as saved
    train_and_evaluate(run, " ".join(["python -m deeprx.train"] + sys.argv[1:]))


if __name__ == "__main__":
    cli.run(main, define_flags)
