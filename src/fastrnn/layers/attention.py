"""Attention layers, Keras 3's: ``Attention`` (dot-product, Luong-style, or 'concat') and
``AdditiveAttention`` (Bahdanau-style).

Both take ``[query, value]`` or ``[query, value, key]`` (key defaults to value):
query (B, Tq, D), value (B, Tv, Dv), key (B, Tv, D) -> output (B, Tq, Dv). Call arguments,
as in Keras: ``mask=[query_mask (B, Tq), value_mask (B, Tv)]`` (entries None),
``return_attention_scores`` (then the output is ``[output, weights (B, Tq, Tv)]``),
``use_causal_mask`` (query step i attends to value steps j <= i only).

The computation, Keras's:

- scores (B, Tq, Tv): 'dot' ``q @ k^T`` (times ``scale`` with ``use_scale``); 'concat'
  ``concat_score_weight * sum_d tanh(scale * (q_i + k_j))``; additive
  ``sum_d scale_d * tanh(q_i + k_j)``;
- masked value steps (and, causally, later ones) get 1e9 taken off their score, so a row
  with every step masked is a softmax over shifted scores, as in Keras;
- weights = softmax(scores) over Tv, dropped out at ``dropout`` in training, and
  output = weights @ value, zero at masked query steps. The output mask is the query's.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers import initializers
from fastrnn.layers.base import Layer
from fastrnn.layers.merging import build_multi

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer

_MASKED_SHIFT = 1e9  # what Keras takes off the score of a masked step
SCORE_MODES = ("dot", "concat")


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))  # (B, Tq, Tv), shifted for stability
    return e / e.sum(axis=-1, keepdims=True)


class Attention(Layer):
    """Dot-product attention (``score_mode='dot'``) or 'concat' scores; see the module
    docstring. Weights: ``scale`` () with ``use_scale``, then ``concat_score_weight`` () with
    ``score_mode='concat'``, both starting at 1.

    Args:
        use_scale: learn a scale of the scores.
        score_mode: ``"dot"`` or ``"concat"``.
        dropout: the fraction of attention weights dropped in training, in [0, 1).
        seed: the seed of the dropout's generator (else the library's generator).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape`` and ``activity_regularizer``;
    see ``Layer``.
    """

    multi_input = True

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if score_mode not in SCORE_MODES:
            raise ValueError(f"{self.who}: score_mode must be one of {SCORE_MODES}, "
                             f"got {score_mode!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"{self.who}: dropout must be a number in [0, 1), got {dropout!r}")
        self.use_scale = self.flag("use_scale", use_scale)
        self.score_mode = score_mode
        self.dropout = float(dropout)
        self.scale = self.concat_score_weight = None

    # -- shapes and weights -------------------------------------------------------------

    def check_input_shapes(self, shapes):
        if len(shapes) not in (2, 3):
            raise ValueError(f"{self.who} must be called on a list [query, value] or "
                             f"[query, value, key], got {len(shapes)} inputs")
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"{self.who} takes inputs of rank 3 (batch, timesteps, features), "
                             f"got shapes {shapes}")
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) == 3 else v
        if len({q[0], v[0], k[0]}) > 1:
            raise ValueError(f"{self.who}: query, value and key need one batch size, got shapes "
                             f"{shapes}")
        if k[1] != v[1]:
            raise ValueError(f"{self.who}: key and value need the same number of steps, got "
                             f"shapes {shapes}")
        if q[2] != k[2]:
            raise ValueError(f"{self.who}: query and key need the same number of features, got "
                             f"shapes {shapes}")
        if self.built and q[2] != self.input_shape[0][2]:
            raise ValueError(f"{self.who} is built for queries of {self.input_shape[0][2]} "
                             f"features, got shapes {shapes}")

    def build(self, input_shape):
        if self.use_scale:
            self.scale = np.ones((), self.dtype)
        if self.score_mode == "concat":
            self.concat_score_weight = np.ones((), self.dtype)
        build_multi(self, input_shape)

    @property
    def params(self):
        return [p for p in (self.scale, self.concat_score_weight) if p is not None]

    def compute_output_shape(self, input_shape, return_attention_scores=False):
        q, v = tuple(input_shape[0]), tuple(input_shape[1])
        out = (*q[:-1], v[-1])
        return [out, (*q[:-1], v[1])] if return_attention_scores else out

    def compute_mask(self, inputs, mask=None):
        masks = self._masks(inputs, mask)
        return None if masks[0] is None else masks[0]

    # -- scores ---------------------------------------------------------------------------

    def _scores(self, q, k):
        """q: (B, Tq, D), k: (B, Tv, D) -> scores (B, Tq, Tv), what their backward needs."""
        if self.score_mode == "dot":
            raw = np.matmul(q, np.swapaxes(k, 1, 2))  # (B, Tq, Tv)
            return (raw * self.scale if self.scale is not None else raw), raw
        a = q[:, :, None, :] + k[:, None, :, :]  # (B, Tq, Tv, D)
        t = np.tanh(self.scale * a if self.scale is not None else a)
        total = t.sum(axis=-1)  # (B, Tq, Tv)
        return self.concat_score_weight * total, (a, t, total)

    def _scores_backward(self, ds, q, k, saved):
        """ds: (B, Tq, Tv) -> dq, dk, and the gradients of this layer's weights."""
        if self.score_mode == "dot":
            raw = saved
            weight_grads = []
            if self.scale is not None:
                weight_grads.append(np.asarray((ds * raw).sum(), self.dtype))
                ds = ds * self.scale
            return np.matmul(ds, k), np.matmul(np.swapaxes(ds, 1, 2), q), weight_grads
        a, t, total = saved
        dt = (self.concat_score_weight * ds)[..., None] * (1 - t * t)  # d(tanh argument)
        weight_grads = []
        if self.scale is not None:
            weight_grads.append(np.asarray((dt * a).sum(), self.dtype))
            dt = dt * self.scale
        weight_grads.append(np.asarray((ds * total).sum(), self.dtype))
        return dt.sum(axis=2), dt.sum(axis=1), weight_grads

    # -- masks ----------------------------------------------------------------------------

    def _masks(self, inputs, mask):
        """mask (a list of 2 or 3 entries, or None) -> [query_mask (B, Tq), value_mask (B, Tv)]."""
        if mask is None:
            return [None, None]
        if not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3):
            raise ValueError(f"{self.who}: mask must be a list [query_mask, value_mask] (entries "
                             f"None), got {mask!r}")
        out = []
        for name, m, x in (("query_mask", mask[0], inputs[0]), ("value_mask", mask[1], inputs[1])):
            if m is not None:
                m = np.asarray(m)
                if m.shape != np.shape(x)[:2]:
                    raise ValueError(f"{self.who}: {name} must have shape {np.shape(x)[:2]}, "
                                     f"got {m.shape}")
                m = m.astype(bool)
            out.append(m)
        return out

    @staticmethod
    def _score_mask(v_mask, Tq, Tv, causal):
        """Where a query step may look: (B or 1, Tq, Tv) bool, or None for everywhere."""
        allowed = None
        if causal:
            allowed = (np.arange(Tq)[:, None] >= np.arange(Tv)[None, :])[None]  # (1, Tq, Tv)
        if v_mask is not None:
            v = v_mask[:, None, :]  # (B, 1, Tv)
            allowed = v if allowed is None else (allowed & v)
        return allowed

    # -- forward and backward ----------------------------------------------------------

    def call(self, inputs, training=False, mask=None, return_attention_scores=False,
             use_causal_mask=False):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) == 3 else v
        q_mask, v_mask = self._masks(inputs, mask)
        scores, saved = self._scores(q, k)
        allowed = self._score_mask(v_mask, q.shape[1], k.shape[1], use_causal_mask)
        if allowed is not None:
            scores = np.where(allowed, scores, scores - self.dtype.type(_MASKED_SHIFT))
        weights = _softmax(scores).astype(self.dtype, copy=False)  # (B, Tq, Tv)
        drop = None
        if training and self.dropout > 0:
            keep = self.rng.random(weights.shape) >= self.dropout
            drop = keep.astype(self.dtype) / self.dtype.type(1 - self.dropout)
            weights_used = weights * drop
        else:
            weights_used = weights
        out = np.matmul(weights_used, v)  # (B, Tq, Dv)
        if q_mask is not None:
            out = np.where(q_mask[..., None], out, self.dtype.type(0))
        self._cache = ((q, v, k, len(inputs)), saved, weights, drop, q_mask, return_attention_scores
                       ) if training else None
        return [out, weights_used] if return_attention_scores else out

    def backward(self, d_out):
        (q, v, k, n_inputs), saved, weights, drop, q_mask, with_scores = self._backward_cache()
        d_weights = None
        if with_scores:
            d_out, d_weights = (list(d_out) + [None])[:2]
        weights_used = weights if drop is None else weights * drop
        dv = np.zeros_like(v)
        dw = np.zeros_like(weights)
        if d_out is not None:
            d_out = np.asarray(d_out, dtype=self.dtype)
            if q_mask is not None:
                d_out = np.where(q_mask[..., None], d_out, self.dtype.type(0))
            dv = np.matmul(np.swapaxes(weights_used, 1, 2), d_out)  # (B, Tv, Dv)
            dw = np.matmul(d_out, np.swapaxes(v, 1, 2))  # (B, Tq, Tv)
        if d_weights is not None:
            dw = dw + np.asarray(d_weights, dtype=self.dtype)
        if drop is not None:
            dw = dw * drop
        ds = weights * (dw - (dw * weights).sum(axis=-1, keepdims=True))  # softmax backward
        dq, dk, self.grads = self._scores_backward(ds, q, k, saved)
        if n_inputs == 3:
            return [dq, dv, dk]
        return [dq, dv + dk]

    def get_config(self):
        config = super().get_config()
        config.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout)
        return config


class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention: scores ``sum_d scale_d * tanh(q_i + k_j)``.

    Weights: ``scale`` (D,) with ``use_scale`` (default True), glorot-uniform at build.

    Args:
        use_scale: learn a scale ``scale_d`` for each feature.
        dropout: the fraction of attention weights dropped in training, in [0, 1).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, name=name, dtype=dtype,
                         trainable=trainable, input_shape=input_shape, batch_size=batch_size,
                         batch_input_shape=batch_input_shape,
                         activity_regularizer=activity_regularizer)

    def build(self, input_shape):
        dim = tuple(input_shape[0])[-1]
        if self.use_scale:
            self.scale = initializers.get("glorot_uniform")((dim,), self.dtype)
        build_multi(self, input_shape)

    def _scores(self, q, k):
        a = q[:, :, None, :] + k[:, None, :, :]  # (B, Tq, Tv, D)
        t = np.tanh(a)
        weighted = t * self.scale if self.scale is not None else t
        return weighted.sum(axis=-1), t

    def _scores_backward(self, ds, q, k, t):
        dt = ds[..., None] * (self.scale if self.scale is not None else 1)  # (B, Tq, Tv, D)
        weight_grads = []
        if self.scale is not None:
            weight_grads.append((ds[..., None] * t).sum(axis=(0, 1, 2)))
        da = dt * (1 - t * t)
        return da.sum(axis=2), da.sum(axis=1), weight_grads

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
