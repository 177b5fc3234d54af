"""Wrappers: ``Bidirectional`` (a recurrent layer run in both directions, outputs merged)
and ``TimeDistributed`` (a layer applied to every time step).

As in Keras, the wrapper makes two copies of the given layer from its config: the
forward one, and a backward one with ``go_backwards`` flipped. Both read the same
time-major input and mask (of any pattern: padding before or after, holes); the backward
one runs the kernel with ``reverse=True``, so its outputs already sit at their own time
positions (no flipping). As in Keras, both run with ``zero_output_for_mask`` equal to
``return_sequences``: output sequences are zero at masked steps in both directions, and the
last outputs are the states after each direction's last real step, zero for a row with no
real step.

With ``merge_mode=None`` the two directions' outputs are returned apart, ``[forward,
backward]``; with a ``return_state=True`` layer the final states follow the output(s),
the forward layer's then the backward's (``[output, h_f, c_f, h_b, c_b]`` for an LSTM), and
``initial_state`` takes them in the same order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers.base import Layer, check_state_shapes, deserialize, serialize, time_major_mask
from fastrnn.layers.recurrent import Recurrent

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Bidirectional(layer, merge_mode='concat'|'sum'|'mul'|'ave'|None, weights=None,
    backward_layer=None).

    x: (B, T, F) -> (B, T, M) with the layer's return_sequences, else (B, M), where M is
    2H for 'concat' and H otherwise; with ``merge_mode=None`` a list [forward (B, T, H) or
    (B, H), backward (same)]. A ``return_state=True`` layer adds its final states after the
    output(s): forward then backward, each (B, H) (h, then c for LSTM). Weights: the forward
    layer's then the backward's; ``weights`` sets them at build. Both directions run in the
    wrapper's dtype (by default the layer's).

    Args:
        layer: the ``SimpleRNN``, ``LSTM`` or ``GRU`` to run forwards; a copy with
            ``go_backwards`` flipped runs backwards.
        merge_mode: how the two directions' outputs combine: ``"concat"``, ``"sum"``,
            ``"mul"``, ``"ave"``, or None to return both.
        weights: the weights to set at build, the forward layer's then the backward's.
        backward_layer: a recurrent layer to run backwards instead of the copy; its
            ``go_backwards`` must be the opposite of ``layer``'s.

    Every layer also takes ``name``, ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape`` and ``seed``; see
    ``Layer``. The input shape is by default the layer's.
        dtype: ``"float32"`` or ``"float64"``; None (the default) takes the layer's.
    """

    input_ndim = 3

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat",
                 weights: list | None = None, backward_layer: Recurrent | None = None, *,
                 name: str | None = None, dtype: str | np.dtype | None = None,
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU: layer must be one, "
                            f"got {layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if layer.activity_regularizer is not None:
            raise ValueError("an activity_regularizer on the layer Bidirectional wraps is not "
                             "supported; give one to the Bidirectional layer itself")
        if input_shape is None and batch_input_shape is None:
            batch_input_shape = layer.batch_input_shape
        dtype = layer.dtype.name if dtype is None else dtype
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        self.layer_spec = serialize(layer)
        self.layer_spec["config"].pop("batch_input_shape", None)
        self.layer_spec["config"]["dtype"] = self.dtype.name  # both directions run in the wrapper's
        self.merge_mode = merge_mode
        self.forward_layer = self._copy(self.layer_spec, "forward_" + layer.name)
        if backward_layer is None:
            self.backward_spec = None
            self.backward_layer = self._copy(self.layer_spec, "backward_" + layer.name,
                                             go_backwards=not layer.go_backwards)
        else:
            self._check_backward_layer(layer, backward_layer)
            self.backward_spec = serialize(backward_layer)
            self.backward_spec["config"].pop("batch_input_shape", None)
            self.backward_spec["config"]["dtype"] = self.dtype.name
            self.backward_layer = self._copy(self.backward_spec, backward_layer.name)
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = self.return_sequences  # as Keras forces it
        if weights is not None and not isinstance(weights, (list, tuple)):
            raise TypeError(f"{self.who}: weights must be a list of arrays or None, got "
                            f"{type(weights).__name__}")
        self.initial_weights = None if weights is None else list(weights)

    @staticmethod
    def _copy(spec, name, **changes):
        return deserialize({"class_name": spec["class_name"],
                            "config": {**spec["config"], "name": name, **changes}})

    @staticmethod
    def _check_backward_layer(layer, backward):
        if not isinstance(backward, Recurrent):
            raise TypeError(f"backward_layer must be a SimpleRNN, LSTM or GRU, got {backward!r}")
        for attr in ("return_sequences", "return_state", "stateful"):
            if getattr(backward, attr) != getattr(layer, attr):
                raise ValueError(f"backward_layer.{attr} must equal layer.{attr} "
                                 f"({getattr(layer, attr)}), got {getattr(backward, attr)}")
        if backward.go_backwards == layer.go_backwards:
            raise ValueError("backward_layer must have the opposite go_backwards of layer")

    @property
    def stateful(self):
        return self.forward_layer.stateful

    @property
    def sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def carried_states(self):
        return self.forward_layer.carried_states(), self.backward_layer.carried_states()

    def restore_states(self, saved):
        self.forward_layer.restore_states(saved[0])
        self.backward_layer.restore_states(saved[1])

    # -- parameters ----------------------------------------------------------------------

    @property
    def params(self):
        return self.forward_layer.params + self.backward_layer.params

    def build(self, input_shape):
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)
        super().build(input_shape)
        if self.initial_weights is not None:
            weights, self.initial_weights = self.initial_weights, None
            self.set_weights(weights)

    def weight_shapes(self):
        return self.forward_layer.weight_shapes() + self.backward_layer.weight_shapes()

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def assign_weights(self, weights):
        n = len(self.forward_layer.weight_shapes())
        self.forward_layer.assign_weights(weights[:n])
        self.backward_layer.assign_weights(weights[n:])

    def reset_states(self):
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    # -- forward and backward ------------------------------------------------------------

    @property
    def initial_state_grads(self):
        """The gradients of ``initial_state`` after ``backward``: forward's then backward's."""
        f, b = self.forward_layer.initial_state_grads, self.backward_layer.initial_state_grads
        return None if f is None or b is None else f + b

    def _split_initial_state(self, initial_state):
        """initial_state: [forward states..., backward states...] or None -> the two halves."""
        if initial_state is None:
            return None, None
        states = list(initial_state)
        n, m = self.forward_layer.state_count, self.backward_layer.state_count
        if len(states) != n + m:
            raise ValueError(f"{self.who}: initial_state must be a list of {n + m} arrays, the "
                             f"forward layer's {n} then the backward layer's {m}, "
                             f"got {len(states)}")
        return states[:n], states[n:]

    def check_initial_state_shapes(self, shapes) -> None:
        """For a call on symbolic tensors: ValueError unless ``shapes`` are those of the
        forward layer's states then the backward layer's, each (batch, its units)."""
        units = ([self.forward_layer.units] * self.forward_layer.state_count
                 + [self.backward_layer.units] * self.backward_layer.state_count)
        check_state_shapes(self.who, shapes, units, "the forward layer's then the backward layer's")

    def call(self, x, training=False, mask=None, initial_state=None):
        """x: (B, T, F) -> merged outputs (B, T, M) or (B, M); a list with merge_mode=None
        and/or return_state (see the class docstring)."""
        B, T, _ = x.shape
        mask_tm = time_major_mask(mask, B, T, self.who)  # (T, B) or None
        state_f, state_b = self._split_initial_state(initial_state)
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, F)
        # y: (T, B, H) at their own time positions, zero at masked steps; h and c: (B, H)
        y_f, h_f, c_f = self.forward_layer.run(x_tm, mask_tm, training, state_f, self.return_sequences)
        y_b, h_b, c_b = self.backward_layer.run(x_tm, mask_tm, training, state_b, self.return_sequences)
        if self.return_sequences:
            a, b = y_f, y_b
        else:
            a, b = self._last_output(h_f, mask_tm), self._last_output(h_b, mask_tm)
        self._cache = (a, b, mask_tm) if training else None
        if self.merge_mode is None:
            outputs = [self._batch_major(a), self._batch_major(b)]
        else:
            outputs = [self._batch_major(_merge(self.merge_mode, a, b))]  # (B, T, M) or (B, M)
        if not self.return_state:
            return outputs[0] if self.merge_mode is not None else outputs
        states = [s for s in (h_f, c_f, h_b, c_b) if s is not None]
        return outputs + [s.copy() for s in states]

    def _last_output(self, h, mask_tm):
        """h: (B, H) a direction's final state -> its last output: zero for rows with no real step."""
        return h if mask_tm is None else h * self.forward_layer.last_output_kept(mask_tm)[:, None]

    def _batch_major(self, y):
        """(T, B, H) -> (B, T, H) for sequences; final states (B, H) as they are."""
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if self.return_sequences else y.copy()

    def backward(self, d_out):
        """Gradients of ``call``'s outputs (a list matching them when there are several,
        entries None) -> gradient of x: (B, T, F); sets ``grads`` and ``initial_state_grads``."""
        a, b, mask_tm = self._backward_cache()
        n = self.forward_layer.state_count
        n_states = n + self.backward_layer.state_count
        if self.merge_mode is None or self.return_state:
            d_out = list(d_out)
            n_outputs = 2 if self.merge_mode is None else 1
            d_outputs = d_out[:n_outputs]
            d_states = (d_out[n_outputs:] + [None] * n_states)[:n_states]
        else:
            d_outputs, d_states = [d_out], [None] * n_states
        if self.merge_mode is None:
            da, db = (None if d is None else self._time_major(d) for d in d_outputs)
        elif d_outputs[0] is None:
            da = db = None
        else:
            da, db = _merge_grad(self.merge_mode, self._time_major(d_outputs[0]), a, b)
        if not self.return_sequences:
            da, db = (None if d is None else self._last_output(d, mask_tm) for d in (da, db))
        dx = (self._run_backward(self.forward_layer, da, d_states[:n])
              + self._run_backward(self.backward_layer, db, d_states[n:]))  # (T, B, F)
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        return np.ascontiguousarray(dx.transpose(1, 0, 2))  # (B, T, F)

    def _time_major(self, d):
        d = np.asarray(d, dtype=self.dtype)
        return d.transpose(1, 0, 2) if self.return_sequences else d  # (T, B, H) or (B, H)

    def _run_backward(self, layer, d_output, d_states):
        """One direction: the gradient of its output (sequence or final h) and its states."""
        dh, dc = (list(d_states) + [None])[:2]
        if layer.state_count == 1:
            dc = None
        if self.return_sequences:
            dy = None if d_output is None else np.ascontiguousarray(d_output)
            return layer.run_backward(dy, dh, dc)
        if d_output is not None:
            dh = d_output if dh is None else dh + np.asarray(d_output)
        return layer.run_backward(None, None if dh is None else np.ascontiguousarray(dh), dc)

    # -- shapes, masks, config --------------------------------------------------------------

    def compute_output_shape(self, input_shape):
        H = self.forward_layer.units
        M = H + self.backward_layer.units if self.merge_mode == "concat" else H
        B, T = input_shape[0], input_shape[1]
        if self.merge_mode is None:
            outputs = [(B, T, H), (B, T, H)] if self.return_sequences else [(B, H), (B, H)]
        else:
            outputs = [(B, T, M) if self.return_sequences else (B, M)]
        if not self.return_state:
            return outputs[0] if self.merge_mode is not None else outputs
        return (outputs + [(B, H)] * self.forward_layer.state_count
                + [(B, self.backward_layer.units)] * self.backward_layer.state_count)

    def compute_mask(self, inputs, mask=None):
        """The input mask for each sequence output, None for final outputs and states."""
        out = mask if self.return_sequences else None
        outputs = [out, out] if self.merge_mode is None else [out]
        if not self.return_state:
            return outputs[0] if self.merge_mode is not None else outputs
        return outputs + [None] * (self.forward_layer.state_count + self.backward_layer.state_count)

    def get_config(self):
        config = super().get_config()
        config.update(layer=self.layer_spec, merge_mode=self.merge_mode,
                      backward_layer=self.backward_spec)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = deserialize(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        backward = None if backward is None else deserialize(backward)
        return cls(layer, backward_layer=backward, **config)


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: x (B, T, ...) -> (B, T, ...), one set of weights.

    Keras 3's ``Dense`` already acts on the last axis, so ``TimeDistributed(Dense(n))`` equals
    ``Dense(n)``; the wrapper is here so that Keras scripts using it run unchanged. The
    time axis is folded into the batch: the wrapped layer sees (B*T, ...).

    Args:
        layer: the layer to apply at each step (not a recurrent one).

    Every layer also takes ``name``, ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
        dtype: ``"float32"`` or ``"float64"``; None (the default) takes the layer's.
    """

    min_ndim = 3

    def __init__(self, layer: Layer, *,
                 name: str | None = None, dtype: str | np.dtype | None = None,
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a layer, got {layer!r}")
        if isinstance(layer, (Recurrent, Bidirectional)):
            raise ValueError("TimeDistributed cannot wrap a recurrent layer (its input would "
                             "need a second time axis)")
        dtype = layer.dtype.name if dtype is None else dtype
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        self.layer = layer

    @property
    def params(self):
        return self.layer.params

    @property
    def sublayers(self):
        return [self.layer]

    def build(self, input_shape):
        self.layer.build((None, *tuple(input_shape)[2:]))
        super().build(input_shape)

    def weight_shapes(self):
        return self.layer.weight_shapes()

    def get_weights(self):
        return self.layer.get_weights()

    def checked_weights(self, weights):
        return self.layer.checked_weights(weights)  # a model checks (and groups) them its own way

    def assign_weights(self, weights):
        self.layer.assign_weights(weights)

    def carried_states(self):
        return self.layer.carried_states()

    def restore_states(self, saved):
        self.layer.restore_states(saved)

    def call(self, x, training=False, mask=None):
        B, T = x.shape[:2]
        out = self.layer(x.reshape(B * T, *x.shape[2:]), training=training)  # (B*T, ...)
        return out.reshape(B, T, *out.shape[1:])  # (B, T, ...)

    def backward(self, dy):
        B, T = dy.shape[:2]
        dx = self.layer.backward(dy.reshape(B * T, *dy.shape[2:]))  # (B*T, ...)
        self.grads = self.layer.grads
        return None if dx is None else dx.reshape(B, T, *dx.shape[1:])

    def compute_output_shape(self, input_shape):
        B, T = tuple(input_shape)[:2]
        return (B, T, *self.layer.compute_output_shape((None, *tuple(input_shape)[2:]))[1:])

    def get_config(self):
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)


def _merge(mode, a, b):
    """Combine the two directions' outputs (same shape, last axis H)."""
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    return (a + b) / 2  # 'ave'


def _merge_grad(mode, d, a, b):
    """Gradient of ``_merge`` -> (da, db)."""
    if mode == "concat":
        return d[..., :a.shape[-1]], d[..., a.shape[-1]:]
    if mode == "sum":
        return d, d
    if mode == "mul":
        return d * b, d * a
    half = d / 2  # 'ave'
    return half, half
