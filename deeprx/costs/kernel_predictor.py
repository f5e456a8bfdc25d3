"""The kernel-level latency and energy predictor (DeepEn2023, nn-Meter): the library of
python -m deeprx.kernels, whose docstring describes the method.

Fit: synthetic one-layer models sampled over a space of operator shapes
(kernel_models.fit_space), each converted per backend; every operator is timed alone (TFLite:
cut out as a one-op model) and becomes a row. Context: multi-layer models of the same
operators (kernel_models.context_models), each measured whole and by its operators alone; a
factor per operator kind, backend and threads (fitted on them) is what running inside a whole
model adds. Held out: whole models the fit never saw, in families
(kernel_models.heldout_families), predicted as the sum of their operators, each times its
kind's context factor, plus one empty call, and measured in round-robin passes."""

import dataclasses
import os
import tempfile
import time

from deeprx.costs import kernel_heldout as heldout_lib
from deeprx.costs import kernel_regression as regression
from deeprx.costs import kernel_summary as summary_lib
from deeprx.costs import kernel_timing as timing
from deeprx.costs import op_features
from deeprx.core import provenance as provenance_lib
from deeprx.core import io as io_lib

BACKENDS = ("keras_float", "tflite_float", "tflite_int8")
# nn-Meter (Zhang et al., MobiSys 2021) on unseen models: share within +-10%.
NN_METER_WITHIN_10PCT = {"mobile CPU": 0.9909, "mobile GPU": 0.9901, "VPU": 0.8361}
PROBE = "3x3 conv 32->32, 3x3 depthwise dilated 2x3, ReLU on 14 x 96 (kernel_timing.probe_model)"
CONTEXT_NOTE = ("a prediction is the sum of the operators, each times the context factor of its kind (conv, "
                "depthwise, elementwise), backend and threads, plus one empty call; the factors are fitted on the "
                "fit's own multi-layer models (context.csv, kernel_models.context_models; measured ~ sum of factor x "
                "the kind's predicted operators, least squares on relative errors, factors within 0.5-3), none of "
                "them a held-out model; 1 where none was measured (float Keras)")
PROBE_NOTE = ("every operator and held-out timing is read against the probe model timed around it: its time is "
              "divided by the probe's speed factor (the probe's time then over its time at the start of the fit); no "
              "held-out model is used")


@dataclasses.dataclass
class Predictor:
    """Per backend: a regressor of wall and one of CPU seconds per operator
    (kernel_regression: its target and features), the empty call's (wall, CPU) seconds per
    threads, and the context factors per TFLite backend and threads (1 where none was measured)."""
    regressors: dict
    empty_call: dict  # {(backend, threads): (wall, cpu)}
    probe_reference: dict = None  # {(backend, threads): the probe's (wall, cpu) in the fit's time}
    target: str = regression.TARGET
    features: tuple = op_features.FEATURE_NAMES
    context: dict = None  # {(backend, threads): {operator kind: factor}}, fitted on the fit's multi-layer models

    def op_seconds(self, rows, backend, threads):
        """[(wall, CPU) seconds] per operator row."""
        wall, cpu = (regression.predict_seconds(self.regressors[backend, quantity], rows, threads)
                     for quantity in ("wall", "cpu"))
        return list(zip(wall, cpu))

    def kind_seconds(self, rows, backend, threads):
        """{operator kind: (wall, CPU) seconds summed over its operators in `rows`}, no context."""
        sums = {kind: [0.0, 0.0] for kind in op_features.CONTEXT_KINDS}
        for row, seconds in zip(rows, self.op_seconds(rows, backend, threads)):
            for i in range(2):
                sums[op_features.op_kind(row)][i] += seconds[i]
        return {kind: tuple(s) for kind, s in sums.items()}

    def model_seconds(self, rows, backend, threads):
        """(wall, CPU) seconds per inference of a model of operator `rows`: each kind's operators
        times its context factor, plus one empty call. No calibration on a held-out model."""
        return self.context_seconds(self.kind_seconds(rows, backend, threads), backend, threads)

    def context_seconds(self, kinds, backend, threads, context=True):
        """model_seconds from the model's kind_seconds (every factor 1 without `context`)."""
        factors = (self.context or {}).get((backend, threads), {}) if context else {}
        empty = self.empty_call[backend, threads]
        return tuple(sum(factors.get(kind, 1.0) * s[i] for kind, s in kinds.items()) + empty[i] for i in range(2))


def time_fit_ops(layers, timers, backends, tmp, out, keep=True, log=print):
    """kernels.csv rows: every operator of every fit layer's model, timed alone per backend and
    threads, in the probe's reference time: each block of 10 layers is timed between two probe
    timings and its times divided by their speed factor (columns probe_wall, probe_cpu).
    OUT/kernels.csv is rewritten every 10 layers; with `keep`, a rerun keeps the rows it already
    has for a layer and backend (same index, spec and threads) and times the rest."""
    path = os.path.join(out, "kernels.csv")
    kept = {}
    if keep and os.path.isfile(path):
        for row in io_lib.read_csv(path):
            kept.setdefault((int(row["layer"]), row["backend"]), []).append(_typed(row))
    rows, fresh, reused, before = [], [], 0, timers.probe()
    for index, layer in enumerate(layers):
        model = None
        for backend in backends:
            previous = kept.get((index, backend), [])
            if previous and all(r["spec"] == layer.spec for r in previous) and \
                    {r["threads"] for r in previous} == {n for n, _ in timers.of(backend)}:
                rows += previous
                reused += 1
                continue
            model = model or layer.keras_model()
            ops, op_path = timing.backend_rows(model, model, backend, tmp)
            seconds = {n: timing.own_op_seconds(timer, model, op_path, tmp) for n, timer in timers.of(backend)}
            for n, per_op in seconds.items():
                for op, (wall, cpu) in zip(ops, per_op):
                    rows.append({"backend": backend, "threads": n, "layer": index, "spec": layer.spec, **op,
                                 "wall_us": wall, "cpu_us": cpu})
                    fresh.append(rows[-1])
        if (index + 1) % 10 == 0 or index + 1 == len(layers):
            if fresh:
                after = timers.probe()
                speed = timers.speed(before, after)
                for row in fresh:
                    factors = speed[row["backend"], row["threads"]]
                    row.update(wall_us=round(1e6 * row["wall_us"] / factors[0], 3),
                               cpu_us=round(1e6 * row["cpu_us"] / factors[1], 3),
                               probe_wall=round(factors[0], 4), probe_cpu=round(factors[1], 4))
                fresh, before = [], after
            io_lib.write_table(path, rows, list(rows[0]))
            log(f"  fit layers timed: {index + 1}/{len(layers)} ({len(rows)} operator timings"
                + (f"; {reused} layer-backend pairs kept from {path})" if reused else ")"), flush=True)
    io_lib.write_table(path, rows, list(rows[0]))
    return rows


_TEXT_COLUMNS = ("backend", "spec", "op", "dtype", "family", "model")


def _typed(row):
    """A kernels.csv or heldout.csv row read back: numbers as numbers, empty cells None."""
    return {k: v if k in _TEXT_COLUMNS else None if v == "" else float(v) if "." in v or "e" in v else int(v)
            for k, v in row.items()}


def fit(scenario, backends, threads, fit_layers, families, min_seconds, out, energy_source=None, command=None,
        rounds=3, context_models=(), log=print):
    """Times the fit layers' operators, fits, measures the context models (the context
    factors), predicts and measures the held-out families; writes OUT's files; returns
    fit.json's dict. energy_source: a CpuTimeSource whose W per busy core turns CPU seconds
    into joules (None: no energy columns)."""
    start = time.time()
    os.makedirs(out, exist_ok=True)
    reference = _resumable_probe(out, log)
    with tempfile.TemporaryDirectory() as tmp:
        timers = timing.Timers(backends, threads, min_seconds, tmp, reference)
        keep = timers.reference is reference  # the earlier fit's timings are in this reference's time
        io_lib.write_json(os.path.join(out, "probe.json"), {
            "cpu": provenance_lib.cpu_model(), "model": PROBE,
            "reference_us": {_key(*key): [round(1e6 * t, 3) for t in s] for key, s in timers.reference.items()}})
        for (backend, n), (wall, _) in timers.empty_call.items():
            log(f"{backend} at {n} thread(s): empty call {1e6 * wall:.1f} us, probe "
                f"{1e6 * timers.reference[backend, n][0]:.1f} us", flush=True)
        log(f"timing the operators of {len(fit_layers)} sampled layers on {', '.join(backends)}", flush=True)
        rows = time_fit_ops(fit_layers, timers, backends, tmp, out, keep, log)
        predictor = Predictor(regression.fit_regressors(rows, backends), timers.empty_call, timers.reference)
        context = _context_rows(context_models, [b for b in backends if b != "keras_float"], timers, predictor,
                                tmp, rounds, out, keep, log)
        predictor.context = summary_lib.context_factors(context, predictor.empty_call)
        heldout = heldout_lib.measure_heldout(families, backends, timers, predictor, tmp, rounds, energy_source, log)
    result = {"what": "kernel-level latency and energy predictor: operator sums, each kind's x a context factor "
                      "fitted on the fit's own multi-layer models; no calibration on a held-out model",
              "probe": {"model": PROBE, "note": PROBE_NOTE, "factor_range": {
                  where: [min(r["probe_wall"] for r in table), max(r["probe_wall"] for r in table)]
                  for where, table in (("fit", rows), ("heldout", heldout))}},
              "grid_height": scenario.grid_shape[0], "fit_layers": len(fit_layers), "operators_timed": len(rows),
              "backends": list(backends),
              "empty_call_us": {_key(*key): [round(1e6 * t, 3) for t in s] for key, s in predictor.empty_call.items()},
              "heldout_rounds": rounds, "heldout_spread": summary_lib.spread_summary(heldout),
              "nn_meter_within_10pct": NN_METER_WITHIN_10PCT, "seconds": round(time.time() - start, 1),
              "command": command, **provenance_lib.provenance()}
    if energy_source is not None:
        result["energy_source"] = energy_source.name
        result["energy_note"] = ("energy = CPU seconds x W per busy core, predicted (operator CPU-time sum) and "
                                 "measured (the whole model's process CPU time): an estimate both ways, no meter")
    return _write(out, rows, predictor, context, heldout, result, log)


def refit(families, out, command=None, context_models=(), log=print):
    """Fits OUT's regressors (kernels.csv) and context factors (context.csv, if any) again and
    predicts its held-out models again: nothing is timed, so it runs on any machine (the figures
    stay those of the fit's CPU). `families` and `context_models` rebuild the models OUT measured."""
    earlier = io_lib.read_json(os.path.join(out, "fit.json"))
    rows = [_typed(r) for r in io_lib.read_csv(os.path.join(out, "kernels.csv"))]
    heldout = [_typed(r) for r in io_lib.read_csv(os.path.join(out, "heldout.csv"))]
    context_path = os.path.join(out, "context.csv")
    context = [_typed(r) for r in io_lib.read_csv(context_path)] if os.path.isfile(context_path) else []
    empty_call = {}
    for key, us in earlier["empty_call_us"].items():
        backend, _, n = key.partition("@")
        # fit.json files written before refit existed kept the empty call's wall time only: CPU taken equal.
        empty_call[backend, int(n)] = tuple(t / 1e6 for t in (us if isinstance(us, list) else (us, us)))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    log(f"fitting {len(rows)} operator timings of {earlier['cpu']} ({earlier['date']}) again", flush=True)
    predictor = Predictor(regression.fit_regressors(rows, backends), empty_call,
                          _probe_reference(io_lib.read_json(os.path.join(out, "probe.json"))))
    flags_hint = f"give those of the fit ({earlier['command']})"
    with tempfile.TemporaryDirectory() as tmp:
        _predict_again(context, {"context": context_models}, predictor, tmp, f"{out}/context.csv", flags_hint)
        predictor.context = summary_lib.context_factors(context, empty_call)
        _predict_again(heldout, families, predictor, tmp, f"{out}/heldout.csv", flags_hint)
    result = dict(earlier, refit={"command": command, **provenance_lib.provenance()})
    return _write(out, rows, predictor, context, heldout, result, log)


def _predict_again(table, families, predictor, tmp, where, flags_hint):
    """Predicts `table`'s rows (heldout.csv, context.csv: `where`) again from `families`' models
    rebuilt; ValueError if a row's model is not among them (operator counts and FLOPs checked)."""
    backends = list(dict.fromkeys(r["backend"] for r in table))
    ops = {(family, name, backend): timing.backend_rows(keras_model, export_model, backend, tmp)[0]
           for family, models in families.items() for name, keras_model, export_model in models
           for backend in backends}
    for row in table:
        found = ops.get((row["family"], row["model"], row["backend"]))
        if found is None or len(found) != row["operators"] or heldout_lib.mflops(found) != row["mflops"]:
            raise ValueError(f"{where}'s {row['model']} ({row['family']}, {row['backend']}) is not a model of "
                             f"these flags: {flags_hint}")
        # The fit's W per busy core, as its measured energy used it.
        watts = row["measured_mj"] / row["measured_cpu_ms"] if row.get("measured_mj") is not None else None
        row.update(heldout_lib.predicted(predictor, found, row["backend"], row["threads"], watts))


def _write(out, rows, predictor, context, heldout, result, log):
    """Writes heldout.csv, context.csv (if any), heldout_summary.json, predictor.joblib and
    fit.json (`result` with the regressors' description, cross-validation, the context factors
    and held-out summaries); returns fit.json's dict."""
    import joblib
    log("cross-validating the regression targets over the fit's layers", flush=True)
    for name, table in (("heldout.csv", heldout), ("context.csv", context)):
        if table:
            io_lib.write_table(os.path.join(out, name), table, list(table[0]))
    summary = summary_lib.summarize(heldout)
    io_lib.write_json(os.path.join(out, "heldout_summary.json"), summary)
    joblib.dump(predictor, os.path.join(out, ".predictor.joblib.tmp"))
    os.replace(os.path.join(out, ".predictor.joblib.tmp"), os.path.join(out, "predictor.joblib"))
    result = dict(result, features=list(op_features.FEATURE_NAMES), regressor=regression.REGRESSOR,
                  target_cv=regression.cross_validate(rows, result["backends"]),
                  context={"factors": {_key(*key): f for key, f in (predictor.context or {}).items()},
                           "models": len({r["model"] for r in context}), "note": CONTEXT_NOTE},
                  heldout_latency=summary, heldout_cpu_time=summary_lib.summarize(heldout, "cpu"),
                  heldout_latency_without_probe=summary_lib.summarize(
                      [dict(r, measured_wall_ms=r["unprobed_wall_ms"]) for r in heldout]),
                  heldout_latency_without_context=summary_lib.summarize(
                      [dict(r, predicted_wall_ms=_without_context(predictor, r)) for r in heldout]),
                  heldout_decomposition=summary_lib.decomposition(heldout))
    io_lib.write_json(os.path.join(out, "fit.json"), result)
    return result


def _without_context(predictor, row):
    """A heldout.csv row's predicted wall ms with every context factor 1."""
    kinds = {kind: (row[f"predicted_ops_{kind}_ms"] / 1e3, 0.0) for kind in op_features.CONTEXT_KINDS}
    return 1e3 * predictor.context_seconds(kinds, row["backend"], row["threads"], context=False)[0]


def _context_rows(models, backends, timers, predictor, tmp, rounds, out, keep, log):
    """OUT/context.csv's rows: the fit's multi-layer `models` measured whole and by their
    operators alone on the TFLite `backends`, as held-out models are (kernel_heldout.measure_heldout); with
    `keep` (a resumed fit on its CPU), kept from OUT's context.csv when it holds exactly these
    models, else measured and written there at once."""
    jobs = {(name, backend, n) for name, _, _ in models for backend in backends for n, _ in timers.of(backend)}
    path = os.path.join(out, "context.csv")
    if keep and os.path.isfile(path):
        kept = [_typed(r) for r in io_lib.read_csv(path)]
        if {(r["model"], r["backend"], r["threads"]) for r in kept} == jobs:
            log(f"context: {len(kept)} measurements kept from {path}", flush=True)
            _predict_again(kept, {"context": models}, predictor, tmp, path, "the context models changed")
            return kept
    if not jobs:
        if os.path.isfile(path):
            os.remove(path)  # an earlier fit's, not this one's
        return []
    log(f"context: measuring {len(models)} multi-layer models of the fit's operators whole and by operators alone",
        flush=True)
    rows = heldout_lib.measure_heldout({"context": models}, backends, timers, predictor, tmp, rounds, log=log)
    io_lib.write_table(path, rows, list(rows[0]))
    return rows


def _resumable_probe(out, log):
    """The probe's reference times of OUT's earlier fit, to resume it in the same time; None
    when there is none, or it was timed on another CPU (its times would not be this one's)."""
    path = os.path.join(out, "probe.json")
    if not os.path.isfile(os.path.join(out, "kernels.csv")):
        return None
    earlier = io_lib.read_json(path) if os.path.isfile(path) else {}
    if earlier.get("cpu") != provenance_lib.cpu_model() or earlier.get("model") != PROBE:
        log(f"{out}/kernels.csv was timed on {earlier.get('cpu', 'an unknown CPU, without the probe')}: "
            "timing every operator again", flush=True)
        return None
    return _probe_reference(earlier)


def _probe_reference(probe):
    """{(backend, threads): the probe's (wall, CPU) seconds} of a probe.json."""
    reference = {}
    for key, times in probe["reference_us"].items():
        backend, _, n = key.partition("@")
        reference[backend, int(n)] = tuple(t / 1e6 for t in times)
    return reference


def _key(backend, threads):
    """The JSON key of a (backend, threads) timing: "tflite_int8@2" (read back by _resumable_probe)."""
    return f"{backend}@{threads}"


def load_predictor(directory):
    import joblib
    path = os.path.join(directory, "predictor.joblib")
    if not os.path.isfile(path):
        raise ValueError(f"no predictor.joblib in {directory!r}: run python -m deeprx.kernels fit --out={directory}")
    predictor = joblib.load(path)
    made = (getattr(predictor, "target", "log2 seconds"), tuple(getattr(predictor, "features", ())))
    if made != (regression.TARGET, op_features.FEATURE_NAMES):
        raise ValueError(f"{path} predicts {made[0]} from {len(made[1]) or 'other'} features, not {regression.TARGET} "
                         f"from {len(op_features.FEATURE_NAMES)}: run python -m deeprx.kernels refit "
                         f"--out={directory} (no timing) with the fit's flags")
    return predictor
