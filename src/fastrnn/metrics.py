"""Metrics: running, sample-weighted means of per-sample scores, as Keras 3 keeps them.

A metric accumulates over batches and reports the mean since its last reset::

    m = get("accuracy", loss=losses.BinaryCrossentropy())
    for y_true, y_pred in batches:
        m.update(y_true, y_pred)        # optional sample_weight
    m.result()                         # float
    m.reset()

Each update turns the batch into per-sample scores (e.g. 1.0 for a correct
prediction), averages sequence axes within a sample, and adds ``sum(w * score)``
and ``sum(w)`` to two running totals (``w`` = 1 without sample weights), so
batches of unequal size count in proportion to their samples. ``result()`` is
their ratio (0 before any update).
"""
from __future__ import annotations

from numbers import Real

import numpy as np

from fastrnn import losses as _losses

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error", "mse", "mae",
    "get", "serialize", "deserialize", "direction_of",
]


# ---------------------------------------------------------------------- per-sample scores
def _arrays(y_true, y_pred):
    return np.asarray(y_true), np.asarray(y_pred)


def accuracy(y_true, y_pred) -> np.ndarray:
    """Fraction of exactly equal entries over the last axis: (B, ..., C) -> (B, ...)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    y_true = _losses._match_rank(y_true, y_pred)
    return np.mean(y_true == y_pred, axis=-1)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Fraction of entries with ``(y_pred > threshold) == y_true`` over the last axis."""
    y_true, y_pred = _arrays(y_true, y_pred)
    y_true = _losses._match_rank(y_true, y_pred)
    return np.mean(y_true == (y_pred > threshold), axis=-1)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1.0 where ``argmax(y_true) == argmax(y_pred)`` over the last axis: (B, ..., C) -> (B, ...)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"one-hot y_true shape {y_true.shape} does not match y_pred shape {y_pred.shape}")
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1.0 where the integer label equals ``argmax(y_pred)``: labels (B, ...) or (B, ..., 1)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse labels y_true must have shape {y_pred.shape[:-1]} "
                         f"(or with a trailing 1) for y_pred shape {y_pred.shape}, got {y_true.shape}")
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


mean_squared_error = mse = _losses.mean_squared_error
mean_absolute_error = mae = _losses.mean_absolute_error


# ---------------------------------------------------------------------- accumulation
def _same_rank(values: np.ndarray, weights: np.ndarray):
    """Keras's rule: drop or add a trailing length-1 axis so the ranks agree."""
    if values.ndim == weights.ndim + 1 and values.shape[-1] == 1:
        values = values[..., 0]
    elif weights.ndim == values.ndim + 1 and weights.shape[-1] == 1:
        weights = weights[..., 0]
    return values, weights


def _mean_after_first_axis(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1).mean(axis=1) if a.ndim > 1 else a


class Metric:
    """Base class: a running weighted total and count, and the name shown in logs.

    Subclasses implement ``update(y_true, y_pred, sample_weight=None)`` by calling
    ``self._accumulate(per_sample_values, sample_weight)``.

    name: the key of this metric in logs and History.
    direction: ``"up"`` if larger is better, ``"down"`` if smaller is, else None.
    """

    direction = None

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name or type(self).__name__.lower()
        self.reset()

    def update(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update")

    def result(self) -> float:
        """The weighted mean since the last reset (0.0 before any update)."""
        return self.total / self.count if self.count else 0.0

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0.0

    # Keras's method names.
    def update_state(self, *args, **kwargs) -> None:
        self.update(*args, **kwargs)

    def reset_state(self) -> None:
        self.reset()

    def _accumulate(self, values, sample_weight=None) -> None:
        """Add per-sample values (B, ...) (or a scalar) with optional weights."""
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            self.total += float(np.sum(_mean_after_first_axis(values)))
            self.count += float(values.shape[0]) if values.ndim else 1.0
            return
        weights = np.asarray(sample_weight, dtype=np.float64)
        values, weights = _same_rank(values, weights)
        if values.ndim > weights.ndim:  # e.g. (B, T) scores, (B,) weights: average T first
            values = values.reshape(values.shape[:weights.ndim] + (-1,)).mean(axis=-1)
        try:
            weights = np.broadcast_to(weights, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight shape {np.shape(sample_weight)} does not fit "
                             f"values of shape {values.shape}") from None
        self.total += float(np.sum(_mean_after_first_axis(values * weights)))
        self.count += float(np.sum(_mean_after_first_axis(weights)))

    def get_config(self) -> dict:
        """The arguments that make this metric again: ``type(self).from_config(config)``. A subclass
        with arguments beyond ``name`` adds them."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "Metric":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, result={self.result():.6g})"


class Mean(Metric):
    """Weighted running mean of the values given: ``update(values, sample_weight=None)``.

    E.g. the epoch loss: ``m.update(batch_loss, sample_weight=batch_size)``.
    """

    def __init__(self, name: str = "mean"):
        super().__init__(name)

    def update(self, values, sample_weight=None) -> None:
        self._accumulate(values, sample_weight)


class MeanMetricWrapper(Metric):
    """A metric from a function ``fn(y_true, y_pred, **kwargs) -> per-sample values``."""

    def __init__(self, fn, name: str | None = None, direction: str | None = None, **kwargs):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.fn_kwargs = kwargs
        if direction is not None:
            self.direction = direction
        super().__init__(name or getattr(fn, "__name__", "metric"))

    def update(self, y_true, y_pred, sample_weight=None) -> None:
        self._accumulate(self.fn(y_true, y_pred, **self.fn_kwargs), sample_weight)


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly."""

    direction = "up"

    def __init__(self, name: str = "accuracy"):
        super().__init__(accuracy, name)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches binary labels.

    threshold: 0.5 for probabilities; 0.0 for logits.
    """

    direction = "up"

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, Real) or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        self.threshold = float(threshold)
        super().__init__(binary_accuracy, name, threshold=self.threshold)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of y_pred matches the argmax of one-hot y_true."""

    direction = "up"

    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of y_pred matches an integer label."""

    direction = "up"

    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


class MeanSquaredError(MeanMetricWrapper):
    """Running mean of the per-sample mean squared error."""

    direction = "down"

    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(mean_squared_error, name)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean of the per-sample mean absolute error."""

    direction = "down"

    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(mean_absolute_error, name)


# ---------------------------------------------------------------------- lookup
_CLASSES = {cls.__name__: cls for cls in (
    Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    MeanSquaredError, MeanAbsoluteError)}

_NAMES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    **{name.lower(): cls for name, cls in _CLASSES.items() if cls is not Mean},
}

_FUNCTIONS = {
    accuracy: Accuracy, binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
    sparse_categorical_accuracy: SparseCategoricalAccuracy,
    mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError,
}


def direction_of(name: str) -> str | None:
    """``"up"``/``"down"`` for a logged quantity's name ('val_accuracy', 'loss', 'mae', ...), else None."""
    base = name[4:] if name.startswith("val_") else name
    if base == "loss" or base.endswith("_loss"):
        return "down"
    if base in ("accuracy", "acc"):
        return "up"
    cls = _NAMES.get(base.lower())
    return cls.direction if cls is not None else None


def _accuracy_for(name: str, loss, y_true, y_pred) -> Metric:
    """Binary, categorical or sparse accuracy: by the loss where it is a crossentropy, else by the
    shapes, as Keras 3 does for every loss. Going by the loss differs from Keras 3 for
    multi-label outputs under binary crossentropy (binary accuracy here, categorical there)
    and for binary crossentropy on logits (a threshold of 0 here, 0.5 there)."""
    if loss is not None:
        loss = _losses.get(loss)
        if isinstance(loss, _losses.BinaryCrossentropy):
            # With logits the decision boundary is 0, not 0.5.
            return BinaryAccuracy(name=name, threshold=0.0 if loss.from_logits else 0.5)
        if isinstance(loss, _losses.SparseCategoricalCrossentropy):
            return SparseCategoricalAccuracy(name=name)
        if isinstance(loss, _losses.CategoricalCrossentropy):
            return CategoricalAccuracy(name=name)
    if y_true is None or y_pred is None:
        raise ValueError(f"metric {name!r} needs the loss (a crossentropy) or y_true and y_pred "
                         "to choose between binary, categorical and sparse accuracy")
    true_shape, pred_shape = np.shape(y_true), np.shape(y_pred)
    if not true_shape or not pred_shape:
        raise ValueError(f"cannot choose an accuracy for scalar y_true/y_pred ({true_shape}, {pred_shape})")
    if pred_shape[-1] == 1:
        return BinaryAccuracy(name=name)
    if len(true_shape) < len(pred_shape) or true_shape[-1] == 1:
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def get(identifier, loss=None, y_true=None, y_pred=None) -> Metric:
    """A Metric from a name, a Metric (as is) or class, a function, or a dict.

    'accuracy'/'acc' becomes binary, categorical or sparse categorical accuracy,
    chosen by ``loss`` when it is a crossentropy, else by the shapes of y_true and
    y_pred (as Keras 3 does for any loss: y_pred's last axis 1 -> binary; labels
    without a class axis -> sparse; else categorical). A metric named by a string is
    reported under that string.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_for(identifier, loss, y_true, y_pred)
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown metric {identifier!r}; valid names: {sorted({*_NAMES, 'acc'})}")
        return cls(name=identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        cls = _FUNCTIONS.get(identifier)
        return cls() if cls is not None else MeanMetricWrapper(identifier)
    raise TypeError(f"metric must be a name, a Metric, a function or a dict, got {type(identifier).__name__}")


def serialize(metric: Metric) -> dict:
    """``{"class_name": ..., "config": {...}}`` for a built-in metric class."""
    if not isinstance(metric, Metric):
        raise TypeError(f"expected a Metric, got {type(metric).__name__}")
    return {"module": "fastrnn.metrics", "class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> Metric:
    """A Metric from ``serialize()``'s dict; custom_objects: name -> Metric subclass."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict from metrics.serialize(), got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    if config["class_name"] not in classes:
        raise ValueError(f"unknown metric class {config['class_name']!r}; known: {sorted(classes)}")
    return classes[config["class_name"]].from_config(config.get("config", {}))
