"""The ``Layer`` base class: calling, building, parameters, gradients, masks, configs.

Layers take batch-major arrays (``x: (B, T, F)`` for sequences) as Keras layers do.

- ``layer(x, training=False, mask=None)`` converts ``x`` to the layer's dtype, checks its
  rank and feature size, builds the layer on first use, and runs ``call``.
- ``call`` with ``training=True`` keeps what ``backward`` needs (and applies dropout).
- ``backward(dy)`` returns the gradient w.r.t. the input and leaves the gradients of the
  parameters in ``layer.grads``, one per array of ``layer.params``, same order and shape.
- ``layer.params`` are the arrays the optimizer updates in place. Recurrent layers keep
  them in the kernel layout of ``fastrnn.modes``; ``get_weights``/``set_weights`` speak
  Keras's layout and convert, so the conversion happens once, not per batch.
- ``compute_mask(x, mask)`` says which time steps of the output are real (``(B, T)`` bool)
  for the next layer, as Keras's masks do.

Layers with several inputs (``multi_input = True``: merges, attention) take a list of arrays
and a list of masks (one per input, entries None), build from a list of shapes, and return a
list of input gradients from ``backward`` (None where an input has none). Layers with several
outputs (``return_state``) return a list, and take a list of output gradients (entries None).

Everything a training call leaves for its ``backward`` is the layer's *call state*:
``_cache`` and that of its ``sublayers``. ``call_state()`` takes it and ``set_call_state``
puts it back, so that a layer called more than once before the backward pass (a layer shared
between branches of a graph) can backpropagate through each call in turn.

Regularizers and constraints (``fastrnn.regularizers``, ``fastrnn.constraints``) are Keras's,
set per Keras weight. A layer says which of its ``params`` make up each weight of
``get_weights`` (``weight_groups``: GRU's ``(2, 3H)`` bias is ``b_ih`` and ``b_hh``) and which
regularizer and constraint each has; ``fastrnn.layers.variables`` applies them for a model.
Every layer takes an ``activity_regularizer``: its call then adds the penalty of its output
(divided by the batch size, as Keras does) to ``losses`` and, within a model's step, to the
step's loss (``collect_activity_losses``), and its ``backward`` adds the penalty's gradient to
the output's gradient before the layer's own backward runs.

Calling a layer on symbolic tensors (``fastrnn.Input`` and the outputs of layers called on
it) computes nothing: it builds the layer for their shapes, records the call as a ``Node``
(``fastrnn.keras_tensor``) and returns symbolic outputs, from which ``fastrnn.Model(inputs,
outputs)`` makes a model. For that, ``compute_output_shape`` gives a tuple, or a list of
tuples for several outputs (nested as the call nests them), and takes as keywords the call
arguments that change the outputs (Attention's ``return_attention_scores``); a layer that
takes ``initial_state`` checks its shapes in
``check_initial_state_shapes`` and leaves ``initial_state_grads`` after ``backward`` (one per
state array). Models run their graphs through ``eager_call``, the array path of ``__call__``.
A layer's calls on symbolic tensors are its ``_inbound_nodes``; ``layer.input`` and
``layer.output`` are those of the first, as in Keras.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from typing import TYPE_CHECKING

import numpy as np

from fastrnn import functional, keras_tensor, regularizers
from fastrnn._checks import check_flag, check_int, check_seed, resolve, shape_tuple
from fastrnn.utils import get_rng

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer

_FLOAT_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
_NAMES_USED: dict[str, int] = {}
_LAYER_CLASSES: dict[str, type] = {}  # class name -> class, filled as Layer subclasses are defined


def unique_name(prefix: str) -> str:
    """'dense', 'dense_1', 'dense_2', ... as Keras numbers its default names."""
    count = _NAMES_USED.get(prefix, 0)
    _NAMES_USED[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def snake_case(name: str) -> str:
    """'SimpleRNN' -> 'simple_rnn', 'LSTM' -> 'lstm', 'GlobalMaxPooling1D' ->
    'global_max_pooling1d' (Keras's rule: no break between a digit and a capital)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# Keras's reduced-precision policies: refused, in this one place, until the kernels run them.
_NOT_YET_DTYPES = ("bfloat16", "mixed_bfloat16", "float16", "mixed_float16")


def float_dtype(dtype, who: str = "") -> np.dtype:
    """A layer's ``dtype`` -> np.dtype float32 or float64; ValueError naming ``dtype`` otherwise.

    Takes what Keras takes for these two: their names, the NumPy types and dtypes, and None for
    the default (float32). Keras's mixed and 16-bit policies are refused as not supported yet.
    ``who`` starts the message (the layer's ``who``).
    """
    who = f"{who}: " if who else ""
    if dtype is None:
        return _FLOAT_DTYPES["float32"]
    if isinstance(dtype, str) and dtype in _NOT_YET_DTYPES:
        raise ValueError(f"{who}dtype {dtype!r} is not supported yet: fastrnn computes in 'float32' "
                         "or 'float64'")
    if not isinstance(dtype, (str, np.dtype, type)):
        raise ValueError(f"{who}Cannot interpret `dtype` argument. Expected 'float32' or 'float64'. "
                         f"Received: dtype={dtype!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError:  # an unknown name
        dt = None
    # np.dtype(None) == float64, so the lookup is by name rather than by `in`.
    if dt is None or _FLOAT_DTYPES.get(dt.name) != dt:
        raise ValueError(f"{who}Cannot convert {dtype!r} to a dtype fastrnn computes in: dtype must be "
                         f"'float32' or 'float64'")
    return dt


def _batch_input_shape(who, input_shape, batch_size, batch_input_shape) -> tuple | None:
    """A layer's declared input as one ``(batch, *sample)`` tuple (or None), each part checked."""
    batch_size = check_int(f"{who}: batch_size", batch_size, low=1, allow_none=True)
    if input_shape is not None:
        return (batch_size, *shape_tuple(input_shape, f"{who}: input_shape"))
    if batch_input_shape is None:
        return None
    return shape_tuple(batch_input_shape, f"{who}: batch_input_shape")


# The activity penalties of the layer calls made inside ``collect_activity_losses``.
_ACTIVITY_LOSSES: contextvars.ContextVar = contextvars.ContextVar("activity_losses", default=None)


@contextlib.contextmanager
def collect_activity_losses():
    """Within the block, each layer call with an ``activity_regularizer`` appends its penalty to
    the yielded list: what a model's step adds to its loss."""
    collected: list[float] = []
    token = _ACTIVITY_LOSSES.set(collected)
    try:
        yield collected
    finally:
        _ACTIVITY_LOSSES.reset(token)


def _with_activity_gradient(backward):
    """Wrap a layer class's ``backward`` so that the gradient of the layer's activity penalty
    joins the output's gradient first (once, though a subclass's backward may call its base's)."""

    @functools.wraps(backward)
    def wrapped(self, dy):
        extra = getattr(self, "_activity_grads", None)
        if extra is None or getattr(self, "_adding_activity_gradient", False):
            return backward(self, dy)
        self._adding_activity_gradient = True
        try:
            return backward(self, _add_output_grads(dy, extra))
        finally:
            self._adding_activity_gradient = False

    wrapped.adds_activity_gradient = True
    return wrapped


def _add_output_grads(dy, extra: list):
    """dy (an array, or a list with None entries for several outputs) plus extra (one array per
    output)."""
    if isinstance(dy, (list, tuple)):
        return [g if d is None else np.asarray(d) + g for d, g in zip(list(dy) + [None] * len(extra), extra)]
    return extra[0] if dy is None else np.asarray(dy) + extra[0]


def check_state_shapes(who: str, shapes, units, order: str) -> None:
    """For a call on symbolic tensors: ValueError unless the initial states' ``shapes`` are
    (batch, u) for each u of ``units``, in that ``order`` (described in the message)."""
    if len(shapes) != len(units):
        raise ValueError(f"{who}: initial_state must be {len(units)} tensor(s) ({order}) of shape "
                         f"(batch, units), got {len(shapes)}")
    for shape, u in zip(shapes, units):
        if len(shape) != 2 or shape[1] not in (None, u):
            raise ValueError(f"{who}: initial_state tensors must have shapes (batch, units) = "
                             f"{[(None, u) for u in units]} ({order}), got {tuple(shape)}")


def time_major_mask(mask, batch: int, steps: int, who: str):
    """mask: (B, T), nonzero at real steps, or None -> (T, B) bool for the kernels, or None
    when no step is masked.

    Any pattern is taken, as Keras takes it: padding before the real steps (Keras's
    ``pad_sequences`` default), after them, holes, rows with no real step.
    """
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (batch, steps):
        raise ValueError(f"{who}: mask must have shape (batch, timesteps) = {(batch, steps)}, "
                         f"got {mask.shape}")
    mask = mask.astype(bool)
    if mask.all():
        return None
    return np.ascontiguousarray(mask.T)  # (T, B)


class Layer:
    """Base class of all layers; see the module docstring for the protocol.

    Subclasses set ``input_ndim`` (the required input rank, or None for any rank of at
    least ``min_ndim``) and implement ``build``, ``call``, ``backward`` and, if their
    output shape differs from their input's, ``compute_output_shape``.

    Args:
        name: the layer's name; by default the class's in snake case, numbered as Keras
            numbers it (``lstm``, ``lstm_1``, ...).
        dtype: ``"float32"`` (the default, also for None) or ``"float64"`` (or their NumPy
            types): the layer computes in it, and converts its input and its gradient to it.
            Any other dtype is a ValueError.
        trainable: whether the optimizer updates the layer's weights.
        input_shape: the shape of one sample, without the batch axis: given to a model's
            first layer, it builds the model.
        batch_size: a fixed batch size to go with ``input_shape``.
        batch_input_shape: Keras 2's ``(batch_size, *input_shape)``.
        seed: the seed of the layer's own generator for dropout (else the library's,
            ``fastrnn.utils.set_random_seed``).
        activity_regularizer: a ``fastrnn.regularizers`` penalty (or its name) on the layer's
            output, added to the loss divided by the batch size, as Keras adds it.
    """

    input_ndim: int | None = None
    min_ndim: int = 1
    multi_input: bool = False  # call takes a list of arrays (see the module docstring)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _LAYER_CLASSES[cls.__name__] = cls  # so that saved models can name their layers
        backward = cls.__dict__.get("backward")
        if backward is not None and not getattr(backward, "adds_activity_gradient", False):
            cls.backward = _with_activity_gradient(backward)

    def __init__(self, *, name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.dtype = float_dtype(dtype, self.who)
        self.trainable = check_flag(f"{self.who}: trainable", trainable)
        self.batch_input_shape = _batch_input_shape(self.who, input_shape, batch_size,
                                                    batch_input_shape)
        self.seed = check_seed(f"{self.who}: seed", seed)
        self._own_rng = None if seed is None else np.random.default_rng(seed)
        self.built = False
        self.input_shape = None  # (None, ..., F) once built
        self.grads: list[np.ndarray] = []
        self._cache = None  # what backward needs from the last training call
        self.activity_regularizer = self.resolve("activity_regularizer", regularizers.get,
                                                 activity_regularizer)
        self._activity_losses: list[float] = []  # the penalties of the last call's outputs
        self._activity_grads = None  # their gradients, one per output, after a training call
        self._inbound_nodes = []  # calls on symbolic tensors (fastrnn.keras_tensor.Node)
        self._outbound_nodes = []  # calls that took this layer's symbolic outputs

    # -- identity and messages -------------------------------------------------------

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"

    @property
    def who(self) -> str:
        """How messages name this layer: "layer 'lstm' (LSTM)"."""
        return f"layer {self.name!r} ({type(self).__name__})"

    def flag(self, argument: str, value) -> bool:
        """The constructor's flag ``argument``: a bool (or 0/1); TypeError naming it otherwise."""
        return check_flag(f"{self.who}: {argument}", value)

    def resolve(self, argument: str, get, value):
        """``get(value)`` for the constructor's ``argument`` (an initializer, regularizer,
        constraint or activation), its TypeError or ValueError naming the layer and argument."""
        return resolve(f"{self.who}: {argument}", get, value)

    @property
    def rng(self) -> np.random.Generator:
        """The generator for dropout: the layer's own when it was given a seed, else the library's."""
        return self._own_rng if self._own_rng is not None else get_rng()

    # -- the graph -----------------------------------------------------------------------

    @property
    def inbound_nodes(self) -> list:
        """The layer's calls on symbolic tensors, in order (``Node`` objects)."""
        return keras_tensor.inbound_nodes(self)

    def _first_node(self, what):
        nodes = keras_tensor.inbound_nodes(self)
        if not nodes:
            raise ValueError(f"{self.who} has never been called on symbolic tensors, so it has no "
                             f"{what}; call it on fastrnn.Input(...) or another layer's output")
        return nodes[0]

    @property
    def input(self):
        """The symbolic input of the layer's first call (a tensor, or a list)."""
        node = self._first_node("input")
        return node.outputs[0] if node.is_input else node.inputs

    @property
    def output(self):
        """The symbolic output of the layer's first call (a tensor, or a list for several)."""
        return self._first_node("output").output

    def symbolic_output_dtypes(self, count: int) -> list[str]:
        """The dtype names of the layer's ``count`` symbolic outputs."""
        return [self.dtype.name] * count

    # -- calling ---------------------------------------------------------------------

    def __call__(self, inputs, training=None, mask=None, **kwargs):
        """Run the layer on arrays (``training`` None is False), or record a call on symbolic
        tensors; inside a subclassed model's ``call`` the call is also put on its tape."""
        if keras_tensor.any_symbolic(inputs, mask, kwargs):
            return keras_tensor.symbolic_call(self, inputs, training, mask, kwargs)
        tape = functional.active_tape()
        if tape is not None:
            return tape.record(self, inputs, training, mask, kwargs)
        return self.eager_call(inputs, training=bool(training), mask=mask, **kwargs)

    def eager_call(self, inputs, training=False, mask=None, **kwargs):
        """The call on arrays: convert, check, build on first use, then ``call``."""
        if self.multi_input:
            if not isinstance(inputs, (list, tuple)):
                raise TypeError(f"{self.who} takes a list of inputs, got {type(inputs).__name__}")
            x = [self.convert_input(a) for a in inputs]
            self.check_input_shapes([a.shape for a in x])
            if not self.built:
                self.build([(None, *a.shape[1:]) for a in x])
        else:
            x = self.convert_input(inputs)
            self.check_input_shape(x.shape)
            if not self.built:
                self.build((None, *x.shape[1:]))
        outputs = self.call(x, training=bool(training), mask=mask, **kwargs)
        if getattr(self, "activity_regularizer", None) is not None:
            self._record_activity(outputs, bool(training))
        return outputs

    def _record_activity(self, outputs, training: bool) -> None:
        """The activity penalty of each output, divided by its batch size (Keras's scaling), and
        with ``training`` the penalties' gradients for ``backward``."""
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        reg = self.activity_regularizer
        losses, grads = [], []
        for out in outputs:
            out = np.asarray(out)
            batch = out.shape[0] if out.ndim else 1
            scale = 1.0 / batch if batch else 0.0
            losses.append(reg(out) * scale)
            if training:
                grads.append((reg.gradient(out) * scale).astype(out.dtype, copy=False))
        self._activity_losses = losses
        self._activity_grads = grads if training else None
        collected = _ACTIVITY_LOSSES.get()
        if collected is not None:
            collected.extend(losses)

    def convert_input(self, inputs) -> np.ndarray:
        """inputs -> ndarray of the layer's dtype (numbers only; TypeError otherwise)."""
        x = np.asarray(inputs)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.who}: input must hold numbers, got dtype {x.dtype}")
        return x.astype(self.dtype, copy=False)

    def check_input_shape(self, shape) -> None:
        """ValueError when the rank or the feature size (last axis) does not fit the layer."""
        shape = tuple(shape)
        if self.input_ndim is not None and len(shape) != self.input_ndim:
            raise ValueError(f"{self.who} expects input of rank {self.input_ndim} "
                             f"{self.input_description()}, got shape {shape}")
        if len(shape) < self.min_ndim:
            raise ValueError(f"{self.who} expects input of rank >= {self.min_ndim}, got shape {shape}")
        expected = self.expected_input_shape()
        if expected is not None and expected[-1] is not None and shape[-1] != expected[-1]:
            raise ValueError(f"{self.who} expects {expected[-1]} features on the last axis "
                             f"(input shape {expected}), got shape {shape}")

    def check_input_shapes(self, shapes) -> None:
        """For multi-input layers: ValueError when the shapes of the inputs do not fit together."""

    def expected_input_shape(self):
        """The input shape the layer is built for, else the one it was given, else None."""
        return self.input_shape if self.built else self.batch_input_shape

    def input_description(self) -> str:
        return "(batch, timesteps, features)" if self.input_ndim == 3 else ""

    # -- to be provided by subclasses --------------------------------------------------

    def build(self, input_shape) -> None:
        """Create the parameters for inputs of ``input_shape`` (batch axis first, may be None)."""
        self.input_shape = (None, *tuple(input_shape)[1:])
        self.built = True

    def call(self, x, training=False, mask=None):
        raise NotImplementedError

    def backward(self, dy):
        """dy: gradient of the output -> gradient of the input; sets ``self.grads``."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, mask=None):
        """The output's mask; by default the input's mask passes through."""
        return mask

    def reset_states(self) -> None:
        """Forget carried states (stateful recurrent layers); nothing for other layers."""

    def carried_states(self):
        """What the layer carries from batch to batch, to hand back to ``restore_states``
        (stateful recurrent layers); None for other layers."""
        return None

    def restore_states(self, saved) -> None:
        """Go back to what ``carried_states`` returned."""

    @property
    def sublayers(self) -> list:
        """The layers this one runs inside it (the wrappers'), whose call state is part of its own."""
        return []

    def call_state(self):
        """What the last training call left for ``backward`` (see the module docstring): the
        cache, the sublayers' call states, and the gradients of the activity penalty."""
        return self._cache, [sub.call_state() for sub in self.sublayers], \
            getattr(self, "_activity_grads", None)

    def set_call_state(self, state) -> None:
        """Put back what ``call_state`` returned, before running ``backward`` for that call."""
        self._cache, subs, *activity = state
        self._activity_grads = activity[0] if activity else None
        for sub, sub_state in zip(self.sublayers, subs):
            sub.set_call_state(sub_state)

    def _backward_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{self.who}: backward needs a call with training=True first")
        return self._cache

    # -- parameters and weights ----------------------------------------------------------

    @property
    def params(self) -> list[np.ndarray]:
        """The parameter arrays (updated in place by optimizers); empty before build."""
        return []

    # -- Keras's weights: groups of params, regularizers, constraints -------------------------

    def weight_groups(self) -> list[tuple[int, ...]]:
        """For each weight of ``get_weights``, the indices of the ``params`` it is made of:
        one param each, unless a layer says otherwise. A layer that only runs others (its
        ``sublayers``) has no weights of its own here: its sublayers list theirs."""
        return [] if self.sublayers else [(i,) for i in range(len(self.params))]

    def weight_regularizers(self) -> list:
        """The regularizer (or None) of each weight of ``get_weights``; [] for none at all."""
        return []

    def weight_constraints(self) -> list:
        """The constraint (or None) of each weight of ``get_weights``; [] for none at all."""
        return []

    def params_from_keras(self, arrays) -> list[np.ndarray]:
        """Keras-layout arrays, one per weight of ``get_weights`` -> the same in the layout of
        ``params``, one per param (the identity unless the layouts differ). A linear map, so it
        also carries gradients over."""
        return [np.asarray(a) for a in arrays]

    @property
    def losses(self) -> list[float]:
        """The penalties of this layer and its sublayers: the activity penalties of the last
        call, then those of the weights' regularizers at the current weights (as Keras's
        ``layer.losses``)."""
        from fastrnn.layers import variables

        activity = [v for layer in variables.walk([self]) for v in getattr(layer, "_activity_losses", [])]
        return activity + variables.weight_penalties(self)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"{self.who} is not built yet, so it has no parameters to count; "
                             "call it on data or give it an input_shape")
        return int(sum(p.size for p in self.params))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras's layout and order; [] before the layer is built."""
        return [p.copy() for p in self.params] if self.built else []

    def weight_shapes(self) -> list[tuple]:
        """The shapes ``set_weights`` expects, Keras's layout."""
        return [p.shape for p in self.params]

    def set_weights(self, weights) -> None:
        """Set the weights from arrays in Keras's layout (as ``get_weights`` returns them).

        A wrong count, a wrong shape or anything but real numbers raises ValueError naming
        the expected shapes, and leaves every weight as it was.
        """
        self.assign_weights(self.checked_weights(weights))

    def checked_weights(self, weights) -> list[np.ndarray]:
        """weights as arrays of the layer's dtype, once their count, shapes and kinds are checked
        (ValueError otherwise): what ``assign_weights`` can take without failing half-way."""
        if not self.built:
            raise ValueError(f"{self.who} is not built yet: call it on data or give it an "
                             "input_shape before set_weights")
        expected = self.weight_shapes()
        weights = list(weights)
        if len(weights) != len(expected):
            raise ValueError(f"{self.who}: set_weights expects {len(expected)} arrays with shapes "
                             f"{expected}, got {len(weights)}")
        checked = []
        for k, (w, shape) in enumerate(zip(weights, expected)):
            try:
                w = np.asarray(w)
            except ValueError as e:  # ragged nested lists
                raise ValueError(f"{self.who}: weight {k} is not an array: {e}") from None
            if w.dtype.kind not in "biuf":
                raise ValueError(f"{self.who}: weight {k} must hold real numbers, got dtype {w.dtype}")
            if w.shape != tuple(shape):
                raise ValueError(f"{self.who}: weight {k} must have shape {tuple(shape)} "
                                 f"(expected shapes {expected}), got {w.shape}")
            checked.append(w.astype(self.dtype, copy=False))
        return checked

    def assign_weights(self, weights) -> None:
        """Copy checked Keras-layout weights into the parameters, in place."""
        for p, w in zip(self.params, weights):
            p[...] = w

    # -- configuration -------------------------------------------------------------------

    def get_config(self) -> dict:
        """The constructor arguments, JSON-serialisable, so ``from_config`` makes a twin."""
        config = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        if self.seed is not None:
            config["seed"] = self.seed
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def serialize(layer: Layer) -> dict:
    """A layer -> {'class_name': ..., 'config': ...}, JSON-serialisable."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(spec: dict) -> Layer:
    """{'class_name': ..., 'config': ...} -> a new (unbuilt) layer; ValueError if unknown."""
    if not isinstance(spec, dict) or "class_name" not in spec or "config" not in spec:
        raise ValueError(f"a layer spec must be a dict with 'class_name' and 'config', got {spec!r}")
    cls = _LAYER_CLASSES.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {spec['class_name']!r}; known: {sorted(_LAYER_CLASSES)}")
    return cls.from_config(dict(spec["config"]))
