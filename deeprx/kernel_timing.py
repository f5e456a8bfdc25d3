"""Kernel timing and the kernel-level latency predictor: the library of python -m deeprx.kernels
(its docstring describes the method)."""

import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

from deeprx import ber as ber_lib
from deeprx import bench
from deeprx import costs
from deeprx import model as model_lib

BACKENDS = ("float", "int8")
KERNEL_TYPES = ("conv3x3", "pointwise", "depthwise", "bn", "relu", "add")
FEATURES = ("flops", "activation_bytes", "weight_bytes")


def kernel_type(layer):
    if layer.kind == "conv":
        return "conv3x3" if layer.kernel == 3 else "pointwise"
    return layer.kind


def features(layer, backend):
    precision = "int8" if backend == "int8" else "float32"
    cost = costs.layer_cost(layer, precision)
    return [float(cost[name]) for name in FEATURES]


def kernel_grid(scenario, grid="full"):
    """model_lib.Layer records to time: every kernel type over channel counts and dilations,
    on the scenario's grid (14 symbols x its subcarriers)."""
    height, width = scenario.grid_shape
    channels = (8, 32) if grid == "tiny" else (8, 16, 32, 64, 128, 256)
    dilations = ((1, 1),) if grid == "tiny" else ((1, 1), (2, 3), (3, 3))
    layers = []

    def add(kind, cin, cout, **kwargs):
        layers.append(model_lib.Layer(f"{kind}_{cin}_{cout}_{len(layers)}", kind, "kernel", height, width, cin, cout,
                                      **kwargs))
    for c in channels:
        add("bn", c, c)
        add("relu", c, c)
        add("add", c, c)
        for dilation in dilations:
            add("depthwise", c, 2 * c, kernel=3, dilation=dilation)
        for cout in sorted({c // 2, c, 2 * c} - {0}):
            add("conv", c, cout, kernel=1, use_bias=True)
        add("conv", c, c, kernel=3, use_bias=True)
    add("conv", scenario.num_input_channels, channels[-1], kernel=3, use_bias=True)  # a stem
    return layers


def single_layer_model(layer):
    import tf_keras as keras
    shape = (layer.height, layer.width, layer.channels_in)
    if layer.kind == "add":
        inputs = [keras.Input(shape=shape, batch_size=1), keras.Input(shape=shape, batch_size=1)]
    else:
        inputs = keras.Input(shape=shape, batch_size=1)
    return keras.Model(inputs, model_lib.keras_layer(layer)(inputs))


def _repeat_timing(call, min_seconds):
    """Median seconds per call over batches of calls lasting at least min_seconds in all."""
    for _ in range(3):
        call()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.05:
        call()
        calls += 1
    per_batch = max(1, calls)
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(samples) < 3:
        begin = time.perf_counter()
        for _ in range(per_batch):
            call()
        samples.append((time.perf_counter() - begin) / per_batch)
    return statistics.median(samples)


class FloatTimer:
    """Float TensorFlow, batch 1, each model in its own tf.function."""
    backend = "float"

    def __init__(self, min_seconds):
        import tensorflow as tf
        self.tf, self.min_seconds = tf, min_seconds
        identity = tf.function(lambda x: x)
        x = tf.zeros([1, 1, 1, 1])
        self.empty_call_s = _repeat_timing(lambda: identity(x).numpy(), min_seconds)

    def model_seconds(self, model):
        tf = self.tf
        function = tf.function(lambda x: model(x, training=False))
        rng = np.random.RandomState(0)
        inputs = [tf.constant(rng.normal(size=i.shape).astype(np.float32)) for i in model.inputs]
        arg = inputs if len(inputs) > 1 else inputs[0]
        return _repeat_timing(lambda: function(arg).numpy(), self.min_seconds)


class Int8Timer:
    """int8 on the CPU interpreter (LiteRT, default threads), through edge/runner.py."""
    backend = "int8"

    def __init__(self, min_seconds):
        self.min_seconds = min_seconds
        import tf_keras as keras
        tiny = keras.Sequential([keras.Input(shape=(1, 1, 1), batch_size=1), keras.layers.ReLU()])
        self.empty_call_s = self.model_seconds(tiny)

    def model_seconds(self, model):
        from edge import runner
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.tflite")
            with open(path, "wb") as f:
                f.write(int8_tflite(model))
            interpreter, _ = runner.load_interpreter(path)
            example = [np.random.RandomState(0).randint(-128, 128, size=d["shape"]).astype(np.int8)
                       for d in interpreter.get_input_details()]
            indices = [d["index"] for d in interpreter.get_input_details()]

            def call():
                for index, value in zip(indices, example):
                    interpreter.set_tensor(index, value)
                interpreter.invoke()
            return _repeat_timing(call, self.min_seconds)


def int8_tflite(model, samples=8):
    """Full-integer int8 TFLite bytes of a batch-1 Keras model, calibrated on random inputs
    (the values do not change the latency)."""
    from edge import int8
    rng = np.random.RandomState(0)
    return int8.convert(model, [[rng.normal(size=i.shape).astype(np.float32) for i in model.inputs]
                                    for _ in range(samples)])


TIMERS = {"float": FloatTimer, "int8": Int8Timer}


def time_kernels(layers, timer, log=print):
    """kernels.csv rows: each layer's kernel type, features and its own latency."""
    rows = []
    for index, layer in enumerate(layers):
        seconds = timer.model_seconds(single_layer_model(layer))
        own = max(seconds - timer.empty_call_s, 0.0)
        rows.append({"backend": timer.backend, "kernel": kernel_type(layer), "height": layer.height,
                     "width": layer.width, "channels_in": layer.channels_in, "channels_out": layer.channels_out,
                     "dilation": "x".join(map(str, layer.dilation)),
                     **dict(zip(FEATURES, features(layer, timer.backend))), "latency_us": round(1e6 * own, 3)})
        if (index + 1) % 10 == 0 or index + 1 == len(layers):
            log(f"  {timer.backend}: {index + 1}/{len(layers)} kernels timed", flush=True)
    return rows


@dataclasses.dataclass
class Predictor:
    """One regressor per (backend, kernel type), and each backend's empty call."""
    regressors: dict
    empty_call_s: dict

    def layer_seconds(self, layer, backend):
        regressor = self.regressors[backend, kernel_type(layer)]
        return max(float(regressor.predict([features(layer, backend)])[0]), 0.0) / 1e6

    def model_seconds(self, model_config, scenario, backend):
        return self.empty_call_s[backend] + sum(self.layer_seconds(layer, backend)
                                                for layer in model_lib.plan(model_config, scenario))


def fit_regressors(rows):
    from sklearn.linear_model import LinearRegression
    regressors = {}
    for backend in sorted({r["backend"] for r in rows}):
        for kind in KERNEL_TYPES:
            subset = [r for r in rows if r["backend"] == backend and r["kernel"] == kind]
            if len(subset) < 2:
                raise ValueError(f"{backend} {kind}: at least two timed kernels are needed to fit, got {len(subset)}")
            regressor = LinearRegression(positive=True)
            regressor.fit([[r[f] for f in FEATURES] for r in subset], [r["latency_us"] for r in subset])
            regressors[backend, kind] = regressor
    return regressors


def heldout_variants(widths):
    """DeepRx configs not used in fitting: each width in the paper and the edge variant."""
    return [model_lib.DeepRxConfig(width_multiplier=w, variant=v) for w in widths for v in model_lib.VARIANTS]


def mape(rows):
    return 100.0 * float(np.mean([abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows]))


def fit(scenario, backends, grid, heldout_widths, min_seconds, out, log=print):
    """Times, fits, evaluates on held-out variants; writes OUT's files; returns fit.json's dict."""
    import joblib
    start = time.time()
    layers = kernel_grid(scenario, grid)
    rows, timers = [], {}
    for backend in backends:
        timers[backend] = TIMERS[backend](min_seconds)
        log(f"{backend}: empty call {1e6 * timers[backend].empty_call_s:.1f} us; timing {len(layers)} kernels",
            flush=True)
        rows += time_kernels(layers, timers[backend], log)
    predictor = Predictor(fit_regressors(rows), {b: timers[b].empty_call_s for b in backends})
    heldout = []
    for model_config in heldout_variants(heldout_widths):
        model = model_lib.build(model_config, scenario, batch_size=1)
        for backend in backends:
            measured = timers[backend].model_seconds(model)
            predicted = predictor.model_seconds(model_config, scenario, backend)
            heldout.append({"backend": backend, "variant": model_config.variant,
                            "width_multiplier": model_config.width_multiplier,
                            "mflops": round(model_lib.flops_per_slot(model_config, scenario) / 1e6, 3),
                            "measured_ms": round(1e3 * measured, 4), "predicted_ms": round(1e3 * predicted, 4)})
            log(f"  held out {model_config.variant} x{model_config.width_multiplier:g} {backend}: measured "
                f"{1e3 * measured:.3f} ms, predicted {1e3 * predicted:.3f} ms", flush=True)
    os.makedirs(out, exist_ok=True)
    ber_lib.write_table(os.path.join(out, "kernels.csv"), rows, list(rows[0]))
    ber_lib.write_table(os.path.join(out, "heldout.csv"), heldout, list(heldout[0]))
    tmp = os.path.join(out, ".predictor.joblib.tmp")
    joblib.dump(predictor, tmp)
    os.replace(tmp, os.path.join(out, "predictor.joblib"))
    result = {"grid_shape": list(scenario.grid_shape), "kernels_timed": len(rows), "features": list(FEATURES),
              "regressor": "sklearn LinearRegression(positive=True) per backend and kernel type",
              "empty_call_us": {b: round(1e6 * s, 3) for b, s in predictor.empty_call_s.items()},
              "latency_mape_heldout": {b: round(mape([r for r in heldout if r["backend"] == b]), 2) for b in backends},
              "heldout_variants": len(heldout) // len(backends), "seconds": round(time.time() - start, 1),
              **bench.provenance()}
    ber_lib.write_json(os.path.join(out, "fit.json"), result)
    return result


def load_predictor(directory):
    import joblib
    path = os.path.join(directory, "predictor.joblib")
    if not os.path.isfile(path):
        raise ValueError(f"no predictor.joblib in {directory!r}: run python -m deeprx.kernels fit --out={directory}")
    return joblib.load(path)


def energy_score(model_j, reference_j):
    """100 x E_reference / E_model: 200 means half the reference's energy per inference."""
    if not model_j > 0 or not reference_j > 0:
        raise ValueError("an energy score needs positive energies")
    return 100.0 * reference_j / model_j
