"""Whole models measured and predicted, for the kernel-level predictor
(deeprx/costs/kernel_predictor.py): the held-out families and the fit's context models, each
measured in round-robin passes against the probe and predicted from its operators
(heldout.csv's and context.csv's rows)."""

import statistics

from deeprx.costs import kernel_timing as timing


def mflops(ops):
    return round(sum(op["flops"] for op in ops) / 1e6, 3)


def predicted(predictor, ops, backend, threads, watts=None):
    """heldout.csv's predicted columns of a model of operator rows `ops` (energy with `watts`
    per busy core)."""
    kinds = predictor.kind_seconds(ops, backend, threads)
    wall, cpu = predictor.context_seconds(kinds, backend, threads)
    row = {"predicted_wall_ms": round(1e3 * wall, 4), "predicted_cpu_ms": round(1e3 * cpu, 4)}
    if watts is not None:
        row["predicted_mj"] = round(watts * row["predicted_cpu_ms"], 4)
    # Each kind's operators without context or empty call: what the context factors are fitted on.
    row.update({f"predicted_ops_{kind}_ms": round(1e3 * seconds[0], 4) for kind, seconds in kinds.items()})
    return row


def measure_heldout(families, backends, timers, predictor, tmp, rounds, energy_source=None, log=print):
    """heldout.csv rows: every held-out model on every backend and threads, predicted and
    measured. A VM's speed wanders over minutes, so each model is measured in `rounds`
    round-robin passes spread over the whole measurement, each pass read against the probe
    timed around it; a row gives the median of its passes in the fit's reference time
    (measured_*_ms: each pass's time over its probe factor; unprobed_wall_ms: without), the
    passes' spread ((max - min) / median, the measurement's own noise), the median probe
    factor, and (TFLite) the model's own operators timed alone as the fit times its own
    (ops_alone_wall_ms, once, in the fit's time: the sum the predictor tries to predict)."""
    jobs = []
    for family, models in families.items():
        for name, keras_model, export_model in models:
            for backend in backends:
                ops, path = timing.backend_rows(keras_model, export_model, backend, tmp)
                jobs += [(family, name, backend, n, timer, ops, keras_model if path is None else path)
                         for n, timer in timers.of(backend)]
    passes = [[] for _ in jobs]
    for done in range(1, rounds + 1):
        for (_, _, backend, n, timer, _, model), taken in zip(jobs, passes):
            before = timers.probe([(backend, n)])
            measured = timer.model_seconds(model)
            taken.append((measured, timers.speed(before, timers.probe([(backend, n)]))[backend, n]))
        log(f"  held-out pass {done}/{rounds}: {len(jobs)} model measurements", flush=True)
    # Each TFLite model's own operators timed alone, as the fit times its operators: whole model
    # over this sum is what the operators' context changes; prediction over it, the regressors'
    # error. (Not for Keras: a layer's own call takes seconds to trace, 100 layers a model.)
    alone = []
    tflite_jobs = sum(job[2] != "keras_float" for job in jobs)
    for family, name, backend, n, timer, _, model in jobs:
        if backend == "keras_float":
            alone.append(None)
            continue
        before = timers.probe([(backend, n)])
        per_op = timing.own_op_seconds(timer, None, model, tmp)
        speed = timers.speed(before, timers.probe([(backend, n)]))[backend, n]
        alone.append((sum(op[0] for op in per_op) + timer.empty_call[0]) / speed[0])
        done = sum(a is not None for a in alone)
        log(f"  held-out operators timed alone: {done}/{tflite_jobs} TFLite models ({family}: {name} {backend})",
            flush=True)
    rows = []
    for (family, name, backend, n, _, ops, _), taken, ops_alone in zip(jobs, passes, alone):
        wall, cpu = ([m[i] / s[i] for m, s in taken] for i in range(2))
        row = {"family": family, "model": name, "backend": backend, "threads": n, "operators": len(ops),
               "mflops": mflops(ops), "measured_wall_ms": round(1e3 * statistics.median(wall), 4),
               "predicted_wall_ms": None, "measured_cpu_ms": round(1e3 * statistics.median(cpu), 4),
               "predicted_cpu_ms": None,
               "spread_wall": round((max(wall) - min(wall)) / statistics.median(wall), 4),
               "ops_alone_wall_ms": None if ops_alone is None else round(1e3 * ops_alone, 4),
               "unprobed_wall_ms": round(1e3 * statistics.median(m[0] for m, _ in taken), 4),
               "probe_wall": round(statistics.median(s[0] for _, s in taken), 4),
               "probe_cpu": round(statistics.median(s[1] for _, s in taken), 4)}
        if energy_source is not None:
            row.update(measured_mj=round(energy_source.watts * row["measured_cpu_ms"], 4), predicted_mj=None)
        row.update(predicted(predictor, ops, backend, n, energy_source and energy_source.watts))
        rows.append(row)
        log(f"  {family}: {name} {backend} {n} thread(s): measured {row['measured_wall_ms']:.3f} ms "
            f"(passes spread {100 * row['spread_wall']:.0f}%), "
            + ("" if ops_alone is None else f"its operators alone {row['ops_alone_wall_ms']:.3f} ms, ")
            + f"predicted {row['predicted_wall_ms']:.3f} ms", flush=True)
    return rows
