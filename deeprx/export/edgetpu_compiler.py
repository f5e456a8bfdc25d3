"""The Edge TPU compiler, where it is installed: run it on an int8 .tflite, parse its
operation log into the preflight's per-operator table (deeprx/export/preflight.py) and compare
the two. The library behind python -m deeprx.compile."""

import os
import re
import subprocess

from deeprx.export import preflight as preflight_lib


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
