"""Energy of a DeepRx model, flag-free (python -m deeprx.energy is its command and describes
what it writes): this machine's peak, the four-step measurements of float and int8
inference and of training, per-layer latencies, the metrics and the amortization report."""

import dataclasses
import json
import os
import time

import numpy as np

from deeprx.costs import estimates as costs
from deeprx.costs import kernel_timing
from deeprx.network import model as model_lib
from edge import power as power_lib


HOST_NAME = "this machine"


# ------------------------------------------------------------------------ measurements

def cpu_clock_hz():
    try:
        with open("/proc/cpuinfo") as f:
            values = [float(line.split(":")[1]) for line in f if line.lower().startswith("cpu mhz")]
        return 1e6 * max(values) if values else None
    except OSError:
        return None


def measure_peak(source, seconds, base_seconds, size=1024, log=print):
    """This machine's float32 matrix-multiply FLOP/s and its four-step power at that load."""
    import tensorflow as tf
    a = tf.random.normal([size, size])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    matmul().numpy()
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3:
        matmul().numpy()
        reps += 1
    reps = max(1, int(reps * seconds / 0.3))

    def workload():
        for _ in range(reps):
            matmul().numpy()
    energy, _ = power_lib.four_step(source, workload, reps, base_seconds)
    peak = 2 * size ** 3 * reps / energy["run_seconds"]
    log(f"this machine: {peak / 1e9:.1f} GFLOP/s float32 (matmul {size}), relative power "
        f"{energy['relative_power_w']:.2f} W ({energy['source']})", flush=True)
    return {"peak_flops_per_s": peak, "matmul_size": size, "energy": energy}


def measure_float_inference(model, count, source, base_seconds):
    """Four-step energy and mean latency of `count` batch-1 calls of the float model."""
    import tensorflow as tf
    call = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.RandomState(0).normal(size=model.input_shape[1:]).astype(np.float32)[None])
    for _ in range(5):
        call(x).numpy()

    def workload():
        for _ in range(count):
            call(x).numpy()
    energy, _ = power_lib.four_step(source, workload, count, base_seconds)
    return {**energy, "latency_ms": 1e3 * energy["run_seconds"] / count, "precision": "float32",
            "runtime": f"TensorFlow {tf.__version__} (Keras, batch 1, tf.function, "
                       f"{tf.config.threading.get_intra_op_parallelism_threads()} threads)"}


def measure_int8_inference(path, count, source, base_seconds, threads):
    from edge import runner
    interpreter, backend = runner.load_interpreter(path, threads=threads)
    model = runner.Model(interpreter)
    runner.time_invokes(model, 5, 0)
    energy = runner.measure_energy(model, source, count, base_seconds)
    return {**energy, "latency_ms": 1e3 * energy["run_seconds"] / count, "precision": "int8",
            "runtime": f"{backend} (CPU interpreter, {threads} threads)"}


def from_runner_json(path):
    """The energy a board's runner measured (python -m edge.runner --energy_source=...)."""
    with open(path) as f:
        result = json.load(f)
    if "energy" not in result:
        raise ValueError(f"{path} has no energy: run python -m edge.runner with --energy_source=SOURCE")
    return {**result["energy"], "latency_ms": result["timing"]["mean_ms"], "precision": "int8",
            "runtime": result["backend"], "device": result.get("device"), "file": os.path.basename(path)}


def measure_training_step(model_config, scenario, train_config, steps, source, base_seconds):
    """Four-step energy of `steps` training steps (slots drawn in-graph, as deeprx.train; the
    run's learning curve, if it had one, is not part of a step)."""
    import dataclasses
    import tempfile
    import tensorflow as tf
    from deeprx.network import training
    from deeprx.simulation import data as data_lib
    train_config = dataclasses.replace(train_config, curve_every=0)
    model = model_lib.build(model_config, scenario)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = training.Trainer(model, scenario, train_config, tmp, log=lambda *a, **k: None)
        seed = lambda step: tf.constant(data_lib.slot_seed("train", 0, step), tf.int64)  # noqa: E731
        trainer._train_step(seed(0))  # traced and run once, untimed

        def workload():
            for step in range(1, steps + 1):
                float(trainer._train_step(seed(step))["loss"])
        energy, _ = power_lib.four_step(source, workload, steps, base_seconds)
    return {**energy, "joules_per_step": energy["joules_per_inference"], "batch_size": train_config.batch_size,
            "seconds_per_step": energy["run_seconds"] / steps}


def layer_latencies(model_config, scenario, min_seconds, log=print):
    """Each plan layer's own latency (s) in float TensorFlow (deeprx/costs/kernel_timing.py); layers
    of the same kind and shape (DeepRx repeats them: 26 distinct of 107) are timed once."""
    timer = kernel_timing.FloatTimer(min_seconds)
    layers = model_lib.plan(model_config, scenario)
    timed = {}
    for layer in layers:
        shape = dataclasses.replace(layer, name="", block="")
        if shape not in timed:
            timed[shape] = kernel_timing.kernel_seconds((layer,), timer)
            if len(timed) % 10 == 0:
                log(f"  distinct layers timed: {len(timed)}", flush=True)
    log(f"  {len(timed)} distinct layers of {len(layers)} timed", flush=True)
    return [timed[dataclasses.replace(layer, name="", block="")] for layer in layers]


# ---------------------------------------------------------------------------- the report

def metric1_defaults(host, cores, clock_hz, kappa, flops_per_clock):
    """Metric (1) parameters: the flags, else this machine's (kappa from P = kappa N f^3)."""
    cores = cores or os.cpu_count()
    clock_hz = clock_hz or cpu_clock_hz()
    if not clock_hz:
        raise ValueError("this machine's clock is unknown (no /proc/cpuinfo): give --clock_hz")
    power = host["energy"]["relative_power_w"]
    return {"kappa": kappa or power / (cores * clock_hz ** 3), "cores": cores, "clock_hz": clock_hz,
            "flops_per_clock": flops_per_clock or host["peak_flops_per_s"] / (cores * clock_hz),
            "defaults": "this machine: N = its cores, f = /proc/cpuinfo, kappa = measured power / (N f^3), "
                        "S = measured peak / (N f)"}


def report(model_config, scenario, measured, host, processors, layer_seconds, training, steps_total, rate,
           lifetime_days, metric1_params):
    """energy.json's dict from the measurements."""
    flops = model_lib.flops_per_slot(model_config, scenario)
    layers = costs.layer_costs(model_config, scenario)
    float_power = measured["float"]["relative_power_w"]
    float_source = measured["float"]["source"]
    for row, seconds in zip(layers, layer_seconds):
        row["latency_us"] = 1e6 * seconds
        row["energy_uj"] = 1e6 * seconds * float_power
    layer_source = (f"each layer's own latency (float32: its own tf.function call minus an empty call) x "
                    f"relative power of the float run, {float_source}")
    blocks = costs.by_block(layers, ("flops", "macs", "params", "weight_bytes", "activation_bytes", "latency_us",
                                     "energy_uj"))
    table = []
    for processor in processors:
        entry = {"name": processor.name, "peak_ops_per_s": processor.peak_ops_per_s, "power_w": processor.power_w,
                 "precision": processor.precision, "metric0_mj_per_inference": 1e3 * processor.metric0_j(flops),
                 "source": f"metric (0) estimate; processor data: {processor.source}"}
        table.append(entry)
    edgetpu = next((p for p in processors if p.kind == "tpu"), None)
    if edgetpu:
        for block in blocks:
            block["edgetpu_metric0_uj"] = 1e6 * edgetpu.metric0_j(block["flops"])
    a, b = costs.fit_lahmer(layers, [row["energy_uj"] / 1e6 for row in layers])
    result = {
        "flops_per_slot": flops, "macs_per_slot": sum(row["macs"] for row in layers),
        "parameters": model_lib.params(model_config, scenario), "layers": layers, "blocks": blocks,
        "layer_energy_source": layer_source,
        # What the layers explain of the whole float inference (the rest: the runtime's per-op work).
        "layer_energy_sum_mj": sum(row["energy_uj"] for row in layers) / 1e3,
        "layer_energy_fraction_of_measured": (sum(row["energy_uj"] for row in layers) / 1e6
                                              / measured["float"]["joules_per_inference"]
                                              if measured["float"]["joules_per_inference"] > 0 else None),
        "host": host, "processors": table,
        "metric0_edgetpu_block_source": f"metric (0) with {edgetpu.name}" if edgetpu else None,
        "metric1": {**metric1_params, "mj_per_inference": 1e3 * costs.metric1_j(
            flops, metric1_params["kappa"], metric1_params["cores"], metric1_params["clock_hz"],
            metric1_params["flops_per_clock"]), "source": "metric (1) estimate"},
        "metric2": {"a": a, "b": b, "mj_per_inference": 1e3 * costs.metric2_j(layers, a, b),
                    "source": f"metric (2) (Lahmer) estimate, a and b fitted on this machine's per-layer energy "
                              f"({layer_source})"},
        "measured": measured, "paper_example": costs.paper_break_even()}
    if training:
        result["training"] = training
        total = steps_total * training["joules_per_step"]
        result["amortization"] = {}
        for name, entry in measured.items():
            if entry["joules_per_inference"] > 0:
                result["amortization"][name] = {
                    **costs.amortization(training["joules_per_step"], steps_total, entry["joules_per_inference"], rate),
                    "lifetime_days": lifetime_days,
                    "amortized_training_mj_per_inference": 1e3 * costs.amortized_training_j_per_inference(
                        total, rate * lifetime_days * costs.SECONDS_PER_DAY),
                    "source": f"training: {training['source']}; inference: {entry['source']}"}
    return result


def summary_lines(result):
    lines = [f"FLOPs per slot {result['flops_per_slot'] / 1e6:.1f} M, parameters {result['parameters']:,}"]
    for name, entry in result["measured"].items():
        lines.append(f"measured {name}: {1e3 * entry['joules_per_inference']:.4g} mJ per inference, "
                     f"{entry['latency_ms']:.3f} ms ({entry['source']})")
    for entry in result["processors"]:
        lines.append(f"metric (0) {entry['name']}: {entry['metric0_mj_per_inference']:.4g} mJ")
    lines.append(f"metric (1): {result['metric1']['mj_per_inference']:.4g} mJ; metric (2): "
                 f"{result['metric2']['mj_per_inference']:.4g} mJ")
    if "training" in result:
        lines.append(f"training: {result['training']['joules_per_step']:.4g} J per step ({result['training']['source']})")
        for name, entry in result["amortization"].items():
            lines.append(f"break-even {name}: {entry['break_even_inferences']:.3g} inferences, "
                         f"{entry['break_even_days']:.3g} days at {entry['rate_per_s']:g}/s; training shared over "
                         f"{entry['lifetime_days']:g} days: {entry['amortized_training_mj_per_inference']:.3g} mJ "
                         "per inference")
    paper = result["paper_example"]
    lines.append(f"paper example recomputed: {paper['break_even_inferences']:.3g} inferences "
                 f"({paper['break_even_days']:.1f} days at 400/s); the paper claims "
                 f"{paper['claimed_break_even_inferences']:.0e} ({paper['claimed_break_even']})")
    return lines
