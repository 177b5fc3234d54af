"""Padding variable-length sequences into one batch array.

``pad_sequences`` is ``keras.utils.pad_sequences``: the same arguments, defaults
(padding and truncation at the start, ``"pre"``) and results. The recurrent layers
take any mask, so a pre-padded batch whose padding is masked
(``Embedding(mask_zero=True)``, ``Masking``) gives the same outputs as a post-padded
one. ``return_lengths=True`` also returns each row's count of real steps, for the
NumPy API's ``lengths``, which need post-padding (``padding="post"``).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

_SIDES = ("pre", "post")


def pad_sequences(
    sequences: Iterable[Sequence],
    maxlen: Optional[int] = None,
    dtype="int32",
    padding: str = "pre",
    truncating: str = "pre",
    value=0.0,
    return_lengths: bool = False,
):
    """Stack sequences of different lengths into one ``(N, T, ...)`` array.

    sequences: N sequences; each is a list/array of steps, where a step is a scalar
        or an array of shape ``S`` (the same ``S`` for all steps of all sequences).
    maxlen: T, the length of the result; None means the longest sequence's length.
        Longer sequences are cut to T.
    dtype: dtype of the result (NumPy dtype or its name; strings are allowed).
    padding: ``"pre"`` (the default, Keras's) puts the padding before each
        sequence, ``"post"`` after it.
    truncating: ``"pre"`` (the default) cuts steps from the start of a too-long
        sequence, keeping its end; ``"post"`` cuts them from its end.
    value: the padding value (0.0 by default, cast to ``dtype``; a string needs a
        string or object dtype).
    return_lengths: if True, also return ``lengths: (N,)`` int64, the number of
        real (kept) steps of each row.

    Returns ``padded: (N, T, *S)``, or ``(padded, lengths)``.
    """
    _check_side("padding", padding)
    _check_side("truncating", truncating)
    seqs = _as_step_arrays(sequences)
    if maxlen is not None:
        if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
            raise TypeError(f"maxlen must be an int or None, got {type(maxlen).__name__}")
        if maxlen < 0:
            raise ValueError(f"maxlen must be >= 0, got {maxlen}")
    lengths_in = [len(s) for s in seqs]
    t_out = max(lengths_in, default=0) if maxlen is None else int(maxlen)
    step_shape = _common_step_shape(seqs)

    dtype = np.dtype(dtype)
    _check_value_fits(dtype, value)
    padded = np.full((len(seqs), t_out) + step_shape, value, dtype=dtype)  # (N, T, *S)
    lengths = np.zeros(len(seqs), dtype=np.int64)                           # (N,)
    for row, seq in enumerate(seqs):
        kept = seq[:t_out] if truncating == "post" else seq[max(len(seq) - t_out, 0):]
        n = len(kept)
        lengths[row] = n
        if n == 0:
            continue
        if padding == "post":
            padded[row, :n] = kept
        else:
            padded[row, t_out - n:] = kept
    return (padded, lengths) if return_lengths else padded


def _check_side(name: str, side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"{name} must be 'pre' or 'post', got {side!r}")


def _as_step_arrays(sequences) -> list:
    """Each sequence as an array whose first axis is time; ValueError otherwise, as in Keras."""
    if isinstance(sequences, (str, bytes)):
        raise ValueError("sequences must be a list of sequences, got a single string")
    try:
        items = list(sequences)
    except TypeError:
        raise ValueError(
            f"sequences must be an iterable of sequences, got {type(sequences).__name__}"
        ) from None
    arrays = []
    for i, seq in enumerate(items):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise ValueError(
                f"sequences[{i}] must be a list or array of steps, got {type(seq).__name__}"
            )
        arr = np.asarray(seq)
        if arr.ndim == 0:
            raise ValueError(f"sequences[{i}] must be a list or array of steps, got a scalar")
        arrays.append(arr)
    return arrays


def _common_step_shape(seqs: list) -> tuple:
    """The shape S of one step, taken from the first non-empty sequence and checked on all."""
    shape = None
    for i, seq in enumerate(seqs):
        if len(seq) == 0:
            continue
        if shape is None:
            shape = seq.shape[1:]
        elif seq.shape[1:] != shape:
            raise ValueError(
                f"sequences[{i}] has steps of shape {seq.shape[1:]}, "
                f"but earlier sequences have steps of shape {shape}"
            )
    return () if shape is None else shape


def _check_value_fits(dtype: np.dtype, value) -> None:
    """A string padding value needs a string (or object) dtype: ValueError, as in Keras."""
    if isinstance(value, str) and dtype.kind not in ("U", "S", "O"):
        raise ValueError(
            f"value {value!r} is a string but dtype is {dtype}: pass a string dtype "
            "(e.g. dtype=object) to pad with a string"
        )
