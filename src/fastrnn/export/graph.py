"""The graph an exporter walks: model inputs, layer calls in order, model outputs.

A ``Graph`` names every tensor by a string. Each ``Node`` is one call of a layer: the names
of the tensors it reads, the names of those it returns (several for a layer with
``return_state``) and the tensors given as call arguments (``initial_state``). Masks are
not part of the description: an exporter derives them as the model does, from each layer's
``compute_mask``. A ``Sequential`` model is a chain: ``input`` -> layer 0 -> layer 1 -> ...
-> ``output``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Input:
    """A model input: its tensor name, Keras shape (batch axis first, None where free) and
    dtype; ``time_axis`` is the axis of time steps (free in the export), or None."""

    name: str
    shape: tuple
    dtype: np.dtype
    time_axis: int | None = None


@dataclass(frozen=True)
class Node:
    """One call of ``layer``: ``inputs`` (one name, a list for a multi-input layer) ->
    ``outputs`` (a list of names, one per output the layer returns)."""

    layer: object
    inputs: str | list
    outputs: list
    initial_state: list | None = None  # tensor names, for recurrent layers


@dataclass
class Graph:
    """inputs: the model's inputs; nodes: in an order where every tensor is made before it
    is read; outputs: the names of the model's outputs, in order."""

    name: str
    inputs: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)


def graph_of(model) -> Graph:
    """The graph of a built ``Sequential`` model (ValueError for anything else)."""
    from fastrnn.layers.core import Embedding
    from fastrnn.models import Sequential

    if not isinstance(model, Sequential):
        raise ValueError(f"only Sequential models can be exported so far, got {type(model).__name__}")
    if not model.layers:
        raise ValueError(f"model {model.name!r} has no layers to export")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built, so its input shape is unknown: give "
                         "the first layer an input_shape, call build(), or call the model on data")
    first = model.layers[0]
    shape = tuple(model.build_input_shape)
    ids = isinstance(first, Embedding)
    dtype = np.dtype(np.int64) if ids else first.dtype
    # Time is axis 1 of a sequence of features (B, T, F) or of token ids (B, T).
    time_axis = 1 if len(shape) >= 3 or (ids and len(shape) >= 2) else None
    graph = Graph(model.name, inputs=[Input("input", shape, dtype, time_axis)])
    tensor = "input"
    for k, layer in enumerate(model.layers):
        out = "output" if k == len(model.layers) - 1 else f"{layer.name}/output"
        graph.nodes.append(Node(layer, tensor, [out]))
        tensor = out
    graph.outputs = [tensor]
    return graph
