"""Layers that only rearrange their input, Keras 3's: ``Flatten``, ``Reshape``, ``Permute``,
``RepeatVector``.

They act on the axes after the batch axis and have no weights. As in Keras, integer inputs
(token ids) stay integers, and none of them passes a mask on (their output has none).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers.base import Layer
from fastrnn.layers.merging import _is_int, _keep_integers

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer

DATA_FORMATS = ("channels_last", "channels_first")


class _Rearrange(Layer):
    """Shared by the layers here: integers kept, no mask passed on, no parameters."""

    min_ndim = 2

    def convert_input(self, inputs):
        return _keep_integers(self, inputs)

    def check_input_shape(self, shape):
        """Only the rank is checked: these layers take any sizes, as Keras's do."""
        shape = tuple(shape)
        if self.input_ndim is not None and len(shape) != self.input_ndim:
            raise ValueError(f"{self.who} expects input of rank {self.input_ndim} "
                             f"{self.input_description()}, got shape {shape}")
        if len(shape) < self.min_ndim:
            raise ValueError(f"{self.who} expects input of rank >= {self.min_ndim}, got shape {shape}")

    def compute_mask(self, inputs, mask=None):
        return None

    def backward(self, dy):
        shape = self._backward_cache()
        self.grads = []
        return self._undo(np.asarray(dy), shape)

    def _undo(self, dy, input_shape):
        raise NotImplementedError


class Flatten(_Rearrange):
    """x: (B, d1, ..., dk) -> (B, d1 * ... * dk); (B,) -> (B, 1).

    ``data_format='channels_first'`` reads (B, C, d1, ...) as channels first and moves the
    channel axis last before flattening, so the order matches a channels-last model's.

    Args:
        data_format: ``"channels_last"`` (None, the default) or ``"channels_first"``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 1

    def __init__(self, data_format: str | None = None, *,
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

    def call(self, x, training=False, mask=None):
        self._cache = x.shape if training else None
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(x.shape[0], 1)

    def _undo(self, dy, input_shape):
        if self.data_format == "channels_first" and len(input_shape) > 2:
            moved = (input_shape[0], *input_shape[2:], input_shape[1])
            return np.moveaxis(dy.reshape(moved), -1, 1)
        return dy.reshape(input_shape)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        size = 1 if not rest else (None if None in rest else math.prod(rest))
        return (input_shape[0], size)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(_Rearrange):
    """x: (B, ...) -> (B, *target_shape); one entry of ``target_shape`` may be -1, inferred
    from the input's size.

    Args:
        target_shape: the output's shape without the batch axis; at most one -1.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 1

    def __init__(self, target_shape: tuple, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        try:
            target = tuple(target_shape)
        except TypeError:
            raise TypeError(f"{self.who}: target_shape must be a tuple of ints, "
                            f"got {target_shape!r}") from None
        if not all(_is_int(d) for d in target):
            raise TypeError(f"{self.who}: target_shape must hold ints, got {target_shape!r}")
        if any(d < -1 for d in target) or target.count(-1) > 1:
            raise ValueError(f"{self.who}: target_shape must hold non-negative ints and at most "
                             f"one -1 (a size to infer), got {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target)

    def _resolved(self, rest):
        """The target shape for a sample of shape ``rest`` (the input without its batch axis)."""
        if None in rest:
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if known != size:
                raise ValueError(f"{self.who}: cannot reshape a sample of shape {rest} "
                                 f"({size} values) to target_shape {self.target_shape}")
            return self.target_shape
        if known == 0 or size % known:
            raise ValueError(f"{self.who}: cannot reshape a sample of shape {rest} ({size} values) "
                             f"to target_shape {self.target_shape}: {size} is not a multiple of "
                             f"{known}")
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def check_input_shape(self, shape):
        super().check_input_shape(shape)
        self._resolved(tuple(shape)[1:])

    def call(self, x, training=False, mask=None):
        self._cache = x.shape if training else None
        return x.reshape(x.shape[0], *self._resolved(x.shape[1:]))

    def _undo(self, dy, input_shape):
        return dy.reshape(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolved(tuple(input_shape)[1:]))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Permute(_Rearrange):
    """Reorders the axes after the batch axis: ``dims`` is a permutation of 1..k, e.g.
    ``Permute((2, 1))`` turns (B, T, F) into (B, F, T).

    Args:
        dims: a permutation of 1..k, the input axis each output axis takes.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    def __init__(self, dims: tuple, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        try:
            dims = tuple(dims)
        except TypeError:
            raise TypeError(f"{self.who}: dims must be a tuple of ints, got {dims!r}") from None
        if not all(_is_int(d) for d in dims) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"{self.who}: dims must be a permutation of 1..{len(dims)} (the axes "
                             f"after the batch axis, numbered from 1), got {dims!r}")
        self.dims = tuple(int(d) for d in dims)
        self.input_ndim = len(self.dims) + 1

    def call(self, x, training=False, mask=None):
        self._cache = x.shape if training else None
        return np.transpose(x, (0, *self.dims))

    def _undo(self, dy, input_shape):
        return np.transpose(dy, np.argsort((0, *self.dims)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(_Rearrange):
    """x: (B, F) -> (B, n, F), the vector repeated at n time steps (e.g. to feed an encoder's
    summary to a decoder at every step).

    Args:
        n: how many time steps to repeat the vector over.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    input_ndim = 2

    def __init__(self, n: int, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if not _is_int(n):
            raise TypeError(f"{self.who}: n must be an int, got {n!r}")
        if n <= 0:
            raise ValueError(f"{self.who}: n must be a positive int, got {n}")
        self.n = int(n)

    def input_description(self):
        return "(batch, features)"

    def call(self, x, training=False, mask=None):
        self._cache = x.shape if training else None
        return np.repeat(x[:, None, :], self.n, axis=1)

    def _undo(self, dy, input_shape):
        return dy.sum(axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}
