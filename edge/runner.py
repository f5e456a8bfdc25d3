"""Runs an int8 DeepRx .tflite on the device: latency, and BER on exported test vectors.

Example usage (on a Coral Dev Board, or any host):
  python3 -m edge.runner --model=student_int8_edgetpu.tflite --vectors=vectors.npz --out=coral
  python3 -m edge.runner --model=student_int8.tflite --count=1000 --threads=2 --out=cpu

This file is what runs on the board: Python 3.7 syntax, NumPy and a TFLite interpreter only
(never TensorFlow, Sionna or CodeCarbon). The interpreter is the first that imports, in this
order: pycoral with the Edge TPU delegate (for *_edgetpu.tflite models only), tflite_runtime,
ai_edge_litert (LiteRT, installed with this project on a host); --out records which one ran.

Timing follows pycoral's examples: the first invoke (which loads the model onto an Edge TPU)
is timed apart, then --warmup invokes, then --count timed invokes: mean, p50, p90, p99
latency and inferences per second, and the CPU time the process spent per inference (user +
system, every thread: busy cores above the work's threads mean threads spinning idle).
--batches=1,8,32 adds a throughput mode: slots per second with that many slots per invoke
(CPU interpreters only), reported apart from the batch-1 latency. With --vectors (python -m
deeprx.export_vectors) the float inputs are quantized with the model's own input scale and
zero point, every slot is run, and the bit decisions (LLR > 0, i.e. int8 output > its zero point) are counted on data
REs into BER per SINR point: OUT/ber.csv and OUT/summary.json, in the bench's format
(edge/ber.py); OUT/runner.json holds the whole result.
--kernels=reference runs TFLite's reference kernels: slower, but the same int8 results in
every interpreter version (the optimized kernels of tflite-runtime 2.14 and LiteRT round
differently: BUILD_NOTES.md), so BER on the vectors can be compared exactly across
runtimes. --energy_source=SOURCE measures energy per inference by the paper's four steps around
another --count invokes (edge/power.py: rapl, meter:PATH of an external meter's CSV,
cputime:W the process's CPU time x W per busy core, or rated:WATTS, the only option for an
Edge TPU on a Coral board; the last two are estimates); the JSON names the source.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from edge import ber as ber_lib
from edge import power as power_lib
from edge import verify

# What a board needs of this repository, paths from its root (BUILD_NOTES.md): edge/ alone.
BUNDLE = ("edge/__init__.py", "edge/runner.py", "edge/power.py", "edge/verify.py", "edge/ber.py")
EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
CPU_BACKENDS = ("tflite_runtime", "ai_edge_litert")
KERNELS = ("default", "reference")
RESULT_FILENAME = "runner.json"  # in --out, beside ber.csv and summary.json


class RunnerError(Exception):
    """A problem with the model, the vectors or the device: one line, exit status 1."""


def is_compiled_for_edgetpu(model_path, model_bytes):
    return model_path.endswith("_edgetpu.tflite") or EDGETPU_CUSTOM_OP in model_bytes


def read_model(model_path):
    """The model's bytes, checked to be a TFLite flatbuffer."""
    if not os.path.isfile(model_path):
        raise RunnerError("no model file at %s" % model_path)
    with open(model_path, "rb") as f:
        data = f.read()
    try:
        verify.check(data, model_path)
    except verify.ModelFileError as error:
        raise RunnerError("%s is not a whole TFLite model (%s): a truncated or wrong file; copy it again"
                          % (model_path, error))
    return data


def _edgetpu_interpreter(model_path, device, threads):
    """(interpreter, backend) with the Edge TPU delegate, or RunnerError."""
    problems = []
    try:
        from pycoral.utils.edgetpu import make_interpreter
        return make_interpreter(model_path, device=device), "pycoral (Edge TPU)"
    except ImportError as error:
        problems.append("pycoral: %s" % error)
    except (ValueError, RuntimeError) as error:
        problems.append("pycoral: %s" % error)
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate
        options = {"device": device} if device else {}
        delegate = load_delegate("libedgetpu.so.1", options)
        return (Interpreter(model_path=model_path, experimental_delegates=[delegate], num_threads=threads),
                "tflite_runtime (Edge TPU delegate)")
    except ImportError as error:
        problems.append("tflite_runtime: %s" % error)
    except (ValueError, RuntimeError, OSError) as error:
        problems.append("libedgetpu: %s" % str(error).splitlines()[0] if str(error) else type(error).__name__)
    raise RunnerError("%s is compiled for the Edge TPU, but no Edge TPU was found (%s); run it on a Coral "
                      "with pycoral and libedgetpu installed, or run the uncompiled .tflite on the CPU"
                      % (model_path, "; ".join(problems)))


def _import_interpreter(backend):
    """(Interpreter class, OpResolverType) of a CPU backend; ImportError if absent."""
    module = __import__(backend + ".interpreter", fromlist=["Interpreter"])
    return module.Interpreter, getattr(module, "OpResolverType", None)


def _cpu_interpreter(model_path, threads, kernels):
    for backend in CPU_BACKENDS:
        try:
            interpreter_class, resolvers = _import_interpreter(backend)
        except ImportError:
            continue
        options = {"model_path": model_path, "num_threads": threads}
        if kernels == "reference":
            if resolvers is None:
                raise RunnerError("%s has no reference kernels (experimental_op_resolver_type): use "
                                  "--kernels=default or a newer interpreter" % backend)
            options["experimental_op_resolver_type"] = resolvers.BUILTIN_REF
        try:
            return interpreter_class(**options), backend
        except (ValueError, RuntimeError) as error:
            raise RunnerError("%s cannot load %s: %s" % (backend, model_path, str(error).splitlines()[0]))
    raise RunnerError("no TFLite interpreter: install tflite-runtime (a board) or ai-edge-litert (a host)")


def load_interpreter(model_path, threads=None, device=None, kernels="default"):
    """(allocated interpreter, backend name) for `model_path`. kernels: "default" (the
    interpreter's optimized kernels and default delegates, as deployed) or "reference"
    (TFLite's reference kernels: the same int8 results in every interpreter version)."""
    data = read_model(model_path)
    if is_compiled_for_edgetpu(model_path, data):
        interpreter, backend = _edgetpu_interpreter(model_path, device, threads)
    else:
        interpreter, backend = _cpu_interpreter(model_path, threads, kernels)
        if kernels == "reference":
            backend += " (reference kernels)"
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise RunnerError("%s cannot run %s: %s" % (backend, model_path, str(error).splitlines()[0]))
    return interpreter, backend


def quantize(values, scale, zero_point):
    """Float array -> int8 with the model's input parameters (round half to even, clip)."""
    return np.clip(np.round(values / scale) + zero_point, -128, 127).astype(np.int8)


class Model(object):
    """A batch-1 DeepRx .tflite: grid [1, 14, K, C] in, LLRs [1, 14, K, m] out, both int8 (the
    deployable model of python -m deeprx.quantize) or both float32 (its float twin, for
    side-by-side timing on a CPU)."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]
        dtypes = (np.dtype(self.input["dtype"]), np.dtype(self.output["dtype"]))
        if dtypes not in ((np.int8, np.int8), (np.float32, np.float32)):
            raise RunnerError("the model's input and output are %s and %s, not both int8 (or both float32): "
                              "export it with python -m deeprx.quantize" % (dtypes[0].name, dtypes[1].name))
        self.dtype = dtypes[0]
        self.input_scale, self.input_zero_point = self.input["quantization"]
        self.output_scale, self.output_zero_point = self.output["quantization"]

    @property
    def input_shape(self):
        return tuple(int(d) for d in self.input["shape"])

    def resize(self, batch):
        """Runs `batch` slots per invoke from now on (CPU interpreters: every op of DeepRx takes
        any batch; an Edge TPU model is compiled for batch 1)."""
        if batch == self.input_shape[0]:
            return
        try:
            self.interpreter.resize_tensor_input(self.input["index"], [batch] + list(self.input_shape[1:]))
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise RunnerError("cannot run %d slots per invoke: %s" % (batch, str(error).splitlines()[0]))
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def invoke(self, quantized_input):
        self.interpreter.set_tensor(self.input["index"], quantized_input)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def bit_decisions(self, float_slot):
        """Bits (LLR > 0) of one float input slot [14, K, C] -> bool [14, K, m]."""
        if self.dtype == np.float32:
            return self.invoke(float_slot[None].astype(np.float32))[0] > 0
        quantized = quantize(float_slot[None], self.input_scale, self.input_zero_point)
        return self.invoke(quantized)[0].astype(np.int32) > self.output_zero_point


def random_input(model):
    if model.dtype == np.float32:
        return np.random.RandomState(0).normal(size=model.input_shape).astype(np.float32)
    return np.random.RandomState(0).randint(-128, 128, size=model.input_shape).astype(np.int8)


def time_invokes(model, count, warmup):
    """pycoral-style timing on a random int8 input; latencies in milliseconds."""
    example = random_input(model)
    start = time.perf_counter()
    model.invoke(example)
    first_ms = 1e3 * (time.perf_counter() - start)
    for _ in range(warmup):
        model.invoke(example)
    latencies = []
    cpu, wall = power_lib.cpu_seconds(), time.perf_counter()
    for _ in range(count):
        start = time.perf_counter()
        model.invoke(example)
        latencies.append(1e3 * (time.perf_counter() - start))
    cpu, wall = power_lib.cpu_seconds() - cpu, time.perf_counter() - wall
    latencies = np.array(latencies)
    return {"first_invoke_ms": round(first_ms, 3), "warmup": warmup, "count": count,
            "mean_ms": round(float(latencies.mean()), 4),
            "p50_ms": round(float(np.percentile(latencies, 50)), 4),
            "p90_ms": round(float(np.percentile(latencies, 90)), 4),
            "p99_ms": round(float(np.percentile(latencies, 99)), 4),
            "inferences_per_s": round(1e3 / float(latencies.mean()), 2),
            "cpu_ms_per_inference": round(1e3 * cpu / count, 4), "busy_cores": round(cpu / wall, 3)}


def throughput(model, batches, count, warmup):
    """Slots per second at each batch (slots per invoke), about `count` slots each; the model
    is left at batch 1. Latency is the batch-1 figure of time_invokes, this the best batch."""
    rows = []
    for batch in batches:
        model.resize(batch)
        timing = time_invokes(model, max(1, count // batch), warmup)
        rows.append({"batch": batch, "invokes": timing["count"], "ms_per_invoke": timing["mean_ms"],
                     "slots_per_s": round(batch * 1e3 / timing["mean_ms"], 2),
                     "cpu_ms_per_slot": round(timing["cpu_ms_per_inference"] / batch, 4),
                     "busy_cores": timing["busy_cores"]})
    model.resize(1)
    best = max(rows, key=lambda row: row["slots_per_s"])
    return {"by_batch": rows, "best_batch": best["batch"], "slots_per_s": best["slots_per_s"]}


def measure_energy(model, source, count, base_seconds):
    """The four steps (edge/power.py) around `count` invokes of `model`."""
    example = random_input(model)

    def workload():
        for _ in range(count):
            model.invoke(example)
    try:
        return power_lib.four_step(source, workload, count, base_seconds=base_seconds)[0]
    except power_lib.PowerError as error:
        raise RunnerError(str(error))


def load_vectors(path, model):
    """The exported test vectors (data/README.md), checked against the model's grid."""
    if not os.path.isfile(path):
        raise RunnerError("no vectors file at %s" % path)
    try:
        vectors = np.load(path, allow_pickle=False)
        arrays = {name: vectors[name] for name in ("inputs", "bits", "data_mask", "sinr_db", "meta")}
    except (ValueError, KeyError, OSError) as error:
        raise RunnerError("%s is not a vectors file of python -m deeprx.export_vectors (%s)" % (path, error))
    grid = tuple(arrays["inputs"].shape[2:])
    if grid != model.input_shape[1:]:
        raise RunnerError("the vectors in %s are slots of shape %s, the model takes %s: export vectors of "
                          "the model's preset (python -m deeprx.export_vectors --preset=...)"
                          % (path, grid, model.input_shape[1:]))
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def ber_on_vectors(model, vectors, name):
    """ber.csv rows (edge/ber.py make_row) of `model` on every slot of `vectors`."""
    mask = vectors["data_mask"].astype(bool)[..., None]
    rows = []
    for point, sinr_db in enumerate(vectors["sinr_db"]):
        slot_errors, bits = [], 0
        for slot, truth in zip(vectors["inputs"][point], vectors["bits"][point]):
            wrong = (model.bit_decisions(slot) != truth.astype(bool)) & mask
            slot_errors.append(int(wrong.sum()))
            bits += int(mask.sum()) * truth.shape[-1]
        rows.append(ber_lib.make_row(name, round(float(sinr_db), 6), sum(slot_errors), bits, slot_errors))
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m edge.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="int8 .tflite (or *_edgetpu.tflite)")
    parser.add_argument("--vectors", help="test vectors .npz of python -m deeprx.export_vectors")
    parser.add_argument("--count", type=int, default=200, help="timed invokes")
    parser.add_argument("--warmup", type=int, default=10, help="untimed invokes after the first")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU interpreter threads (default: every core)")
    parser.add_argument("--batches", default=None, metavar="B1,B2,..",
                        help="throughput mode: also time B slots per invoke for each B (CPU interpreters), "
                             "about --count slots each; the best is the throughput, batch 1 the latency")
    parser.add_argument("--kernels", choices=KERNELS, default="default",
                        help="CPU interpreter kernels: default (optimized, as deployed) or reference "
                             "(bit-identical int8 results across interpreter versions; slower)")
    parser.add_argument("--device", default=None, help="Edge TPU device (pycoral): ':0', 'usb', 'pci:0'")
    parser.add_argument("--energy_source", default=None, metavar="SOURCE",
                        help="energy per inference from SOURCE: rapl, meter:PATH (an external meter's CSV "
                             "of timestamp,watts), cputime:W or rated:WATTS (estimates)")
    parser.add_argument("--base_seconds", type=float, default=5.0,
                        help="seconds of quiet before the run, for the base power")
    parser.add_argument("--out", help="output directory: runner.json (and ber.csv, summary.json with --vectors)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--count and --threads must be >= 1, --warmup >= 0")
    if args.base_seconds <= 0:
        parser.error("--base_seconds must be positive")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error("--out is the output directory, and %s is a file" % args.out)
    try:
        args.batches = [int(b) for b in args.batches.split(",")] if args.batches else []
    except ValueError:
        parser.error("--batches takes positive integers separated by commas, got %r" % args.batches)
    if any(b < 1 for b in args.batches):
        parser.error("--batches takes positive integers separated by commas, got %r" % args.batches)
    return args


def run(args, log=print):
    if args.out and not os.path.isdir(args.out):
        os.makedirs(args.out)
    try:
        source = power_lib.parse_source(args.energy_source) if args.energy_source else None
    except power_lib.PowerError as error:
        raise RunnerError("--energy_source: %s" % error)
    interpreter, backend = load_interpreter(args.model, args.threads, args.device, args.kernels)
    model = Model(interpreter)
    log("%s on %s: input %s %s (scale %.4g, zero point %d)" % (os.path.basename(args.model), backend, model.input_shape,
                                                                model.dtype.name, model.input_scale,
                                                                model.input_zero_point))
    result = {"model": os.path.basename(args.model), "backend": backend, "kernels": args.kernels,
              "threads": args.threads,
              "device": args.device, "input_shape": list(model.input_shape)}
    result["timing"] = time_invokes(model, args.count, args.warmup)
    timing = result["timing"]
    log("first invoke %.2f ms | %d invokes: mean %.3f ms, p50 %.3f, p90 %.3f, p99 %.3f | %.1f inferences/s | "
        "CPU time %.3f ms per inference (%.2f busy cores)"
        % (timing["first_invoke_ms"], timing["count"], timing["mean_ms"], timing["p50_ms"], timing["p90_ms"],
           timing["p99_ms"], timing["inferences_per_s"], timing["cpu_ms_per_inference"], timing["busy_cores"]))
    if args.batches:
        if "Edge TPU" in backend and args.batches != [1]:  # load_interpreter already told which
            raise RunnerError("an Edge TPU model runs batch 1 only: drop --batches")
        result["throughput"] = throughput(model, args.batches, args.count, args.warmup)
        for row in result["throughput"]["by_batch"]:
            log("batch %4d: %.3f ms per invoke | %.1f slots/s | CPU time %.3f ms per slot"
                % (row["batch"], row["ms_per_invoke"], row["slots_per_s"], row["cpu_ms_per_slot"]))
    if source is not None:
        result["energy"] = measure_energy(model, source, args.count, args.base_seconds)
        energy = result["energy"]
        log("energy per inference: %.4g mJ (%s; relative power %.3g W over %.2f s)"
            % (1e3 * energy["joules_per_inference"], energy["source"], energy["relative_power_w"],
               energy["run_seconds"]) + ("; WARNING: " + energy["warning"] if "warning" in energy else ""))
    if args.vectors:
        vectors = load_vectors(args.vectors, model)
        name = os.path.splitext(os.path.basename(args.model))[0]
        rows = ber_on_vectors(model, vectors, name)
        result["vectors"] = {"file": os.path.basename(args.vectors), "meta": vectors["meta"]}
        result["summary"] = ber_lib.summarize(rows)
        for row in rows:
            log("SINR %6.1f dB | BER %.3e (%d errors in %d bits)"
                % (row["sinr_db"], row["ber"], row["bit_errors"], row["bits"]))
        entry = result["summary"][name]
        log("Geometric Mean BER %.3f | SINR at BER 1e-2 %s dB" % (entry["gm_ber"], entry["sinr_at_ber_1e-2"]))
        if args.out:
            ber_lib.write_csv(os.path.join(args.out, "ber.csv"), rows)
            ber_lib.write_json(os.path.join(args.out, "summary.json"), result["summary"])
    if args.out:
        ber_lib.write_json(os.path.join(args.out, RESULT_FILENAME), result)
        log("Wrote %s" % os.path.join(args.out, RESULT_FILENAME))
    return result


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except RunnerError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
