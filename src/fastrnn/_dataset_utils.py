"""Keras's data utilities: ``to_categorical``, ``normalize`` and ``timeseries_dataset_from_array``
(offered in ``fastrnn.utils``)."""
from __future__ import annotations

import numpy as np

from fastrnn._data_adapters import PyDataset


def to_categorical(x, num_classes=None) -> np.ndarray:
    """Class ids (...,) or (..., 1) -> one-hot float64 (..., num_classes), as Keras's.

    num_classes: None (or 0) for ``max(x) + 1``.
    """
    x = np.array(x, dtype=np.int64)
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = tuple(shape[:-1])
    x = x.reshape(-1)
    if not num_classes:
        if x.size == 0:
            raise ValueError("to_categorical: num_classes is needed for an empty x")
        num_classes = int(np.max(x)) + 1
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: class ids must be in [0, {num_classes}), got "
                         f"[{x.min()}, {x.max()}]")
    out = np.zeros((x.shape[0], int(num_classes)))
    out[np.arange(x.shape[0]), x] = 1
    return out.reshape(shape + (int(num_classes),))


def normalize(x, axis=-1, order=2) -> np.ndarray:
    """x divided by its ``order``-norm along ``axis`` (zero norms left as 1), as Keras's."""
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    axis = axis or -1  # Keras's rule (axis=0 means the last axis there too)
    return x / np.expand_dims(norm, axis)


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"timeseries_dataset_from_array: {name} must be an int, got {value!r}")


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Windows over a series as a dataset of batches, as Keras's function of the same name.

    data: (N, ...) with time on axis 0. Window i starts at step ``start_index + p_i`` with
    ``p_i = i * sequence_stride`` and holds the steps ``p_i, p_i + sampling_rate, ...``
    (``sequence_length`` of them) of ``data[start_index:end_index]``; its target is
    ``targets[start_index + p_i]`` (targets None: the batches are x only). There are
    ``min(end - start - (sequence_length - 1) * sampling_rate, len(targets))`` start steps
    before the stride. shuffle: the windows' order drawn with ``np.random.RandomState(seed)``
    as Keras draws it (Keras's tf.data version also shuffles the windows again in a buffer,
    which this one does not). batch_size: windows per batch (None: one window at a time).

    Returns a ``PyDataset``: ``len(ds)`` batches of ``x: (batch, sequence_length, ...)`` and
    ``y: (batch, ...)``, which ``fit``, ``evaluate`` and ``predict`` take as x.
    """
    for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                        ("sampling_rate", sampling_rate)):
        _check_positive_int(name, value)
    for name, value in (("batch_size", batch_size), ("start_index", start_index),
                        ("end_index", end_index)):
        if value is not None:
            _check_positive_int(name, value)
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError("timeseries_dataset_from_array: data must have a time axis, got a scalar")
    n = len(data)
    if start_index:
        if start_index < 0:
            raise ValueError(f"start_index must be 0 or greater, got start_index={start_index}")
        if start_index >= n:
            raise ValueError(f"start_index must be lower than the length of the data, got "
                             f"start_index={start_index} for data of length {n}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(f"end_index must be higher than start_index, got "
                             f"start_index={start_index} and end_index={end_index}")
        if end_index >= n:
            raise ValueError(f"end_index must be lower than the length of the data, got "
                             f"end_index={end_index} for data of length {n}")
    if end_index is not None and end_index <= 0:
        raise ValueError(f"end_index must be higher than 0, got end_index={end_index}")
    if sequence_length <= 0:
        raise ValueError(f"sequence_length must be higher than 0, got {sequence_length}")
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be higher than 0, got sampling_rate={sampling_rate}")
    if sampling_rate >= n:
        raise ValueError(f"sampling_rate must be lower than the length of the data, got "
                         f"sampling_rate={sampling_rate} for data of length {n}")
    if sequence_stride <= 0:
        raise ValueError(f"sequence_stride must be higher than 0, got sequence_stride={sequence_stride}")
    if sequence_stride >= n:
        raise ValueError(f"sequence_stride must be lower than the length of the data, got "
                         f"sequence_stride={sequence_stride} for data of length {n}")
    if batch_size is not None and batch_size <= 0:
        raise ValueError(f"batch_size must be higher than 0 or None, got {batch_size}")
    start = 0 if start_index is None else int(start_index)
    end = n if end_index is None else int(end_index)
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        count = min(count, len(targets))
    positions = np.arange(0, max(count, 0), sequence_stride)
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(positions)
    return _Windows(data[start:end], None if targets is None else targets[start:end], positions,
                    int(sequence_length), int(sampling_rate), batch_size)


class _Windows(PyDataset):
    """The batches of ``timeseries_dataset_from_array``."""

    def __init__(self, data, targets, positions, sequence_length, sampling_rate, batch_size):
        super().__init__()
        self.data, self.targets, self.positions = data, targets, positions
        self.steps = np.arange(sequence_length) * sampling_rate  # offsets within a window
        self.batch_size = batch_size

    def __len__(self):
        if self.batch_size is None:
            return len(self.positions)
        return -(-len(self.positions) // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        size = 1 if self.batch_size is None else self.batch_size
        starts = self.positions[index * size:(index + 1) * size]
        x = self.data[starts[:, None] + self.steps]  # (batch, sequence_length, ...)
        if self.batch_size is None:
            x = x[0]
        if self.targets is None:
            return x
        y = self.targets[starts]
        return x, (y[0] if self.batch_size is None else y)

    def __iter__(self):
        for index in range(len(self)):
            yield self[index]
