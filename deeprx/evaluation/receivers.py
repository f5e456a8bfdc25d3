"""One receiver interface for every receiver: `receiver(batch) -> LLRs`.

A receiver is any callable taking a `deeprx.simulation.data.Batch` and returning LLRs
[batch, 14, K, bits_per_symbol] float32 (LLR = log P(b=1)/P(b=0)), with a `name`.
Classical receivers read what they need from the batch (y, h, noise_var); neural
receivers read `batch.inputs`. This module resolves `--receivers` entries: a
classical receiver's name, a model directory holding `model.keras` (or pretrained:NAME, a
model shipped in data/models), or an int8 .tflite
of python -m deeprx.quantize (run slot by slot on the CPU interpreter, as edge/runner.py
runs it on a device).

TensorFlow is imported only when a receiver is built, so `check_spec` can run
before any compute.
"""

import os

from deeprx.core import config as config_lib
from deeprx.core import workdir as workdir_lib
from deeprx.network import saved

CLASSICAL_NAMES = ("ls_lmmse", "perfect_lmmse", "ls_irc", "perfect_irc")  # deeprx.simulation.baselines
# The classical receivers beside which a training run's final evaluation puts its model.
FINAL_EVAL_REFERENCES = ("ls_lmmse", "perfect_lmmse")
MODEL_FILENAME = workdir_lib.MODEL_FILENAME


def check_spec(spec: str) -> None:
    """Raises ValueError unless `spec` names a classical receiver, a model directory (or a shipped
    model, pretrained:NAME) or a .tflite."""
    if spec in CLASSICAL_NAMES:
        return
    spec = workdir_lib.resolve(spec)
    if spec.endswith(".tflite"):
        if not os.path.isfile(spec):
            raise ValueError(f"no .tflite model at {spec!r}")
        return
    if not os.path.isdir(spec):
        raise ValueError(f"{spec!r} is neither a classical receiver ({', '.join(CLASSICAL_NAMES)}) "
                         "nor an existing model directory")
    if not os.path.isfile(os.path.join(spec, MODEL_FILENAME)):
        raise ValueError(f"model directory {spec!r} has no {MODEL_FILENAME}")


def receiver_name(spec: str) -> str:
    """Name under which `spec` appears in ber.csv and summary.json."""
    if spec.endswith(".tflite"):
        return os.path.splitext(os.path.basename(spec))[0]
    return spec if spec in CLASSICAL_NAMES else workdir_lib.RunDir(spec).name


class KerasReceiver:
    """A Keras model mapping inputs [B, 14, K, C] to bit logits [B, 14, K, m]."""

    def __init__(self, name: str, model, scenario: config_lib.ScenarioConfig):
        import tensorflow as tf
        expected_in = (*scenario.grid_shape, scenario.num_input_channels)
        expected_out = (*scenario.grid_shape, scenario.bits_per_symbol)
        got_in, got_out = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
        for what, got, expected in (("input", got_in, expected_in), ("output", got_out, expected_out)):
            if len(got) != 3 or any(g is not None and g != e for g, e in zip(got, expected)):
                raise ValueError(f"model {name!r} has {what} shape {got}, the scenario needs {expected}: "
                                 "evaluate it with the preset and overrides it was trained with")
        self.name = name
        self.model = model
        self._graph = tf.function(lambda inputs: model(inputs, training=False))

    def __call__(self, batch):
        return self._graph(batch.inputs)


class TFLiteReceiver:
    """An int8 batch-1 .tflite on the host CPU interpreter, fed slot by slot with inputs
    quantized by edge.runner (the device-side code), LLRs dequantized with the model's
    output scale and zero point."""

    def __init__(self, name: str, path: str, scenario: config_lib.ScenarioConfig, threads: int = None):
        from edge import runner
        try:
            interpreter, self.backend = runner.load_interpreter(path, threads)
            self.model = runner.Model(interpreter)
        except runner.RunnerError as error:
            raise ValueError(str(error)) from None
        expected = (1, *scenario.grid_shape, scenario.num_input_channels)
        if self.model.input_shape != expected:
            raise ValueError(f"{path!r} takes input {self.model.input_shape}, the scenario needs {expected}: "
                             "evaluate it with the preset it was exported for")
        self.name, self._quantize = name, runner.quantize

    def __call__(self, batch):
        import numpy as np
        model = self.model
        llrs = []
        for slot in batch.inputs.numpy():
            quantized = self._quantize(slot[None], model.input_scale, model.input_zero_point)
            output = model.invoke(quantized)[0].astype(np.float32)
            llrs.append(model.output_scale * (output - model.output_zero_point))
        return np.stack(llrs)


def load(spec: str, scenario: config_lib.ScenarioConfig, off_distribution=False):
    """The receiver named by `spec` (classical name, model directory or .tflite). A trained run
    (with its config.json) runs only on its training scenario but for the PRB count, or with
    `off_distribution` also on other channels, SNRs and interferers (workdir.check_grid_change)."""
    check_spec(spec)
    if spec in CLASSICAL_NAMES:
        from deeprx.simulation import baselines
        return baselines.CLASSICAL_RECEIVERS[spec](scenario)
    if spec.endswith(".tflite"):
        return TFLiteReceiver(receiver_name(spec), spec, scenario)
    run_dir = workdir_lib.RunDir(spec)
    # a bare model.keras has no scenario to check; a run's config.json is read once
    trained = run_dir.settings["scenario"] if os.path.isfile(run_dir.file("config.json")) else None
    if trained:
        workdir_lib.check_grid_change(trained, scenario, off_distribution)
    if trained and trained["carrier"]["num_prb"] != scenario.carrier.num_prb:
        model, _ = saved.model_on_grid(run_dir, scenario, off_distribution=off_distribution)  # any PRB count
    else:
        import tf_keras as keras
        model = keras.models.load_model(run_dir.file(MODEL_FILENAME), compile=False)
    return KerasReceiver(receiver_name(spec), model, scenario)
