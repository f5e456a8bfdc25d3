"""Reads a .tflite flatbuffer into plain Python data, with the `tflite` parser (no TensorFlow).

  model = flatbuffer.read("student_int8.tflite")
  model["operators"][0] == {"index": 0, "op": "CONV_2D", "version": 3, "inputs": [...],
                            "outputs": [...], "options": {"dilation": (1, 1), ...}}
"""

import os

import tflite

TENSOR_TYPES = {value: name for name, value in vars(tflite.TensorType).items() if name.isupper()}
_CONV_OPTIONS = {"CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions}


class FlatbufferError(ValueError):
    """Not a readable TFLite model."""


def _tensor(subgraph, model, index):
    tensor = subgraph.Tensors(index)
    quantization = tensor.Quantization()
    scale = zero_point = None
    if quantization is not None and quantization.ScaleLength():
        scales, zero_points = quantization.ScaleAsNumpy(), quantization.ZeroPointAsNumpy()
        scale = float(scales[0]) if len(scales) == 1 else [float(s) for s in scales]
        zero_point = int(zero_points[0]) if len(zero_points) == 1 else [int(z) for z in zero_points]
    buffer = model.Buffers(tensor.Buffer())
    constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
    return {"index": index, "name": tensor.Name().decode(), "type": TENSOR_TYPES.get(tensor.Type(), "UNKNOWN"),
            "shape": [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else [],
            "scale": scale, "zero_point": zero_point, "constant": bool(constant)}


def _options(op_name, operator):
    if op_name not in _CONV_OPTIONS:
        return {}
    table = operator.BuiltinOptions()
    options = _CONV_OPTIONS[op_name]()
    options.Init(table.Bytes, table.Pos)
    return {"dilation": (int(options.DilationHFactor()), int(options.DilationWFactor())),
            "stride": (int(options.StrideH()), int(options.StrideW()))}


def read(path):
    """{"operators": [...], "tensors": {index: tensor}, "inputs": [...], "outputs": [...]}
    of the first subgraph. Raises FlatbufferError for a missing, truncated or foreign file."""
    if not os.path.isfile(path):
        raise FlatbufferError(f"no model file at {path}")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise FlatbufferError(f"{path} is not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        subgraph = model.Subgraphs(0)
        tensors = {i: _tensor(subgraph, model, i) for i in range(subgraph.TensorsLength())}
        operators = []
        for i in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(i)
            code = model.OperatorCodes(operator.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == tflite.BuiltinOperator.CUSTOM:
                name = "CUSTOM:" + code.CustomCode().decode()
            else:
                name = tflite.opcode2name(builtin)
            operators.append({"index": i, "op": name, "version": int(code.Version()),
                              "inputs": [int(t) for t in operator.InputsAsNumpy() if t >= 0],
                              "outputs": [int(t) for t in operator.OutputsAsNumpy()],
                              "options": _options(name, operator)})
        inputs = [tensors[int(i)] for i in subgraph.InputsAsNumpy()]
        outputs = [tensors[int(i)] for i in subgraph.OutputsAsNumpy()]
    except (IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise FlatbufferError(f"{path} is a damaged TFLite model ({type(error).__name__}: {error})") from None
    return {"operators": operators, "tensors": tensors, "inputs": inputs, "outputs": outputs}


def summary(path):
    """Input and output quantization, and the count of tensors of each type."""
    model = read(path)
    types = {}
    for tensor in model["tensors"].values():
        types[tensor["type"]] = types.get(tensor["type"], 0) + 1

    def io(tensor):
        return {"name": tensor["name"], "dtype": tensor["type"].lower(), "shape": tensor["shape"],
                "scale": tensor["scale"], "zero_point": tensor["zero_point"]}
    return {"input": io(model["inputs"][0]), "output": io(model["outputs"][0]), "tensor_types": types}
