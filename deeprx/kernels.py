"""Kernel-level latency and energy predictors (DeepEn2023, PAPER.md section 4).

Example usage:
  python -m deeprx.kernels fit --preset=cpu --out=runs/kernels-cpu
  python -m deeprx.kernels predict --predictor=runs/kernels-cpu --model=runs/teacher-cpu --preset=cpu

`fit` times single kernels on this machine over a grid of shapes, for each backend (float
TensorFlow, batch 1, in a tf.function; int8 on the CPU interpreter, LiteRT, one thread per
core), fits one scikit-learn regressor per kernel type and backend, then predicts whole
DeepRx variants as the sum of their kernels and compares with the measured model: the mean absolute percentage
error (MAPE) on variants never used in fitting (the kernels are fitted on isolated layers,
never on a DeepRx). A runtime runs kernels inside a model faster or slower than alone, so
the kernel sum is calibrated per backend (model = scale x sum + offset) on DeepRx variants
of other widths (--calibration_widths) than the held-out ones. Writes OUT/kernels.csv (every timing), OUT/heldout.csv, OUT/fit.json
and OUT/predictor.joblib.

Kernel types: conv3x3, pointwise (1x1 conv), depthwise (dilated 3x3), bn_relu (BN, which
inference runs as mul + add, and the ReLU after it: TFLite fuses that ReLU into the add, so
DeepRx's pre-activation BN -> ReLU pairs are one kernel, as DeepEn2023's conv+bn+relu
kernels are), add. Features: FLOPs, activation bytes, weight bytes (deeprx/costs/estimates.py); the
regressor is a non-negative linear model (latency = overhead + per-FLOP + per-byte terms), which,
unlike a forest, extrapolates to layers larger than the grid. A kernel's own latency is, in
float, what 4 more runs of it in the same tf.function add, / 4 (a call's overhead, about
0.5 ms here, drops out, as it does inside a model), and in int8 its invoke minus an empty
invoke; without calibration a model's prediction is the sum of its kernels plus one empty call.

Energy: a kernel's energy is its latency x the relative power of its backend at full load
(python -m deeprx.energy measures that with its power source); `predict --relative_power_w`
turns predicted latency into energy. Energy score of a model on a device:
  score = 100 x E_reference / E_model  (energy per inference, same device and precision),
so a model that needs half the reference's energy per inference scores 200.
"""

import os

from absl import flags

from deeprx.core import cli
from deeprx.core import scenario_flags
from deeprx.costs import kernel_timing as timing

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("out", None, "fit: the predictor directory to write")
    flags.DEFINE_string("predictor", None, "predict: a directory of `fit`")
    flags.DEFINE_string("model", None, "predict: a run directory of python -m deeprx.train")
    flags.DEFINE_list("backends", ["float", "int8"], "float (TensorFlow) and/or int8 (CPU interpreter)")
    flags.DEFINE_enum("grid", "full", ["full", "tiny"], "kernel shapes to time: full, or tiny (tests)")
    flags.DEFINE_list("calibration_widths", ["0.25", "0.75"],
                      "width multipliers of the DeepRx variants (paper and edge) that calibrate the kernel sum "
                      "to whole models; empty: no calibration")
    flags.DEFINE_list("heldout_widths", ["0.2", "0.35", "0.5"],
                      "width multipliers of the held-out DeepRx variants (each in the paper and edge variants)")
    flags.DEFINE_float("min_seconds", 0.3, "timing: repeat each kernel for at least this long")
    flags.DEFINE_float("relative_power_w", None, "predict: relative power of the backend at load, for energy")
    scenario_flags.define_flags()


def main(argv):
    _, scenario = scenario_flags.scenario_from_flags(FLAGS)
    unknown = sorted(set(FLAGS.backends) - set(timing.BACKENDS))
    if unknown or not FLAGS.backends:
        raise cli.FlagError("backends", f"choose from {', '.join(timing.BACKENDS)}, got {','.join(FLAGS.backends)}")
    if argv[1] == "fit":
        cli.check_out_dir(FLAGS.out)
        widths = {}
        for name in ("calibration_widths", "heldout_widths"):
            try:
                widths[name] = [float(w) for w in getattr(FLAGS, name) or ()]
            except ValueError:
                raise cli.FlagError(name, f"expected numbers, got {','.join(getattr(FLAGS, name))}") from None
        if not widths["heldout_widths"]:
            raise cli.FlagError("heldout_widths", "at least one held-out width is needed")
        with cli.flag("heldout_widths"):
            result = timing.fit(scenario, FLAGS.backends, FLAGS.grid, widths["calibration_widths"],
                                widths["heldout_widths"], FLAGS.min_seconds, FLAGS.out)
        print(f"Wrote {FLAGS.out}: held-out latency MAPE " + ", ".join(
            f"{b} {m:.1f}%" for b, m in result["latency_mape_heldout"].items()), flush=True)
        return
    if not FLAGS.predictor or not FLAGS.model:
        raise cli.FlagError("predictor" if not FLAGS.predictor else "model", "predict needs --predictor and --model")
    from deeprx.core import workdir as workdir_lib
    with cli.flag("predictor"):
        predictor = timing.load_predictor(FLAGS.predictor)
    with cli.flag("model"):
        run_dir = workdir_lib.RunDir(FLAGS.model)
        if not os.path.isfile(run_dir.file("config.json")):
            raise ValueError(f"no config.json in {FLAGS.model!r}: give a directory of python -m deeprx.train")
        model_config = run_dir.model_config
    for backend in FLAGS.backends:
        if backend not in predictor.empty_call_s:
            raise cli.FlagError("backends", f"the predictor was not fitted for {backend}")
        seconds = predictor.model_seconds(model_config, scenario, backend)
        energy = ("" if FLAGS.relative_power_w is None else
                  f", {1e3 * seconds * FLAGS.relative_power_w:.4g} mJ at {FLAGS.relative_power_w:g} W relative power")
        print(f"{FLAGS.model} {backend}: predicted {1e3 * seconds:.3f} ms per inference{energy}", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags, commands=("fit", "predict"))
