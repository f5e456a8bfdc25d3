"""Where a study keeps its files: one directory per stage, the int8 and Edge TPU models, and
each stage's done record (shared by the stages and the report)."""

import os

from deeprx.core import io as io_lib

MODELS = ("teacher", "scratch", "kd")
DONE = "done.json"
# The stages in order (study_stages.STAGES holds what each runs).
STAGE_NAMES = ("teacher", "scratch", "kd", "int8", "ber", "edgetpu", "runner", "energy", "report")


def stage_dir(config, name):
    return os.path.join(config.workdir, name)


def int8_path(config, model):
    """deeprx.quantize --out=DIR/int8 of the model in DIR/<model>."""
    return os.path.join(config.workdir, "int8", f"{model}_int8.tflite")


def edgetpu_path(config, model):
    return os.path.join(config.workdir, "edgetpu", f"{model}_int8.tflite")


def done_record(config, name):
    path = os.path.join(stage_dir(config, name), DONE)
    return io_lib.read_json(path) if os.path.isfile(path) else None
