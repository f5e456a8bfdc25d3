"""Timing of single operators and whole models, for the kernel-level predictor
(deeprx/costs/kernel_predictor.py; python -m deeprx.kernels describes the method) and the
layer breakdown of python -m deeprx.energy. Every timing gives (wall seconds, process CPU
seconds) per call: the CPU time is what the cputime energy source bills."""

import copy
import math
import os
import statistics
import tempfile
import time

import numpy as np

from deeprx.costs import op_features
from deeprx.network import model as model_lib

TFLITE_DTYPES = {"tflite_float": "float32", "tflite_int8": "int8"}


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


def probe_model():
    """The probe: a fixed small model (3x3 conv 32 -> 32, dilated 3x3 depthwise, ReLU on a
    14 x 96 grid), timed again and again through a fit and its held-out check. Its time against
    its first time is the machine's speed of the moment (a VM's neighbours, clocks): every
    operator and held-out timing is read against it, not against an absolute clock."""
    import tf_keras as keras
    from tf_keras import layers
    inputs = keras.Input(shape=(14, 96, 32), batch_size=1)
    x = layers.Conv2D(32, 3, padding="same")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=(2, 3))(x)
    return keras.Model(inputs, layers.ReLU()(x), name="probe")


def _repeat_timing(call, min_seconds):
    """Median (wall, CPU) seconds per call over batches of calls lasting min_seconds in all."""
    for _ in range(3):
        call()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min(0.05, min_seconds / 4):  # calls per batch: a quarter of the time
        call()
        calls += 1
    per_batch = max(1, calls)
    walls, cpus, start = [], [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(walls) < 3:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(per_batch):
            call()
        walls.append((time.perf_counter() - wall) / per_batch)
        cpus.append((time.process_time() - cpu) / per_batch)
    return statistics.median(walls), statistics.median(cpus)


def _minus(a, b):
    return tuple(max(x - y, 0.0) for x, y in zip(a, b))


class FloatTimer:
    """Float TensorFlow (Keras), batch 1, each model in its own tf.function, at the process's
    intra-op threads (TensorFlow fixes them at start-up)."""
    backend = "keras_float"

    def __init__(self, min_seconds):
        import tensorflow as tf
        self.tf, self.min_seconds = tf, min_seconds
        self.threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        identity = tf.function(lambda x: x)
        x = tf.zeros([1, 1, 1, 1])
        self.empty_call = _repeat_timing(lambda: identity(x).numpy(), min_seconds)

    def model_seconds(self, model):
        """(wall, CPU) seconds per call of a tf.function running `model` on random inputs; one
        output value is fetched (copying a whole activation out would be timed too)."""
        tf = self.tf
        function = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False)[0, 0, 0, 0])
        rng = np.random.RandomState(0)
        inputs = [tf.constant(rng.normal(size=i.shape).astype(np.float32)) for i in model.inputs]
        return _repeat_timing(lambda: function(*inputs).numpy(), self.min_seconds)

    def kernel_seconds(self, model):
        """A layer's (or kernel's) own cost: its call minus an empty call. (Timing it as the
        difference of 5 and 1 runs chained in one graph, as before, gave about the same sum for
        DeepRx of widths 0.3 and 0.9: TensorFlow does not run such chains as written.)"""
        return _minus(self.model_seconds(model), self.empty_call)


class TfliteTimer:
    """A .tflite on the CPU interpreter (LiteRT with its default XNNPACK delegate, through
    edge/runner.py, as deployed) at `threads`, batch 1."""

    def __init__(self, threads, min_seconds, empty_model_path):
        self.threads, self.min_seconds = threads, min_seconds
        self.empty_call = self.model_seconds(empty_model_path)

    def model_seconds(self, path):
        """(wall, CPU) seconds per invoke, random inputs set once."""
        from edge import runner
        interpreter, _ = runner.load_interpreter(path, threads=self.threads)
        rng = np.random.RandomState(0)
        for detail in interpreter.get_input_details():
            values = rng.randint(-128, 128, size=detail["shape"]) if detail["dtype"] == np.int8 else \
                rng.normal(size=detail["shape"])
            interpreter.set_tensor(detail["index"], values.astype(detail["dtype"]))
        return _repeat_timing(interpreter.invoke, self.min_seconds)

    def op_seconds(self, path):
        """A one-op model's own cost: its invoke minus an empty invoke."""
        return _minus(self.model_seconds(path), self.empty_call)


def split_ops(path, out_dir):
    """One single-op .tflite per operator of the .tflite at `path` (the op's non-constant
    inputs become the model's inputs; quantization kept), written to out_dir; their paths.
    Each holds its operator's tensors only, and of the weights its own: the model is edited in
    place per operator and serialized (a copy of every tensor and weight per operator was most
    of a held-out model's cost)."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model(path)
    graph = model.subgraphs[0]
    tensors, operators = graph.tensors, graph.operators
    data = [buffer.data for buffer in model.buffers]
    paths = []
    for index, op in enumerate(operators):
        used = list(dict.fromkeys(int(i) for i in (*op.inputs, *op.outputs) if i >= 0))
        position = {tensor: number for number, tensor in enumerate(used)}
        own = {tensors[i].buffer for i in used}
        for number, buffer in enumerate(model.buffers):
            buffer.data = data[number] if number in own else None
        one = copy.copy(op)
        one.inputs = np.array([position.get(int(i), -1) for i in op.inputs], dtype=np.int32)
        one.outputs = np.array([position[int(i)] for i in op.outputs], dtype=np.int32)
        graph.tensors, graph.operators = [tensors[i] for i in used], [one]
        graph.inputs = np.array([position[i] for i in op.inputs if i >= 0 and data[tensors[i].buffer] is None],
                                dtype=np.int32)
        graph.outputs = one.outputs
        paths.append(os.path.join(out_dir, f"op{index:03d}.tflite"))
        with open(paths[-1], "wb") as f:
            f.write(flatbuffer_utils.convert_object_to_bytearray(model))
    return paths


def tflite_bytes(model, dtype, samples=8):
    """TFLite bytes of a batch-1 Keras model: float32, or full-integer int8 calibrated on
    random inputs (the values do not change the latency)."""
    from deeprx.export import int8
    if dtype == "float32":
        return int8.convert(model)
    rng = np.random.RandomState(0)
    return int8.convert(model, [[rng.normal(size=i.shape).astype(np.float32) for i in model.inputs]
                                for _ in range(samples)])


def layer_models(model):
    """A batch-1 Keras model of each layer of `model` (input layers excluded) alone, sharing its
    weights, in op_features.keras_ops's order."""
    import tf_keras as keras
    models = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
        inputs = [keras.Input(shape=shape[1:], batch_size=1) for shape in shapes]
        models.append(keras.Model(inputs, layer(inputs if len(inputs) > 1 else inputs[0])))
    return models


def kernel_seconds(kernel, timer):
    """A kernel's (tuple of plan layers) own wall seconds in float TensorFlow."""
    return timer.kernel_seconds(kernel_model(kernel))[0]


def backend_rows(keras_model, export_model, backend, tmp):
    """(operator rows, .tflite path or None) of a model on `backend`. The path is new on every
    call: models that share a name (every DeepRx is "deeprx") must not overwrite each other's
    file before it is timed."""
    if backend == "keras_float":
        return op_features.keras_ops(keras_model), None
    handle, path = tempfile.mkstemp(suffix=f"_{backend}.tflite", prefix=f"{export_model.name}_", dir=tmp)
    with os.fdopen(handle, "wb") as f:
        f.write(tflite_bytes(export_model, TFLITE_DTYPES[backend]))
    return op_features.tflite_ops(path), path


class Timers:
    """The timers of every (backend, threads), each with the probe model it times to follow the
    machine's speed (probe_model): `reference` is the probe's (wall, CPU) seconds
    per key at the start of the fit, or those of a resumed fit."""

    def __init__(self, backends, threads, min_seconds, tmp, reference=None):
        import tf_keras as keras
        empty = keras.Sequential([keras.Input(shape=(1, 1, 1), batch_size=1), keras.layers.ReLU()])
        probe = probe_model()
        self.timers, self.probes = {}, {}
        for backend in backends:
            if backend == "keras_float":
                timer = FloatTimer(min_seconds)
                self.timers[backend, timer.threads], self.probes[backend, timer.threads] = timer, probe
                continue
            _, path = backend_rows(empty, empty, backend, tmp)
            _, probe_path = backend_rows(probe, probe, backend, tmp)
            for n in threads:
                self.timers[backend, n] = TfliteTimer(n, min_seconds, path)
                self.probes[backend, n] = probe_path
        self.reference = reference if reference and set(self.timers) <= set(reference) else self.probe()

    def of(self, backend):
        return [(n, timer) for (b, n), timer in self.timers.items() if b == backend]

    def probe(self, keys=None):
        """{(backend, threads): the probe's (wall, CPU) seconds per call now}."""
        return {key: self.timers[key].model_seconds(self.probes[key]) for key in keys or self.timers}

    def speed(self, before, after):
        """{key: (wall, CPU) factors}: the probe's time around some timings (geometric mean of
        its time before and after them) over its reference time; 1.1 = the machine ran 10% slow."""
        return {key: tuple(math.sqrt(b * a) / r for b, a, r in zip(before[key], after[key], self.reference[key]))
                for key in before}

    @property
    def empty_call(self):
        return {key: timer.empty_call for key, timer in self.timers.items()}


def own_op_seconds(timer, keras_model, path, tmp):
    """[(wall, CPU) seconds] of every operator of a model timed alone, as the fit times them: a
    .tflite's (path) operators cut out one per model, or (path None) a Keras model's layers,
    each minus an empty call."""
    if path is None:
        return [timer.kernel_seconds(m) for m in layer_models(keras_model)]
    return [timer.op_seconds(p) for p in split_ops(path, tmp)]
