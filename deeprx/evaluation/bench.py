"""The measurement bench: BER vs SINR of receivers on the same slots, and its outputs.

Library code behind `python -m deeprx.evaluate` and the final evaluation of training runs.
"""

import os
import platform
import time

from deeprx import REPO_ROOT
from edge import ber as ber_lib


def title(preset_name, scenario, evaluation):
    """One-line description of an evaluation, for logs and plot titles."""
    interferer = ("no interferer" if scenario.interferer is None
                  else f"interferer SIR {scenario.interferer.sir_db[0]:g}..{scenario.interferer.sir_db[1]:g} dB")
    models = "/".join(scenario.channel.models(evaluation.channel_set))
    return (f"{preset_name}: {scenario.carrier.num_prb} PRB, {scenario.modulation}, "
            f"{scenario.dmrs.num_symbols} DMRS, {scenario.num_rx} Rx, "
            f"{scenario.channel.family.upper()} {models} ({evaluation.channel_set}), {interferer}")


def summary_lines(summary):
    """One line per receiver of a summary.json mapping, for the console."""
    def at(entry, target):
        value = entry["sinr_at_ber_" + target]
        return f"{value} dB" if value is not None else entry.get("note_" + target, "not reached")
    return [f"{name:>16}: GM BER {entry['gm_ber']:.3f} | SINR at BER 1e-2 {at(entry, '1e-2')}"
            f" | at 1e-3 {at(entry, '1e-3')}" for name, entry in summary.items()]


def cpu_model():
    """The CPU's model name and its int8/bf16 extensions (/proc/cpuinfo), e.g. "Intel(R) Xeon(R)
    Processor (avx512f, avx512_vnni, avx512_bf16, amx_bf16)"; "unknown CPU" without /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or "unknown CPU")
    cpu_flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
                         []))
    extensions = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                  if f in cpu_flags]
    return f"{name} ({', '.join(extensions) or 'no AVX2'})"


def code_version():
    """The git commit of this code ("abc1234", "+ local changes" when deeprx/ or edge/ differ from
    it), or "unknown" outside a git checkout."""
    import subprocess
    repo = REPO_ROOT
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10)
        changed = subprocess.run(["git", "status", "--porcelain", "--", "deeprx", "edge"], cwd=repo,
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + (" + local changes" if changed.stdout.strip() else "")


def provenance():
    """Date, machine and CPU model, for every result file."""
    return {"date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "cpu": cpu_model()}


def simulate(receivers, scenario, evaluation, log=print):
    """Runs every receiver on the same slots at each SINR point; returns ber.csv rows.

    A point stops when every receiver has evaluation.target_bit_errors errors or
    evaluation.max_bits bits have been simulated.
    """
    import tensorflow as tf
    from deeprx.simulation import data as data_lib
    generator = data_lib.SlotGenerator(scenario, evaluation.channel_set)
    rows = []
    start = time.time()
    for index, sinr_db in enumerate(evaluation.sinr_db):
        slot_errors = {r.name: [] for r in receivers}  # errors of each slot, for the confidence interval
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
                slot_errors[receiver.name] += tf.math.count_nonzero(wrong, axis=[1, 2, 3]).numpy().tolist()
            bits += int(tf.math.count_nonzero(batch.data_mask)) * scenario.bits_per_symbol
            batch_index += 1
            errors = {name: sum(counts) for name, counts in slot_errors.items()}
            if min(errors.values()) >= evaluation.target_bit_errors or bits >= evaluation.max_bits:
                break
        for receiver in receivers:
            rows.append(ber_lib.make_row(receiver.name, sinr_db, errors[receiver.name], bits,
                                         slot_errors[receiver.name]))
        elapsed = time.time() - start
        remaining = elapsed / (index + 1) * (len(evaluation.sinr_db) - index - 1)
        status = "  ".join(f"{name} {errors[name] / bits:.2e} ({errors[name]} err)" for name in errors)
        log(f"[{index + 1:2d}/{len(evaluation.sinr_db)}] SINR {sinr_db:6.1f} dB | {status} | "
            f"{bits} bits in {time.time() - point_start:.1f} s | ETA {remaining:.0f} s", flush=True)
    return rows


def write_outputs(out_dir, rows, run_config, title):
    """ber.csv, summary.json, ber.png and config.json in out_dir, each written atomically."""
    from deeprx.evaluation import plots
    os.makedirs(out_dir, exist_ok=True)
    summary = ber_lib.summarize(rows)
    ber_lib.write_csv(os.path.join(out_dir, "ber.csv"), rows)
    ber_lib.write_json(os.path.join(out_dir, "summary.json"), summary)
    ber_lib.write_json(os.path.join(out_dir, "config.json"), run_config)
    plots.ber_vs_sinr(rows, os.path.join(out_dir, "ber.png"), title)
    return summary


def run(receivers, preset_name, scenario, evaluation, out_dir, log=print, record=None):
    """Simulates `receivers`, writes out_dir (ber.csv, summary.json, ber.png, config.json)
    and returns the summary. `record` adds to (or replaces) fields of config.json."""
    from deeprx.core import config as config_lib
    plot_title = title(preset_name, scenario, evaluation)
    log(f"Evaluating {', '.join(r.name for r in receivers)} | {plot_title}", flush=True)
    start = time.time()
    rows = simulate(receivers, scenario, evaluation, log=log)
    run_config = {"preset": preset_name, "receivers": [r.name for r in receivers],
                  "scenario": config_lib.to_dict(scenario), "evaluation": config_lib.to_dict(evaluation),
                  "seconds": round(time.time() - start, 1), **provenance(), **(record or {})}
    return write_outputs(out_dir, rows, run_config, plot_title)
