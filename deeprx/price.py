"""What trained students cost on the edge: int8 export, its BER cost, CPU latency and energy,
Edge TPU preflight, and the kernel predictor's latency (deeprx/experiments/pricing.py says
what it runs and writes).

Example usage:
  python -m deeprx.price --models=runs/kd-map-2dmrs/r0.03/runs/kd-26.1M-t0.5-a0.5-T3-dmrs2-s0,... \
      --preset=cpu --num_dmrs=2 --predictor=data/results/energy-cpu/kernels --out=data/results/kd-map-2dmrs/r0.03/price

Writes OUT/price.json, OUT/<model>_int8.tflite (PTQ; with its .json and .preflight.json),
OUT/ber/ (float and int8 on the same slots) and OUT/runner/ (speed passes). Time it with
nothing else running: its latency and energy are measured.
"""

import os

from absl import flags

from deeprx import cli
from deeprx.cli import scenario_flags
from deeprx.costs import power_sources
from deeprx.experiments import pricing
from edge import power as power_lib

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("models", [], "trained run directories of python -m deeprx.train (or pretrained:NAME)")
    flags.DEFINE_string("out", None, "output directory")
    flags.DEFINE_integer("threads", os.cpu_count() or 1, "interpreter threads of the speed passes (default: "
                         "every core)")
    flags.DEFINE_integer("count", 300, "timed batch-1 inferences per model and pass")
    flags.DEFINE_integer("passes", 3, "round-robin speed passes; a figure is the median pass's")
    flags.DEFINE_integer("max_bits", None, "bits per SINR point of the BER comparison (default: the preset's)")
    flags.DEFINE_string("energy_source", "cputime", "the runner's power source: cputime[:W], rated:W, rapl, meter:PATH")
    flags.DEFINE_string("predictor", None, "a kernel predictor directory (python -m deeprx.kernels fit or refit)")
    scenario_flags.define_flags()


def main(argv):
    del argv
    cli.check_out_dir(FLAGS.out)
    if not FLAGS.models:
        raise cli.FlagError("models", "give the trained run directories to price")
    for name in ("threads", "count", "passes"):
        if getattr(FLAGS, name) < 1:
            raise cli.FlagError(name, f"must be a positive integer, got {getattr(FLAGS, name)}")
    if FLAGS.predictor and not os.path.isfile(os.path.join(FLAGS.predictor, "predictor.joblib")):
        raise cli.FlagError("predictor", f"no predictor.joblib in {FLAGS.predictor}: run python -m deeprx.kernels "
                                         f"refit --out={FLAGS.predictor} (or fit) first")
    with cli.flag("energy_source"):
        source = power_sources.parse_source(FLAGS.energy_source)
    # The runner gets the power per core resolved here (cputime's default reads CodeCarbon, host-only).
    cputime = isinstance(source, power_lib.CpuTimeSource)
    runner_source = f"cputime:{source.watts:g}" if cputime else FLAGS.energy_source
    preset, scenario = scenario_flags.scenario_from_flags(FLAGS)
    with cli.flag("models"):
        from deeprx.core import workdir as workdir_lib
        for model in FLAGS.models:
            workdir_lib.RunDir(model).check(scenario)
    result = pricing.price(FLAGS.models, preset.name, scenario, FLAGS.out, threads=FLAGS.threads, count=FLAGS.count,
                           passes=FLAGS.passes, max_bits=FLAGS.max_bits, energy_source=runner_source,
                           energy_label=source.label(), predictor_dir=FLAGS.predictor)
    for name, entry in result["models"].items():
        speed = result["shapes"][entry["shape"]]
        print(f"{name}: {entry['mflops']:.1f} MFLOPs, GM BER float {entry['float']['gm_ber']:.3f} int8 "
              f"{entry['int8']['gm_ber']:.3f} (int8 cost {entry['int8_cost_db_1e-2']} dB at 1e-2); int8 "
              f"{speed['int8']['inferences_per_s']:.0f}/s, {speed['int8']['energy_mj_per_inference']:.2f} mJ; "
              f"Edge TPU {entry['edgetpu']['mapped']}/{entry['edgetpu']['operators']} operators", flush=True)
    print(f"Wrote {FLAGS.out}/price.json", flush=True)


if __name__ == "__main__":
    cli.run(main, define_flags)
