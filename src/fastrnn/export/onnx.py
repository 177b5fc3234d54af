"""ONNX export: a model's layers as ONNX operators, the graph built with the ``onnx`` package.

``to_onnx(model, opset=17)`` returns an ``onnx.ModelProto``; ``save_onnx(model, path)`` writes
it atomically. Each layer class has an emitter in ``EMITTERS``, a function that adds the
layer's nodes to a ``Builder`` and returns its output ``Tensor``; the walker in ``to_onnx``
runs them along the model's graph (``fastrnn.export.graph``).

What the exported graph does:

- Inputs and outputs are batch-major as in the model, float32 (token ids int64), with free
  batch and time axes. Recurrent layers are ONNX's own ``RNN``/``LSTM``/``GRU`` operators
  (time-major, so transposes go around them); ``Bidirectional`` is one operator with
  ``direction="bidirectional"`` when both directions have the same cell and size.
- Masks (``Embedding(mask_zero=True)``, ``Masking``) are computed inside the graph from the
  input. Before a recurrent operator each sequence's real steps are gathered to the front,
  in order, and its count of real steps becomes ``sequence_lens``; the outputs are then put
  back at their time positions. So post-padding, pre-padding and masks with holes all get
  Keras's semantics: a masked step keeps the state, and its output is the last output read
  (zero before the first real step, and zero inside ``Bidirectional`` or with
  ``zero_output_for_mask``). The output of ``return_sequences=False`` is the output of the
  last step read: the last real output, or zero if that step is masked with
  ``zero_output_for_mask``.
- Every recurrent layer (each direction of a ``Bidirectional``) has optional inputs
  ``<layer>/initial_h`` (and ``<layer>/initial_c`` for LSTM) of shape (batch, units), zeros
  when not fed, and outputs ``<layer>/final_h`` (``final_c``): the state after the last real
  step. Feeding each final state back as the next initial state runs a stateful model one
  piece at a time. (ONNX Runtime lists such inputs under ``get_overridable_initializers()``,
  not ``get_inputs()``; the directions of a ``Bidirectional`` named ``bidi`` are
  ``bidi/forward/...`` and ``bidi/backward/...``.)
- Dense, Activation, Embedding, Masking and TimeDistributed map to MatMul, Gather and their
  activations; Dropout is the identity.

Weights go from the kernel layout of ``fastrnn.modes`` (PyTorch's gate orders i, f, g, o and
r, z, n) to ONNX's (i, o, f, c and z, r, h; bias ``[Wb, Rb]``); GRU's reset-after form is
``linear_before_reset=1``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fastrnn.export.graph import Graph, graph_of
from fastrnn.layers.core import Activation, Dense, Dropout, Embedding, Masking
from fastrnn.layers.recurrent import GRU, LSTM, SimpleRNN
from fastrnn.layers.wrappers import Bidirectional, TimeDistributed

DEFAULT_OPSET = 17
MIN_OPSET = 17  # ScatterElements, Shape(start, end) and the RNN operators as used here
FLOAT, INT64, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
_INT64_MIN = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Tensor:
    """A value of the graph being built: its ONNX name, Keras shape (None where free), ONNX
    element type, and the name of its (B, T) bool mask, or None."""

    name: str
    shape: tuple
    elem: int = FLOAT
    mask: str | None = None


class Builder:
    """The ONNX graph under construction: nodes, initializers, inputs and outputs, and names
    made unique under the scope of the layer being emitted."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._names: set[str] = set()
        self._prefix = ""
        self._consts: dict = {}  # small constants, shared
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

    def ints(self, *values) -> str:
        return self.const(np.array(values, np.int64))

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

    def dims(self, x: str, start: int, end=None) -> str:
        """Shape(x)[start:end], int64 (1-D)."""
        attrs = {"start": start} if end is None else {"start": start, "end": end}
        return self.op("Shape", x, hint="shape", **attrs)

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
        return self.b.op("Cast", self.real, to=INT64)

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
        return b.op("Where", b.unsqueeze(valid, 2), y, b.const(np.float32(0)), hint="placed")


# -- emitters -------------------------------------------------------------------------------

EMITTERS: dict[type, object] = {}


def emits(*classes):
    """Register the decorated function as the emitter of ``classes`` (exact classes: a subclass
    may compute something else, so it needs its own)."""
    def register(fn):
        for cls in classes:
            EMITTERS[cls] = fn
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


@emits(Dense)
def _dense(b, layer, x):
    y = b.op("MatMul", x.name, b.const(layer.kernel, "kernel"))
    if layer.bias is not None:
        y = b.op("Add", y, b.const(layer.bias, "bias"))
    y = activation(b, layer.activation.name, y, layer.who)
    return replace(x, name=y, shape=layer.compute_output_shape(x.shape))


@emits(Activation)
def _activation(b, layer, x):
    return replace(x, name=activation(b, layer.activation.name, x.name, layer.who))


@emits(Dropout)
def _dropout(b, layer, x):
    return x  # inference


@emits(Embedding)
def _embedding(b, layer, x):
    ids = x.name if x.elem == INT64 else b.op("Cast", x.name, to=INT64)
    y = b.op("Gather", b.const(layer.embeddings, "embeddings"), ids, axis=0)
    mask = None
    if layer.mask_zero:
        mask = b.op("Not", b.op("Equal", ids, b.const(np.int64(0))), hint="mask")
    return Tensor(y, layer.compute_output_shape(x.shape), FLOAT, mask)


@emits(Masking)
def _masking(b, layer, x):
    differs = b.op("Cast", b.op("Not", b.op("Equal", x.name, b.const(np.float32(layer.mask_value)))), to=INT64)
    count = b.op("ReduceSum", differs, b.ints(-1), keepdims=0)
    mask = b.op("Greater", count, b.const(np.int64(0)), hint="mask")  # (B, T)
    y = b.op("Mul", x.name, b.unsqueeze(b.op("Cast", mask, to=FLOAT), -1))
    return replace(x, name=y, mask=mask)


@emits(TimeDistributed)
def _time_distributed(b, layer, x):
    inner = layer.layer
    folded = b.op("Reshape", x.name, b.op("Concat", b.ints(-1), b.dims(x.name, 2), axis=0))  # (B*T, ...)
    with b.scope(inner.name):
        y = EMITTERS[type(inner)](b, inner, Tensor(folded, (None, *x.shape[2:]), x.elem))
    shape = b.op("Concat", b.dims(x.name, 0, 2), b.dims(y.name, 1), axis=0)
    out = b.op("Reshape", y.name, shape)  # (B, T, ...)
    return Tensor(out, layer.compute_output_shape(x.shape), y.elem, x.mask)


# -- recurrent layers -------------------------------------------------------------------------

_ONNX_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
# For each ONNX gate block, the kernel block it is: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_ONNX_BLOCKS = {"rnn_tanh": [0], "rnn_relu": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def onnx_weights(layer):
    """A recurrent layer's weights in ONNX's layout: W (G*H, F), R (G*H, H), B (2*G*H,) or None."""
    blocks = _ONNX_BLOCKS[layer.mode]

    def reorder(a):
        parts = np.split(np.asarray(a, np.float32), len(blocks), axis=0)
        return np.concatenate([parts[k] for k in blocks], axis=0)

    W, R = reorder(layer.w_ih), reorder(layer.w_hh)
    if layer.b_ih is None and layer.b_hh is None:
        return W, R, None
    zero = np.zeros(W.shape[0], np.float32)
    b_ih = zero if layer.b_ih is None else reorder(layer.b_ih)
    b_hh = zero if layer.b_hh is None else reorder(layer.b_hh)
    return W, R, np.concatenate([b_ih, b_hh])


@dataclass
class Run:
    """One recurrent layer run over a batch: y (T, B, H) the outputs of the steps read (at
    the compacted steps when there is a mask), last (B, H) the output after the last step
    (zero for an empty sequence), states the final [h, c] (B, H), the initial ones for an
    empty sequence."""

    y: str
    last: str
    states: list


def state_inputs(b: Builder, path: str, layer, x: Tensor) -> list:
    """Optional graph inputs ``<path>/initial_h`` (``_c``) of shape (batch, H), zeros when not
    fed, each expanded to the batch of x: (B, H) values."""
    H = layer.units
    batch_shape = b.op("Concat", b.dims(x.name, 0, 1), b.ints(H), axis=0)
    names = []
    for s in ("h", "c")[:layer.state_count]:
        name = b.add_input(f"{path}/initial_{s}", FLOAT, ["batch", H], default=np.zeros((1, H), np.float32))
        names.append(b.op("Expand", name, batch_shape, hint=f"initial_{s}"))
    return names


def state_outputs(b: Builder, path: str, layer, states: list) -> None:
    for s, value in zip(("h", "c"), states):
        b.add_output(f"{path}/final_{s}", value, FLOAT, ["batch", layer.units])


def _rnn_op(b: Builder, group: list, x_c: str, lengths: str, initial: list):
    """One ONNX RNN/LSTM/GRU node for ``group``: one layer, or two reading in opposite
    directions (forward-reading first) as a bidirectional node. Returns (Y, Y_h, Y_c or None)."""
    first = group[0]
    weights = [onnx_weights(layer) for layer in group]
    W = b.const(np.stack([w[0] for w in weights]), "W")
    R = b.const(np.stack([w[1] for w in weights]), "R")
    B = ""
    if any(w[2] is not None for w in weights):
        zero = np.zeros(2 * weights[0][0].shape[0], np.float32)
        B = b.const(np.stack([zero if w[2] is None else w[2] for w in weights]), "B")
    if len(group) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if first.go_backwards else "forward"
    stacked = []
    for k in range(first.state_count):
        per_layer = [b.unsqueeze(states[k], 0) for states in initial]  # (1, B, H) each
        stacked.append(per_layer[0] if len(group) == 1 else b.op("Concat", *per_layer, axis=0))
    attrs = {"hidden_size": first.units, "direction": direction}
    if first.mode.startswith("rnn_"):
        attrs["activations"] = ["Tanh" if first.mode == "rnn_tanh" else "Relu"] * len(group)
    if first.mode == "gru":
        attrs["linear_before_reset"] = 1
    op = _ONNX_OP[first.mode]
    outputs = b.op(op, x_c, W, R, B, lengths, *stacked, outputs=3 if op == "LSTM" else 2,
                   hint=op, **attrs)
    return outputs[0], outputs[1], outputs[2] if op == "LSTM" else None


def _same_cell(layers) -> bool:
    f, g = layers
    return (f.mode == g.mode and f.units == g.units and f.go_backwards != g.go_backwards)


def _full_lengths(b: Builder, x_tm: str):
    """x_tm: (T, B, F) -> (sequence_lens (B,) int32, all T; (1,) bool: T > 0)."""
    steps = b.op("Cast", b.dims(x_tm, 0, 1), to=INT32)
    lengths = b.op("Expand", steps, b.dims(x_tm, 1, 2), hint="sequence_lens")
    return lengths, b.op("Greater", steps, b.const(np.int32(0)))


def run_recurrent(b: Builder, layers: list, paths: list, x: Tensor, initial=None) -> list:
    """Run the recurrent layers (one, or the two of a Bidirectional) over x: (B, T, F).

    paths name each layer's state inputs and outputs; initial: for each layer its initial
    states as (B, H) values, or None for optional graph inputs. Returns a ``Run`` per layer.
    """
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    x_tm = b.transpose(x.name, 1, 0, 2)  # (T, B, F)
    x_c = steps.compact(x_tm) if steps else x_tm
    # Lengths even without a mask: ONNX Runtime's GRU aborts the process on zero steps without them.
    lengths, nonempty = (steps.lengths, steps.nonempty) if steps else _full_lengths(b, x_tm)
    initial = initial or [None] * len(layers)
    initial = [state_inputs(b, path, layer, x) if given is None else given
               for layer, path, given in zip(layers, paths, initial)]
    if len(layers) == 2 and _same_cell(layers):
        groups = [sorted(range(2), key=lambda k: layers[k].go_backwards)]  # forward-reading first
    else:
        groups = [[k] for k in range(len(layers))]
    runs = [None] * len(layers)
    for group in groups:
        Y, Y_h, Y_c = _rnn_op(b, [layers[k] for k in group], x_c, lengths, [initial[k] for k in group])
        for d, k in enumerate(group):
            y = b.op("Gather", Y, b.const(np.int64(d)), axis=1, hint="y")  # (T, B, H)
            last = b.op("Gather", Y_h, b.const(np.int64(d)), axis=0, hint="h")  # (B, H)
            states = [last] if Y_c is None else [last, b.op("Gather", Y_c, b.const(np.int64(d)), axis=0, hint="c")]
            # ONNX Runtime zeroes the states of an empty sequence; Keras keeps them.
            states = [b.op("Where", nonempty, s, s0, hint="final") for s, s0 in zip(states, initial[k])]
            runs[k] = Run(y, last, states)
    return runs


@emits(SimpleRNN, LSTM, GRU)
def _recurrent(b, layer, x, initial_state=None):
    given = None if initial_state is None else [[s.name for s in initial_state]]
    run = run_recurrent(b, [layer], [layer.name], x, given)[0]
    if initial_state is None:
        state_outputs(b, layer.name, layer, run.states)
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    if layer.return_sequences:
        y = run.y
        if steps:
            fill = "zero" if layer.zero_output_for_mask else ("before" if layer.go_backwards else "after")
            y = steps.place(y, fill)
        if layer.go_backwards:
            y = b.reverse_time(y)  # reading order, as Keras returns it
        output = b.transpose(y, 1, 0, 2)  # (B, T, H)
    else:
        output = run.last
        if steps and layer.zero_output_for_mask:
            output = b.op("Where", steps.last_read_is_real(layer.go_backwards), output, b.const(np.float32(0)))
    shapes = layer.compute_output_shape(x.shape)
    out = Tensor(output, shapes[0] if layer.return_state else shapes, FLOAT,
                 x.mask if layer.return_sequences else None)
    if layer.return_state:
        return [out] + [Tensor(s, (x.shape[0], layer.units)) for s in run.states]
    return out


def _merge(b: Builder, mode: str, a: str, c: str) -> str:
    if mode == "concat":
        return b.op("Concat", a, c, axis=-1)
    if mode == "sum":
        return b.op("Add", a, c)
    if mode == "mul":
        return b.op("Mul", a, c)
    return b.op("Mul", b.op("Add", a, c), b.const(np.float32(0.5)))  # 'ave'


@emits(Bidirectional)
def _bidirectional(b, layer, x):
    subs = [layer.forward_layer, layer.backward_layer]
    paths = [f"{layer.name}/forward", f"{layer.name}/backward"]
    runs = run_recurrent(b, subs, paths, x)
    for sub, path, run in zip(subs, paths, runs):
        state_outputs(b, path, sub, run.states)
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    if layer.return_sequences:
        parts = [steps.place(run.y, "zero") if steps else run.y for run in runs]  # time positions
        output = b.transpose(_merge(b, layer.merge_mode, *parts), 1, 0, 2)  # (B, T, M)
    else:
        output = _merge(b, layer.merge_mode, runs[0].last, runs[1].last)
    return Tensor(output, layer.compute_output_shape(x.shape), FLOAT,
                  x.mask if layer.return_sequences else None)


# -- the walk -------------------------------------------------------------------------------------

def _exportable(layer) -> None:
    """ValueError naming the layer (or the layer inside it) that the export cannot express."""
    if type(layer) not in EMITTERS:
        known = sorted(cls.__name__ for cls in EMITTERS)
        raise ValueError(f"{layer.who} cannot be exported to ONNX: no ONNX form is known for "
                         f"{type(layer).__name__} (exportable layers: {', '.join(known)})")
    if layer.dtype != np.float32:
        raise ValueError(f"{layer.who} runs in {layer.dtype.name}; ONNX export writes float32 graphs "
                         "(ONNX Runtime's RNN, LSTM and GRU run in float32 only): build the model "
                         "with dtype='float32' and copy the weights over with set_weights")
    for sub in layer.sublayers:
        _exportable(sub)


def check_opset(opset) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"package knows), got {opset}")
    return int(opset)


def _dims(shape, name: str, time_axis) -> list:
    """A Keras shape -> ONNX dims: batch and time named, other free axes named after the value."""
    dims = []
    for k, d in enumerate(shape):
        if k == 0:
            dims.append("batch")
        elif k == time_axis:
            dims.append("time")
        else:
            dims.append(f"{name}_dim{k}" if d is None else int(d))
    return dims


def to_onnx(model, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The model as an ONNX ``ModelProto`` (checked with ``onnx.checker``); see the module
    docstring for the graph's inputs, outputs and semantics. ValueError for a layer that
    cannot be expressed, before anything is built."""
    return graph_to_onnx(graph_of(model), opset)


def graph_to_onnx(graph: Graph, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``to_onnx`` for a graph description (``fastrnn.export.graph``) of built layers."""
    opset = check_opset(opset)
    for node in graph.nodes:
        _exportable(node.layer)
    b = Builder(opset)
    for name in graph.outputs:
        b.reserve(name)
    tensors, time_axis = _add_inputs(b, graph)
    for node in graph.nodes:
        tensors.update(zip(node.outputs, _emit(b, node, tensors)))
    for name in graph.outputs:
        t = tensors[name]
        b.add_output(name, t.name, t.elem, _dims(t.shape, name, time_axis if len(t.shape) > 2 else None),
                     reserved=True)
    names = set(graph.outputs)
    b.outputs.sort(key=lambda v: v.name not in names)  # the model's outputs, then the final states
    proto = helper.make_model(
        helper.make_graph(b.nodes, graph.name, b.inputs, b.outputs, b.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="fastrnn",
        producer_version=_version())
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))  # older runtimes
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _add_inputs(b: Builder, graph: Graph):
    """The graph's inputs, their time axes free -> ({name: Tensor}, the time axis or None)."""
    tensors, time_axis = {}, None
    for spec in graph.inputs:
        elem = INT64 if spec.dtype.kind in "iu" else FLOAT
        shape = list(spec.shape)
        if spec.time_axis is not None:
            shape[spec.time_axis] = None  # any length, whatever the model was built for
            time_axis = spec.time_axis
        b.add_input(spec.name, elem, _dims(shape, spec.name, spec.time_axis))
        tensors[spec.name] = Tensor(spec.name, tuple(shape), elem)
    return tensors, time_axis


def _emit(b: Builder, node, tensors: dict) -> list:
    """One node's layer through its emitter -> its output Tensors, one per name in node.outputs."""
    layer = node.layer
    x = [tensors[n] for n in node.inputs] if isinstance(node.inputs, list) else tensors[node.inputs]
    kwargs = {}
    if node.initial_state is not None:
        kwargs["initial_state"] = [tensors[n] for n in node.initial_state]
    with b.scope(layer.name):
        out = EMITTERS[type(layer)](b, layer, x, **kwargs)
    outs = out if isinstance(out, list) else [out]
    if len(outs) != len(node.outputs):
        raise ValueError(f"{layer.who} gives {len(outs)} outputs, the graph expects {len(node.outputs)}")
    return outs


def _version() -> str:
    import fastrnn

    return fastrnn.__version__


def save_onnx(model, filepath, opset: int = DEFAULT_OPSET) -> None:
    """Write ``to_onnx(model, opset)`` to ``filepath`` atomically: the file is the whole model,
    or as it was before (nothing is written when the model cannot be exported)."""
    from fastrnn.files import write_atomically

    data = to_onnx(model, opset).SerializeToString()
    write_atomically(filepath, lambda f: f.write(data))
