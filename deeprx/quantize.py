"""Full-integer int8 TFLite export of a trained DeepRx (post-training or quantization-aware).

Example usage:
  python -m deeprx.quantize --model=runs/student --preset=demo --out=edge_out                # edge_out/student_int8.tflite
  python -m deeprx.quantize --model=runs/student --preset=demo --method=qat --out=edge_out   # student_int8_qat.tflite
  python -m deeprx.quantize --model=runs/student --preset=demo --method=float --out=edge_out # student_float.tflite

--method=float writes the same graph in float32 (no calibration), the reference a CPU
comparison of int8 against float needs.

The model is fully convolutional: it is rebuilt with batch 1 on the grid of --preset (and
the scenario overrides), which may have another number of PRB than it was trained on, but
must otherwise be its training scenario. Weights, activations and the model's input and
output are int8 (biases int32), calibrated on slots of the training channels spread over the
evaluation grid's SINR points from --calibration_min_sinr_db (10 dB) up, where the BER targets
lie. --method=qat first fine-tunes with fake quantization on the same SINR range
(tensorflow-model-optimization), its activation ranges first set from the calibration slots;
the stand-alone BatchNormalization layers of the pre-activation blocks get an output-only
quantize config, and keep their batch statistics frozen during the fine-tune. The file is
OUT/<model name>_<int8|int8_qat|float>.tflite; beside X.tflite, X.json records what the device
needs: input/output scale and zero point, grid, channel layout, modulation,
FLOPs per slot, the source model, the method and the converter version. The exported graph
writes each depthwise conv of depth multiplier > 1 as its input tiled (CONCATENATION) and a
multiplier-1 depthwise conv, an exact rewrite that XNNPACK's int8 kernels run 13x faster,
and merges the BN and ReLU after each unit's first 1x1 conv into that conv, as the converter
does, so that QAT trains the graph it exports (deeprx.network.model.expanded, BUILD_NOTES.md).
"""

import os
import sys

from absl import flags

from deeprx import cli
from deeprx.cli import scenario_flags
from deeprx.core import workdir as workdir_lib
from deeprx.export import quantize as quantize_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("model", None, "trained run directory (model.keras + config.json)")
    flags.DEFINE_string("out", None, "output directory: OUT/<model name>_<int8|int8_qat|float>.tflite and its .json")
    flags.DEFINE_enum("method", "ptq", list(quantize_lib.METHODS),
                      "post-training quantization, quantization-aware fine-tuning, or the float32 graph")
    flags.DEFINE_integer("calibration_slots", 256, "representative slots, spread over the SINR range")
    flags.DEFINE_float("calibration_min_sinr_db", quantize_lib.DEFAULT_CALIBRATION_MIN_SINR_DB,
                       "calibrate (PTQ) and fine-tune (QAT) on the evaluation grid's SINR points from this one up, "
                       "where BER 1e-2..1e-3 lies: the int8 ranges then fit those slots (-100: the whole grid)")
    flags.DEFINE_integer("qat_steps", 300, "QAT: fine-tuning steps")
    flags.DEFINE_integer("qat_batch_size", 16, "QAT: slots per step")
    flags.DEFINE_float("qat_learning_rate", 1e-4, "QAT: Adam learning rate (constant)")
    scenario_flags.define_flags()


def main(argv):
    del argv
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    with cli.flag("model"):
        if not FLAGS.model:
            raise ValueError("give a run directory of python -m deeprx.train")
        workdir_lib.RunDir(FLAGS.model).check(scenario)
    cli.check_out_dir(FLAGS.out)
    with cli.settings(fallback="method"):
        export_config = quantize_lib.ExportConfig(method=FLAGS.method, calibration_slots=FLAGS.calibration_slots,
                                     qat_steps=FLAGS.qat_steps, qat_batch_size=FLAGS.qat_batch_size,
                                     qat_learning_rate=FLAGS.qat_learning_rate,
                                     calibration_min_sinr_db=FLAGS.calibration_min_sinr_db)
        quantize_lib.calibration_grid(preset.evaluation.sinr_db, FLAGS.calibration_min_sinr_db)
    os.makedirs(FLAGS.out, exist_ok=True)
    path = quantize_lib.output_path(FLAGS.out, FLAGS.model, FLAGS.method)
    meta = quantize_lib.export(FLAGS.model, preset.name, scenario, preset.evaluation.sinr_db, export_config, path,
                               command=" ".join(["python -m deeprx.quantize"] + sys.argv[1:]))
    quantization = (f"input scale {meta['input']['scale']:.4g} zero point {meta['input']['zero_point']}, "
                    if meta["input"]["scale"] is not None else "")
    print(f"Wrote {path} ({meta['size_bytes'] / 1e3:.0f} kB, {meta['method']}): {quantization}tensor types "
          f"{meta['tensor_types']}", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
