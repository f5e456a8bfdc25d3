"""Checks a .tflite file's structure before an interpreter sees it (runs on the device).

Python 3.7 syntax, standard library only. tflite-runtime 2.14 under numpy 1.26 (the board's
runtime family) dies with a segmentation fault on a truncated model, e.g. the first 5,000
bytes of a student left by an interrupted copy; LiteRT rejects the same file. So the runner
walks the flatbuffer first: every table, vector and string the interpreter will read must
lie inside the file, every buffer's external data too, and every index (tensor, buffer,
operator code) must point at something that exists. A flatbuffer is written back to front,
so a truncated file loses the objects written first (weights, tensors), which the tables at
the front still reference: this walk finds them. Field numbers are those of TFLite's
schema.fbs (Model, SubGraph, Tensor, Operator, OperatorCode, Buffer).
"""

import struct

TFLITE_IDENTIFIER = b"TFL3"


class ModelFileError(Exception):
    """The file is not a whole TFLite model: one line, saying what is wrong."""


class _Reader(object):
    def __init__(self, data):
        self.data = data

    def _need(self, position, size, what):
        if position < 0 or position + size > len(self.data):
            raise ModelFileError("%s lies outside the file (byte %d of %d)" % (what, position + size, len(self.data)))

    def scalar(self, fmt, position, what):
        self._need(position, struct.calcsize(fmt), what)
        return struct.unpack_from("<" + fmt, self.data, position)[0]

    def table(self, position, what):
        """(position, vtable entries) of the table at `position`."""
        vtable = position - self.scalar("i", position, what)
        vtable_size = self.scalar("H", vtable, what + "'s vtable")
        if vtable_size < 4 or vtable_size % 2:
            raise ModelFileError("%s has a malformed vtable" % what)
        self._need(vtable, vtable_size, what + "'s vtable")
        fields = struct.unpack_from("<%dH" % ((vtable_size - 4) // 2), self.data, vtable + 4)
        return position, fields

    def field(self, table, index):
        """Absolute position of field `index` of `table`, or None if absent."""
        position, fields = table
        return position + fields[index] if index < len(fields) and fields[index] else None

    def value(self, table, index, fmt, what, default=0):
        position = self.field(table, index)
        return default if position is None else self.scalar(fmt, position, what)

    def vector(self, table, index, element_size, what):
        """(start, length) of a vector field, checked to lie in the file; (0, 0) if absent."""
        position = self.field(table, index)
        if position is None:
            return 0, 0
        start = position + self.scalar("I", position, what)
        length = self.scalar("I", start, what)
        self._need(start + 4, length * element_size, what)
        return start + 4, length

    def tables(self, table, index, what):
        start, length = self.vector(table, index, 4, what)
        return [self.table(start + 4 * i + self.scalar("I", start + 4 * i, what), "%s %d" % (what, i))
                for i in range(length)]

    def ints(self, table, index, what):
        start, length = self.vector(table, index, 4, what)
        return struct.unpack_from("<%di" % length, self.data, start) if length else ()


def check(data, name="the model"):
    """Raises ModelFileError unless `data` (bytes of a .tflite) is a whole TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError("%s is not a TFLite model (no TFL3 flatbuffer identifier)" % name)
    reader = _Reader(data)
    model = reader.table(reader.scalar("I", 0, "the root table"), "the model table")
    codes = reader.tables(model, 1, "operator code")
    buffers = reader.tables(model, 4, "buffer")
    for i, buffer in enumerate(buffers):
        reader.vector(buffer, 0, 1, "buffer %d's data" % i)
        offset = reader.value(buffer, 1, "Q", "buffer %d's offset" % i)
        size = reader.value(buffer, 2, "Q", "buffer %d's size" % i)
        if offset > 1 and offset + size > len(data):
            raise ModelFileError("buffer %d's data lies outside the file (byte %d of %d)"
                                 % (i, offset + size, len(data)))
    subgraphs = reader.tables(model, 2, "subgraph")
    if not subgraphs:
        raise ModelFileError("%s has no subgraph" % name)
    for subgraph in subgraphs:
        tensors = reader.tables(subgraph, 0, "tensor")
        for i, tensor in enumerate(tensors):
            reader.vector(tensor, 0, 4, "tensor %d's shape" % i)
            if reader.value(tensor, 2, "I", "tensor %d's buffer" % i) >= max(len(buffers), 1):
                raise ModelFileError("tensor %d refers to a buffer that does not exist" % i)
        indices = list(reader.ints(subgraph, 1, "subgraph inputs")) + list(reader.ints(subgraph, 2, "subgraph outputs"))
        for i, operator in enumerate(reader.tables(subgraph, 3, "operator")):
            if reader.value(operator, 0, "I", "operator %d's code" % i) >= len(codes):
                raise ModelFileError("operator %d refers to an operator code that does not exist" % i)
            indices += reader.ints(operator, 1, "operator %d's inputs" % i)
            indices += reader.ints(operator, 2, "operator %d's outputs" % i)
        if any(index >= len(tensors) or index < -1 for index in indices):
            raise ModelFileError("an operator or the subgraph refers to a tensor that does not exist")
