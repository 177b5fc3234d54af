"""``fastrnn forecast``: train a recurrent forecaster on one column of a CSV and test it.

The last part of the series is held out (``fastrnn.timeseries.time_split``), the
scaler is fitted on the rest, a recurrent layer and a Dense layer learn to map a
window of past values to the next ``horizon`` values, and the held-out errors are
printed next to those of the naive last-value forecast. A plot of the held-out
part (truth, forecast, naive) is written as a PNG when matplotlib, an optional extra,
is installed; without it the command says how to get the plot. With no CSV the yearly
sunspot numbers shipped in ``fastrnn/data/sunspots.csv`` are used.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from fastrnn.apps._common import (
    FAILURE, AppError, add_command, add_training_arguments, check_output_path, column_index,
    column_values, fraction, plotting_available, positive_int, read_table,
)

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}

EXAMPLES = """\
  fastrnn forecast                          # yearly sunspot numbers, writes forecast.png
  fastrnn forecast sales.csv --column units --window 12 --horizon 3 --out sales.png
  fastrnn forecast temps.csv --column temp --time-column date --cell gru --epochs 100
"""


def add_parser(subparsers) -> None:
    """Add ``forecast`` to the ``fastrnn`` command line."""
    p = add_command(
        subparsers, "forecast", run, help="time-series forecasting on a CSV column",
        description=("Train a recurrent forecaster on one column of a CSV, print its errors on "
                     "the held-out end of the series next to the naive last-value forecast's, "
                     "and plot the held-out part."),
        examples=EXAMPLES)
    p.add_argument("csv", nargs="?", metavar="CSV",
                   help="a UTF-8 CSV file with a header row, one row per time step in time order "
                        "(default: yearly sunspot numbers 1700-2008, shipped with fastrnn)")
    p.add_argument("--column", metavar="NAME",
                   help="the column to forecast (default: the last column)")
    p.add_argument("--time-column", metavar="NAME",
                   help="the column with the time of each row, for the plot's axis "
                        "(default: the first column, when it is not the one forecast)")
    p.add_argument("--window", type=positive_int, default=12,
                   help="past values the model sees for each forecast (default 12)")
    p.add_argument("--horizon", type=positive_int, default=1,
                   help="future values forecast at once (default 1)")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                   help="recurrent cell (default lstm)")
    p.add_argument("--units", type=positive_int, default=32, help="recurrent units (default 32)")
    p.add_argument("--test-size", type=fraction, default=0.2,
                   help="fraction of the series, at its end, held out for testing (default 0.2)")
    add_training_arguments(p, epochs=60, batch_size=16, learning_rate=0.005)
    p.add_argument("--out", default="forecast.png", metavar="PNG",
                   help="where to write the plot, which needs matplotlib "
                        '(pip install "fastrnn[plot]"; default forecast.png)')
    p.add_argument("--no-plot", action="store_true", help="do not write a plot")


# --------------------------------------------------------------------------- data

def load_series(path, column, time_column) -> tuple:
    """``(name, values (N,) float64, times (N,) float64 or None, time name or None)``."""
    from fastrnn import data

    shown = _shown(path)
    header, rows = read_table(data.path("sunspots.csv") if path is None else path)
    name = column if column is not None else header[-1]
    values = _numbers(rows, column_index(header, name, shown, "--column"), name, shown)
    if time_column is None and len(header) > 1 and header[0] != name:
        time_column = header[0]
        try:
            times = _numbers(rows, 0, time_column, shown)
        except AppError:
            times, time_column = None, None  # dates or labels: the plot counts steps instead
    elif time_column is not None:
        times = _numbers(rows, column_index(header, time_column, shown, "--time-column"),
                         time_column, shown)
    else:
        times = None
    return name, values, times, time_column


def _shown(path) -> str:
    """How messages name the CSV file."""
    return path if path is not None else "the shipped sunspots.csv"


def _numbers(rows, index: int, name: str, shown) -> np.ndarray:
    values = np.empty(len(rows), dtype=np.float64)
    for row, text in enumerate(column_values(rows, index, name, shown), start=1):
        try:
            values[row - 1] = float(text)
        except ValueError:
            raise AppError(f"{shown}: data row {row} has {text!r} in column {name!r}, "
                           "not a number") from None
        if not math.isfinite(values[row - 1]):
            raise AppError(f"{shown}: data row {row} has {text!r} in column {name!r}; "
                           "values must be finite")
    return values


# --------------------------------------------------------------------------- the model

def build_model(window: int, horizon: int, cell: str = "lstm", units: int = 32):
    """Windows (B, window, 1) -> the next ``horizon`` values (B, horizon), scaled."""
    from fastrnn import Sequential
    from fastrnn import layers as L

    recurrent = getattr(L, CELLS[cell])
    return Sequential([L.Input(shape=(window, 1)), recurrent(units), L.Dense(horizon)])


def _check_sizes(n: int, window: int, horizon: int, test_size: float) -> int:
    """The number of held-out steps; AppError when the series is too short for the settings."""
    n_test = max(1, int(round(test_size * n)))
    if n_test < horizon:
        raise AppError(f"the held-out part has {n_test} values, fewer than --horizon {horizon}; "
                       "raise --test-size or lower --horizon")
    if n - n_test < window + horizon + 1:
        raise AppError(f"the series has {n} values; with {n_test} held out, the remaining "
                       f"{n - n_test} are too few for --window {window} and --horizon {horizon} "
                       f"(needs at least {window + horizon + 1})")
    return n_test


# --------------------------------------------------------------------------- the command

def run(args) -> int:
    """``fastrnn forecast``: returns the exit code."""
    from fastrnn.timeseries import forecast_errors, time_split

    name, series, times, time_name = load_series(args.csv, args.column, args.time_column)
    n_test = _check_sizes(series.shape[0], args.window, args.horizon, args.test_size)
    plot = not args.no_plot and plotting_available()
    if plot:
        check_output_path(args.out, "--out")
    train_part, test_part = time_split(series, n_test, context=args.window)
    scaler = _fit_scaler(train_part, name, args.csv)
    n_train_windows = train_part.shape[0] - args.window - args.horizon + 1
    print(f"series {name!r}: {series.shape[0]} values, the last {n_test} held out; "
          f"window {args.window}, horizon {args.horizon}; {n_train_windows} training windows, "
          f"{n_test - args.horizon + 1} held-out forecasts")
    truth, forecast, naive = fit_and_forecast(args, train_part, test_part, scaler)
    print(_error_table(forecast_errors(truth, forecast), forecast_errors(truth, naive),
                       args.horizon))
    if plot:
        from fastrnn import distributed

        if distributed.is_chief():  # under MPI, rank 0 writes
            _write_plot(args, name, series, times, time_name, n_test, truth, forecast, naive)
    elif not args.no_plot:
        print(f"{args.prog}: no plot written: it needs matplotlib, an optional extra: "
              'pip install "fastrnn[plot]" (or pass --no-plot)', file=sys.stderr)
    return 0


def _fit_scaler(train_part: np.ndarray, name: str, path):
    """A StandardScaler fitted on ``train_part: (N_train,)``; AppError when its values are
    too large for the statistics to be computed in float64."""
    from fastrnn.timeseries import StandardScaler

    try:
        return StandardScaler().fit(train_part)  # the training part's statistics only
    except ValueError:
        raise AppError(f"{_shown(path)}: the values of column {name!r} are too large in "
                       "magnitude: their mean or standard deviation overflows float64; "
                       "scale them down") from None


def fit_and_forecast(args, train_part: np.ndarray, test_part: np.ndarray, scaler) -> tuple:
    """Train on ``train_part: (N_train,)``, forecast every window of ``test_part``; ``scaler``
    is fitted on ``train_part``.

    Returns ``(truth, forecast, naive)``, each (M, horizon) in the series' units.
    """
    import fastrnn
    from fastrnn.timeseries import naive_forecast, windows

    w, h = args.window, args.horizon
    x_train, y_train = windows(scaler.transform(train_part), w, h)  # (M', w, 1), (M', h)
    x_test, _ = windows(scaler.transform(test_part), w, h)  # (M, w, 1)
    _, truth = windows(test_part, w, h)  # (M, h), unscaled

    fastrnn.utils.set_random_seed(args.seed)
    model = build_model(w, h, args.cell, args.units)
    model.compile(optimizer=fastrnn.optimizers.Adam(args.learning_rate), loss="mse")
    model.fit(np.array(x_train, dtype=np.float32), np.array(y_train, dtype=np.float32),
              epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose)
    predicted = model.predict(np.array(x_test, dtype=np.float32), verbose=0)  # (M, h), scaled
    forecast = scaler.inverse_transform(predicted)  # (M, h)
    return np.asarray(truth), forecast, naive_forecast(test_part, w, h)


def _error_table(model_errors: dict, naive_errors: dict, horizon: int) -> str:
    ahead = "1 step ahead" if horizon == 1 else f"1 to {horizon} steps ahead"
    lines = [f"held-out errors ({ahead}):", f"{'':<8}{'MAE':>10}{'RMSE':>10}{'MAPE':>10}"]
    for label, e in (("model", model_errors), ("naive", naive_errors)):
        percent = "n/a" if math.isnan(e["mape"]) else f"{e['mape']:.1f}%"
        lines.append(f"{label:<8}{e['mae']:>10.3f}{e['rmse']:>10.3f}{percent:>10}")
    better = model_errors["rmse"] < naive_errors["rmse"]
    lines.append("the model beats the naive forecast" if better else
                 "the model does NOT beat the naive forecast "
                 "(try more --epochs or another --window)")
    return "\n".join(lines)


def _write_plot(args, name, series, times, time_name, n_test, truth, forecast, naive) -> None:
    from fastrnn.plot import plot_forecast

    h = args.horizon
    n = series.shape[0]
    steps = np.arange(n, dtype=np.float64) if times is None else times  # (N,)
    target_steps = steps[n - n_test + h - 1:]  # (M,) when each window's last step is plotted
    context = series[max(0, n - n_test - 3 * args.window): n - n_test]
    context_steps = steps[max(0, n - n_test - 3 * args.window): n - n_test]
    ahead = "1 step" if h == 1 else f"{h} steps"
    try:
        plot_forecast(args.out, truth[:, -1], forecast[:, -1], time=target_steps,
                      baseline=naive[:, -1], history=context, history_time=context_steps,
                      title=f"{name}: forecasts {ahead} ahead on the held-out part",
                      ylabel=name, xlabel=time_name or "step")
    except OSError as err:
        message = f"cannot write the plot to {args.out}: {err.strerror or err}"
        raise AppError(message, FAILURE) from None
    print(f"wrote the plot to {args.out}")
