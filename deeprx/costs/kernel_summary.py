"""The figures fit.json gives of the kernel-level predictor's whole-model measurements
(deeprx/costs/kernel_predictor.py): held-out errors per family and backend, their split into
context and regressors, the passes' noise, and the context factors measured on the fit's own
multi-layer models."""

import statistics

import numpy as np

from deeprx.costs import op_features


def summarize(heldout, key="wall"):
    """{family: {backend: {"mape", "within_10pct", "models", "predictions"}}} of heldout.csv rows."""
    summary = {}
    for family in dict.fromkeys(r["family"] for r in heldout):
        for backend in dict.fromkeys(r["backend"] for r in heldout):
            rows = [r for r in heldout if r["family"] == family and r["backend"] == backend]
            errors = [abs(r[f"predicted_{key}_ms"] - r[f"measured_{key}_ms"]) / r[f"measured_{key}_ms"] for r in rows]
            summary.setdefault(family, {})[backend] = {
                "mape": round(100 * float(np.mean(errors)), 2),
                "within_10pct": round(float(np.mean([e <= 0.10 for e in errors])), 3),
                "models": len({r["model"] for r in rows}), "predictions": len(rows)}
    return summary


def _ratios(rows, numerator):
    """{backend: [numerator / operators alone]} of the rows that have operators alone."""
    ratios = {}
    for row in rows:
        if row["ops_alone_wall_ms"] is not None:
            ratios.setdefault(row["backend"], []).append(row[numerator] / row["ops_alone_wall_ms"])
    return ratios


def decomposition(heldout):
    """{family: {TFLite backend: medians of measured / operators alone (the context: caches,
    fusions, the runtime between operators) and predicted / operators alone (the regressors)}}."""
    result = {}
    for family in dict.fromkeys(r["family"] for r in heldout):
        rows = [r for r in heldout if r["family"] == family]
        measured, predicted = _ratios(rows, "measured_wall_ms"), _ratios(rows, "predicted_wall_ms")
        if measured:
            result[family] = {backend: {
                "measured_over_ops_alone": round(statistics.median(measured[backend]), 4),
                "predicted_over_ops_alone": round(statistics.median(predicted[backend]), 4)}
                for backend in measured}
    return result


# An operator inside a whole model takes between half and 3x its time alone: the bounds keep a
# fit on few or similar models from pricing a kind at nothing (or at a multiple no model shows).
CONTEXT_FACTOR_BOUNDS = (0.5, 3.0)


def context_factors(context_rows, empty_call):
    """{(backend, threads): {operator kind: factor}} fitted on the fit's multi-layer models
    (context.csv rows): measured time - one empty call ~ sum over kinds of factor x the kind's
    predicted operators-alone time (predicted_ops_<kind>_ms), by least squares on relative
    errors within CONTEXT_FACTOR_BOUNDS. It holds what running inside a whole model adds to
    each kind's operators (and the regressors' bias per kind on such models); a kind absent
    from the models gets 1."""
    from scipy.optimize import lsq_linear
    factors = {}
    for key in dict.fromkeys((r["backend"], r["threads"]) for r in context_rows):
        rows = [r for r in context_rows if (r["backend"], r["threads"]) == key]
        a = np.array([[r[f"predicted_ops_{kind}_ms"] for kind in op_features.CONTEXT_KINDS] for r in rows])
        y = np.array([r["measured_wall_ms"] for r in rows]) - 1e3 * empty_call[key][0]
        fitted = lsq_linear(a / y[:, None], np.ones(len(rows)), bounds=CONTEXT_FACTOR_BOUNDS).x
        factors[key] = {kind: round(float(f), 4) if a[:, i].any() else 1.0
                        for i, (kind, f) in enumerate(zip(op_features.CONTEXT_KINDS, fitted))}
    return factors


def spread_summary(heldout):
    """{backend: median and max of the held-out rows' pass spread}: the noise a +-10% target
    is read against."""
    return {backend: {"median": round(statistics.median(r["spread_wall"] for r in rows), 4),
                      "max": round(max(r["spread_wall"] for r in rows), 4)}
            for backend in dict.fromkeys(r["backend"] for r in heldout)
            for rows in [[r for r in heldout if r["backend"] == backend]]}
