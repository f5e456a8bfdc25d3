"""DeepRx, the fully convolutional ResNet receiver, and its FLOP accounting.

Architecture (PAPER.md section 1; Honkala et al., IEEE TWC 2021):
  input [batch, 14, K, 2(2N+1)]
  -> 3x3 conv to the stem width
  -> ResNet blocks, pre-activation, each twice:
       BN -> ReLU -> dilated depthwise 3x3 (depth multiplier) -> 1x1 conv
     plus the block's input (through a 1x1 projection where the width changes)
  -> BN -> ReLU -> 1x1 conv: one logit per bit of each RE  [batch, 14, K, m]

The architecture is first a plan, a list of `Layer` records in pure Python; the Keras
model is built from the plan, and FLOPs/parameters per layer and per block are counted
on the same plan, so they describe exactly the model that runs. Real-valued, no Sionna.

FLOP conventions, for one slot (one inference): a multiply-accumulate is 2 FLOPs;
bias add 1 per output element; batch normalization at inference 2 per element (scale,
shift); ReLU and residual add 1 per element.
"""

import dataclasses
import math
from typing import List, Optional, Tuple

import numpy as np

from deeprx.core import config as config_lib

PAPER_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 128, 128, 64, 64)
PAPER_DILATIONS = ((1, 1), (1, 1), (2, 3), (2, 3), (2, 3), (3, 6), (2, 3), (2, 3), (2, 3), (1, 1), (1, 1))
VARIANTS = ("paper", "edge")


@dataclasses.dataclass(frozen=True)
class DeepRxConfig:
    """DeepRx size and shape.

    widths/dilations: one entry per ResNet block, (time, frequency) dilations.
    width_multiplier: scales the stem and every block width (rounded, at least 4).
    variant: "paper" uses `dilations` as given; "edge" makes every dilation equal in
      time and frequency (the larger of the two), as the Edge TPU compiler requires.
    """
    widths: Tuple[int, ...] = PAPER_WIDTHS
    dilations: Tuple[Tuple[int, int], ...] = PAPER_DILATIONS
    stem_width: int = 64
    width_multiplier: float = 1.0
    depth_multiplier: int = 2
    variant: str = "paper"

    def __post_init__(self):
        if not self.widths or len(self.widths) != len(self.dilations):
            raise ValueError(f"widths and dilations need one entry per block, got {len(self.widths)} "
                             f"and {len(self.dilations)}")
        if any(not isinstance(w, int) or w < 1 for w in (*self.widths, self.stem_width)):
            raise ValueError(f"widths must be positive integers, got {self.widths}")
        if any(len(d) != 2 or min(d) < 1 for d in self.dilations):
            raise ValueError(f"dilations must be (time, frequency) pairs >= 1, got {self.dilations}")
        if not self.width_multiplier > 0:
            raise ValueError(f"width_multiplier must be positive, got {self.width_multiplier}")
        if not isinstance(self.depth_multiplier, int) or self.depth_multiplier < 1:
            raise ValueError(f"depth_multiplier must be a positive integer, got {self.depth_multiplier}")
        if self.variant not in VARIANTS:
            raise ValueError(f"model variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")

    def scaled(self, width: int) -> int:
        return max(4, int(round(width * self.width_multiplier)))

    @property
    def block_widths(self) -> Tuple[int, ...]:
        return tuple(self.scaled(w) for w in self.widths)

    @property
    def block_dilations(self) -> Tuple[Tuple[int, int], ...]:
        if self.variant == "edge":
            return tuple((max(d), max(d)) for d in self.dilations)
        return tuple(tuple(d) for d in self.dilations)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of the plan, with the grid it runs on (height = symbols, width = subcarriers)."""
    name: str
    kind: str            # conv, depthwise, bn, relu, add
    block: str           # "stem", "block1".., "head"
    height: int
    width: int
    channels_in: int
    channels_out: int
    kernel: int = 1
    dilation: Tuple[int, int] = (1, 1)
    use_bias: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates of a conv or depthwise layer (0 for the others)."""
        positions = self.height * self.width
        if self.kind == "conv":
            return positions * self.kernel ** 2 * self.channels_in * self.channels_out
        if self.kind == "depthwise":
            return positions * self.kernel ** 2 * self.channels_out
        return 0

    @property
    def flops(self) -> int:
        positions = self.height * self.width
        if self.kind in ("conv", "depthwise"):
            return 2 * self.macs + (positions * self.channels_out if self.use_bias else 0)
        if self.kind == "bn":
            return 2 * positions * self.channels_out
        return positions * self.channels_out  # relu, add

    @property
    def params(self) -> int:
        if self.kind == "conv":
            return self.kernel ** 2 * self.channels_in * self.channels_out + (self.channels_out if self.use_bias else 0)
        if self.kind == "depthwise":
            return self.kernel ** 2 * self.channels_out + (self.channels_out if self.use_bias else 0)
        if self.kind == "bn":
            return 4 * self.channels_out  # gamma, beta, moving mean, moving variance
        return 0


def plan(model_config: DeepRxConfig, scenario: config_lib.ScenarioConfig) -> List[Layer]:
    """The layers of DeepRx for this scenario, in execution order."""
    height, width = scenario.grid_shape
    layers = []

    def add(name, kind, block, cin, cout, **kwargs):
        layers.append(Layer(name, kind, block, height, width, cin, cout, **kwargs))

    channels = model_config.scaled(model_config.stem_width)
    add("stem_conv", "conv", "stem", scenario.num_input_channels, channels, kernel=3, use_bias=True)
    dm = model_config.depth_multiplier
    for index, (out, dilation) in enumerate(zip(model_config.block_widths, model_config.block_dilations)):
        block = f"block{index + 1}"
        if out != channels:
            add(f"{block}_projection", "conv", block, channels, out, use_bias=True)
        cin = channels
        for unit in (1, 2):
            add(f"{block}_bn{unit}", "bn", block, cin, cin)
            add(f"{block}_relu{unit}", "relu", block, cin, cin)
            add(f"{block}_depthwise{unit}", "depthwise", block, cin, cin * dm, kernel=3, dilation=dilation)
            add(f"{block}_pointwise{unit}", "conv", block, cin * dm, out, use_bias=True)
            cin = out
        add(f"{block}_add", "add", block, out, out)
        channels = out
    add("head_bn", "bn", "head", channels, channels)
    add("head_relu", "relu", "head", channels, channels)
    add("head_conv", "conv", "head", channels, scenario.bits_per_symbol, use_bias=True)
    return layers


def flops_per_slot(model_config, scenario) -> int:
    return sum(layer.flops for layer in plan(model_config, scenario))


def params(model_config, scenario) -> int:
    return sum(layer.params for layer in plan(model_config, scenario))


def block_costs(model_config, scenario) -> List[dict]:
    """FLOPs and parameters per block ("stem", "block1".., "head"), in order."""
    costs = {}
    for layer in plan(model_config, scenario):
        entry = costs.setdefault(layer.block, {"block": layer.block, "flops": 0, "params": 0})
        entry["flops"] += layer.flops
        entry["params"] += layer.params
    return list(costs.values())


def size_for_flops(model_config: DeepRxConfig, scenario, target_flops: float) -> DeepRxConfig:
    """The config with the width multiplier whose model lands closest to `target_flops`
    per slot (bisection on the multiplier, then the best of the neighbouring widths)."""
    if not target_flops > 0:
        raise ValueError(f"the FLOP budget must be positive, got {target_flops}")

    def at(multiplier):
        return dataclasses.replace(model_config, width_multiplier=multiplier)

    low, high = 1e-3, 64.0
    smallest = flops_per_slot(at(low), scenario)
    if target_flops <= smallest:
        raise ValueError(f"a FLOP budget of {target_flops:.3g} is below the smallest DeepRx of this "
                         f"shape ({smallest:.3g} FLOPs per slot, every width 4)")
    for _ in range(60):
        middle = math.sqrt(low * high)
        if flops_per_slot(at(middle), scenario) < target_flops:
            low = middle
        else:
            high = middle
    candidates = [at(low), at(high)]
    return min(candidates, key=lambda c: abs(flops_per_slot(c, scenario) - target_flops))


def student_config(teacher_config: DeepRxConfig, scenario, flops_ratio: float, variant=None) -> DeepRxConfig:
    """The KD student of `teacher_config`: its shape (or `variant`), sized to `flops_ratio` x
    the teacher's FLOPs per slot. deeprx.train, the study and the sweep all size students here."""
    shape = dataclasses.replace(teacher_config, variant=variant or teacher_config.variant)
    return size_for_flops(shape, scenario, flops_ratio * flops_per_slot(teacher_config, scenario))


def fused_into_conv(layers: List[Layer]) -> dict:
    """{name: conv name} of the layers the inference graph merges into the 1x1 conv before them:
    the BN (folded into its kernel and bias) and the ReLU (its activation) after each unit's
    first 1x1 conv, whose output only they read. Unit 1's BN reads the block input, which the
    residual add reads too, and the head's the last block's sum: they stay."""
    merged = {}
    for before, layer, after in zip(layers, layers[1:], layers[2:]):
        if layer.kind == "bn" and before.name.endswith("_pointwise1") and after.kind == "relu":
            merged.update({layer.name: before.name, after.name: before.name})
    return merged


def build(model_config: DeepRxConfig, scenario: config_lib.ScenarioConfig, name: str = "deeprx",
          batch_size: Optional[int] = None, synchronized_bn: bool = False, inference_graph: bool = False):
    """The Keras (tf_keras) functional model of the plan: [B, 14, K, C] -> logits [B, 14, K, m]
    (B fixed to `batch_size` if given, as a TFLite export wants). `synchronized_bn`: batch
    statistics over all replicas of a tf.distribute strategy (training on several devices);
    the weights are the same as without. `inference_graph`: the graph of an export (see
    `expanded`)."""
    import tf_keras as keras
    from tf_keras import layers
    height, width = scenario.grid_shape
    inputs = keras.Input(shape=(height, width, scenario.num_input_channels), batch_size=batch_size, name="inputs")
    x = block_input = inputs
    current_block = None
    layers_plan = plan(model_config, scenario)
    merged = fused_into_conv(layers_plan) if inference_graph else {}
    for layer in layers_plan:
        if layer.name in merged:
            continue
        if layer.block != current_block:
            current_block, block_input = layer.block, x
        if layer.name.endswith("_projection"):
            block_input = keras_layer(layer)(block_input)
        elif layer.kind == "add":
            x = keras_layer(layer)([block_input, x])
        elif inference_graph and layer.kind == "depthwise" and layer.channels_out > layer.channels_in:
            copies = layer.channels_out // layer.channels_in
            x = layers.Concatenate(name=f"{layer.name}_tile")([x] * copies)
            x = keras_layer(dataclasses.replace(layer, channels_in=layer.channels_out))(x)
        else:
            relu = layer.name in merged.values()
            x = keras_layer(layer, synchronized_bn, activation="relu" if relu else None)(x)
    return keras.Model(inputs, x, name=name)


def on_grid(model, model_config: DeepRxConfig, scenario: config_lib.ScenarioConfig, name: Optional[str] = None,
            batch_size: Optional[int] = None):
    """A new DeepRx of `model_config` on `scenario`'s grid holding `model`'s weights (the fully
    convolutional network runs on any number of subcarriers)."""
    copy = build(model_config, scenario, name=name or model.name, batch_size=batch_size)
    copy.set_weights(model.get_weights())
    return copy


def expanded(model, model_config: DeepRxConfig, scenario: config_lib.ScenarioConfig,
             batch_size: Optional[int] = None):
    """`model` (a DeepRx of `model_config`) rebuilt for inference, the same function:
    - every depthwise conv of depth multiplier m > 1 written as its input tiled m times (a
      CONCATENATION) followed by a depth-multiplier-1 depthwise conv: output channel c*m + k of
      the original is channel k*C + c of the expanded one, so the kernels and the next 1x1
      conv's input rows are permuted to match, and no reordering op is needed. XNNPACK's int8
      depthwise kernels have no fast path for a multiplier > 1 (25x slower: BUILD_NOTES.md);
    - the BN -> ReLU after each unit's first 1x1 conv merged into that conv (`fused_into_conv`):
      BN folded into its kernel and bias, ReLU its activation, as the TFLite converter merges
      them, so that a QAT model of this graph quantizes the tensors the int8 model has, the
      conv's weights included (BUILD_NOTES.md)."""
    copy = build(model_config, scenario, name=model.name, batch_size=batch_size, inference_graph=True)
    layers_plan = plan(model_config, scenario)
    merged = fused_into_conv(layers_plan)
    permutation = {}
    for layer in layers_plan:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name in merged:
            if layer.kind == "bn":  # folded into the conv's kernel and bias; the ReLU is its activation
                conv = copy.get_layer(merged[layer.name])
                kernel, bias = conv.get_weights()
                gamma, beta, mean, variance = weights
                scale = gamma / np.sqrt(variance + model.get_layer(layer.name).epsilon)
                conv.set_weights([kernel * scale, (bias - mean) * scale + beta])
            continue
        if layer.kind == "depthwise" and layer.channels_out > layer.channels_in:
            copies, channels = layer.channels_out // layer.channels_in, layer.channels_in
            order = [c * copies + k for k in range(copies) for c in range(channels)]
            permutation[layer.name.replace("_depthwise", "_pointwise")] = order
            kernel = weights[0].reshape(*weights[0].shape[:2], layer.channels_out)
            weights[0] = kernel[..., order][..., None]
            if layer.use_bias:
                weights[1] = weights[1][order]
        elif layer.name in permutation:
            weights[0] = weights[0][:, :, permutation[layer.name], :]
        copy.get_layer(layer.name).set_weights(weights)
    return copy


def keras_layer(layer: Layer, synchronized_bn: bool = False, activation=None):
    """The tf_keras layer of one plan `Layer` (an "add" takes a list of two tensors);
    `activation`: a conv's (the inference graph's merged ReLU)."""
    from tf_keras import layers
    if layer.kind == "conv":
        return layers.Conv2D(layer.channels_out, layer.kernel, padding="same", use_bias=layer.use_bias,
                             activation=activation, name=layer.name)
    if layer.kind == "depthwise":
        return layers.DepthwiseConv2D(layer.kernel, padding="same", depth_multiplier=layer.channels_out
                                      // layer.channels_in, dilation_rate=layer.dilation, use_bias=layer.use_bias,
                                      name=layer.name)
    if layer.kind == "bn":
        return layers.BatchNormalization(name=layer.name, synchronized=synchronized_bn)
    if layer.kind == "relu":
        return layers.ReLU(name=layer.name)
    if layer.kind == "add":
        return layers.Add(name=layer.name)
    raise ValueError(f"unknown layer kind {layer.kind!r}")
