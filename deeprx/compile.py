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
import re
import shutil
import subprocess
import sys

from absl import flags

from deeprx import cli
from deeprx.export import flatbuffer
from deeprx.export import preflight as preflight_lib
from deeprx.core import io as io_lib

COMPILER = "edgetpu_compiler"
_LOG_ROW = re.compile(r"^([A-Z][A-Z0-9_]*(?::\S+)?)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(text):
    """The Operator / Count / Status table of an edgetpu_compiler log (or its stdout):
    {op: {"count", "mapped", "statuses": {status: count}}}."""
    table, in_table = {}, False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        match = _LOG_ROW.match(line.strip()) if in_table else None
        if match:
            op, count, status = match.group(1), int(match.group(2)), match.group(3)
            entry = table.setdefault(op, {"count": 0, "mapped": 0, "statuses": {}})
            entry["count"] += count
            entry["statuses"][status] = entry["statuses"].get(status, 0) + count
            if status == preflight_lib.MAPPED:
                entry["mapped"] += count
    return table


def compare(predicted_by_op, compiled_by_op):
    """Per operator: predicted and compiled counts mapped to the Edge TPU, and agreement."""
    rows = []
    for op in sorted(set(predicted_by_op) | set(compiled_by_op)):
        predicted = predicted_by_op.get(op, {"count": 0, "mapped": 0})
        compiled = compiled_by_op.get(op, {"count": 0, "mapped": 0, "statuses": {}})
        rows.append({"op": op, "count": max(predicted["count"], compiled["count"]),
                     "predicted_mapped": predicted["mapped"], "compiled_mapped": compiled["mapped"],
                     "compiler_statuses": compiled.get("statuses", {}),
                     "agree": predicted["mapped"] == compiled["mapped"]})
    return rows


def compile_model(path, out_dir):
    """Runs edgetpu_compiler; returns (compiled path, log text)."""
    process = subprocess.run([COMPILER, "-s", "-o", out_dir, path], capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"{COMPILER} failed (exit {process.returncode}): "
                           f"{(process.stderr or process.stdout).strip().splitlines()[-1:]}")
    stem = os.path.splitext(os.path.basename(path))[0]
    log_path = os.path.join(out_dir, stem + "_edgetpu.log")
    text = process.stdout
    if os.path.isfile(log_path):
        with open(log_path) as f:
            text += "\n" + f.read()
    return os.path.join(out_dir, stem + "_edgetpu.tflite"), text


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
    compiler = shutil.which(COMPILER)
    if compiler is None:
        report["compiler"] = None
        print(f"{COMPILER} is not on PATH: preflight only. It installs from Coral's apt repository "
              "(package edgetpu-compiler) on an x86-64 Debian/Ubuntu host: BUILD_NOTES.md.")
    else:
        try:
            compiled, log_text = compile_model(FLAGS.model, os.path.dirname(os.path.abspath(FLAGS.model)))
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        comparison = compare(report["by_op"], parse_compiler_log(log_text))
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
        print(f"error: --require_compiler: {COMPILER} is not installed here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
