"""Plots of training curves and forecasts, written as PNG files.

matplotlib is an optional extra (``pip install "fastrnn[plot]"``), imported only
when a plot is made. The figures are drawn on matplotlib's Agg canvas directly,
without ``pyplot``, so plotting never opens a window or changes the caller's
matplotlib backend.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_history", "plot_forecast"]

_INSTALL_HINT = 'plotting needs matplotlib, an optional extra: pip install "fastrnn[plot]"'


def _figure(width: float, height: float):
    """A new matplotlib Figure with an Agg canvas; ImportError with the install hint."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, format="png"):
    """Write ``fig`` at ``path`` and return the path; with path None, return ``fig``. ``format``
    None takes it from the path's suffix (PNG without one).

    The file is written whole or not at all (``fastrnn.files.write_atomically``): a plot that
    fails halfway leaves what was at ``path`` before."""
    from fastrnn.files import write_atomically

    fig.tight_layout()
    if path is None:
        return fig
    path = os.fspath(path)
    if format is None:
        format = os.path.splitext(path)[1][1:].lower() or "png"
    write_atomically(path, lambda f: fig.savefig(f, format=format, dpi="figure"))
    return path


def plot_history(history, path, metrics: Optional[Sequence[str]] = None):
    """Write the training curves of a ``fit`` run as a PNG; returns ``path``.

    With ``path=None`` nothing is written and the matplotlib ``Figure`` is returned
    instead (a notebook displays it).

    history: a ``fastrnn.callbacks.History`` (what ``fit`` returns) or its
        ``.history`` dict, name -> list of per-epoch values.
    metrics: the names to plot, e.g. ``["loss", "accuracy"]`` (default: every name
        without the ``val_`` prefix). Each gets its own panel, with its ``val_``
        counterpart drawn in the same panel when it was recorded.
    """
    logs = _history_dict(history)
    names = [k for k in logs if not k.startswith("val_")] if metrics is None else list(metrics)
    if not names:
        raise ValueError("history has nothing to plot: it records no metrics")
    for name in names:
        if name not in logs:
            raise ValueError(f"history has no {name!r}; it records {sorted(logs)}")
    fig = _figure(4.5 * len(names), 3.4)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        _plot_curve(ax, logs[name], "training")
        if f"val_{name}" in logs:
            _plot_curve(ax, logs[f"val_{name}"], "validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def _history_dict(history) -> Mapping[str, list]:
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError(
            f"history must be a History or a dict of per-epoch lists, got {type(history).__name__}"
        )
    return logs


def _plot_curve(ax, values, label: str) -> None:
    values = np.asarray(values, dtype=np.float64)  # (epochs,)
    epochs = np.arange(1, values.shape[0] + 1)  # 1-based, as progress output counts them
    ax.plot(epochs, values, marker="o" if values.shape[0] < 30 else None, markersize=3, label=label)


def plot_forecast(path, y_true, y_pred, *, time=None, baseline=None, history=None,
                  history_time=None, title: Optional[str] = None,
                  ylabel: Optional[str] = None, xlabel: Optional[str] = None,
                  pred_label: str = "forecast", baseline_label: str = "naive (last value)"):
    """Write a PNG of a held-out period: the truth, a forecast and, optionally, a baseline.

    y_true, y_pred: (N,) the true values and the forecasts for the same N steps.
    time: (N,) the x positions of those steps (default 0 .. N-1).
    baseline: (N,) another forecast to compare with, drawn dashed.
    history: (P,) the values just before the held-out period, drawn in grey for
        context, at ``history_time: (P,)`` (default: the P positions before ``time``,
        for evenly spaced ``time``).
    Returns ``path``; with ``path=None`` nothing is written and the ``Figure`` is returned.
    """
    y_true = _as_line("y_true", y_true)
    n = y_true.shape[0]
    y_pred = _as_line("y_pred", y_pred, n)
    time = np.arange(n, dtype=np.float64) if time is None else _as_line("time", time, n)
    fig = _figure(9, 4)
    ax = fig.add_subplot(1, 1, 1)
    if history is not None:
        history = _as_line("history", history)
        history_time = _history_positions(history, history_time, time)
        ax.plot(history_time, history, color="0.6", label="before the held-out part")
    ax.plot(time, y_true, color="black", label="truth")
    ax.plot(time, y_pred, color="tab:red", label=pred_label)
    if baseline is not None:
        ax.plot(time, _as_line("baseline", baseline, n), color="tab:blue",
                linestyle="--", linewidth=1, label=baseline_label)
    ax.set_title(title or "held-out forecast")
    ax.set_xlabel(xlabel or "time")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _as_line(name: str, values, n: Optional[int] = None) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must have the {n} steps of y_true, got {a.shape[0]}")
    return a


def _history_positions(history: np.ndarray, history_time, time: np.ndarray) -> np.ndarray:
    p = history.shape[0]
    if history_time is not None:
        return _as_line("history_time", history_time, p)
    step = time[1] - time[0] if time.shape[0] > 1 else 1.0
    return time[0] - step * np.arange(p, 0, -1)  # (P,) evenly spaced, ending one step before
