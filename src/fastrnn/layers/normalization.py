"""``LayerNormalization``, Keras 3's: each sample normalised over ``axis``, then scaled and
shifted by learned ``gamma`` and ``beta``."""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers import initializers
from fastrnn.layers.base import Layer
from fastrnn.layers.merging import _is_int

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer


class LayerNormalization(Layer):
    """y = (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and (biased) variance over
    ``axis`` (an int or a list of ints, default -1: the features) of each sample.

    x: (B, ..., F) -> the same shape. Weights: gamma, then beta, each of the input's sizes
    along ``axis`` (F for the default); ``scale=False`` drops gamma, ``center=False`` beta.
    ``rms_scaling=True`` (deprecated in Keras 3, kept for its scripts) computes
    x / sqrt(var + epsilon) * gamma: no mean taken off, no beta. The mask passes through.

    Args:
        axis: the axis (or list of axes) to normalise over; not the batch axis.
        epsilon: added to the variance, so as never to divide by zero.
        center: learn a shift ``beta``.
        scale: learn a scale ``gamma``.
        beta_initializer: beta's initializer: a Keras name or a callable
            ``f(shape, dtype) -> array``.
        gamma_initializer: gamma's, likewise.
        beta_regularizer: accepted for Keras scripts; only None is supported (ValueError else).
        gamma_regularizer: likewise.
        beta_constraint: likewise.
        gamma_constraint: likewise.
        rms_scaling: Keras's deprecated form, described above (warns).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 2

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: str | Callable = "zeros",
                 gamma_initializer: str | Callable = "ones", beta_regularizer: None = None,
                 gamma_regularizer: None = None, beta_constraint: None = None,
                 gamma_constraint: None = None, rms_scaling: bool = False, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if _is_int(axis):
            self.axis = int(axis)
        elif isinstance(axis, (list, tuple)) and axis and all(_is_int(a) for a in axis):
            self.axis = [int(a) for a in axis]
        else:
            raise TypeError(f"{self.who}: axis must be an int or a list of ints, got {axis!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon >= 0:
            raise ValueError(f"{self.who}: epsilon must be a non-negative number, got {epsilon!r}")
        for arg, value in (("beta_regularizer", beta_regularizer),
                           ("gamma_regularizer", gamma_regularizer),
                           ("beta_constraint", beta_constraint),
                           ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"{self.who}: {arg} is not supported; leave it None")
        if rms_scaling:
            warnings.warn("rms_scaling=True is deprecated in Keras 3: it divides by the "
                          "variance's square root, not the root mean square", stacklevel=2)
        self.epsilon = float(epsilon)
        self.center = self.flag("center", center)
        self.scale = self.flag("scale", scale)
        self.rms_scaling = self.flag("rms_scaling", rms_scaling)
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self.resolve("beta_initializer", initializers.get, beta_initializer)
        self.resolve("gamma_initializer", initializers.get, gamma_initializer)
        self.gamma = self.beta = None

    def _axes(self, ndim: int) -> list[int]:
        """The normalised axes as non-negative, sorted numbers; ValueError if out of range."""
        axes = [self.axis] if isinstance(self.axis, int) else list(self.axis)
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"{self.who}: axis {self.axis} is out of range for input of "
                             f"rank {ndim}")
        axes = sorted(a % ndim for a in axes)
        if 0 in axes:
            raise ValueError(f"{self.who}: axis {self.axis} includes the batch axis")
        if len(set(axes)) != len(axes):
            raise ValueError(f"{self.who}: axis {self.axis} names an axis twice")
        return axes

    def _weight_shape(self, shape):
        return tuple(shape[a] for a in self._axes(len(shape)))

    def check_input_shape(self, shape):
        shape = tuple(shape)
        if len(shape) < self.min_ndim:
            raise ValueError(f"{self.who} expects input of rank >= {self.min_ndim}, got shape {shape}")
        axes = self._axes(len(shape))
        if self.built:
            expected = self._weight_shape(self.input_shape)
            if len(shape) != len(self.input_shape) or tuple(shape[a] for a in axes) != expected:
                raise ValueError(f"{self.who} is built for inputs of shape {self.input_shape} "
                                 f"(sizes {expected} along axis {self.axis}), got {shape}")

    @property
    def params(self):
        return [p for p in (self.gamma, self.beta) if p is not None]

    def build(self, input_shape):
        shape = self._weight_shape(tuple(input_shape))
        if None in shape:
            raise ValueError(f"{self.who}: the input's sizes along axis {self.axis} must be known "
                             f"to build, got input shape {tuple(input_shape)}")
        if self.scale or self.rms_scaling:
            self.gamma = initializers.get(self.gamma_initializer)(shape, self.dtype)
        if self.center and not self.rms_scaling:
            self.beta = initializers.get(self.beta_initializer)(shape, self.dtype)
        super().build(input_shape)

    def _broadcast(self, w, ndim, axes):
        """A weight of the normalised axes' sizes -> broadcastable to the input."""
        shape = [1] * ndim
        for a, n in zip(axes, w.shape):
            shape[a] = n
        return w.reshape(shape)

    def call(self, x, training=False, mask=None):
        axes = self._axes(x.ndim)
        red = tuple(axes)
        mean = x.mean(axis=red, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=red, keepdims=True)
        inv = 1 / np.sqrt(var + self.dtype.type(self.epsilon))
        xhat = x * inv if self.rms_scaling else centered * inv  # rms_scaling keeps the mean
        y = xhat
        if self.gamma is not None:
            y = y * self._broadcast(self.gamma, x.ndim, axes)
        if self.beta is not None:
            y = y + self._broadcast(self.beta, x.ndim, axes)
        self._cache = (axes, x, xhat, centered, inv) if training else None
        return y.astype(self.dtype, copy=False)

    def backward(self, dy):
        axes, x, xhat, centered, inv = self._backward_cache()
        dy = np.asarray(dy, dtype=self.dtype)
        red = tuple(axes)
        rest = tuple(k for k in range(dy.ndim) if k not in axes)
        self.grads = []
        du = dy
        if self.gamma is not None:
            self.grads.append((dy * xhat).sum(axis=rest))
            du = dy * self._broadcast(self.gamma, dy.ndim, axes)
        if self.beta is not None:
            self.grads.append(dy.sum(axis=rest))
        if self.rms_scaling:
            # y = x * inv, inv = (var + eps)^-1/2: d inv / dx = -inv^3 (x - mean) / N
            return du * inv - inv ** 3 * centered * (du * x).mean(axis=red, keepdims=True)
        return inv * (du - du.mean(axis=red, keepdims=True)
                      - xhat * (du * xhat).mean(axis=red, keepdims=True))

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, epsilon=self.epsilon, center=self.center, scale=self.scale,
                      rms_scaling=self.rms_scaling,
                      beta_initializer=initializers.serialize(self.beta_initializer, "zeros"),
                      gamma_initializer=initializers.serialize(self.gamma_initializer, "ones"))
        return config
