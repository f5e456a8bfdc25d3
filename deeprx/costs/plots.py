"""The plots of python -m deeprx.energy, from its energy.json dict (matplotlib, Agg; the
project's plot rules: deeprx/evaluation/plots.py). Every plot carries the sources of its
numbers in full in a footnote (measured or estimated)."""

import os

import numpy as np

from deeprx.evaluation.plots import figure_and_axes, footnote, legend_outside, log_ticks, save


def blocks(result, path):
    """Paper Fig. 2, block-wise: measured energy on this CPU (float32) and, where the table has
    an Edge TPU, its metric (0) estimate."""
    rows = result["blocks"]
    names = [row["block"] for row in rows]
    panels = [("energy_uj", "this machine, float32 [uJ]")]
    if result.get("metric0_edgetpu_block_source"):
        panels.append(("edgetpu_metric0_uj", f"{result['metric0_edgetpu_block_source']} (estimate) [uJ]"))
    figure, axes = figure_and_axes(len(panels), 1, figsize=(7.5, 2.8 * len(panels) + 0.6))
    for ax, (key, label) in zip(axes[:, 0], panels):
        ax.bar(names, [row[key] for row in rows], color="tab:blue" if key == "energy_uj" else "tab:orange")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    axes[0, 0].set_title(f"Energy per ResNet block, one slot ({result['flops_per_slot'] / 1e6:.0f} MFLOPs)")
    footnote(figure, ["this machine: " + result["layer_energy_source"]])
    save(figure, path)


def layers(result, path):
    rows = result["layers"]
    figure, ((ax,),) = figure_and_axes(figsize=(13, 4.0))
    colors = {"conv": "tab:blue", "depthwise": "tab:green", "bn": "tab:orange", "relu": "tab:gray", "add": "tab:red"}
    ax.bar(range(len(rows)), [row["energy_uj"] for row in rows], color=[colors[row["kind"]] for row in rows])
    ax.set_xticks(range(len(rows)), [row["layer"] for row in rows], rotation=90, fontsize=5)
    for kind, color in colors.items():
        ax.bar([0], [0], color=color, label=kind)
    legend_outside(ax)
    ax.set_ylabel("energy [uJ]")
    ax.set_title("Energy per layer, float32 on this machine", fontsize=9)
    footnote(figure, [result["layer_energy_source"]])
    save(figure, path)


def processors(result, path):
    """Paper Fig. 1: metric (0) per processor against what was measured here."""
    table = result["processors"]
    figure, ((ax,),) = figure_and_axes(figsize=(10.5, 5.0))
    x = np.arange(len(table))
    ax.bar(x, [entry["metric0_mj_per_inference"] for entry in table], color="tab:gray", label="metric (0) estimate")
    host = [i for i, entry in enumerate(table) if entry["name"] == "this machine"]
    markers = {"float": "o", "int8": "s", "runner": "^"}
    for name, entry in result["measured"].items():
        if entry["joules_per_inference"] > 0 and host:
            ax.plot([host[0]], [1e3 * entry["joules_per_inference"]], markers.get(name, "o"), markersize=9,
                    label=f"{name}: {entry.get('runtime', '')}")
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{e['name']}\n({e['precision']})" for e in table], fontsize=7, rotation=20)
    ax.set_ylabel("energy per inference [mJ]")
    ax.set_title(f"Metric (0) per processor vs measured, one slot ({result['flops_per_slot'] / 1e6:.0f} MFLOPs)",
                 fontsize=10)
    legend_outside(ax)
    footnote(figure, ["bars: metric (0), FLOPs x energy per FLOP of each processor's data (estimates)"]
             + [f"{name}: {entry['source']}" for name, entry in result["measured"].items()])
    save(figure, path)


def amortization(result, path):
    """Training energy against cumulative inference energy (log-log), break-even marked."""
    figure, ((ax,),) = figure_and_axes(figsize=(10.5, 5.4))
    cases = [(f"ours, {name}", entry) for name, entry in result.get("amortization", {}).items()]
    cases.append(("paper example", result["paper_example"]))
    for index, (label, entry) in enumerate(cases):
        n_even = entry["break_even_inferences"]
        n = np.logspace(0, np.log10(n_even) + 2, 200)
        line, = ax.loglog(n, n * entry["inference_j"], label=f"{label}: inference ({1e3 * entry['inference_j']:.3g} "
                                                              "mJ each)")
        ax.axhline(entry["training_j"], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"{label}: training ({entry['training_j']:.3g} J)")
        ax.plot([n_even], [entry["training_j"]], "o", color=line.get_color())
        last = index == len(cases) - 1
        ax.annotate(f"{n_even:.2g} inferences\n({_duration(entry['break_even_seconds'])} at {entry['rate_per_s']:g}/s)",
                    (n_even, entry["training_j"]), textcoords="offset points", xytext=(-10, -30) if last else
                    (-10, 8 + 22 * index), ha="right", fontsize=7)
    ax.set_xlabel("number of inferences")
    ax.set_ylabel("energy [J]")
    ax.set_title("Training vs cumulative inference energy (break-even marked)", fontsize=10)
    legend_outside(ax, fontsize=6)
    footnote(figure, [f"ours, {name}: {entry['source']}" for name, entry in result.get("amortization", {}).items()]
             + ["paper example: the paper's own training and inference figures (PAPER.md), recomputed"])
    save(figure, path)


def _duration(seconds):
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def all_plots(result, out):
    blocks(result, os.path.join(out, "blocks.png"))
    layers(result, os.path.join(out, "layers.png"))
    processors(result, os.path.join(out, "processors.png"))
    amortization(result, os.path.join(out, "amortization.png"))


def heldout_plot(out):
    """OUT/heldout.png of python -m deeprx.kernels fit: predicted against measured latency of
    every held-out model, one panel per backend, marker per family, +-10% band."""
    import csv
    import json
    with open(os.path.join(out, "heldout.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(out, "fit.json")) as f:
        fit = json.load(f)
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    families = list(dict.fromkeys(r["family"] for r in rows))
    markers = dict(zip(families, "os^Dv"))
    with_context = {key.partition("@")[0] for key in fit.get("context", {}).get("factors", {})}
    figure, axes = figure_and_axes(1, len(backends), figsize=(6.4 * len(backends), 5.0))
    for ax, backend in zip(axes[0], backends):
        mine = [r for r in rows if r["backend"] == backend]
        values = [float(r[k]) for r in mine for k in ("measured_wall_ms", "predicted_wall_ms")]
        line = np.geomspace(min(values) * 0.8, max(values) * 1.25, 10)
        ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="+-10%")
        ax.plot(line, line, color="0.5", lw=0.8)
        for family in families:
            for threads, color in (("1", "tab:blue"), ("2", "tab:red")):
                points = [r for r in mine if r["family"] == family and r["threads"] == threads]
                if points:
                    summary = fit["heldout_latency"][family][backend]
                    measured = np.array([float(r["measured_wall_ms"]) for r in points])
                    ax.scatter(measured, [float(r["predicted_wall_ms"]) for r in points], marker=markers[family],
                               s=22, color=color, label=f"{family}, {threads} thr (MAPE {summary['mape']:.0f}%)")
                    if points[0].get("spread_wall"):  # the passes' spread: the measurement's own noise
                        half = measured * np.array([float(r["spread_wall"]) for r in points]) / 2
                        ax.errorbar(measured, [float(r["predicted_wall_ms"]) for r in points], xerr=half, fmt="none",
                                    ecolor=color, elinewidth=0.7, alpha=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_ticks(ax, "x")
        log_ticks(ax, "y")
        ax.set_xlabel("measured latency [ms]", fontsize=8)
        ax.set_ylabel("predicted: operators x context + empty call [ms]" if backend in with_context
                      else "predicted: operator sum + empty call [ms]", fontsize=8)
        ax.set_title(backend, fontsize=9)
        legend_outside(ax, fontsize=5.5)  # each panel's MAPEs are its backend's
    figure.suptitle("Kernel-level predictor on held-out models (no whole-model calibration)", fontsize=10)
    probe = ("; every timing read against the probe model timed around it" if "probe" in fit else "")
    if fit.get("heldout_rounds"):
        probe += (f"; measured: median of {fit['heldout_rounds']} round-robin passes, bars: their spread "
                  "(max - min)")
    refit = (f"; regressors and context refitted {fit['refit']['date']} on these timings (nothing timed again)"
             if "refit" in fit else "")
    if with_context:
        refit += (f"; context factors per operator kind from {fit['context']['models']} multi-layer models of the "
                  "fit's operators (fit.json)")
    footnote(figure, [f"timed on {fit['cpu']}, {fit['date']}; fitted on {fit['operators_timed']} operator timings of "
                      f"{fit['fit_layers']} sampled one-layer models; {fit['regressor']}{probe}{refit}"])
    save(figure, os.path.join(out, "heldout.png"))
