"""Weight constraints, Keras 3's: ``MaxNorm``, ``NonNeg``, ``UnitNorm``, ``MinMaxNorm``.

A constraint maps a weight (in Keras's layout) to its projection, ``constraint(w) -> w'``.
Layers take them by name ('max_norm', 'non_neg', 'unit_norm', 'min_max_norm', or the class
names; Keras's defaults), instance or config: ``kernel_constraint``, ``recurrent_constraint``,
``bias_constraint``, ``embeddings_constraint``. After each optimizer step a model replaces
every trainable weight that has one by its projection, as Keras does.

``axis`` is Keras's: the axis (or axes) along which the norms are taken, in Keras's layout.
For a kernel ``(F, units)`` the default ``axis=0`` bounds the weights into each unit; for a
recurrent layer's kernel ``(F, G*H)`` and recurrent kernel ``(H, G*H)`` likewise, and for
GRU's bias ``(2, 3H)`` it pairs the input and recurrent bias of each gate unit. The layers
keep these weights in the kernel layout (``fastrnn.modes``) and convert to project them; a
constraint with ``elementwise = True`` (``NonNeg``) is applied in place without converting.
Norms are computed in float64 and the result cast back to the weight's dtype.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = [
    "Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
    "max_norm", "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "deserialize",
]

_EPSILON = 1e-7  # Keras's fuzz factor, added to the norms it divides by


def _number(cls_name: str, name: str, value, low=None, high=None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{cls_name}: {name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{cls_name}: {name} must be in [{low}, {high if high is not None else 'inf'}], "
                         f"got {value!r}")
    return value


def _axis(cls_name: str, axis):
    """An int or a list of ints (Keras's axis argument), as given."""
    if isinstance(axis, Integral) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, Integral) and not isinstance(a, bool) for a in axis):
        return [int(a) for a in axis]
    raise ValueError(f"{cls_name}: axis must be an int or a list of ints, got {axis!r}")


class Constraint:
    """Base class: ``__call__(w) -> w'`` (a new array, w's shape and dtype); the identity here.

    elementwise: True when each element is projected on its own, so that the layout does not
        matter (the layers then apply it in place, without converting to Keras's layout).
    """

    elementwise = False

    def __call__(self, w) -> np.ndarray:
        return np.array(w)

    def check_shape(self, shape, who: str) -> None:
        """ValueError when the constraint cannot apply to a weight of ``shape`` (checked before
        a training step, so that no step is half applied)."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Constraint":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _NormConstraint(Constraint):
    """Rescales w along ``axis`` from its norms: ``w * desired(norms) / (epsilon + norms)``."""

    axis = 0

    def desired(self, norms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_shape(self, shape, who):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -len(shape) <= a < len(shape) for a in axes):
            raise ValueError(f"{who}: {type(self).__name__}(axis={self.axis}) does not fit a weight of "
                             f"shape {tuple(shape)}")

    def __call__(self, w):
        w = np.asarray(w)
        self.check_shape(w.shape, type(self).__name__)
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        norms = np.sqrt(np.sum(np.square(w, dtype=np.float64), axis=axis, keepdims=True))
        return (w * (self.desired(norms) / (_EPSILON + norms))).astype(w.dtype)


class MaxNorm(_NormConstraint):
    """Norms along ``axis`` at most ``max_value`` (default 2); smaller ones are kept."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(type(self).__name__, "max_value", max_value, low=0)
        self.axis = _axis(type(self).__name__, axis)

    def desired(self, norms):
        return np.clip(norms, 0, self.max_value)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class UnitNorm(_NormConstraint):
    """Norms along ``axis`` equal to 1."""

    def __init__(self, axis=0):
        self.axis = _axis(type(self).__name__, axis)

    def desired(self, norms):
        return np.ones_like(norms)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(_NormConstraint):
    """Norms along ``axis`` moved towards ``[min_value, max_value]``: the new norm is
    ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm`` (``rate=1``: into it)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        who = type(self).__name__
        self.min_value = _number(who, "min_value", min_value, low=0)
        self.max_value = _number(who, "max_value", max_value, low=0)
        if self.max_value < self.min_value:
            raise ValueError(f"{who}: max_value ({max_value}) must be >= min_value ({min_value})")
        self.rate = _number(who, "rate", rate, low=0, high=1)
        self.axis = _axis(who, axis)

    def desired(self, norms):
        return self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class NonNeg(Constraint):
    """Negative weights become 0."""

    elementwise = True

    def __call__(self, w):
        w = np.asarray(w)
        return np.maximum(w, 0).astype(w.dtype)


# Keras's lowercase names are its classes under other names.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = {cls.__name__: cls for cls in (MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_NAMES = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
          "min_max_norm": MinMaxNorm, **_CLASSES}


def serialize(constraint) -> dict | None:
    """``{"module", "class_name", "config"}`` (None for None); ``deserialize`` inverts it."""
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise TypeError(f"expected a Constraint, got {type(constraint).__name__}")
    return {"module": "fastrnn.constraints", "class_name": type(constraint).__name__,
            "config": constraint.get_config()}


def deserialize(config, custom_objects: dict | None = None) -> Constraint | None:
    """A constraint from ``serialize()``'s dict or a name; custom_objects: name -> class."""
    if config is None or isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict from constraints.serialize(), got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    cls = classes.get(config["class_name"])
    if not (isinstance(cls, type) and issubclass(cls, Constraint)):
        raise ValueError(f"unknown constraint {config['class_name']!r}; known: {sorted(_CLASSES)} "
                         "(pass custom_objects for your own)")
    return cls.from_config(dict(config.get("config", {})))


def get(identifier) -> Constraint | None:
    """None, a name (Keras's, with its defaults), a Constraint (as is) or class, or a config dict."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown constraint {identifier!r}; valid names: {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        raise TypeError(f"a plain function {identifier!r} cannot be saved with the model: subclass "
                        "fastrnn.constraints.Constraint and implement __call__")
    raise TypeError(f"a constraint must be None, a name, a Constraint or a config dict, "
                    f"got {type(identifier).__name__}: {identifier!r}")
