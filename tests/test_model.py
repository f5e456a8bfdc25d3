import numpy as np
import pytest

from deeprx.core import config

from deeprx.network import model


@pytest.mark.parametrize("variant", model.VARIANTS)
def test_output_shape_of_each_variant(tiny, variant):
    cfg = model.DeepRxConfig(width_multiplier=0.25, variant=variant)
    keras_model = model.build(cfg, tiny)
    inputs = np.random.default_rng(0).normal(size=(2, 14, 24, tiny.num_input_channels)).astype(np.float32)
    assert keras_model(inputs).shape == (2, 14, 24, tiny.bits_per_symbol)
    dilations = {tuple(layer.dilation_rate) for layer in keras_model.layers if "depthwise" in layer.name}
    if variant == "edge":
        assert all(t == f for t, f in dilations) and (6, 6) in dilations
    else:
        assert dilations == {(1, 1), (2, 3), (3, 6)}


@pytest.mark.parametrize("multiplier", [1.0, 0.3])
def test_plan_parameters_equal_the_keras_model(tiny, multiplier):
    cfg = model.DeepRxConfig(width_multiplier=multiplier)
    assert model.params(cfg, tiny) == model.build(cfg, tiny).count_params()


def test_full_deeprx_has_the_reference_size():
    paper = config.get_preset("paper").scenario
    cfg = model.DeepRxConfig()
    assert model.params(cfg, paper) == pytest.approx(1.23e6, rel=0.01)   # repro: about 1.23 M
    assert model.flops_per_slot(cfg, paper) == pytest.approx(10e9, rel=0.1)  # PAPER.md: about 10 GFLOPs


def test_flops_of_one_block_equal_a_hand_count(tiny):
    # block3: 64 -> 128 channels, depth multiplier 2, on a 14 x 24 grid.
    hw = 14 * 24
    projection = 2 * hw * 64 * 128 + hw * 128
    unit1 = 2 * hw * 64 + hw * 64 + 2 * hw * 9 * 128 + (2 * hw * 128 * 128 + hw * 128)
    unit2 = 2 * hw * 128 + hw * 128 + 2 * hw * 9 * 256 + (2 * hw * 256 * 128 + hw * 128)
    add = hw * 128
    costs = {c["block"]: c for c in model.block_costs(model.DeepRxConfig(), tiny)}
    assert costs["block3"]["flops"] == projection + unit1 + unit2 + add
    assert costs["block3"]["params"] == (64 * 128 + 128) + (4 * 64 + 9 * 128 + 128 * 128 + 128) \
        + (4 * 128 + 9 * 256 + 256 * 128 + 128)



def _keras_flops(keras_model):
    """FLOPs per slot counted from the built Keras graph (each layer's type, configuration and
    shapes), not from the plan the model is built from: a multiply-add is 2, a bias, ReLU or
    residual add 1 per element, batch norm 2 per element."""
    total = 0
    for layer in keras_model.layers[1:]:  # after the input
        kind, out = type(layer).__name__, layer.output_shape
        hw, channels_in = out[1] * out[2], (layer.input_shape[0] if kind == "Add" else layer.input_shape)[-1]
        if kind in ("Conv2D", "DepthwiseConv2D"):
            kh, kw = layer.kernel_size
            outputs = layer.filters if kind == "Conv2D" else channels_in * layer.depth_multiplier
            per_output = channels_in if kind == "Conv2D" else 1
            total += 2 * hw * kh * kw * per_output * outputs + (hw * outputs if layer.use_bias else 0)
        elif kind == "BatchNormalization":
            total += 2 * hw * out[-1]
        else:
            assert kind in ("ReLU", "Add"), kind
            total += hw * out[-1]
    return total


@pytest.mark.parametrize("config", [model.DeepRxConfig(), model.DeepRxConfig(width_multiplier=0.3, variant="edge")])
def test_flops_per_slot_equal_a_count_of_the_built_keras_graph(tiny, config):
    assert model.flops_per_slot(config, tiny) == _keras_flops(model.build(config, tiny))


@pytest.mark.parametrize("fraction", [11 / 30, 0.1, 0.5, 2.0])
def test_flop_budget_sizing_lands_within_ten_percent(fraction):
    scenario = config.get_preset("cpu").scenario
    teacher = model.DeepRxConfig()
    budget = fraction * model.flops_per_slot(teacher, scenario)
    student = model.size_for_flops(teacher, scenario, budget)
    assert model.flops_per_slot(student, scenario) == pytest.approx(budget, rel=0.10)
    assert student.variant == teacher.variant and student.widths == teacher.widths


def test_flop_budget_below_the_smallest_model_is_rejected(tiny):
    with pytest.raises(ValueError, match="below the smallest"):
        model.size_for_flops(model.DeepRxConfig(), tiny, 1e3)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(widths=(64, 64), dilations=((1, 1),)), "one entry per block"),
    (dict(width_multiplier=0.0), "width_multiplier"),
    (dict(depth_multiplier=0), "depth_multiplier"),
    (dict(variant="tpu"), "variant"),
])
def test_bad_model_configs(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        model.DeepRxConfig(**kwargs)


@pytest.mark.parametrize("depth_multiplier", [1, 2, 3])
def test_expanded_inference_graph_computes_the_same_function(tiny, depth_multiplier):
    """The export graph (input tiled + depth-multiplier-1 depthwise, permuted 1x1 rows, unit
    2's BN and ReLU merged into unit 1's 1x1 conv) gives the trained model's logits, with non-trivial
    BN statistics and distinct kernels."""
    import tf_keras as keras
    model_config = model.DeepRxConfig(width_multiplier=0.125, depth_multiplier=depth_multiplier)
    original = model.build(model_config, tiny)
    rng = np.random.RandomState(depth_multiplier)
    original.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in original.get_weights()])
    copy = model.expanded(original, model_config, tiny, batch_size=2)
    kinds = {type(layer).__name__ for layer in copy.layers}
    assert ("Concatenate" in kinds) == (depth_multiplier > 1)
    merged = model.fused_into_conv(model.plan(model_config, tiny))
    assert len(merged) == 2 * len(model_config.block_widths)  # unit 2's BN and ReLU in every block
    assert not merged.keys() & {layer.name for layer in copy.layers}
    assert {copy.get_layer(conv).activation.__name__ for conv in merged.values()} == {"relu"}
    assert all(layer.depth_multiplier == 1 for layer in copy.layers
               if isinstance(layer, keras.layers.DepthwiseConv2D))
    x = rng.normal(size=(2, *tiny.grid_shape, tiny.num_input_channels)).astype(np.float32)
    expected = original(x, training=False).numpy()
    np.testing.assert_allclose(copy(x, training=False).numpy(), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
