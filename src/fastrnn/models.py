"""Keras-style models: ``Sequential`` with ``compile``/``fit``/``evaluate``/``predict``/``save``,
and ``load_model``.

``Model`` holds everything that does not depend on how layers are connected: compiling,
the training loop, evaluation, prediction in batches, weights and saving. ``Sequential``
connects its layers in a line: the forward pass runs them in order, passing the mask
of each layer's output (``Embedding(mask_zero=True)``, ``Masking``) to the next, and the
backward pass runs them in reverse, each layer turning the gradient of its output into
that of its input and of its parameters.

One training step (``train_on_batch``, and each batch of ``fit``)::

    y_pred = forward(x, training=True)               # layers keep what backward needs
    loss, dy = loss(y, y_pred), loss.gradient(y, y_pred)
    backward(dy)                                      # fills layer.grads
    optimizer.apply_gradients(params, grads)          # updates the params in place

The training pieces come from their modules by name or instance: ``fastrnn.optimizers``,
``fastrnn.losses``, ``fastrnn.metrics`` and ``fastrnn.callbacks``. Data is batch-major:
``x: (N, T, F)`` (or ids ``(N, T)`` for an ``Embedding`` first), ``y`` whatever the loss
takes for the model's output.
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading

import numpy as np

from fastrnn import losses as losses_module
from fastrnn import metrics as metrics_module
from fastrnn import optimizers as optimizers_module
from fastrnn.layers import variables
from fastrnn.layers.base import Layer, collect_activity_losses, deserialize, serialize, unique_name
from fastrnn.layers.core import InputLayer
from fastrnn.utils import get_rng

__all__ = ["Model", "Sequential", "load_model"]


class Model:
    """Base of the models: compile, fit, evaluate, predict, weights, save.

    A subclass provides ``layers``, ``build(input_shape)``, ``forward(x, training)``
    returning ``(y, mask)`` and ``backward(dy)``. Use ``Sequential``; functional and
    subclassed Keras models are not supported.
    """

    def __init__(self, name=None):
        if type(self) is Model:
            raise TypeError("Model cannot be used directly: build a Sequential model "
                            "(functional and subclassed models are not supported)")
        self.name = name or unique_name("sequential")
        self.optimizer = None
        self.loss = None
        self.metric_ids = []  # what compile was given, in order
        self.metrics = None  # Metric objects, chosen at the first batch (accuracy needs shapes)
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.metadata = None  # the JSON dict stored by save(..., metadata=...)
        self._train_params = None  # the params list the optimizer sees, fixed per compile
        self._interrupted = False

    # -- to be provided by subclasses --------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        raise NotImplementedError

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """x: (B, ...) -> the model's output for it (one forward pass)."""
        return self.forward(x, training=training)[0]

    # -- weights -------------------------------------------------------------------------

    @property
    def trainable_params(self) -> list[np.ndarray]:
        """The arrays training updates (kernel layout), trainable layers in order."""
        return [p for layer in self.layers if layer.trainable for p in layer.params]

    def _trainable_grads(self) -> list[np.ndarray]:
        grads = []
        for layer in self.layers:
            if layer.trainable:
                if len(layer.grads) != len(layer.params):
                    raise RuntimeError(f"{layer.who} gave {len(layer.grads)} gradients for "
                                       f"{len(layer.params)} parameters")
                grads.extend(layer.grads)
        return grads

    def get_weights(self) -> list[np.ndarray]:
        """All layers' weights, in Keras's layout, layer by layer."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Set all weights from a list like ``get_weights()`` returns (ValueError on a mismatch,
        with no weight changed)."""
        weights = list(weights)
        expected = sum(len(layer.weight_shapes()) for layer in self._built_layers("set_weights"))
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r}: set_weights expects {expected} arrays "
                             f"(get_weights() order), got {len(weights)}")
        checked, k = [], 0
        for layer in self.layers:  # every layer's arrays checked before any is assigned
            n = len(layer.weight_shapes())
            checked.append(layer.checked_weights(weights[k:k + n]))
            k += n
        for layer, arrays in zip(self.layers, checked):
            layer.assign_weights(arrays)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._built_layers("count_params"))

    def reset_states(self) -> None:
        """Forget the state carried by stateful recurrent layers."""
        for layer in self.layers:
            layer.reset_states()

    def _built_layers(self, what):
        if not all(layer.built for layer in self.layers):
            raise ValueError(f"model {self.name!r} is not built, so {what} is not possible yet: "
                             "give the first layer an input_shape, call build(), or call the model on data")
        return self.layers

    # -- compile -------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, loss and metrics, by name or instance.

        optimizer: e.g. 'adam' or ``fastrnn.optimizers.Adam(1e-3)``;
        loss: e.g. 'binary_crossentropy' or a ``fastrnn.losses.Loss``;
        metrics: a list such as ['accuracy'] or ['mae'].
        Unknown names raise ValueError naming the valid ones.
        """
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='mse' or loss='binary_crossentropy'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)) or callable(metrics):
            metrics = [metrics]
        self.metric_ids = list(metrics)
        for identifier in self.metric_ids:
            if isinstance(identifier, str) and identifier.lower() not in ("accuracy", "acc"):
                metrics_module.get(identifier)  # unknown names fail here, not in fit
        self.metrics = None
        self.compiled = True
        self._train_params = None

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"model {self.name!r} must be compiled before {what}: call "
                               "model.compile(optimizer=..., loss=...) first")

    def _ensure_metrics(self, y, y_pred):
        if self.metrics is None:
            self.metrics = [metrics_module.get(m, loss=self.loss, y_true=y, y_pred=y_pred)
                            for m in self.metric_ids]

    def _reset_metrics(self):
        for metric in self.metrics or []:
            metric.reset()

    def _metric_logs(self) -> dict:
        return {m.name: float(m.result()) for m in self.metrics or []}

    # -- one batch ---------------------------------------------------------------------------

    def _loss_mask(self, mask, y_pred):
        """The output mask as the loss takes it (B, T) for sequence outputs, else None."""
        if mask is None or y_pred.ndim < 3 or mask.shape != y_pred.shape[:2]:
            return None
        return mask

    def _update_metrics(self, y, y_pred, loss_mask):
        """Add a batch to the metrics. Masked steps count for nothing, as in the loss: the mask
        is the metrics' sample weight, so each is a mean over the unmasked steps."""
        self._ensure_metrics(y, y_pred)
        for metric in self.metrics:
            metric.update(y, y_pred, sample_weight=loss_mask)

    @contextlib.contextmanager
    def _states_kept_on_error(self):
        """Stateful layers' carried states as they were before the block, if it raises: a batch
        that fails (targets of the wrong shape, say) leaves no trace."""
        saved = [layer.carried_states() for layer in self._layers]
        try:
            yield
        except BaseException:
            for layer, states in zip(self._layers, saved):
                layer.restore_states(states)
            raise

    def _train_step(self, x, y) -> float:
        """One optimizer step on a batch; updates the metrics; returns the batch loss."""
        with self._states_kept_on_error(), collect_activity_losses() as activity:
            y_pred, mask = self.forward(x, training=True)
            loss_mask = self._loss_mask(mask, y_pred)
            loss = self.loss(y, y_pred, mask=loss_mask)
            self.backward(self.loss.gradient(y, y_pred, mask=loss_mask))
            if self._train_params is None:
                self._train_params = self.trainable_params
            grads = self._trainable_grads()
            loss += sum(activity) + self._add_weight_penalties(grads, self._train_params)
            self._apply_step(grads)
        self._update_metrics(y, y_pred, loss_mask)
        return float(loss)

    def _test_step(self, x, y) -> float:
        with self._states_kept_on_error(), collect_activity_losses() as activity:
            y_pred, mask = self.forward(x, training=False)
            loss_mask = self._loss_mask(mask, y_pred)
            loss = self.loss(y, y_pred, mask=loss_mask)
            loss += sum(activity) + self._weight_penalty()
        self._update_metrics(y, y_pred, loss_mask)
        return float(loss)

    # -- regularizers, clipping by variable, constraints (see fastrnn.layers.variables) ---------

    def _weight_penalty(self) -> float:
        """The regularizers' penalty of the trainable weights, which Keras adds to every loss."""
        return variables.weight_penalty(self.layers, self.trainable_params)[0]

    def _add_weight_penalties(self, grads, params) -> float:
        """Add the regularizers' gradients to ``grads`` (one per array of ``params``, the
        trainable ones); returns their penalty."""
        penalty, penalty_grads = variables.weight_penalty(self.layers, params)
        for i, g in penalty_grads.items():
            grads[i] = grads[i] + g
        return penalty

    def _apply_step(self, grads) -> None:
        """The optimizer step, clipping each Keras variable as one, then the constraints."""
        variables.check_constraints(self.layers, self._train_params)
        groups = variables.variable_groups(self.layers, self._train_params)
        self.optimizer.apply_gradients(self._train_params, grads, groups=groups)
        variables.apply_constraints(self.layers, self._train_params)

    def compute_gradients(self, x, y):
        """Loss and gradients for one batch, without updating anything.

        Returns ``(loss, grads)`` with ``grads[i]`` the gradient of ``trainable_params[i]``
        (kernel layout); both include the regularizers' penalties, as a training step's do.
        The forward pass runs in training mode (dropout active).
        """
        self._require_compiled("compute_gradients")
        x, y = self._check_xy(x, y, "compute_gradients")
        with collect_activity_losses() as activity:
            y_pred, mask = self.forward(x, training=True)
            loss_mask = self._loss_mask(mask, y_pred)
            loss = self.loss(y, y_pred, mask=loss_mask)
            self.backward(self.loss.gradient(y, y_pred, mask=loss_mask))
        grads = [g.copy() for g in self._trainable_grads()]
        loss += sum(activity) + self._add_weight_penalties(grads, self.trainable_params)
        return float(loss), grads

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on (x, y); returns the batch's loss (or [loss, *metrics])."""
        self._require_compiled("train_on_batch")
        x, y = self._check_xy(x, y, "train_on_batch")
        self._reset_metrics()
        logs = {"loss": self._train_step(x, y), **self._metric_logs()}
        return self._format_logs(logs, return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """The loss (or [loss, *metrics]) of (x, y), without training."""
        self._require_compiled("test_on_batch")
        x, y = self._check_xy(x, y, "test_on_batch")
        self._reset_metrics()
        logs = {"loss": self._test_step(x, y), **self._metric_logs()}
        return self._format_logs(logs, return_dict)

    def predict_on_batch(self, x):
        """The model's output for one batch (inference mode)."""
        x = self._check_x(x, "predict_on_batch")
        with self._states_kept_on_error():
            return self.forward(x, training=False)[0]

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # -- data checks -----------------------------------------------------------------------

    @staticmethod
    def _check_x(x, what):
        if x is None:
            raise ValueError(f"{what} needs input data x")
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{what}: x must hold numbers, got dtype {x.dtype}")
        if x.ndim == 0:
            raise ValueError(f"{what}: x must have a batch axis, got a scalar")
        return x

    def _check_xy(self, x, y, what):
        x = self._check_x(x, what)
        if what in ("evaluate", "validation_data", "train_on_batch", "test_on_batch") and len(x) == 0:
            raise ValueError(f"{what} needs at least one sample, got an empty x")
        if y is None:
            raise ValueError(f"{what} needs targets y")
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{what}: y must hold numbers, got dtype {y.dtype}")
        if y.ndim == 0 or len(x) != len(y):
            raise ValueError(f"{what}: x and y must have the same number of samples, got "
                             f"{len(x)} and {len(y) if y.ndim else 'a scalar'}")
        return x, y

    @staticmethod
    def _batch_size(batch_size):
        if batch_size is None:
            return 32
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return int(batch_size)

    @staticmethod
    def _verbose(verbose):
        if verbose == "auto":
            return 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        return int(verbose)

    # -- fit ---------------------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y); returns the ``History``.

        x: (N, T, F) (or ids (N, T)), y: (N, ...). ``validation_split`` holds out the last
        fraction of the data (before shuffling), ``validation_data`` is an (x_val, y_val)
        pair; their loss and metrics are logged with a 'val_' prefix. ``shuffle`` reorders
        the training samples every epoch (from ``fastrnn.utils.get_rng()``). Epochs are
        numbered from ``initial_epoch`` to ``epochs - 1``.

        Ctrl-C stops training cleanly between two batches: the last optimizer step is
        complete, the partial epoch is not logged, and the History so far is returned.
        """
        self._require_compiled("fit")
        x, y = self._check_xy(x, y, "fit")
        if len(x) == 0:
            raise ValueError("fit needs at least one sample, got an empty x")
        batch_size = self._batch_size(batch_size)
        verbose = self._verbose(verbose)
        x, y, validation = self._split_validation(x, y, validation_split, validation_data)
        steps = math.ceil(len(x) / batch_size)
        callback_list = self._callback_list(callbacks, verbose, add_history=True,
                                            epochs=epochs, steps=steps)
        self.stop_training = False
        self._interrupted = False
        logs = {}
        with self._stop_on_ctrl_c():
            callback_list.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                epoch_logs = self._fit_epoch(epoch, x, y, batch_size, shuffle, validation, callback_list)
                if epoch_logs is None:  # Ctrl-C
                    break
                logs = epoch_logs
                if self.stop_training or self._interrupted:
                    break
            callback_list.on_train_end(logs)
        self.history = callback_list.history
        if self._interrupted:
            print(f"fit: interrupted by Ctrl-C; stopped after {len(self.history.epoch)} complete "
                  "epoch(s). The model keeps the weights of the last completed step.",
                  file=sys.stderr)
        return self.history

    def _fit_epoch(self, epoch, x, y, batch_size, shuffle, validation, callback_list):
        """One pass over (x, y) in batches, then validation; returns the epoch's logs,
        or None when Ctrl-C stopped it between two batches (the epoch is then not logged)."""
        self._reset_metrics()
        callback_list.on_epoch_begin(epoch)
        order = get_rng().permutation(len(x)) if shuffle else np.arange(len(x))
        loss_sum = 0.0
        for step, start in enumerate(range(0, len(x), batch_size)):
            if self._interrupted:
                return None
            rows = order[start:start + batch_size]
            callback_list.on_train_batch_begin(step)
            loss_sum += self._train_step(x[rows], y[rows]) * len(rows)
            # Running means over the epoch so far, batches weighted by their size.
            logs = {"loss": loss_sum / (start + len(rows)), **self._metric_logs()}
            callback_list.on_train_batch_end(step, logs)
            if self.stop_training:
                break
        if validation is not None:
            val_logs = self._evaluate_arrays(*validation, batch_size, callback_list)
            logs = {**logs, **{"val_" + k: v for k, v in val_logs.items()}}
        callback_list.on_epoch_end(epoch, logs)
        return logs

    def _split_validation(self, x, y, validation_split, validation_data):
        """-> (x_train, y_train, (x_val, y_val) or None)."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val) "
                                 "(sample weights are not supported)")
            return x, y, self._check_xy(*validation_data, "validation_data")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if not validation_split:
            return x, y, None
        split = int(math.floor(len(x) * (1.0 - validation_split)))  # Keras's split point
        if split == 0 or split == len(x):
            raise ValueError(f"validation_split={validation_split} leaves no training or no "
                             f"validation samples out of {len(x)}")
        return x[:split], y[:split], (x[split:], y[split:])

    def _callback_list(self, callbacks, verbose, add_history=False, **params):
        """The user's callbacks plus a ProgbarLogger for verbose 1/2 (and a History for fit)."""
        from fastrnn import callbacks as callbacks_module

        return callbacks_module.CallbackList(
            callbacks, model=self, params={**params, "verbose": verbose},
            add_history=add_history, add_progbar=verbose != 0)

    @contextlib.contextmanager
    def _stop_on_ctrl_c(self):
        """While fitting, Ctrl-C sets a flag checked between batches instead of raising."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def handler(signum, frame):
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)

    # -- evaluate and predict ---------------------------------------------------------------

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None,
                 return_dict=False):
        """The loss on (x, y), or ``[loss, *metrics]`` when compiled with metrics.

        The loss is the mean of the batch losses weighted by batch size, as Keras reports it.
        verbose: 0 silent, 1 ('auto') a progress bar, 2 one line.
        """
        self._require_compiled("evaluate")
        x, y = self._check_xy(x, y, "evaluate")
        batch_size = self._batch_size(batch_size)
        callback_list = self._callback_list(callbacks, self._verbose(verbose),
                                            steps=math.ceil(len(x) / batch_size))
        logs = self._evaluate_arrays(x, y, batch_size, callback_list)
        return self._format_logs(logs, return_dict)

    def _evaluate_arrays(self, x, y, batch_size, callback_list) -> dict:
        """Loss and metrics over (x, y) in batches, calling the test hooks of ``callback_list``."""
        callback_list.on_test_begin()
        self._reset_metrics()
        loss_sum = 0.0
        for step, start in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            callback_list.on_test_batch_begin(step)
            loss_sum += self._test_step(xb, yb) * len(xb)
            logs = {"loss": loss_sum / (start + len(xb)), **self._metric_logs()}
            callback_list.on_test_batch_end(step, logs)
        callback_list.on_test_end(logs)
        return logs

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """The model's outputs for x, computed in batches (inference mode, no dropout).

        Stateful layers carry their state from batch to batch and across calls.
        verbose: 0 silent, 1 ('auto') a progress bar, 2 one line.
        """
        x = self._check_x(x, "predict")
        if len(x) == 0:
            raise ValueError("predict needs at least one sample, got an empty x")
        batch_size = self._batch_size(batch_size)
        callback_list = self._callback_list(callbacks, self._verbose(verbose),
                                            steps=math.ceil(len(x) / batch_size))
        callback_list.on_predict_begin()
        outputs = []
        for step, start in enumerate(range(0, len(x), batch_size)):
            callback_list.on_predict_batch_begin(step)
            with self._states_kept_on_error():
                outputs.append(self.forward(x[start:start + batch_size], training=False)[0])
            callback_list.on_predict_batch_end(step, {"outputs": outputs[-1]})
        callback_list.on_predict_end()
        return np.concatenate(outputs, axis=0)

    # -- saving ------------------------------------------------------------------------------

    def save(self, path, metadata=None):
        """Write the model (architecture, weights, optimizer state, metadata) to one file.

        metadata: a JSON-serialisable dict kept with the model (e.g. a vocabulary); None
        keeps ``self.metadata``. The write is atomic: a failed save leaves any old file
        at ``path`` unchanged. ``fastrnn.load_model(path)`` restores the model.
        """
        from fastrnn import saving

        saving.save_model(self, path, metadata=self.metadata if metadata is None else metadata)
        if metadata is not None:
            self.metadata = metadata

    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
        """Write the model for inference elsewhere: ``format="onnx"`` (``opset=17`` or later)
        gives an ONNX file for ONNX Runtime; see ``fastrnn.export``. Written atomically."""
        from fastrnn.export import export_model

        export_model(self, filepath, format=format, verbose=verbose,
                     input_signature=input_signature, **kwargs)


class Sequential(Model):
    """A linear stack of layers: ``Sequential([LSTM(32, input_shape=(T, F)), Dense(1)])``.

    layers: a list of layers (an ``Input(shape)`` first declares the input shape).
    """

    def __init__(self, layers=None, name=None):
        super().__init__(name=name)
        self._layers: list[Layer] = []
        self.built = False
        self.build_input_shape = None  # (B or None, ...) the model was built for
        self._declared_input_shape = None  # from Input(shape) or the first layer's input_shape
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer; builds it at once when the input shape is known."""
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("an Input/InputLayer can only come first in a Sequential model")
            self._declared_input_shape = layer.batch_input_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a fastrnn layer, got {layer!r}")
        if getattr(layer, "return_state", False):
            raise ValueError(f"{layer.who} has return_state=True and so several outputs; "
                             "a Sequential model needs one output per layer")
        if any(other.name == layer.name for other in self._layers):
            raise ValueError(f"model {self.name!r} already has a layer named {layer.name!r}; "
                             "layer names must be unique")
        if not self._layers and self._declared_input_shape is None:
            self._declared_input_shape = layer.batch_input_shape
        self._layers.append(layer)
        self._train_params = None
        shape = self.build_input_shape or self._declared_input_shape
        if shape is not None:
            self.build(shape)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers to pop")
        self._layers.pop()
        self._train_params = None

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            input_shape = self.build_input_shape or self._declared_input_shape
        if input_shape is None:
            raise ValueError(f"model {self.name!r} does not know its input shape: give the first "
                             "layer an input_shape, or pass one to build()")
        shape = tuple(input_shape)
        for layer in self._layers:
            layer.check_input_shape(shape)
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.build_input_shape = tuple(input_shape)
        self.built = True

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built yet")
        shape = self.build_input_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def forward(self, x, training=False):
        """x: (B, ...) -> (output, mask of the output or None); layers cache for backward
        when ``training``."""
        if not self._layers:
            raise ValueError(f"model {self.name!r} has no layers")
        x = np.asarray(x)
        if not self.built:
            self.build((None, *x.shape[1:]))
        mask = None
        for layer in self._layers:
            out = layer(x, training=training, mask=mask)
            mask = layer.compute_mask(x, mask)
            x = out
        return x, mask

    def backward(self, dy):
        """Gradient of the output -> every layer's ``grads`` (after a training forward)."""
        for layer in reversed(self._layers):
            if isinstance(dy, np.ndarray):  # layers of another dtype downstream: as Keras autocasts
                dy = dy.astype(layer.dtype, copy=False)
            dy = layer.backward(dy)
            if dy is None:  # an Embedding: ids have no gradient, and nothing comes before
                break

    # -- description -------------------------------------------------------------------------

    def summary(self, print_fn=None):
        """Print a table of the layers, their output shapes and parameter counts."""
        print_fn = print_fn or print
        rows = []
        shape = self.build_input_shape if self.built else None
        for layer in self._layers:
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            params = layer.count_params() if layer.built else 0
            rows.append((f"{layer.name} ({type(layer).__name__})",
                         "?" if shape is None else str(tuple(shape)), str(params)))
        widths = [max([len(h)] + [len(r[k]) for r in rows]) + 2
                  for k, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "=" * sum(widths)

        def fmt(cols):
            return "".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * sum(widths))
        print_fn(fmt(("Layer (type)", "Output Shape", "Param #")))
        print_fn(line)
        for row in rows:
            print_fn(fmt(row))
        print_fn(line)
        built = [layer for layer in self._layers if layer.built]
        total = sum(layer.count_params() for layer in built)
        trainable = sum(layer.count_params() for layer in built if layer.trainable)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * sum(widths))

    def get_config(self) -> dict:
        return {"name": self.name, "layers": [serialize(layer) for layer in self._layers],
                "build_input_shape": None if self.build_input_shape is None
                else list(self.build_input_shape)}

    @classmethod
    def from_config(cls, config: dict):
        model = cls([deserialize(spec) for spec in config["layers"]], name=config.get("name"))
        if config.get("build_input_shape") is not None and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model


def load_model(path, custom_objects=None, compile=True):
    """Read a model written by ``model.save(path)``; see ``fastrnn.saving.load_model``."""
    from fastrnn import saving

    return saving.load_model(path, custom_objects=custom_objects, compile=compile)
