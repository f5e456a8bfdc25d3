"""The measurement bench: BER (and, coded, BLER) vs SINR of receivers on the same slots,
their LLR calibration, and the outputs.

Library code behind `python -m deeprx.evaluate` and the final evaluation of training runs.
"""

import os
import time

from deeprx.core import provenance as provenance_lib
from deeprx.core import io as io_lib
from edge import ber as ber_lib


def title(preset_name, scenario, evaluation):
    """One-line description of an evaluation, for logs and plot titles."""
    interferer = ("no interferer" if scenario.interferer is None
                  else f"interferer SIR {scenario.interferer.sir_db[0]:g}..{scenario.interferer.sir_db[1]:g} dB")
    if evaluation.interference_share is not None:
        interferer = f"interferer {evaluation.interference_share:.0%} of interference + noise (interference-limited)"
    models = "/".join(scenario.channel.models(evaluation.channel_set))
    return (f"{preset_name}: {scenario.carrier.num_prb} PRB, {scenario.modulation}, "
            f"{scenario.dmrs.num_symbols} DMRS, {scenario.num_rx} Rx, "
            f"{scenario.channel.family.upper()} {models} ({evaluation.channel_set}), {interferer}")


def summary_lines(summary):
    """One line per receiver of a summary.json mapping, for the console."""
    def at(entry, target):
        value = entry["sinr_at_" + target]
        return f"{value} dB" if value is not None else entry.get("note_" + target.replace("ber_", ""), "not reached")

    def line(name, entry):
        text = f"{name:>16}: GM BER {entry['gm_ber']:.3f} | SINR at BER 1e-2 {at(entry, 'ber_1e-2')}" \
               f" | at 1e-3 {at(entry, 'ber_1e-3')}"
        if "sinr_at_bler_1e-1" in entry:
            text += f" | at BLER 1e-1 {at(entry, 'bler_1e-1')} | at BLER 1e-2 {at(entry, 'bler_1e-2')}"
        if entry.get("llr_overconfidence") is not None:
            text += f" | LLR overconfidence {entry['llr_overconfidence']:+.2f}"
        return text
    return [line(name, entry) for name, entry in summary.items()]


def simulate(receivers, scenario, evaluation, log=print):
    """Runs every receiver on the same slots at each SINR point; returns (ber.csv rows,
    {receiver: calibration.Calibration}, the code's description or None).

    A point stops when every receiver has evaluation.target_bit_errors errors (coded: and
    evaluation.target_block_errors block errors) or evaluation.max_bits bits have been
    simulated. A coded evaluation (evaluation.coded) sends one 5G LDPC transport block per
    slot and decodes every receiver's LLRs.
    """
    import numpy as np
    from deeprx.evaluation import calibration
    from deeprx.simulation import data as data_lib
    generator = data_lib.SlotGenerator(scenario, evaluation.channel_set,
                                       evaluation.coderate if evaluation.coded else None)
    calibrations = {r.name: calibration.Calibration() for r in receivers}
    rows = []
    start = time.time()
    for index, sinr_db in enumerate(evaluation.sinr_db):
        slot_errors = {r.name: [] for r in receivers}  # errors of each slot, for the confidence interval
        block_errors = {r.name: 0 for r in receivers}
        bits = blocks = batch_index = 0
        point_start = time.time()
        while True:
            seed = data_lib.slot_seed("eval", evaluation.seed, index, batch_index)
            batch = generator(evaluation.batch_size, seed, sinr_db=sinr_db,
                              interference_share=evaluation.interference_share)
            truth = batch.bits.numpy() > 0.5
            mask = np.broadcast_to(batch.data_mask.numpy()[..., None] > 0, truth.shape)
            for receiver in receivers:
                llrs = np.asarray(receiver(batch))
                wrong = ((llrs > 0.0) != truth) & mask
                slot_errors[receiver.name] += wrong.sum(axis=(1, 2, 3)).tolist()
                calibrations[receiver.name].add(llrs[mask], wrong[mask])
                if generator.code is not None:
                    block_errors[receiver.name] += int((~generator.code.decode(llrs, seed)).sum())
            bits += int(mask.sum())
            blocks += evaluation.batch_size if generator.code is not None else 0
            batch_index += 1
            errors = {name: sum(counts) for name, counts in slot_errors.items()}
            enough = min(errors.values()) >= evaluation.target_bit_errors and (
                generator.code is None or min(block_errors.values()) >= evaluation.target_block_errors)
            if enough or bits >= evaluation.max_bits:
                break
        for receiver in receivers:
            rows.append(ber_lib.make_row(receiver.name, sinr_db, errors[receiver.name], bits,
                                         slot_errors[receiver.name], block_errors[receiver.name], blocks))
        elapsed = time.time() - start
        remaining = elapsed / (index + 1) * (len(evaluation.sinr_db) - index - 1)
        status = "  ".join(f"{name} {errors[name] / bits:.2e} ({errors[name]} err"
                           + (f", BLER {block_errors[name] / blocks:.2e})" if blocks else ")") for name in errors)
        log(f"[{index + 1:2d}/{len(evaluation.sinr_db)}] SINR {sinr_db:6.1f} dB | {status} | "
            f"{bits} bits in {time.time() - point_start:.1f} s | ETA {remaining:.0f} s", flush=True)
    return rows, calibrations, None if generator.code is None else generator.code.describe()


def write_outputs(out_dir, rows, run_config, title, calibration_rows=()):
    """ber.csv, summary.json, ber.png, config.json (and calibration.csv) in out_dir, each
    written atomically. summary.json gets each receiver's LLR overconfidence."""
    from deeprx.evaluation import calibration
    from deeprx.evaluation import plots
    os.makedirs(out_dir, exist_ok=True)
    summary = ber_lib.summarize(rows)
    if calibration_rows:
        for name, entry in summary.items():
            entry["llr_overconfidence"] = calibration.overconfidence([r for r in calibration_rows
                                                                      if r["receiver"] == name])
        io_lib.write_table(os.path.join(out_dir, "calibration.csv"), calibration_rows, calibration.COLUMNS)
    ber_lib.write_csv(os.path.join(out_dir, "ber.csv"), rows)
    io_lib.write_json(os.path.join(out_dir, "summary.json"), summary)
    io_lib.write_json(os.path.join(out_dir, "config.json"), run_config)
    plots.ber_vs_sinr(rows, os.path.join(out_dir, "ber.png"), title)
    return summary


def rescore(out_dir):
    """Recomputes out_dir's summary.json and ber.png from its ber.csv with the counting rules
    of edge/ber.py as they are now (after a change of those rules), keeping each receiver's
    LLR overconfidence; simulates nothing. The plot's title comes from out_dir/config.json (an
    evaluation's, or a training run's: its preset's evaluation). Returns the summary."""
    from deeprx.core import config as config_lib
    from deeprx.evaluation import plots
    rows = io_lib.read_csv(os.path.join(out_dir, "ber.csv"))
    record = io_lib.read_json(os.path.join(out_dir, "config.json"))
    scenario = config_lib.from_dict(config_lib.ScenarioConfig, record["scenario"])
    evaluation = (config_lib.from_dict(config_lib.EvalConfig, record["evaluation"]) if "evaluation" in record
                  else config_lib.get_preset(record["preset"]).evaluation)
    before = io_lib.read_json(os.path.join(out_dir, "summary.json"))
    summary = ber_lib.summarize(rows)
    for name, entry in summary.items():
        if "llr_overconfidence" in before.get(name, {}):
            entry["llr_overconfidence"] = before[name]["llr_overconfidence"]
    io_lib.write_json(os.path.join(out_dir, "summary.json"), summary)
    plots.ber_vs_sinr(rows, os.path.join(out_dir, "ber.png"), title(record["preset"], scenario, evaluation))
    return summary


def run(receivers, preset_name, scenario, evaluation, out_dir, log=print, record=None):
    """Simulates `receivers`, writes out_dir (ber.csv, summary.json, ber.png, config.json)
    and returns the summary. `record` adds to (or replaces) fields of config.json."""
    from deeprx.core import config as config_lib
    plot_title = title(preset_name, scenario, evaluation)
    log(f"Evaluating {', '.join(r.name for r in receivers)} | {plot_title}", flush=True)
    start = time.time()
    rows, calibrations, code = simulate(receivers, scenario, evaluation, log=log)
    run_config = {"preset": preset_name, "receivers": [r.name for r in receivers],
                  "scenario": config_lib.to_dict(scenario), "evaluation": config_lib.to_dict(evaluation),
                  "code": code, "seconds": round(time.time() - start, 1), **provenance_lib.provenance(), **(record or {})}
    calibration_rows = [row for name, c in calibrations.items() for row in c.rows(name)]
    return write_outputs(out_dir, rows, run_config, plot_title, calibration_rows)
