"""Every kind of plot the project writes, rendered on tiny data (or the committed results it is
drawn from), checked as a reader would look at it: no text leaves the figure (labels,
titles, legends, footnotes), no legend sits on a panel's data area, and log axes read as
plain numbers or powers of ten (no "2 x 10^1")."""

import json
import os
import shutil

import matplotlib
import pytest

from conftest import REPO
from deeprx import ablation
from deeprx.costs import plots as cost_plots
from deeprx.evaluation import plots
from deeprx.experiments import study_report


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, kept open for the checks."""
    figures = []
    monkeypatch.setattr(plots.plt, "close", lambda figure: figures.append(figure))
    return figures


def _problems(figure):
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    problems = []
    width, height = figure.get_size_inches()
    box = figure.get_tightbbox(renderer)  # inches: everything drawn, text included
    if box.x0 < -0.01 or box.y0 < -0.01 or box.x1 > width + 0.01 or box.y1 > height + 0.01:
        problems.append(f"drawn extent {box.bounds} leaves the {width:g} x {height:g} in figure")
    data_areas = [axes.get_window_extent(renderer) for axes in figure.axes]
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is not None and any(legend.get_window_extent(renderer).overlaps(area) for area in data_areas):
            problems.append(f"the legend of {axes.get_title()!r} lies on a panel's data")
        for axis in (axes.xaxis, axes.yaxis):  # powers of ten are fine; a mantissa times one is not
            if axis.get_scale() == "log":
                labels = [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
                problems += [f"log tick label {label!r}" for label in labels if "times" in label]
    return problems


def _check(figures, count):
    assert len(figures) == count
    for figure in figures:
        assert _problems(figure) == []


def _ber_rows(coded=False):
    rows = []
    for receiver, slope in (("teacher-cpu-2dmrs, a long receiver name", 0.25), ("ls_lmmse", 0.15)):
        for sinr in range(-4, 30, 4):
            bits = 100_000
            errors = int(bits * 0.3 * 10 ** (-slope * (sinr + 4)))
            row = {"receiver": receiver, "sinr_db": sinr, "bit_errors": errors, "bits": bits}
            if coded:
                row.update(block_errors=min(errors, 50), blocks=50)
            rows.append(row)
    return rows


def test_ber_and_gm_ber_plots_keep_their_text_in_the_figure(drawn, tmp_path):
    plots.ber_vs_sinr(_ber_rows(), str(tmp_path / "a.png"), "BER vs SINR of two receivers " * 4)
    plots.ber_vs_sinr(_ber_rows(coded=True), str(tmp_path / "b.png"), "coded")
    series = {"KD student": [(2.0, -1.2), (20.0, -1.6), (2000.0, -1.9)], "scratch": [(2.0, -1.1), (2000.0, -1.8)]}
    plots.gm_ber_panels([{"xlabel": "MFLOPs per slot", "logx": True, "series": series,
                          "references": {"teacher": -2.2, "ls_lmmse (a classical receiver)": -2.0}},
                         {"xlabel": "temperature T", "series": {"KD student": [(1, -1.5), (3, -1.7)]}}],
                        str(tmp_path / "c.png"), "Fig. 3 and 5 " * 12)
    rows = [{"slots_seen": 16 * s, "gm_ber": -1 - s / 1e4} for s in (1000, 2000, 3000)]
    budgets = [{"slots_seen": 16 * s, "gm_ber_diff_mean": 0.01, "gm_ber_diff_ci_low": -0.05, "gm_ber_diff_ci_high": 0.07}
               for s in (1000, 2000, 3000)]
    plots.kd_curves({0: (rows, rows), 1: (rows, rows)}, budgets, str(tmp_path / "d.png"), "KD - scratch " * 15)
    _check(drawn, 4)
    assert all(os.path.getsize(tmp_path / name) > 0 for name in ("a.png", "b.png", "c.png", "d.png"))


def test_energy_kernel_study_and_ablation_plots_keep_their_text_in_the_figure(drawn, tmp_path):
    with open(os.path.join(REPO, "data/results/energy-cpu/student/energy.json")) as f:
        cost_plots.all_plots(json.load(f), str(tmp_path))
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    for name in ("heldout.csv", "fit.json"):
        shutil.copy(os.path.join(REPO, "data/results/energy-cpu/kernels", name), kernels / name)
    cost_plots.heldout_plot(str(kernels))
    with open(os.path.join(REPO, "data/results/study-demo/summary.json")) as f:
        study_report.pareto_plot(json.load(f), str(tmp_path / "pareto.png"), "demo study")
    curve = [{"arm": arm, "slots_seen": 16 * s, "train_seconds": s, "gm_ber": -1 - s / 1e3} for arm in ("adam", "lamb")
             for s in (100, 200)]
    arms = [{"arm": arm, "ls_lmmse_gm_ber": -1.1, "perfect_lmmse_gm_ber": -2.4} for arm in ("adam", "lamb")]
    ablation.plot(curve, arms, str(tmp_path / "ablation.png"), "ablation " * 20)
    _check(drawn, 7)


def test_the_check_catches_a_legend_on_the_data_clipped_text_and_sci_ticks(drawn, tmp_path):
    figure, ((axes,),) = plots.figure_and_axes(figsize=(4, 3))
    axes.plot([1, 2], [1, 2], label="a line")
    axes.legend(loc="center")
    problems = _problems(figure)
    assert problems == ["the legend of '' lies on a panel's data"]
    figure.text(0.9, 0.5, "a footnote far too long for its figure, running past the right edge")
    assert any("leaves the" in p for p in _problems(figure))
    plain = matplotlib.pyplot.figure(figsize=(4, 3))
    log_axes = plain.add_subplot()
    log_axes.semilogx([20, 50], [1, 2])
    assert any("log tick label" in p for p in _problems(plain))
    plots.log_ticks(log_axes)
    assert _problems(plain) == []
