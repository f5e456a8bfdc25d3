"""Ship a finished training run as a pretrained model: data/models/<name>/ with a model card;
or keep an unfinished one's latest checkpoint in data/checkpoints/<name>/ for a new machine.

Example usage:
  python -m deeprx.ship --model=runs/teacher-cpu-1dmrs --name=teacher-cpu-1dmrs
  python -m deeprx.ship --model=runs/kd-student --name=kd-student-cpu-2dmrs \
      --tflite=edge_out/kd-student_int8.tflite,edge_out/kd-student_int8_qat.tflite
  python -m deeprx.ship --model=runs/teacher-cpu-2dmrs --name=teacher-cpu-2dmrs --checkpoint_only
  (on a new machine: cp -r data/checkpoints/teacher-cpu-2dmrs runs/ and rerun the run's command)

Copies what rebuilds and documents the model (model.keras, config.json, train.json, its
evaluation's ber.csv/summary.json/ber.png and, if it has one, its learning curve) and writes
MODEL.md: the exact command, commit, steps, slots seen, training time, machine, parameters
and FLOPs per slot, and its BER table against the classical receivers it was evaluated
with. --tflite adds deployable exports (int8 .tflite files with their export records and Edge
TPU preflight reports), listed in MODEL.md with the grid each takes and the command that
made it, and shipped under names that say that grid: <name>_<P>prb_int8.tflite. Rerun on a
shipped model (--model=pretrained:<name> --name=<name>), it rewrites MODEL.md and replaces the
shipped exports by the --tflite ones. Every CLI that takes a model then accepts
`pretrained:<name>`.
"""

import os

from absl import flags

from deeprx import cli
from deeprx.export import shipping

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("model", None, "a finished run directory of python -m deeprx.train (with its eval/)")
    flags.DEFINE_string("name", None, "the shipped name: data/models/<name>, used as pretrained:<name>")
    flags.DEFINE_list("tflite", [], "deployable exports of the model to ship beside it: .tflite files of python -m "
                      "deeprx.quantize, each with its .json record and the .preflight.json of python -m deeprx.compile")
    flags.DEFINE_bool("checkpoint_only", False, "copy the run's latest checkpoint and settings to "
                      "data/checkpoints/<name> (a run in progress, to resume elsewhere) instead of shipping it")


def main(argv):
    del argv
    for name in ("model", "name"):
        if not getattr(FLAGS, name):
            raise cli.FlagError(name, "is required")
    if os.sep in FLAGS.name or FLAGS.name.startswith("."):
        raise cli.FlagError("name", f"must be a plain directory name, got {FLAGS.name!r}")
    if FLAGS.tflite and FLAGS.checkpoint_only:
        raise cli.FlagError("tflite", "ships exports of a finished model: not with --checkpoint_only")
    with cli.flag("tflite"):
        for path in FLAGS.tflite:
            shipping.export_files(path)
    with cli.flag("model"):
        if FLAGS.checkpoint_only:
            dest = shipping.keep_checkpoint(FLAGS.model, FLAGS.name)
            print(f"Kept the latest checkpoint of {FLAGS.model} in {dest}: on a new machine, copy it back "
                  f"to {FLAGS.model} and rerun the command that trained it (it resumes from there)")
            return
        dest = shipping.ship(FLAGS.model, FLAGS.name, tflite=FLAGS.tflite)
    print(f"Shipped {FLAGS.model} as pretrained:{FLAGS.name} in {dest} (MODEL.md)")


if __name__ == "__main__":
    cli.run(main, define_flags)
