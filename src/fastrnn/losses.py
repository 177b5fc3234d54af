"""Losses, with their values as Keras 3 computes them and their gradients.

A loss maps targets ``y_true`` and predictions ``y_pred: (B, C)`` or, for sequence
outputs, ``(B, T, C)`` to one number, and gives the gradient of that number with
respect to ``y_pred``::

    loss = CategoricalCrossentropy(from_logits=True)
    value = loss(y_true, y_pred)           # float
    dy = loss.gradient(y_true, y_pred)     # shaped like y_pred, y_pred's dtype

Two stages, as in Keras:

1. ``call(y_true, y_pred) -> values``: one value per sample (per sample and time
   step for sequences), reducing the last (class/feature) axis. The module-level
   functions (``mse``, ``binary_crossentropy``, ...) return these.
2. Reduction: by default ``"sum_over_batch_size"``, i.e. ``sum(w * values) / values.size``
   with weights ``w`` (1 without ``sample_weight``/``mask``): the mean over batch and time.

Targets are brought to the prediction's rank as Keras does: ``y_true: (B,)`` goes with
``y_pred: (B, 1)``. Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` before their log
(the clip passes no gradient where it bites, as in Keras), the bounds rounded to the
prediction's dtype as Keras clips in it: for float32 ``1 - 1e-7`` is ``1 - 2**-23``, so a
probability of exactly 1 against a target of 0 costs ``-log(2**-23) = 15.94``, not 16.12.
``from_logits=True`` uses log-sum-exp forms that stay finite for any finite logits.
Arithmetic is float64 inside; gradients come back in ``y_pred``'s dtype.

A user loss subclasses :class:`Loss` and implements ``call`` plus either
``call_gradient`` (the derivative of each value with respect to its own row of
``y_pred``; sample weights, masks and reductions then work) or ``gradient`` directly.
"""
from __future__ import annotations

import numpy as np

from fastrnn._checks import check_flag, check_int, check_real

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "mean_squared_error", "mean_absolute_error", "mse", "mae", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "get", "serialize", "deserialize", "EPSILON", "clip_bounds",
]

#: Keras's fuzz factor: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7


def clip_bounds(dtype) -> tuple[float, float]:
    """``(EPSILON, 1 - EPSILON)`` rounded to ``dtype`` (float32 or float64; float64 for any
    other), as floats. A float32 prediction clipped in float64 to these bounds is exactly the
    float32 clip Keras computes."""
    dt = np.dtype(dtype)
    if dt != np.float32:
        dt = np.dtype(np.float64)
    return float(dt.type(EPSILON)), float(dt.type(1.0 - EPSILON))


_BOUNDS64 = clip_bounds(np.float64)

_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none")


# ---------------------------------------------------------------------- input handling
def _as_array(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
    return x


def _pred_dtype(y_pred: np.ndarray):
    """The dtype results come back in: y_pred's if floating, else float64."""
    return y_pred.dtype if np.issubdtype(y_pred.dtype, np.floating) else np.dtype(np.float64)


def _match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras's rule: add or drop a trailing length-1 axis of y_true to match y_pred's rank."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return y_true[..., 0]
    return y_true


def _prepare_dense(y_true, y_pred):
    """(y_true, y_pred) as float64 arrays of one shape (B, ..., C); the result dtype."""
    y_pred = _as_array("y_pred", y_pred)
    y_true = _as_array("y_true", y_true)
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one axis, got a scalar")
    y_true = _match_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return y_true.astype(np.float64), y_pred.astype(np.float64), _pred_dtype(y_pred)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=-1, keepdims=True)  # (..., C)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _smooth_binary(y_true: np.ndarray, label_smoothing: float) -> np.ndarray:
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _smooth_categorical(y_true: np.ndarray, label_smoothing: float) -> np.ndarray:
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]


def _check_label_smoothing(label_smoothing) -> float:
    return check_real("label_smoothing", label_smoothing, low=0.0, high=1.0)


# ---------------------------------------------------------------------- per-sample values
# Each pair: the values (reducing the last axis) and d value / d y_pred (shaped like y_pred).

def _mse_values(t, p):
    return np.mean(np.square(p - t), axis=-1)


def _mse_grad(t, p):
    return 2.0 * (p - t) / p.shape[-1]


def _mae_values(t, p):
    return np.mean(np.abs(p - t), axis=-1)


def _mae_grad(t, p):
    return np.sign(p - t) / p.shape[-1]


# ``bounds``: the clip of the probabilities, ``clip_bounds`` of the prediction's dtype.

def _bce_values(t, p, from_logits, bounds=_BOUNDS64):
    if from_logits:
        # -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)), written to stay finite.
        elementwise = np.maximum(p, 0.0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        pc = np.clip(p, *bounds)
        elementwise = -(t * np.log(pc) + (1.0 - t) * np.log(1.0 - pc))
    return np.mean(elementwise, axis=-1)


def _bce_grad(t, p, from_logits, bounds=_BOUNDS64):
    if from_logits:
        return (_stable_sigmoid(p) - t) / p.shape[-1]
    low, high = bounds
    pc = np.clip(p, low, high)
    inside = (p >= low) & (p <= high)  # the clip passes gradient only here
    return np.where(inside, (1.0 - t) / (1.0 - pc) - t / pc, 0.0) / p.shape[-1]


def _cce_values(t, p, from_logits, bounds=_BOUNDS64):
    if from_logits:
        return -np.sum(t * _log_softmax(p), axis=-1)
    # Keras rescales the probabilities to sum to 1 before clipping them.
    q = np.clip(p / np.sum(p, axis=-1, keepdims=True), *bounds)  # (..., C)
    return -np.sum(t * np.log(q), axis=-1)


def _cce_grad(t, p, from_logits, bounds=_BOUNDS64):
    if from_logits:
        softmax = np.exp(_log_softmax(p))  # (..., C)
        return softmax * np.sum(t, axis=-1, keepdims=True) - t
    low, high = bounds
    total = np.sum(p, axis=-1, keepdims=True)  # (..., 1)
    q = p / total
    qc = np.clip(q, low, high)
    inside = (q >= low) & (q <= high)
    dq = np.where(inside, -t / qc, 0.0)  # d value / d q
    # q = p / total: d q_k / d p_j = (delta_kj - q_k) / total
    return (dq - np.sum(dq * q, axis=-1, keepdims=True)) / total


def _sparse_to_dense(y_true, y_pred, ignore_class=None):
    """Integer labels (B, ...) or (B, ..., 1) -> (one-hot (B, ..., C), valid mask or None)."""
    y_pred = _as_array("y_pred", y_pred)
    y_true = _as_array("y_true", y_true)
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one axis (the classes), got a scalar")
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse labels y_true must have shape {y_pred.shape[:-1]} "
                         f"(or with a trailing 1) for y_pred shape {y_pred.shape}, got {y_true.shape}")
    n_classes = y_pred.shape[-1]
    labels = y_true.astype(np.float64)
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = np.where(valid, labels, 0.0)
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError("sparse labels y_true must be whole numbers (class indices)")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"sparse labels must be in [0, {n_classes}), "
                         f"got values in [{labels.min():g}, {labels.max():g}]")
    one_hot = np.eye(n_classes)[labels.astype(np.intp)]  # (..., C)
    return one_hot, y_pred.astype(np.float64), _pred_dtype(y_pred), valid


# ---------------------------------------------------------------------- Keras-style functions
def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean of ``(y_pred - y_true)**2`` over the last axis: (B, ..., C) -> (B, ...)."""
    t, p, dtype = _prepare_dense(y_true, y_pred)
    return _mse_values(t, p).astype(dtype)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean of ``|y_pred - y_true|`` over the last axis: (B, ..., C) -> (B, ...)."""
    t, p, dtype = _prepare_dense(y_true, y_pred)
    return _mae_values(t, p).astype(dtype)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0) -> np.ndarray:
    """Per-sample binary cross-entropy, averaged over the last axis: (B, ..., C) -> (B, ...)."""
    t, p, dtype = _prepare_dense(y_true, y_pred)
    t = _smooth_binary(t, _check_label_smoothing(label_smoothing))
    return _bce_values(t, p, from_logits, clip_bounds(dtype)).astype(dtype)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                             label_smoothing: float = 0.0) -> np.ndarray:
    """Per-sample cross-entropy against one-hot (or soft) targets: (B, ..., C) -> (B, ...)."""
    t, p, dtype = _prepare_dense(y_true, y_pred)
    t = _smooth_categorical(t, _check_label_smoothing(label_smoothing))
    return _cce_values(t, p, from_logits, clip_bounds(dtype)).astype(dtype)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                                    ignore_class: int | None = None) -> np.ndarray:
    """Per-sample cross-entropy against integer labels ``(B, ...)``: y_pred (B, ..., C) -> (B, ...).

    Positions whose label equals ``ignore_class`` get the value 0.
    """
    t, p, dtype, valid = _sparse_to_dense(y_true, y_pred, ignore_class)
    values = _cce_values(t, p, from_logits, clip_bounds(dtype))
    if valid is not None:
        values = np.where(valid, values, 0.0)
    return values.astype(dtype)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ---------------------------------------------------------------------- Loss classes
class Loss:
    """Base class: turns per-sample values into one number, and back into a gradient.

    name: label of the loss.
    reduction: ``"sum_over_batch_size"`` (or its synonym ``"mean"``): ``sum(w * values) / values.size``;
        ``"sum"``: ``sum(w * values)``; ``"mean_with_sample_weight"``: ``sum(w * values) / sum(w)``;
        ``"none"``: the weighted values themselves (no gradient then).

    ``__call__`` and ``gradient`` take optional ``sample_weight`` (shape (B,) or any
    leading part of the values' shape, e.g. (B, T)) and ``mask`` (values' shape, 1 =
    counts). As in Keras, a mask makes the mean run over the unmasked values only.
    """

    name = "loss"
    reduction = "sum_over_batch_size"
    _bounds = _BOUNDS64  # the probability clip of the crossentropies; prepare sets it per input

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; valid: {list(_REDUCTIONS)}")
        self.name = name or self.name
        self.reduction = reduction

    # Subclasses implement these two (or override gradient instead of call_gradient).
    def call(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Per-sample values (B, ...) for float64 y_true, y_pred (B, ..., C)."""
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def call_gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """d values[b, ...] / d y_pred[b, ..., :], shaped like y_pred (B, ..., C)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no gradient: implement call_gradient(y_true, y_pred) "
            "(per-sample derivatives) or gradient(y_true, y_pred)")

    def prepare(self, y_true, y_pred):
        """Convert the inputs for ``call``: (y_true, y_pred as float64, result dtype, mask or None)."""
        t, p, dtype = _prepare_dense(y_true, y_pred)
        return t, p, dtype, None

    # The reduction, shared by all losses.
    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        """The reduced loss, a float (an array for ``reduction="none"``)."""
        t, p, dtype, own_mask = self.prepare(y_true, y_pred)
        values = np.asarray(self.call(t, p), dtype=np.float64)  # (B, ...)
        weights, divisor = self._weights(values.shape, sample_weight, _and_masks(mask, own_mask))
        weighted = values if weights is None else values * weights
        if self.reduction == "none":
            return weighted.astype(dtype)
        return float(np.sum(weighted) / divisor) if divisor else 0.0

    def gradient(self, y_true, y_pred, sample_weight=None, mask=None) -> np.ndarray:
        """d(the reduced loss)/d(y_pred), shaped like y_pred, in y_pred's dtype."""
        if self.reduction == "none":
            raise ValueError("a loss with reduction='none' is not a number and has no gradient")
        t, p, dtype, own_mask = self.prepare(y_true, y_pred)
        values_shape = p.shape[:-1]
        weights, divisor = self._weights(values_shape, sample_weight, _and_masks(mask, own_mask))
        d_values = np.ones(values_shape) if weights is None else weights  # d loss / d values * divisor
        d_values = d_values / divisor if divisor else np.zeros(values_shape)
        grad = self.call_gradient(t, p) * d_values[..., None]  # (B, ..., C)
        return grad.astype(dtype)

    def _weights(self, values_shape, sample_weight, mask):
        """Per-value weights (or None) and the divisor of the reduction."""
        n = int(np.prod(values_shape))
        weights = None
        if mask is not None:
            mask = _broadcast_weights("mask", mask, values_shape).astype(np.float64)
            if self.reduction in ("sum_over_batch_size", "mean"):
                valid = mask.sum()
                # Keras scales the kept entries by total/valid, so the mean runs over them.
                mask = mask * (n / valid) if valid else np.zeros(values_shape)
            weights = mask
        if sample_weight is not None:
            sw = _broadcast_weights("sample_weight", sample_weight, values_shape)
            weights = sw if weights is None else weights * sw
        if self.reduction in ("sum", "none"):
            return weights, 1.0
        if self.reduction == "mean_with_sample_weight" and weights is not None:
            return weights, float(np.sum(weights))
        return weights, float(n)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _and_masks(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.logical_and(np.asarray(a, dtype=bool), b)


def _broadcast_weights(name: str, w, values_shape) -> np.ndarray:
    """Weights of shape (B,), (B, T), (B, 1), ... -> values_shape, aligned on the leading axes
    (axes of length 1 broadcast, as in Keras)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim > len(values_shape) and w.shape[-1] == 1:
        w = w[..., 0]  # (B, 1) weights for (B,) values
    lead = tuple(values_shape[:w.ndim])
    if w.ndim > len(values_shape) or any(a not in (b, 1) for a, b in zip(w.shape, lead)):
        raise ValueError(f"{name} shape {w.shape} does not fit per-sample values of shape "
                         f"{tuple(values_shape)} (it must match their leading axes)")
    return np.broadcast_to(w.reshape(w.shape + (1,) * (len(values_shape) - w.ndim)), values_shape)


class MeanSquaredError(Loss):
    """Mean of ``(y_pred - y_true)**2``."""

    def __init__(self, reduction: str = "sum_over_batch_size", name: str = "mean_squared_error"):
        super().__init__(name, reduction)

    def call(self, y_true, y_pred):
        return _mse_values(y_true, y_pred)

    def call_gradient(self, y_true, y_pred):
        return _mse_grad(y_true, y_pred)


class MeanAbsoluteError(Loss):
    """Mean of ``|y_pred - y_true|`` (gradient 0 where they are equal)."""

    def __init__(self, reduction: str = "sum_over_batch_size", name: str = "mean_absolute_error"):
        super().__init__(name, reduction)

    def call(self, y_true, y_pred):
        return _mae_values(y_true, y_pred)

    def call_gradient(self, y_true, y_pred):
        return _mae_grad(y_true, y_pred)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy for targets in [0, 1] and probabilities (or logits).

    from_logits: y_pred holds logits (any real) rather than probabilities.
    label_smoothing: targets become ``y_true * (1 - s) + 0.5 * s``.
    """

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "sum_over_batch_size", name: str = "binary_crossentropy"):
        super().__init__(name, reduction)
        self.from_logits = check_flag("from_logits", from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def prepare(self, y_true, y_pred):
        prepared = super().prepare(y_true, y_pred)
        self._bounds = clip_bounds(prepared[2])  # for the call(_gradient) that follows
        return prepared

    def call(self, y_true, y_pred):
        return _bce_values(_smooth_binary(y_true, self.label_smoothing), y_pred, self.from_logits,
                           self._bounds)

    def call_gradient(self, y_true, y_pred):
        return _bce_grad(_smooth_binary(y_true, self.label_smoothing), y_pred, self.from_logits,
                         self._bounds)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or soft) targets over the last axis.

    from_logits: y_pred holds logits; else probabilities, rescaled to sum to 1 (as Keras).
    label_smoothing: targets become ``y_true * (1 - s) + s / C``.
    """

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0,
                 reduction: str = "sum_over_batch_size", name: str = "categorical_crossentropy"):
        super().__init__(name, reduction)
        self.from_logits = check_flag("from_logits", from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def prepare(self, y_true, y_pred):
        prepared = super().prepare(y_true, y_pred)
        self._bounds = clip_bounds(prepared[2])  # for the call(_gradient) that follows
        return prepared

    def call(self, y_true, y_pred):
        return _cce_values(_smooth_categorical(y_true, self.label_smoothing), y_pred, self.from_logits,
                           self._bounds)

    def call_gradient(self, y_true, y_pred):
        return _cce_grad(_smooth_categorical(y_true, self.label_smoothing), y_pred, self.from_logits,
                         self._bounds)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class labels: y_true (B, ...) or (B, ..., 1), y_pred (B, ..., C).

    from_logits: y_pred holds logits; else probabilities.
    ignore_class: a label value to skip (e.g. padding); those positions count as masked.
    """

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str = "sum_over_batch_size", name: str = "sparse_categorical_crossentropy"):
        super().__init__(name, reduction)
        self.from_logits = check_flag("from_logits", from_logits)
        self.ignore_class = check_int("ignore_class", ignore_class, allow_none=True)

    def prepare(self, y_true, y_pred):
        prepared = _sparse_to_dense(y_true, y_pred, self.ignore_class)
        self._bounds = clip_bounds(prepared[2])  # for the call(_gradient) that follows
        return prepared

    def call(self, y_true, y_pred):
        return _cce_values(y_true, y_pred, self.from_logits, self._bounds)

    def call_gradient(self, y_true, y_pred):
        return _cce_grad(y_true, y_pred, self.from_logits, self._bounds)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


# ---------------------------------------------------------------------- lookup
_CLASSES = {cls.__name__: cls for cls in (
    MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy,
    CategoricalCrossentropy, SparseCategoricalCrossentropy)}

# Keras's spellings (and the class names), matched case-insensitively.
_NAMES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    **{name.lower(): cls for name, cls in _CLASSES.items()},
}

_FUNCTIONS = {
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
    binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}


def serialize(loss: Loss) -> dict:
    """``{"class_name": ..., "config": {...}}``, JSON-serialisable; ``deserialize`` inverts it."""
    if not isinstance(loss, Loss):
        raise TypeError(f"expected a Loss, got {type(loss).__name__}")
    return {"module": "fastrnn.losses", "class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects: dict | None = None) -> Loss:
    """A Loss from ``serialize()``'s dict (or a name); custom_objects: name -> Loss subclass."""
    if isinstance(config, str):
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict from losses.serialize(), got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    class_name = config["class_name"]
    if class_name not in classes:
        raise ValueError(f"unknown loss class {class_name!r}; known: {sorted(classes)} "
                         "(pass custom_objects for your own)")
    return classes[class_name].from_config(config.get("config", {}))


def get(identifier) -> Loss:
    """A Loss from a name, a Loss instance (as is) or class, one of this module's functions, or a dict."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}; valid names: {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        if identifier in _FUNCTIONS:
            return _FUNCTIONS[identifier]()
        raise ValueError(f"unknown loss function {identifier!r}: a plain function has no gradient; "
                         "subclass fastrnn.losses.Loss and implement call and call_gradient")
    raise TypeError(f"loss must be a name, a Loss, a loss function or a dict, got {type(identifier).__name__}")
