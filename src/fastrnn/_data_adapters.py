"""Data given to ``fit``/``evaluate``/``predict`` that is not arrays: a ``PyDataset``, a Python
generator, or any other iterable of batches (a ``torch.utils.data.DataLoader`` included).

Each batch is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``, where x and y are an
array, a list/tuple of arrays or a dict of arrays (the structures ``fit`` takes for arrays).
Leaves are converted with ``np.asarray`` (torch tensors are detached and moved to the CPU first).
"""
from __future__ import annotations

import inspect
import itertools

import numpy as np

from fastrnn.utils import get_rng


class PyDataset:
    """Base class of a dataset of batches, as ``keras.utils.PyDataset``.

    A subclass implements ``__len__`` (the number of batches of an epoch) and
    ``__getitem__(index)`` (batch ``index``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``), and
    may implement ``on_epoch_begin`` / ``on_epoch_end``, which ``fit`` calls around every epoch.
    ``fit(shuffle=True)`` draws the order of the batch indices each epoch.

    workers, use_multiprocessing, max_queue_size: accepted as Keras takes them; fastrnn reads
    the batches one at a time in the calling thread (the kernels already use the cores).
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PyDataset: {name} must be an int >= 1, got {value!r}")
        if not isinstance(use_multiprocessing, (bool, np.bool_)):
            raise TypeError(f"PyDataset: use_multiprocessing must be a bool, got {use_multiprocessing!r}")
        self._workers = int(workers)
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = int(max_queue_size)

    # Keras's properties; a subclass that skips __init__ still has them.
    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    @property
    def num_batches(self):
        """The number of batches of an epoch (None if ``__len__`` is not implemented)."""
        try:
            return len(self)
        except NotImplementedError:
            return None

    def on_epoch_begin(self):
        """Called before every epoch of ``fit``."""

    def on_epoch_end(self):
        """Called after every epoch of ``fit`` (e.g. to reshuffle the samples)."""


def is_dataset(x) -> bool:
    """x is batches (a PyDataset, a generator or iterator, another iterable that is no array)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or np.isscalar(x):
        return False
    if isinstance(x, PyDataset) or inspect.isgenerator(x):
        return True
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False  # an array-like (a torch tensor): arrays
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def as_array(a):
    if a is None:
        return None
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def as_arrays(data):
    """A batch's x, y or sample_weight with every leaf an ndarray (structures kept)."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: as_arrays(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and any(not np.isscalar(v) for v in data):
        return [as_arrays(v) for v in data]
    return as_array(data)


def unpack(batch, what: str):
    """A batch -> (x, y or None, sample_weight or None), as Keras unpacks it."""
    if isinstance(batch, tuple) and len(batch) in (1, 2, 3):
        parts = list(batch) + [None] * (3 - len(batch))
        return tuple(as_arrays(p) for p in parts)
    if isinstance(batch, tuple):
        raise ValueError(f"{what}: a batch must be x, (x,), (x, y) or (x, y, sample_weight); got "
                         f"a tuple of {len(batch)} items")
    if isinstance(batch, list) and len(batch) in (2, 3) and _looks_like_pair(batch):
        parts = list(batch) + [None] * (3 - len(batch))  # a DataLoader collates tuples as lists
        return tuple(as_arrays(p) for p in parts)
    return as_arrays(batch), None, None


def _looks_like_pair(batch) -> bool:
    return all(hasattr(b, "shape") or isinstance(b, (dict, list, tuple)) or b is None for b in batch)


def class_weights_for(y, class_weight) -> np.ndarray:
    """Keras's per-sample weights (B,) from ``class_weight`` (a dict class -> weight): y is class
    ids (B,) / (B, 1) or one-hot (B, C); classes missing from the dict weigh 1."""
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    if y.ndim != 1:
        raise ValueError(f"class_weight needs one class per sample: y of shape (B,), (B, 1) or "
                         f"(B, C), got targets of shape {np.shape(y)}")
    y = np.round(y).astype(np.int64)
    return np.array([float(class_weight.get(int(c), 1.0)) for c in y], dtype=np.float32)


def check_class_weight(class_weight) -> None:
    if class_weight is None:
        return
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict of class index -> weight, got "
                        f"{type(class_weight).__name__}")
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"class_weight: the keys must be class indices (ints), got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"class_weight: the weights must be numbers, got {v!r} for class {k}")


def unsupported_with_dataset(kind: str, **given) -> None:
    """Keras's rule: targets, weights and batch size come from the dataset itself."""
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"when x is a {kind}, {name} must not be given: the dataset's batches "
                             f"hold it (got {name}={value!r})")


def kind_of(x) -> str:
    if isinstance(x, PyDataset):
        return "PyDataset"
    if inspect.isgenerator(x) or (hasattr(x, "__next__") and iter(x) is x):
        return "generator"
    return "dataset"


class DatasetAdapter:
    """Batches of one dataset, epoch after epoch.

    A PyDataset is read by index (``shuffle``: a new order of the indices every epoch) and
    told ``on_epoch_begin``/``on_epoch_end``; an iterable is iterated anew every epoch, or, when
    ``steps`` is given, continued where the last epoch stopped (started anew once exhausted); a
    generator or iterator is one stream across all epochs.
    """

    def __init__(self, data, what: str, steps=None, shuffle=False, class_weight=None, order=None):
        self.data, self.what, self.steps, self.shuffle = data, what, steps, shuffle
        self.class_weight = class_weight
        self.kind = kind_of(data)
        self.order = order  # (n, shuffle, epoch) -> an order of the n batch indices
        self._iterator = None
        self.exhausted = False  # a generator ran out of batches
        if self.kind == "generator" and class_weight is not None:
            raise ValueError(f"{what}: class_weight is not supported for Python generator inputs "
                             "(yield (x, y, sample_weight) instead)")

    def num_batches(self):
        """Batches per epoch if known (steps, else the length of the data), else None."""
        if self.steps is not None:
            return self.steps
        if self.kind == "PyDataset":
            return self.data.num_batches
        if self.kind == "dataset":
            try:
                return len(self.data)
            except TypeError:
                return None
        return None

    def epoch(self, epoch: int = 0):
        """The batches (x, y, sample_weight) of one epoch."""
        for raw in self._raw(epoch):
            x, y, sw = unpack(raw, self.what)
            if self.class_weight is not None and y is not None:
                if sw is not None:
                    raise ValueError(f"{self.what}: class_weight and batches with sample weights "
                                     "cannot be used together")
                if isinstance(y, (list, dict)):
                    raise ValueError("class_weight is only supported for models with a single output")
                sw = class_weights_for(y, self.class_weight)
            yield x, y, sw

    def begin(self):
        if self.kind == "PyDataset":
            self.data.on_epoch_begin()

    def end(self):
        if self.kind == "PyDataset":
            self.data.on_epoch_end()

    def _raw(self, epoch):
        if self.kind == "PyDataset":
            n = self.data.num_batches
            if n is None:  # an infinite PyDataset: indices 0, 1, ... up to steps
                index = 0
                while self.steps is None or index < self.steps:
                    yield self.data[index]
                    index += 1
                return
            indices = (self.order(n, self.shuffle, epoch) if self.order is not None else
                       get_rng().permutation(n) if self.shuffle else np.arange(n))
            if self.steps is not None:
                indices = [indices[k % n] for k in range(self.steps)]
            for index in indices:
                yield self.data[int(index)]
            return
        taken = 0
        while self.steps is None or taken < self.steps:
            if self._iterator is None:
                if self.kind == "generator" and self.exhausted:
                    return
                self._iterator = iter(self.data)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if self.kind == "generator":
                    self.exhausted = True
                    return
                if self.steps is None or taken == 0:
                    return
                continue  # an iterable with steps: start it again
            taken += 1
            yield batch

    def peek(self):
        """The first batch (x, y, sample_weight) without using it up: the first epoch still
        starts with it."""
        if self.kind == "PyDataset":
            return unpack(self.data[0], self.what)
        if self._iterator is None:
            self._iterator = iter(self.data)
        first = next(self._iterator, None)
        if first is None:
            raise ValueError(f"{self.what}: the data gives no batches")
        self._iterator = itertools.chain([first], self._iterator)
        return unpack(first, self.what)


class ArrayAdapter:
    """Batches of arrays x, y, sample_weight (already checked): ``batch_size`` rows each, in a
    new order every pass when ``shuffle``. ``steps``: batches per epoch, continuing into the
    next pass when ``continuing`` (fit), else the first ``steps`` of a pass (evaluation).
    Under MPI (``run``) each rank gets its part of every global batch (see ``FitRun``)."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle, steps=None, run=None,
                 continuing=True):
        from fastrnn import _data

        self._data = _data
        self.x, self.y, self.sw = x, y, sample_weight
        self.n = _data.length(x)
        self.batch_size, self.shuffle, self.steps = batch_size, shuffle, steps
        self.run, self.continuing = run, continuing
        self._stream = None
        self._passes = 0

    def num_batches(self):
        if self.steps is not None:
            return self.steps
        if self.run:
            return len(self.run.batches(np.arange(self.n), self.batch_size))
        return -(-self.n // self.batch_size)

    def begin(self):
        pass

    def end(self):
        pass

    def _pass(self, epoch):
        """The row indices of every batch of one pass over the data."""
        run, n, size = self.run, self.n, self.batch_size
        if run:
            order = run.order(n, self.shuffle, epoch) if self.continuing else np.arange(n)
            return run.batches(order, size)
        order = get_rng().permutation(n) if self.shuffle else np.arange(n)
        return [order[start:start + size] for start in range(0, n, size)]

    def _rows(self, epoch):
        if self.steps is None:
            yield from self._pass(epoch)
            return
        if not self.continuing:
            yield from self._pass(epoch)[:self.steps]
            return
        for _ in range(self.steps):
            rows = next(self._stream, None) if self._stream is not None else None
            if rows is None:
                self._stream = iter(self._pass(self._passes))
                self._passes += 1
                rows = next(self._stream)
            yield rows

    def epoch(self, epoch: int = 0):
        data = self._data
        for rows in self._rows(epoch):
            yield (data.take(self.x, rows), data.take(self.y, rows),
                   data.take_weights(self.sw, rows))
