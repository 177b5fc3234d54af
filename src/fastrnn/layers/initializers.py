"""Weight initialisers by Keras name: ``get(name)`` -> ``init(shape, dtype) -> np.ndarray``.

They follow Keras 3's definitions (same distributions and scales), drawing from the
library's generator ``fastrnn.utils.get_rng()`` so ``set_random_seed`` repeats them.
Shapes are Keras's: a kernel is (fan_in, fan_out), e.g. an LSTM kernel (F, 4H).
"""
from __future__ import annotations

import numpy as np

from fastrnn.utils import get_rng

# Keras divides by this constant so that a normal truncated at two standard deviations
# keeps the requested variance.
_TRUNCATION_STD = 0.87962566103423978


def _fans(shape):
    """(fan_in, fan_out) of a kernel shape, as Keras computes them."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(shape, stddev):
    """Normal(0, stddev) with draws beyond two standard deviations redrawn."""
    rng = get_rng()
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * stddev


def zeros(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype):
    return np.ones(shape, dtype=dtype)


def random_uniform(shape, dtype):
    """Uniform in [-0.05, 0.05] (Keras's 'uniform', the Embedding default)."""
    return get_rng().uniform(-0.05, 0.05, size=shape).astype(dtype)


def random_normal(shape, dtype):
    """Normal(0, 0.05), Keras's 'normal'."""
    return (0.05 * get_rng().standard_normal(shape)).astype(dtype)


def truncated_normal(shape, dtype):
    return _truncated_normal(shape, 0.05).astype(dtype)


def _variance_scaling(name: str, scale: float, fan: str, distribution: str, doc: str):
    """The initializer ``name``: variance ``scale / max(1, n)``, n the kernel's fan_in, fan_out or
    their mean (``fan``); ``distribution`` 'uniform', or 'normal' truncated at two standard
    deviations (Keras's VarianceScaling with 'truncated_normal')."""

    def init(shape, dtype):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[fan]
        variance = scale / max(1.0, n)
        if distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return get_rng().uniform(-limit, limit, size=shape).astype(dtype)
        return _truncated_normal(shape, np.sqrt(variance) / _TRUNCATION_STD).astype(dtype)

    init.__name__ = init.__qualname__ = name
    init.__doc__ = doc
    return init


glorot_uniform = _variance_scaling("glorot_uniform", 1.0, "fan_avg", "uniform",
                                   "Uniform in +-sqrt(6 / (fan_in + fan_out)): the Keras default for kernels.")
glorot_normal = _variance_scaling("glorot_normal", 1.0, "fan_avg", "normal",
                                  "Truncated normal of variance 2 / (fan_in + fan_out).")
he_uniform = _variance_scaling("he_uniform", 2.0, "fan_in", "uniform", "Uniform in +-sqrt(6 / fan_in).")
he_normal = _variance_scaling("he_normal", 2.0, "fan_in", "normal", "Truncated normal of variance 2 / fan_in.")
lecun_uniform = _variance_scaling("lecun_uniform", 1.0, "fan_in", "uniform", "Uniform in +-sqrt(3 / fan_in).")
lecun_normal = _variance_scaling("lecun_normal", 1.0, "fan_in", "normal", "Truncated normal of variance 1 / fan_in.")


def orthogonal(shape, dtype):
    """A matrix with orthonormal rows or columns (Keras's default for recurrent kernels).

    For a recurrent kernel (H, G*H), as in Keras, a (G*H, H) matrix with orthonormal
    columns is drawn and transposed, so the H rows are orthonormal.
    """
    rows = int(np.prod(shape[:-1]))
    cols = shape[-1]
    a = get_rng().standard_normal((max(rows, cols), min(rows, cols)))  # (big, small)
    q, r = np.linalg.qr(a)  # q: (big, small) with orthonormal columns
    q = q * np.sign(np.diag(r))  # make the decomposition unique, as Keras does
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


_BY_NAME = {
    "zeros": zeros,
    "ones": ones,
    "uniform": random_uniform,
    "random_uniform": random_uniform,
    "normal": random_normal,
    "random_normal": random_normal,
    "truncated_normal": truncated_normal,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
}


def get(identifier):
    """A name from Keras's list (case-insensitive, CamelCase allowed) or a callable(shape, dtype).

    Unknown names raise ValueError listing the valid ones.
    """
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(f"an initializer must be a name or a callable, got {identifier!r}")
    key = _snake(identifier)
    if key not in _BY_NAME:
        raise ValueError(f"unknown initializer {identifier!r}; valid names: {sorted(_BY_NAME)}")
    return _BY_NAME[key]


def serialize(init, default: str) -> str:
    """The name to save for an initializer. A custom callable is saved as ``default``:
    a saved model's weights replace whatever it drew, so only the name matters."""
    return init if isinstance(init, str) else default


def _snake(name):
    """'GlorotUniform' -> 'glorot_uniform'; snake_case names are unchanged."""
    out = []
    for k, ch in enumerate(name):
        if ch.isupper() and k > 0 and name[k - 1].islower():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
