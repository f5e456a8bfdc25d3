"""Energy of a DeepRx model: estimates, measurements, breakdowns and amortization.

Example usage:
  python -m deeprx.energy --model=pretrained:teacher-cpu-1dmrs --preset=cpu --out=runs/energy-teacher
  python -m deeprx.energy --model=runs/student --tflite=student_int8.tflite --preset=cpu --out=runs/energy-student
  python -m deeprx.energy --model=DIR --runner_json=coral/runner.json --out=DIR2   # a board's runner result

What it writes to OUT (energy.json holds every number; each figure names its source and
whether it was measured or estimated):
  - FLOPs, MACs, weight and activation bytes per layer and per ResNet block (deeprx/costs/estimates.py);
  - metric (0) on every processor of --processors (data/processors.csv) and on this machine,
    whose peak FLOP/s and power are measured here by a matrix-multiply benchmark;
    metric (1) with --kappa, --cores, --clock_hz, --flops_per_clock (defaults: this machine,
    kappa from its measured power, P = kappa N f^3); metric (2) (Lahmer) with a and b
    fitted on this machine's measured per-layer energy;
  - measured energy by the paper's four steps (edge/power.py) with --energy_source: inference of
    the float Keras model (batch 1), of the int8 --tflite on the CPU interpreter, the
    energy in --runner_json (python -m edge.runner --energy_source=... on a board), and one
    training step; per-layer energy = each layer's own latency in a graph (as
    deeprx/costs/kernel_timing.py times kernels) x the float run's relative power;
  - training vs inference: amortized training energy per inference, the break-even
    number of inferences and its time at --rate, and the paper's own example recomputed;
  - plots: blocks.png and layers.png (paper Fig. 2), processors.png (Fig. 1: metric (0)
    against measurement), amortization.png (log-log, break-even marked).

Power sources (--energy_source): cputime (the default: the CPU time this process spent, user +
system, x a power per busy core, CodeCarbon's TDP for this CPU / its cores unless given as
cputime:W; an estimate of the model's energy that bills only the cores it kept busy),
codecarbon (CodeCarbon in process mode: on a machine without RAPL, as these VMs, its CPU
power is its assumed TDP x CPU load, an estimate; the label names the TDP), rapl, nvml (with
a GPU), meter:PATH (an external meter's CSV of timestamp,watts), rated:WATTS. Every measured
entry also holds the CPU time next to the wall time (busy cores), whatever the source. Float
and int8 run with --threads threads (the interpreter's and TensorFlow's), so that idle
threads spinning in one runtime are not billed as the other's work.
"""

import os
import platform
import time

from absl import flags

from deeprx import cli
from deeprx.cli import scenario_flags
from deeprx.core import workdir as workdir_lib
from deeprx.costs import estimates as costs
from deeprx.costs import measure
from deeprx.costs import power_sources
from deeprx.core import provenance as provenance_lib
from deeprx.core import io as io_lib
from deeprx.network import saved
from edge import power as power_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("model", None, "a run directory of python -m deeprx.train (model.keras + config.json)")
    flags.DEFINE_string("tflite", None, "the model's int8 .tflite (python -m deeprx.quantize): measured on the CPU interpreter")
    flags.DEFINE_string("runner_json", None, "runner.json of python -m edge.runner --energy_source=... (e.g. from a Coral board)")
    flags.DEFINE_string("out", None, "output directory")
    flags.DEFINE_string("energy_source", "cputime", "power source: cputime[:W], codecarbon, rapl, nvml, meter:PATH or "
                        "rated:WATTS")
    flags.DEFINE_integer("threads", os.cpu_count() or 1, "threads of the float (TensorFlow) and int8 (interpreter) "
                         "runs alike (default: every core)")
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
    scenario_flags.define_flags()


def check_flags():
    """(preset, scenario, source, processors) or cli.FlagError, before any compute."""
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    with cli.flag("model"):
        if not FLAGS.model:
            raise ValueError("give a run directory of python -m deeprx.train")
        workdir_lib.RunDir(FLAGS.model).check(scenario)
    cli.check_out_dir(FLAGS.out)
    if FLAGS.tflite and not os.path.isfile(FLAGS.tflite):
        raise cli.FlagError("tflite", f"no file at {FLAGS.tflite}")
    if FLAGS.runner_json:
        with cli.flag("runner_json"):
            if not os.path.isfile(FLAGS.runner_json):
                raise ValueError(f"no file at {FLAGS.runner_json}")
            measure.from_runner_json(FLAGS.runner_json)
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
        source = power_sources.parse_source(FLAGS.energy_source)
    except power_lib.PowerError as error:
        raise cli.FlagError("energy_source", str(error)) from None
    return preset, scenario, source, processors


def main(argv):
    del argv
    preset, scenario, source, processors = check_flags()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    run_dir = workdir_lib.RunDir(FLAGS.model)
    model, model_config = saved.model_on_grid(run_dir, scenario, batch_size=1)
    settings = run_dir.settings
    start = time.time()
    log = print
    log(f"Energy of {FLAGS.model} on {preset.name} ({scenario.carrier.num_prb} PRB), source {source.label()}",
        flush=True)
    try:
        log("1/5 this machine's peak (matrix multiply)", flush=True)
        host = measure.measure_peak(source, FLAGS.peak_seconds, FLAGS.base_seconds, log=log)
        host.update(name=measure.HOST_NAME, cpu=platform.processor() or platform.machine(), cores=os.cpu_count())
        processors = processors + [costs.Processor(
            measure.HOST_NAME, "cpu", host["peak_flops_per_s"], host["energy"]["relative_power_w"], "float32",
            f"measured here: matmul peak and four-step power, {host['energy']['source']}")]
        log(f"2/5 inference, {FLAGS.count} per run", flush=True)
        measured = {"float": measure.measure_float_inference(model, FLAGS.count, source, FLAGS.base_seconds)}
        if FLAGS.tflite:
            measured["int8"] = measure.measure_int8_inference(FLAGS.tflite, FLAGS.count, source, FLAGS.base_seconds,
                                                      FLAGS.threads)
        if FLAGS.runner_json:
            measured["runner"] = measure.from_runner_json(FLAGS.runner_json)
        for name, entry in measured.items():
            log(f"  {name}: {1e3 * entry['joules_per_inference']:.4g} mJ per inference, {entry['latency_ms']:.3f} ms",
                flush=True)
        training = None
        if FLAGS.train_steps:
            log(f"3/5 training, {FLAGS.train_steps} steps", flush=True)
            from deeprx.core import config as config_lib
            train_config = config_lib.TrainConfig(**settings["train"])
            training = measure.measure_training_step(model_config, scenario, train_config, FLAGS.train_steps, source,
                                             FLAGS.base_seconds)
        log("4/5 each layer alone", flush=True)
        layer_seconds = measure.layer_latencies(model_config, scenario, FLAGS.layer_min_seconds, log)
    except power_lib.PowerError as error:
        raise cli.FlagError("energy_source", str(error)) from None
    steps_total = FLAGS.training_steps_total or settings["train"]["steps"]
    with cli.flag("clock_hz"):
        metric1_params = measure.metric1_defaults(host, FLAGS.cores, FLAGS.clock_hz, FLAGS.kappa, FLAGS.flops_per_clock)
    result = measure.report(model_config, scenario, measured, host, processors, layer_seconds, training, steps_total,
                    FLAGS.rate, FLAGS.lifetime_days, metric1_params)
    result.update(model=os.path.abspath(run_dir.path), preset=preset.name, grid_shape=list(scenario.grid_shape),
                  seconds=round(time.time() - start, 1), **provenance_lib.provenance())
    log("5/5 plots", flush=True)
    os.makedirs(FLAGS.out, exist_ok=True)
    from deeprx.costs import plots as energy_plots
    energy_plots.all_plots(result, FLAGS.out)
    io_lib.write_json(os.path.join(FLAGS.out, "energy.json"), result)
    for line in measure.summary_lines(result):
        log("  " + line, flush=True)
    log(f"Wrote {FLAGS.out}/energy.json and its plots", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
