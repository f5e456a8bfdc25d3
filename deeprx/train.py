"""Train DeepRx on in-graph Sionna slots, then run the bench on it.

Example usage:
  python -m deeprx.train --flagfile=teacher.flags --workdir=runs/teacher-cpu

Rerun with the same --workdir to resume from the last checkpoint (step count and
optimizer state continue). The model is sized by --width_multiplier, or by
--model_mflops (a FLOP budget per slot, which picks the width multiplier).
Flagfiles may include flagfiles (--flagfile=teacher.flags inside smoke.flags); relative
paths are read from the current directory; later flags win.
"""

import dataclasses
import os
import sys
import time

from absl import flags

from deeprx import cli
from deeprx import scenario_flags

FLAGS = flags.FLAGS
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
flags.DEFINE_integer("seed", 0, "training data seed")
flags.DEFINE_bool("xla", False, "XLA-compile the forward/backward pass (off: measured >15x slower on this CPU, BUILD_NOTES.md)")
flags.DEFINE_bool("eval", True, "run the bench on the trained model at the end")
flags.DEFINE_integer("eval_max_bits", None, "override the preset's bits per SINR point in the final evaluation")


def configs_from_flags():
    """All configs from the flags; raises cli.FlagError before any compute."""
    from deeprx import config as config_lib
    from deeprx import model as model_lib
    from deeprx import workdir as workdir_lib

    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    if not FLAGS.workdir:
        raise cli.FlagError("workdir", "a run directory is required")
    with cli.flag("width_multiplier"):
        model_config = model_lib.DeepRxConfig(width_multiplier=FLAGS.width_multiplier,
                                              depth_multiplier=FLAGS.depth_multiplier,
                                              variant=FLAGS.model_variant)
    if FLAGS.model_mflops < 0:
        raise cli.FlagError("model_mflops", f"must be >= 0 (0 keeps --width_multiplier), got {FLAGS.model_mflops}")
    if FLAGS.model_mflops > 0:
        with cli.flag("model_mflops"):
            model_config = model_lib.size_for_flops(model_config, scenario, FLAGS.model_mflops * 1e6)
    try:
        train_config = config_lib.TrainConfig(**{name: getattr(FLAGS, name) for name in TRAIN_FLAGS})
    except ValueError as error:  # each message starts with the setting, which is the flag's name
        raise cli.FlagError(str(error).split()[0], str(error)) from None
    evaluation = preset.evaluation
    if FLAGS.eval_max_bits is not None:
        with cli.flag("eval_max_bits"):
            evaluation = dataclasses.replace(evaluation, max_bits=FLAGS.eval_max_bits)
    run_config = workdir_lib.run_config_dict(preset.name, scenario, model_config, train_config)
    with cli.flag("workdir"):
        workdir_lib.check_workdir(FLAGS.workdir, run_config)
    return preset, scenario, model_config, train_config, evaluation, run_config


TRAIN_FLAGS = ("steps", "batch_size", "learning_rate", "warmup_steps", "final_lr_fraction",
               "checkpoint_every", "log_every", "seed", "xla")


def main(argv):
    del argv
    preset, scenario, model_config, train_config, evaluation, run_config = configs_from_flags()
    from deeprx import bench
    from deeprx import ber as ber_lib
    from deeprx import model as model_lib
    from deeprx import training

    workdir = FLAGS.workdir
    os.makedirs(workdir, exist_ok=True)
    ber_lib.write_json(os.path.join(workdir, "config.json"), run_config)
    ber_lib.atomic_write(os.path.join(workdir, "flags.txt"), lambda f: f.write(FLAGS.flags_into_string()))
    name = os.path.basename(os.path.normpath(workdir))
    model = model_lib.build(model_config, scenario, name="deeprx")
    flops = model_lib.flops_per_slot(model_config, scenario)
    print(f"DeepRx ({model_config.variant}, width x{model_config.width_multiplier:.3f}): "
          f"{model.count_params():,} parameters, {flops / 1e6:.1f} MFLOPs per slot | "
          f"{train_config.steps} steps of {train_config.batch_size} slots | {bench.title(preset.name, scenario, evaluation).split(': ', 1)[1]}",
          flush=True)
    trainer = training.Trainer(model, scenario, train_config, workdir)
    timing = trainer.fit()
    training.save_model(model, os.path.join(workdir, "model.keras"))
    train_summary = {"parameters": model.count_params(), "flops_per_slot": flops,
                     "width_multiplier": model_config.width_multiplier, **timing,
                     "command": " ".join(["python -m deeprx.train"] + sys.argv[1:]), **bench.provenance()}
    ber_lib.write_json(os.path.join(workdir, "train.json"), train_summary)
    print(f"Saved {workdir}/model.keras", flush=True)
    if FLAGS.eval:
        summary = training.evaluate_model(model, name, scenario, evaluation, os.path.join(workdir, "eval"),
                                          preset.name)
        for receiver, entry in summary.items():
            print(f"{receiver:>16}: GM BER {entry['gm_ber']:.3f} | SINR at BER 1e-2 {entry['sinr_at_ber_1e-2']} dB"
                  f" | at 1e-3 {entry['sinr_at_ber_1e-3']} dB", flush=True)


if __name__ == "__main__":
    cli.run(main)
