"""Keras-style models: the functional API (``Model(inputs, outputs)``), ``Sequential``, and
subclassed models; ``compile``/``fit``/``evaluate``/``predict``/``save``, and ``load_model``.

Three ways to make a model, as in Keras 3:

- Functional: call layers on ``fastrnn.Input(...)`` and give the ends to ``Model``::

      inputs = fastrnn.Input(shape=(None,), dtype="int32")
      x = layers.Embedding(20000, 128, mask_zero=True)(inputs)
      outputs = layers.Dense(1, activation="sigmoid")(layers.Bidirectional(layers.LSTM(64))(x))
      model = fastrnn.Model(inputs, outputs)

  Any directed acyclic graph of layer calls: several inputs and outputs, a layer called more
  than once (shared), ``initial_state=`` from other layers' returned states, masks passed on.
- ``Sequential([...])``: a chain. Once it knows its input shape it makes the same graph of
  its layers, and runs as a functional model does.
- Subclassing: ``class M(fastrnn.Model)`` sets layers as attributes in ``__init__`` and
  defines ``call(self, inputs, training=False)``. ``call`` runs on arrays; the layer calls it
  makes are recorded on a tape, which the backward pass runs through in reverse. Only layer
  calls are differentiated: NumPy arithmetic on a layer's output inside ``call`` gives an array
  the tape treats as a constant (a view of one, such as a slice, is refused in training).

One training step (``train_on_batch``, and each batch of ``fit``)::

    y_pred = forward(x, training=True)               # layers keep what backward needs
    loss = sum(weight * loss(y, y_pred)) over the outputs; dy = its gradient per output
    backward(dy)                                      # gradients of every parameter
    optimizer.apply_gradients(params, grads)          # updates the params in place

A model is a layer too: it can be called on arrays, or on symbolic tensors inside another
functional model. Its ``layers`` are, for a functional model, every layer of the graph in
Keras's order (InputLayers first); for Sequential, its layers without the input; for a
subclassed model, the layers set as its attributes. Its weights (``get_weights``,
``trainable_params``) are those of the layers it holds, each layer once, nested models
opened up.

Data is batch-major (``x: (N, T, F)``, ids ``(N, T)``). With several inputs or outputs, ``x``
and ``y`` are lists (in ``model.inputs`` / ``model.outputs`` order) or dicts keyed by input /
output names (the names of their Input and output layers).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import signal
import sys
import threading
import warnings

import numpy as np

from fastrnn import _compile, _data, distributed
from fastrnn import _data_adapters as adapters
from fastrnn._checks import check_fit_args, check_flag, check_int
from fastrnn import metrics as metrics_module
from fastrnn import functional as graph_engine
from fastrnn import optimizers as optimizers_module
from fastrnn.keras_tensor import KerasTensor, flatten, inbound_nodes, pack_like
from fastrnn.layers import variables
from fastrnn.layers.base import Layer, collect_activity_losses, deserialize, serialize
from fastrnn.layers.core import InputLayer
from fastrnn.utils import get_rng

__all__ = ["Model", "Functional", "Sequential", "load_model"]


def _one_at_a_time(method):
    """Run ``method`` holding the model's lock (``Model.step_lock``): a training step, a
    predict or a weight read or write never interleaves with another thread's."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.step_lock:
            return method(self, *args, **kwargs)
    return locked


def _claiming(what: str, stateful_only: bool = False):
    """Run the method inside ``Model._claimed(what)`` (only for a model with stateful layers
    when ``stateful_only``: see ``Model._claimed_if_stateful``)."""
    def wrap(method):
        @functools.wraps(method)
        def claimed(self, *args, **kwargs):
            claim = self._claimed_if_stateful if stateful_only else self._claimed
            with claim(what):
                return method(self, *args, **kwargs)
        return claimed
    return wrap


# What compile sets: a failed compile puts them back.
_COMPILE_STATE = ("optimizer", "loss", "metric_ids", "weighted_metric_ids", "loss_weights",
                  "metrics", "_targets", "compiled", "_train_params")


def _check_path(path, name: str) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or a path, got {type(path).__name__}: {path!r}")


def _check_print_fn(print_fn) -> None:
    if print_fn is not None and not callable(print_fn):
        raise TypeError(f"summary: print_fn must be callable (or None for print), got "
                        f"{type(print_fn).__name__}")


def _is_stateful(layer) -> bool:
    return bool(getattr(layer, "stateful", False)) or any(_is_stateful(s) for s in layer.sublayers)


class _Run:
    """What a training forward pass leaves for the backward pass: the steps taken, the layers'
    call states, and the keys of the inputs and outputs (see ``fastrnn.functional``)."""

    __slots__ = ("steps", "call_states", "input_keys", "output_keys", "keep")

    def __init__(self, steps, call_states, input_keys, output_keys, keep=None):
        self.steps, self.call_states = steps, call_states
        self.input_keys, self.output_keys = input_keys, output_keys
        self.keep = keep  # a tape's arrays, whose ids are the keys


class Model(Layer):
    """A model: the functional API, the base of Sequential, and the class to subclass.

    ``Model(inputs, outputs, name=None)`` with symbolic tensors (``fastrnn.Input`` and layers
    called on it; lists or dicts of them for several) makes a functional model. A subclass
    defines ``call`` and sets its layers as attributes. See the module docstring.

    For graph models: ``inputs``/``outputs`` (flat lists of symbolic tensors), ``input``/
    ``output`` (as given), ``input_names``/``output_names``, ``layers``; every layer's
    ``_inbound_nodes`` hold its calls (``fastrnn.keras_tensor``).
    """

    is_model = True

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            cls = Functional  # as in Keras, Model(inputs, outputs) makes a functional model
        model = super().__new__(cls)
        model._init_args = (args, dict(kwargs))  # for a subclass's automatic config
        model._step_lock = threading.RLock()  # here, so that a subclass's own __init__ has it too
        model._claim_lock = threading.Lock()  # guards _claimed_by (never held while running)
        model._claimed_by = None  # (thread id, what) while fit/evaluate/... runs
        return model

    # -- threads ---------------------------------------------------------------------------------

    @property
    def step_lock(self) -> threading.RLock:
        """The model's lock, held across each training step (forward, backward, update), each
        ``predict`` or ``predict_on_batch`` call and each weight read or write. So a predict
        from another thread during ``fit`` runs between two steps, all of it with the weights
        of one step boundary, and the fit waits for it."""
        return self._step_lock

    @contextlib.contextmanager
    def _claimed(self, what: str):
        """fit, evaluate, train_on_batch and test_on_batch share the model's metrics and
        optimizer: one thread at a time may run them (re-entrant in that thread, as fit's
        validation and callbacks run evaluate). Another thread's call is a RuntimeError."""
        me = threading.get_ident()
        with self._claim_lock:
            self._check_not_claimed(what, me)
            first = self._claimed_by is None
            if first:
                self._claimed_by = (me, what)
        try:
            yield
        finally:
            if first:
                with self._claim_lock:
                    self._claimed_by = None

    def _check_not_claimed(self, what: str, me: int) -> None:
        owner = self._claimed_by
        if owner is not None and owner[0] != me:
            raise RuntimeError(f"model {self.name!r} is running {owner[1]} in another thread: "
                               f"{what} cannot run at the same time (they share the model's "
                               "metrics, optimizer and stateful layers' states); predict can, "
                               "on a model without stateful layers")

    def _claimed_if_stateful(self, what: str):
        """Stateful layers carry one sequence's state from batch to batch: a predict on a model
        with them claims it as fit does, lest two threads' batches mix their states."""
        if any(_is_stateful(layer) for layer in self._leaf_layers()):
            return self._claimed(what)
        return contextlib.nullcontext()

    def __getstate__(self):
        state = self.__dict__.copy()  # a lock cannot be copied: a copy gets a lock of its own
        state.pop("_step_lock", None)
        state.pop("_claim_lock", None)
        state["_claimed_by"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._step_lock = threading.RLock()
        self._claim_lock = threading.Lock()

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if type(self) is Model:
            raise TypeError("Model() needs inputs and outputs: Model(inputs, outputs) for the "
                            "functional API; or subclass Model and define call(); or use Sequential")
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.optimizer = None
        self.loss = None
        self.loss_weights = None
        self.metric_ids = []  # what compile was given
        self.weighted_metric_ids = None
        self.metrics = None  # Metric objects, chosen at the first batch (accuracy needs shapes)
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.metadata = None  # the JSON dict stored by save(..., metadata=...)
        self._targets = None  # per-output losses and metrics (fastrnn._compile)
        self._train_params = None  # the params list the optimizer sees, fixed per compile
        self._param_grads = {}  # id(param) -> gradient, from the last backward pass
        self._run = None  # the last training forward pass (_Run)
        self._last_masks = None
        self._interrupted = False
        self._distributed = None  # a fastrnn.distributed.FitRun while fit runs under MPI
        self._graph = None
        self._build_shapes = None  # a subclassed model: the input shapes of its first call
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("a functional model needs both inputs and outputs")
            self._init_graph(inputs, outputs)

    # -- the graph of a functional model -------------------------------------------------------

    def _init_graph(self, inputs, outputs):
        for what, structure in (("inputs", inputs), ("outputs", outputs)):
            leaves = flatten(structure)
            if not leaves:
                raise ValueError(f"a functional model needs at least one tensor in {what}")
            for t in leaves:
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"Model {what} must be symbolic tensors (fastrnn.Input(...) and "
                                    f"layers called on it), got {type(t).__name__}")
        self._graph = graph_engine.Graph(flatten(inputs), flatten(outputs))
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self.built = True
        if self.compiled:
            self._targets = self._make_targets()

    @property
    def inputs(self):
        return None if self._graph is None else list(self._graph.inputs)

    @property
    def outputs(self):
        return None if self._graph is None else list(self._graph.outputs)

    @property
    def input(self):
        self._require_graph("input")
        return self._inputs_struct

    @property
    def output(self):
        self._require_graph("output")
        return self._outputs_struct

    @property
    def input_names(self) -> list[str]:
        return [] if self._graph is None else [t._keras_history.layer.name for t in self._graph.inputs]

    @property
    def output_names(self) -> list[str]:
        """The names of the layers that make the outputs (Keras's), made unique with a suffix."""
        if self._graph is None:
            count = len(self._last_masks) if self._last_masks is not None else 1
            return ["output"] if count == 1 else [f"output_{k}" for k in range(count)]
        names = []
        for t in self._graph.outputs:
            name = t._keras_history.layer.name
            names.append(name if name not in names else f"{name}_{t._keras_history.tensor_index}")
        return names

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._graph.inputs] if self._graph is not None else None
        return shapes[0] if shapes and len(shapes) == 1 else shapes

    @input_shape.setter
    def input_shape(self, value):  # Layer.__init__ sets it; a model's comes from its graph
        pass

    @property
    def output_shape(self):
        self._require_graph("output_shape")
        shapes = [t.shape for t in self._graph.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _require_graph(self, what):
        if self._graph is None:
            raise ValueError(f"model {self.name!r} has no graph of symbolic tensors, so no {what} "
                             "(a subclassed model, or a Sequential model not built yet)")

    @property
    def layers(self) -> list[Layer]:
        """A graph's layers; for a subclassed model, the layers among its attributes (alone, or
        in a list, tuple or dict), in the order the attributes were first set."""
        if self._graph is not None:
            return list(self._graph.layers)
        found = []
        for name, value in vars(self).items():
            if name != "_init_args":
                found.extend(layer for layer in _layers_in(value)
                             if layer is not self and all(layer is not f for f in found))
        return found

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of ``layers``."""
        layers = self.layers
        if index is not None:
            index = check_int("get_layer: index", index)
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"model {self.name!r} has {len(layers)} layers, no index {index}")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"model {self.name!r} has no layer named {name!r}; its layers: "
                         f"{[layer.name for layer in layers]}")

    def _leaf_layers(self) -> list[Layer]:
        """The layers that hold parameters, each once, nested models opened up, in order."""
        if self._graph is not None and self._graph.plain_layers is not None:
            return list(self._graph.plain_layers)
        out, seen = [], set()

        def visit(model):
            for layer in model.layers:
                if isinstance(layer, Model):
                    visit(layer)
                elif id(layer) not in seen and not isinstance(layer, InputLayer):
                    seen.add(id(layer))
                    out.append(layer)

        visit(self)
        return out

    def _trainable_leaves(self) -> list[Layer]:
        out, seen = [], set()

        def visit(model):
            if not model.trainable:
                return
            for layer in model.layers:
                if isinstance(layer, Model):
                    visit(layer)
                elif layer.trainable and id(layer) not in seen and not isinstance(layer, InputLayer):
                    seen.add(id(layer))
                    out.append(layer)

        visit(self)
        return out

    # -- running ---------------------------------------------------------------------------------

    def call(self, inputs, training=False, mask=None):
        """A graph model runs its graph; a subclass defines ``call(self, inputs, training=False)``."""
        if self._graph is None:
            raise NotImplementedError(f"model {self.name!r} ({type(self).__name__}) has no call(): a "
                                      "subclass of Model must define call(self, inputs, training=False)")
        return self.eager_call(inputs, training=training, mask=mask)

    @_one_at_a_time
    def _forward(self, x, training=False, masks=None):
        """x: the inputs, a flat list for graph models (as given for subclassed ones) ->
        (outputs, their masks), flat lists. A training pass is kept in ``self._run``."""
        if self._graph is not None:
            graph = self._graph
            where = f"model {self.name!r}"
            x = [layer.prepare(a, where) for layer, a in zip(graph.input_layers, x)]
            values = dict(zip(graph.input_keys, x))
            mask_values = {} if masks is None else {k: m for k, m in zip(graph.input_keys, masks)
                                                    if m is not None}
            states = graph_engine.run_steps(graph.steps, values, mask_values, training)
            outputs = [values[k] for k in graph.output_keys]
            out_masks = [mask_values.get(k) for k in graph.output_keys]
            if training:
                self._run = _Run(graph.steps, states, graph.input_keys, graph.output_keys)
        else:
            outputs, out_masks = self._forward_subclassed(x, training)
        self._last_masks = out_masks
        return outputs, out_masks

    def _forward_subclassed(self, x, training):
        flat_in = flatten(x)
        with graph_engine.Tape(flat_in, training) as tape:
            result = self.call(x, **self._call_kwargs(training))
        self._output_struct = result
        outputs = flatten(result)
        for o in outputs:
            if not isinstance(o, np.ndarray):
                raise TypeError(f"model {self.name!r}: call() must return arrays (or lists or dicts "
                                f"of them), got {type(o).__name__}")
        if self._build_shapes is None:
            self._build_shapes = _data.shapes_of(x)
            self.built = True
        if training:
            self._run = _Run(tape.steps, tape.call_states, [id(a) for a in flat_in],
                             [id(o) for o in outputs], keep=tape.keep)
        return outputs, [tape.masks.get(id(o)) for o in outputs]

    def _call_kwargs(self, training):
        try:
            parameters = inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            return {}
        takes = "training" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        return {"training": training} if takes else {}

    def _backward(self, d_outputs):
        """Gradients of the outputs (a flat list, None where none) -> those of the inputs;
        leaves the parameters' gradients in ``self._param_grads``."""
        run = self._run
        if run is None:
            raise RuntimeError(f"model {self.name!r}: backward needs a forward pass with "
                               "training=True first")
        grads = {}
        for k, d in zip(run.output_keys, d_outputs):
            graph_engine.accumulate(grads, k, d)
        self._param_grads = graph_engine.backward_steps(run.steps, run.call_states, grads)
        return [grads.get(k) for k in run.input_keys]

    def forward(self, x, training=False):
        """x -> (output, its mask): the outputs and masks as lists for a model with several."""
        outputs, masks = self._forward(self._model_inputs(x, "forward"), training)
        return self._pack_outputs(outputs), (masks[0] if len(masks) == 1 else masks)

    @_one_at_a_time
    def backward(self, dy):
        """Gradient of the output (a list for several outputs) -> that of the input (a list for
        several); sets ``grads`` (one per array of ``params``) after a training forward pass."""
        if self._run is None:
            raise RuntimeError(f"model {self.name!r}: backward needs a forward pass with "
                               "training=True first")
        d_inputs = self._backward(list(dy) if len(self._run.output_keys) > 1 else [dy])
        params = self.params
        grads = [self._param_grads.get(id(p)) for p in params]
        self.grads = [np.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        return d_inputs if len(d_inputs) > 1 else d_inputs[0]

    def _pack_outputs(self, outputs):
        """Flat outputs -> one array for a single output (as Keras unpacks it), else the
        nesting of the model's outputs."""
        if len(outputs) == 1 and not isinstance(self._output_structure(), dict):
            return outputs[0]
        return pack_like(self._output_structure(), outputs)

    def _output_structure(self):
        return self._outputs_struct if self._graph is not None else self._output_struct

    # -- the layer protocol, for a model inside another model ----------------------------------

    @property
    def multi_input(self) -> bool:
        if self._graph is not None:
            return len(self._graph.inputs) > 1
        return isinstance(self._build_shapes, list)

    def eager_call(self, inputs, training=False, mask=None, **kwargs):
        if kwargs:
            raise TypeError(f"model {self.name!r} takes no call arguments {sorted(kwargs)}")
        x = self._model_inputs(inputs, "call")
        masks = None if mask is None else (list(mask) if isinstance(mask, (list, tuple)) else [mask])
        outputs, _ = self._forward(x, training=bool(training), masks=masks)
        return self._pack_outputs(outputs)

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        if self._input_count() is None and any(isinstance(t, KerasTensor) for t in flatten([inputs, mask])):
            raise TypeError(f"model {self.name!r} ({type(self).__name__}) cannot be called on "
                            "symbolic tensors: a subclassed model runs on arrays only")
        return super().__call__(inputs, training=training, mask=mask, **kwargs)

    def compute_mask(self, inputs, mask=None):
        masks = self._last_masks or [None]
        return masks[0] if len(masks) == 1 else list(masks)

    def call_state(self):
        return self._run

    def set_call_state(self, state):
        self._run = state

    def check_input_shape(self, shape):
        self.check_input_shapes([shape])

    def check_input_shapes(self, shapes):
        self._require_graph("symbolic call")
        expected = [t.shape for t in self._graph.inputs]
        if len(shapes) != len(expected):
            raise ValueError(f"model {self.name!r} takes {len(expected)} input(s), got {len(shapes)}")
        for name, shape, want in zip(self.input_names, shapes, expected):
            if len(shape) != len(want) or any(a is not None and b is not None and a != b
                                              for a, b in zip(shape[1:], want[1:])):
                raise ValueError(f"model {self.name!r}: input {name!r} expects shape {want}, "
                                 f"got {tuple(shape)}")

    def compute_output_shape(self, input_shape):
        self._require_graph("output shape")
        given = input_shape if self.multi_input else [input_shape]
        shapes = graph_engine.output_shapes(self._graph.nodes, self._graph.inputs, given)
        out = [shapes[k] for k in self._graph.output_keys]
        return out if len(out) > 1 else out[0]

    def symbolic_output_dtypes(self, count):
        self._require_graph("symbolic outputs")
        return [t.dtype for t in self._graph.outputs]

    def build(self, input_shape=None):
        """Functional models are built when made. A subclassed model is built by running
        ``call`` once on zeros of ``input_shape`` (a shape, or a list of shapes; None -> 1)."""
        if self._graph is not None or input_shape is None:
            return
        zeros = _data.zeros_like_shapes(input_shape)
        saved = [layer.carried_states() for layer in self._leaf_layers()]
        try:
            self._forward(zeros, training=False)
        finally:
            for layer, states in zip(self._leaf_layers(), saved):
                layer.restore_states(states)
        self._build_shapes = _data.json_shapes(input_shape)

    # -- weights -------------------------------------------------------------------------

    @property
    def params(self) -> list[np.ndarray]:
        return [p for layer in self._leaf_layers() for p in layer.params]

    @property
    def sublayers(self):
        return self._leaf_layers()

    @property
    def trainable_params(self) -> list[np.ndarray]:
        """The arrays training updates (kernel layout), trainable layers in order."""
        return [p for layer in self._trainable_leaves() for p in layer.params]

    def _trainable_grads(self) -> list[np.ndarray]:
        params = self._train_params if self._train_params is not None else self.trainable_params
        grads = []
        for p in params:
            g = self._param_grads.get(id(p))
            grads.append(np.zeros_like(p) if g is None else g)
        return grads

    @_one_at_a_time
    def get_weights(self) -> list[np.ndarray]:
        """All layers' weights, in Keras's layout, layer by layer."""
        return [w for layer in self._leaf_layers() for w in layer.get_weights()]

    def weight_shapes(self):
        return [s for layer in self._leaf_layers() for s in layer.weight_shapes()]

    def set_weights(self, weights) -> None:
        """Set all weights from a list like ``get_weights()`` returns (ValueError on a mismatch,
        with no weight changed)."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"model {self.name!r}: set_weights: weights must be a list of arrays "
                            f"(as get_weights() returns), got {type(weights).__name__}")
        self.assign_weights(self.checked_weights(weights))

    def checked_weights(self, weights):
        weights = list(weights)
        layers = self._built_layers("set_weights")
        expected = sum(len(layer.weight_shapes()) for layer in layers)
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r}: set_weights expects {expected} arrays "
                             f"(get_weights() order), got {len(weights)}")
        checked, k = [], 0
        for layer in layers:  # every layer's arrays checked before any is assigned
            n = len(layer.weight_shapes())
            checked.append(layer.checked_weights(weights[k:k + n]))
            k += n
        return checked

    @_one_at_a_time
    def assign_weights(self, weights) -> None:
        for layer, arrays in zip(self._leaf_layers(), weights):
            layer.assign_weights(arrays)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._built_layers("count_params"))

    @_one_at_a_time
    def reset_states(self) -> None:
        """Forget the state carried by stateful recurrent layers."""
        for layer in self._leaf_layers():
            layer.reset_states()

    def carried_states(self):
        return [layer.carried_states() for layer in self._leaf_layers()]

    def restore_states(self, saved) -> None:
        for layer, states in zip(self._leaf_layers(), saved):
            layer.restore_states(states)

    def _built_layers(self, what):
        layers = self._leaf_layers()
        if not self.built or not all(layer.built for layer in layers):
            raise ValueError(f"model {self.name!r} is not built, so {what} is not possible yet: "
                             "give the first layer an input_shape, call build(), or call the model on data")
        return layers

    # -- compile -------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None):
        """Choose the optimizer, loss(es) and metrics, by name or instance.

        optimizer: e.g. 'adam' or ``fastrnn.optimizers.Adam(1e-3)``;
        loss: e.g. 'binary_crossentropy' or a ``fastrnn.losses.Loss``; for several outputs one
        loss for all, a list (one per output, None for none) or a dict keyed by output names;
        loss_weights: None, or a list or dict like loss: the loss minimised is the weighted sum;
        metrics: a list such as ['accuracy'] or ['mae']; for several outputs a list with one
        entry per output, or a dict keyed by output names. They count every sample alike (masked
        steps excepted);
        weighted_metrics: metrics in the same forms that weigh each sample by ``fit``'s or
        ``evaluate``'s ``sample_weight`` (or ``class_weight``), logged under their own name, or
        as ``weighted_<name>`` when ``metrics`` has one of that name.
        Unknown names raise ValueError naming the valid ones; lists or dicts that do not fit
        the outputs raise ValueError naming them (for a subclassed model, at the first batch).
        """
        saved = {key: self.__dict__.get(key) for key in _COMPILE_STATE}
        try:
            self._compile(optimizer, loss, metrics, loss_weights, weighted_metrics)
        except BaseException:  # a failed compile leaves the model as it was
            self.__dict__.update(saved)
            raise

    def _compile(self, optimizer, loss, metrics, loss_weights, weighted_metrics=None):
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='mse' or loss='binary_crossentropy'")
        if not (metrics is None or isinstance(metrics, (str, list, tuple, dict, metrics_module.Metric))
                or callable(metrics)):
            raise TypeError(f"compile: metrics must be a list, tuple or dict of metrics (or one "
                            f"metric), got {type(metrics).__name__}: {metrics!r}")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = _compile.resolve_loss(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        _compile.check_metric_names(metrics)
        self.metric_ids = metrics if isinstance(metrics, dict) else list(metrics)
        if weighted_metrics is not None:
            if not isinstance(weighted_metrics, (list, tuple, dict)):
                raise TypeError(f"compile: weighted_metrics must be a list, tuple or dict of "
                                f"metrics, got {type(weighted_metrics).__name__}: {weighted_metrics!r}")
            _compile.check_metric_names(weighted_metrics)
            if not isinstance(weighted_metrics, dict):
                weighted_metrics = list(weighted_metrics)
        self.weighted_metric_ids = weighted_metrics
        self.loss_weights = loss_weights
        self.metrics = None
        self._targets = None
        self.compiled = True
        self._train_params = None
        if self._graph is not None or isinstance(self, Sequential):
            self._targets = self._make_targets()

    def _make_targets(self, count=None):
        names = self.output_names if count is None or self._graph is not None else (
            ["output"] if count == 1 else [f"output_{k}" for k in range(count)])
        return _compile.make_targets(self.loss, self.loss_weights, self.metric_ids, names,
                                     getattr(self, "weighted_metric_ids", None))

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"model {self.name!r} must be compiled before {what}: call "
                               "model.compile(optimizer=..., loss=...) first")

    def _ensure_targets(self, count):
        if self._targets is None or len(self._targets) != count:
            self._targets = self._make_targets(count)
        return self._targets

    def _reset_metrics(self):
        for target in self._targets or []:
            for metric in target.metrics or []:
                metric.reset()

    def _metric_logs(self) -> dict:
        logs = {}
        for target in self._targets or []:
            logs.update(target.metric_logs())
        return logs

    # -- one batch ---------------------------------------------------------------------------

    def _loss_mask(self, mask, y_pred):
        """The output mask as the loss takes it (B, T) for sequence outputs, else None."""
        if mask is None or y_pred.ndim < 3 or mask.shape != y_pred.shape[:2]:
            return None
        return mask

    def _losses(self, targets, y, y_pred, masks, gradients, sample_weight=None):
        """-> ({'loss': total, '<output>_loss': ...}, the loss's gradient per output or None).
        sample_weight: None or one entry per output (None or (B,) / (B, T) weights)."""
        total, logs, grads = 0.0, {}, []
        with_loss = [t for t in targets if t.loss is not None]
        weights = sample_weight or [None] * len(targets)
        for target, y_true, pred, mask, sw in zip(targets, y, y_pred, masks, weights):
            if target.loss is None:
                grads.append(None)
                continue
            if y_true is None:
                raise ValueError(f"the model's output {target.name!r} has a loss but no targets "
                                 "were given for it")
            loss_mask = self._loss_mask(mask, pred)
            value = target.loss(y_true, pred, sample_weight=sw, mask=loss_mask)
            total += value if target.weight is None else target.weight * value
            if len(with_loss) > 1:
                logs[target.loss_log] = float(value)
            if gradients:
                g = target.loss.gradient(y_true, pred, sample_weight=sw, mask=loss_mask)
                grads.append(g if target.weight is None else g * g.dtype.type(target.weight))
        return {"loss": float(total), **logs}, grads

    def _update_metrics(self, targets, y, y_pred, masks, sample_weight=None):
        """Add a batch to the metrics. Masked steps count for nothing, as in the loss: the mask
        is the metrics' sample weight, so each is a mean over the unmasked steps; compile's
        weighted_metrics take the product of the mask and the sample weights."""
        weights = sample_weight or [None] * len(targets)
        for target, y_true, pred, mask, sw in zip(targets, y, y_pred, masks, weights):
            if not target.metric_ids or y_true is None:
                continue
            target.ensure_metrics(y_true, pred)
            mask = self._loss_mask(mask, pred)
            for k, metric in enumerate(target.metrics):
                w = mask if target.unweighted(k) else _data.times_mask(sw, mask)
                metric.update(y_true, pred, sample_weight=w)
        self.metrics = [m for t in targets for m in t.metrics or []]

    @contextlib.contextmanager
    def _states_kept_on_error(self):
        """Stateful layers' carried states as they were before the block, if it raises: a batch
        that fails (targets of the wrong shape, say) leaves no trace."""
        layers = self._leaf_layers()
        saved = [layer.carried_states() for layer in layers]
        try:
            yield
        except BaseException:
            for layer, states in zip(layers, saved):
                layer.restore_states(states)
            raise

    def _forward_backward(self, x, y, sample_weight=None):
        """A training forward pass, the losses and the backward pass, which leaves the
        parameters' gradients -> (logs, targets, y per output, y_pred, masks, the activity
        penalties of the layer calls)."""
        with collect_activity_losses() as activity:
            y_pred, masks = self._forward(x, training=True)
            targets = self._ensure_targets(len(y_pred))
            y = self._targets_for(y, targets)
            sw = self._weights_for(sample_weight, targets)
            logs, dy = self._losses(targets, y, y_pred, masks, gradients=True, sample_weight=sw)
            self._backward(dy)
        return logs, targets, y, y_pred, masks, activity, sw

    @_one_at_a_time
    def _train_step(self, x, y, sample_weight=None) -> dict:
        """One optimizer step on a batch; updates the metrics; returns the batch's losses (the
        total with the regularizers' penalties, as Keras's, and each output's without)."""
        if self._distributed is not None:
            return self._distributed.train_step(self, x, y, sample_weight)
        with self._states_kept_on_error():
            logs, targets, y, y_pred, masks, activity, sw = self._forward_backward(x, y, sample_weight)
            if self._train_params is None:
                self._train_params = self.trainable_params
            grads = self._trainable_grads()
            logs["loss"] += sum(activity) + self._add_weight_penalties(grads, self._train_params)
            self._apply_step(grads)
        self._update_metrics(targets, y, y_pred, masks, sw)
        return logs

    @_one_at_a_time
    def _test_step(self, x, y, sample_weight=None) -> dict:
        if self._distributed is not None:
            return self._distributed.test_step(self, x, y, sample_weight)
        with self._states_kept_on_error(), collect_activity_losses() as activity:
            y_pred, masks = self._forward(x, training=False)
            targets = self._ensure_targets(len(y_pred))
            y = self._targets_for(y, targets)
            sw = self._weights_for(sample_weight, targets)
            logs, _ = self._losses(targets, y, y_pred, masks, gradients=False, sample_weight=sw)
            logs["loss"] += sum(activity) + self._weight_penalty()
        self._update_metrics(targets, y, y_pred, masks, sw)
        return logs

    def _weights_for(self, sample_weight, targets):
        """Checked sample weights (None, an array for every output, or a list with one entry
        per output) -> None or one entry per output."""
        if sample_weight is None:
            return None
        if isinstance(sample_weight, np.ndarray):
            return [sample_weight] * len(targets)
        if len(sample_weight) != len(targets):
            raise ValueError(f"sample_weight: the model has {len(targets)} outputs "
                             f"{[t.name for t in targets]}, got {len(sample_weight)} weight arrays")
        return list(sample_weight)

    # -- regularizers, clipping by variable, constraints (see fastrnn.layers.variables) ---------

    def _weight_penalty(self) -> float:
        """The regularizers' penalty of the trainable weights, which Keras adds to every loss."""
        return variables.weight_penalty(self.layers, self.trainable_params)[0]

    def _add_weight_penalties(self, grads, params) -> float:
        """Add the regularizers' gradients to ``grads`` (one per array of ``params``, the
        trainable ones); returns their penalty."""
        penalty, penalty_grads = variables.weight_penalty(self.layers, params)
        for i, g in penalty_grads.items():
            grads[i] = grads[i] + g
        return penalty

    def _apply_step(self, grads) -> None:
        """The optimizer step, clipping each Keras variable as one, then the constraints."""
        variables.check_constraints(self.layers, self._train_params)
        groups = variables.variable_groups(self.layers, self._train_params)
        self.optimizer.apply_gradients(self._train_params, grads, groups=groups)
        variables.apply_constraints(self.layers, self._train_params)

    @_one_at_a_time
    def compute_gradients(self, x, y):
        """Loss and gradients for one batch, without updating anything.

        Returns ``(loss, grads)`` with ``grads[i]`` the gradient of ``trainable_params[i]``
        (kernel layout); both include the regularizers' penalties, as a training step's do.
        The forward pass runs in training mode (dropout active).
        """
        self._require_compiled("compute_gradients")
        x, y = self._check_xy(x, y, "compute_gradients")
        logs, *_, activity, _ = self._forward_backward(x, y)
        params = self.trainable_params
        grads = [self._param_grads.get(id(p)) for p in params]
        grads = [np.zeros_like(p) if g is None else g.copy() for p, g in zip(params, grads)]
        loss = logs["loss"] + sum(activity) + self._add_weight_penalties(grads, params)
        return float(loss), grads

    @_claiming("train_on_batch")
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns the batch's loss (or [loss, ..., *metrics]).
        sample_weight: (B,) (or (B, T) for sequence outputs) weights of the samples;
        class_weight: a dict class index -> weight (one output only)."""
        self._require_compiled("train_on_batch")
        check_flag("return_dict", return_dict)
        x, y = self._check_xy(x, y, "train_on_batch")
        sw = self._sample_weights(sample_weight, class_weight, y, _data.length(x), "train_on_batch")
        self._reset_metrics()
        logs = self._train_step(x, y, sw)
        return self._format_logs({**logs, **self._metric_logs()}, return_dict)

    @_claiming("test_on_batch")
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (or [loss, ..., *metrics]) of (x, y), without training."""
        self._require_compiled("test_on_batch")
        check_flag("return_dict", return_dict)
        x, y = self._check_xy(x, y, "test_on_batch")
        sw = self._sample_weights(sample_weight, None, y, _data.length(x), "test_on_batch")
        self._reset_metrics()
        logs = self._test_step(x, y, sw)
        return self._format_logs({**logs, **self._metric_logs()}, return_dict)

    @_claiming("predict_on_batch", stateful_only=True)
    @_one_at_a_time
    def predict_on_batch(self, x):
        """The model's output for one batch (inference mode)."""
        x = self._check_x(x, "predict_on_batch")
        with self._states_kept_on_error():
            outputs, _ = self._forward(x, training=False)
        return self._pack_outputs(outputs)

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- data --------------------------------------------------------------------------------

    def _input_count(self):
        """How many input arrays the model takes (None: a subclassed model takes what call takes)."""
        return None if self._graph is None else len(self._graph.inputs)

    def _check_x(self, x, what):
        """x with every array checked (numbers, a batch axis, one length); ValueError/TypeError
        naming the input otherwise."""
        if x is None:
            raise ValueError(f"{what} needs input data x")
        x = self._as_inputs(x, what)
        leaves = flatten(x)
        for name, a in zip(self._data_names(leaves, "input"), leaves):
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{what}: x{name} must hold numbers, got dtype {a.dtype}")
            if a.ndim == 0:
                raise ValueError(f"{what}: x{name} must have a batch axis, got a scalar")
        _data.same_length(leaves, self._data_names(leaves, "input"), what, "x")
        return x

    def _data_names(self, leaves, kind):
        if len(leaves) == 1:
            return [""]
        names = self.input_names if kind == "input" else self.output_names
        if len(names) != len(leaves):
            names = [str(k) for k in range(len(leaves))]
        return [f" ({kind} {n!r})" for n in names]

    def _as_inputs(self, x, what):
        """The user's x as this model takes it: a flat list in input order for graph models."""
        if self._input_count() is None:
            return _data.as_data(x)
        return _data.arrays_for(x, self.input_names, what, "input", "x")

    def _model_inputs(self, x, what):
        """x as _forward takes it (``_as_inputs`` without the checks of ``_check_x``)."""
        return self._as_inputs(x, what)

    def _check_xy(self, x, y, what):
        x = self._check_x(x, what)
        n = len(flatten(x)[0])
        if what in ("evaluate", "validation_data", "train_on_batch", "test_on_batch") and n == 0:
            raise ValueError(f"{what} needs at least one sample, got an empty x")
        if y is None:
            raise ValueError(f"{what} needs targets y")
        y = self._as_targets(y, what)
        leaves = [a for a in flatten(y) if a is not None]
        for name, a in zip(self._data_names(leaves, "output"), leaves):
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{what}: y{name} must hold numbers, got dtype {a.dtype}")
            if a.ndim == 0 or len(a) != n:
                raise ValueError(f"{what}: x and y{name} must have the same number of samples, got "
                                 f"{n} and {len(a) if a.ndim else 'a scalar'}")
        return x, y

    def _as_targets(self, y, what):
        if self._input_count() is None:
            return _data.as_data(y)
        targets = self._targets
        names = self.output_names
        if isinstance(y, dict):
            return _data.arrays_for(y, names, what, "output", "y", optional=_data.optional(targets))
        if len(names) > 1 and isinstance(y, (list, tuple)) and targets is not None:
            with_loss = [k for k, t in enumerate(targets) if t.loss is not None]
            if len(y) == len(with_loss) < len(names):  # targets only for the outputs with a loss
                full = [None] * len(names)
                for k, a in zip(with_loss, y):
                    full[k] = np.asarray(a)
                return full
        return _data.arrays_for(y, names, what, "output", "y")

    def _targets_for(self, y, targets):
        """y (checked) -> one entry per output."""
        if isinstance(y, list) and len(y) == len(targets) and self._input_count() is not None:
            return y
        names = [t.name for t in targets]
        if isinstance(y, dict):
            return [None if y.get(name) is None else np.asarray(y[name]) for name in names]
        leaves = flatten(y)
        if len(leaves) == len(targets):
            return leaves
        with_loss = [k for k, t in enumerate(targets) if t.loss is not None]
        if len(leaves) == len(with_loss):
            full = [None] * len(targets)
            for k, a in zip(with_loss, leaves):
                full[k] = a
            return full
        raise ValueError(f"model {self.name!r} has {len(targets)} outputs {names}; got "
                         f"{len(leaves)} target arrays")

    @staticmethod
    def _batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return int(batch_size)

    @staticmethod
    def _verbose(verbose):
        if verbose == "auto":
            return 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        return int(verbose)

    # -- fit ---------------------------------------------------------------------------------

    @_claiming("fit")
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, sharded=False):
        """Train for ``epochs`` passes over (x, y); returns the ``History``.

        x: (N, T, F) (or ids (N, T)), y: (N, ...); lists or dicts of them for several inputs
        or outputs. Or x is the batches themselves, with y, sample_weight and batch_size not
        given: a ``fastrnn.utils.PyDataset``, a generator, or any iterable of batches (a torch
        ``DataLoader``), each batch ``(x, y)`` or ``(x, y, sample_weight)``; a generator is one
        stream for all epochs, so give ``steps_per_epoch`` if it never ends.

        sample_weight: (N,) weights of the samples, or (N, T) of the steps of sequence outputs
        (a list or dict of them for several outputs); class_weight: a dict class index ->
        weight, for one output. The loss is ``sum(w * values) / values.size`` (Keras's
        "sum_over_batch_size"); compile's ``weighted_metrics`` weigh by them too.

        ``validation_split`` holds out the last fraction of the arrays (before shuffling),
        ``validation_data`` is ``(x_val, y_val)``, ``(x_val, y_val, sample_weight_val)`` or a
        dataset; their loss and metrics are logged with a 'val_' prefix, after every epoch
        or as ``validation_freq`` says (an int: every that many epochs; a list: those epochs,
        counted from 1), in batches of ``validation_batch_size`` (default ``batch_size``),
        ``validation_steps`` of them at most. ``shuffle`` reorders the training samples (the
        batches of a PyDataset) every epoch (from ``fastrnn.utils.get_rng()``).
        ``steps_per_epoch``: batches per epoch (array batches continue into the next pass).
        Epochs are numbered from ``initial_epoch`` to ``epochs - 1``.

        Ctrl-C stops training cleanly between two batches: the last optimizer step is
        complete, the partial epoch is not logged, and the History so far is returned.

        After ``fastrnn.distributed.init()`` under MPI, fit trains data-parallel over the ranks
        (see ``fastrnn.distributed``); ``sharded=True`` then means each rank passes its own
        part of the arrays (validation data included). A dataset is read by every rank, which
        must all see the same batches; each global batch is split over the ranks.
        Without MPI ``sharded`` changes nothing.
        """
        run = distributed.fit_run(sharded)
        with run.world.all_or_none("fit") if run else contextlib.nullcontext():
            self._require_compiled("fit")
            check_fit_args(batch_size, epochs, verbose, validation_split, initial_epoch)
            for name, value in (("steps_per_epoch", steps_per_epoch),
                                ("validation_steps", validation_steps),
                                ("validation_batch_size", validation_batch_size)):
                check_int(name, value, low=1, allow_none=True)
            _check_validation_freq(validation_freq)
            adapters.check_class_weight(class_weight)
            verbose = self._verbose(verbose)
            if adapters.is_dataset(x):
                train, validation = self._dataset_source(
                    x, y, sample_weight, batch_size, validation_split, validation_data, shuffle,
                    class_weight, steps_per_epoch, validation_batch_size, validation_steps, run)
            else:
                train, validation = self._array_source(
                    x, y, sample_weight, batch_size, validation_split, validation_data, shuffle,
                    class_weight, steps_per_epoch, validation_batch_size, validation_steps, run)
        if run:
            run.synchronize(self, shuffle)
        self._distributed = run
        try:
            return self._fit_epochs(train, epochs, verbose, callbacks, validation, initial_epoch,
                                    validation_freq)
        finally:
            self._distributed = None

    def _array_source(self, x, y, sample_weight, batch_size, validation_split, validation_data,
                      shuffle, class_weight, steps, validation_batch_size, validation_steps, run):
        x, y = self._check_xy(x, y, "fit")
        n = _data.length(x)
        if n == 0:
            raise ValueError("fit needs at least one sample, got an empty x")
        sw = self._sample_weights(sample_weight, class_weight, y, n, "fit")
        batch_size = self._batch_size(batch_size)
        x, y, sw, validation = self._split_validation(x, y, sw, validation_split, validation_data)
        if run:
            run.prepare(self, x, y, shuffle)
        train = adapters.ArrayAdapter(x, y, sw, batch_size, shuffle, steps, run)
        return train, self._validation_source(validation, validation_batch_size, validation_steps,
                                              run, default_batch_size=batch_size)

    def _dataset_source(self, x, y, sample_weight, batch_size, validation_split, validation_data,
                        shuffle, class_weight, steps, validation_batch_size, validation_steps, run):
        kind = adapters.kind_of(x)
        adapters.unsupported_with_dataset(kind, y=y, sample_weight=sample_weight,
                                          batch_size=batch_size)
        if validation_split:
            raise ValueError(f"validation_split is only supported for arrays, not for a {kind} "
                             f"(got validation_split={validation_split}); give validation_data")
        if run and run.sharded:
            raise ValueError(f"fit(sharded=True) takes arrays: a {kind} is read whole by every "
                             "rank, and each of its batches split over the ranks")
        train = adapters.DatasetAdapter(x, "fit", steps, shuffle, class_weight,
                                        order=run.order if run else None)
        if run:
            xs, ys, _ = self._checked_batch(train.peek(), "fit")
            run.prepare(self, xs, ys, False)
        validation = None
        if validation_data is not None:
            validation = self._validation_pair(validation_data)
        return train, self._validation_source(validation, validation_batch_size,
                                              validation_steps, run)

    def _validation_pair(self, validation_data):
        """validation_data -> a dataset, or checked arrays (x, y, sample_weight)."""
        if adapters.is_dataset(validation_data):
            return validation_data
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a pair (x_val, y_val), a triple (x_val, "
                             "y_val, sample_weight_val) or a dataset, got "
                             f"{type(validation_data).__name__}")
        x, y = self._check_xy(validation_data[0], validation_data[1], "validation_data")
        sw = validation_data[2] if len(validation_data) == 3 else None
        return x, y, self._sample_weights(sw, None, y, _data.length(x), "validation_data")

    def _validation_source(self, validation, batch_size, steps, run, default_batch_size=None):
        if validation is None:
            return None
        if isinstance(validation, tuple):
            size = self._batch_size(batch_size or default_batch_size)
            return adapters.ArrayAdapter(*validation, size, False, steps,
                                         run, continuing=False)
        if batch_size is not None:
            raise ValueError("validation_batch_size must not be given when validation_data is a "
                             "dataset: the dataset's batches have their size")
        return adapters.DatasetAdapter(validation, "validation_data", steps)

    def _sample_weights(self, sample_weight, class_weight, y, n, what):
        """fit's sample_weight or class_weight -> None, an array (B,) / (B, T) for every output,
        or a list with one entry per output (None for none)."""
        if class_weight is not None:
            adapters.check_class_weight(class_weight)
            if sample_weight is not None:
                raise ValueError(f"{what}: give class_weight or sample_weight, not both")
            leaves = [a for a in flatten(y) if a is not None]
            if len(leaves) != 1:
                raise ValueError("class_weight is only supported for models with a single output")
            return adapters.class_weights_for(leaves[0], class_weight)
        if sample_weight is None:
            return None
        if isinstance(sample_weight, dict):
            unknown = sorted(set(sample_weight) - set(self.output_names or []))
            if self._input_count() is None or unknown:
                raise ValueError(f"{what}: sample_weight is a dict with keys {sorted(sample_weight)}; "
                                 f"they must be the model's output names {self.output_names}")
            sample_weight = [sample_weight.get(name) for name in self.output_names]
        if isinstance(sample_weight, (list, tuple)) and not _data.is_number_list(sample_weight):
            return [None if w is None else self._check_weights(w, n, what) for w in sample_weight]
        return self._check_weights(sample_weight, n, what)

    @staticmethod
    def _check_weights(w, n, what):
        w = adapters.as_array(w)
        if w.dtype.kind not in "fiub":
            raise TypeError(f"{what}: sample_weight must hold numbers, got dtype {w.dtype}")
        if w.ndim == 0 or len(w) != n:
            raise ValueError(f"{what}: sample_weight must have one weight per sample ({n}), got "
                             f"shape {w.shape}")
        return w

    def _checked_batch(self, batch, what, targets=True):
        """A dataset's batch (x, y, sample_weight) checked as fit checks arrays."""
        x, y, sw = batch
        if not targets:
            return self._check_x(x, what), None, None
        x, y = self._check_xy(x, y, what)
        return x, y, self._sample_weights(sw, None, y, _data.length(x), what)

    def _batches(self, source, epoch, what, targets=True):
        """The batches (x, y, sample_weight, global rows) of one epoch of ``source``, this
        rank's part of each under MPI."""
        run = self._distributed
        if isinstance(source, adapters.ArrayAdapter):
            for x, y, sw in source.epoch(epoch):
                yield x, y, sw, None if run else _data.length(x)
            return
        stream = source.epoch(epoch)
        while True:
            batch = next(stream, None)
            if run and run.world.any(batch is None)[0]:
                return
            if batch is None:
                return
            x, y, sw = self._checked_batch(batch, what, targets)
            n = _data.length(x)
            if run:
                rows = np.array_split(np.arange(n), run.world.size)[run.world.rank]
                x, y, sw = _data.take(x, rows), _data.take(y, rows), _data.take_weights(sw, rows)
            yield x, y, sw, n

    def _fit_epochs(self, train, epochs, verbose, callbacks, validation, initial_epoch,
                    validation_freq=1):
        run = self._distributed
        callback_list = self._callback_list(callbacks, verbose, add_history=True,
                                            epochs=epochs, steps=train.num_batches())
        self.stop_training = False
        self._interrupted = False
        logs = {}
        with self._stop_on_ctrl_c():
            callback_list.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                with_validation = validation is not None and _should_validate(epoch, validation_freq)
                epoch_logs = self._fit_epoch(epoch, train, with_validation and validation,
                                             callback_list)
                if epoch_logs is None:  # Ctrl-C, or the data ran out
                    break
                logs = epoch_logs
                if run:
                    self.stop_training, self._interrupted = run.world.any(self.stop_training,
                                                                          self._interrupted)
                if self.stop_training or self._interrupted:
                    break
            callback_list.on_train_end(logs)
        self.history = callback_list.history
        if self._interrupted and distributed.is_chief():
            print(f"fit: interrupted by Ctrl-C; stopped after {len(self.history.epoch)} complete "
                  "epoch(s). The model keeps the weights of the last completed step.",
                  file=sys.stderr)
        return self.history

    def _fit_epoch(self, epoch, train, validation, callback_list):
        """One pass over the training batches, then validation; returns the epoch's logs,
        or None when Ctrl-C stopped it between two batches or the input ran out of batches
        (the epoch is then not logged)."""
        self._reset_metrics()
        callback_list.on_epoch_begin(epoch)
        train.begin()
        run = self._distributed
        sums, seen, logs, steps = {}, 0, {}, 0
        for step, (x, y, sw, count) in enumerate(self._batches(train, epoch, "fit")):
            if self._interrupted:
                return None
            callback_list.on_train_batch_begin(step)
            batch_logs = self._train_step(x, y, sw)
            steps += 1
            # Running means over the epoch so far, batches weighted by their (global) size.
            count = run.last_rows if run else count
            seen += count
            for key, value in batch_logs.items():
                sums[key] = sums.get(key, 0.0) + value * count
            logs = {key: total / seen for key, total in sums.items()}
            logs.update(self._metric_logs())
            callback_list.on_train_batch_end(step, logs)
            if run:
                self.stop_training, self._interrupted = run.world.any(self.stop_training,
                                                                      self._interrupted)
            if self.stop_training:
                break
        train.end()
        if steps == 0:
            if distributed.is_chief():
                warnings.warn("fit: the input ran out of data (a generator or iterator gives "
                              "its batches once); training stops. Give steps_per_epoch, or data "
                              "that can be read again every epoch.", stacklevel=4)
            self.stop_training = True
            return None
        if validation:
            val_logs = self._evaluate_batches(validation, callback_list)
            logs = {**logs, **{"val_" + k: v for k, v in val_logs.items()}}
        callback_list.on_epoch_end(epoch, logs)
        return logs

    def _split_validation(self, x, y, sw, validation_split, validation_data):
        """-> (x_train, y_train, sw_train, (x_val, y_val, sw_val) or a dataset or None)."""
        if validation_data is not None:
            return x, y, sw, self._validation_pair(validation_data)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if not validation_split:
            return x, y, sw, None
        n = _data.length(x)
        split = int(math.floor(n * (1.0 - validation_split)))  # Keras's split point
        if split == 0 or split == n:
            raise ValueError(f"validation_split={validation_split} leaves no training or no "
                             f"validation samples out of {n}")
        head, tail = np.arange(split), np.arange(split, n)
        take = _data.take_weights
        return (_data.take(x, head), _data.take(y, head), take(sw, head),
                (_data.take(x, tail), _data.take(y, tail), take(sw, tail)))

    def _callback_list(self, callbacks, verbose, add_history=False, **params):
        """The user's callbacks plus a ProgbarLogger for verbose 1/2 (and a History for fit)."""
        from fastrnn import callbacks as callbacks_module

        return callbacks_module.CallbackList(
            callbacks, model=self, params={**params, "verbose": verbose},
            add_history=add_history, add_progbar=verbose != 0 and distributed.is_chief())

    @contextlib.contextmanager
    def _stop_on_ctrl_c(self):
        """While fitting, Ctrl-C sets a flag checked between batches instead of raising."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def handler(signum, frame):
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    # -- evaluate and predict ---------------------------------------------------------------

    @_claiming("evaluate")
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss on (x, y), or ``[loss, ..., *metrics]`` when compiled with metrics or with
        several outputs (each one's loss after the total, as Keras lists them).

        x may be a dataset as ``fit`` takes it (y, sample_weight and batch_size then not given);
        sample_weight weighs the samples as in ``fit``; steps: at most that many batches.
        The loss is the mean of the batch losses weighted by batch size, as Keras reports it.
        verbose: 0 silent, 1 ('auto') a progress bar, 2 one line.
        """
        self._require_compiled("evaluate")
        check_flag("return_dict", return_dict)
        check_int("steps", steps, low=1, allow_none=True)
        verbose = self._verbose(verbose)
        if adapters.is_dataset(x):
            adapters.unsupported_with_dataset(adapters.kind_of(x), y=y, sample_weight=sample_weight,
                                              batch_size=batch_size)
            source = adapters.DatasetAdapter(x, "evaluate", steps)
        else:
            x, y = self._check_xy(x, y, "evaluate")
            sw = self._sample_weights(sample_weight, None, y, _data.length(x), "evaluate")
            source = adapters.ArrayAdapter(x, y, sw, self._batch_size(batch_size), False, steps,
                                           self._distributed, continuing=False)
        callback_list = self._callback_list(callbacks, verbose, steps=source.num_batches())
        logs = self._evaluate_batches(source, callback_list, "evaluate")
        return self._format_logs(logs, return_dict)

    def _evaluate_batches(self, source, callback_list, what="validation_data") -> dict:
        """Loss and metrics over the batches of ``source``, calling the test hooks of
        ``callback_list``."""
        callback_list.on_test_begin()
        self._reset_metrics()
        sums, seen, logs = {}, 0, {}
        run = self._distributed
        for step, (x, y, sw, count) in enumerate(self._batches(source, 0, what)):
            callback_list.on_test_batch_begin(step)
            batch_logs = self._test_step(x, y, sw)
            count = run.last_rows if run else count
            seen += count
            for key, value in batch_logs.items():
                sums[key] = sums.get(key, 0.0) + value * count
            logs = {key: total / seen for key, total in sums.items()}
            logs.update(self._metric_logs())
            callback_list.on_test_batch_end(step, logs)
        if not seen:
            raise ValueError(f"{what}: the data gave no batches (a generator gives its batches "
                             "once: give a PyDataset, a re-iterable dataset, or validation_steps "
                             "with an endless generator)")
        callback_list.on_test_end(logs)
        return logs

    @_claiming("predict", stateful_only=True)
    @_one_at_a_time
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x, computed in batches (inference mode, no dropout): an
        array, or a list (a dict) of arrays for a model whose outputs are a list (a dict).

        x may be a dataset as ``fit`` takes it (its batches' targets are not used; batch_size
        then not given); steps: at most that many batches.
        Stateful layers carry their state from batch to batch and across calls.
        verbose: 0 silent, 1 ('auto') a progress bar, 2 one line.
        """
        check_int("steps", steps, low=1, allow_none=True)
        if adapters.is_dataset(x):
            adapters.unsupported_with_dataset(adapters.kind_of(x), batch_size=batch_size)
            source = adapters.DatasetAdapter(x, "predict", steps)
            batches = (self._checked_batch(b, "predict", targets=False)[0] for b in source.epoch(0))
            total = source.num_batches()
        else:
            x = self._check_x(x, "predict")
            n = _data.length(x)
            if n == 0:
                raise ValueError("predict needs at least one sample, got an empty x")
            batch_size = self._batch_size(batch_size)
            starts = list(range(0, n, batch_size))[:steps]
            batches = (_data.take(x, np.arange(start, min(start + batch_size, n))) for start in starts)
            total = len(starts)
        callback_list = self._callback_list(callbacks, self._verbose(verbose), steps=total)
        callback_list.on_predict_begin()
        parts = []
        for step, xb in enumerate(batches):
            callback_list.on_predict_batch_begin(step)
            with self._states_kept_on_error():
                outputs, _ = self._forward(xb, training=False)
            parts.append(outputs)
            callback_list.on_predict_batch_end(step, {"outputs": outputs[0] if len(outputs) == 1
                                                      else outputs})
        callback_list.on_predict_end()
        if not parts:
            raise ValueError("predict: the data gave no batches")
        return self._pack_outputs([np.concatenate(p, axis=0) for p in zip(*parts)])

    # -- description -------------------------------------------------------------------------

    def summary(self, print_fn=None):
        """Print a table of the layers: names and types, output shapes, parameter counts, and
        for a functional model the layer calls each one takes its inputs from."""
        _check_print_fn(print_fn)
        rows = [self._summary_row(layer) for layer in self.layers]
        headers = ["Layer (type)", "Output Shape", "Param #"]
        if self._graph is not None:
            headers.append("Connected to")
        _print_table(self.name, headers, rows, print_fn or print, self._leaf_layers())

    def _summary_row(self, layer):
        params = _count_params(layer)
        row = [f"{layer.name} ({type(layer).__name__})",
               _output_shape_text(self._graph.own_node(layer) if self._graph else None), str(params)]
        if self._graph is not None:
            own = {id(node) for node in self._graph.nodes}
            sources = []
            for node in inbound_nodes(layer):
                if id(node) in own:
                    for t in node.input_tensors:
                        source, node_index, tensor_index = t._keras_history
                        sources.append(f"{source.name}[{self._node_index(source, node_index)}]"
                                       f"[{tensor_index}]")
            row.append(", ".join(sources) or "-")
        return row

    def _node_index(self, layer, node_index):
        """A node's index among its layer's calls in this model (as Keras numbers them)."""
        own = {id(node) for node in self._graph.nodes}
        nodes = inbound_nodes(layer)[:node_index]
        return sum(1 for node in nodes if id(node) in own)

    # -- configuration and saving ----------------------------------------------------------------

    def get_config(self) -> dict:
        """A functional model's graph in Keras's form (see ``fastrnn.functional.graph_config``).

        A subclassed model's config is the arguments its constructor was called with (when they
        are JSON-serialisable), unless the subclass defines its own ``get_config``."""
        if self._graph is not None:
            return graph_engine.graph_config(self.name, self.trainable, self.layers, self._graph.nodes,
                                             self._inputs_struct, self._outputs_struct)
        return self._constructor_config()

    def _constructor_config(self):
        """The arguments the constructor was called with, and name and trainable where the
        constructor takes them (as Keras's automatic config of a subclassed model)."""
        args, kwargs = self.__dict__.get("_init_args", ((), {}))
        signature = inspect.signature(type(self).__init__)
        refusal = NotImplementedError(
            f"model {self.name!r} ({type(self).__name__}): its constructor arguments cannot be "
            "written as a config; define get_config() (and from_config() if needed), or keep "
            "only the weights with save_weights()")
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            raise refusal from None
        config = {}
        for key, value in list(bound.arguments.items())[1:]:  # after self
            kind = signature.parameters[key].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise refusal
            elif kind is inspect.Parameter.VAR_KEYWORD:
                config.update(value)
            else:
                config[key] = value
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        for key, value in (("name", self.name), ("trainable", self.trainable)):
            if takes_any or key in signature.parameters:
                config[key] = value
        try:
            json.dumps(config)
        except (TypeError, ValueError):
            raise refusal from None
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        if graph_engine.is_graph_config(config):
            inputs, outputs = graph_engine.graph_from_config(config)
            model_class = Functional if cls is Model else cls
            return model_class(inputs, outputs, name=config.get("name"),
                               trainable=config.get("trainable", True))
        try:
            return cls(**config)
        except TypeError as err:
            raise TypeError(f"{cls.__name__} cannot be made from its config ({err}); define "
                            "get_config() and from_config() so that they match its constructor") from None

    @_one_at_a_time
    def save(self, path, metadata=None):
        """Write the model (architecture, weights, optimizer state, metadata) to one file.

        metadata: a JSON-serialisable dict kept with the model (e.g. a vocabulary); None
        keeps ``self.metadata``. The write is atomic: a failed save leaves any old file
        at ``path`` unchanged. ``fastrnn.load_model(path)`` restores the model. After
        ``fastrnn.distributed.init()`` only rank 0 writes (as for ``save_weights``, ``export``).
        """
        from fastrnn import saving

        _check_path(path, "save: path")
        if distributed.is_chief():  # under MPI, rank 0 writes (see fastrnn.distributed)
            saving.save_model(self, path, metadata=self.metadata if metadata is None else metadata)
        if metadata is not None:
            self.metadata = metadata

    @_one_at_a_time
    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
        """Write the model for inference elsewhere: ``format="onnx"`` (``opset=17`` or later)
        gives an ONNX file for ONNX Runtime; see ``fastrnn.export``. Written atomically."""
        from fastrnn.export import export_model

        _check_path(filepath, "export: filepath")
        if verbose is not None:
            check_flag("export: verbose", verbose)
        if not distributed.is_chief():
            return
        export_model(self, filepath, format=format, verbose=verbose,
                     input_signature=input_signature, **kwargs)

    @_one_at_a_time
    def save_weights(self, path):
        """Write the weights alone to one file (atomically); ``load_weights`` reads them back
        into a model of the same architecture."""
        from fastrnn import saving

        _check_path(path, "save_weights: path")
        if not distributed.is_chief():
            return
        saving.save_weights(self, path)

    @_one_at_a_time
    def load_weights(self, path):
        """Set the weights from a file written by ``save_weights`` (or ``save``); ValueError,
        with no weight changed, when they do not fit this model."""
        from fastrnn import saving

        _check_path(path, "load_weights: path")
        saving.load_weights(self, path)


class Functional(Model):
    """A model made from a graph of layer calls: what ``Model(inputs, outputs)`` returns."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        if inputs is None or outputs is None:
            raise ValueError("a functional model needs both inputs and outputs")
        super().__init__(inputs=inputs, outputs=outputs, name=name, trainable=trainable)


class Sequential(Model):
    """A linear stack of layers: ``Sequential([LSTM(32, input_shape=(T, F)), Dense(1)])``.

    layers: a list of layers (an ``Input(shape)`` first declares the input shape). Once the
    input shape is known (declared, given to ``build``, or read from the first data), the
    model makes the graph of its layers' calls and runs as a functional model.
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._layers: list[Layer] = []
        self._input_layer = None  # given as Input(...) or InputLayer(...)
        self.build_input_shape = None  # (B or None, ...) the model was built for
        self._declared_input_shape = None  # from Input(shape) or the first layer's input_shape
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: layers must be a list of layers, got "
                            f"{type(layers).__name__}: {layers!r}")
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._rebuild()

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer, rebuild=True):
        """Append a layer; builds it at once when the input shape is known."""
        if isinstance(layer, KerasTensor):
            origin = layer._keras_history.layer
            if not isinstance(origin, InputLayer):
                raise TypeError(f"Sequential.add takes layers (or Input(...) first), got the symbolic "
                                f"output of {origin.who}")
            layer = origin
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("an Input/InputLayer can only come first in a Sequential model")
            self._input_layer = layer
            self._declared_input_shape = layer.batch_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a fastrnn layer, got {layer!r}")
        if getattr(layer, "return_state", False):
            raise ValueError(f"{layer.who} has return_state=True and so several outputs; "
                             "a Sequential model needs one output per layer")
        if any(other.name == layer.name for other in self._layers):
            raise ValueError(f"model {self.name!r} already has a layer named {layer.name!r}; "
                             "layer names must be unique")
        if not self._layers and self._declared_input_shape is None:
            self._declared_input_shape = layer.batch_input_shape
        self._layers.append(layer)
        if rebuild:
            self._rebuild()

    def pop(self):
        """Remove the last layer, and return it."""
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers to pop")
        layer = self._layers.pop()
        self._rebuild()
        return layer

    def _rebuild(self):
        self._train_params = None
        self._graph = None
        self.built = False
        shape = self.build_input_shape or self._declared_input_shape
        if shape is not None and self._layers:
            self.build(shape)

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            input_shape = self.build_input_shape or self._declared_input_shape
        if input_shape is None:
            raise ValueError(f"model {self.name!r} does not know its input shape: give the first "
                             "layer an input_shape, or pass one to build()")
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers")
        shape = tuple(input_shape)
        given = self._input_layer
        if given is not None and tuple(given.batch_shape) == shape:
            input_layer = given
        else:
            input_layer = InputLayer(batch_shape=shape,
                                     dtype=None if given is None else given.dtype.name)
            input_layer.converts = given is not None  # without an Input, the first layer converts
        x = input_layer.output
        for layer in self._layers:
            x = layer(x)
        self._init_graph(input_layer.output, x)
        self.build_input_shape = shape

    @_one_at_a_time
    def _forward(self, x, training=False, masks=None):
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers")
        if not self.built:
            self.build((None, *np.shape(x[0])[1:]))
        return super()._forward(x, training, masks)

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet")
        return super().output_shape

    @property
    def input_names(self):
        return super().input_names if self._graph is not None else ["input"]

    @property
    def output_names(self):
        return super().output_names if self._graph is not None else ["output"]

    def _input_count(self):
        return 1

    def check_input_shapes(self, shapes):
        if not self.built and len(shapes) == 1:  # called on a symbolic tensor: build for its shape
            self.build((None, *tuple(shapes[0])[1:]))
        super().check_input_shapes(shapes)

    def summary(self, print_fn=None):
        """Print a table of the layers, their output shapes and parameter counts."""
        _check_print_fn(print_fn)
        rows = []
        for layer in self._layers:
            shape = _output_shape_text(self._graph.own_node(layer)) if self.built else "?"
            rows.append([f"{layer.name} ({type(layer).__name__})", shape,
                         str(layer.count_params() if layer.built else 0)])
        _print_table(self.name, ["Layer (type)", "Output Shape", "Param #"], rows,
                     print_fn or print, [layer for layer in self._leaf_layers() if layer.built])

    def get_config(self) -> dict:
        config = {"name": self.name, "layers": [serialize(layer) for layer in self._layers],
                  "build_input_shape": None if self.build_input_shape is None
                  else list(self.build_input_shape)}
        if self._input_layer is not None:
            config["input_dtype"] = self._input_layer.dtype.name
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        shape = config.get("build_input_shape")
        layers = [deserialize(spec) for spec in config["layers"]]
        if config.get("input_dtype") is not None and shape is not None:
            layers.insert(0, InputLayer(batch_shape=shape, dtype=config["input_dtype"]))
        model = cls(layers, name=config.get("name"))
        if shape is not None and not model.built:
            model.build(tuple(shape))
        return model


def load_model(path, custom_objects=None, compile=True):
    """Read a model written by ``model.save(path)``; see ``fastrnn.saving.load_model``."""
    from fastrnn import saving

    return saving.load_model(path, custom_objects=custom_objects, compile=compile)


# -- helpers ------------------------------------------------------------------------------------

def _check_validation_freq(freq) -> None:
    """validation_freq: an int >= 1 (every that many epochs) or a list of epochs (from 1)."""
    if isinstance(freq, (list, tuple)):
        if not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in freq):
            raise ValueError(f"validation_freq: a list of epochs must hold ints, got {freq!r}")
        return
    if isinstance(freq, bool) or not isinstance(freq, (int, np.integer)):
        raise ValueError(f"validation_freq must be an int or a list of epochs, got "
                         f"{type(freq).__name__}: {freq!r}")
    if freq < 1:
        raise ValueError(f"validation_freq must be >= 1, got {freq}")


def _should_validate(epoch: int, freq) -> bool:
    """Keras's rule, with epochs counted from 1."""
    if isinstance(freq, (list, tuple)):
        return epoch + 1 in freq
    return (epoch + 1) % int(freq) == 0


def _layers_in(value) -> list:
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Layer)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, Layer)]
    return []


def _count_params(layer) -> int:
    try:
        return layer.count_params() if layer.built else 0
    except ValueError:
        return 0


def _output_shape_text(node) -> str:
    """The shape(s) a layer call gives, as Keras prints them: (None, 4) or [(None, 4), (None, 4)]."""
    if node is None:
        return "?"
    if len(node.outputs) == 1 and not node.returns_list:
        return str(node.outputs[0].shape)
    return "[" + ", ".join(str(t.shape) for t in node.outputs) + "]"


def _print_table(name, headers, rows, print_fn, leaves):
    widths = [max([len(h)] + [len(r[k]) for r in rows]) + 2 for k, h in enumerate(headers)]
    line = "=" * sum(widths)

    def fmt(cols):
        return "".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()

    print_fn(f'Model: "{name}"')
    print_fn("_" * sum(widths))
    print_fn(fmt(headers))
    print_fn(line)
    for row in rows:
        print_fn(fmt(row))
    print_fn(line)
    total = sum(_count_params(layer) for layer in leaves)
    trainable = sum(_count_params(layer) for layer in leaves if layer.trainable)
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * sum(widths))
