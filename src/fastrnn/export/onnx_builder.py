"""The ONNX graph under construction, and the registry of layer emitters.

A ``Builder`` collects nodes, initializers, inputs and outputs, names every value uniquely
under the scope of the layer call being emitted, shares the small constants of the glue
between layers, and keeps each layer's weights as one initializer however many times the
layer is called. ``Tensor`` is a value of the graph as the emitters see it: its ONNX name,
Keras shape, element type and mask. ``MaskSteps`` is what recurrent operators need of a
mask. ``EMITTERS`` maps each exportable layer class to the function that adds its nodes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from onnx import TensorProto, helper, numpy_helper

FLOAT, INT64, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
_INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Tensor:
    """A value of the graph being built: its ONNX name, Keras shape (None where free), ONNX
    element type, and the name of its bool mask ((B, T) for (B, T, F)), or None."""

    name: str
    shape: tuple
    elem: int = FLOAT
    mask: str | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Builder:
    """The ONNX graph under construction: nodes, initializers, inputs and outputs, and names
    made unique under the scope of the layer call being emitted (``call_path``)."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.call_path = ""  # the path of the layer call being emitted (graph.Node.name)
        self._names: set[str] = set()
        self._prefix = ""
        self._consts: dict = {}  # small constants, shared
        self._weights: dict = {}  # (ids of the layers, hint) -> initializer name
        self._steps: dict[str, MaskSteps] = {}  # mask name -> what recurrent layers need of it

    @contextlib.contextmanager
    def scope(self, name: str):
        saved = self._prefix
        self._prefix = f"{saved}{name}/"
        try:
            yield
        finally:
            self._prefix = saved

    def reserve(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"ONNX export: the name {name!r} is used twice (two layers with the same name?)")
        self._names.add(name)
        return name

    def fresh(self, hint: str, scoped=True) -> str:
        base = self._prefix + hint if scoped else hint
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    # -- values -------------------------------------------------------------------------

    def const(self, value, hint="const", dtype=None) -> str:
        """An initializer; weights are named by ``hint`` in the layer's scope, while the small
        constants of the glue (no hint) are shared by all layers and named by their value."""
        array = np.asarray(value, dtype=dtype)
        if hint != "const":
            name = self.fresh(hint)
        else:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._consts:
                return self._consts[key]
            values = "_".join(str(v) for v in array.ravel().tolist())
            kind = array.dtype.name + ("" if array.ndim == 0 else "s")  # int64_0 a scalar, int64s_0 a list
            name = self._consts[key] = self.fresh(f"const/{kind}_{values}", scoped=False)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, owners, hint: str, value) -> str:
        """The initializer of a weight of ``owners`` (a layer, or a tuple of layers whose
        weights are stacked), made on the first call of the layer and shared by the others.
        value: the array, or a function that makes it (called once)."""
        owners = owners if isinstance(owners, tuple) else (owners,)
        key = (tuple(id(layer) for layer in owners), hint)
        if key not in self._weights:
            array = value() if callable(value) else value
            self._weights[key] = self.const(np.asarray(array, np.float32), hint)
        return self._weights[key]

    def ints(self, *values) -> str:
        return self.const(np.array(values, np.int64))

    def scalar(self, value) -> str:
        """A float32 scalar constant."""
        return self.const(np.float32(value))

    def op(self, op_type: str, *inputs: str, outputs=1, hint=None, **attrs):
        """Add a node; returns its output name (a list of them when ``outputs`` > 1)."""
        hint = hint or op_type
        names = [self.fresh(hint if outputs == 1 else f"{hint}_{k}") for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def add_input(self, name: str, elem: int, dims, default=None) -> str:
        """A graph input; with ``default`` (an array) it is optional, that array when not fed."""
        self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(dims)))
        if default is not None:
            self.initializers.append(numpy_helper.from_array(np.asarray(default), name))
        return name

    def add_output(self, name: str, value: str, elem: int, dims, reserved=False) -> None:
        if not reserved:
            self.reserve(name)
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(helper.make_tensor_value_info(name, elem, list(dims)))

    # -- shared glue ----------------------------------------------------------------------

    def transpose(self, x: str, *perm: int) -> str:
        return self.op("Transpose", x, perm=list(perm))

    def unsqueeze(self, x: str, *axes: int) -> str:
        return self.op("Unsqueeze", x, self.ints(*axes))

    def squeeze(self, x: str, *axes: int) -> str:
        return self.op("Squeeze", x, self.ints(*axes))

    def dims(self, x: str, start: int, end=None) -> str:
        """Shape(x)[start:end], int64 (1-D)."""
        attrs = {"start": start} if end is None else {"start": start, "end": end}
        return self.op("Shape", x, hint="shape", **attrs)

    def reduce(self, op_type: str, x: str, axes, keepdims=True, hint=None) -> str:
        """ReduceSum/Mean/Max/... over ``axes``: an input from opset 18 on (13 for ReduceSum),
        an attribute before."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, x, self.ints(*axes), keepdims=int(keepdims), hint=hint)
        return self.op(op_type, x, axes=list(axes), keepdims=int(keepdims), hint=hint)

    def cast(self, x: str, elem: int) -> str:
        return self.op("Cast", x, to=elem)

    def floats(self, x: Tensor) -> Tensor:
        """x as float32 (layers compute in float32; ids and masks given as numbers are cast)."""
        return x if x.elem == FLOAT else Tensor(self.cast(x.name, FLOAT), x.shape, FLOAT, x.mask)

    def where(self, condition: str, x: str, otherwise: float) -> str:
        """Where(condition, x, the float ``otherwise``)."""
        return self.op("Where", condition, x, self.scalar(otherwise))

    def reverse_time(self, x_tm: str) -> str:
        """x_tm: (T, ...) -> the same with the time axis reversed."""
        return self.op("Slice", x_tm, self.ints(-1), self.ints(_INT64_MIN), self.ints(0), self.ints(-1),
                       hint="reversed")

    def gather_steps(self, y_tm: str, index: str) -> str:
        """y_tm: (T, B, H), index: (T, B) int64 -> out[t, b] = y_tm[index[t, b], b]."""
        full = self.op("Expand", self.unsqueeze(index, 2), self.op("Shape", y_tm, hint="shape"))
        return self.op("GatherElements", y_tm, full, axis=0)

    def mask_steps(self, mask: str) -> MaskSteps:
        if mask not in self._steps:
            self._steps[mask] = MaskSteps(self, mask)
        return self._steps[mask]


class MaskSteps:
    """What the recurrent layers need of one (B, T) mask, made once on first use and shared
    by every layer that reads that mask. All (T, B) tensors are time-major."""

    def __init__(self, b: Builder, mask: str):
        self.b, self.mask = b, mask

    @cached_property
    def real(self) -> str:  # (T, B) bool
        return self.b.transpose(self.mask, 1, 0)

    @cached_property
    def real64(self) -> str:  # (T, B) int64: 1 at real steps
        return self.b.cast(self.real, INT64)

    @cached_property
    def count(self) -> str:  # (T, B) int64: real steps at or before t
        return self.b.op("CumSum", self.real64, self.b.const(np.int64(0)), hint="count")

    @cached_property
    def lengths64(self) -> str:  # (B,) int64: real steps of each sequence
        return self.b.op("ReduceSum", self.real64, self.b.ints(0), keepdims=0, hint="lengths")

    @cached_property
    def lengths(self) -> str:  # (B,) int32, ONNX's sequence_lens
        return self.b.op("Cast", self.lengths64, to=INT32, hint="sequence_lens")

    @cached_property
    def nonempty(self) -> str:  # (B, 1) bool: the sequence has a real step
        b = self.b
        return b.unsqueeze(b.op("Greater", self.lengths64, b.const(np.int64(0))), 1)

    @cached_property
    def before(self) -> str:  # (T, B) int64: real steps before t (t's place among them if real)
        return self.b.op("Sub", self.count, self.real64, hint="before")

    @cached_property
    def order(self) -> str:
        """(T, B) int64: the time of the k-th real step for k < length, then the masked steps
        in order: the permutation that moves real steps to the front."""
        b = self.b
        steps = b.op("Squeeze", b.dims(self.mask, 1, 2))
        t = b.unsqueeze(b.op("Range", b.const(np.int64(0)), steps, b.const(np.int64(1))), 1)  # (T, 1)
        masked_place = b.op("Sub", b.op("Add", self.lengths64, t), self.count)  # length + masked before t
        place = b.op("Where", self.real, self.before, masked_place)  # (T, B): where step t goes
        times = b.op("Expand", t, b.op("Shape", place, hint="shape"))
        zeros = b.op("ConstantOfShape", b.op("Shape", place, hint="shape"),
                     value=numpy_helper.from_array(np.zeros(1, np.int64)))
        return b.op("ScatterElements", zeros, place, times, axis=0, hint="order")

    def last_read_is_real(self, backwards: bool) -> str:  # (B, 1) bool
        b = self.b
        step = b.op("Gather", self.real, b.const(np.int64(0 if backwards else -1)), axis=0)
        return b.unsqueeze(step, 1)

    def compact(self, x_tm: str) -> str:
        """x_tm: (T, B, F) -> each sequence's real steps first, in order."""
        return self.b.gather_steps(x_tm, self.order)

    def place(self, y_c: str, fill: str) -> str:
        """Outputs y_c: (T, B, H) of the compacted steps -> (T, B, H) at their time positions.

        fill says what a masked step shows: "zero"; "after" the output of the last real step
        before it (forward reading); "before" that of the first real step after it (backward
        reading). Zero where there is no such step.
        """
        b = self.b
        if fill == "before":
            last = b.op("Sub", b.unsqueeze(self.lengths64, 0), b.const(np.int64(1)))  # (1, B)
            index = b.op("Min", self.before, b.op("Max", last, b.const(np.int64(0))))
            valid = b.op("Less", self.before, b.unsqueeze(self.lengths64, 0))
        else:
            index = b.op("Max", b.op("Sub", self.count, b.const(np.int64(1))), b.const(np.int64(0)))
            valid = self.real if fill == "zero" else b.op("Greater", self.count, b.const(np.int64(0)))
        y = b.gather_steps(y_c, index)
        return b.op("Where", b.unsqueeze(valid, 2), y, b.scalar(0), hint="placed")


# -- the registry -----------------------------------------------------------------------------

EMITTERS: dict[type, object] = {}
KEEPS_INTEGERS: set[type] = set()  # layers that take ids as they are (the others compute in float32)


def emits(*classes, keeps_integers=False):
    """Register the decorated function as the emitter of ``classes`` (exact classes: a subclass
    may compute something else, so it needs its own).

    An emitter is ``f(b, layer, x, **call_arguments) -> Tensor`` (a list of them for several
    outputs), x a Tensor or, for a multi-input layer, a list. Its inputs come as float32
    unless ``keeps_integers``."""
    def register(fn):
        for cls in classes:
            EMITTERS[cls] = fn
            if keeps_integers:
                KEEPS_INTEGERS.add(cls)
        return fn
    return register


_ACTIVATIONS = {"linear": None, "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softmax": "Softmax"}


def activation(b: Builder, name: str, x: str, who: str) -> str:
    if name not in _ACTIVATIONS:
        raise ValueError(f"{who}: activation {name!r} has no ONNX form here")
    op = _ACTIVATIONS[name]
    if op is None:
        return x
    return b.op(op, x, axis=-1) if op == "Softmax" else b.op(op, x)
