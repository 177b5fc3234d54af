"""Running graphs of layer calls: the engine under ``fastrnn.Model`` and ``Sequential``.

A model's computation is a list of *steps*, one per layer call, in an order where every step
comes after the steps that make its inputs. Values travel between steps under *keys*: for a
graph built from ``fastrnn.Input`` the key of a value is its symbolic tensor
(``fastrnn.keras_tensor``); for a subclassed model, whose ``call`` runs on arrays, it is the
array itself, recorded on a ``Tape`` as the layers are called.

Forward (``run_steps``): each step takes its inputs' values and masks (the mask a layer's
``compute_mask`` gave its output, passed on to the next layer unless the call named one, as in
Keras), calls the layer, and keeps the layer's call state when training.

Backward (``backward_steps``): the steps in reverse. A step whose outputs got gradients puts its
call state back (so a layer called twice backpropagates through each call), runs the layer's
``backward``, and adds the input gradients into those of the keys they came from: a value used
by several steps gets the sum. Recurrent layers' ``initial_state_grads`` go to the keys of the
initial states. Parameter gradients are summed per parameter array (a shared layer's calls add
up) in a dict keyed by ``id(param)``.

``map_graph(inputs, outputs)`` walks the nodes back from the outputs once, as Keras does: the
steps in dependency order, and the layers in Keras's order (by depth from the outputs, then by
the order the walk first met them). ``graph_config`` / ``graph_from_config`` write and read
the graph in Keras's ``get_config`` form.
"""
from __future__ import annotations

import threading

import numpy as np

from fastrnn.keras_tensor import KerasTensor, flatten, inbound_nodes, pack_like, shape_leaves


class Step:
    """One layer call: the layer, the keys of its inputs, initial states and outputs."""

    __slots__ = ("layer", "inputs", "multi_input", "states", "state_structure", "outputs",
                 "multi_output", "output_structure", "mask", "kwargs", "training")

    def __init__(self, layer, inputs, multi_input, states, outputs, multi_output,
                 mask=None, kwargs=None, training=None, state_structure=None, output_structure=None):
        self.layer = layer
        self.inputs = inputs  # keys, one per input
        self.multi_input = multi_input  # the layer takes a list
        self.states = states  # keys of initial_state (flattened), or ()
        self.state_structure = state_structure  # initial_state's nesting (a list per stacked cell)
        self.outputs = outputs  # keys, one per output (flattened)
        self.multi_output = multi_output  # the layer returns a (nested) list
        self.output_structure = output_structure  # its nesting, to pack the outputs' gradients
        self.mask = mask  # key (or list of keys) of a mask given in the call, else None
        self.kwargs = kwargs or {}  # other call arguments (constants)
        self.training = training  # given in the call, else None (the model's)


# -- forward and backward over steps ---------------------------------------------------------------

def run_steps(steps, values: dict, masks: dict, training: bool):
    """Run ``steps`` on ``values`` (key -> array), filling in their outputs and ``masks``.

    Returns the layers' call states, one per step, when training (else None)."""
    states = [] if training else None
    for step in steps:
        if step.multi_input:
            x = [values[k] for k in step.inputs]
            mask = [masks.get(k) for k in step.inputs]
        else:  # the common case, without the lists
            x = values[step.inputs[0]]
            mask = masks.get(step.inputs[0])
        if step.mask is not None:
            mask = pack_like(step.mask, [None if k is None else values[k] for k in flatten(step.mask)])
        kwargs = step.kwargs
        if step.states:
            kwargs = {**kwargs, "initial_state": pack_like(step.state_structure,
                                                           [values[k] for k in step.states])}
        layer = step.layer
        out = layer.eager_call(x, training=training if step.training is None else step.training,
                               mask=mask, **kwargs)
        out_mask = layer.compute_mask(x, mask)
        if training:
            states.append(layer.call_state())
        if step.multi_output:
            out = flatten(out)
            out_mask = flatten(out_mask) if isinstance(out_mask, (list, tuple)) else [out_mask]
            out_mask += [None] * (len(out) - len(out_mask))
            for k, o, m in zip(step.outputs, out, out_mask):
                values[k] = o
                masks[k] = m
        else:
            values[step.outputs[0]] = out
            masks[step.outputs[0]] = out_mask
    return states


def backward_steps(steps, call_states, grads: dict) -> dict:
    """Backpropagate through ``steps`` from ``grads`` (key -> gradient of the value).

    On return ``grads`` holds the gradients of the values no step made (the inputs); the
    result maps ``id(param)`` to the summed gradient of each parameter array reached."""
    param_grads: dict[int, np.ndarray] = {}
    for step, state in zip(reversed(steps), reversed(call_states)):
        layer = step.layer
        casts = not getattr(layer, "is_model", False)  # a model casts for its own layers
        layer.set_call_state(state)
        if step.multi_output:
            d_out = [grads.pop(k, None) for k in step.outputs]
            if all(d is None for d in d_out) and _no_activity_gradient(layer):
                continue  # nothing after this call reaches the loss
            if casts:
                d_out = [_cast(d, layer.dtype) for d in d_out]
            d_out = pack_like(step.output_structure, d_out)
        else:
            d_out = grads.pop(step.outputs[0], None)
            if d_out is None and _no_activity_gradient(layer):
                continue
            if casts:
                d_out = _cast(d_out, layer.dtype)
        d_in = layer.backward(d_out)
        add_param_grads(param_grads, layer)
        if d_in is not None:
            if step.multi_input:
                for k, g in zip(step.inputs, d_in):
                    accumulate(grads, k, g)
            else:
                accumulate(grads, step.inputs[0], d_in)
        if step.states:
            for k, g in zip(step.states, flatten(getattr(layer, "initial_state_grads", None) or [])):
                accumulate(grads, k, g)
    return param_grads


def _no_activity_gradient(layer) -> bool:
    """Whether the call has no activity penalty to backpropagate (a call whose outputs reach
    no loss still passes its penalty's gradient back, as in Keras)."""
    return getattr(layer, "_activity_grads", None) is None


def _cast(d, dtype):
    """A gradient in the dtype of the layer it goes into, as Keras autocasts."""
    if isinstance(d, np.ndarray) and d.dtype != dtype and d.dtype.kind == "f":
        return d.astype(dtype)
    return d


def accumulate(grads: dict, key, g) -> None:
    if g is None:
        return
    previous = grads.get(key)
    grads[key] = g if previous is None else previous + g


def add_param_grads(param_grads: dict, layer) -> None:
    params, layer_grads = layer.params, layer.grads
    if len(layer_grads) != len(params):
        raise RuntimeError(f"{layer.who} gave {len(layer_grads)} gradients for {len(params)} "
                           "parameters")
    for p, g in zip(params, layer_grads):
        previous = param_grads.get(id(p))
        param_grads[id(p)] = g if previous is None else previous + g


# -- the tape: layer calls made on arrays, inside a subclassed model's call ---------------------------

_ACTIVE = threading.local()


def active_tape():
    """The tape recording layer calls in this thread, or None."""
    return getattr(_ACTIVE, "tape", None)


class Tape:
    """Records the layer calls made while a subclassed model's ``call`` runs on arrays.

    Arrays are the keys: a layer's output passed on to another layer is the same object. The
    tape keeps every array it saw alive while it lives, so that ids are not reused. Calls made
    inside a recorded call (a wrapper's, a nested model's) belong to that call, not to the tape.
    Masks travel as in Keras: an array a layer made carries that layer's output mask to the
    next layer called on it.
    """

    def __init__(self, inputs, training: bool):
        self.training = bool(training)
        self.steps: list[Step] = []
        self.call_states: list = []
        self.masks: dict[int, np.ndarray] = {}
        self.keep = list(inputs)  # arrays whose ids are keys
        self.made = set()  # ids of arrays layers made, and of the arrays they are views of

    def __enter__(self):
        self._previous = active_tape()
        _ACTIVE.tape = self
        return self

    def __exit__(self, *exc):
        _ACTIVE.tape = self._previous

    def record(self, layer, inputs, training, mask, kwargs):
        """Call ``layer`` as ``Layer.__call__`` was asked to, and record the call."""
        multi = isinstance(inputs, (list, tuple)) and layer.multi_input
        flat = list(inputs) if multi else [inputs]
        if mask is None and any(id(a) in self.masks for a in flat):
            masks = [self.masks.get(id(a)) for a in flat]
            mask = masks if multi else masks[0]
        training = self.training if training is None else bool(training)
        states = kwargs.get("initial_state")
        state_list = [] if states is None else flatten(states)
        if self.training:
            self._check_not_derived(layer, flat + state_list)
        _ACTIVE.tape = None  # the layer's own inner calls are part of this one
        try:
            out = layer.eager_call(inputs, training=training, mask=mask, **kwargs)
            out_mask = layer.compute_mask(inputs, mask)
        finally:
            _ACTIVE.tape = self
        several = isinstance(out, list)
        outs = flatten(out) if several else [out]
        if several:
            out_mask = flatten(out_mask) if isinstance(out_mask, (list, tuple)) else [out_mask]
            out_mask += [None] * (len(outs) - len(out_mask))
        for o, m in zip(outs, out_mask if several else [out_mask]):
            if m is not None:
                self.masks[id(o)] = m
            self.made.add(id(o))
            if isinstance(o, np.ndarray) and o.base is not None:
                self.made.add(id(o.base))
        self.keep.extend(flat + state_list + outs)
        if self.training:
            self.steps.append(Step(layer, [id(a) for a in flat], multi, [id(s) for s in state_list],
                                   [id(o) for o in outs], several, state_structure=states,
                                   output_structure=out if several else None))
            self.call_states.append(layer.call_state())
        return out

    def _check_not_derived(self, layer, arrays):
        """A view of a layer's output (a slice, a reshape) made outside the layers would pass no
        gradient back; training on it would silently leave layers untrained, so it is refused."""
        for a in arrays:
            if isinstance(a, np.ndarray) and id(a) not in self.made and a.base is not None \
                    and id(a.base) in self.made:
                raise ValueError(
                    f"{layer.who} was called, inside the model's call(), on a slice or view of "
                    "another layer's output taken with NumPy. Training differentiates layer calls "
                    "only: do that step inside a layer, or give the layer the output itself")


# -- graphs of symbolic tensors --------------------------------------------------------------------

class Graph:
    """A functional model's graph: its input and output tensors (flat lists), its nodes in
    dependency order, its layers in Keras's order, and the steps that run it."""

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.nodes, self.layers = map_graph(self.inputs, self.outputs)
        self.steps = make_steps(self.nodes)
        self.input_keys = [id(t) for t in self.inputs]
        self.output_keys = [id(t) for t in self.outputs]
        self.input_layers = [t._keras_history.layer for t in self.inputs]
        # Without models among its layers, the layers holding parameters are fixed: kept here.
        starts = {id(node.layer) for node in self.nodes if node.is_input}
        self.plain_layers = None if any(getattr(layer, "is_model", False) for layer in self.layers) \
            else [layer for layer in self.layers if id(layer) not in starts]

    def own_node(self, layer):
        """The layer's first call in this graph (None if it has none)."""
        own = {id(node) for node in self.nodes}
        return next((node for node in inbound_nodes(layer) if id(node) in own), None)


def map_graph(inputs, outputs):
    """Walk the nodes back from ``outputs`` to ``inputs`` (flat lists of KerasTensors).

    Returns ``(nodes, layers)``: the nodes in dependency order (inputs' nodes first) and the
    layers in Keras's order. ValueError for an Input given twice, an output that needs an Input
    not among ``inputs``, a cycle, or two layers of one name."""
    for t in list(inputs) + list(outputs):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"a model's inputs and outputs must be symbolic tensors (from "
                            f"fastrnn.Input and layers called on them), got {type(t).__name__}")
    seen_inputs = set()
    for t in inputs:
        if id(t) in seen_inputs:
            raise ValueError(f"the input {t.name!r} is given twice in the model's inputs")
        seen_inputs.add(id(t))
        if not t.node.is_input:
            raise ValueError(f"the model input {t.name!r} is the output of layer "
                             f"{t._keras_history.layer.name!r}; a model's inputs must come from "
                             "fastrnn.Input(...)")
    order, first_seen = _walk(inputs, outputs)
    depth = _node_depths(order)
    layers = _layers_by_depth(order, depth, first_seen)
    for t in inputs:  # inputs no output uses still belong to the model (Keras puts them at depth 0)
        layer = t._keras_history.layer
        if all(layer is not other for other in layers):
            deeper = sum(1 for other in layers if depth[id(other)] > 0)
            layers.insert(deeper, layer)
            depth[id(layer)] = 0
            order.insert(0, t.node)
    names = [layer.name for layer in layers]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"the name {name!r} is used by {names.count(name)} layers of the model; "
                             "layer names must be unique")
    return order, layers


def _walk(inputs, outputs):
    """Depth-first walk from the outputs: nodes in dependency order, and each layer's first-seen index."""
    input_ids = {id(t) for t in inputs}
    done, in_progress = set(), set()
    order, first_seen = [], {}

    def visit(tensor, consumer):
        node = tensor.node
        if id(node) in done:
            return
        layer = tensor._keras_history.layer
        if node.is_input and id(tensor) not in input_ids:
            raise ValueError(
                f"graph disconnected: {consumer} needs the Input {tensor.name!r}, which is not "
                "among the model's inputs (was a layer called with tensors of another model?)")
        if id(node) in in_progress:
            raise ValueError(f"the graph has a cycle through layer {layer.name!r}")
        first_seen.setdefault(id(layer), len(first_seen))
        in_progress.add(id(node))
        for t in node.input_tensors:
            visit(t, f"layer {layer.name!r}")
        in_progress.discard(id(node))
        done.add(id(node))
        order.append(node)

    for t in outputs:
        visit(t, f"the model output {t.name!r}")
    return order, first_seen


def _node_depths(order):
    """Depth of each node: 0 for the outputs' nodes, more than every node that uses its outputs.
    A layer's nodes share the largest depth any of them gets (Keras's rule for shared layers)."""
    in_graph = {id(node) for node in order}
    node_depth, layer_depth = {}, {}
    for node in reversed(order):
        depth = max(node_depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
        node_depth[id(node)] = layer_depth[id(node.layer)] = depth
        for parent in node.parent_nodes:
            if id(parent) in in_graph:
                node_depth[id(parent)] = max(node_depth.get(id(parent), 0), depth + 1)
    return {id(node.layer): layer_depth[id(node.layer)] for node in order}


def _layers_by_depth(order, depth, first_seen):
    layers, seen = [], set()
    for node in order:
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            layers.append(node.layer)
    layers.sort(key=lambda layer: (-depth[id(layer)], first_seen[id(layer)]))
    return layers


def make_steps(nodes) -> list[Step]:
    """The steps of the non-input nodes; keys are the symbolic tensors' ids."""
    steps = []
    for node in nodes:
        if node.is_input:
            continue
        kwargs = dict(node.kwargs)
        states = kwargs.pop("initial_state", None)
        mask = kwargs.pop("mask", None)
        training = kwargs.pop("training", None)
        multi = isinstance(node.inputs, (list, tuple))
        inputs = [id(t) for t in (node.inputs if multi else [node.inputs])]
        steps.append(Step(node.layer, inputs, multi,
                          [] if states is None else [id(t) for t in flatten(states)],
                          [id(t) for t in node.outputs], node.returns_list,
                          mask=None if mask is None else pack_like(mask, [
                              None if m is None else id(m) for m in flatten(mask)]),
                          kwargs=kwargs, training=training, state_structure=states,
                          output_structure=node.structure))
    return steps


def output_shapes(nodes, inputs, input_shapes):
    """The output shapes of every node for other input shapes: key -> shape."""
    shapes = {id(t): tuple(s) for t, s in zip(inputs, input_shapes)}
    for node in nodes:
        if node.is_input:
            continue
        multi = isinstance(node.inputs, (list, tuple))
        given = [shapes[id(t)] for t in (node.inputs if multi else [node.inputs])]
        out = node.layer.compute_output_shape(given if multi else given[0])
        for t, s in zip(node.outputs, shape_leaves(out)):
            shapes[id(t)] = s
    return shapes


# -- configs in Keras's form ----------------------------------------------------------------------

def graph_config(model_name, trainable, layers, nodes, inputs_struct, outputs_struct) -> dict:
    """``{"name", "trainable", "layers", "input_layers", "output_layers"}`` as Keras writes it.

    Each layer's entry is its serialized form with its ``name`` and its ``inbound_nodes`` in
    this model: ``{"args": [...], "kwargs": {...}}`` with every tensor written as
    ``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
    [layer name, node index, tensor index]}}``. Node indices count only this model's calls."""
    from fastrnn.layers.base import serialize

    own = {id(node) for node in nodes}
    index_in_model = {}  # id(node) -> its index among its layer's nodes in this model
    for layer in layers:
        kept = 0
        for node in inbound_nodes(layer):
            if id(node) in own:
                index_in_model[id(node)] = kept
                kept += 1

    def tensor_ref(t):
        layer, node_index, tensor_index = t._keras_history
        return [layer.name, index_in_model[id(inbound_nodes(layer)[node_index])], tensor_index]

    def write(value):
        if isinstance(value, KerasTensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(value.shape), "dtype": value.dtype,
                               "keras_history": tensor_ref(value)}}
        if isinstance(value, (list, tuple)):
            return [write(v) for v in value]
        if isinstance(value, dict):
            return {k: write(v) for k, v in value.items()}
        return value

    layer_configs = []
    for layer in layers:
        spec = serialize(layer)
        spec["name"] = layer.name
        spec["inbound_nodes"] = [{"args": [write(node.inputs)], "kwargs": write(node.kwargs)}
                                 for node in inbound_nodes(layer)
                                 if id(node) in own and not node.is_input]
        layer_configs.append(spec)

    def refs(structure):
        if isinstance(structure, KerasTensor):
            return tensor_ref(structure)
        if isinstance(structure, dict):
            return {k: refs(v) for k, v in structure.items()}
        return [refs(v) for v in structure]

    return {"name": model_name, "trainable": trainable, "layers": layer_configs,
            "input_layers": refs(inputs_struct), "output_layers": refs(outputs_struct)}


def is_graph_config(config) -> bool:
    return isinstance(config, dict) and all(k in config for k in ("layers", "input_layers", "output_layers"))


def graph_from_config(config):
    """Make the layers of a ``graph_config`` and call them again: -> (inputs, outputs) structures.

    Calls are made once the tensors they take exist, so layers shared at several depths are
    rebuilt too. ValueError for a config that does not describe a graph."""
    from fastrnn.layers.base import deserialize

    created, pending = {}, []
    for spec in config["layers"]:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"a layer entry of the model config must be a dict with a name, got {spec!r}")
        layer = deserialize({"class_name": spec.get("class_name"), "config": spec.get("config")})
        if layer.name != spec["name"]:
            raise ValueError(f"layer {layer.name!r} is listed as {spec['name']!r} in the model config")
        created[spec["name"]] = layer
        pending.extend((layer, node) for node in spec.get("inbound_nodes", []))

    def tensor(ref):
        """The tensor of a [layer name, node index, tensor index] reference; LookupError while
        the call it names has not been made yet."""
        if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
                and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ref[1:])):
            raise ValueError(f"a tensor reference must be [layer name, node index, tensor index], "
                             f"got {ref!r}")
        name, node_index, tensor_index = ref
        if name not in created:
            raise ValueError(f"the model config refers to an unknown layer {name!r}")
        nodes = inbound_nodes(created[name])
        if node_index >= len(nodes):
            raise LookupError(ref)
        if tensor_index >= len(nodes[node_index].outputs):
            raise ValueError(f"the model config refers to output {tensor_index} of a call of layer "
                             f"{name!r}, which has {len(nodes[node_index].outputs)}")
        return nodes[node_index].outputs[tensor_index]

    def read(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor(value["config"]["keras_history"])
        if isinstance(value, list):
            return [read(v) for v in value]
        if isinstance(value, dict):
            return {k: read(v) for k, v in value.items()}
        return value

    while pending:
        waiting = []
        for layer, node in pending:
            try:
                args, kwargs = read(node["args"]), read(node["kwargs"])
            except LookupError:
                waiting.append((layer, node))
                continue
            if not isinstance(args, list) or len(args) != 1 or not isinstance(kwargs, dict):
                raise ValueError(f"the call of layer {layer.name!r} in the model config must have one "
                                 "argument and a dict of keyword arguments")
            layer(args[0], **kwargs)
        if len(waiting) == len(pending):
            raise ValueError("the model config's layer calls cannot be made: their inputs never "
                             f"appear (layers {sorted({layer.name for layer, _ in waiting})})")
        pending = waiting

    def read_refs(structure):
        if isinstance(structure, list) and len(structure) == 3 and isinstance(structure[0], str):
            try:
                return tensor(structure)
            except LookupError:
                raise ValueError(f"the model config's inputs or outputs name a layer call that it "
                                 f"does not make: {structure!r}") from None
        if isinstance(structure, dict):
            return {k: read_refs(v) for k, v in structure.items()}
        if isinstance(structure, list):
            return [read_refs(v) for v in structure]
        raise ValueError(f"bad input_layers/output_layers entry in the model config: {structure!r}")

    return read_refs(config["input_layers"]), read_refs(config["output_layers"])
