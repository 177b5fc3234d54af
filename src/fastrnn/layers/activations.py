"""Activations for ``Dense``, each with the derivative its backward pass needs.

``get(name)`` returns an ``Activation`` with ``forward(a) -> y`` and
``backward(dy, y) -> da``. Every backward here is written in terms of the output
``y`` only, so a layer keeps just its output for the backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Activation:
    name: str
    forward: Callable  # a: (..., U) -> y: (..., U)
    backward: Callable  # (dy, y) -> da, all (..., U)


def _sigmoid(a):
    # tanh form: no overflow warning for large |a|, and exact in both tails.
    return 0.5 * (1 + np.tanh(0.5 * a))


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True))  # (..., U), shifted for stability
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_backward(dy, y):
    # Jacobian of softmax is diag(y) - y y^T, applied to dy without forming it.
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


_ACTIVATIONS = {
    "linear": Activation("linear", lambda a: a, lambda dy, y: dy),
    "relu": Activation("relu", lambda a: np.maximum(a, 0), lambda dy, y: dy * (y > 0)),
    "tanh": Activation("tanh", np.tanh, lambda dy, y: dy * (1 - y * y)),
    "sigmoid": Activation("sigmoid", _sigmoid, lambda dy, y: dy * y * (1 - y)),
    "softmax": Activation("softmax", _softmax, _softmax_backward),
}


def get(name) -> Activation:
    """'linear' (also None), 'relu', 'tanh', 'sigmoid' or 'softmax'; else ValueError."""
    if name is None:
        name = "linear"
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str) or None, got {name!r}")
    if name.lower() not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name.lower()]
