"""Edge TPU preflight, then compile with edgetpu_compiler where it is installed.

Example usage:
  python -m deeprx.compile --model=edge_out/student_int8.tflite
  python -m deeprx.compile --model=edge_out/student_int8.tflite --require_compiler

The preflight (deeprx/export/preflight.py) predicts from the flatbuffer which operators map and where
the compiler would cut the graph; it is printed and written beside the model as
X.preflight.json. If `edgetpu_compiler` is on PATH, the model is compiled to
X_edgetpu.tflite; the compiler's operation log is parsed into the same table and compared
with the prediction (in the JSON). Without the compiler (it installs only from Coral's apt
repository, on x86-64 Debian/Ubuntu: BUILD_NOTES.md) this says so and exits 0, or 1 with
--require_compiler.
"""

import os
import shutil
import sys

from absl import flags

from deeprx import cli
from deeprx.export import edgetpu_compiler as compiler_lib
from deeprx.export import flatbuffer
from deeprx.export import preflight as preflight_lib
from deeprx.core import io as io_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("model", None, "int8 .tflite of python -m deeprx.quantize")
    flags.DEFINE_bool("require_compiler", False, "exit 1 if edgetpu_compiler is not installed")


def main(argv):
    del argv
    if not FLAGS.model or not os.path.isfile(FLAGS.model):
        raise cli.FlagError("model", f"give an int8 .tflite of python -m deeprx.quantize (got {FLAGS.model!r})")
    try:
        report = preflight_lib.preflight(FLAGS.model)
    except flatbuffer.FlatbufferError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Edge TPU preflight of {FLAGS.model} ({len(report['operators'])} operators)")
    print("\n".join(preflight_lib.table_lines(report)))
    stem = os.path.splitext(FLAGS.model)[0]
    compiler = shutil.which(compiler_lib.COMPILER)
    if compiler is None:
        report["compiler"] = None
        print(f"{compiler_lib.COMPILER} is not on PATH: preflight only. It installs from Coral's apt repository "
              "(package edgetpu-compiler) on an x86-64 Debian/Ubuntu host: BUILD_NOTES.md.")
    else:
        try:
            compiled, log_text = compiler_lib.compile_model(FLAGS.model, os.path.dirname(os.path.abspath(FLAGS.model)))
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        comparison = compiler_lib.compare(report["by_op"], compiler_lib.parse_compiler_log(log_text))
        report["compiler"] = {"path": compiler, "compiled_model": os.path.basename(compiled),
                              "comparison": comparison, "agree": all(row["agree"] for row in comparison)}
        print(f"Compiled {compiled}. Prediction vs compiler, per operator (mapped to the Edge TPU):")
        for row in comparison:
            print(f"  {row['op']:<24} predicted {row['predicted_mapped']:>4}  compiled {row['compiled_mapped']:>4}"
                  f"  {'ok' if row['agree'] else 'DIFFERS: ' + str(row['compiler_statuses'])}")
    path = stem + ".preflight.json"
    io_lib.write_json(path, report)
    print(f"Wrote {path}")
    if compiler is None and FLAGS.require_compiler:
        print(f"error: --require_compiler: {compiler_lib.COMPILER} is not installed here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
