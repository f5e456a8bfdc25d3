"""PNG plots (matplotlib, Agg backend): BER vs SINR, Geometric Mean BER vs a swept setting,
and the rules every plot of the project follows (tests/test_plots.py checks them on each
kind): constrained layout, so that no label or title leaves the figure; legends beside the
axes, never on the data (legend_outside); log axes labelled with plain numbers (log_ticks)."""

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib import ticker  # noqa: E402

from edge import ber as ber_lib  # noqa: E402


def ber_vs_sinr(rows, path, title):
    """Log-scale BER vs SINR, one curve per receiver (and a BLER panel beside it for a coded
    evaluation); a point with no errors is drawn at its 95% upper bound 3/trials as a hollow
    downward triangle (the rate is at most there)."""
    coded = any(str(row.get("blocks", "")) not in ("", "0") for row in rows)
    panels = [("bit_errors", "bits", "BER (of the coded bits)" if coded else "uncoded BER", ber_lib.TARGET_BERS)]
    if coded:
        panels.append(("block_errors", "blocks", "BLER (5G LDPC, one transport block per slot)",
                       ber_lib.TARGET_BLERS))
    figure, all_axes = figure_and_axes(1, len(panels), figsize=(6.4 * len(panels) + 2.2, 4.6))
    receivers = list(dict.fromkeys(row["receiver"] for row in rows))
    bounds = False
    for axes, (errors_key, trials_key, ylabel, targets) in zip(all_axes[0], panels):
        for receiver in receivers:
            points = sorted((float(r["sinr_db"]), int(r[errors_key]), int(r[trials_key]))
                            for r in rows if r["receiver"] == receiver)
            sinr = [p[0] for p in points]
            rate = [ber_lib.point_rate(e, n) for _, e, n in points]  # zero errors: the bound 3 / trials
            line, = axes.semilogy(sinr, rate, marker="o", label=receiver)
            zero = [(s, b) for (s, b, (_, e, _n)) in zip(sinr, rate, points) if e == 0]
            if zero:
                bounds = True
                axes.semilogy(*zip(*zero), linestyle="none", marker="v", markersize=8, markerfacecolor="white",
                              color=line.get_color())
        for target in targets:
            axes.axhline(target, color="gray", linewidth=0.6, linestyle=":")
        axes.set_xlabel("SINR [dB] (per RE and receive antenna)")
        axes.set_ylabel(ylabel)
        axes.grid(True, which="both", linewidth=0.3)
    legend_outside(all_axes[0][-1])
    if bounds:
        footnote(figure, ["hollow triangle: no errors; drawn at the 95% upper bound 3/trials"])
    figure.suptitle(textwrap.fill(title, width=int(15 * (6.4 * len(panels) + 2.2))), fontsize=10)
    save(figure, path)


def figure_and_axes(rows=1, columns=1, figsize=(6.4, 4.6), **kwargs):
    """A figure with constrained layout (its labels, titles and outside legends kept inside it)
    and its axes as a rows x columns array (kwargs: plt.subplots', e.g. sharey)."""
    return plt.subplots(rows, columns, figsize=figsize, squeeze=False, layout="constrained", **kwargs)


def legend_outside(axes, fontsize=7):
    """The axes' legend to the right of its panel, never over the data."""
    axes.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


class _PlainLogFormatter(ticker.LogFormatterSciNotation):
    """Labels the ticks matplotlib's log formatter would label, as plain numbers (20, not 2 x 10^1)."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def log_ticks(axes, which="x"):
    """Plain-number tick labels on a log axis."""
    axis = axes.xaxis if which == "x" else axes.yaxis
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def footnote(figure, lines, fontsize=6):
    """Text under the axes (e.g. the sources of the numbers, in full), wrapped to the figure's
    width; the layout leaves room for it."""
    width = int((figure.get_size_inches()[0] - 0.2) * 72 / (fontsize * 0.62))  # characters per line
    text = "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in lines)
    rows = text.count("\n") + 1
    height = min(0.5, (rows * fontsize * 1.3 / 72 + 0.06) / figure.get_size_inches()[1])
    figure.text(0.01, 0.005, text, fontsize=fontsize, va="bottom", ha="left")
    figure.get_layout_engine().set(rect=(0, height, 1, 1 - height))


def save(figure, path):
    """Writes the PNG beside `path` first, then renames it: never a half-written plot."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), ".tmp-" + os.path.basename(path))
    figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
    os.replace(tmp, path)


def gm_ber_panels(panels, path, title):
    """Geometric Mean BER against a swept setting, one panel per dict of `panels`:
    {"xlabel", "logx", "series": {label: [(x, gm_ber), ...]}, "references": {label: gm_ber}}.
    Series are lines with markers; references are horizontal dashed lines."""
    figure, axes_list = figure_and_axes(1, len(panels), figsize=(5.2 * len(panels) + 2.0, 4.2))
    for axes, panel in zip(axes_list[0], panels):
        for label, points in panel["series"].items():
            points = sorted(points)
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        for (label, value), style in zip(panel.get("references", {}).items(), ("--", ":", "-.", (0, (1, 3)))):
            axes.axhline(value, color="gray", linestyle=style, linewidth=1.0, label=label)
        if panel.get("logx"):
            axes.set_xscale("log")
            xs = sorted({p[0] for points in panel["series"].values() for p in points})
            if xs and xs[-1] < 100 * xs[0]:  # under two decades: label the swept values themselves
                axes.set_xticks(xs, [f"{x:.3g}" for x in xs])
                axes.minorticks_off()
            else:
                log_ticks(axes)
        axes.set_xlabel(panel["xlabel"])
        axes.set_ylabel("Geometric Mean BER (lower is better)")
        axes.grid(True, which="both", linewidth=0.3)
        legend_outside(axes)
    figure.suptitle(textwrap.fill(title, width=int(13 * (5.2 * len(panels) + 2.0))), fontsize=10)
    save(figure, path)


def kd_curves(pairs, budgets, path, title, arms=("KD", "scratch")):
    """Two student arms over training (e.g. KD against scratch): left, Geometric Mean BER of
    every seed's arm A (solid) and B (dashed) student against slots seen; right, the paired
    difference's mean with its 95% interval across seeds (kd_curves.budget_rows)."""
    figure, ((left, right),) = figure_and_axes(1, 2, figsize=(13, 4.4))
    for index, (seed, (a_rows, b_rows)) in enumerate(sorted(pairs.items())):
        color = f"C{index}"
        for rows, style, role in ((a_rows, "-", arms[0]), (b_rows, "--", arms[1])):
            left.plot([int(r["slots_seen"]) for r in rows], [float(r["gm_ber"]) for r in rows], style, marker=".",
                      color=color, label=f"{role}, seed {seed}")
    left.set_xlabel("training slots seen")
    left.set_ylabel("Geometric Mean BER (log10, lower is better)")
    legend_outside(left)
    slots = [row["slots_seen"] for row in budgets]
    mean = [row["gm_ber_diff_mean"] for row in budgets]
    right.axhline(0.0, color="gray", linewidth=0.8)
    right.plot(slots, mean, marker="o", color="k", label="mean over seeds")
    ranged = [(s, row["gm_ber_diff_ci_low"], row["gm_ber_diff_ci_high"]) for s, row in zip(slots, budgets)
              if row["gm_ber_diff_ci_low"] is not None]
    if ranged:
        right.fill_between([r[0] for r in ranged], [r[1] for r in ranged], [r[2] for r in ranged], alpha=0.25,
                           color="k", label="95% interval (t, across seeds)")
    right.set_xlabel("training slots seen")
    right.set_ylabel(f"GM BER, {arms[0]} - {arms[1]} (< 0: {arms[0]} better)")
    legend_outside(right)
    for axes in (left, right):
        axes.grid(True, linewidth=0.3)
    figure.suptitle(textwrap.fill(title, width=180), fontsize=10)
    save(figure, path)
