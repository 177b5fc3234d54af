"""Keras's weights over the layers' ``params``: what a model's step needs to clip, regularize
and constrain them as Keras does.

A layer's ``params`` are kernel-layout arrays (``fastrnn.modes``); Keras has one variable per
weight of ``get_weights``, which may be more than one param (GRU's ``(2, 3H)`` bias is
``b_ih`` and ``b_hh``) and laid out differently. Each layer says which params make up each
weight (``weight_groups``), the weights' regularizers and constraints, and how to carry
Keras-layout arrays over to its params (``params_from_keras``). The functions here walk a
model's layers and their sublayers with that:

- ``variable_groups``: the params that form one variable, for ``clipnorm``;
- ``weight_penalty``: the regularizers' penalty and its gradient for each param;
- ``check_constraints`` / ``apply_constraints``: the constraints, after the optimizer step.

Penalties and constraints apply to trainable weights only, as in Keras: layers whose
``trainable`` is False, and the layers inside them, are left out, as are params not in the
list the optimizer updates.
"""
from __future__ import annotations

import numpy as np


def walk(layers, trainable_only=False, _seen=None):
    """Each layer once, then (depth first) the layers inside it; with ``trainable_only`` a layer
    that is not trainable is skipped with everything inside it."""
    seen = set() if _seen is None else _seen
    for layer in layers:
        if id(layer) in seen or (trainable_only and not layer.trainable):
            continue
        seen.add(id(layer))
        yield layer
        yield from walk(layer.sublayers, trainable_only, seen)


def _positions(params) -> dict:
    return {id(p): i for i, p in enumerate(params)}


def variable_groups(layers, params) -> list[tuple[int, ...]]:
    """Index tuples into ``params``, one per Keras variable made of more than one of them."""
    where = _positions(params)
    groups = []
    for layer in walk(layers):
        for group in layer.weight_groups():
            indices = tuple(where[id(layer.params[i])] for i in group if id(layer.params[i]) in where)
            if len(indices) > 1:
                groups.append(indices)
    return groups


def _regularized(layer):
    """(k, regularizer, param indices) for each weight of ``layer`` that has a regularizer."""
    regs = layer.weight_regularizers()
    return [(k, reg, group) for k, (reg, group) in enumerate(zip(regs, layer.weight_groups()))
            if reg is not None]


def _penalty_of(layer, k, reg, group, keras_weights, with_gradient):
    """(penalty of weight k, [(param index in layer, gradient)] or None)."""
    if reg.elementwise:  # the same sum in the kernel layout: no conversion
        arrays = [layer.params[i] for i in group]
        value = sum(reg(a) for a in arrays)
        grads = [(i, reg.gradient(a)) for i, a in zip(group, arrays)] if with_gradient else None
        return value, grads
    weight = keras_weights[k]
    value = reg(weight)
    if not with_gradient:
        return value, None
    keras_grads = [np.zeros_like(w) for w in keras_weights]
    keras_grads[k] = reg.gradient(weight)
    param_grads = layer.params_from_keras(keras_grads)
    return value, [(i, param_grads[i]) for i in group]


def weight_penalties(layer) -> list[float]:
    """The penalty of each regularized trainable weight of ``layer`` and the layers in it."""
    values = []
    for sub in walk([layer], trainable_only=True):
        regularized = _regularized(sub)
        keras_weights = sub.get_weights() if any(not r.elementwise for _, r, _ in regularized) else None
        values.extend(_penalty_of(sub, k, reg, group, keras_weights, False)[0]
                      for k, reg, group in regularized)
    return values


def weight_penalty(layers, params) -> tuple[float, dict]:
    """(the regularizers' total penalty, {index into params: its gradient}) over the trainable
    weights of ``layers`` that are in ``params``."""
    where = _positions(params)
    total, grads = 0.0, {}
    for layer in walk(layers, trainable_only=True):
        regularized = [r for r in _regularized(layer) if all(id(layer.params[i]) in where for i in r[2])]
        if not regularized:
            continue
        keras_weights = layer.get_weights() if any(not r.elementwise for _, r, _ in regularized) else None
        for k, reg, group in regularized:
            value, param_grads = _penalty_of(layer, k, reg, group, keras_weights, True)
            total += value
            for i, g in param_grads:
                j = where[id(layer.params[i])]
                grads[j] = g if j not in grads else grads[j] + g
    return total, grads


def _constrained(layers, params):
    """(layer, [(k, constraint, param indices)]) for the layers with constrained trainable
    weights in ``params``."""
    where = _positions(params)
    found = []
    for layer in walk(layers, trainable_only=True):
        cons = [(k, c, group) for k, (c, group) in enumerate(zip(layer.weight_constraints(),
                                                                  layer.weight_groups()))
                if c is not None and all(id(layer.params[i]) in where for i in group)]
        if cons:
            found.append((layer, cons))
    return found


def check_constraints(layers, params) -> None:
    """ValueError when a constraint does not fit its weight's shape; before a step, so that a
    step is not left half applied."""
    for layer, cons in _constrained(layers, params):
        shapes = layer.weight_shapes()
        for k, constraint, _ in cons:
            constraint.check_shape(shapes[k], layer.who)


def apply_constraints(layers, params) -> None:
    """Replace each constrained trainable weight by its projection (after an optimizer step)."""
    for layer, cons in _constrained(layers, params):
        if all(c.elementwise for _, c, _ in cons):
            for _, constraint, group in cons:  # elementwise: in place, in the kernel layout
                for i in group:
                    layer.params[i][...] = constraint(layer.params[i])
            continue
        weights = layer.get_weights()
        for k, constraint, _ in cons:
            weights[k] = constraint(weights[k])
        layer.assign_weights(weights)
