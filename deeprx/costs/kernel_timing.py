"""Kernel timing and the kernel-level latency predictor: the library of python -m deeprx.kernels
(its docstring describes the method)."""

import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

from deeprx.costs import estimates as costs
from deeprx.evaluation import bench
from deeprx.network import model as model_lib
from edge import ber as ber_lib

BACKENDS = ("float", "int8")
KERNEL_TYPES = ("conv3x3", "pointwise", "depthwise", "bn_relu", "add")
FEATURES = ("flops", "activation_bytes", "weight_bytes")


def kernels_of(layers):
    """Plan layers grouped into the kernels a runtime executes, each a tuple of layers: a BN
    and the ReLU after it are one bn_relu kernel (TFLite runs BN as MUL + ADD and fuses the
    ReLU into the ADD; timed apart, an int8 ReLU costs more than the whole fused kernel)."""
    kernels, index = [], 0
    while index < len(layers):
        fused = layers[index].kind == "bn" and index + 1 < len(layers) and layers[index + 1].kind == "relu"
        kernels.append(tuple(layers[index:index + 1 + fused]))
        index += 1 + fused
    return kernels


def kernel_type(kernel):
    first = kernel[0]
    if first.kind == "conv":
        return "conv3x3" if first.kernel == 3 else "pointwise"
    return "bn_relu" if [layer.kind for layer in kernel] == ["bn", "relu"] else first.kind


def features(kernel, backend):
    precision = "int8" if backend == "int8" else "float32"
    layer_costs = [costs.layer_cost(layer, precision) for layer in kernel]
    return [float(sum(cost[name] for cost in layer_costs)) for name in FEATURES]


def kernel_grid(scenario, grid="full"):
    """Kernels (tuples of model_lib.Layer) to time: every kernel type over channel counts and
    dilations, on the scenario's grid (14 symbols x its subcarriers)."""
    height, width = scenario.grid_shape
    channels = (8, 32) if grid == "tiny" else (8, 16, 32, 64, 128, 256)
    dilations = ((1, 1),) if grid == "tiny" else ((1, 1), (2, 3), (3, 3))
    kernels = []

    def layer(kind, cin, cout, **kwargs):
        return model_lib.Layer(f"{kind}_{cin}_{cout}_{len(kernels)}", kind, "kernel", height, width, cin, cout, **kwargs)

    def add(kind, cin, cout, **kwargs):
        kernels.append((layer(kind, cin, cout, **kwargs),))
    for c in channels:
        kernels.append((layer("bn", c, c), layer("relu", c, c)))
        add("add", c, c)
        for dilation in dilations:
            add("depthwise", c, 2 * c, kernel=3, dilation=dilation)
        for cout in sorted({c // 2, c, 2 * c} - {0}):
            add("conv", c, cout, kernel=1, use_bias=True)
        add("conv", c, c, kernel=3, use_bias=True)
    add("conv", scenario.num_input_channels, channels[-1], kernel=3, use_bias=True)  # a stem
    return kernels


def kernel_model(kernel):
    """A batch-1 Keras model of one kernel (a tuple of plan layers)."""
    import tf_keras as keras
    first = kernel[0]
    shape = (first.height, first.width, first.channels_in)
    if first.kind == "add":
        inputs = [keras.Input(shape=shape, batch_size=1), keras.Input(shape=shape, batch_size=1)]
    else:
        inputs = keras.Input(shape=shape, batch_size=1)
    x = inputs
    for layer in kernel:
        x = model_lib.keras_layer(layer)(x)
    return keras.Model(inputs, x)


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

    def model_seconds(self, model, repeats=1):
        """Seconds per call of a tf.function running `model` `repeats` times in sequence, each
        on inputs of its own (identical work would be merged); one output value is fetched
        (copying a whole activation out would be timed too)."""
        tf = self.tf

        def chain(*runs):
            y = None
            for inputs in runs:
                with tf.control_dependencies([] if y is None else [y]):
                    y = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
            return y[0, 0, 0, 0]
        function = tf.function(chain)
        rng = np.random.RandomState(0)
        runs = [tuple(tf.constant(rng.normal(size=i.shape).astype(np.float32)) for i in model.inputs)
                for _ in range(repeats)]
        return _repeat_timing(lambda: function(*runs).numpy(), self.min_seconds)

    def kernel_seconds(self, model, repeats=5):
        """A kernel's cost inside a graph, as in a whole model: the time `repeats - 1` more runs
        of it add to one call (a call's own overhead drops out)."""
        return max((self.model_seconds(model, repeats) - self.model_seconds(model)) / (repeats - 1), 0.0)


class Int8Timer:
    """int8 on the CPU interpreter (LiteRT, one thread per core), through edge/runner.py."""
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
            interpreter, _ = runner.load_interpreter(path, threads=os.cpu_count())
            example = [np.random.RandomState(0).randint(-128, 128, size=d["shape"]).astype(np.int8)
                       for d in interpreter.get_input_details()]
            indices = [d["index"] for d in interpreter.get_input_details()]

            def call():
                for index, value in zip(indices, example):
                    interpreter.set_tensor(index, value)
                interpreter.invoke()
            return _repeat_timing(call, self.min_seconds)

    def kernel_seconds(self, model):
        """A kernel's own latency: its timed invoke minus an empty invoke."""
        return max(self.model_seconds(model) - self.empty_call_s, 0.0)


def int8_tflite(model, samples=8):
    """Full-integer int8 TFLite bytes of a batch-1 Keras model, calibrated on random inputs
    (the values do not change the latency)."""
    from deeprx.export import int8
    rng = np.random.RandomState(0)
    return int8.convert(model, [[rng.normal(size=i.shape).astype(np.float32) for i in model.inputs]
                                    for _ in range(samples)])


TIMERS = {"float": FloatTimer, "int8": Int8Timer}


def kernel_seconds(kernel, timer):
    """A kernel's own latency on the timer's backend."""
    return timer.kernel_seconds(kernel_model(kernel))


def time_kernels(kernels, timer, log=print):
    """kernels.csv rows: each kernel's type, features and its own latency."""
    rows = []
    for index, kernel in enumerate(kernels):
        first, last = kernel[0], kernel[-1]
        rows.append({"backend": timer.backend, "kernel": kernel_type(kernel), "height": first.height,
                     "width": first.width, "channels_in": first.channels_in, "channels_out": last.channels_out,
                     "dilation": "x".join(map(str, first.dilation)),
                     **dict(zip(FEATURES, features(kernel, timer.backend))),
                     "latency_us": round(1e6 * kernel_seconds(kernel, timer), 3)})
        if (index + 1) % 10 == 0 or index + 1 == len(kernels):
            log(f"  {timer.backend}: {index + 1}/{len(kernels)} kernels timed", flush=True)
    return rows


@dataclasses.dataclass
class Predictor:
    """One regressor per (backend, kernel type), each backend's empty call, and each
    backend's calibration (scale, offset in s) of the kernel sum to whole models."""
    regressors: dict
    empty_call_s: dict
    calibration: dict = dataclasses.field(default_factory=dict)

    def kernel_seconds(self, kernel, backend):
        regressor = self.regressors[backend, kernel_type(kernel)]
        return max(float(regressor.predict([features(kernel, backend)])[0]), 0.0) / 1e6

    def kernel_sum(self, model_config, scenario, backend):
        return sum(self.kernel_seconds(kernel, backend) for kernel in kernels_of(model_lib.plan(model_config, scenario)))

    def model_seconds(self, model_config, scenario, backend):
        scale, offset = self.calibration.get(backend, (1.0, self.empty_call_s[backend]))
        return scale * self.kernel_sum(model_config, scenario, backend) + offset


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


def variants(widths):
    """DeepRx configs: each width in the paper and the edge variant."""
    return [model_lib.DeepRxConfig(width_multiplier=w, variant=v) for w in widths for v in model_lib.VARIANTS]


def calibrate(predictor, timers, scenario, widths, log=print):
    """Fits each backend's measured = scale x kernel sum + offset on the DeepRx variants of
    `widths` (a runtime runs kernels in a model faster or slower than alone); returns the rows."""
    from sklearn.linear_model import LinearRegression
    rows = []
    for model_config in variants(widths):
        model = model_lib.build(model_config, scenario, batch_size=1)
        for backend, timer in timers.items():
            rows.append((backend, predictor.kernel_sum(model_config, scenario, backend), timer.model_seconds(model)))
    for backend in timers:
        points = [(kernel_sum, measured) for b, kernel_sum, measured in rows if b == backend]
        regressor = LinearRegression().fit([[p[0]] for p in points], [p[1] for p in points])
        predictor.calibration[backend] = (float(regressor.coef_[0]), float(regressor.intercept_))
        log(f"  {backend} calibration on widths {', '.join(map(str, widths))}: model = "
            f"{predictor.calibration[backend][0]:.3f} x kernel sum + {1e3 * predictor.calibration[backend][1]:.3f} ms",
            flush=True)
    return rows


def mape(rows, key="predicted_ms"):
    return 100.0 * float(np.mean([abs(r[key] - r["measured_ms"]) / r["measured_ms"] for r in rows]))


def fit(scenario, backends, grid, calibration_widths, heldout_widths, min_seconds, out, log=print):
    """Times the kernels, fits, calibrates on the variants of calibration_widths (none: no
    calibration), evaluates on those of heldout_widths; writes OUT's files; returns fit.json's dict."""
    if set(calibration_widths) & set(heldout_widths):
        raise ValueError("a held-out width cannot also calibrate")
    import joblib
    start = time.time()
    kernels = kernel_grid(scenario, grid)
    rows, timers = [], {}
    for backend in backends:
        timers[backend] = TIMERS[backend](min_seconds)
        log(f"{backend}: empty call {1e6 * timers[backend].empty_call_s:.1f} us; timing {len(kernels)} kernels",
            flush=True)
        rows += time_kernels(kernels, timers[backend], log)
    predictor = Predictor(fit_regressors(rows), {b: timers[b].empty_call_s for b in backends})
    if calibration_widths:
        calibrate(predictor, timers, scenario, calibration_widths, log)
    heldout = []
    for model_config in variants(heldout_widths):
        model = model_lib.build(model_config, scenario, batch_size=1)
        for backend in backends:
            measured = timers[backend].model_seconds(model)
            predicted = predictor.model_seconds(model_config, scenario, backend)
            kernel_sum = predictor.kernel_sum(model_config, scenario, backend)
            heldout.append({"backend": backend, "variant": model_config.variant,
                            "width_multiplier": model_config.width_multiplier,
                            "mflops": round(model_lib.flops_per_slot(model_config, scenario) / 1e6, 3),
                            "measured_ms": round(1e3 * measured, 4), "predicted_ms": round(1e3 * predicted, 4),
                            "uncalibrated_ms": round(1e3 * (kernel_sum + predictor.empty_call_s[backend]), 4),
                            "kernel_sum_ms": round(1e3 * kernel_sum, 6)})
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
              "calibration_widths": list(calibration_widths), "heldout_widths": list(heldout_widths),
              "calibration": {b: {"scale": round(c[0], 6), "offset_ms": round(1e3 * c[1], 6)}
                              for b, c in predictor.calibration.items()},
              "latency_mape_heldout": {b: round(mape([r for r in heldout if r["backend"] == b]), 2) for b in backends},
              "latency_mape_heldout_uncalibrated": {
                  b: round(mape([r for r in heldout if r["backend"] == b], "uncalibrated_ms"), 2) for b in backends},
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
