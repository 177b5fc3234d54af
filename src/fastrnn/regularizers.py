"""Regularizers, Keras 3's: ``L1``, ``L2``, ``L1L2``, ``OrthogonalRegularizer``.

A regularizer maps a weight (in Keras's layout) to a penalty, and here also gives the
penalty's gradient, since fastrnn differentiates by hand::

    reg = L2(0.01)
    reg(w)            # 0.01 * sum(w**2), a float
    reg.gradient(w)   # 0.02 * w, shaped like w, w's dtype

Layers take them by name ('l1', 'l2', 'l1l2' or 'l1_l2', 'orthogonal_regularizer'; Keras's
defaults), instance or config: ``kernel_regularizer``, ``bias_regularizer``,
``recurrent_regularizer``, ``embeddings_regularizer`` and, on every layer,
``activity_regularizer``. A model applies them as Keras 3 does:

- the penalty of each trainable weight joins the loss that is minimised, and the loss that
  is reported (by ``fit``, ``train_on_batch``, ``evaluate`` alike), and its gradient joins
  the weight's;
- an activity regularizer's penalty is that of the layer's output (of each output, with
  ``return_state``) divided by the batch size; its gradient joins the output's gradient.

The layers keep recurrent weights in the kernel layout (``fastrnn.modes``); a regularizer
with ``elementwise = True`` (a sum over elements, as L1 and L2 are) is the same in either
layout and is computed there, any other in Keras's layout.

A regularizer of your own subclasses :class:`Regularizer` and implements ``__call__`` and
``gradient`` (and ``get_config`` to be saved). A plain function, which Keras also takes, has
no gradient here: it raises TypeError.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

__all__ = [
    "Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer",
    "l1", "l2", "l1_l2", "orthogonal_regularizer", "get", "serialize", "deserialize",
]

_EPSILON = 1e-7  # Keras's fuzz factor, the least norm OrthogonalRegularizer divides by


def _factor(cls_name: str, name: str, value, default: float) -> float:
    """A penalty factor: a finite real >= 0 (None means ``default``), as a float."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{cls_name}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _as_float_array(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"a regularizer takes a floating array, got dtype {x.dtype}")
    return x


class Regularizer:
    """Base class: ``__call__(x) -> float`` the penalty, ``gradient(x) -> array like x``.

    elementwise: True when the penalty is a sum over the elements of x, so that it does not
        depend on how they are laid out (the layers then skip converting to Keras's layout).
    """

    elementwise = False

    def __call__(self, x) -> float:
        return 0.0

    def gradient(self, x) -> np.ndarray:
        return np.zeros_like(_as_float_array(x))

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config() to be saved")

    @classmethod
    def from_config(cls, config: dict) -> "Regularizer":
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``; both factors default to 0 (as Keras's code has it)."""

    elementwise = True

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(type(self).__name__, "l1", l1, 0.0)
        self.l2 = _factor(type(self).__name__, "l2", l2, 0.0)

    def __call__(self, x):
        x = _as_float_array(x)
        value = 0.0
        if self.l1:
            value += self.l1 * float(np.sum(np.abs(x), dtype=np.float64))
        if self.l2:
            value += self.l2 * float(np.sum(np.square(x, dtype=np.float64)))
        return value

    def gradient(self, x):
        x = _as_float_array(x)
        grad = np.zeros_like(x)
        if self.l1:
            grad += self.l1 * np.sign(x)  # 0 at 0, as torch differentiates |x|
        if self.l2:
            grad += (2.0 * self.l2) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``, by default ``l1=0.01``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=_factor(type(self).__name__, "l1", l1, 0.01))

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``, by default ``l2=0.01``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=_factor(type(self).__name__, "l2", l2, 0.01))

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns of a 2-D weight towards orthogonality::

        n_i = x_i / max(||x_i||, 1e-7)                  the rows, normalised
        factor * 0.5 * sum_{i != j} |n_i . n_j| / (k * (k - 1) / 2)     over the k rows

    Keras's layout matters here: a recurrent kernel's rows are its input features.
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor(type(self).__name__, "factor", factor, 0.01)
        if mode not in ("rows", "columns"):
            raise ValueError(f"OrthogonalRegularizer: mode must be 'rows' or 'columns', got {mode!r}")
        self.mode = mode

    def _rows(self, x) -> np.ndarray:
        """x as the (k, d) matrix whose k rows are compared, in float64."""
        x = _as_float_array(x)
        if x.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer takes a 2-D weight, got shape {x.shape}")
        rows = x if self.mode == "rows" else x.T
        if rows.shape[0] < 2:
            raise ValueError(f"OrthogonalRegularizer(mode={self.mode!r}) needs at least 2 {self.mode} "
                             f"to compare, got a weight of shape {x.shape}")
        return rows.astype(np.float64)

    @staticmethod
    def _normalise(rows):
        """(normalised rows (k, d), each row's scale (k, 1)): 1/||row||, at most 1/epsilon."""
        with np.errstate(divide="ignore"):
            scale = np.minimum(1.0 / np.sqrt(np.sum(np.square(rows), axis=1, keepdims=True)), 1.0 / _EPSILON)
        return rows * scale, scale

    def _coefficient(self, k: int) -> float:
        return self.factor * 0.5 / (k * (k - 1) / 2.0)

    def __call__(self, x):
        rows = self._rows(x)
        n, _ = self._normalise(rows)
        product = n @ n.T  # (k, k)
        np.fill_diagonal(product, 0.0)
        return self._coefficient(len(n)) * float(np.sum(np.abs(product)))

    def gradient(self, x):
        x = _as_float_array(x)
        rows = self._rows(x)
        n, scale = self._normalise(rows)
        sign = np.sign(n @ n.T)  # (k, k): d|p| / dp
        np.fill_diagonal(sign, 0.0)
        dn = 2.0 * self._coefficient(len(n)) * (sign @ n)  # (k, d); sign is symmetric
        clipped = scale >= 1.0 / _EPSILON  # near-zero rows: a fixed scale, no projection
        along = np.sum(n * dn, axis=1, keepdims=True)  # (k, 1)
        d_rows = scale * np.where(clipped, dn, dn - n * along)
        return (d_rows if self.mode == "rows" else d_rows.T).astype(x.dtype)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras's lowercase names are its classes under other names.
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2, OrthogonalRegularizer)}
_NAMES = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2,
          "orthogonal_regularizer": OrthogonalRegularizer, **_CLASSES}


def serialize(regularizer) -> dict | None:
    """``{"module", "class_name", "config"}`` (None for None); ``deserialize`` inverts it."""
    if regularizer is None:
        return None
    if not isinstance(regularizer, Regularizer):
        raise TypeError(f"expected a Regularizer, got {type(regularizer).__name__}")
    return {"module": "fastrnn.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config()}


def deserialize(config, custom_objects: dict | None = None) -> Regularizer | None:
    """A regularizer from ``serialize()``'s dict or a name; custom_objects: name -> class."""
    if config is None or isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict from regularizers.serialize(), got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    cls = classes.get(config["class_name"])
    if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
        raise ValueError(f"unknown regularizer {config['class_name']!r}; known: {sorted(_CLASSES)} "
                         "(pass custom_objects for your own)")
    return cls.from_config(dict(config.get("config", {})))


def get(identifier) -> Regularizer | None:
    """None, a name (Keras's, with its defaults), a Regularizer (as is) or class, or a config dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown regularizer {identifier!r}; valid names: {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        raise TypeError(f"a plain function {identifier!r} has no gradient, so it cannot be a "
                        "regularizer here: subclass fastrnn.regularizers.Regularizer and implement "
                        "__call__ and gradient")
    raise TypeError(f"a regularizer must be None, a name, a Regularizer or a config dict, "
                    f"got {type(identifier).__name__}: {identifier!r}")
