"""PNG plots (matplotlib, Agg backend): BER vs SINR, Geometric Mean BER vs a swept setting."""

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from edge import ber as ber_lib  # noqa: E402


def ber_vs_sinr(rows, path, title):
    """Log-scale BER vs SINR, one curve per receiver; zero-error points are drawn at
    the 1/bits floor with a hollow marker."""
    figure, axes = plt.subplots(figsize=(6.4, 4.6))
    receivers = list(dict.fromkeys(row["receiver"] for row in rows))
    for receiver in receivers:
        points = sorted((float(r["sinr_db"]), int(r["bit_errors"]), int(r["bits"]))
                        for r in rows if r["receiver"] == receiver)
        sinr = [p[0] for p in points]
        ber = [max(e, 1) / float(n) for _, e, n in points]  # zero errors drawn at 1 / bits
        line, = axes.semilogy(sinr, ber, marker="o", label=receiver)
        zero = [(s, b) for (s, b, (_, e, _n)) in zip(sinr, ber, points) if e == 0]
        if zero:
            axes.semilogy(*zip(*zero), linestyle="none", marker="o", markerfacecolor="white",
                          color=line.get_color())
    for target in ber_lib.TARGET_BERS:
        axes.axhline(target, color="gray", linewidth=0.6, linestyle=":")
    axes.set_xlabel("SINR [dB] (per RE and receive antenna)")
    axes.set_ylabel("uncoded BER")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend()
    figure.tight_layout()
    save(figure, path)


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
    figure, axes_list = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
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
        axes.set_xlabel(panel["xlabel"])
        axes.set_ylabel("Geometric Mean BER (lower is better)")
        axes.grid(True, which="both", linewidth=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(textwrap.fill(title, width=int(13 * 5.2 * len(panels))), fontsize=10)
    figure.tight_layout()
    save(figure, path)
