"""``compile``'s loss, loss_weights and metrics spread over a model's outputs, as Keras 3 does.

- loss: one loss for every output, or a list (one per output, None for none) or a dict keyed
  by output names (every name). The loss minimised is ``sum(weight * loss)`` over the outputs.
- loss_weights: None (all 1), or a list or dict like loss (a dict may leave names out: 1).
- metrics: for one output, a list; for several, a list with one entry per output (a metric, a
  list of them, or None) or a dict keyed by output names (names may be left out).

Logs name a model's total ``loss``; with more than one output that has a loss, also each one's
unweighted ``<output>_loss``; and the metrics, as ``<output>_<metric>`` when the model has
several outputs (else by the metric's name).
"""
from __future__ import annotations

import math

from fastrnn import losses as losses_module
from fastrnn import metrics as metrics_module


class OutputTarget:
    """What one output is trained and judged on: its loss (or None), weight and metrics."""

    def __init__(self, name, loss, weight, metric_ids, prefix, weighted_ids=()):
        self.name = name
        self.loss = loss
        self.weight = weight  # None means 1 (the loss is not multiplied)
        self.metric_ids = list(metric_ids) + list(weighted_ids)
        # The last ``weighted`` of ``metrics`` are compile's weighted_metrics: they take the
        # sample weights, the others only the mask.
        self.weighted = len(weighted_ids)
        self.prefix = prefix  # "" for a model with one output, else "<name>_"
        self.metrics = None  # Metric objects, made at the first batch (accuracy needs shapes)
        self.loss_log = f"{name}_loss"

    def ensure_metrics(self, y_true, y_pred):
        if self.metrics is None:
            self.metrics = [metrics_module.get(m, loss=self.loss, y_true=y_true, y_pred=y_pred)
                            for m in self.metric_ids]

    def metric_logs(self) -> dict:
        logs = {}
        metrics = self.metrics or []
        for k, m in enumerate(metrics):
            key = self.prefix + m.name
            if k >= len(metrics) - self.weighted and key in logs:
                key = self.prefix + "weighted_" + m.name  # Keras's name for the weighted twin
            logs[key] = float(m.result())
        return logs

    def unweighted(self, k: int) -> bool:
        return k < len(self.metrics or []) - self.weighted


def resolve_loss(loss):
    """The user's loss argument with every leaf made a Loss (None kept), same nesting."""
    if isinstance(loss, (list, tuple)):
        return [None if item is None else losses_module.get(item) for item in loss]
    if isinstance(loss, dict):
        return {name: None if item is None else losses_module.get(item) for name, item in loss.items()}
    return losses_module.get(loss)


def check_metric_names(metrics) -> None:
    """Unknown metric names, and entries that are no metric, fail at compile, not at the
    first batch."""
    for identifier in _metric_leaves(metrics):
        if isinstance(identifier, str):
            if identifier.lower() not in ("accuracy", "acc"):
                metrics_module.get(identifier)
        elif not (identifier is None or isinstance(identifier, metrics_module.Metric)
                  or callable(identifier)):
            raise TypeError(f"compile: each of metrics must be a name, a Metric or a function, "
                            f"got {type(identifier).__name__}: {identifier!r}")


def _metric_leaves(metrics):
    if isinstance(metrics, dict):
        return [m for value in metrics.values() for m in _metric_leaves(value)]
    if isinstance(metrics, (list, tuple)):
        return [m for value in metrics for m in _metric_leaves(value)]
    return [] if metrics is None else [metrics]


def make_targets(loss, loss_weights, metrics, output_names, weighted_metrics=None) -> list[OutputTarget]:
    """One OutputTarget per output; ValueError naming the outputs when a list's length or a
    dict's keys do not fit them."""
    names = list(output_names)
    losses = _per_output(loss, names, "loss", every_name=True, broadcast=True)
    weights = _per_output(loss_weights, names, "loss_weights", every_name=False, broadcast=len(names) == 1)
    metric_lists = _metrics_per_output(metrics, names)
    weighted_lists = _metrics_per_output(weighted_metrics, names)
    prefix = len(names) > 1
    targets = [OutputTarget(name, l, _weight(w, name), m, f"{name}_" if prefix else "", wm)
               for name, l, w, m, wm in zip(names, losses, weights, metric_lists, weighted_lists)]
    if not any(t.loss is not None for t in targets):
        raise ValueError(f"compile: no output of the model has a loss (outputs {names})")
    return targets


def _weight(w, name):
    if w is None:
        return None
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise TypeError(f"compile: loss_weights: the weight of output {name!r} must be a "
                            f"number, got {w!r}") from None
    if not math.isfinite(w):
        raise ValueError(f"compile: loss_weights: the weight of output {name!r} must be finite, "
                         f"got {w}")
    return float(w)


def _per_output(value, names, what, every_name, broadcast):
    n = len(names)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"compile: {what} has {len(value)} entries for a model with {n} "
                             f"output(s) {names}; give one per output (None for none)")
        return list(value)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        missing = [name for name in names if name not in value]
        if unknown or (every_name and missing):
            raise ValueError(f"compile: the keys of the {what} dict must be the model's output names "
                             f"{names}; got {sorted(value)}")
        return [value.get(name) for name in names]
    if value is None or broadcast:
        return [value] * n
    raise ValueError(f"compile: {what} for a model with {n} outputs {names} must be a list (one "
                     "entry per output) or a dict keyed by output names")


def _metrics_per_output(metrics, names):
    n = len(names)
    if metrics is None or (isinstance(metrics, (list, tuple)) and not metrics):
        return [[] for _ in names]
    if isinstance(metrics, dict):
        unknown = sorted(set(metrics) - set(names))
        if unknown:
            raise ValueError(f"compile: the keys of the metrics dict must be output names {names}; "
                             f"got {sorted(metrics)}")
        return [_as_list(metrics.get(name)) for name in names]
    if n == 1:
        return [_as_list(metrics)]
    if not isinstance(metrics, (list, tuple)) or len(metrics) != n:
        raise ValueError(f"compile: metrics for a model with {n} outputs {names} must be a list "
                         "with one entry per output (a metric, a list of metrics, or None) or a "
                         "dict keyed by output names")
    return [_as_list(m) for m in metrics]


def _as_list(metrics):
    if metrics is None:
        return []
    if isinstance(metrics, (list, tuple)):
        return list(metrics)
    return [metrics]
