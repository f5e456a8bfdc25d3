"""BER vs SINR of any set of receivers on the same slots.

Example usage:
  python -m deeprx.evaluate --preset=demo --receivers=ls_lmmse,perfect_lmmse --out=runs/eval-demo

Writes OUT/ber.csv (receiver,sinr_db,ber,bit_errors,bits), OUT/summary.json
({receiver: {gm_ber, sinr_at_ber_1e-2, sinr_at_ber_1e-3, sinr_db}}), OUT/ber.png and
OUT/config.json (the resolved scenario and evaluation settings, timings).
Every receiver sees exactly the same slots: the slots of SINR point i, batch j are
drawn with seed slot_seed("eval", seed, i, j), so separate runs with the same preset
also see the same slots.
"""

import dataclasses
import os
import platform
import sys
import time

from absl import flags

from deeprx import ber as ber_lib
from deeprx import cli
from deeprx import config as config_lib
from deeprx import receivers as receivers_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "demo", f"scenario preset: {', '.join(config_lib.PRESETS)}")
flags.DEFINE_string("receivers", "ls_lmmse,perfect_lmmse",
                    "comma-separated classical receiver names and/or model directories")
flags.DEFINE_string("out", None, "output directory")
flags.DEFINE_string("channel", None, "override: awgn, cdl or tdl")
flags.DEFINE_string("channel_set", None, "override: train or test channel models")
flags.DEFINE_string("modulation", None, "override: qpsk, 16qam, 64qam or 256qam")
flags.DEFINE_string("sinr_db", None, "override: SINR grid LO:HI:STEP in dB")
flags.DEFINE_integer("num_dmrs", None, "override: DMRS symbols per slot, 1 or 2")
flags.DEFINE_integer("num_rx", None, "override: receive antennas, 1, 2 or 4")
flags.DEFINE_integer("num_prb", None, "override: physical resource blocks")
flags.DEFINE_string("sir_db", None, "override: interferer SIR range LO:HI in dB, or 'none'")
flags.DEFINE_integer("target_errors", None, "override: bit errors per receiver that end a point")
flags.DEFINE_integer("max_bits", None, "override: data bits that end a point")
flags.DEFINE_integer("batch_size", None, "override: slots per batch")
flags.DEFINE_integer("seed", None, "override: evaluation seed")


def parse_pair(text):
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"expected LO:HI, got {text!r}")
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected two numbers LO:HI, got {text!r}") from None


def scenario_from_flags(flag_values):
    """(preset name, ScenarioConfig, EvalConfig) from a preset and its overrides.

    Raises cli.FlagError naming the first bad flag.
    """
    with cli.flag("preset"):
        preset = config_lib.get_preset(flag_values.preset)
    scenario, evaluation = preset.scenario, preset.evaluation
    replace = dataclasses.replace
    if flag_values.num_prb is not None:
        with cli.flag("num_prb"):
            scenario = replace(scenario, carrier=replace(scenario.carrier, num_prb=flag_values.num_prb))
    if flag_values.channel is not None:
        with cli.flag("channel"):
            scenario = replace(scenario, channel=replace(scenario.channel, family=flag_values.channel))
    if flag_values.modulation is not None:
        with cli.flag("modulation"):
            scenario = replace(scenario, modulation=flag_values.modulation)
    if flag_values.num_dmrs is not None:
        with cli.flag("num_dmrs"):
            scenario = replace(scenario, dmrs=replace(scenario.dmrs, num_symbols=flag_values.num_dmrs))
    if flag_values.num_rx is not None:
        with cli.flag("num_rx"):
            scenario = replace(scenario, num_rx=flag_values.num_rx)
    if flag_values.sir_db is not None:
        with cli.flag("sir_db"):
            interferer = (None if flag_values.sir_db == "none"
                          else config_lib.InterfererConfig(sir_db=parse_pair(flag_values.sir_db)))
            scenario = replace(scenario, interferer=interferer)
    if flag_values.sinr_db is not None:
        with cli.flag("sinr_db"):
            evaluation = replace(evaluation, sinr_db=config_lib.parse_sinr_grid(flag_values.sinr_db))
    for flag_name, field in (("channel_set", "channel_set"), ("target_errors", "target_bit_errors"),
                             ("max_bits", "max_bits"), ("batch_size", "batch_size"), ("seed", "seed")):
        value = getattr(flag_values, flag_name)
        if value is not None:
            with cli.flag(flag_name):
                evaluation = replace(evaluation, **{field: value})
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


def simulate(receivers, scenario, evaluation, log=print):
    """Runs every receiver on the same slots at each SINR point; returns ber.csv rows.

    A point stops when every receiver has evaluation.target_bit_errors errors or
    evaluation.max_bits bits have been simulated.
    """
    import tensorflow as tf
    from deeprx import data as data_lib

    generator = data_lib.SlotGenerator(scenario, evaluation.channel_set)
    rows = []
    start = time.time()
    for index, sinr_db in enumerate(evaluation.sinr_db):
        errors = {r.name: 0 for r in receivers}
        bits = 0
        batch_index = 0
        point_start = time.time()
        while True:
            seed = data_lib.slot_seed("eval", evaluation.seed, index, batch_index)
            batch = generator(evaluation.batch_size, seed, sinr_db=sinr_db)
            truth = batch.bits > 0.5
            mask = tf.cast(batch.data_mask[..., None], tf.bool)
            for receiver in receivers:
                wrong = tf.logical_and(tf.not_equal(receiver(batch) > 0.0, truth), mask)
                errors[receiver.name] += int(tf.math.count_nonzero(wrong))
            bits += int(tf.math.count_nonzero(batch.data_mask)) * scenario.bits_per_symbol
            batch_index += 1
            if min(errors.values()) >= evaluation.target_bit_errors or bits >= evaluation.max_bits:
                break
        for receiver in receivers:
            rows.append(ber_lib.make_row(receiver.name, sinr_db, errors[receiver.name], bits))
        elapsed = time.time() - start
        remaining = elapsed / (index + 1) * (len(evaluation.sinr_db) - index - 1)
        status = "  ".join(f"{name} {errors[name] / bits:.2e} ({errors[name]} err)" for name in errors)
        log(f"[{index + 1:2d}/{len(evaluation.sinr_db)}] SINR {sinr_db:6.1f} dB | {status} | "
            f"{bits} bits in {time.time() - point_start:.1f} s | ETA {remaining:.0f} s", flush=True)
    return rows


def write_outputs(out_dir, rows, run_config, title):
    """ber.csv, summary.json, ber.png and config.json in out_dir, each written atomically."""
    from deeprx import plots
    os.makedirs(out_dir, exist_ok=True)
    summary = ber_lib.summarize(rows)
    ber_lib.write_csv(os.path.join(out_dir, "ber.csv"), rows)
    ber_lib.write_json(os.path.join(out_dir, "summary.json"), summary)
    ber_lib.write_json(os.path.join(out_dir, "config.json"), run_config)
    plots.ber_vs_sinr(rows, os.path.join(out_dir, "ber.png"), title)
    return summary


def main(argv):
    del argv
    preset_name, scenario, evaluation = scenario_from_flags(FLAGS)
    specs = check_receivers(FLAGS.receivers)
    if not FLAGS.out:
        raise cli.FlagError("out", "an output directory is required")
    if os.path.exists(FLAGS.out) and not os.path.isdir(FLAGS.out):
        raise cli.FlagError("out", f"{FLAGS.out!r} exists and is not a directory")

    with cli.flag("receivers"):
        receivers = [receivers_lib.load(spec, scenario) for spec in specs]
    interferer = ("no interferer" if scenario.interferer is None
                  else f"interferer SIR {scenario.interferer.sir_db[0]:g}..{scenario.interferer.sir_db[1]:g} dB")
    title = (f"{preset_name}: {scenario.carrier.num_prb} PRB, {scenario.modulation}, "
             f"{scenario.dmrs.num_symbols} DMRS, {scenario.num_rx} Rx, "
             f"{scenario.channel.family.upper()} {'/'.join(scenario.channel.models(evaluation.channel_set))} "
             f"({evaluation.channel_set}), {interferer}")
    print(f"Evaluating {', '.join(r.name for r in receivers)} | {title}", flush=True)
    start = time.time()
    rows = simulate(receivers, scenario, evaluation)
    run_config = {
        "preset": preset_name,
        "receivers": specs,
        "scenario": config_lib.to_dict(scenario),
        "evaluation": config_lib.to_dict(evaluation),
        "command": " ".join(["python -m deeprx.evaluate"] + sys.argv[1:]),
        "seconds": round(time.time() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    summary = write_outputs(FLAGS.out, rows, run_config, title)
    for name, entry in summary.items():
        print(f"{name:>16}: GM BER {entry['gm_ber']:.3f} | SINR at BER 1e-2 {entry['sinr_at_ber_1e-2']} dB"
              f" | at 1e-3 {entry['sinr_at_ber_1e-3']} dB")
    print(f"Wrote {FLAGS.out}/ber.csv, summary.json, ber.png, config.json in {time.time() - start:.0f} s")


if __name__ == "__main__":
    cli.run(main)
