"""The graph an exporter walks: model inputs, layer calls in order, model outputs.

A ``Graph`` names every tensor by a string. Each ``Node`` is one call of a layer: the names
of the tensors it reads (a list for a multi-input layer), the names of those it returns (one
per output, several for a layer with ``return_state``), the tensors given as call arguments
(``initial_state``, ``mask``) and the call's other arguments (``return_attention_scores``,
``use_causal_mask``). Masks that travel from layer to layer are not part of the description:
an exporter derives them as the model does, from each layer's ``compute_mask``.

``graph_of(model)`` reads a model's graph of layer calls (``fastrnn.functional``):

- ``Sequential``: a chain, one input ``input`` and one output ``output``.
- A functional model: its inputs named after their ``Input`` layers, its outputs after
  ``model.output_names``. A layer called more than once (shared) gives one node per call; the
  calls are told apart by their paths, ``<layer>/call_<k>``. A model used as a layer is
  opened up: its layers' paths start with the path of its call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastrnn.keras_tensor import flatten


@dataclass(frozen=True)
class Input:
    """A model input: its tensor name, Keras shape (batch axis first, None where free) and
    dtype; ``time_axis`` is the axis of time steps, free in the export whatever length the
    model was built for, or None (then the axis is as the shape declares)."""

    name: str
    shape: tuple
    dtype: np.dtype
    time_axis: int | None = None


@dataclass(frozen=True)
class Node:
    """One call of ``layer``: ``inputs`` (one name, a list for a multi-input layer) ->
    ``outputs`` (a list of names, one per output the layer returns, nested lists flattened).

    initial_state: tensor names (flattened) given as ``initial_state``, or None. mask: the
    tensor name (a list for a multi-input layer, entries None) given as ``mask``, or None.
    kwargs: the call's other arguments. path: the call's name, which scopes its ONNX nodes
    and names its state inputs and outputs; the layer's name when None.
    """

    layer: object
    inputs: str | list
    outputs: list
    initial_state: list | None = None
    mask: str | list | None = None
    kwargs: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def name(self) -> str:
        return self.path or self.layer.name


@dataclass
class Graph:
    """inputs: the model's inputs; nodes: in an order where every tensor is made before it
    is read; outputs: the names of the tensors the model returns, in order, and
    output_names the names the exported outputs take (by default the same)."""

    name: str
    inputs: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    output_names: list | None = None

    @property
    def exported_output_names(self) -> list:
        return list(self.outputs) if self.output_names is None else list(self.output_names)


def graph_of(model) -> Graph:
    """The graph of a built ``Sequential`` or functional model (ValueError for anything else)."""
    from fastrnn.models import Model, Sequential

    if not isinstance(model, Model):
        raise ValueError(f"only models can be exported, got {type(model).__name__}")
    sequential = isinstance(model, Sequential)
    if sequential and not model.layers:
        raise ValueError(f"model {model.name!r} has no layers to export")
    if sequential and not model.built:
        raise ValueError(f"model {model.name!r} is not built, so its input shape is unknown: give "
                         "the first layer an input_shape, call build(), or call the model on data")
    if model._graph is None:
        raise ValueError(f"model {model.name!r} ({type(model).__name__}) has no graph of layer "
                         "calls (a subclassed model runs Python code): only Sequential and "
                         "functional models can be exported")
    engine = model._graph
    input_names = ["input"] if sequential else model.input_names
    graph = Graph(model.name)
    names = {}  # id(KerasTensor) -> tensor name
    for t, name in zip(engine.inputs, input_names):
        names[id(t)] = name
        graph.inputs.append(_input(name, t, _sequential_input_dtype(model) if sequential else None))
    _add_calls(graph, engine.nodes, names, "")
    graph.outputs = [names[id(t)] for t in engine.outputs]
    graph.output_names = ["output"] if sequential else _unique(model.output_names, set(input_names))
    if any(_binds_length(node.layer) for node in graph.nodes):
        graph.inputs = [spec if spec.time_axis is None or spec.shape[spec.time_axis] is None
                        else Input(spec.name, spec.shape, spec.dtype, None) for spec in graph.inputs]
    return graph


def _binds_length(layer) -> bool:
    """Whether the layer's result depends on the length of time the model was built for:
    reshaping moves time into other axes, and LayerNormalization over time has weights per
    step. A model holding one keeps the lengths its inputs declare."""
    from fastrnn.layers.normalization import LayerNormalization
    from fastrnn.layers.reshaping import Flatten, Permute, Reshape

    if isinstance(layer, (Flatten, Reshape, Permute)):
        return True
    return isinstance(layer, LayerNormalization) and 1 in layer._axes(len(layer.input_shape))


def _sequential_input_dtype(model):
    """A Sequential model declared without an Input takes token ids when it starts with an
    Embedding: int64 then, as the ids ``predict`` takes; else its input's dtype."""
    from fastrnn.layers.core import Embedding

    if model._input_layer is None and isinstance(model.layers[0], Embedding):
        return np.dtype(np.int64)
    return None


def _input(name, tensor, dtype=None) -> Input:
    shape = tuple(tensor.shape)
    dtype = np.dtype(tensor.dtype) if dtype is None else dtype
    # Time is axis 1 of a sequence of features (B, T, F) or of token ids (B, T).
    time_axis = 1 if len(shape) >= 3 or (len(shape) == 2 and dtype.kind in "iu") else None
    return Input(name, shape, dtype, time_axis)


def _unique(names, taken) -> list:
    """names made distinct from each other and from ``taken`` with a numbered suffix."""
    out, used = [], set(taken)
    for name in names:
        unique, k = name, 1
        while unique in used:
            unique, k = f"{name}_{k}", k + 1
        used.add(unique)
        out.append(unique)
    return out


def _add_calls(graph: Graph, nodes, names: dict, prefix: str) -> None:
    """Append a Node per layer call among ``nodes`` (a model's, in dependency order), naming
    their outputs in ``names``; models among the layers are opened up."""
    calls = [node for node in nodes if not node.is_input]
    count: dict[int, int] = {}
    for node in calls:
        count[id(node.layer)] = count.get(id(node.layer), 0) + 1
    seen: dict[int, int] = {}
    for node in calls:
        layer = node.layer
        k = seen[id(layer)] = seen.get(id(layer), -1) + 1
        path = prefix + (layer.name if count[id(layer)] == 1 else f"{layer.name}/call_{k}")
        if getattr(layer, "is_model", False):
            _add_model_call(graph, node, names, path)
            continue
        multi = isinstance(node.inputs, (list, tuple))
        inputs = [names[id(t)] for t in node.inputs] if multi else names[id(node.inputs)]
        kwargs = dict(node.kwargs)
        states, mask = kwargs.pop("initial_state", None), kwargs.pop("mask", None)
        kwargs.pop("training", None)  # an exported graph is for inference
        if len(node.outputs) == 1 and not node.returns_list:
            outputs = [f"{path}/output"]
        else:
            outputs = [f"{path}/output_{j}" for j in range(len(node.outputs))]
        for t, name in zip(node.outputs, outputs):
            names[id(t)] = name
        graph.nodes.append(Node(
            layer, inputs, outputs,
            initial_state=None if states is None else [names[id(t)] for t in flatten(states)],
            mask=_mask_names(mask, names), kwargs=kwargs, path=path))


def _add_model_call(graph: Graph, node, names: dict, path: str) -> None:
    """A model called as a layer: its own graph's calls, on the tensors it was given."""
    model = node.layer
    if model._graph is None:
        raise ValueError(f"model {model.name!r} ({type(model).__name__}), used as a layer, has no "
                         "graph of layer calls (a subclassed model runs Python code) and cannot "
                         "be exported")
    if node.kwargs.get("mask") is not None:
        raise ValueError(f"model {model.name!r}: a mask given to the call of a model used as a "
                         "layer cannot be exported; let the mask come from its layers")
    inner = model._graph
    given = node.inputs
    if isinstance(given, dict):  # keyed by the model's input names
        given = [given[name] for name in model.input_names]
    inner_names = {id(t): names[id(g)] for t, g in zip(inner.inputs, flatten(given))}
    _add_calls(graph, inner.nodes, inner_names, path + "/")
    for outer, t in zip(node.outputs, inner.outputs):
        names[id(outer)] = inner_names[id(t)]


def _mask_names(mask, names: dict):
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)):
        return [None if m is None else names[id(m)] for m in mask]
    return names[id(mask)]
