"""Callbacks: code that ``Model.fit`` runs at fixed points of training, as in Keras 3.

``fit`` wraps the user's callbacks in a :class:`CallbackList`, adding a
:class:`History` (which it returns) and, for ``verbose`` 1 or 2, a
:class:`ProgbarLogger`. The order of hook calls in one ``fit``::

    on_train_begin
      on_epoch_begin(0)
        on_train_batch_begin(0), on_train_batch_end(0), ...   (batch logs: running means)
        on_test_begin, on_test_batch_begin/end..., on_test_end (with validation data)
      on_epoch_end(0, logs)      logs: {'loss': .., 'accuracy': .., 'val_loss': .., ...}
      ...
    on_train_end

A callback reaches the model through ``self.model``: ``stop_training`` (set it to
True to stop after the current batch or epoch), ``get_weights()``/``set_weights()``,
``save(path)``, ``optimizer``. ``self.params`` holds 'epochs', 'steps' (batches per
epoch) and 'verbose'.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings

import numpy as np

from fastrnn import metrics as _metrics
from fastrnn._checks import check_flag, check_int, check_real

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
    "TerminateOnNaN", "LearningRateScheduler", "ReduceLROnPlateau", "LambdaCallback",
]


# ---------------------------------------------------------------------- console output
# A live progress bar leaves its line open (no newline). Messages from other
# callbacks first end that line, so they do not land in the middle of the bar.
_open_line = {"stream": None}


def _print_message(message: str) -> None:
    from fastrnn import distributed

    if not distributed.is_chief():  # under MPI, rank 0 speaks for all
        return
    stream = sys.stdout
    if _open_line["stream"] is stream:
        stream.write("\n")
        _open_line["stream"] = None
    stream.write(message + "\n")
    stream.flush()


def _pythonify(logs) -> dict:
    """The logs dict (the same object, if given) with numpy scalars turned into floats."""
    if logs is None:
        return {}
    for key, value in logs.items():
        if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
            logs[key] = float(value)
    return logs


# ---------------------------------------------------------------------- base and list
class Callback:
    """Base class: every hook does nothing. Override the ones you need.

    ``on_train_batch_begin``/``end`` call ``on_batch_begin``/``end`` (Keras's older
    names), so overriding either works.
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs=None): pass

    def on_train_end(self, logs=None): pass

    def on_epoch_begin(self, epoch, logs=None): pass

    def on_epoch_end(self, epoch, logs=None): pass

    def on_batch_begin(self, batch, logs=None): pass

    def on_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass

    def on_test_end(self, logs=None): pass

    def on_test_batch_begin(self, batch, logs=None): pass

    def on_test_batch_end(self, batch, logs=None): pass

    def on_predict_begin(self, logs=None): pass

    def on_predict_end(self, logs=None): pass

    def on_predict_batch_begin(self, batch, logs=None): pass

    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList(Callback):
    """Calls every callback's hook, in list order, with the same logs dict.

    callbacks: the user's callbacks (None for none).
    model: given to every callback with ``set_model``.
    params: {'epochs', 'steps', 'verbose'}, given with ``set_params``.
    add_history: append a History unless the list has one; it becomes ``model.history``.
    add_progbar: append a ProgbarLogger unless the list has one (pass ``verbose``:
        0 adds none; the logger prints according to params['verbose']).
    """

    def __init__(self, callbacks=None, model=None, params=None, add_history=True, add_progbar=False):
        super().__init__()
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]  # one callback alone, as Keras takes it
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of fastrnn.callbacks.Callback, got "
                            f"{type(callbacks).__name__}: {callbacks!r}")
        callbacks = list(callbacks or [])
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}] must be a fastrnn.callbacks.Callback, got {type(cb).__name__}")
        self.callbacks = callbacks
        params = dict(params or {})
        if add_progbar and not isinstance(add_progbar, bool) and "verbose" not in params:
            params["verbose"] = add_progbar
        self.history = next((cb for cb in callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in callbacks):
            self.callbacks.append(ProgbarLogger())
        self.set_params(params)
        if model is not None:
            self.set_model(model)

    def set_model(self, model) -> None:
        self.model = model
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        self.params = dict(params)
        for cb in self.callbacks:
            cb.set_params(self.params)

    def append(self, callback: Callback) -> None:
        """Add one more callback at the end (given the current model and params)."""
        if not isinstance(callback, Callback):
            raise TypeError(f"callback must be a Callback, got {type(callback).__name__}")
        callback.set_params(self.params)
        if self.model is not None:
            callback.set_model(self.model)
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def _call(self, hook: str, *args, logs=None):
        logs = _pythonify(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None): self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs=logs)

    def on_batch_begin(self, batch, logs=None): self._call("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None): self._call("on_batch_end", batch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None): self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None): self._call("on_train_batch_end", batch, logs=logs)

    def on_test_begin(self, logs=None): self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None): self._call("on_test_end", logs=logs)

    def on_test_batch_begin(self, batch, logs=None): self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None): self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None): self._call("on_predict_end", logs=logs)

    def on_predict_batch_begin(self, batch, logs=None): self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None): self._call("on_predict_batch_end", batch, logs=logs)


# ---------------------------------------------------------------------- History
class History(Callback):
    """Records the epoch logs: ``history['loss'][e]`` is epoch e's loss.

    ``epoch`` lists the epoch indices seen (0-based); ``params`` and ``model`` are
    those of the last fit. Sets ``model.history`` to itself at each epoch's end.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self

    def plot(self, path=None):
        """Draw the curves with ``fastrnn.plot.plot_history`` (needs matplotlib)."""
        from fastrnn.plot import plot_history
        return plot_history(self, path)


# ---------------------------------------------------------------------- progress output
def _format_value(value) -> str:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value = float(value)
        return f"{value:.4f}" if abs(value) > 1e-3 or not math.isfinite(value) else f"{value:.4e}"
    return str(value)


def _format_logs(logs: dict) -> str:
    return "".join(f" - {key}: {_format_value(value)}" for key, value in logs.items())


def _format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgbarLogger(Callback):
    """Prints training progress; ``fit`` adds it for ``verbose`` 1 or 2.

    verbose 1: a header ``Epoch 3/10``, then a progress bar on one line, redrawn
        with ``\\r`` after each batch (steps done/total, ETA, the running logs), ending
        with the epoch's time, time per step and the final logs (validation included).
        On a stream that is not a terminal only the finished line is printed.
    verbose 2: one line per epoch: ``Epoch 3/10 - 32/32 - 1s - 20ms/step - loss: ...``.

    ``evaluate``/``predict`` outside ``fit`` get a bar too (test/predict hooks).

    stream: where to write (default: ``sys.stdout`` at the time of writing).
    interval: least seconds between two redraws of the live bar.
    width: characters in the bar.
    """

    def __init__(self, stream=None, interval: float = 0.05, width: int = 30):
        super().__init__()
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must be None or a file-like object with write(), got "
                            f"{type(stream).__name__}")
        self.stream = stream
        self.interval = check_real("interval", interval, low=0.0)
        self.width = check_int("width", width, low=1)
        self.verbose = 1
        self.epochs = None
        self.steps = None
        self._in_fit = False
        self._reset_bar(None)

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs")
        self.steps = params.get("steps")

    # Where to write, and whether '\r' redraws make sense there.
    def _stream(self):
        return self.stream if self.stream is not None else sys.stdout

    def _is_live(self) -> bool:
        stream = self._stream()
        isatty = getattr(stream, "isatty", None)
        if callable(isatty) and isatty():
            return True
        return stream is sys.stdout and "ipykernel" in sys.modules  # notebooks redraw too

    def _write(self, text: str, line_open: bool) -> None:
        stream = self._stream()
        stream.write(text)
        stream.flush()
        _open_line["stream"] = stream if line_open else None

    # Bar state for one epoch (or one evaluate/predict run).
    def _reset_bar(self, target):
        self._target = target
        self._seen = 0
        self._start = time.perf_counter()
        self._last_draw = -math.inf
        self._drawn_width = 0

    def _bar_text(self, seen: int) -> str:
        target = self._target
        if not target:
            return f"{seen}/Unknown"
        digits = len(str(target))
        filled = int(self.width * min(seen, target) / target)
        arrow = ">" if 0 < filled < self.width else ""
        bar = ("=" * max(filled - len(arrow), 0) + arrow).ljust(self.width, ".")
        return f"{seen:>{digits}}/{target} [{bar}]"

    def _draw_live(self, seen: int, logs) -> None:
        now = time.perf_counter()
        if now - self._last_draw < self.interval:
            return
        self._last_draw = now
        text = self._bar_text(seen)
        if self._target and seen:
            eta = (now - self._start) / seen * max(self._target - seen, 0)
            text += f" - ETA: {_format_eta(eta)}"
        text += _format_logs(logs or {})
        padding = " " * max(self._drawn_width - len(text), 0)
        self._drawn_width = len(text)
        self._write("\r" + text + padding, line_open=True)

    def _finish(self, logs, prefix: str = "") -> None:
        elapsed = time.perf_counter() - self._start
        steps = self._target or self._seen
        per_step = elapsed / steps if steps else 0.0
        if self.verbose == 2:
            text = f"{prefix}{steps}/{steps} - {elapsed:.0f}s - {_format_per_step(per_step)}"
        else:
            saved, self._target = self._target, steps
            text = f"{self._bar_text(steps)} - {elapsed:.0f}s {_format_per_step(per_step)}"
            self._target = saved
        text += _format_logs(logs or {})
        if self._is_live() and self.verbose == 1:
            text = "\r" + text + " " * max(self._drawn_width - len(text), 0)
        elif _open_line["stream"] is self._stream():
            text = "\n" + text
        self._write(text + "\n", line_open=False)

    def _step(self, batch: int, logs) -> None:
        self._seen = batch + 1
        if self.verbose == 1 and self._is_live():
            last = self._target is not None and self._seen >= self._target
            if last:
                self._last_draw = -math.inf  # always show the final step
            self._draw_live(self._seen, logs)

    # Hooks during fit.
    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_bar(self.steps)
        self._epoch = epoch
        if self.verbose == 1:
            self._write(f"Epoch {epoch + 1}/{self.epochs}\n", line_open=False)

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose:
            self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose:
            self._finish(logs, prefix=f"Epoch {epoch + 1}/{self.epochs} - ")

    # Hooks of evaluate/predict when called on their own (in fit, validation is quiet).
    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._reset_bar(self.steps)

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit and self.verbose:
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit and self.verbose:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._reset_bar(self.steps)

    def on_predict_batch_end(self, batch, logs=None):
        if self.verbose:
            self._step(batch, None)

    def on_predict_end(self, logs=None):
        if self.verbose:
            self._finish(None)


# ---------------------------------------------------------------------- monitoring helpers
def _check_mode(mode) -> None:
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")


def _check_monitor(monitor) -> str:
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be the str name of a logged quantity, got "
                        f"{type(monitor).__name__}: {monitor!r}")
    return monitor


def _check_verbose(verbose) -> int:
    """A callback's verbose: an int >= 0 (True and False as 1 and 0, as Keras scripts pass)."""
    return check_int("verbose", int(verbose) if isinstance(verbose, bool) else verbose, low=0)


def _improvement_test(mode: str, monitor: str, model, min_delta: float):
    """``better(current, reference)`` for a monitored quantity, with Keras's mode rules.

    mode 'auto' takes the direction from the model's metric objects when it has
    them, else from the quantity's name (losses and errors go down, accuracies up).
    """
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        direction = None
        base = monitor[4:] if monitor.startswith("val_") else monitor
        for m in getattr(model, "metrics", None) or []:
            if getattr(m, "name", None) == base and getattr(m, "direction", None):
                direction = m.direction
        direction = direction or _metrics.direction_of(monitor)
        if direction is None:
            raise ValueError(f"cannot tell whether {monitor!r} should go up or down; pass mode='min' or mode='max'")
        mode = "max" if direction == "up" else "min"
    if mode == "min":
        return mode, lambda current, reference: current + min_delta < reference
    return mode, lambda current, reference: current - min_delta > reference


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving (Keras 3's rules).

    monitor: the logs key to watch, e.g. 'val_loss' or 'val_accuracy'.
    min_delta: an improvement must beat the best by more than this.
    patience: epochs without improvement before stopping.
    verbose: 1 prints when it stops and when it restores weights.
    mode: 'min', 'max' or 'auto' (from the quantity's name or the model's metrics).
    baseline: the quantity must also beat this to reset the patience count.
    restore_best_weights: at the end of training, put back the weights of the best epoch.
    start_from_epoch: epochs to ignore at the start (warm-up).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__()
        _check_mode(mode)
        self.monitor = _check_monitor(monitor)
        self.min_delta = abs(check_real("min_delta", min_delta))
        self.patience = check_int("patience", patience, low=0)
        self.verbose = _check_verbose(verbose)
        self.mode = mode
        self.baseline = None if baseline is None else check_real("baseline", baseline)
        self.restore_best_weights = check_flag("restore_best_weights", restore_best_weights)
        self.start_from_epoch = check_int("start_from_epoch", start_from_epoch, low=0)
        self._better = None
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self._better is None:
            _, self._better = _improvement_test(self.mode, self.monitor, self.model, self.min_delta)
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs or {})})", RuntimeWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self._copy_weights()  # until something beats it, this is the best
            self.best_epoch = epoch
        self.wait += 1
        if self.best is None or self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._copy_weights()
            # Patience restarts only when the baseline is beaten too.
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print_message(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print_message(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def _copy_weights(self):
        return [np.array(w, copy=True) for w in self.model.get_weights()]


class ModelCheckpoint(Callback):
    """Save the model (``model.save(path)``) at the end of epochs.

    filepath: may hold ``str.format`` fields filled from the epoch's logs and the
        1-based epoch, e.g. ``'ckpt-{epoch:02d}-{val_loss:.3f}.keras'``.
    monitor, mode: the quantity that decides "best" (mode as in EarlyStopping).
    save_best_only: save only when the monitored quantity improves on the best so far.
    save_weights_only: save the weights alone (``model.save_weights``); the path then ends in
        ``.weights.h5``, as Keras requires.
    initial_value_threshold: the "best so far" to beat at the start.
    verbose: 1 prints a line per save (or skip).
    """

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto",
                 initial_value_threshold: float | None = None):
        super().__init__()
        _check_mode(mode)
        path = os.fspath(filepath) if isinstance(filepath, os.PathLike) else filepath
        if not isinstance(path, str):
            raise TypeError(f"filepath must be a str or a path, got {type(filepath).__name__}")
        if not path:
            raise ValueError("filepath must not be empty")
        self.filepath = path
        self.monitor = _check_monitor(monitor)
        self.verbose = _check_verbose(verbose)
        self.save_best_only = check_flag("save_best_only", save_best_only)
        self.save_weights_only = check_flag("save_weights_only", save_weights_only)
        if self.save_weights_only and not path.endswith(".weights.h5"):
            raise ValueError(f"ModelCheckpoint: with save_weights_only=True the filepath must end "
                             f"in .weights.h5, got {path!r}")
        self.mode = mode
        if initial_value_threshold is not None:
            initial_value_threshold = check_real("initial_value_threshold", initial_value_threshold)
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self._better = None

    def _set_direction(self):
        mode, self._better = _improvement_test(self.mode, self.monitor, self.model, 0.0)
        if self.best is None:
            self.best = math.inf if mode == "min" else -math.inf

    def format_path(self, epoch: int, logs: dict | None = None) -> str:
        """The file path for 0-based ``epoch`` (shown 1-based, as Keras does)."""
        try:
            return self.filepath.format(**{**(logs or {}), "epoch": epoch + 1})
        except KeyError as err:
            raise KeyError(f"cannot format filepath {self.filepath!r}: {err} is not in the logs "
                           f"(available: {sorted(logs or {})} and 'epoch')") from None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._better is None and self.save_best_only:
            self._set_direction()
        path = self.format_path(epoch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                _print_message(f"Epoch {epoch + 1}: saving model to {path}")
            self._save(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ModelCheckpoint: can save best model only with {self.monitor!r} "
                          f"in the logs, skipping (available: {sorted(logs)})", RuntimeWarning, stacklevel=2)
            return
        if self._better(current, self.best):
            if self.verbose > 0:
                _print_message(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} "
                               f"to {current:.5f}, saving model to {path}")
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            _print_message(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def _save(self, path: str) -> None:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            _print_message(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at each epoch's start: ``schedule(epoch, lr) -> new lr``.

    ``schedule(epoch)`` with one argument works too. The rate used is logged as
    'learning_rate' at the epoch's end.
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = _check_verbose(verbose)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, optimizer.learning_rate)
        except TypeError:  # a one-argument schedule
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not math.isfinite(float(lr)):
            raise ValueError(f"schedule must return a finite number, got {lr!r} for epoch {epoch}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            _print_message(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a monitored quantity stops improving.

    monitor, mode: the quantity and its direction (as EarlyStopping).
    factor: the multiplier, in (0, 1).
    patience: epochs without improvement before reducing.
    min_delta: an improvement must beat the best by more than this.
    cooldown: epochs to wait after a reduction before counting again.
    min_lr: the rate never goes below this.
    Logs the current rate as 'learning_rate' at each epoch's end.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        factor = check_real("factor", factor)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        _check_mode(mode)
        self.monitor = _check_monitor(monitor)
        self.factor = factor
        self.patience = check_int("patience", patience, low=0)
        self.verbose = _check_verbose(verbose)
        self.mode = mode
        self.min_delta = abs(check_real("min_delta", min_delta))
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.min_lr = check_real("min_lr", min_lr, low=0.0)
        self._better = None
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        if self._better is None:
            _, self._better = _improvement_test(self.mode, self.monitor, self.model, self.min_delta)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs)})", RuntimeWarning, stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or self._better(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and optimizer.learning_rate > self.min_lr:
            new_lr = max(optimizer.learning_rate * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                _print_message(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Accepts any hook name as a keyword; each function takes that hook's arguments.
    """

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not (name.startswith("on_") and callable(getattr(Callback, name, None))):
                raise ValueError(f"{name!r} is not a callback hook")
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
            setattr(self, name, fn)
