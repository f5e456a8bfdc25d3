"""Benchmark (run on demand): where the time of one .tflite goes, op by op, on one runtime.

Example usage (from the repository root, with nothing else running):
  python tests/benchmarks/tflite_ops.py --model=edge_out/student_int8.tflite
  python tests/benchmarks/tflite_ops.py --model=edge_out/student_int8.tflite --python=.venv-edge-tflite-runtime/bin/python

Prints, for the model on the runtime of --python (LiteRT in .venv-edge-litert by default;
tflite-runtime 2.14 in .venv-edge-tflite-runtime is the Coral board's family):
  - inferences/s of the whole model at 1 and 2 threads, with and without the runtime's
    default delegate (XNNPACK), batch 1;
  - every operator (type, output shape, dilation, depth multiplier) and whether the default
    delegate took it (the operators behind each DELEGATE node of the execution plan);
  - each operator's own time: the operator cut out alone into a one-op model (its inputs
    become the model's inputs), timed the same way at --threads; and the totals per type.
The one-op models are cut with TensorFlow's flatbuffer tools here; the timing runs in the
other Python, which needs only numpy and its interpreter. Per-op times add up to about the
whole model's (caches differ); the reference is the 400 inferences/s of the paper's
deployment and the float model of the same graph.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE_INFERENCES_PER_S = 400.0


def split(model_path, out_dir):
    """One single-op .tflite per operator of `model_path`, and info.json describing them."""
    sys.path.insert(0, REPO)
    from deeprx.costs import kernel_timing
    from deeprx.costs import op_features
    paths = kernel_timing.split_ops(model_path, out_dir)
    info = [{"index": index, "path": path, "op": row["op"],
             "output_shape": [1, row["height"], row["width"], row["channels_out"]],
             "dilation": [row["dilation_h"], row["dilation_w"]] if "CONV" in row["op"] else None,
             "depth_multiplier": row["depth_multiplier"] if row["op"] == "DEPTHWISE_CONV_2D" else None}
            for index, (path, row) in enumerate(zip(paths, op_features.tflite_ops(model_path)))]
    with open(os.path.join(out_dir, "info.json"), "w") as f:
        json.dump(info, f)
    return info


# ------------------------------------------------------------ the child: numpy + interpreter

def _interpreter_module():
    for name in ("tflite_runtime", "ai_edge_litert"):
        try:
            return name, __import__(name + ".interpreter", fromlist=["Interpreter"])
        except ImportError:
            continue
    sys.exit("no TFLite interpreter in this Python (tflite_runtime or ai_edge_litert)")


def _load(module, path, threads, delegate):
    options = {"model_path": path, "num_threads": threads}
    if not delegate:
        options["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = module.Interpreter(**options)
    interpreter.allocate_tensors()
    return interpreter


def _seconds_per_invoke(interpreter, min_seconds):
    import numpy as np
    for detail in interpreter.get_input_details():
        values = np.random.RandomState(0).randint(-128, 128, detail["shape"])
        interpreter.set_tensor(detail["index"], values.astype(detail["dtype"]))
    for _ in range(5):
        interpreter.invoke()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or count < 20:
        interpreter.invoke()
        count += 1
    return (time.perf_counter() - start) / count


def _delegated(interpreter):
    """Indices of the model's operators behind the DELEGATE nodes of the execution plan."""
    details = interpreter._get_ops_details()
    producers = {int(t): d["index"] for d in details if d["op_name"] != "DELEGATE" for t in d["outputs"]}
    taken = set()
    for node in (d for d in details if d["op_name"] == "DELEGATE"):
        boundary, stack = {int(t) for t in node["inputs"]}, [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producers or producers[tensor] in taken:
                continue
            taken.add(producers[tensor])
            stack.extend(int(t) for t in details[producers[tensor]]["inputs"] if t >= 0)
    return taken


def child(model_path, ops_dir, threads, min_seconds):
    runtime, module = _interpreter_module()
    whole = {f"{threads_}_threads_{'delegate' if delegate else 'builtin'}":
             1.0 / _seconds_per_invoke(_load(module, model_path, threads_, delegate), 5 * min_seconds)
             for threads_ in (1, 2) for delegate in (True, False)}
    taken = _delegated(_load(module, model_path, threads, True))
    with open(os.path.join(ops_dir, "info.json")) as f:
        info = json.load(f)
    for entry in info:
        path = entry["path"]
        entry["delegated"] = entry["index"] in taken
        entry["us"] = 1e6 * _seconds_per_invoke(_load(module, path, threads, entry["delegated"]), min_seconds)
    print(json.dumps({"runtime": f"{runtime} {getattr(module, '__version__', '')}".strip(), "whole": whole,
                      "ops": info}))


# ------------------------------------------------------------------------------ the report

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=".tflite to profile")
    parser.add_argument("--python", default=os.path.join(REPO, ".venv-edge-litert", "bin", "python"),
                        help="the Python whose TFLite runtime runs the timing")
    parser.add_argument("--threads", type=int, default=2, help="threads for the per-op timing")
    parser.add_argument("--min_seconds", type=float, default=0.2, help="timing per one-op model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.model, args.child, args.threads, args.min_seconds)
    sys.path.insert(0, REPO)
    from deeprx.core import provenance as provenance_lib
    with tempfile.TemporaryDirectory() as ops_dir:
        split(args.model, ops_dir)
        result = subprocess.run([args.python, os.path.abspath(__file__), f"--model={os.path.abspath(args.model)}",
                                 f"--child={ops_dir}", f"--threads={args.threads}",
                                 f"--min_seconds={args.min_seconds}"], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"timing failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{os.path.basename(args.model)} on {report['runtime']}, CPU: {provenance_lib.cpu_model()}")
    for key, rate in report["whole"].items():
        print(f"  whole model, {key.replace('_', ' ')}: {rate:8.1f} inferences/s "
              f"({rate / REFERENCE_INFERENCES_PER_S:.2f}x the reference {REFERENCE_INFERENCES_PER_S:g}/s)")
    ops = report["ops"]
    print(f"  {sum(op['delegated'] for op in ops)} of {len(ops)} operators taken by the default delegate")
    print(f"\n  {'#':>3} {'operator':18} {'output':>16} {'dil':>5} {'dm':>3} {'deleg':>5} {'us':>8}")
    for op in ops:
        print(f"  {op['index']:3d} {op['op']:18} {'x'.join(map(str, op['output_shape'])):>16} "
              f"{'x'.join(map(str, op['dilation'])) if op['dilation'] else '':>5} {op['depth_multiplier'] or '':>3} "
              f"{'yes' if op['delegated'] else 'no':>5} {op['us']:8.1f}")
    total = sum(op["us"] for op in ops)
    print(f"\n  per type, {args.threads} threads (sum of one-op models {total / 1e3:.3f} ms):")
    for kind in sorted({op["op"] for op in ops}, key=lambda k: -sum(o["us"] for o in ops if o["op"] == k)):
        us = sum(op["us"] for op in ops if op["op"] == kind)
        print(f"    {kind:18} {sum(op['op'] == kind for op in ops):3d} ops {us / 1e3:8.3f} ms {100 * us / total:5.1f}%")


if __name__ == "__main__":
    main()
