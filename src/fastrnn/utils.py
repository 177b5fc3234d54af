"""Small shared helpers: the library's random generator and its seed.

Everything random in fastrnn (weight initialisation, shuffling, dropout masks)
draws from the one ``numpy.random.Generator`` that :func:`get_rng` returns, so a
single :func:`set_random_seed` call makes a whole training run repeat exactly.
"""
from __future__ import annotations

import random
from importlib import import_module

import numpy as np

# One generator for the whole library. set_random_seed reseeds it in place, so
# code that kept a reference from get_rng() sees the new seed too.
_RNG = np.random.Generator(np.random.PCG64())


def get_rng() -> np.random.Generator:
    """The library's random generator (the same object on every call)."""
    return _RNG


def set_random_seed(seed: int) -> None:
    """Reseed the library's generator so that later random draws repeat exactly.

    As Keras's ``keras.utils.set_random_seed`` does, this also seeds Python's
    ``random`` module and NumPy's legacy global generator (``np.random.seed``),
    so user code that uses those repeats as well.

    seed: a non-negative int.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}: {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)
    _RNG.bit_generator.state = np.random.PCG64(seed).state
    random.seed(seed)
    np.random.seed(seed % 2**32)  # the legacy generator only takes 32-bit seeds


# Offered here as Keras offers them, defined in the modules named (imported when first used).
_ELSEWHERE = {
    "pad_sequences": ("fastrnn.sequence", "pad_sequences"),
    "PyDataset": ("fastrnn._data_adapters", "PyDataset"),
    "Sequence": ("fastrnn._data_adapters", "PyDataset"),  # Keras's older name of PyDataset
    "to_categorical": ("fastrnn._dataset_utils", "to_categorical"),
    "normalize": ("fastrnn._dataset_utils", "normalize"),
    "timeseries_dataset_from_array": ("fastrnn._dataset_utils", "timeseries_dataset_from_array"),
}


def __getattr__(name):
    if name in _ELSEWHERE:
        module, attribute = _ELSEWHERE[name]
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'fastrnn.utils' has no attribute {name!r}")
