"""Checks of the public API's scalar arguments: the type and range of one value each.

Each raises TypeError for a value of the wrong type and ValueError for one out of range, the
message naming the argument and what it got, as Keras words its own checks.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def check_int(name: str, value, low: int | None = None, allow_none: bool = False) -> int | None:
    """An int (NumPy's too, bool refused) >= ``low`` -> int; None passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_real(name: str, value, low: float | None = None, high: float | None = None,
               high_open: bool = False) -> float:
    """A finite real number (bool refused) in [low, high] (or [low, high)) -> float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    value = float(value)
    above = low is None or value >= low
    below = high is None or (value < high if high_open else value <= high)
    if not (math.isfinite(value) and above and below):
        interval = f"[{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {'in ' if high is not None else ''}{interval}, got {value}")
    return value


def check_flag(name: str, value) -> bool:
    """A flag: a bool (NumPy's too), or the int 0 or 1 -> bool; TypeError naming it otherwise
    (a string such as 'False' is truthy, so it is refused rather than read)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {value!r}")


def check_seed(name: str, value) -> int | None:
    """A seed: None or an int >= 0 (what NumPy's generators take)."""
    return check_int(name, value, low=0, allow_none=True)


def resolve(name: str, get, value):
    """``get(value)`` (a module's ``get``: an initializer, regularizer, constraint or activation
    from its name, object or config), its TypeError or ValueError prefixed by ``name``."""
    try:
        return get(value)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name}: {error}") from None


def shape_tuple(shape, name: str) -> tuple:
    """A shape argument -> a tuple of ints and None (an int alone is a shape of one axis, as Keras
    takes it). TypeError when it is not a sequence; ValueError naming ``name`` for an entry that
    is not a non-negative int or None (Keras allows axes of size 0)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a tuple of ints (None where unknown), got {shape!r}")
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints (None where unknown), "
                        f"got {shape!r}") from None
    for d in dims:
        if d is None:
            continue
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise ValueError(f"{name} must hold non-negative ints or None, got {shape!r}: "
                             f"{d!r} is a {type(d).__name__}")
        if d < 0:
            raise ValueError(f"{name} must hold non-negative ints or None, got {shape!r}: "
                             "negative dimensions are not allowed")
    return tuple(None if d is None else int(d) for d in dims)


def check_fit_args(batch_size, epochs, verbose, validation_split, initial_epoch) -> None:
    """The scalar arguments of ``fit``: batch_size an int >= 1 or None, epochs and initial_epoch
    ints >= 0 (no epoch runs when initial_epoch >= epochs, as in Keras), verbose 0, 1, 2 or
    'auto', validation_split a number in [0, 1)."""
    check_int("batch_size", batch_size, low=1, allow_none=True)
    check_int("epochs", epochs, low=0)
    check_verbose(verbose)
    check_real("validation_split", validation_split, low=0.0, high=1.0, high_open=True)
    check_int("initial_epoch", initial_epoch, low=0)


def check_verbose(verbose) -> None:
    """verbose: 0, 1, 2 or 'auto' (False and True too, as 0 and 1, as Keras takes them; 1.0
    and '1' are refused)."""
    if isinstance(verbose, str):
        ok = verbose == "auto"
    else:
        ok = isinstance(verbose, (int, np.integer, np.bool_)) and verbose in (0, 1, 2)
    if not ok:
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
