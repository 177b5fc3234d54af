"""Global pooling over time, Keras 3's: ``GlobalAveragePooling1D`` and ``GlobalMaxPooling1D``
(also named ``GlobalAvgPool1D`` and ``GlobalMaxPool1D``).

x: (B, T, F) -> (B, F), or (B, 1, F) with ``keepdims=True``; with
``data_format='channels_first'`` x is (B, F, T). Neither passes a mask on.

Masks, as in Keras 3.15: ``GlobalAveragePooling1D`` averages over the real steps only (a
sequence with no real step gives NaN, 0 / 0, as in Keras). ``GlobalMaxPooling1D`` takes the
maximum over every step, padded ones included. After a recurrent layer with its default
``zero_output_for_mask=False`` a padded step read after a real one repeats the last real
output, so it adds nothing to the maximum; padded steps read before the first real one
(pre-padding, or post-padding read with ``go_backwards``) and every padded step after
``Bidirectional`` output zero and take part.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers.base import Layer
from fastrnn.layers.reshaping import DATA_FORMATS

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer


class _GlobalPooling1D(Layer):
    """The shared constructor of the global poolings.

    Args:
        data_format: ``"channels_last"`` (None, the default), x (B, T, F), or
            ``"channels_first"``, x (B, F, T).
        keepdims: keep the time axis, of size 1.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    input_ndim = 3

    def __init__(self, data_format: str | None = None, keepdims: bool = False, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        data_format = "channels_last" if data_format is None else data_format
        if data_format not in DATA_FORMATS:
            raise ValueError(f"{self.who}: data_format must be one of {DATA_FORMATS} (or None), "
                             f"got {data_format!r}")
        self.data_format = data_format
        self.keepdims = self.flag("keepdims", keepdims)

    @property
    def steps_axis(self) -> int:
        return 1 if self.data_format == "channels_last" else 2

    def input_description(self):
        return ("(batch, timesteps, features)" if self.data_format == "channels_last"
                else "(batch, features, timesteps)")

    def check_input_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"{self.who} expects input of rank 3 {self.input_description()}, "
                             f"got shape {shape}")

    def _step_mask(self, x, mask):
        """mask: (B, T) or None -> a mask broadcastable to x, or None."""
        if mask is None:
            return None
        mask = np.asarray(mask)
        B, T = x.shape[0], x.shape[self.steps_axis]
        if mask.shape != (B, T):
            raise ValueError(f"{self.who}: mask must have shape (batch, timesteps) = {(B, T)}, "
                             f"got {mask.shape}")
        return np.expand_dims(mask.astype(bool), 3 - self.steps_axis)  # (B, T, 1) or (B, 1, T)

    def compute_output_shape(self, input_shape):
        B, F = input_shape[0], input_shape[3 - self.steps_axis]
        if not self.keepdims:
            return (B, F)
        return (B, 1, F) if self.data_format == "channels_last" else (B, F, 1)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over time steps, over the real ones when there is a mask."""

    def call(self, x, training=False, mask=None):
        real = self._step_mask(x, mask)
        axis = self.steps_axis
        if real is None:
            count = np.full((1, 1, 1), x.shape[axis], self.dtype)
            total = x.sum(axis=axis, keepdims=True)
        else:
            count = real.sum(axis=axis, keepdims=True).astype(self.dtype)  # (B, 1, 1)
            total = np.where(real, x, 0).sum(axis=axis, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = total / count  # NaN for a sequence without real steps, as in Keras
        self._cache = (x.shape, real, count) if training else None
        return y if self.keepdims else y.squeeze(axis)

    def backward(self, dy):
        shape, real, count = self._backward_cache()
        self.grads = []
        dy = np.asarray(dy, dtype=self.dtype)
        if not self.keepdims:
            dy = np.expand_dims(dy, self.steps_axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.broadcast_to(dy / count, shape)
        return g.copy() if real is None else np.where(real, g, 0).astype(self.dtype)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over all time steps (the mask is not used; see the module docstring)."""

    def call(self, x, training=False, mask=None):
        self._step_mask(x, mask)  # checked, not used: Keras's maximum ignores it
        y = x.max(axis=self.steps_axis, keepdims=True)
        self._cache = (x, y) if training else None
        return y if self.keepdims else y.squeeze(self.steps_axis)

    def backward(self, dy):
        x, y = self._backward_cache()
        self.grads = []
        dy = np.asarray(dy, dtype=self.dtype)
        if not self.keepdims:
            dy = np.expand_dims(dy, self.steps_axis)
        hit = x == y
        share = hit / hit.sum(axis=self.steps_axis, keepdims=True)  # ties share the gradient
        return (dy * share).astype(self.dtype)


GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
