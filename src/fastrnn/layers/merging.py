"""Merge layers, Keras 3's: ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum``, ``Concatenate`` and ``Dot``, with their lowercase functional forms (``add``,
``concatenate``, ...).

Each takes a list of arrays ``[x_1, ..., x_n]`` (batch axis first) and a list of masks (one
per input, ``(B, T)`` for ``(B, T, F)`` inputs, entries None), and ``backward`` returns one
gradient per input. As in Keras:

- the element-wise merges broadcast: an input of lower rank gets axes of size 1 inserted
  after the batch axis, and axes of size 1 stretch to the others' sizes;
- ``Add``, ``Subtract`` and ``Average`` ignore the masks in their arithmetic; ``Multiply``
  treats a masked step of an input as 1 (and, when every input has a mask, gives 0 where
  all are masked); ``Maximum`` and ``Minimum`` take the extreme of the inputs that are real
  at each step (the first input where none is);
- the output mask is the OR of the input masks, or None when an input has none;
  ``Concatenate`` counts an input without a mask as real everywhere; ``Dot`` gives none.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastrnn.layers.base import Layer

if TYPE_CHECKING:
    from fastrnn.regularizers import Regularizer


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _expand_after_batch(a: np.ndarray, ndim: int) -> np.ndarray:
    """a: (B, ...) -> a with axes of size 1 inserted after the batch axis, up to rank ndim."""
    return a.reshape(a.shape[:1] + (1,) * (ndim - a.ndim) + a.shape[1:])


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Gradient g of a broadcast result -> the gradient of the input of ``shape`` (summed
    over the axes the input was stretched or expanded along)."""
    expanded = shape[:1] + (1,) * (g.ndim - len(shape)) + tuple(shape[1:])
    axes = tuple(k for k, (n, m) in enumerate(zip(expanded, g.shape)) if n == 1 and m != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def build_multi(layer: Layer, input_shapes) -> None:
    """Build a weightless multi-input layer: ``input_shape`` is the list of its inputs' shapes."""
    layer.input_shape = [(None, *tuple(s)[1:]) for s in input_shapes]
    layer.built = True


def check_mask_list(who: str, inputs, mask, full_rank_ok=False):
    """mask: None or a list of one mask per input (entries None) -> a list of bool arrays or
    None entries, or None. A mask must have the input's shape without its last axis
    (``(B, T)`` for ``(B, T, F)``), or with ``full_rank_ok`` the input's whole shape."""
    if mask is None:
        return None
    if not isinstance(mask, (list, tuple)):
        raise TypeError(f"{who}: mask must be a list with one mask (or None) per input, "
                        f"got {type(mask).__name__}")
    if len(mask) != len(inputs):
        raise ValueError(f"{who}: mask must have one entry per input ({len(inputs)}), "
                         f"got {len(mask)}")
    checked = []
    for k, (m, x) in enumerate(zip(mask, inputs)):
        if m is None:
            checked.append(None)
            continue
        m = np.asarray(m)
        if m.shape != x.shape[:-1] and not (full_rank_ok and m.shape == x.shape):
            raise ValueError(f"{who}: mask {k} must have shape {x.shape[:-1]} (input {k}'s "
                             f"shape {x.shape} without its last axis), got {m.shape}")
        checked.append(m.astype(bool))
    return checked


def _or_masks(masks):
    """The OR of the masks, or None when there are none or one of them is None."""
    if masks is None or any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = np.logical_or(out, m)
    return out


class Merge(Layer):
    """Base of the element-wise merges: broadcasting, mask checks, per-input gradients.

    Subclasses implement ``_merge(xs, masks) -> (y, saved)`` on inputs already brought to one
    rank (masks broadcast to their inputs' shapes, entries None) and
    ``_merge_backward(dy, xs, masks, saved) -> [dx_i]`` (each broadcastable to the output).
    """

    multi_input = True

    def build(self, input_shape):
        build_multi(self, input_shape)
    min_inputs = 1
    max_inputs = None

    def check_input_shapes(self, shapes):
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            count = (f"exactly {self.min_inputs}" if self.min_inputs == self.max_inputs
                     else f"at least {self.min_inputs}")
            raise ValueError(f"{self.who} must be called on a list of {count} inputs, got {n}")
        if any(len(s) < 1 for s in shapes):
            raise ValueError(f"{self.who}: every input needs a batch axis, got shapes {shapes}")
        if len({s[0] for s in shapes}) > 1:
            raise ValueError(f"{self.who} cannot merge inputs with different batch sizes, "
                             f"got shapes {shapes}")
        self._output_shape(shapes)

    def _output_shape(self, shapes):
        """The broadcast shape of the inputs (Keras's rule); ValueError if they do not fit."""
        ndim = max(len(s) for s in shapes)
        aligned = [tuple(s[:1]) + (1,) * (ndim - len(s)) + tuple(s[1:]) for s in shapes]
        out = list(aligned[0])
        for s in aligned[1:]:
            for k, (a, b) in enumerate(zip(out, s)):
                if a is None or b is None:
                    out[k] = None
                elif a == 1:
                    out[k] = b
                elif b != 1 and a != b:
                    raise ValueError(f"{self.who}: inputs have incompatible shapes {shapes}")
        return tuple(out)

    def compute_output_shape(self, input_shape):
        return self._output_shape([tuple(s) for s in input_shape])

    def call(self, inputs, training=False, mask=None):
        masks = check_mask_list(self.who, inputs, mask)
        ndim = max(x.ndim for x in inputs)
        shapes = [x.shape for x in inputs]
        xs = [_expand_after_batch(x, ndim) for x in inputs]
        if masks is not None:
            masks = [None if m is None else
                     _expand_after_batch(np.broadcast_to(m[..., None], x.shape), ndim)
                     for m, x in zip(masks, inputs)]
        y, saved = self._merge(xs, masks)
        self._cache = (shapes, xs, masks, saved) if training else None
        return y

    def backward(self, dy):
        shapes, xs, masks, saved = self._backward_cache()
        dy = np.asarray(dy, dtype=self.dtype)
        self.grads = []
        grads = self._merge_backward(dy, xs, masks, saved)
        return [_unbroadcast(np.broadcast_to(g, dy.shape), s) for g, s in zip(grads, shapes)]

    def compute_mask(self, inputs, mask=None):
        return _or_masks(check_mask_list(self.who, inputs, mask))

    def _merge(self, xs, masks):
        raise NotImplementedError

    def _merge_backward(self, dy, xs, masks, saved):
        raise NotImplementedError


class Add(Merge):
    """The element-wise sum of the inputs: [x_1, ..., x_n] (all (B, ...)) -> (B, ...)."""

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y, None

    def _merge_backward(self, dy, xs, masks, saved):
        return [dy] * len(xs)


class Subtract(Merge):
    """x_1 - x_2, for exactly two inputs of one shape (B, ...)."""

    min_inputs = max_inputs = 2

    def _merge(self, xs, masks):
        return xs[0] - xs[1], None

    def _merge_backward(self, dy, xs, masks, saved):
        return [dy, -dy]


class Average(Merge):
    """The element-wise mean of the inputs: [x_1, ..., x_n] (all (B, ...)) -> (B, ...)."""

    def _merge(self, xs, masks):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / self.dtype.type(len(xs)), None

    def _merge_backward(self, dy, xs, masks, saved):
        return [dy / self.dtype.type(len(xs))] * len(xs)


class Multiply(Merge):
    """The element-wise product of the inputs: [x_1, ..., x_n] (all (B, ...)) -> (B, ...).

    A masked step of an input counts as 1; when every input has a mask, steps masked in all
    of them are 0 in the output.
    """

    def _factors(self, xs, masks):
        if masks is None:
            return list(xs)
        one = self.dtype.type(1)
        return [x if m is None else np.where(m, x, one) for x, m in zip(xs, masks)]

    def _merge(self, xs, masks):
        factors = self._factors(xs, masks)
        y = factors[0]
        for f in factors[1:]:
            y = y * f
        real = _or_masks(masks)  # (B, ..., F) broadcast, or None
        if real is not None:
            y = np.where(real, y, self.dtype.type(0))
        return y, real

    def _merge_backward(self, dy, xs, masks, real):
        if real is not None:
            dy = np.where(real, dy, self.dtype.type(0))
        factors = self._factors(xs, masks)
        grads = []
        for i, x in enumerate(xs):
            g = dy
            for j, f in enumerate(factors):
                if j != i:
                    g = g * f  # the product of the other factors, without dividing
            if masks is not None and masks[i] is not None:
                g = np.where(masks[i], g, self.dtype.type(0))
            grads.append(g)
        return grads


class _Extremum(Merge):
    """Maximum / Minimum: at each element the extreme of the inputs that are real there."""

    largest = True

    def _merge(self, xs, masks):
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        values = np.stack([np.broadcast_to(x, shape) for x in xs])  # (n, B, ...)
        real = np.ones(values.shape, bool)  # (n, B, ...)
        if masks is not None:
            for k, m in enumerate(masks):
                if m is not None:
                    real[k] = np.broadcast_to(m, shape)
        real[0] |= ~real.any(axis=0)  # nowhere real: the first input's value
        if self.largest:
            y = np.where(real, values, -np.inf).max(axis=0)
        else:
            y = np.where(real, values, np.inf).min(axis=0)
        y = y.astype(self.dtype, copy=False)
        return y, (values, real, y)

    def _merge_backward(self, dy, xs, masks, saved):
        values, real, y = saved
        hit = real & (values == y)  # (n, B, ...)
        share = hit / hit.sum(axis=0)  # ties share the gradient (the derivatives' average)
        return list(dy * share.astype(self.dtype, copy=False))


class Maximum(_Extremum):
    """The element-wise maximum of the inputs: [x_1, ..., x_n] (all (B, ...)) -> (B, ...)."""


class Minimum(_Extremum):
    """The element-wise minimum of the inputs: [x_1, ..., x_n] (all (B, ...)) -> (B, ...)."""

    largest = False


class Concatenate(Layer):
    """Joins the inputs along ``axis`` (default -1, the features): shapes equal but there.

    The output mask joins the input masks (an input without one is real everywhere): along
    the feature axis a step is real when it is real in any input; along the time axis
    (``axis=1``) the masks are laid end to end.

    Args:
        axis: the axis to join along (not the batch axis).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    multi_input = True

    def build(self, input_shape):
        build_multi(self, input_shape)

    def __init__(self, axis: int = -1, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if not _is_int(axis):
            raise TypeError(f"{self.who}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def convert_input(self, inputs):
        return _keep_integers(self, inputs)

    def _axis(self, ndim):
        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"{self.who}: axis {self.axis} is not a non-batch axis of inputs "
                             f"of rank {ndim}")
        return axis

    def check_input_shapes(self, shapes):
        if not shapes:
            raise ValueError(f"{self.who} must be called on a list of at least 1 input")
        if len({len(s) for s in shapes}) > 1:
            raise ValueError(f"{self.who} needs inputs of one rank, got shapes {shapes}")
        axis = self._axis(len(shapes[0]))
        rest = {tuple(d for k, d in enumerate(s) if k != axis) for s in shapes}
        if len(rest) > 1:
            raise ValueError(f"{self.who} requires inputs with matching shapes except for the "
                             f"concatenation axis {self.axis}, got shapes {shapes}")

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        axis = self._axis(len(shapes[0]))
        sizes = [s[axis] for s in shapes]
        out = list(shapes[0])
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def call(self, inputs, training=False, mask=None):
        check_mask_list(self.who, inputs, mask, full_rank_ok=True)
        axis = self._axis(inputs[0].ndim)
        self._cache = (axis, [x.shape[axis] for x in inputs]) if training else None
        return np.concatenate(inputs, axis=axis)

    def backward(self, dy):
        axis, sizes = self._backward_cache()
        self.grads = []
        return np.split(np.asarray(dy, dtype=self.dtype), np.cumsum(sizes)[:-1], axis=axis)

    def compute_mask(self, inputs, mask=None):
        inputs = [np.asarray(x) for x in inputs]
        masks = check_mask_list(self.who, inputs, mask, full_rank_ok=True)
        if masks is None or all(m is None for m in masks):
            return None
        full = [np.ones(x.shape, bool) if m is None else
                (np.broadcast_to(m[..., None], x.shape) if m.ndim < x.ndim else m)
                for x, m in zip(inputs, masks)]
        return np.concatenate(full, axis=self._axis(inputs[0].ndim)).any(axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Layer):
    """Dot products of two inputs along ``axes`` (an int, or one axis per input).

    x_1: (B, ..., d), x_2: (B, ..., d) -> the batched tensordot over the chosen axes, e.g.
    (B, T1, D) and (B, T2, D) with ``axes=2`` -> (B, T1, T2). With ``normalize=True`` both
    inputs are first L2-normalised along their axis, so the products are cosine similarities.

    Args:
        axes: the axis of both inputs to multiply along, or one axis per input.
        normalize: L2-normalise both inputs along those axes first (cosine similarity).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    multi_input = True

    def build(self, input_shape):
        build_multi(self, input_shape)

    def __init__(self, axes: int | list[int], normalize: bool = False, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if _is_int(axes):
            axes = int(axes)
        elif (isinstance(axes, (list, tuple)) and len(axes) == 2 and all(_is_int(a) for a in axes)):
            axes = [int(a) for a in axes]
        else:
            raise TypeError(f"{self.who}: axes must be an int or a list of two ints, got {axes!r}")
        self.axes = axes
        self.normalize = self.flag("normalize", normalize)

    def _axes(self, shapes):
        pair = [self.axes, self.axes] if isinstance(self.axes, int) else list(self.axes)
        out = []
        for a, s in zip(pair, shapes):
            a = a % len(s) if a < 0 else a
            if not 1 <= a < len(s):
                raise ValueError(f"{self.who}: axes {self.axes} has no non-batch axis {a} in an "
                                 f"input of shape {tuple(s)}")
            out.append(a)
        return out

    def check_input_shapes(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"{self.who} must be called on a list of exactly 2 inputs, "
                             f"got {len(shapes)}")
        if any(len(s) not in (2, 3) for s in shapes):
            raise ValueError(f"{self.who} takes inputs of rank 2 or 3, got shapes {shapes}")
        if shapes[0][0] != shapes[1][0]:
            raise ValueError(f"{self.who} cannot take inputs with different batch sizes, "
                             f"got shapes {shapes}")
        a, b = self._axes(shapes)
        if shapes[0][a] != shapes[1][b]:
            raise ValueError(f"{self.who}: the dimensions along axes {self.axes} differ "
                             f"({shapes[0][a]} and {shapes[1][b]}), got shapes {shapes}")

    def compute_output_shape(self, input_shape):
        s1, s2 = (tuple(s) for s in input_shape)
        a, b = self._axes([s1, s2])
        out = s1[:a] + s1[a + 1:] + s2[1:b] + s2[b + 1:]
        return out + (1,) if len(out) == 1 else out

    def _normalized(self, x, axis):
        """x / its L2 norm along axis, the norm at least 1e-7 (Keras's epsilon)."""
        norm = np.maximum(np.sqrt((x * x).sum(axis=axis, keepdims=True)), self.dtype.type(1e-7))
        return x / norm, norm

    def call(self, inputs, training=False, mask=None):
        x1, x2 = inputs
        a, b = self._axes([x1.shape, x2.shape])
        n1 = n2 = None
        if self.normalize:
            (x1, n1), (x2, n2) = self._normalized(x1, a), self._normalized(x2, b)
        # Put the contracted axis last in x1 and second in x2: a batched matrix product.
        u = np.moveaxis(x1, a, -1)[..., None, :] if x1.ndim == 2 else np.moveaxis(x1, a, -1)
        v = np.moveaxis(x2, b, 1)[:, :, None] if x2.ndim == 2 else np.moveaxis(x2, b, 1)
        y = np.matmul(u, v)  # (B, m, n)
        y = y.reshape(self.compute_output_shape([x1.shape, x2.shape]))
        self._cache = (inputs, (x1, x2), (n1, n2), (a, b)) if training else None
        return y

    def backward(self, dy):
        (r1, r2), (x1, x2), (n1, n2), (a, b) = self._backward_cache()
        self.grads = []
        u = np.moveaxis(x1, a, -1)
        u = u[..., None, :] if x1.ndim == 2 else u  # (B, m, d)
        v = np.moveaxis(x2, b, 1)
        v = v[:, :, None] if x2.ndim == 2 else v  # (B, d, n)
        g = np.asarray(dy, dtype=self.dtype).reshape(u.shape[0], u.shape[1], v.shape[2])
        du = np.matmul(g, np.swapaxes(v, 1, 2))  # (B, m, d)
        dv = np.matmul(np.swapaxes(u, 1, 2), g)  # (B, d, n)
        d1 = np.moveaxis(du[:, 0, :] if x1.ndim == 2 else du, -1, a)
        d2 = np.moveaxis(dv[:, :, 0] if x2.ndim == 2 else dv, 1, b)
        if self.normalize:
            d1, d2 = _normalize_grad(d1, x1, n1, a), _normalize_grad(d2, x2, n2, b)
        return [d1.reshape(r1.shape), d2.reshape(r2.shape)]

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _normalize_grad(g, y, norm, axis):
    """Gradient through y = x / max(|x|, 1e-7) along axis, from y and the norm used."""
    projected = g - y * (g * y).sum(axis=axis, keepdims=True)
    clipped = norm <= 1e-7  # there the norm is a constant
    return np.where(clipped, g, projected) / norm


def _keep_integers(layer: Layer, inputs) -> np.ndarray:
    """Layers that only move data keep integer ids as integers (as Keras casts only floats)."""
    x = np.asarray(inputs)
    if x.dtype.kind in "iub":
        return x
    return Layer.convert_input(layer, x)


def add(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
        trainable: bool = True, seed: int | None = None):
    """``Add(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Add(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def subtract(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
             trainable: bool = True, seed: int | None = None):
    """``Subtract(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Subtract(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def multiply(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
             trainable: bool = True, seed: int | None = None):
    """``Multiply(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Multiply(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def average(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
            trainable: bool = True, seed: int | None = None):
    """``Average(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Average(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def maximum(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
            trainable: bool = True, seed: int | None = None):
    """``Maximum(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Maximum(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def minimum(inputs: list, *, name: str | None = None, dtype: str | np.dtype = "float32",
            trainable: bool = True, seed: int | None = None):
    """``Minimum(name=..., ...)(inputs)``: inputs, a list of arrays, merged in one call."""
    return Minimum(name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def concatenate(inputs: list, axis: int = -1, *, name: str | None = None,
                dtype: str | np.dtype = "float32", trainable: bool = True,
                seed: int | None = None):
    """``Concatenate(axis, name=..., ...)(inputs)``: inputs joined along ``axis`` in one call."""
    return Concatenate(axis=axis, name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)


def dot(inputs: list, axes: int | list[int] = -1, normalize: bool = False,
        *, name: str | None = None, dtype: str | np.dtype = "float32",
        trainable: bool = True, seed: int | None = None):
    """``Dot(axes, normalize, name=..., ...)(inputs)``: the two inputs' products in one call."""
    return Dot(axes=axes, normalize=normalize, name=name, dtype=dtype, trainable=trainable, seed=seed)(inputs)
