"""Kernel-level latency and energy predictor (DeepEn2023, nn-Meter; PAPER.md section 4).

Example usage:
  python -m deeprx.kernels fit --preset=cpu --out=runs/kernels-cpu
  python -m deeprx.kernels refit --preset=cpu --out=runs/kernels-cpu   # the regressors again, no timing
  python -m deeprx.kernels predict --predictor=runs/kernels-cpu --model=pretrained:teacher-cpu-1dmrs --preset=cpu
  python -m deeprx.kernels predict --predictor=runs/kernels-cpu --model=edge_out/deeprx_int8.tflite

Three backends: keras_float (float TensorFlow, batch 1, in a tf.function, at the process's
threads), tflite_float and tflite_int8 (the CPU interpreter, LiteRT with XNNPACK, at each of
--thread_counts). A model is the operators its runtime executes: a Keras model's layers, a
.tflite's operators after the converter's fusions (deeprx/costs/op_features.py). An
operator's features: its type, kernel size, dilation, channels in/out, spatial size, depth
multiplier, data type (the backend) and threads, with the FLOPs, activation and weight bytes
they imply. Its latency and CPU time are predicted by one gradient-boosted tree ensemble
(scikit-learn) per backend, as nn-Meter fits random forests per kernel, fitted on log2 seconds
per FLOP (trees do not extrapolate: an operator larger than the fit's gets an efficiency from
its neighbours, not their time; chosen over log2 seconds by cross-validation over the fit's
layers, fit.json's target_cv: deeprx/costs/kernel_regression.py).

`fit` samples --fit_layers one-layer models over that space (14 x 24..264 grids, 4..320
channels, dilations up to 4 x 8, depth multiplier 1 or 2; beyond the 720th, square 3x3 convs of
16..128 channels: kernel_models.fit_space), converts each per backend, times
every operator alone (a .tflite's operators cut out one per model; a Keras model's layers
one per model, in a graph: what 4 more runs add, / 4) and fits. It then predicts and measures
whole models it never saw, in three families: (a) DeepRx paper and edge variants at
--heldout_widths, (b) width 0.5 on --heldout_prbs grids, (c) plain ResNets of 3x3 convs; a
prediction is the operators' sum, each times the context factor of its kind (conv, depthwise,
elementwise), TFLite backend and threads, plus one empty call. The factors are fitted on
2 x --context_models multi-layer models of the fit's own operators (residual chains whose BN
folds into a conv, pre-activation chains of separable units; OUT/context.csv, fit.json's
context), measured as the held-out models are. No held-out model calibrates anything.
Drift: a VM's speed wanders by 10% and more within an hour, so a fixed probe model (a conv and a
dilated depthwise, no held-out model) is timed around every block of 10 fit layers and around
every held-out measurement, and every timing is divided by its speed factor (its time then over
its time at the start); each held-out model is measured in --heldout_rounds round-robin passes
spread over the held-out measurement, and its row is the median of its passes (heldout.csv's
spread_wall: the passes' (max - min) / median, the measurement's own noise; probe_wall,
probe_cpu: the median factors; unprobed_wall_ms, and fit.json's held-out errors without the
probe: the median without that division). Each held-out TFLite model's own operators are also
timed alone as the fit's are (ops_alone_wall_ms): fit.json's heldout_decomposition splits the
error into the operators' context in the whole model (measured / that sum) and the regressors
(predicted / that sum). `predict --probe` times the probe now, for the same reading.
A rerun of `fit` on the same OUT resumes kernels.csv only on the CPU it was timed on. `refit`
(the fit's flags) fits the regressors again on OUT's kernels.csv and predicts its held-out
models again, keeping every timing and measurement: it times nothing and runs on any machine
(fit.json's `refit` records when and where; the figures stay those of the fit's CPU).
Writes OUT/kernels.csv (every operator timing), OUT/context.csv, OUT/heldout.csv, OUT/heldout_summary.json
({family: {backend: {mape, within_10pct, models, predictions}}}), OUT/fit.json,
OUT/heldout.png, OUT/probe.json and OUT/predictor.joblib.

Energy: --energy_source=cputime[:W] (the only one a per-operator prediction can be checked
against here: no meter, no RAPL) turns CPU seconds into joules, predicted from the operators'
CPU times and measured as the whole model's process CPU time. Energy score of a model on a
device: score = 100 x E_reference / E_model (energy per inference, same device and precision).
"""

import os
import sys

from absl import flags

from deeprx import cli
from deeprx.cli import scenario_flags
from deeprx.costs import kernel_models
from deeprx.costs import kernel_predictor as predictor_lib
from deeprx.costs import kernel_timing as timing_lib
from deeprx.costs import plots
from deeprx.costs import power_sources
from deeprx.network import model as model_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("out", None, "fit: the predictor directory to write; refit: one of fit")
    flags.DEFINE_string("predictor", None, "predict: a directory of `fit`")
    flags.DEFINE_string("model", None, "predict: a run directory of python -m deeprx.train, or a .tflite")
    flags.DEFINE_list("backends", list(predictor_lib.BACKENDS), "backends to fit or predict")
    flags.DEFINE_list("thread_counts", ["1", "2"], "the TFLite interpreter thread counts to time and predict at")
    flags.DEFINE_integer("fit_layers", 240, "fit: one-layer models sampled")
    flags.DEFINE_integer("context_models", 12, "fit, refit: multi-layer models of each kind (residual chains, pre-activation "
                         "chains) of the fit's operators measured whole and by operators alone, for the context "
                         "factor (0: none, a factor of 1)", lower_bound=0)
    flags.DEFINE_list("heldout_widths", ["0.3", "0.6", "0.9"], "fit, refit: width multipliers of held-out family (a)")
    flags.DEFINE_list("heldout_prbs", ["4", "16"], "fit, refit: PRB counts of held-out family (b), DeepRx width 0.5")
    flags.DEFINE_list("heldout_resnets", ["16x2", "32x3", "64x3", "96x4"],
                      "fit, refit: plain ResNets of held-out family (c), CHANNELSxBLOCKS")
    flags.DEFINE_integer("heldout_rounds", 3, "fit: round-robin passes over the held-out models, each measured once "
                         "a pass; a row is the median of its passes", lower_bound=1)
    flags.DEFINE_bool("probe", False, "predict: time the fit's probe model now and give the predictions at the "
                      "machine's speed of the moment (else in the fit's time)")
    flags.DEFINE_float("min_seconds", 0.2, "timing: repeat each operator or model for at least this long")
    flags.DEFINE_string("energy_source", "cputime", "fit: cputime[:W per busy core], or none (refit keeps the fit's)")
    scenario_flags.define_flags()


def _numbers(name, kind):
    with cli.flag(name):
        try:
            return [kind(v) for v in getattr(FLAGS, name)]
        except ValueError:
            raise ValueError(f"expected {kind.__name__}s, got {','.join(getattr(FLAGS, name))}") from None


def main(argv):
    _, scenario = scenario_flags.scenario_from_flags(FLAGS)
    unknown = sorted(set(FLAGS.backends) - set(predictor_lib.BACKENDS))
    if unknown or not FLAGS.backends:
        raise cli.FlagError("backends", f"choose from {','.join(predictor_lib.BACKENDS)}, got {','.join(FLAGS.backends)}")
    threads = _numbers("thread_counts", int)
    if argv[1] in ("fit", "refit"):
        cli.check_out_dir(FLAGS.out)
        resnets = []
        with cli.flag("heldout_resnets"):
            for spec in FLAGS.heldout_resnets:
                channels, _, blocks = spec.partition("x")
                if not (channels.isdigit() and blocks.isdigit()):
                    raise ValueError(f"expected CHANNELSxBLOCKS such as 32x3, got {spec!r}")
                resnets.append((int(channels), int(blocks)))
        source = None
        if FLAGS.energy_source != "none" and argv[1] == "fit":
            with cli.flag("energy_source"):
                if not FLAGS.energy_source.startswith("cputime"):
                    raise ValueError("a per-operator energy prediction is checked against cputime[:W] only")
                source = power_sources.parse_source(FLAGS.energy_source)
        families = kernel_models.heldout_families(scenario, _numbers("heldout_widths", float),
                                                  _numbers("heldout_prbs", int), resnets)
        command = " ".join(["python -m deeprx.kernels"] + sys.argv[1:])
        if argv[1] == "refit":
            for name in ("kernels.csv", "heldout.csv", "fit.json", "probe.json"):
                if not os.path.isfile(os.path.join(FLAGS.out, name)):
                    raise cli.FlagError("out", f"no {name} in {FLAGS.out!r}: refit needs a finished fit there")
            with cli.flag("out"):
                result = predictor_lib.refit(families, FLAGS.out, command,
                                             context_models=kernel_models.context_models(FLAGS.context_models))
        else:
            result = predictor_lib.fit(scenario, FLAGS.backends, threads, kernel_models.fit_space(FLAGS.fit_layers),
                                       families, FLAGS.min_seconds, FLAGS.out, source, command=command,
                                       rounds=FLAGS.heldout_rounds,
                                       context_models=kernel_models.context_models(FLAGS.context_models))
        plots.heldout_plot(FLAGS.out)
        print(f"Wrote {FLAGS.out}: held-out latency MAPE / within +-10%:", flush=True)
        for family, backends in result["heldout_latency"].items():
            print(f"  {family}: " + ", ".join(f"{b} {v['mape']:.1f}% / {100 * v['within_10pct']:.0f}%"
                                              for b, v in backends.items()), flush=True)
        return
    if not FLAGS.predictor or not FLAGS.model:
        raise cli.FlagError("predictor" if not FLAGS.predictor else "model", "predict needs --predictor and --model")
    with cli.flag("predictor"):
        predictor = predictor_lib.load_predictor(FLAGS.predictor)
    with cli.flag("model"):
        models = _models_to_predict(FLAGS.model, scenario)
    keys = [(backend, n) for backend, _ in models for n in (
        [t for (b, t) in predictor.empty_call if b == backend] if backend == "keras_float" else threads)]
    for backend, n in keys:
        if (backend, n) not in predictor.empty_call:
            raise cli.FlagError("thread_counts", f"the predictor was not fitted for {backend} at {n} thread(s)")
    speed = _speed_now(predictor, sorted({b for b, _ in keys}), threads) if FLAGS.probe else {}
    for backend, rows in models:
        for n in [t for b, t in keys if b == backend]:
            wall, cpu = (t * f for t, f in zip(predictor.model_seconds(rows, backend, n), speed.get((backend, n), (1, 1))))
            print(f"{FLAGS.model} {backend} {n} thread(s): predicted {1e3 * wall:.3f} ms per inference, "
                  f"{1e3 * cpu:.3f} ms CPU time ({len(rows)} operators; "
                  + (f"the probe runs {speed[backend, n][0]:.2f}x its fit time now)" if speed else "in the fit's time)"),
                  flush=True)


def _speed_now(predictor, backends, threads):
    """{(backend, threads): (wall, CPU) factor}: the fit's probe model timed now against its time in the fit."""
    import tempfile
    if not predictor.probe_reference:
        raise cli.FlagError("probe", "this predictor was fitted without the probe model: fit it again")
    with tempfile.TemporaryDirectory() as tmp:
        timers = timing_lib.Timers(backends, threads, FLAGS.min_seconds, tmp, predictor.probe_reference)
        if timers.reference is not predictor.probe_reference:
            raise cli.FlagError("thread_counts", "the predictor's probe was not timed for these backends and threads")
        now = timers.probe()
    return timers.speed(now, now)


def _models_to_predict(path, scenario):
    """[(backend, operator rows)]: a .tflite's own backend, or a run directory on --backends."""
    import tempfile
    from deeprx.costs import op_features
    if path.endswith(".tflite"):
        rows = op_features.tflite_ops(path)
        return [("tflite_int8" if rows and rows[0]["dtype"] == "int8" else "tflite_float", rows)]
    from deeprx.core import workdir as workdir_lib
    from deeprx.network import saved
    run_dir = workdir_lib.RunDir(path)
    if not os.path.isfile(run_dir.file("config.json")):
        raise ValueError(f"no config.json in {path!r}: give a directory of python -m deeprx.train or a .tflite")
    model_config = saved.model_config(run_dir)
    keras_model = model_lib.build(model_config, scenario, batch_size=1)
    export_model = model_lib.expanded(keras_model, model_config, scenario, batch_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        return [(b, timing_lib.backend_rows(keras_model, export_model, b, tmp)[0]) for b in FLAGS.backends]


if __name__ == "__main__":
    cli.run(main, define_flags, commands=("fit", "refit", "predict"))
