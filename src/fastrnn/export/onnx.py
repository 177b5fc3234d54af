"""ONNX export: a model's layers as ONNX operators, the graph built with the ``onnx`` package.

``to_onnx(model, opset=17)`` returns an ``onnx.ModelProto``; ``save_onnx(model, path)`` writes
it atomically. Each layer class has an emitter in ``EMITTERS`` (``onnx_layers``,
``onnx_recurrent``), a function that adds the layer's nodes to a ``Builder``
(``onnx_builder``) and returns its output ``Tensor`` (several for several outputs); the
walker here runs them along the model's graph (``fastrnn.export.graph``).

What the exported graph does:

- Sequential and functional models, a model used as a layer opened up. Inputs and outputs
  are batch-major as in the model: for a ``Sequential`` model ``input`` and ``output``; for a
  functional model the names of its ``Input`` layers and ``model.output_names``. Inputs are
  float32, or int32/int64 token ids as their ``Input`` declares (int64 for a Sequential model
  that starts with an ``Embedding``), with free batch and time axes (axis 1 of a sequence):
  any length runs, whatever the model was built for, except in a model holding a
  ``Flatten``, ``Reshape``, ``Permute`` or a ``LayerNormalization`` over time, whose inputs
  keep the lengths they declare.
- A layer called several times (shared) is emitted once per call, its weights one
  initializer; the calls are named ``<layer>/call_<k>``. ``initial_state`` given from other
  layers' states is wired in; masks travel along the graph as each layer's ``compute_mask``
  passes them on (merges, ``Concatenate``, ``Attention``, ``LayerNormalization``, ...).
- Recurrent layers (``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN(cell)``, ``StackedRNNCells`` one
  operator per cell) are ONNX's own ``RNN``/``LSTM``/``GRU`` operators (time-major, so
  transposes go around them); ``Bidirectional`` is one operator with
  ``direction="bidirectional"`` when both directions have the same cell and size, with every
  merge mode, ``merge_mode=None`` (two outputs) and ``return_state``.
- Masks (``Embedding(mask_zero=True)``, ``Masking``, a ``mask=`` given in a call) are
  computed inside the graph. Before a recurrent operator each sequence's real steps are
  gathered to the front, in order, and its count of real steps becomes ``sequence_lens``;
  the outputs are then put back at their time positions. So post-padding, pre-padding and
  masks with holes all get Keras's semantics: a masked step keeps the state, and its output
  is the last output read (zero before the first real step, and zero inside
  ``Bidirectional`` or with ``zero_output_for_mask``). The output of
  ``return_sequences=False`` is the output of the last step read: the last real output, or
  zero if that step is masked with ``zero_output_for_mask``.
- Every recurrent layer call not given an ``initial_state`` (each direction of a
  ``Bidirectional``, each cell of stacked cells) has optional inputs ``<path>/initial_h``
  (and ``<path>/initial_c`` for LSTM) of shape (batch, units), zeros when not fed, and
  outputs ``<path>/final_h`` (``final_c``): the state after the last real step. ``<path>``
  is the layer's name (its call's, for a shared layer), ``<bidi>/forward`` and
  ``<bidi>/backward`` for the directions of a ``Bidirectional``, ``<rnn>/<cell>`` for stacked
  cells. Feeding each final state back as the next initial state runs a stateful model one
  piece at a time. (ONNX Runtime lists such inputs under
  ``get_overridable_initializers()``, not ``get_inputs()``.)
- The other layers map to ONNX's operators (MatMul, Gather, Concat, Add/Sub/Mul/Div/Max/Min,
  Reshape, Flatten, Transpose, Expand, ReduceMean/ReduceMax, LayerNormalization, Softmax);
  Dropout is the identity, and regularizers and constraints play no part at inference.
"""
from __future__ import annotations

import inspect

import numpy as np
import onnx
from onnx import helper

from fastrnn.export import onnx_layers, onnx_recurrent  # noqa: F401 (register the emitters)
from fastrnn.export.graph import Graph, graph_of
from fastrnn.export.onnx_builder import BOOL, EMITTERS, FLOAT, INT32, INT64, KEEPS_INTEGERS, Builder, Tensor
from fastrnn.export.onnx_recurrent import onnx_weights  # noqa: F401 (part of this module's API)
from fastrnn.layers.wrappers import TimeDistributed

DEFAULT_OPSET = 17
MIN_OPSET = 17  # ScatterElements, Shape(start, end), LayerNormalization and the RNN operators as used here

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx", "graph_to_onnx", "save_onnx", "check_opset",
           "EMITTERS", "Builder", "Tensor"]


def _exportable(layer) -> None:
    """ValueError naming the layer (or the layer inside it) that the export cannot express."""
    if type(layer) not in EMITTERS:
        known = sorted(cls.__name__ for cls in EMITTERS)
        raise ValueError(f"{layer.who} cannot be exported to ONNX: no ONNX form is known for "
                         f"{type(layer).__name__} (exportable layers: {', '.join(known)})")
    _float32(layer)
    if isinstance(layer, TimeDistributed):
        _exportable(layer.layer)


def _float32(layer) -> None:
    if layer.dtype != np.float32:
        raise ValueError(f"{layer.who} runs in {layer.dtype.name}; ONNX export writes float32 graphs "
                         "(ONNX Runtime's RNN, LSTM and GRU run in float32 only): build the model "
                         "with dtype='float32' and copy the weights over with set_weights")
    for sub in layer.sublayers:
        _float32(sub)


def check_opset(opset) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be from {MIN_OPSET} to {newest} (the newest this onnx "
                         f"package knows), got {opset}")
    return int(opset)


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
        _check_arguments(node)
    b = Builder(opset)
    out_names = graph.exported_output_names
    for name in out_names:
        b.reserve(name)
    tensors = _add_inputs(b, graph)
    for node in graph.nodes:
        tensors.update(zip(node.outputs, _emit(b, node, tensors)))
    for name, key in zip(out_names, graph.outputs):
        t = tensors[key]
        b.add_output(name, t.name, t.elem, _output_dims(t.shape, name), reserved=True)
    names = set(out_names)
    b.outputs.sort(key=lambda v: v.name not in names)  # the model's outputs, then the final states
    proto = helper.make_model(
        helper.make_graph(b.nodes, graph.name, b.inputs, b.outputs, b.initializers),
        opset_imports=[helper.make_opsetid("", opset)], producer_name="fastrnn",
        producer_version=_version())
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import))  # older runtimes
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _elem(dtype: np.dtype) -> int:
    if dtype.kind == "f":
        return FLOAT  # the graph computes in float32
    return INT32 if dtype == np.int32 else INT64


def _add_inputs(b: Builder, graph: Graph) -> dict:
    """The graph's inputs, their time axes free -> {name: Tensor}."""
    tensors = {}
    timed = [spec for spec in graph.inputs if spec.time_axis is not None]
    for spec in graph.inputs:
        shape = list(spec.shape)
        dims = ["batch"] + [d if d is not None else f"{spec.name}_dim{k}" for k, d in enumerate(shape) if k]
        if spec.time_axis is not None:
            shape[spec.time_axis] = None  # any length, whatever the model was built for
            dims[spec.time_axis] = "time" if len(timed) == 1 else f"{spec.name}_time"
        elem = _elem(spec.dtype)
        b.add_input(spec.name, elem, dims)
        tensors[spec.name] = Tensor(spec.name, tuple(shape), elem)
    return tensors


def _output_dims(shape, name: str) -> list:
    """A Keras shape -> ONNX dims: the batch named, other free axes named after the output."""
    return ["batch"] + [d if d is not None else f"{name}_dim{k}" for k, d in enumerate(shape) if k]


def _check_arguments(node) -> None:
    """ValueError for a call argument the layer's emitter does not take."""
    parameters = inspect.signature(EMITTERS[type(node.layer)]).parameters
    for key in node.kwargs:
        if key not in parameters:
            raise ValueError(f"{node.layer.who}: the call argument {key}={node.kwargs[key]!r} "
                             "has no ONNX form")
    if node.initial_state is not None and "initial_state" not in parameters:
        raise ValueError(f"{node.layer.who} takes no initial_state")


def _emit(b: Builder, node, tensors: dict) -> list:
    """One node's layer through its emitter -> its output Tensors, one per name in node.outputs."""
    layer = node.layer
    multi = isinstance(node.inputs, list)
    xs = [tensors[n] for n in (node.inputs if multi else [node.inputs])]
    if node.mask is not None:  # a mask given in the call replaces the ones the inputs carry
        given = node.mask if isinstance(node.mask, list) else [node.mask]
        given = given + [None] * (len(xs) - len(given))  # Attention's [query, value] for 3 inputs
        if len(given) != len(xs):
            raise ValueError(f"{layer.who}: the call was given {len(given)} masks for {len(xs)} inputs")
        xs = [Tensor(x.name, x.shape, x.elem, None if m is None else _as_mask(b, tensors[m]))
              for x, m in zip(xs, given)]
    if type(layer) not in KEEPS_INTEGERS:
        xs = [b.floats(x) for x in xs]
    kwargs = dict(node.kwargs)
    if node.initial_state is not None:
        kwargs["initial_state"] = [b.floats(tensors[n]) for n in node.initial_state]
    b.call_path = node.name
    with b.scope(node.name):
        out = EMITTERS[type(layer)](b, layer, xs if multi else xs[0], **kwargs)
    outs = out if isinstance(out, list) else [out]
    if len(outs) != len(node.outputs):
        raise ValueError(f"{layer.who} gives {len(outs)} outputs, the graph expects {len(node.outputs)}")
    return outs


def _as_mask(b: Builder, t: Tensor) -> str:
    """A tensor given as a mask -> bool (nonzero is real, as NumPy's astype(bool))."""
    return t.name if t.elem == BOOL else b.cast(t.name, BOOL)


def _version() -> str:
    import fastrnn

    return fastrnn.__version__


def save_onnx(model, filepath, opset: int = DEFAULT_OPSET) -> None:
    """Write ``to_onnx(model, opset)`` to ``filepath`` atomically: the file is the whole model,
    or as it was before (nothing is written when the model cannot be exported)."""
    from fastrnn.files import write_atomically

    data = to_onnx(model, opset).SerializeToString()
    write_atomically(filepath, lambda f: f.write(data))
