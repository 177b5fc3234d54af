"""ONNX forms of the layers that are not recurrent: core layers, merges, reshaping, pooling,
normalization and attention.

Each emitter computes what the layer's ``call`` computes at inference and the mask its
``compute_mask`` gives, from the masks its inputs carry (see each layer's module for the
rules; they are Keras's).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from fastrnn.export.onnx_builder import FLOAT, INT64, EMITTERS, Builder, Tensor, activation, emits
from fastrnn.layers.attention import _MASKED_SHIFT, AdditiveAttention, Attention
from fastrnn.layers.core import Activation, Dense, Dropout, Embedding, Masking
from fastrnn.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                    Subtract)
from fastrnn.layers.normalization import LayerNormalization
from fastrnn.layers.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from fastrnn.layers.reshaping import Flatten, Permute, RepeatVector, Reshape
from fastrnn.layers.wrappers import TimeDistributed

# -- core layers ------------------------------------------------------------------------------


@emits(Dense)
def _dense(b, layer, x):
    y = b.op("MatMul", x.name, b.weight(layer, "kernel", layer.kernel))
    if layer.bias is not None:
        y = b.op("Add", y, b.weight(layer, "bias", layer.bias))
    y = activation(b, layer.activation.name, y, layer.who)
    return replace(x, name=y, shape=layer.compute_output_shape(x.shape))


@emits(Activation)
def _activation(b, layer, x):
    return replace(x, name=activation(b, layer.activation.name, x.name, layer.who))


@emits(Dropout)
def _dropout(b, layer, x):
    return x  # inference


@emits(Embedding, keeps_integers=True)
def _embedding(b, layer, x):
    ids = x.name if x.elem == INT64 else b.cast(x.name, INT64)
    y = b.op("Gather", b.weight(layer, "embeddings", layer.embeddings), ids, axis=0)
    mask = None
    if layer.mask_zero:
        mask = b.op("Not", b.op("Equal", ids, b.const(np.int64(0))), hint="mask")
    return Tensor(y, layer.compute_output_shape(x.shape), FLOAT, mask)


@emits(Masking)
def _masking(b, layer, x):
    differs = b.cast(b.op("Not", b.op("Equal", x.name, b.scalar(layer.mask_value))), INT64)
    count = b.op("ReduceSum", differs, b.ints(-1), keepdims=0)
    mask = b.op("Greater", count, b.const(np.int64(0)), hint="mask")  # (B, T)
    y = b.op("Mul", x.name, b.unsqueeze(b.cast(mask, FLOAT), -1))
    return replace(x, name=y, mask=mask)


@emits(TimeDistributed)
def _time_distributed(b, layer, x):
    inner = layer.layer
    folded = b.op("Reshape", x.name, b.op("Concat", b.ints(-1), b.dims(x.name, 2), axis=0))  # (B*T, ...)
    with b.scope(inner.name):
        y = EMITTERS[type(inner)](b, inner, Tensor(folded, (None, *x.shape[2:]), x.elem))
    shape = b.op("Concat", b.dims(x.name, 0, 2), b.dims(y.name, 1), axis=0)
    out = b.op("Reshape", y.name, shape)  # (B, T, ...)
    return Tensor(out, layer.compute_output_shape(x.shape), y.elem, x.mask)


# -- merges -------------------------------------------------------------------------------------

def _after_batch(b: Builder, name: str, ndim: int, target: int) -> str:
    """A value of rank ndim -> rank target: axes of size 1 inserted after the batch axis, as
    Keras's merges broadcast an input of lower rank."""
    return name if ndim == target else b.unsqueeze(name, *range(1, 1 + target - ndim))


def _or(b: Builder, masks: list) -> str | None:
    """The OR of the masks, or None when one of them is None."""
    if any(m is None for m in masks):
        return None
    out = masks[0]
    for m in masks[1:]:
        out = b.op("Or", out, m)
    return out


def _chain(b: Builder, op: str, values: list) -> str:
    out = values[0]
    for v in values[1:]:
        out = b.op(op, out, v)
    return out


@emits(Add, Subtract, Average, Multiply, Maximum, Minimum)
def _merge(b, layer, xs):
    ndim = max(x.ndim for x in xs)
    values = [_after_batch(b, x.name, x.ndim, ndim) for x in xs]
    # Each input's mask, broadcastable to it at the merged rank: (B, T) -> (B, T, 1).
    masks = [None if x.mask is None else _after_batch(b, b.unsqueeze(x.mask, -1), x.ndim, ndim) for x in xs]
    kind = type(layer)
    if kind is Add:
        y = _chain(b, "Add", values)
    elif kind is Subtract:
        y = b.op("Sub", *values)
    elif kind is Average:
        y = b.op("Div", _chain(b, "Add", values), b.scalar(len(values)))
    elif kind is Multiply:  # a masked step counts as 1; masked in every input, 0
        factors = [v if m is None else b.where(m, v, 1) for v, m in zip(values, masks)]
        y = _chain(b, "Mul", factors)
        real = _or(b, masks)
        if real is not None:
            y = b.where(real, y, 0)
    else:  # the extreme of the inputs real at each element (the first input's where none is)
        far = -np.inf if kind is Maximum else np.inf
        if all(m is None for m in masks):
            candidates = values
        else:
            real = list(masks)
            anywhere = _or(b, masks)
            if anywhere is not None:
                real[0] = b.op("Or", real[0], b.op("Not", anywhere))
            candidates = [v if m is None else b.where(m, v, far) for v, m in zip(values, real)]
        y = b.op("Max" if kind is Maximum else "Min", *candidates)
    shape = layer.compute_output_shape([x.shape for x in xs])
    return Tensor(y, shape, FLOAT, _or(b, [x.mask for x in xs]))


@emits(Concatenate, keeps_integers=True)
def _concatenate(b, layer, xs):
    if len({x.elem for x in xs}) > 1:
        xs = [b.floats(x) for x in xs]  # ids joined with floats: all floats
    axis = layer._axis(xs[0].ndim)
    y = b.op("Concat", *(x.name for x in xs), axis=axis)
    mask = None
    if any(x.mask is not None for x in xs):
        # Each input's mask over its whole shape (everywhere real without one), joined, then
        # a step is real where any of its features is.
        full = []
        for x in xs:
            shape = b.op("Shape", x.name, hint="shape")
            source = b.const(np.array(True)) if x.mask is None else b.unsqueeze(x.mask, -1)
            full.append(b.op("Expand", source, shape))
        joined = b.cast(b.op("Concat", *full, axis=axis), INT64)
        mask = b.op("Greater", b.op("ReduceSum", joined, b.ints(-1), keepdims=0), b.const(np.int64(0)),
                    hint="mask")
    return Tensor(y, layer.compute_output_shape([x.shape for x in xs]), xs[0].elem, mask)


def _l2_normalized(b: Builder, x: str, axis: int) -> str:
    """x / its L2 norm along axis, the norm at least 1e-7, as Dot(normalize=True) computes."""
    norm = b.op("Sqrt", b.reduce("ReduceSum", b.op("Mul", x, x), [axis]))
    return b.op("Div", x, b.op("Max", norm, b.scalar(1e-7)))


@emits(Dot)
def _dot(b, layer, xs):
    x1, x2 = xs
    a, c = layer._axes([x1.shape, x2.shape])
    u, v = x1.name, x2.name
    if layer.normalize:
        u, v = _l2_normalized(b, u, a), _l2_normalized(b, v, c)
    # A batched matrix product: the contracted axis last in u (B, m, d), second in v (B, d, n).
    if x1.ndim == 2:
        u = b.unsqueeze(u, 1)
    elif a == 1:
        u = b.transpose(u, 0, 2, 1)
    if x2.ndim == 2:
        v = b.unsqueeze(v, 2)
    elif c == 2:
        v = b.transpose(v, 0, 2, 1)
    y = b.op("MatMul", u, v)  # (B, m, n)
    if x1.ndim == 2 or x2.ndim == 2:
        y = b.op("Flatten", y, axis=1)  # (B, m) or (B, n), (B, 1) for two vectors
    return Tensor(y, layer.compute_output_shape([x1.shape, x2.shape]), FLOAT, None)


# -- reshaping: no masks passed on, ids kept ------------------------------------------------------

@emits(Flatten, keeps_integers=True)
def _flatten(b, layer, x):
    y = x.name
    if layer.data_format == "channels_first" and x.ndim > 2:
        y = b.transpose(y, 0, *range(2, x.ndim), 1)  # channels last, as a channels-last model
    y = b.op("Flatten", y, axis=1)
    return Tensor(y, layer.compute_output_shape(x.shape), x.elem, None)


@emits(Reshape, keeps_integers=True)
def _reshape(b, layer, x):
    target = b.op("Concat", b.dims(x.name, 0, 1), b.ints(*layer.target_shape), axis=0)
    zeros = 0 in layer.target_shape  # a size of 0 is a size, not "copy the input's" (ONNX's 0)
    y = b.op("Reshape", x.name, target, **({"allowzero": 1} if zeros else {}))
    return Tensor(y, layer.compute_output_shape(x.shape), x.elem, None)


@emits(Permute, keeps_integers=True)
def _permute(b, layer, x):
    return Tensor(b.transpose(x.name, 0, *layer.dims), layer.compute_output_shape(x.shape), x.elem, None)


@emits(RepeatVector, keeps_integers=True)
def _repeat_vector(b, layer, x):
    y = b.op("Expand", b.unsqueeze(x.name, 1), b.ints(1, layer.n, 1))  # (B, F) -> (B, n, F)
    return Tensor(y, layer.compute_output_shape(x.shape), x.elem, None)


# -- pooling ---------------------------------------------------------------------------------------

@emits(GlobalAveragePooling1D)
def _global_average(b, layer, x):
    axis = layer.steps_axis
    if x.mask is None:
        y = b.reduce("ReduceMean", x.name, [axis])
    else:  # the mean over the real steps; 0 / 0 = NaN for a sequence without any, as Keras
        real = b.unsqueeze(x.mask, 3 - axis)  # (B, T, 1), or (B, 1, T) channels first
        total = b.reduce("ReduceSum", b.where(real, x.name, 0), [axis])
        count = b.reduce("ReduceSum", b.cast(real, FLOAT), [axis])
        y = b.op("Div", total, count)
    if not layer.keepdims:
        y = b.squeeze(y, axis)
    return Tensor(y, layer.compute_output_shape(x.shape), FLOAT, None)


@emits(GlobalMaxPooling1D)
def _global_max(b, layer, x):
    y = b.reduce("ReduceMax", x.name, [layer.steps_axis], keepdims=layer.keepdims)  # every step, as Keras
    return Tensor(y, layer.compute_output_shape(x.shape), FLOAT, None)


# -- normalization ---------------------------------------------------------------------------------

@emits(LayerNormalization)
def _layer_normalization(b, layer, x):
    axes = layer._axes(x.ndim)
    ndim = x.ndim
    if not layer.rms_scaling and axes == list(range(axes[0], ndim)):
        # The trailing axes: ONNX's own LayerNormalization (opset 17), whose scale is required.
        gamma = layer.gamma if layer.gamma is not None else np.ones(layer._weight_shape(layer.input_shape))
        scale = b.weight(layer, "gamma", gamma)
        # Without beta, no third input: ONNX Runtime crashes on an empty trailing one.
        beta = [b.weight(layer, "beta", layer.beta)] if layer.beta is not None else []
        y = b.op("LayerNormalization", x.name, scale, *beta, axis=axes[0], epsilon=layer.epsilon)
        return replace(x, name=y)
    mean = b.reduce("ReduceMean", x.name, axes)
    centered = b.op("Sub", x.name, mean)
    var = b.reduce("ReduceMean", b.op("Mul", centered, centered), axes)
    inv = b.op("Div", b.scalar(1), b.op("Sqrt", b.op("Add", var, b.scalar(layer.epsilon))))
    y = b.op("Mul", x.name if layer.rms_scaling else centered, inv)  # rms_scaling keeps the mean

    def broadcast(w):  # a weight of the normalised axes' sizes -> broadcastable to x
        shape = [1] * ndim
        for a, n in zip(axes, w.shape):
            shape[a] = n
        return w.reshape(shape)

    if layer.gamma is not None:
        y = b.op("Mul", y, b.weight(layer, "gamma", broadcast(layer.gamma)))
    if layer.beta is not None:
        y = b.op("Add", y, b.weight(layer, "beta", broadcast(layer.beta)))
    return replace(x, name=y)


# -- attention -------------------------------------------------------------------------------------

def _scores(b: Builder, layer, q: str, k: str) -> str:
    """q: (B, Tq, D), k: (B, Tv, D) -> scores (B, Tq, Tv), as the layer's ``_scores``."""
    if isinstance(layer, AdditiveAttention):
        t = b.op("Tanh", b.op("Add", b.unsqueeze(q, 2), b.unsqueeze(k, 1)))  # (B, Tq, Tv, D)
        if layer.scale is not None:
            t = b.op("Mul", t, b.weight(layer, "scale", layer.scale))
        return b.reduce("ReduceSum", t, [-1], keepdims=False)
    if layer.score_mode == "dot":
        scores = b.op("MatMul", q, b.transpose(k, 0, 2, 1))
        if layer.scale is not None:
            scores = b.op("Mul", scores, b.weight(layer, "scale", layer.scale))
        return scores
    a = b.op("Add", b.unsqueeze(q, 2), b.unsqueeze(k, 1))  # (B, Tq, Tv, D)
    if layer.scale is not None:
        a = b.op("Mul", b.weight(layer, "scale", layer.scale), a)
    total = b.reduce("ReduceSum", b.op("Tanh", a), [-1], keepdims=False)
    return b.op("Mul", b.weight(layer, "concat_score_weight", layer.concat_score_weight), total)


def _allowed(b: Builder, q: str, k: str, value_mask, causal: bool):
    """Where each query step may look: (B or 1, Tq, Tv) bool, or None for everywhere."""
    allowed = None
    if causal:
        zero, one = b.const(np.int64(0)), b.const(np.int64(1))
        rows = b.op("Range", zero, b.squeeze(b.dims(q, 1, 2), 0), one)
        cols = b.op("Range", zero, b.squeeze(b.dims(k, 1, 2), 0), one)
        allowed = b.unsqueeze(b.op("GreaterOrEqual", b.unsqueeze(rows, 1), b.unsqueeze(cols, 0)), 0)
    if value_mask is not None:
        v = b.unsqueeze(value_mask, 1)  # (B, 1, Tv)
        allowed = v if allowed is None else b.op("And", allowed, v)
    return allowed


@emits(Attention, AdditiveAttention)
def _attention(b, layer, xs, return_attention_scores=False, use_causal_mask=False):
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) == 3 else v
    scores = _scores(b, layer, q.name, k.name)
    allowed = _allowed(b, q.name, k.name, v.mask, use_causal_mask)
    if allowed is not None:  # Keras takes 1e9 off a masked score
        scores = b.op("Where", allowed, scores, b.op("Sub", scores, b.scalar(_MASKED_SHIFT)))
    weights = b.op("Softmax", scores, axis=-1, hint="weights")  # (B, Tq, Tv)
    out = b.op("MatMul", weights, v.name)  # (B, Tq, Dv)
    if q.mask is not None:
        out = b.where(b.unsqueeze(q.mask, -1), out, 0)
    shapes = layer.compute_output_shape([x.shape for x in xs], return_attention_scores)
    if return_attention_scores:
        return [Tensor(out, shapes[0], FLOAT, q.mask), Tensor(weights, shapes[1], FLOAT, None)]
    return Tensor(out, shapes, FLOAT, q.mask)
