"""BER (and, with --coded, BLER) vs SINR of any set of receivers on the same slots.

Example usage:
  python -m deeprx.evaluate --preset=demo --out=runs/eval-demo      # the four classical receivers
  python -m deeprx.evaluate --preset=cpu --coded --receivers=pretrained:teacher-cpu-1dmrs,ls_irc --out=runs/coded
  python -m deeprx.evaluate --rescore=data/results/baselines-cpu-1dmrs   # summary.json, ber.png from ber.csv

Writes OUT/ber.csv (receiver, sinr_db, ber, bit_errors, bits, slots, 95% interval; with
--coded blocks, block_errors, bler), OUT/summary.json ({receiver: {gm_ber, sinr_at_ber_1e-2,
sinr_at_ber_1e-3, llr_overconfidence, with --coded sinr_at_bler_1e-1 and _1e-2}}),
OUT/calibration.csv (each receiver's bits by |LLR| bin against the empirical LLR of its
decisions: deeprx.evaluation.calibration), OUT/ber.png and OUT/config.json (the resolved
scenario, evaluation and code settings, timings). --coded sends one 5G LDPC transport block
per slot (deeprx.simulation.coding) and decodes every receiver's LLRs unchanged.
Every receiver sees exactly the same slots: the slots of SINR point i, batch j are
drawn with seed slot_seed("eval", seed, i, j), so separate runs with the same preset
also see the same slots.
"""

import dataclasses
import os
import sys
import time

from absl import flags

from deeprx import cli
from deeprx.core import config as config_lib
from deeprx.cli import scenario_flags
from deeprx.evaluation import bench
from deeprx.evaluation import receivers as receivers_lib

FLAGS = flags.FLAGS


def define_flags():
    """This command's flags (defined only when it runs, so that every module imports
    together in one process)."""
    flags.DEFINE_string("receivers", ",".join(receivers_lib.CLASSICAL_NAMES),
                        "comma-separated: classical receivers (ls_lmmse, perfect_lmmse, ls_irc, perfect_irc), "
                        "run directories, pretrained:NAME, .tflite files")
    flags.DEFINE_bool("coded", False, "one 5G LDPC transport block per slot: BLER beside BER")
    flags.DEFINE_float("coderate", None, "override: the code rate of --coded (the preset's: 0.5)")
    flags.DEFINE_string("out", None, "output directory")
    flags.DEFINE_string("channel_set", None, "override: train or test channel models")
    flags.DEFINE_string("sinr_db", None, "override: SINR grid LO:HI:STEP in dB")
    flags.DEFINE_integer("target_errors", None, "override: bit errors per receiver that end a point")
    flags.DEFINE_integer("target_block_errors", None, "override: --coded, block errors per receiver a point "
                         "also needs before it ends (default 100)")
    flags.DEFINE_integer("max_bits", None, "override: data bits that end a point")
    flags.DEFINE_integer("batch_size", None, "override: slots per batch")
    flags.DEFINE_integer("eval_seed", None, "override: the evaluation seed (which slots are drawn; the "
                         "training seed is deeprx.train's --seed)")
    flags.DEFINE_float("interference_share", None, "interference-limited evaluation: the interferer takes this share "
                       "of interference + noise at every SINR point (e.g. 0.9); default: its drawn SIR, capped at half")
    flags.DEFINE_bool("off_distribution", False, "score trained models on another channel, SNR range or interferer "
                      "than they were trained on (--channel, --sir_db overrides); recorded in config.json")
    flags.DEFINE_list("rescore", None, "simulate nothing: recompute summary.json and ber.png of these earlier "
                      "evaluations (or run directories' eval/) from their ber.csv with the current counting rules "
                      "(edge/ber.py), e.g. after a change of those rules")
    scenario_flags.define_flags()


def settings_from_flags(flag_values):
    """(preset name, ScenarioConfig, EvalConfig) from a preset and its overrides.

    Raises cli.FlagError naming the first bad flag.
    """
    preset, scenario = scenario_flags.scenario_from_flags(flag_values)
    evaluation = preset.evaluation
    replace = dataclasses.replace
    if flag_values.sinr_db is not None:
        with cli.flag("sinr_db"):
            evaluation = replace(evaluation, sinr_db=config_lib.parse_sinr_grid(flag_values.sinr_db))
    for flag_name, field in (("channel_set", "channel_set"), ("target_errors", "target_bit_errors"),
                             ("max_bits", "max_bits"), ("batch_size", "batch_size"), ("eval_seed", "seed"),
                             ("coded", "coded"), ("coderate", "coderate"),
                             ("target_block_errors", "target_block_errors"),
                             ("interference_share", "interference_share")):
        value = getattr(flag_values, flag_name)
        if value is not None:
            with cli.flag(flag_name):
                evaluation = replace(evaluation, **{field: value})
    if evaluation.interference_share is not None and scenario.interferer is None:
        raise cli.FlagError("interference_share", "needs an interferer: drop --sir_db=none")
    return preset.name, scenario, evaluation


def check_receivers(text):
    """Receiver specs from --receivers, each checked; raises cli.FlagError."""
    specs = [s.strip() for s in text.split(",") if s.strip()]
    with cli.flag("receivers"):
        if not specs:
            raise ValueError("no receiver given")
        for spec in specs:
            receivers_lib.check_spec(spec)
        names = [receivers_lib.receiver_name(s) for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"two receivers share a name: {names}")
    return specs


def rescore(directories):
    """--rescore: each directory's summary.json and ber.png again from its ber.csv."""
    for directory in directories:
        for name in ("ber.csv", "config.json", "summary.json"):
            if not os.path.isfile(os.path.join(directory, name)):
                raise cli.FlagError("rescore", f"{directory} has no {name}: name an evaluation's output directory")
    for directory in directories:
        print(f"{directory}:")
        print("\n".join(bench.summary_lines(bench.rescore(directory))))


def main(argv):
    del argv
    if FLAGS.rescore:
        return rescore(FLAGS.rescore)
    preset_name, scenario, evaluation = settings_from_flags(FLAGS)
    specs = check_receivers(FLAGS.receivers)
    cli.check_out_dir(FLAGS.out)

    with cli.flag("receivers"):
        receivers = [receivers_lib.load(spec, scenario, FLAGS.off_distribution) for spec in specs]
    start = time.time()
    record = {"receivers": specs, "off_distribution": FLAGS.off_distribution, "command": " ".join(["python -m deeprx.evaluate"] + sys.argv[1:])}
    summary = bench.run(receivers, preset_name, scenario, evaluation, FLAGS.out, record=record)
    print("\n".join(bench.summary_lines(summary)))
    print(f"Wrote {FLAGS.out}/ber.csv, summary.json, calibration.csv, ber.png, config.json "
          f"in {time.time() - start:.0f} s")


if __name__ == "__main__":
    cli.run(main, define_flags)
