"""Edge TPU preflight: which operators of an int8 .tflite the Edge TPU compiler should map.

From the flatbuffer alone (deeprx/export/flatbuffer.py, no TensorFlow), per operator in execution
order, the Edge TPU compiler's documented model requirements (coral.ai/docs/edgetpu/models-intro):
  - a known operator (deeprx/export/edgetpu_ops.json) at an operator version the compiler accepts;
  - int8/uint8 tensors (int32 only for a constant bias);
  - tensors of rank <= 3, or only their 3 innermost dimensions > 1 (batch 1);
  - convolutions with the same dilation in both directions.
The compiler partitions once: the first operator that fails a rule, and every one after it,
runs on the CPU. That is the predicted cut.
"""

import json
import os

from deeprx.export import flatbuffer

MAPPED = "Mapped to Edge TPU"
AFTER_CUT = "Runs on the CPU (after the cut)"
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "edgetpu_ops.json")) as _f:
    MAX_VERSION = json.load(_f)["max_version"]
QUANTIZED_TYPES = ("INT8", "UINT8")


def operator_problems(op, tensors):
    """Reasons the compiler would not map `op` (empty if it should)."""
    name = op["op"]
    if name not in MAX_VERSION:
        return [f"Operation not supported ({name})"]
    problems = []
    if op["version"] > MAX_VERSION[name]:
        problems.append(f"Operation version not supported ({name} v{op['version']}; "
                        f"the compiler takes v{MAX_VERSION[name]} at most)")
    for position, index in enumerate(op["inputs"]):
        tensor = tensors[index]
        bias = tensor["constant"] and tensor["type"] == "INT32" and position == 2
        if tensor["type"] not in QUANTIZED_TYPES and not bias and name not in ("QUANTIZE", "DEQUANTIZE"):
            problems.append(f"tensor {tensor['name']!r} is {tensor['type']}, not int8")
    for index in op["outputs"]:
        tensor = tensors[index]
        if tensor["type"] not in QUANTIZED_TYPES and name != "DEQUANTIZE":
            problems.append(f"tensor {tensor['name']!r} is {tensor['type']}, not int8")
    for index in op["inputs"] + op["outputs"]:
        shape = tensors[index]["shape"]
        if not tensors[index]["constant"] and len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            problems.append(f"tensor {tensors[index]['name']!r} has shape {shape}: more than the 3 innermost "
                            "dimensions are > 1 (use batch 1)")
    dilation = op["options"].get("dilation")
    if dilation and dilation[0] != dilation[1]:
        problems.append(f"unequal dilations {dilation[0]}x{dilation[1]} (time x frequency): the compiler needs "
                        "the same dilation in x and y (use the edge model variant)")
    return problems


def preflight(path):
    """{"model", "operators": [{index, op, version, layer, status, reasons}], "cut_at",
    "mapped", "cpu", "by_op": {op: {"count", "mapped"}}}."""
    model = flatbuffer.read(path)
    rows, cut_at = [], None
    for op in model["operators"]:
        problems = operator_problems(op, model["tensors"])
        if problems and cut_at is None:
            cut_at = op["index"]
        if cut_at is None:
            status = MAPPED
        elif op["index"] == cut_at:
            status = "Not mapped: " + problems[0]
        else:
            status = AFTER_CUT
        layer = model["tensors"][op["outputs"][0]]["name"] if op["outputs"] else ""
        rows.append({"index": op["index"], "op": op["op"], "version": op["version"], "layer": layer,
                     "status": status, "reasons": problems})
    by_op = {}
    for row in rows:
        entry = by_op.setdefault(row["op"], {"count": 0, "mapped": 0})
        entry["count"] += 1
        entry["mapped"] += row["status"] == MAPPED
    mapped = sum(row["status"] == MAPPED for row in rows)
    return {"model": os.path.basename(path), "operators": rows, "cut_at": cut_at, "mapped": mapped,
            "cpu": len(rows) - mapped, "by_op": by_op,
            "would_not_map": [row for row in rows if row["reasons"]]}


def table_lines(report):
    """The compiler-log-like table (Operator / Count / Status) and the layers that fail."""
    lines = [f"{'Operator':<26}{'Count':>6}  Status"]
    for op, entry in sorted(report["by_op"].items()):
        if entry["mapped"]:
            lines.append(f"{op:<26}{entry['mapped']:>6}  {MAPPED}")
        if entry["count"] - entry["mapped"]:
            lines.append(f"{op:<26}{entry['count'] - entry['mapped']:>6}  Runs on the CPU")
    lines.append(f"Operators predicted on the Edge TPU: {report['mapped']}, on the CPU: {report['cpu']}")
    if report["cut_at"] is None:
        lines.append("Every operator should map: no cut.")
    else:
        cut = report["operators"][report["cut_at"]]
        lines.append(f"Predicted cut at operator {cut['index']} ({cut['op']}, layer {cut['layer']!r}): "
                     f"{cut['reasons'][0]}")
        failing = report["would_not_map"]
        lines.append(f"{len(failing)} operators fail a rule themselves, first ones:")
        lines += [f"  #{row['index']} {row['op']} ({row['layer']}): {'; '.join(row['reasons'])}"
                  for row in failing[:8]]
    return lines
