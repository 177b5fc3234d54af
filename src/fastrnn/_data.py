"""The arrays given to a model: x and y as one array, a list or a dict, checked, sliced in
batches, and matched to the model's inputs and outputs by position or by name."""
from __future__ import annotations

import numpy as np

from fastrnn.keras_tensor import flatten, pack_like


def as_data(data):
    """Arrays as given (lists/tuples/dicts of arrays kept as structures), leaves as ndarrays.
    A list holding no arrays is one array (nested lists of numbers)."""
    if isinstance(data, dict):
        return {k: as_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and any(isinstance(v, (np.ndarray, dict, list, tuple))
                                               and not is_number_list(v) for v in data):
        return [as_data(v) for v in data]
    return np.asarray(data)


def is_number_list(v):
    return isinstance(v, (list, tuple)) and not any(isinstance(e, (np.ndarray, dict)) for e in flatten(v))


def arrays_for(data, names, what, kind, letter, optional=()):
    """The user's x or y for a graph model -> a list of arrays, one per input or output."""
    n = len(names)
    if isinstance(data, dict):
        missing = [name for name in names if name not in data and name not in optional]
        if missing:
            raise ValueError(f"{what}: {letter} is a dict without the {kind}(s) {missing}; the "
                             f"model's {kind} names are {names}, got keys {sorted(data)}")
        return [np.asarray(data[name]) if name in data else None for name in names]
    if isinstance(data, (list, tuple)) and (n > 1 or (len(data) == 1 and isinstance(data[0], np.ndarray))):
        if len(data) != n:
            raise ValueError(f"{what}: the model has {n} {kind}(s) {names}, got {len(data)} "
                             f"arrays in {letter}")
        return [np.asarray(a) for a in data]
    if n != 1:
        raise ValueError(f"{what}: the model has {n} {kind}s {names}: give {letter} as a list "
                         f"of {n} arrays or a dict keyed by those names")
    return [np.asarray(data)]


def optional(targets):
    return [] if targets is None else [t.name for t in targets if t.loss is None]


def same_length(leaves, names, what, letter):
    lengths = [len(a) for a in leaves]
    if len(set(lengths)) > 1:
        detail = ", ".join(f"{n.strip() or letter} {length}" for n, length in zip(names, lengths))
        raise ValueError(f"{what}: the arrays of {letter} must have the same number of samples, "
                         f"got {detail}")


def length(data) -> int:
    return len(flatten(data)[0])


def take(data, rows):
    """The rows ``rows`` of every array in ``data`` (None entries stay None)."""
    if isinstance(data, list) and all(isinstance(a, np.ndarray) or a is None for a in data):
        return [None if a is None else a[rows] for a in data]
    return pack_like(data, [None if a is None else a[rows] for a in flatten(data)])


def shapes_of(x):
    if isinstance(x, np.ndarray):
        return [None, *x.shape[1:]]
    if isinstance(x, dict):
        return {k: shapes_of(v) for k, v in x.items()}
    return [shapes_of(v) for v in x]


def json_shapes(shape):
    if isinstance(shape, dict):
        return {k: json_shapes(v) for k, v in shape.items()}
    if is_shape(shape):
        return [None if d is None else int(d) for d in shape]
    return [json_shapes(s) for s in shape]


def is_shape(shape) -> bool:
    return isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, (int, np.integer))
                                                    for d in shape)


def zeros_like_shapes(shape):
    if isinstance(shape, dict):
        return {k: zeros_like_shapes(v) for k, v in shape.items()}
    if is_shape(shape):
        return np.zeros([1 if d is None else int(d) for d in shape])
    return [zeros_like_shapes(s) for s in shape]


def times_mask(weights, mask):
    """Sample weights (B,) or (B, T) (or None) times an output mask (B, T) (or None): the
    weights of a weighted metric, as Keras combines them."""
    if weights is None or mask is None:
        return weights if mask is None else mask
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2 and w.shape[-1] == 1 and mask.ndim == 2 and mask.shape[-1] != 1:
        w = w[:, 0]
    w = w.reshape(w.shape + (1,) * (mask.ndim - w.ndim))
    return w * mask


def take_weights(weights, rows):
    """The rows ``rows`` of sample weights: None, an array, or a list of arrays (or None)."""
    if weights is None:
        return None
    if isinstance(weights, np.ndarray):
        return weights[rows]
    return [None if w is None else w[rows] for w in weights]
