"""Symbolic tensors and the nodes that connect them: what calling layers on ``fastrnn.Input``
records, so that ``fastrnn.Model(inputs, outputs)`` can run the calls later on arrays.

The graph is Keras 3's, and can be walked from outside in the same way:

- ``KerasTensor``: an array to be computed. ``shape`` (a tuple, the batch axis first, None
  where not known), ``dtype`` (a name: ``"float32"``, ``"int32"``, ...), ``name``, ``ndim``
  and ``_keras_history = (layer, node_index, tensor_index)``: the call that makes it is
  ``layer._inbound_nodes[node_index]``, and it is that call's output number ``tensor_index``.
- ``Node``: one call of a layer on symbolic tensors. ``node.layer`` (also ``operation``, Keras's
  name), ``node.inputs`` (the first argument as given: a tensor or a list of tensors),
  ``node.kwargs`` (the other arguments that were given: ``initial_state``, ``mask``,
  ``training``, constants), ``node.outputs`` (a list of tensors), ``node.input_tensors``
  (every tensor among the inputs, then among the kwargs), ``node.parent_nodes``, and
  ``node.is_input`` (the node of an ``InputLayer``, which has no inputs).
- Each layer keeps ``layer._inbound_nodes`` (its calls, in order) and ``layer._outbound_nodes``
  (the calls that use its outputs); ``layer.input`` and ``layer.output`` are those of its first
  call, as in Keras.

Symbolic tensors have no values: NumPy functions and arithmetic on them raise TypeError
(computations belong in layers).
"""
from __future__ import annotations

import inspect
import itertools
import json
from typing import NamedTuple

__all__ = ["KerasTensor", "Node", "KerasHistory", "is_keras_tensor", "any_symbolic", "flatten",
           "pack_like", "symbolic_call"]

_TENSOR_NUMBERS = itertools.count()


class KerasHistory(NamedTuple):
    """Where a tensor comes from: output ``tensor_index`` of ``layer._inbound_nodes[node_index]``."""

    layer: object
    node_index: int
    tensor_index: int

    @property
    def operation(self):  # Keras's name for the layer
        return self.layer


class KerasTensor:
    """A symbolic array: shape (batch axis first, None where unknown), dtype name, name."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(dtype)
        if name is None:
            number = next(_TENSOR_NUMBERS)
            name = "keras_tensor" if number == 0 else f"keras_tensor_{number}"
        self.name = name
        self._keras_history: KerasHistory | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self):
        """The ``Node`` (layer call) that makes this tensor."""
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self!r} is symbolic: it has no values, and arithmetic or NumPy functions "
                        "cannot be applied to it. Compute inside layers, and run the model built "
                        "with fastrnn.Model(inputs, outputs) on arrays")

    __array__ = __array_ufunc__ = __array_function__ = _refuse
    __iter__ = __getitem__ = __float__ = __int__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __neg__ = _refuse


def is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)


def flatten(structure) -> list:
    """The leaves of nested lists, tuples and dicts (dicts in sorted key order, as Keras)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def pack_like(structure, leaves):
    """``leaves`` (a flat list) put back into the nesting of ``structure``."""
    leaves = iter(leaves)

    def pack(s):
        if isinstance(s, (list, tuple)):
            return type(s)(pack(item) for item in s)
        if isinstance(s, dict):
            return {key: pack(s[key]) for key in sorted(s)}
        return next(leaves)

    return pack(structure)


def any_symbolic(inputs, mask=None, kwargs=None) -> bool:
    """Whether any symbolic tensor is among a call's arguments."""
    if isinstance(inputs, KerasTensor) or isinstance(mask, KerasTensor):
        return True
    if isinstance(inputs, (list, tuple, dict)) and any(isinstance(t, KerasTensor) for t in flatten(inputs)):
        return True
    return bool(kwargs) and any(isinstance(t, KerasTensor) for t in flatten(list(kwargs.values())))


class Node:
    """One call of ``layer`` on symbolic tensors; see the module docstring."""

    def __init__(self, layer, inputs=None, kwargs=None, outputs=(), structure=None):
        self.layer = layer
        self.inputs = inputs
        self.kwargs = dict(kwargs or {})
        self.outputs = list(outputs)
        self.structure = structure  # the outputs nested as the call returned them, if a list
        self.input_tensors = [t for t in flatten([inputs, self.kwargs]) if isinstance(t, KerasTensor)]
        inbound = inbound_nodes(layer)
        inbound.append(self)
        for t in self.input_tensors:
            outbound_nodes(t._keras_history.layer).append(self)
        for index, t in enumerate(self.outputs):
            t._keras_history = KerasHistory(layer, len(inbound) - 1, index)

    @property
    def operation(self):  # Keras's name for the layer
        return self.layer

    @property
    def is_input(self) -> bool:
        return not self.input_tensors and self.inputs is None

    @property
    def parent_nodes(self) -> list:
        return [t.node for t in self.input_tensors]

    @property
    def returns_list(self) -> bool:
        return self.structure is not None

    @property
    def output(self):
        """The call's result as the layer returned it: one tensor, or a (nested) list."""
        return self.structure if self.returns_list else self.outputs[0]

    def __repr__(self):
        return f"<Node layer={getattr(self.layer, 'name', self.layer)!r}>"


def inbound_nodes(layer) -> list:
    return layer.__dict__.setdefault("_inbound_nodes", [])


def outbound_nodes(layer) -> list:
    return layer.__dict__.setdefault("_outbound_nodes", [])


# -- calling a layer on symbolic tensors ---------------------------------------------------------

def symbolic_call(layer, inputs, training=None, mask=None, kwargs=None):
    """``layer(inputs, ...)`` on symbolic tensors: builds the layer for their shapes, records a
    Node and returns the symbolic outputs (one tensor, or a list for several outputs).

    The arguments are checked as the layer checks arrays (rank, feature size, initial states),
    so a graph that cannot run fails here, at the line that builds it.
    """
    kwargs = dict(kwargs or {})
    _check_inputs(layer, inputs)
    shapes = [t.shape for t in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape
    if isinstance(inputs, (list, tuple)):
        layer.check_input_shapes(shapes)
    else:
        layer.check_input_shape(shapes)
    if mask is not None and not all(isinstance(m, KerasTensor) or m is None for m in flatten(mask)):
        raise TypeError(f"{layer.who}: in a graph of symbolic tensors, mask must be a symbolic "
                        f"tensor too, got {type(mask).__name__}")
    states = kwargs.get("initial_state")
    if states is not None:
        if not all(isinstance(s, KerasTensor) for s in flatten(states)):
            raise TypeError(f"{layer.who}: initial_state must be symbolic tensors here (the outputs "
                            "of other layers or Inputs), not arrays")
        check = getattr(layer, "check_initial_state_shapes", None)
        if check is None:
            raise TypeError(f"{layer.who} takes no initial_state")
        check([s.shape for s in flatten(states)])
    _check_constants(layer, kwargs)
    if not layer.built:
        layer.build([(None, *s[1:]) for s in shapes] if isinstance(inputs, (list, tuple))
                    else (None, *shapes[1:]))
    out_shape = _output_shape(layer, shapes, kwargs)
    out_shapes = shape_leaves(out_shape)
    dtypes = layer.symbolic_output_dtypes(len(out_shapes))
    outputs = [KerasTensor(s, d) for s, d in zip(out_shapes, dtypes)]
    if mask is not None:
        kwargs["mask"] = mask
    if training is not None:
        kwargs["training"] = bool(training)
    structure = None if is_shape(out_shape) else _pack_shapes(out_shape, iter(outputs))
    node = Node(layer, inputs, kwargs, outputs, structure=structure)
    return node.output


def _output_shape(layer, shapes, kwargs):
    """``compute_output_shape``, given the call's arguments it takes (those that change the
    outputs, such as Attention's return_attention_scores)."""
    try:
        parameters = inspect.signature(layer.compute_output_shape).parameters
    except (TypeError, ValueError):
        parameters = {}
    given = {k: v for k, v in kwargs.items() if k in parameters and k != "input_shape"}
    return layer.compute_output_shape(shapes, **given)


def is_shape(shape) -> bool:
    """Whether ``shape`` is one shape (ints and None) rather than a list of shapes, as
    ``compute_output_shape`` gives for several outputs (nested for stacked cells' states)."""
    return isinstance(shape, (list, tuple)) and not any(isinstance(d, (list, tuple)) for d in shape)


def shape_leaves(shape) -> list[tuple]:
    """The shapes in a (nested) list of shapes, in order; [shape] for one."""
    if is_shape(shape):
        return [tuple(shape)]
    return [leaf for s in shape for leaf in shape_leaves(s)]


def _pack_shapes(shape, tensors):
    if is_shape(shape):
        return next(tensors)
    return [_pack_shapes(s, tensors) for s in shape]


def _check_inputs(layer, inputs):
    leaves = flatten(inputs)
    if not all(isinstance(t, KerasTensor) for t in leaves):
        kinds = sorted({type(t).__name__ for t in leaves if not isinstance(t, KerasTensor)})
        raise TypeError(f"{layer.who} was called on symbolic tensors mixed with {', '.join(kinds)}: "
                        "in a graph every input must be a symbolic tensor (an Input or a layer's output)")
    if layer.multi_input:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"{layer.who} takes a list of inputs, got one tensor")
    elif not isinstance(inputs, KerasTensor):
        raise TypeError(f"{layer.who} takes one input tensor, got a {type(inputs).__name__} of "
                        f"{len(leaves)}")


def _check_constants(layer, kwargs):
    """Call arguments other than tensors are stored with the graph (get_config), so must be JSON."""
    for key, value in kwargs.items():
        if key == "initial_state":
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(f"{layer.who}: the call argument {key}={value!r} cannot be recorded in a "
                            "graph; arguments other than tensors must be plain numbers, strings, "
                            "bools or lists of them") from None
