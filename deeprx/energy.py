"""Energy of a DeepRx model: estimates, measurements, breakdowns and amortization.

Example usage:
  python -m deeprx.energy --model=runs/teacher-cpu --preset=cpu --out=runs/energy-teacher
  python -m deeprx.energy --model=runs/student --tflite=student_int8.tflite --preset=cpu --out=runs/energy-student
  python -m deeprx.energy --model=DIR --runner_json=coral.json --out=DIR2   # a board's runner result

What it writes to OUT (energy.json holds every number; each figure names its source and
whether it was measured or estimated):
  - FLOPs, MACs, weight and activation bytes per layer and per ResNet block (deeprx/costs.py);
  - metric (0) on every processor of --processors (data/processors.csv) and on this machine,
    whose peak FLOP/s and power are measured here by a matrix-multiply benchmark;
    metric (1) with --kappa, --cores, --clock_hz, --flops_per_clock (defaults: this machine,
    kappa from its measured power, P = kappa N f^3); metric (2) (Lahmer) with a and b
    fitted on this machine's measured per-layer energy;
  - measured energy by the paper's four steps (edge/power.py) with --source: inference of
    the float Keras model (batch 1), of the int8 --tflite on the CPU interpreter, the
    energy in --runner_json (python -m edge.runner --energy=... on a board), and one
    training step; per-layer energy = each layer's own latency in a graph (as
    deeprx/kernel_timing.py times kernels) x the float run's relative power;
  - training vs inference: amortized training energy per inference, the break-even
    number of inferences and its time at --rate, and the paper's own example recomputed;
  - plots: blocks.png and layers.png (paper Fig. 2), processors.png (Fig. 1: metric (0)
    against measurement), amortization.png (log-log, break-even marked).

Power sources (--source): cputime (the default: the CPU time this process spent, user +
system, x a power per busy core, CodeCarbon's TDP for this CPU / its cores unless given as
cputime:W; an estimate of the model's energy that bills only the cores it kept busy),
codecarbon (CodeCarbon in process mode: on a machine without RAPL, as these VMs, its CPU
power is its assumed TDP x CPU load, an estimate; the label names the TDP), rapl, nvml (with
a GPU), meter:PATH (an external meter's CSV of timestamp,watts), rated:WATTS. Every measured
entry also holds the CPU time next to the wall time (busy cores), whatever the source. Float
and int8 run with --threads threads (the interpreter's and TensorFlow's), so that idle
threads spinning in one runtime are not billed as the other's work.
"""

import dataclasses
import json
import os
import platform
import time

import numpy as np
from absl import flags

from deeprx import bench
from deeprx import ber as ber_lib
from deeprx import cli
from deeprx import costs
from deeprx import kernel_timing
from deeprx import model as model_lib
from deeprx import power_sources
from deeprx import scenario_flags
from deeprx import workdir as workdir_lib
from edge import power as power_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "a run directory of python -m deeprx.train (model.keras + config.json)")
flags.DEFINE_string("tflite", None, "the model's int8 .tflite (python -m edge.quantize): measured on the CPU interpreter")
flags.DEFINE_string("runner_json", None, "a result JSON of python -m edge.runner --energy=... (e.g. from a Coral board)")
flags.DEFINE_string("out", None, "output directory")
flags.DEFINE_string("source", "cputime", "power source: cputime[:W], codecarbon, rapl, nvml, meter:PATH or "
                    "rated:WATTS")
flags.DEFINE_integer("threads", 2, "threads of the float (TensorFlow) and int8 (interpreter) runs alike")
flags.DEFINE_string("processors", costs.PROCESSORS_CSV, "processor table for metric (0)")
flags.DEFINE_list("only_processors", None, "metric (0) on these processors of the table only (default: all)")
flags.DEFINE_integer("count", 300, "inferences per measured run")
flags.DEFINE_float("base_seconds", 5.0, "quiet seconds before each run, for the base power (step 1)")
flags.DEFINE_integer("train_steps", 5, "training steps measured (after one untimed step); 0 skips training")
flags.DEFINE_integer("training_steps_total", None, "steps of the whole training (default: the run's train.json)")
flags.DEFINE_float("rate", 400.0, "inferences per second, for the break-even time")
flags.DEFINE_float("lifetime_days", 365.0, "days of inference at --rate the training is shared over")
flags.DEFINE_float("peak_seconds", 3.0, "seconds of the matrix-multiply benchmark of this machine's peak")
flags.DEFINE_float("layer_min_seconds", 0.1, "timing of each layer alone: at least this long")
flags.DEFINE_float("kappa", None, "metric (1): switched capacitance (default: measured power / (N f^3))")
flags.DEFINE_integer("cores", None, "metric (1): cores N (default: this machine's)")
flags.DEFINE_float("clock_hz", None, "metric (1): clock f in Hz (default: this machine's, /proc/cpuinfo)")
flags.DEFINE_float("flops_per_clock", None, "metric (1): FLOPs per clock per core S (default: measured peak / (N f))")

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
    """The energy a board's runner measured (python -m edge.runner --energy=...)."""
    with open(path) as f:
        result = json.load(f)
    if "energy" not in result:
        raise ValueError(f"{path} has no energy: run python -m edge.runner with --energy=SOURCE")
    return {**result["energy"], "latency_ms": result["timing"]["mean_ms"], "precision": "int8",
            "runtime": result["backend"], "device": result.get("device"), "file": os.path.basename(path)}


def measure_training_step(model_config, scenario, train_config, steps, source, base_seconds):
    """Four-step energy of `steps` training steps (slots drawn in-graph, as deeprx.train)."""
    import tempfile
    import tensorflow as tf
    from deeprx import data as data_lib
    from deeprx import training
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
    """Each plan layer's own latency (s) in float TensorFlow (deeprx/kernel_timing.py); layers
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
    layer_source = (f"each layer's in-graph latency (float32; what repeats of it add to one tf.function) x "
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


def check_flags():
    """(preset, scenario, source, processors) or cli.FlagError, before any compute."""
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    with cli.flag("model"):
        workdir_lib.check_model_dir(FLAGS.model, scenario)
    if not FLAGS.out:
        raise cli.FlagError("out", "give the output directory")
    if FLAGS.tflite and not os.path.isfile(FLAGS.tflite):
        raise cli.FlagError("tflite", f"no file at {FLAGS.tflite}")
    if FLAGS.runner_json:
        with cli.flag("runner_json"):
            if not os.path.isfile(FLAGS.runner_json):
                raise ValueError(f"no file at {FLAGS.runner_json}")
            from_runner_json(FLAGS.runner_json)
    for name in ("count", "threads", "base_seconds", "rate", "lifetime_days", "peak_seconds", "layer_min_seconds"):
        if not getattr(FLAGS, name) > 0:
            raise cli.FlagError(name, f"must be positive, got {getattr(FLAGS, name)}")
    if FLAGS.train_steps < 0:
        raise cli.FlagError("train_steps", "must be >= 0")
    with cli.flag("processors"):
        processors = costs.read_processors(FLAGS.processors)
    with cli.flag("only_processors"):
        processors = [costs.find_processor(processors, name) for name in FLAGS.only_processors or ()] or processors
    try:
        source = power_sources.parse_source(FLAGS.source)
    except power_lib.PowerError as error:
        raise cli.FlagError("source", str(error)) from None
    return preset, scenario, source, processors


def main(argv):
    del argv
    preset, scenario, source, processors = check_flags()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    model, model_config = workdir_lib.model_on_grid(FLAGS.model, scenario, batch_size=1)
    settings = workdir_lib.read_settings(FLAGS.model)
    start = time.time()
    log = print
    log(f"Energy of {FLAGS.model} on {preset.name} ({scenario.carrier.num_prb} PRB), source {source.label()}",
        flush=True)
    try:
        log("1/5 this machine's peak (matrix multiply)", flush=True)
        host = measure_peak(source, FLAGS.peak_seconds, FLAGS.base_seconds, log=log)
        host.update(name=HOST_NAME, cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
        processors = processors + [costs.Processor(
            HOST_NAME, "cpu", host["peak_flops_per_s"], host["energy"]["relative_power_w"], "float32",
            f"measured here: matmul peak and four-step power, {host['energy']['source']}")]
        log(f"2/5 inference, {FLAGS.count} per run", flush=True)
        measured = {"float": measure_float_inference(model, FLAGS.count, source, FLAGS.base_seconds)}
        if FLAGS.tflite:
            measured["int8"] = measure_int8_inference(FLAGS.tflite, FLAGS.count, source, FLAGS.base_seconds,
                                                      FLAGS.threads)
        if FLAGS.runner_json:
            measured["runner"] = from_runner_json(FLAGS.runner_json)
        for name, entry in measured.items():
            log(f"  {name}: {1e3 * entry['joules_per_inference']:.4g} mJ per inference, {entry['latency_ms']:.3f} ms",
                flush=True)
        training = None
        if FLAGS.train_steps:
            log(f"3/5 training, {FLAGS.train_steps} steps", flush=True)
            from deeprx import config as config_lib
            train_config = config_lib.TrainConfig(**settings["train"])
            training = measure_training_step(model_config, scenario, train_config, FLAGS.train_steps, source,
                                             FLAGS.base_seconds)
        log("4/5 each layer alone", flush=True)
        layer_seconds = layer_latencies(model_config, scenario, FLAGS.layer_min_seconds, log)
    except power_lib.PowerError as error:
        raise cli.FlagError("source", str(error)) from None
    steps_total = FLAGS.training_steps_total or settings["train"]["steps"]
    with cli.flag("clock_hz"):
        metric1_params = metric1_defaults(host, FLAGS.cores, FLAGS.clock_hz, FLAGS.kappa, FLAGS.flops_per_clock)
    result = report(model_config, scenario, measured, host, processors, layer_seconds, training, steps_total,
                    FLAGS.rate, FLAGS.lifetime_days, metric1_params)
    result.update(model=os.path.abspath(workdir_lib.resolve(FLAGS.model)), preset=preset.name, grid_shape=list(scenario.grid_shape),
                  seconds=round(time.time() - start, 1), **bench.provenance())
    log("5/5 plots", flush=True)
    os.makedirs(FLAGS.out, exist_ok=True)
    from deeprx import energy_plots
    energy_plots.all_plots(result, FLAGS.out)
    ber_lib.write_json(os.path.join(FLAGS.out, "energy.json"), result)
    for line in summary_lines(result):
        log("  " + line, flush=True)
    log(f"Wrote {FLAGS.out}/energy.json and its plots", flush=True)


if __name__ == "__main__":
    cli.run(main)
