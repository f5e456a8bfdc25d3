"""The operators a runtime executes, as rows of what changes their cost (the kernel-level
predictor's inputs, python -m deeprx.kernels): read from a .tflite flatbuffer (float or int8,
after the converter's fusions: a BN after a conv folded into it, a ReLU into the op before)
or from a Keras model's layers (float TensorFlow runs each layer as it is).

A row: op (the TFLite operator, or for a Keras layer CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL,
CONCATENATION, BATCH_NORM, RELU or its class name; the regressor tells OP_TYPES apart),
dtype, output height/width, channels in/out, kernel height/width, dilation (time,
frequency), depth multiplier, inputs (non-constant), and the FLOPs, activation bytes and
weight bytes they imply. `vector(row, threads)` is the regressor's input.

Beside the row's numbers the regressor sees how full the last block of 64 channels is, in
and out (`fill`): CPU kernels work on channels in blocks of a register's or tile's width (64
int8 values are one AVX-512 register, one AMX tile row), and a partly filled block costs as
much as a full one. On the fit's Intel Xeon (AMX), int8 square 3x3 convs ran 1.6 TFLOP/s at
60 channels and 0.52 at 68, a sawtooth of period 64 that trees on the channel counts alone
cannot place between two samples (data/results/energy-cpu/kernels)."""

import math

OP_TYPES = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "CONCATENATION", "BATCH_NORM", "RELU", "OTHER")
NUMERIC = ("height", "width", "channels_in", "channels_out", "kernel_h", "kernel_w", "dilation_h", "dilation_w",
           "depth_multiplier", "inputs")
FEATURE_NAMES = (tuple(f"op={op}" for op in OP_TYPES) + NUMERIC
                 + ("log2_pixels", "log2_flops", "log2_activation_bytes", "log2_weight_bytes", "threads",
                    "channels_in_fill64", "channels_out_fill64"))
DTYPE_BYTES = {"float32": 4, "int8": 1}
# The operator kinds a context factor is fitted for (op_kind): running inside a whole model
# changes their times differently (elementwise operators read tensors written earlier).
CONTEXT_KINDS = ("conv", "depthwise", "elementwise")


def op_kind(row):
    """The context kind of an operator row: conv, depthwise, or elementwise (every other op)."""
    return {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise"}.get(row["op"], "elementwise")


def _row(op, dtype, height, width, channels_in, channels_out, kernel=(1, 1), dilation=(1, 1), inputs=1):
    row = {"op": op, "dtype": dtype, "height": height, "width": width,
           "channels_in": channels_in, "channels_out": channels_out, "kernel_h": kernel[0], "kernel_w": kernel[1],
           "dilation_h": dilation[0], "dilation_w": dilation[1],
           "depth_multiplier": channels_out // channels_in if op == "DEPTHWISE_CONV_2D" else 1, "inputs": inputs}
    row.update(costs(row))
    return row


def costs(row):
    """FLOPs (a multiply-add is 2), activation bytes (inputs read, output written) and weight
    bytes of one operator row."""
    pixels = row["height"] * row["width"]
    taps = row["kernel_h"] * row["kernel_w"]
    if row["op"] == "CONV_2D":
        weights = taps * row["channels_in"] * row["channels_out"] + row["channels_out"]
        flops = 2 * pixels * taps * row["channels_in"] * row["channels_out"]
    elif row["op"] == "DEPTHWISE_CONV_2D":
        weights = taps * row["channels_out"] + row["channels_out"]
        flops = 2 * pixels * taps * row["channels_out"]
    else:
        weights = 2 * row["channels_out"] if row["op"] in ("MUL", "BATCH_NORM") else 0
        flops = pixels * row["channels_out"] * max(row["inputs"], 1)
    size = DTYPE_BYTES.get(row["dtype"], 4)
    activations = pixels * (row["channels_in"] * row["inputs"] + row["channels_out"]) * size
    return {"flops": flops, "activation_bytes": activations, "weight_bytes": weights * size}


def fill(channels, block=64):
    """The share of the last `block` of channels in use: 1.0 for a multiple of `block`."""
    return channels / (block * math.ceil(channels / block))


def vector(row, threads):
    """The regressor's features of one row at `threads` (FEATURE_NAMES, in order)."""
    kind = row["op"] if row["op"] in OP_TYPES else "OTHER"
    return ([float(kind == op) for op in OP_TYPES] + [float(row[name]) for name in NUMERIC]
            + [math.log2(row["height"] * row["width"]), math.log2(row["flops"] + 1),
               math.log2(row["activation_bytes"] + 1), math.log2(row["weight_bytes"] + 1), float(threads),
               fill(row["channels_in"]), fill(row["channels_out"])])


def tflite_ops(path):
    """One row per operator of the .tflite at `path`, in execution order."""
    from deeprx.export import flatbuffer
    model = flatbuffer.read(path)
    tensors = model["tensors"]
    rows = []
    for operator in model["operators"]:
        ins = [tensors[i] for i in operator["inputs"]]
        variables = [t for t in ins if not t["constant"]] or ins[:1]
        out = tensors[operator["outputs"][0]]
        shape = _nhwc(out["shape"])
        dtype = "int8" if out["type"] == "INT8" else "float32"
        channels_in = _nhwc(variables[0]["shape"])[3]
        kernel = (1, 1)
        if operator["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kernel = tuple(ins[1]["shape"][1:3])  # [out, kh, kw, in] and [1, kh, kw, out]
        rows.append(_row(operator["op"], dtype, shape[1], shape[2], channels_in, shape[3], kernel,
                         operator["options"].get("dilation", (1, 1)), len(variables)))
    return rows


def _nhwc(shape):
    """A tensor shape as [N, H, W, C] (a lower-rank one padded on the left with 1s)."""
    shape = [int(d) for d in shape]
    return [1] * (4 - len(shape)) + shape[-4:]


_KERAS_OPS = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "Add": "ADD", "Multiply": "MUL",
              "Concatenate": "CONCATENATION", "BatchNormalization": "BATCH_NORM", "ReLU": "RELU"}


def keras_ops(model):
    """One row per layer of a Keras model (its input layers excluded), in the model's order."""
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
        out = _nhwc([d or 1 for d in layer.output_shape])
        channels_in = _nhwc([d or 1 for d in shapes[0]])[3]
        config = layer.get_config()
        rows.append(_row(_KERAS_OPS.get(kind, kind), "float32", out[1], out[2], channels_in, out[3],
                         tuple(config.get("kernel_size", (1, 1))), tuple(config.get("dilation_rate", (1, 1))),
                         len(shapes)))
    return rows
