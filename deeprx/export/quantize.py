"""Full-integer int8 (or float) TFLite export of a trained DeepRx, flag-free: PTQ, QAT and
the float twin (python -m deeprx.quantize is its command and describes the choices)."""

import dataclasses
import os
import time

import numpy as np

from deeprx.core import config as config_lib
from deeprx.core.config import SettingError
from deeprx.core import workdir as workdir_lib
from deeprx.core import provenance as provenance_lib
from deeprx.export import int8
from deeprx.network import model as model_lib
from deeprx.core import io as io_lib
from deeprx.network import saved


METHODS = ("ptq", "qat", "float")
# Calibrate (PTQ) and fine-tune (QAT) on the evaluation grid's SINR points from here up: the
# slots where BER 1e-2..1e-3 lies. On the whole demo grid (-4..24 dB) the low-SINR slots' noise
# set the int8 ranges and cost the edge-cpu student 0.93 dB at BER 1e-2; from 10 dB, 0.42 dB
# (data/results/edge-cpu-calibration). Any value at or below the grid's first point: the whole grid.
DEFAULT_CALIBRATION_MIN_SINR_DB = 10.0


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    method: str = "ptq"
    calibration_slots: int = 256
    qat_steps: int = 300
    qat_batch_size: int = 16
    qat_learning_rate: float = 1e-4
    seed: int = 7
    calibration_min_sinr_db: float = DEFAULT_CALIBRATION_MIN_SINR_DB

    def __post_init__(self):
        if self.method not in METHODS:
            raise SettingError("method", f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("calibration_slots", "qat_steps", "qat_batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(name, f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.qat_learning_rate > 0:
            raise SettingError("qat_learning_rate", f"qat_learning_rate must be positive, got {self.qat_learning_rate}")


def calibration_grid(sinr_grid, min_sinr_db):
    """The SINR points the calibration slots come from: those of `sinr_grid` from `min_sinr_db`
    up; ValueError if none is left."""
    grid = [s for s in sinr_grid if s >= min_sinr_db]
    if not grid:
        raise SettingError("calibration_min_sinr_db", f"calibration_min_sinr_db {min_sinr_db:g} is above the whole SINR grid "
                         f"({sinr_grid[0]:g}..{sinr_grid[-1]:g} dB): lower it")
    return grid


def calibration_slots(scenario, sinr_grid, count, seed):
    """`count` float slots [1, 14, K, C] of the training channels, cycling over `sinr_grid`."""
    from deeprx.simulation import data as data_lib
    generator = data_lib.SlotGenerator(scenario, "train")
    per_point = max(1, -(-count // len(sinr_grid)))
    slots = []
    for index, sinr_db in enumerate(sinr_grid):
        batch = generator(per_point, data_lib.slot_seed("calibration", seed, index), sinr_db=sinr_db)
        slots.extend(np.split(batch.inputs.numpy(), per_point))
    order = np.random.RandomState(seed).permutation(len(slots))[:count]
    return [slots[i] for i in order]


def quantize_config():
    """A tfmot QuantizeConfig for a stand-alone BatchNormalization: no weight quantizers
    (BN becomes a per-channel MUL + ADD), an 8-bit moving-average quantizer on its output."""
    import tensorflow_model_optimization as tfmot

    class OutputOnlyQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [tfmot.quantization.keras.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return OutputOnlyQuantizeConfig


def qat_model(model):
    """`model` wrapped for quantization-aware training."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    tfq = tfmot.quantization.keras
    config_class = quantize_config()

    def annotate(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return tfq.quantize_annotate_layer(layer, quantize_config=config_class())
        return tfq.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with tfq.quantize_scope({config_class.__name__: config_class}):
        quantized = tfq.quantize_apply(annotated)
    # Fine-tune with frozen batch statistics: a non-trainable BatchNormalization runs in
    # inference mode, so the short fine-tune adapts weights to the quantizers without
    # re-estimating BN on small batches.
    for layer in quantized.layers:
        if isinstance(getattr(layer, "layer", None), keras.layers.BatchNormalization):
            layer.layer.trainable = False
    return quantized


# The names tfmot gives an activation quantizer's range variables (QuantizeLayer: the input's;
# a wrapper: its layer's output, after the activation for a conv).
ACTIVATION_RANGES = ("quantize_layer", "output", "post_activation")


def calibrate_ranges(quantized, model, slots, batch_size=32):
    """Sets the activation quantizers' ranges of `quantized` (qat_model(model)) to the min and
    max (0 included) of `model`'s tensors on `slots`, as PTQ's calibration sets them. tfmot
    starts them at -6..6 and moves them by an EMA of decay 0.999 per training step: after a
    300-step fine-tune they would still be 74% their initial value (the edge-cpu student's QAT
    export clipped its LLRs at +-6.4)."""
    import tf_keras as keras
    names = [layer.name for layer in model.layers[1:]]
    probe = keras.Model(model.inputs, [model.inputs[0]] + [model.get_layer(name).output for name in names])
    low, high = {}, {}
    for start in range(0, len(slots), batch_size):
        outputs = probe(np.concatenate(slots[start:start + batch_size]), training=False)
        for name, value in zip(["inputs"] + names, outputs):
            low[name] = min(low.get(name, 0.0), float(np.min(value)))
            high[name] = max(high.get(name, 0.0), float(np.max(value)))
    bounds = {f"{kind}_{bound}": values for kind in ACTIVATION_RANGES for bound, values in (("min", low), ("max", high))}
    for layer in quantized.layers:
        source = layer.layer.name if hasattr(layer, "layer") else "inputs"
        for variable in layer.non_trainable_variables:
            name = variable.name.split("/")[-1].split(":")[0]
            if name in bounds:
                variable.assign(bounds[name][source])


def fine_tune(model, scenario, export_config, sinr_range, log=print):
    """A short constant-learning-rate fine-tune with the training loss, on training slots of
    SINR drawn uniformly from `sinr_range` (dB): the calibration's, so that the quantizers'
    moving-average ranges fit the same slots as PTQ's calibration."""
    import tempfile
    from deeprx.network import training
    train_config = config_lib.TrainConfig(steps=export_config.qat_steps, batch_size=export_config.qat_batch_size,
                                          learning_rate=export_config.qat_learning_rate, warmup_steps=0,
                                          final_lr_fraction=1.0, checkpoint_every=export_config.qat_steps,
                                          log_every=max(1, export_config.qat_steps // 5), seed=export_config.seed,
                                          sinr_sampling="sinr", train_sinr_db=tuple(sinr_range))
    with tempfile.TemporaryDirectory() as workdir:
        return training.Trainer(model, scenario, train_config, workdir, log=log).fit()


# The file a method writes, after the model's name: student_int8.tflite (PTQ, the default),
# student_int8_qat.tflite, student_float.tflite.
FILE_SUFFIXES = {"ptq": "int8", "qat": "int8_qat", "float": "float"}


def output_path(out_dir, model_spec, method):
    """Where `python -m deeprx.quantize --model=MODEL_SPEC --method=METHOD --out=OUT_DIR` writes."""
    return os.path.join(out_dir, f"{workdir_lib.RunDir(model_spec).name}_{FILE_SUFFIXES[method]}.tflite")


def export(model_dir, preset_name, scenario, sinr_grid, export_config, out, log=print, command=None):
    """Writes `out` (.tflite) and its .json (with `command`, the command line that made it);
    returns the metadata dict."""
    import tensorflow as tf
    run_dir = workdir_lib.RunDir(model_dir)
    trained_scenario_dict = run_dir.settings["scenario"]
    start = time.time()
    representative, grid = [], []
    if export_config.method != "float":
        grid = calibration_grid(sinr_grid, export_config.calibration_min_sinr_db)
        representative = calibration_slots(scenario, grid, export_config.calibration_slots, export_config.seed)
        log(f"{len(representative)} calibration slots over SINR {grid[0]:g}..{grid[-1]:g} dB", flush=True)
    # The export graph writes each depthwise conv of depth multiplier > 1 as a tiled input and
    # a multiplier-1 depthwise conv: the same function, 13x faster in int8 (model.expanded).
    if export_config.method == "qat":
        model, model_config = saved.model_on_grid(run_dir, scenario, name="deeprx")
        float_graph = model_lib.expanded(model, model_config, scenario)
        model = qat_model(float_graph)
        calibrate_ranges(model, float_graph, representative)
        log(f"QAT: fine-tuning {export_config.qat_steps} steps of {export_config.qat_batch_size} slots "
            f"at learning rate {export_config.qat_learning_rate:g}, SINR {grid[0]:g}..{grid[-1]:g} dB", flush=True)
        fine_tune(model, scenario, export_config, (grid[0], grid[-1]), log)
        batch1 = qat_model(model_lib.build(model_config, scenario, name="deeprx", batch_size=1,
                                           inference_graph=True))
        batch1.set_weights(model.get_weights())
    else:
        model, model_config = saved.model_on_grid(run_dir, scenario, name="deeprx")
        batch1 = model_lib.expanded(model, model_config, scenario, batch_size=1)
    tflite = int8.convert(batch1, None if export_config.method == "float" else representative)
    io_lib.atomic_write(out, lambda f: f.write(tflite), binary=True)
    from deeprx.export import flatbuffer
    summary = flatbuffer.summary(out)
    meta = {
        "model": os.path.basename(out), "source_model": model_dir if model_dir.startswith(workdir_lib.PRETRAINED_PREFIX) else os.path.abspath(model_dir), "method": export_config.method,
        "preset": preset_name, "scenario": config_lib.to_dict(scenario), "trained_scenario": trained_scenario_dict,
        "grid_shape": list(scenario.grid_shape), "num_input_channels": scenario.num_input_channels,
        "channel_layout": config_lib.CHANNEL_LAYOUT, "modulation": scenario.modulation,
        "bits_per_symbol": scenario.bits_per_symbol, "num_dmrs": scenario.dmrs.num_symbols,
        "model_config": config_lib.to_dict(model_config),
        "flops_per_slot": model_lib.flops_per_slot(model_config, scenario),
        "parameters": model_lib.params(model_config, scenario),
        "input": summary["input"], "output": summary["output"], "tensor_types": summary["tensor_types"],
        "size_bytes": len(tflite), "calibration_slots": len(representative),
        "calibration_sinr_db": [grid[0], grid[-1]] if grid else None,
        "export_config": config_lib.to_dict(export_config), "converter": f"tensorflow {tf.__version__}",
        "seconds": round(time.time() - start, 1), "command": command, **provenance_lib.provenance()}
    io_lib.write_json(os.path.splitext(out)[0] + ".json", meta)
    return meta
