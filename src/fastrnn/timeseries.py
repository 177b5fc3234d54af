"""Time-series helpers: windows for forecasting, a scaler, a split by time, error metrics.

A series is ``(N,)`` (one variable) or ``(N, F)`` (F variables), time along axis 0.
The usual recipe, which ``fastrnn forecast`` follows:

1. ``train, test = time_split(series, test_size, context=window)``: the last part is
   held out; the test part starts ``window`` steps early so its first forecast has a
   full input window of history. Nothing is shuffled across the split.
2. ``scaler = StandardScaler().fit(train)``: statistics of the training part only.
3. ``x, y = windows(scaler.transform(train), window, horizon)`` for training, the same
   on the test part for evaluation.
4. ``forecast_errors(y_true, y_pred)`` next to ``forecast_errors(y_true, naive)``, where
   ``naive = naive_forecast(test, window, horizon)`` repeats the last seen value: the
   baseline a forecaster has to beat.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = [
    "windows", "naive_forecast", "time_split", "StandardScaler",
    "mae", "rmse", "mape", "forecast_errors",
]


# --------------------------------------------------------------------------- windows

def windows(series, window: int, horizon: int = 1):
    """Sliding (input, target) windows for forecasting ``horizon`` steps ahead.

    series: (N,) or (N, F). Window k covers steps ``[k, k + window)`` and its target
    the next ``horizon`` steps ``[k + window, k + window + horizon)``.

    Returns ``x: (M, window, F)`` (F = 1 for a 1-D series) and ``y: (M, horizon)``
    for a 1-D series or ``(M, horizon, F)`` for a 2-D one, with
    ``M = N - window - horizon + 1``. Both are read-only views of ``series``
    (nothing is copied); index or ``np.array`` them to get writable arrays.
    """
    a = _as_series(series)
    _check_window_sizes(a.shape[0], window, horizon)
    as_2d = a if a.ndim == 2 else a[:, None]  # (N, F)
    m = a.shape[0] - window - horizon + 1
    view = np.lib.stride_tricks.sliding_window_view
    x = view(as_2d, window, axis=0)[:m]  # (M, F, window): the window axis comes last
    x = np.moveaxis(x, 2, 1)  # (M, window, F)
    y = view(a[window:], horizon, axis=0)  # (M, horizon) or (M, F, horizon)
    if a.ndim == 2:
        y = np.moveaxis(y, 2, 1)  # (M, horizon, F)
    return x, y


def naive_forecast(series, window: int, horizon: int = 1) -> np.ndarray:
    """The last-value forecast for each window of ``windows(series, window, horizon)``.

    Every step of the horizon is forecast as the last value of the input window.
    Returns an array shaped like ``windows``'s ``y``: (M, horizon) or (M, horizon, F).
    """
    a = _as_series(series)
    _check_window_sizes(a.shape[0], window, horizon)
    m = a.shape[0] - window - horizon + 1
    last = a[window - 1: window - 1 + m]  # (M,) or (M, F)
    return np.repeat(last[:, None], horizon, axis=1)  # (M, horizon) or (M, horizon, F)


def _as_series(series) -> np.ndarray:
    a = np.asarray(series)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"series must hold numbers, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"series must be (N,) or (N, F), got shape {a.shape}")
    return a


def _check_window_sizes(n: int, window: int, horizon: int) -> None:
    for name, value in (("window", window), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if n < window + horizon:
        raise ValueError(
            f"the series has {n} steps; window={window} and horizon={horizon} "
            f"need at least {window + horizon}"
        )


# --------------------------------------------------------------------------- split and scaling

def time_split(series, test_size, context: int = 0):
    """Split a series in time: ``(train, test)``, the test part last, never shuffled.

    series: (N, ...). test_size: a fraction in (0, 1) of N (rounded, at least 1 step)
    or a number of steps in [1, N).
    context: the test part starts this many steps before the split point, so that
    its first windows see the end of the training part as history. Those steps are
    inputs only: no target of a test window lies in the training part.

    Returns views ``train = series[:N - n_test]`` and
    ``test = series[N - n_test - context:]``.
    """
    a = np.asarray(series)
    if a.ndim < 1:
        raise ValueError("series must have a time axis (at least 1-D)")
    n = a.shape[0]
    n_test = _test_steps(test_size, n)
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)):
        raise TypeError(f"context must be an int, got {type(context).__name__}")
    cut = n - n_test
    if context < 0 or context > cut:
        raise ValueError(f"context must lie in [0, {cut}] (the training part's length), "
                         f"got {context}")
    return a[:cut], a[cut - context:]


def _test_steps(test_size, n: int) -> int:
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float fraction or an int count, got a bool")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must lie in (0, 1), got {test_size}")
        n_test = max(1, int(round(test_size * n)))
    elif isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    else:
        raise TypeError(f"test_size must be a float or an int, got {type(test_size).__name__}")
    if not 1 <= n_test < n:
        raise ValueError(f"test_size leaves {n_test} of {n} steps for testing; "
                         f"it must be in [1, {n})")
    return n_test


class StandardScaler:
    """Per-variable standardisation ``(a - mean) / scale``, fitted on training data only.

    ``fit`` reads the statistics from the array it is given (the training part);
    ``transform`` then applies those same statistics to any part, so nothing of
    the test part leaks into the scaling. A constant variable gets scale 1.
    """

    def __init__(self):
        self.mean_: Optional[np.ndarray] = None
        self.scale_: Optional[np.ndarray] = None

    def fit(self, a) -> "StandardScaler":
        """a: (N,) or (N, F) training data. Returns self.

        ValueError for NaN or inf in ``a``, and for values so large in magnitude (near the
        float64 limit, 1.8e308) that their mean or standard deviation overflows."""
        a = _as_series(a).astype(np.float64)
        if a.shape[0] == 0:
            raise ValueError("cannot fit a scaler on an empty array")
        if not np.all(np.isfinite(a)):
            raise ValueError("the data to fit the scaler on contains NaN or inf")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked just below
            mean = a.mean(axis=0)  # () or (F,)
            std = a.std(axis=0)  # () or (F,)
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("the data's mean or standard deviation overflows float64: its "
                             "values are too large in magnitude; scale them down first")
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, a) -> np.ndarray:
        """a: (N,) or (N, F) -> scaled float64 array of the same shape."""
        self._check_fitted()
        a = self._check_like_fit(a)
        return (a - self.mean_) / self.scale_

    def inverse_transform(self, a) -> np.ndarray:
        """Undo ``transform``: any array whose last axis is F (or anything, for F = 1 data)."""
        self._check_fitted()
        a = np.asarray(a, dtype=np.float64)
        if self.mean_.ndim == 1 and (a.ndim == 0 or a.shape[-1] != self.mean_.shape[0]):
            raise ValueError(f"the last axis must have the {self.mean_.shape[0]} fitted "
                             f"variables, got shape {a.shape}")
        return a * self.scale_ + self.mean_

    def fit_transform(self, a) -> np.ndarray:
        return self.fit(a).transform(a)

    def to_dict(self) -> dict:
        """The fitted statistics as a JSON-able dict (for saving with a model)."""
        self._check_fitted()
        return {"mean": np.asarray(self.mean_).tolist(), "scale": np.asarray(self.scale_).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "StandardScaler":
        scaler = cls()
        scaler.mean_ = np.asarray(d["mean"], dtype=np.float64)
        scaler.scale_ = np.asarray(d["scale"], dtype=np.float64)
        return scaler

    def _check_fitted(self) -> None:
        if self.mean_ is None:
            raise ValueError("the scaler is not fitted yet: call fit(train) first")

    def _check_like_fit(self, a) -> np.ndarray:
        a = _as_series(a).astype(np.float64)
        fitted_2d = self.mean_.ndim == 1
        if (a.ndim == 2) != fitted_2d or (fitted_2d and a.shape[1] != self.mean_.shape[0]):
            expected = f"(N, {self.mean_.shape[0]})" if fitted_2d else "(N,)"
            raise ValueError(f"the scaler was fitted on {expected} data, got shape {a.shape}")
        return a


# --------------------------------------------------------------------------- errors

def mae(y_true, y_pred) -> float:
    """Mean absolute error over all entries."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over all entries. Computed on the errors divided by the largest
    of them, so that squaring errors beyond 1e154 does not overflow."""
    t, p = _pair(y_true, y_pred)
    d = np.abs(t - p)
    largest = float(d.max())
    if largest == 0 or not np.isfinite(largest):
        return largest
    return float(largest * np.sqrt(np.mean((d / largest) ** 2)))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent: ``100 * mean(|t - p| / |t|)``.

    Undefined when a true value is 0: raises ValueError then.
    """
    t, p = _pair(y_true, y_pred)
    if np.any(t == 0):
        raise ValueError("MAPE is undefined: y_true contains zeros")
    return float(100.0 * np.mean(np.abs((t - p) / t)))


def forecast_errors(y_true, y_pred) -> dict:
    """``{"mae": .., "rmse": .., "mape": ..}``; mape is NaN where it is undefined."""
    try:
        percent = mape(y_true, y_pred)
    except ValueError:
        _pair(y_true, y_pred)  # a shape problem must still raise
        percent = float("nan")
    return {"mae": mae(y_true, y_pred), "rmse": rmse(y_true, y_pred), "mape": percent}


def _pair(y_true, y_pred):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p
