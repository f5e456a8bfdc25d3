"""The models of the kernel-level predictor (deeprx/costs/kernel_predictor.py): the sampled
one-layer models its fit times operator by operator (`fit_space`), and the whole models of the
held-out families it is judged on (`heldout_families`), none of them in the fit."""

import dataclasses
import math

import numpy as np

from deeprx.network import model as model_lib

DILATIONS = ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (2, 4), (3, 6), (4, 8))


@dataclasses.dataclass(frozen=True)
class FitLayer:
    """One sampled layer: kind (conv, depthwise, bn, bn_relu, relu, add, concat) on a 14 x width
    grid."""
    kind: str
    width: int
    channels_in: int
    channels_out: int
    kernel: int = 1
    dilation: tuple = (1, 1)

    @property
    def spec(self):
        """A short, exact description (kernels.csv's `spec`: a resumed fit re-times a layer
        whose spec differs)."""
        return (f"{self.kind} w{self.width} {self.channels_in}->{self.channels_out} k{self.kernel} "
                f"d{self.dilation[0]}x{self.dilation[1]}")

    def keras_model(self, height=14):
        import tf_keras as keras
        from tf_keras import layers
        shape = (height, self.width, self.channels_in)
        inputs = [keras.Input(shape=shape, batch_size=1) for _ in range(2 if self.kind in ("add", "concat") else 1)]
        x = inputs[0]
        if self.kind == "conv":
            x = layers.Conv2D(self.channels_out, self.kernel, padding="same", dilation_rate=self.dilation)(x)
        elif self.kind == "depthwise":
            x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=self.channels_out // self.channels_in,
                                       dilation_rate=self.dilation)(x)
        elif self.kind in ("bn", "bn_relu"):
            bn = layers.BatchNormalization()
            x = bn(x)
            # Random statistics: a BN of the identity's would convert to nothing.
            rng = np.random.RandomState(self.channels_in)
            bn.set_weights([rng.uniform(0.5, 2, self.channels_in), rng.normal(size=self.channels_in),
                            rng.normal(size=self.channels_in), rng.uniform(0.5, 2, self.channels_in)])
            if self.kind == "bn_relu":
                x = layers.ReLU()(x)
        elif self.kind == "relu":
            x = layers.ReLU()(x)
        elif self.kind == "add":
            x = layers.Add()(inputs)
        elif self.kind == "concat":
            x = layers.Concatenate()(inputs)
        else:
            raise ValueError(f"unknown layer kind {self.kind!r}")
        return keras.Model(inputs if len(inputs) > 1 else inputs[0], x)


def _channels(rng, low=4, high=320):
    return int(max(low, 4 * round(math.exp(rng.uniform(math.log(low), math.log(high))) / 4)))


SQUARE_FROM = 720  # the first fit_space layers, drawn as before the square-conv block was added


def fit_space(count, seed=0, widths=(24, 264), high=320):
    """`count` layers sampled (seeded). The first SQUARE_FROM are drawn over kinds, grid widths
    (multiples of 12 in `widths`), channel counts (log-uniform, 4..high), kernel sizes, dilations
    and depth multipliers; 40% of their 3x3 convs are square (channels in = out), the shape conv
    nets repeat: with the two counts drawn apart, 3 of 105 were, and a fit on those missed plain
    ResNets of 3x3 convs (data/results/energy-cpu/kernels, 2026-12-03). Layers beyond are
    square 3x3 convs of 16..128 channels (`square_convs`): with 720 layers the int8 regressor
    still missed those ResNets by -16% at 32 channels and +23% at 64 (2026-12-04). Appending
    keeps the first layers' specs, so a resumed fit times only the new ones."""
    return _mixed_layers(min(count, SQUARE_FROM), seed, widths, high) + \
        square_convs(max(0, count - SQUARE_FROM), seed + 1, widths)


def square_convs(count, seed, widths=(24, 264), low=16, high=128):
    """`count` 3x3 convs with channels in = out (log-uniform, low..high, multiples of 4)."""
    rng = np.random.RandomState(seed)
    layers = []
    for _ in range(count):
        width = 12 * rng.randint(widths[0] // 12, widths[1] // 12 + 1)
        channels = _channels(rng, low, high)
        layers.append(FitLayer("conv", width, channels, channels, kernel=3))
    return layers


def _mixed_layers(count, seed, widths, high):
    rng = np.random.RandomState(seed)
    kinds = ("conv1x1", "conv3x3", "depthwise", "depthwise", "bn", "bn_relu", "relu", "add", "concat")
    weights = np.array([4, 3, 3, 3, 1, 2, 1, 2, 1], float)
    layers = []
    while len(layers) < count:
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        width = 12 * rng.randint(widths[0] // 12, widths[1] // 12 + 1)
        c = _channels(rng, high=high)
        if kind == "conv1x1":
            layers.append(FitLayer("conv", width, c, _channels(rng, high=high)))
        elif kind == "conv3x3":
            shape = rng.rand()
            if shape < 0.2:  # a stem: few input channels
                cin, cout = _channels(rng, 2, high), _channels(rng, high=high)
            elif shape < 0.6:  # square, as in the blocks of a ResNet
                cin = cout = c
            else:
                cin, cout = c, _channels(rng, high=high)
            layers.append(FitLayer("conv", width, cin, cout, kernel=3))
        elif kind == "depthwise":
            dilation = DILATIONS[rng.randint(len(DILATIONS))]
            layers.append(FitLayer("depthwise", width, c, c * (1 + (rng.rand() < 0.3)), 3, dilation))
        else:
            layers.append(FitLayer(kind, width, c, 2 * c if kind == "concat" else c))
    return layers


def context_models(count, seed=1, widths=(24, 264), height=14):
    """2 x `count` multi-layer models of the fit space's operators (seeded), on which the fit
    measures what running inside a whole model adds to the operators' times alone (the context
    factor): `count` residual chains and `count` pre-activation chains. None is a held-out
    model: kinds, grids, channel counts and dilations are drawn as the fit's layers are."""
    return residual_chains(count, seed, widths, height) + preactivation_chains(count, seed + 1, widths, height)


def residual_chains(count, seed, widths=(24, 264), height=14):
    """A 3x3 stem conv from 2..16 channels to C (8..192), 2..5 residual blocks (a dilated
    depthwise conv, depth multiplier 1 or 2, or a 3x3 conv; BN, ReLU; a 1x1 conv back to C;
    the block's input added) and a 1x1 head: BN follows a conv and folds into it."""
    import tf_keras as keras
    from tf_keras import layers
    rng = np.random.RandomState(seed)
    models = []
    for index in range(count):
        width, channels, blocks, inputs, x = _chain_start(rng, widths, height, max_blocks=5)
        for _ in range(blocks):
            if rng.rand() < 0.6:
                y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1 + (rng.rand() < 0.3),
                                           dilation_rate=DILATIONS[rng.randint(len(DILATIONS))])(x)
            else:
                y = layers.Conv2D(channels, 3, padding="same")(x)
            y = layers.Conv2D(channels, 1)(layers.ReLU()(layers.BatchNormalization()(y)))
            x = layers.Add()([x, y])
        x = layers.Conv2D(_channels(rng, 2, 16), 1)(layers.ReLU()(x))
        model = keras.Model(inputs, x, name=f"chain{index}")
        models.append((f"chain {index}: {channels} ch x {blocks} blocks on 14 x {width}", model, model))
    return models


def preactivation_chains(count, seed, widths=(24, 264), height=14):
    """A 3x3 stem conv from 2..16 channels to C (8..192), 2..11 pre-activation residual blocks
    of depthwise-separable units (twice: BN, ReLU, a dilated 3x3 depthwise conv, a 1x1 conv;
    the block's input added; the ResNet-v2 / MobileNet block shape) and a BN-ReLU-1x1 head. A
    BN after an add cannot fold into a conv: it runs as its own multiply and add, as in
    pre-activation receivers. BN statistics are drawn, so none folds to the identity."""
    import tf_keras as keras
    from tf_keras import layers
    rng = np.random.RandomState(seed)
    models = []
    for index in range(count):
        width, channels, blocks, inputs, x = _chain_start(rng, widths, height, max_blocks=11)
        for _ in range(blocks):
            y = x
            dilation = DILATIONS[rng.randint(len(DILATIONS))]
            for _ in range(2):
                y = layers.ReLU()(layers.BatchNormalization()(y))
                y = layers.DepthwiseConv2D(3, padding="same", dilation_rate=dilation)(y)
                y = layers.Conv2D(channels, 1)(y)
            x = layers.Add()([x, y])
        x = layers.Conv2D(_channels(rng, 2, 16), 1)(layers.ReLU()(layers.BatchNormalization()(x)))
        model = keras.Model(inputs, x, name=f"preact{index}")
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.set_weights([w + rng.rand(*w.shape).astype("float32") for w in layer.get_weights()])
        models.append((f"preact {index}: {channels} ch x {blocks} blocks on 14 x {width}", model, model))
    return models


def _chain_start(rng, widths, height, max_blocks):
    """A context chain's drawn grid width, channels C (8..192) and blocks (2..max_blocks), its
    input (2..16 channels) and its 3x3 stem conv to C."""
    import tf_keras as keras
    from tf_keras import layers
    width = 12 * rng.randint(widths[0] // 12, widths[1] // 12 + 1)
    channels, blocks = _channels(rng, 8, 192), rng.randint(2, max_blocks + 1)
    inputs = keras.Input(shape=(height, width, _channels(rng, 2, 16)), batch_size=1)
    return width, channels, blocks, inputs, layers.Conv2D(channels, 3, padding="same")(inputs)


def plain_resnet(scenario, channels, blocks, name):
    """A receiver-sized ResNet of standard 3x3 convs (conv-BN-ReLU-conv-BN + skip, ReLU): the
    other conv-net family of the held-out set."""
    import tf_keras as keras
    from tf_keras import layers
    height, width = scenario.grid_shape
    inputs = keras.Input(shape=(height, width, scenario.num_input_channels), batch_size=1)
    x = layers.Conv2D(channels, 3, padding="same")(inputs)
    for _ in range(blocks):
        y = layers.Conv2D(channels, 3, padding="same")(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(channels, 3, padding="same")(y))
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Conv2D(scenario.bits_per_symbol, 1)(x)
    return keras.Model(inputs, x, name=name)


def heldout_families(scenario, widths, num_prbs, resnets):
    """{family: [(name, Keras model, the Keras model its TFLite export converts)]}: (a) DeepRx
    paper and edge variants at `widths`; (b) width 0.5 on other grids (`num_prbs`); (c) plain
    ResNets, (channels, blocks) each of `resnets`. DeepRx exports with its depthwise convs
    expanded, as python -m deeprx.quantize does."""

    def deeprx(model_config, on):
        keras_model = model_lib.build(model_config, on, batch_size=1)
        return keras_model, model_lib.expanded(keras_model, model_config, on, batch_size=1)

    def grid(num_prb):
        return dataclasses.replace(scenario, carrier=dataclasses.replace(scenario.carrier, num_prb=num_prb))

    families = {"deeprx_widths": [], "deeprx_grids": [], "plain_resnet": []}
    for variant in model_lib.VARIANTS:
        for width in widths:
            families["deeprx_widths"].append((f"{variant} x{width:g}", *deeprx(
                model_lib.DeepRxConfig(width_multiplier=width, variant=variant), scenario)))
        for num_prb in num_prbs:
            families["deeprx_grids"].append((f"{variant} x0.5 {num_prb} PRB", *deeprx(
                model_lib.DeepRxConfig(width_multiplier=0.5, variant=variant), grid(num_prb))))
    for channels, blocks in resnets:
        model = plain_resnet(scenario, channels, blocks, f"resnet{channels}x{blocks}")
        families["plain_resnet"].append((f"resnet {channels} ch x {blocks} blocks", model, model))
    return families
