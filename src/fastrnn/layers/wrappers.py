"""Wrappers: ``Bidirectional`` (a recurrent layer run in both directions, outputs merged)
and ``TimeDistributed`` (a layer applied to every time step).

As in Keras, the wrapper makes two copies of the given layer from its config: the
forward one, and a backward one with ``go_backwards`` flipped. Both read the same
time-major input; the backward one runs the kernel with ``reverse=True``, so its outputs
already sit at their own time positions (no flipping) and, with a mask, padded steps
are handled by the lengths. Outputs at padded steps are zero in both directions, as
Keras's Bidirectional makes them.
"""
from __future__ import annotations

import numpy as np

from fastrnn.layers.base import Layer, deserialize, mask_to_lengths, serialize
from fastrnn.layers.recurrent import Recurrent

MERGE_MODES = ("concat", "sum", "mul", "ave")


class Bidirectional(Layer):
    """Bidirectional(layer, merge_mode='concat'|'sum'|'mul'|'ave', backward_layer=None).

    x: (B, T, F) -> (B, T, M) with the layer's return_sequences, else (B, M), where M is
    2H for 'concat' and H otherwise. Weights: the forward layer's then the backward's. Both
    directions run in the wrapper's dtype (by default the layer's).
    """

    input_ndim = 3

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU, got {layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        if layer.return_state:
            raise ValueError("Bidirectional does not support return_state=True layers")
        if kwargs.get("input_shape") is None and kwargs.get("batch_input_shape") is None:
            kwargs["batch_input_shape"] = layer.batch_input_shape
        kwargs.setdefault("dtype", layer.dtype.name)
        super().__init__(**kwargs)
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
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = True

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

    def call(self, x, training=False, mask=None):
        """x: (B, T, F) -> merged outputs (B, T, M) or (B, M)."""
        B, T, _ = x.shape
        lengths = mask_to_lengths(mask, B, T, self.who)
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, F)
        y_f, h_f, _ = self.forward_layer.run(x_tm, lengths, training)  # (T, B, H), (B, H)
        y_b, h_b, _ = self.backward_layer.run(x_tm, lengths, training)  # (T, B, H), (B, H)
        a, b = (y_f, y_b) if self.return_sequences else (h_f, h_b)
        self._cache = (a, b) if training else None
        out = _merge(self.merge_mode, a, b)  # (T, B, M) or (B, M)
        if self.return_sequences:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))  # (B, T, M)
        return out

    def backward(self, d_out):
        a, b = self._backward_cache()
        if self.return_sequences:
            d_out = np.asarray(d_out).transpose(1, 0, 2)  # (T, B, M)
        da, db = _merge_grad(self.merge_mode, d_out, a, b)
        if self.return_sequences:
            dx = (self.forward_layer.run_backward(np.ascontiguousarray(da))
                  + self.backward_layer.run_backward(np.ascontiguousarray(db)))  # (T, B, F)
        else:
            dx = (self.forward_layer.run_backward(None, np.ascontiguousarray(da))
                  + self.backward_layer.run_backward(None, np.ascontiguousarray(db)))  # (T, B, F)
        self.grads = self.forward_layer.grads + self.backward_layer.grads
        return np.ascontiguousarray(dx.transpose(1, 0, 2))  # (B, T, F)

    # -- shapes, masks, config --------------------------------------------------------------

    def compute_output_shape(self, input_shape):
        H = self.forward_layer.units
        M = H + self.backward_layer.units if self.merge_mode == "concat" else H
        B, T = input_shape[0], input_shape[1]
        return (B, T, M) if self.return_sequences else (B, M)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

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
    """

    min_ndim = 3

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a layer, got {layer!r}")
        if isinstance(layer, (Recurrent, Bidirectional)):
            raise ValueError("TimeDistributed cannot wrap a recurrent layer (its input would "
                             "need a second time axis)")
        kwargs.setdefault("dtype", layer.dtype.name)
        super().__init__(**kwargs)
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
