"""The kernel-level latency and energy predictor: operator features read from .tflite and
Keras models, and the fit / held-out / predict commands on a tiny configuration."""

import csv
import dataclasses
import json
import os

import joblib
import numpy as np
import pytest
import tf_keras as keras

from conftest import run_module
from deeprx.core import config
from deeprx.costs import kernel_models
from deeprx.costs import kernel_predictor
from deeprx.costs import kernel_summary
from deeprx.costs import kernel_timing
from deeprx.costs import op_features


def _conv_bn_relu_depthwise():
    inputs = keras.Input(shape=(14, 24, 8), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=(2, 3))(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_tflite_operators_carry_what_changes_their_cost(dtype, tmp_path):
    path = str(tmp_path / "m.tflite")
    with open(path, "wb") as f:
        f.write(kernel_timing.tflite_bytes(_conv_bn_relu_depthwise(), dtype))
    rows = op_features.tflite_ops(path)
    # The converter folds the BN into the conv and fuses the ReLU: two operators remain.
    assert [r["op"] for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    conv, depthwise = rows
    assert {k: conv[k] for k in ("dtype", "height", "width", "channels_in", "channels_out", "kernel_h",
                                 "dilation_h", "dilation_w")} == {
        "dtype": dtype, "height": 14, "width": 24, "channels_in": 8, "channels_out": 16, "kernel_h": 3,
        "dilation_h": 2, "dilation_w": 3}
    assert conv["flops"] == 2 * 14 * 24 * 9 * 8 * 16
    assert (depthwise["channels_in"], depthwise["channels_out"], depthwise["depth_multiplier"]) == (16, 32, 2)
    assert depthwise["flops"] == 2 * 14 * 24 * 9 * 32
    # Dilation reaches the regressor: the same conv undilated is another feature vector.
    undilated = dict(conv, dilation_h=1, dilation_w=1)
    assert op_features.vector(conv, 2) != op_features.vector(undilated, 2)
    # How full the last block of 64 channels is reaches it too: 64 channels fill it, 68 use
    # 68 of 128, 60 of 64.
    names = op_features.FEATURE_NAMES
    for channels, share in ((64, 1.0), (68, 68 / 128), (60, 60 / 64), (8, 8 / 64)):
        features = dict(zip(names, op_features.vector(dict(conv, channels_in=channels), 2)))
        assert features["channels_in_fill64"] == pytest.approx(share)
        assert features["channels_out_fill64"] == pytest.approx(16 / 64)
    # One-op models cut from the file hold one operator each, with the same features.
    parts = kernel_timing.split_ops(path, str(tmp_path))
    assert [op_features.tflite_ops(p) for p in parts] == [[conv], [depthwise]]


def test_paper_and_edge_variants_are_different_operators(tmp_path):
    from deeprx.network import model
    scenario = config.get_preset("tiny").scenario
    rows, paths = {}, {}
    for variant in model.VARIANTS:
        keras_model = model.build(model.DeepRxConfig(width_multiplier=0.2, variant=variant), scenario, batch_size=1)
        rows[variant], paths[variant] = kernel_timing.backend_rows(keras_model, keras_model, "tflite_float",
                                                                   str(tmp_path))
    paper, edge = (sorted({(r["dilation_h"], r["dilation_w"]) for r in rows[v] if r["op"] == "DEPTHWISE_CONV_2D"})
                   for v in ("paper", "edge"))
    assert paper != edge and all(h == w for h, w in edge), (paper, edge)
    # Both models are named "deeprx": each keeps its own file until it is timed (the held-out
    # check exports every model before measuring any).
    assert paths["paper"] != paths["edge"]
    assert {v: op_features.tflite_ops(paths[v]) for v in paths} == rows


def test_keras_layers_are_rows_and_models_of_their_own():
    model = _conv_bn_relu_depthwise()
    rows = op_features.keras_ops(model)
    assert [r["op"] for r in rows] == ["CONV_2D", "BATCH_NORM", "RELU", "DEPTHWISE_CONV_2D"]
    assert rows[0]["dilation_w"] == 3 and rows[3]["depth_multiplier"] == 2
    alone = kernel_timing.layer_models(model)
    assert [op_features.keras_ops(m) for m in alone] == [[r] for r in rows]


def test_fit_space_is_seeded_and_spans_the_shapes():
    layers = kernel_models.fit_space(200, seed=3)
    assert layers == kernel_models.fit_space(200, seed=3) != kernel_models.fit_space(200, seed=4)
    assert {layer.kind for layer in layers} == {"conv", "depthwise", "bn", "bn_relu", "relu", "add", "concat"}
    assert {layer.dilation for layer in layers if layer.kind == "depthwise"} == set(kernel_models.DILATIONS)
    assert min(layer.width for layer in layers) == 24 and max(layer.width for layer in layers) == 264
    assert all(4 <= layer.channels_out <= 640 for layer in layers)
    conv3x3 = [layer for layer in layers if layer.kind == "conv" and layer.kernel == 3]
    square = [layer for layer in conv3x3 if layer.channels_in == layer.channels_out]
    assert 0.25 < len(square) / len(conv3x3) < 0.6 and len(square) < len(conv3x3)


def test_fit_space_appends_square_convs_keeping_the_first_layers():
    first = kernel_models.fit_space(kernel_models.SQUARE_FROM)
    longer = kernel_models.fit_space(kernel_models.SQUARE_FROM + 40)
    assert longer[:kernel_models.SQUARE_FROM] == first  # a resumed fit keeps their timings
    extra = longer[kernel_models.SQUARE_FROM:]
    assert len(extra) == 40 and len(set(extra)) > 30
    assert all(layer.kind == "conv" and layer.kernel == 3 and layer.channels_in == layer.channels_out
               and 16 <= layer.channels_in <= 128 for layer in extra)


def test_fit_predicts_unseen_families_from_operator_sums(smoke_run, tmp_path):
    out = str(tmp_path / "kernels")
    fit = run_module("deeprx.kernels", "fit", "--preset=tiny", "--fit_layers=12", "--heldout_widths=0.2",
                     "--heldout_prbs=2", "--heldout_resnets=8x1", "--thread_counts=1", "--min_seconds=0.01",
                     "--energy_source=cputime:5", "--heldout_rounds=2", "--context_models=1", f"--out={out}",
                     timeout=900)
    assert fit.returncode == 0, fit.stderr[-3000:]
    with open(os.path.join(out, "heldout.csv")) as f:
        heldout = list(csv.DictReader(f))
    with open(os.path.join(out, "heldout_summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(out, "kernels.csv")) as f:
        timed = list(csv.DictReader(f))
    assert os.path.getsize(os.path.join(out, "heldout.png")) > 10_000
    assert {r["backend"] for r in timed} == set(kernel_predictor.BACKENDS)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= {r["op"] for r in timed if r["backend"] == "tflite_int8"}
    # Three families x three backends; each a MAPE and share within +-10% of its rows.
    assert set(summary) == {"deeprx_widths", "deeprx_grids", "plain_resnet"}
    for family, backends in summary.items():
        assert set(backends) == set(kernel_predictor.BACKENDS)
        for backend, figures in backends.items():
            rows = [r for r in heldout if r["family"] == family and r["backend"] == backend]
            errors = [abs(float(r["predicted_wall_ms"]) / float(r["measured_wall_ms"]) - 1) for r in rows]
            assert figures["mape"] == pytest.approx(100 * np.mean(errors), abs=0.01)
            assert figures["within_10pct"] == pytest.approx(np.mean([e <= 0.1 for e in errors]), abs=1e-3)
            assert figures["models"] == (2 if family.startswith("deeprx") else 1)
    # Energy: CPU seconds x the source's 5 W per busy core, predicted and measured alike.
    for row in heldout:
        assert float(row["measured_mj"]) == pytest.approx(5 * float(row["measured_cpu_ms"]), abs=1e-3)
        assert float(row["predicted_mj"]) == pytest.approx(5 * float(row["predicted_cpu_ms"]), abs=1e-3)
    # A prediction is the operator sum plus one empty call: recomputed from the saved predictor.
    predictor = kernel_predictor.load_predictor(out)
    resnet = kernel_models.plain_resnet(config.get_preset("tiny").scenario, 8, 1, "resnet8x1")
    row = next(r for r in heldout if r["family"] == "plain_resnet" and r["backend"] == "keras_float")
    wall, cpu = predictor.model_seconds(op_features.keras_ops(resnet), "keras_float", int(row["threads"]))
    # ... in the fit's time, as the measurement: the median of two passes, each read against the probe.
    assert 1e3 * wall == pytest.approx(float(row["predicted_wall_ms"]), abs=1e-3)
    # The context factors, per operator kind, fitted on the fit's own 1 + 1 multi-layer models
    # per TFLite backend: no worse on them than no factor at all (all 1, a feasible point of
    # the fit); a TFLite prediction is the sum of each kind's operators times its factor, plus
    # the empty call.
    with open(os.path.join(out, "context.csv")) as f:
        context = [kernel_predictor._typed(r) for r in csv.DictReader(f)]
    assert {(r["backend"], r["threads"]) for r in context} == {("tflite_float", 1), ("tflite_int8", 1)}
    kinds = sorted(r["model"].split()[0] for r in context if r["backend"] == "tflite_float")
    assert kinds == ["chain", "preact"]  # --context_models=1 of each kind
    with open(os.path.join(out, "fit.json")) as f:
        factors = json.load(f)["context"]["factors"]
    for backend in ("tflite_float", "tflite_int8"):
        assert factors[f"{backend}@1"] == predictor.context[backend, 1]
        assert set(factors[f"{backend}@1"]) == {"conv", "depthwise", "elementwise"}
        assert all(0.5 <= f <= 3 for f in factors[f"{backend}@1"].values())  # kernel_summary.CONTEXT_FACTOR_BOUNDS
        rows = [r for r in context if r["backend"] == backend]
        empty_ms = 1e3 * predictor.empty_call[backend, 1][0]

        def squared_error(f):
            return sum((sum(f[k] * r[f"predicted_ops_{k}_ms"] for k in f) + empty_ms - r["measured_wall_ms"]) ** 2
                       / (r["measured_wall_ms"] - empty_ms) ** 2 for r in rows)
        assert squared_error(factors[f"{backend}@1"]) <= squared_error(dict.fromkeys(factors[f"{backend}@1"], 1.0)) + 1e-6
    ops = kernel_timing.backend_rows(resnet, resnet, "tflite_int8", str(tmp_path))[0]
    int8_row = next(r for r in heldout if r["family"] == "plain_resnet" and r["backend"] == "tflite_int8")
    by_kind = {kind: wall for kind, (wall, _) in predictor.kind_seconds(ops, "tflite_int8", 1).items()}
    operators_sum = sum(by_kind.values())
    assert operators_sum == pytest.approx(sum(w for w, _ in predictor.op_seconds(ops, "tflite_int8", 1)))
    empty = predictor.empty_call["tflite_int8", 1][0]
    assert 1e3 * (sum(predictor.context["tflite_int8", 1][k] * by_kind[k] for k in by_kind) + empty) == \
        pytest.approx(float(int8_row["predicted_wall_ms"]), abs=6e-5)  # heldout.csv keeps 0.1 us
    assert 1e3 * by_kind["conv"] == pytest.approx(float(int8_row["predicted_ops_conv_ms"]), abs=6e-5)
    doubled = dataclasses.replace(predictor, context={("tflite_int8", 1): dict.fromkeys(by_kind, 2.0)})
    assert doubled.model_seconds(ops, "tflite_int8", 1)[0] == pytest.approx(2 * operators_sum + empty)
    assert dataclasses.replace(predictor, context=None).model_seconds(ops, "tflite_int8", 1)[0] == \
        pytest.approx(operators_sum + empty) == doubled.context_seconds(
            doubled.kind_seconds(ops, "tflite_int8", 1), "tflite_int8", 1, context=False)[0]
    # A speed factor, not a unit slip (a busy machine runs the probe several times slower).
    assert all(0.05 < float(r["probe_wall"]) < 20 for r in heldout + timed)
    assert all(0 <= float(r["spread_wall"]) < 2 for r in heldout) and any(float(r["spread_wall"]) > 0 for r in heldout)
    assert "held-out pass 2/2" in fit.stdout
    assert any(float(r["unprobed_wall_ms"]) != float(r["measured_wall_ms"]) for r in heldout)
    with open(os.path.join(out, "fit.json")) as f:
        fitted = json.load(f)
    assert fitted["heldout_rounds"] == 2
    unscaled = [dict(r, predicted_wall_ms=1e3 * predictor.empty_call[r["backend"], r["threads"]][0] + sum(
        r[f"predicted_ops_{kind}_ms"] for kind in op_features.CONTEXT_KINDS))
        for r in map(kernel_predictor._typed, heldout)]
    expected = kernel_summary.summarize(unscaled)  # every factor 1
    for family, by_backend in fitted["heldout_latency_without_context"].items():
        for backend, cell in by_backend.items():
            assert cell["mape"] == pytest.approx(expected[family][backend]["mape"], abs=0.011)
    assert set(fitted["heldout_spread"]) == set(kernel_predictor.BACKENDS)
    # Each model's own operators timed alone: the error split into context and regressors.
    assert all(float(r["ops_alone_wall_ms"]) > 0 for r in heldout if r["backend"] != "keras_float")
    assert set(fitted["heldout_decomposition"]["deeprx_widths"]) == {"tflite_float", "tflite_int8"}
    split = fitted["heldout_decomposition"]["plain_resnet"]["tflite_int8"]
    rows = [r for r in heldout if r["family"] == "plain_resnet" and r["backend"] == "tflite_int8"]
    assert split["measured_over_ops_alone"] == pytest.approx(
        np.median([float(r["measured_wall_ms"]) / float(r["ops_alone_wall_ms"]) for r in rows]), rel=1e-3)
    assert split["predicted_over_ops_alone"] == pytest.approx(
        np.median([float(r["predicted_wall_ms"]) / float(r["ops_alone_wall_ms"]) for r in rows]), rel=1e-3)
    per_op = predictor.op_seconds(op_features.keras_ops(resnet), "keras_float", int(row["threads"]))
    assert wall == pytest.approx(sum(w for w, _ in per_op) + predictor.empty_call["keras_float", int(row["threads"])][0])
    # The paper and edge variants are different operator lists (dilations), whatever this
    # 12-layer fit's trees make of them.
    assert {r["model"] for r in heldout if r["family"] == "deeprx_widths"} == {"paper x0.2", "edge x0.2"}

    predicted = run_module("deeprx.kernels", "predict", "--preset=tiny", f"--predictor={out}",
                           f"--model={smoke_run['workdir']}", "--thread_counts=1", "--probe", timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [line for line in predicted.stdout.splitlines() if "predicted" in line]
    assert len(lines) == 3 and all(" ms per inference, " in line and "ms CPU time" in line for line in lines)
    # --probe: the fit's probe model timed now gives the machine's speed against the fit's.
    factors = [float(line.split("the probe runs ")[1].split("x")[0]) for line in lines]
    assert all(0.2 < f < 5 for f in factors), lines
    unfitted = run_module("deeprx.kernels", "predict", "--preset=tiny", f"--predictor={out}",
                          f"--model={smoke_run['workdir']}", "--thread_counts=2", "--backends=tflite_int8", timeout=300)
    assert unfitted.returncode == 2 and "not fitted for tflite_int8 at 2 thread(s)" in unfitted.stderr
    no_command = run_module("deeprx.kernels", "--preset=tiny", timeout=60)
    assert no_command.returncode == 2 and "give a command first: fit|refit|predict" in no_command.stderr

    # refit: the regressors again on the same timings, the held-out models predicted again, no
    # measurement changed. Spoiled predictions come back as the fit's (same data, seeded trees).
    spoiled = [dict(r, predicted_wall_ms="0.0", predicted_cpu_ms="0.0", predicted_mj="0.0") for r in heldout]
    with open(os.path.join(out, "heldout.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(heldout[0]))
        writer.writeheader()
        writer.writerows(spoiled)
    with open(os.path.join(out, "context.csv"), "w", newline="") as f:  # the factors are fitted on these columns
        writer = csv.DictWriter(f, fieldnames=list(context[0]))
        writer.writeheader()
        writer.writerows(dict(r, predicted_ops_conv_ms=0.0) for r in context)
    flags = ["--preset=tiny", "--heldout_widths=0.2", "--heldout_prbs=2", "--heldout_resnets=8x1", "--context_models=1",
             f"--out={out}"]
    refit = run_module("deeprx.kernels", "refit", *flags, timeout=600)
    assert refit.returncode == 0, refit.stderr[-3000:]
    with open(os.path.join(out, "heldout.csv")) as f:
        refitted = list(csv.DictReader(f))
    predicted_columns = ("predicted_wall_ms", "predicted_cpu_ms", "predicted_mj",
                         "predicted_ops_conv_ms", "predicted_ops_depthwise_ms", "predicted_ops_elementwise_ms")
    for before, again in zip(heldout, refitted):
        assert {k: v for k, v in again.items() if k not in predicted_columns} == \
            {k: v for k, v in before.items() if k not in predicted_columns}
        # (fit.json keeps the empty call to 1 ns: the last digit may differ)
        assert [float(again[k]) for k in predicted_columns] == pytest.approx([float(before[k]) for k in predicted_columns],
                                                                              abs=2e-3)
    with open(os.path.join(out, "fit.json")) as f:
        after = json.load(f)
    assert after["refit"]["command"].startswith("python -m deeprx.kernels refit") and after["date"] == fitted["date"]
    assert after["context"]["models"] == 2  # from context.csv: 1 of each kind
    for key, factors in fitted["context"]["factors"].items():  # the empty call from fit.json: the last digit may move
        assert after["context"]["factors"][key] == pytest.approx(factors, abs=2e-4)
    with open(os.path.join(out, "context.csv")) as f:
        assert [float(r["predicted_ops_conv_ms"]) for r in csv.DictReader(f)] == pytest.approx(
            [r["predicted_ops_conv_ms"] for r in context], abs=2e-3)
    for backend in kernel_predictor.BACKENDS:
        assert set(after["target_cv"][backend]) == {"log2 seconds per FLOP", "log2 seconds"}
    other = run_module("deeprx.kernels", "refit", *flags[:1], "--heldout_widths=0.3", *flags[2:], timeout=600)
    assert other.returncode == 2 and "heldout.csv's" in other.stderr and "is not a model of these flags" in other.stderr
    fewer = run_module("deeprx.kernels", "refit", *flags[:4], "--context_models=0", flags[5], timeout=600)
    assert fewer.returncode == 2 and "context.csv's" in fewer.stderr
    # A predictor of an earlier target is refused, with the command that makes a new one.
    old = kernel_predictor.load_predictor(out)
    old.target = "log2 seconds"
    joblib.dump(old, os.path.join(out, "predictor.joblib"))
    count = len(op_features.FEATURE_NAMES)
    with pytest.raises(ValueError, match=f"predicts log2 seconds from {count} features, not log2 seconds per FLOP "
                                         f"from {count}: run python -m deeprx.kernels refit"):
        kernel_predictor.load_predictor(out)
    old.target, old.features = kernel_predictor.regression.TARGET, old.features[:-3]
    joblib.dump(old, os.path.join(out, "predictor.joblib"))
    with pytest.raises(ValueError, match=f"from {count - 3} features, not log2 seconds per FLOP from {count}"):
        kernel_predictor.load_predictor(out)


def test_a_fit_resumes_only_in_its_probe_time_on_its_cpu(tmp_path):
    out = str(tmp_path)
    assert kernel_predictor._resumable_probe(out, log=lambda *a, **k: None) is None  # nothing to resume
    with open(os.path.join(out, "kernels.csv"), "w") as f:
        f.write("backend,threads\n")
    probe = {"model": kernel_predictor.PROBE, "reference_us": {"tflite_int8@2": [120.0, 230.0]}}
    messages = []
    for cpu in ("Some Other CPU (avx2)", "unknown"):
        with open(os.path.join(out, "probe.json"), "w") as f:
            json.dump(dict(probe, cpu=cpu), f)
        assert kernel_predictor._resumable_probe(out, log=lambda m, **k: messages.append(m)) is None
    assert "Some Other CPU" in messages[0] and "timing every operator again" in messages[0]
    with open(os.path.join(out, "probe.json"), "w") as f:
        json.dump(dict(probe, cpu=kernel_predictor.provenance_lib.cpu_model()), f)
    reference = kernel_predictor._resumable_probe(out, log=print)
    assert reference == {("tflite_int8", 2): pytest.approx((120e-6, 230e-6))}
