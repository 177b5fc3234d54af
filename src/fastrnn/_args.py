"""Argument checking shared by ``fastrnn.reference`` and ``fastrnn.ops``.

Both implementations of ``rnn_forward`` / ``rnn_backward`` call these checks first, so
they accept exactly the same inputs and fail with exactly the same messages:

- TypeError for the wrong kind of object or dtype (arrays must be ``numpy.ndarray`` of
  float32 or float64, all of ``x``'s dtype; ``lengths`` must hold integers, ``mask`` bools
  or uint8),
- ValueError for wrong shapes or values; the message names the argument and the shape
  it should have.

Shape letters are those of ``fastrnn.modes``: ``T`` steps, ``B`` batch, ``I`` inputs,
``H`` hidden units, ``G`` gates. NaN and inf are not looked for; they propagate.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from fastrnn._checks import check_int, check_real
from fastrnn.modes import ACTIVATION_ALIASES, ACTIVATIONS, GATES, MODES, PARAMS, RECURRENT_ACTIVATION, STATES

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True, eq=False)  # eq=False: fields are arrays
class ForwardArgs:
    """The checked arguments of ``rnn_forward`` and the sizes read from them."""

    mode: str
    G: int
    dtype: np.dtype
    T: int
    B: int
    I: int  # noqa: E741 (the shape letter used everywhere)
    H: int
    x: np.ndarray  # (T, B, I) as given (no copy)
    h0: np.ndarray | None  # (B, H)
    c0: np.ndarray | None  # (B, H), LSTM only
    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None  # (G*H,)
    b_hh: np.ndarray | None  # (G*H,)
    lengths: np.ndarray | None  # (B,) int64, a private copy
    mask: np.ndarray | None  # (T, B) uint8, 1 at real steps, a private C-contiguous copy
    reverse: bool
    training: bool
    activation: str  # the mode's own unless another was given
    recurrent_activation: str | None  # None for the modes without gates (rnn_*)
    params: dict  # name -> (width*H,) as given, the mode's parameter vectors (PARAMS) in order
    recurrent_masks: np.ndarray | None = None  # (G, B, H) as given, C-contiguous
    input_masks: np.ndarray | None = None  # (G, B, I) as given, C-contiguous
    checkpoint_every: int | None = None  # None: chosen by the memory limit; 0: every step kept
    return_sequences: bool = True  # False: no y, and backward takes no dy
    zoneout: float = 0.0  # in [0, 1): h keeps its value with this probability (modes.py)
    zoneout_seed: int = 0  # in [0, 2**64): the seed of zoneout's draws


def check_forward(mode, x, h0, w_ih, w_hh, b_ih, b_hh, c0, lengths, reverse, training,
                  mask=None, activation=None, recurrent_activation=None, recurrent_masks=None,
                  input_masks=None, params=None, checkpoint_every=None,
                  return_sequences=True, zoneout=0.0, zoneout_seed=0) -> ForwardArgs:
    """Check the arguments of ``rnn_forward`` and return them with their sizes.

    x: (T, B, I), h0: (B, H) or None, w_ih: (G*H, I), w_hh: (G*H, H),
    b_ih, b_hh: (G*H,) or None, c0: (B, H) or None (LSTM only), lengths: (B,) or None,
    mask: (T, B) or None (not both with lengths), recurrent_masks: (G, B, H) or None,
    input_masks: (G, B, I) or None, of x's dtype, params: {name: (width*H,)} for the mode's
    parameter vectors (``fastrnn.modes.PARAMS``), or None; one not given is zero;
    checkpoint_every: None or an int >= 0; return_sequences: a bool; zoneout: a real in [0, 1),
    zoneout_seed: an int in [0, 2**64).
    H is read from ``w_hh.shape[1]``. Raises TypeError / ValueError naming the argument.
    """
    G = check_mode(mode)
    x = _check_array("x", x)
    dtype = x.dtype
    _check_ndim("x", x, "(T, B, I)", 3)
    T, B, I = x.shape

    w_hh = _check_array("w_hh", w_hh, dtype)
    _check_ndim("w_hh", w_hh, "(G*H, H)", 2)
    H = w_hh.shape[1]
    for_mode = f" for mode {mode!r}"
    _check_shape("w_hh", w_hh, "(G*H, H)", (G * H, H), for_mode)
    w_ih = _check_array("w_ih", w_ih, dtype)
    _check_shape("w_ih", w_ih, "(G*H, I)", (G * H, I), for_mode)
    b_ih = _check_optional("b_ih", b_ih, dtype, "(G*H,)", (G * H,), for_mode)
    b_hh = _check_optional("b_hh", b_hh, dtype, "(G*H,)", (G * H,), for_mode)

    h0 = _check_optional("h0", h0, dtype, "(B, H)", (B, H))
    _check_cell_state("c0", c0, mode)
    c0 = _check_optional("c0", c0, dtype, "(B, H)", (B, H))

    lengths = check_lengths(lengths, T, B)
    mask = check_mask(mask, T, B)
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both (a mask can say everything lengths do)")
    recurrent_masks = _contiguous(_check_optional("recurrent_masks", recurrent_masks, dtype, "(G, B, H)",
                                                  (G, B, H), for_mode))
    input_masks = _contiguous(_check_optional("input_masks", input_masks, dtype, "(G, B, I)", (G, B, I),
                                              for_mode))
    check_bool("reverse", reverse)
    check_bool("training", training)
    activation = check_activation("activation", activation, MODES[mode].activation)
    if G == 1:
        if recurrent_activation is not None:
            raise ValueError(f"mode {mode!r} has no gates, so no recurrent_activation: got "
                             f"{recurrent_activation!r}")
    else:
        recurrent_activation = check_activation("recurrent_activation", recurrent_activation,
                                                RECURRENT_ACTIVATION)
    params = check_params(mode, params, dtype, H)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=0, allow_none=True)
    check_bool("return_sequences", return_sequences)
    zoneout = check_real("zoneout", zoneout, low=0.0, high=1.0, high_open=True)
    zoneout_seed = check_int("zoneout_seed", zoneout_seed, low=0)
    if zoneout_seed >= 2**64:
        raise ValueError(f"zoneout_seed must be < 2**64, got {zoneout_seed}")
    return ForwardArgs(mode=mode, G=G, dtype=dtype, T=T, B=B, I=I, H=H, x=x, h0=h0, c0=c0,
                       w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, lengths=lengths, mask=mask,
                       reverse=bool(reverse), training=bool(training), activation=activation,
                       recurrent_activation=recurrent_activation, recurrent_masks=recurrent_masks,
                       input_masks=input_masks, params=params, checkpoint_every=checkpoint_every,
                       return_sequences=bool(return_sequences), zoneout=zoneout, zoneout_seed=zoneout_seed)


def check_params(mode, params, dtype, H) -> dict:
    """The mode's parameter vectors from ``params`` ({name: (width*H,) or None} or None), in the
    order of ``PARAMS[mode]``, zeros for those not given; TypeError / ValueError naming the
    parameter otherwise."""
    wanted = PARAMS[mode]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays by name or None, got {type(params).__name__}")
    names = [name for name, _ in wanted]
    unknown = [name for name in params if name not in names]
    if unknown:
        has = f"has only {', '.join(map(repr, names))}" if names else "has none"
        raise ValueError(f"params: mode {mode!r} {has}, got {unknown[0]!r}")
    checked = {}
    for name, width in wanted:
        if params.get(name) is None:  # zero, as a missing bias is
            checked[name] = np.zeros(width * H, dtype=dtype)
            continue
        given = _check_array(f"params[{name!r}]", params[name], dtype)
        _check_shape(f"params[{name!r}]", given, f"({width}*H,)", (width * H,))
        checked[name] = given
    return checked


def check_activation(name, value, default) -> str:
    """An activation's name as the kernels spell it (``default`` for None, Keras's aliases
    resolved); TypeError or ValueError naming the argument ``name`` otherwise."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{name} must be the name of an activation (str) or None, got "
                        f"{type(value).__name__}")
    value = ACTIVATION_ALIASES.get(value, value)
    if value not in ACTIVATIONS:
        raise ValueError(f"{name} must be an element-wise activation, one of "
                         f"{', '.join(ACTIVATIONS + tuple(ACTIVATION_ALIASES))}; got {value!r}")
    return value


def check_backward(args: ForwardArgs, dy, dh_n, dc_n) -> tuple:
    """Check the incoming gradients of ``rnn_backward`` against the forward's ``args``.

    dy: (T, B, H) or None, dh_n: (B, H) or None, dc_n: (B, H) or None (LSTM only);
    None means zero. All must have the forward's dtype. Returns ``(dy, dh_n, dc_n)``.
    """
    T, B, H = args.T, args.B, args.H
    if dy is not None and not args.return_sequences:
        raise ValueError("dy must be None: the forward was called with return_sequences=False, "
                         "so it has no outputs y to take gradients of")
    dy = _check_optional("dy", dy, args.dtype, "(T, B, H)", (T, B, H))
    dh_n = _check_optional("dh_n", dh_n, args.dtype, "(B, H)", (B, H))
    _check_cell_state("dc_n", dc_n, args.mode)
    dc_n = _check_optional("dc_n", dc_n, args.dtype, "(B, H)", (B, H))
    return dy, dh_n, dc_n


def check_cache(cache, cache_class: type) -> None:
    """Check that ``cache`` is a workspace made by the matching ``rnn_forward``.

    A cache serves one ``rnn_backward`` (see ``claim_cache``): the kernels overwrite it with the
    gate gradients rather than allocate a second (T, B, G*H) buffer; the reference does the same.
    """
    if cache is None:
        raise ValueError("cache is None: rnn_forward was called with training=False")
    if not isinstance(cache, cache_class):
        raise TypeError(f"cache must be the cache returned by this module's rnn_forward "
                        f"({cache_class.__name__}), got {type(cache).__name__}")


class OneBackward:
    """Base of the caches: each serves one ``rnn_backward`` (see ``claim_cache``).

    A shallow copy would share the workspace that backward overwrites but not the mark that it
    did, so it is refused; ``copy.deepcopy`` copies the workspace too and makes a cache of its own.
    """

    used = False

    def __copy__(self):
        raise TypeError(f"a {type(self).__name__} cannot be shallow-copied: the copy would share the "
                        f"workspace rnn_backward overwrites; use copy.deepcopy, or run rnn_forward again")


MAX_THREADS = 2**31 - 1  # OpenMP's thread count is a C int

_claim_lock = threading.Lock()


def claim_cache(cache) -> None:
    """Mark ``cache`` used, atomically, so two threads can never both backpropagate through it."""
    with _claim_lock:
        if cache.used:
            raise RuntimeError("this cache was already used by rnn_backward (a cache serves one "
                               "backward); run rnn_forward again to backpropagate a second time")
        cache.used = True


def check_mode(mode) -> int:
    """Check ``mode`` and return its number of gates G."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, got {type(mode).__name__}")
    if mode not in GATES:
        valid = ", ".join(repr(m) for m in GATES)
        raise ValueError(f"mode must be one of {valid}, got {mode!r}")
    return GATES[mode]


def _check_cell_state(name, value, mode):
    """A cell state (c0, dc_n) is only for the modes that carry one."""
    if value is not None and "c" not in STATES[mode]:
        with_c = " or ".join(repr(m) for m, states in STATES.items() if "c" in states)
        raise ValueError(f"{name} is only for mode {with_c}, got {name} with mode {mode!r}")


def check_lengths(lengths, T: int, B: int) -> np.ndarray | None:
    """Check ``lengths`` (any array_like of integers in [0, T], shape (B,)); return an int64 copy."""
    if lengths is None:
        return None
    # A masked entry has no length to read, and a matrix is 2-D whatever it holds.
    if isinstance(lengths, (np.ma.MaskedArray, np.matrix)):
        raise TypeError(f"lengths must be a plain array of integers, got {type(lengths).__name__}")
    given = np.asarray(lengths)
    if given.size == 0 and not isinstance(lengths, np.ndarray):
        given = given.astype(np.int64)  # an empty list comes out as float64
    if given.dtype.kind not in "iu":  # bool is kind 'b', so it is refused too
        raise TypeError(f"lengths must hold integers, got dtype {given.dtype}")
    if given.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), got {given.shape}")
    outside = np.flatnonzero((given < 0) | (given > T))
    if outside.size:
        b = outside[0]
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}], got lengths[{b}] = {given[b]}")
    return np.array(given, dtype=np.int64)


def check_mask(mask, T: int, B: int) -> np.ndarray | None:
    """Check ``mask`` (a numpy.ndarray of bool or uint8, shape (T, B), nonzero at real steps);
    return a C-contiguous uint8 copy holding 0 and 1."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or isinstance(mask, (np.ma.MaskedArray, np.matrix)):
        raise TypeError(f"mask must be a plain numpy.ndarray of bool or uint8, got {type(mask).__name__}")
    if mask.dtype not in (np.dtype(bool), np.dtype(np.uint8)):
        raise TypeError(f"mask must have dtype bool or uint8, got {mask.dtype}")
    if mask.shape != (T, B):
        raise ValueError(f"mask must have shape (T, B) = ({T}, {B}), got {mask.shape} "
                         "(it is time-major, like x)")
    return np.ascontiguousarray(mask != 0, dtype=np.uint8)


def _check_array(name, a, dtype=None) -> np.ndarray:
    """A numpy.ndarray of float32/float64, and of ``dtype`` (x's) when given."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if isinstance(a, (np.ma.MaskedArray, np.matrix)):  # their semantics would be dropped silently
        raise TypeError(f"{name} must be a plain numpy.ndarray, got {type(a).__name__} (pass "
                        f"np.asarray({name}), and padding as lengths)")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but x has {dtype}")
    return a


def _contiguous(a):
    """None, or ``a`` C-contiguous (copied only where it is not): the masks are read as given."""
    return None if a is None else np.ascontiguousarray(a)


def _check_ndim(name, a, letters, ndim, sizes=""):
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D with shape {letters}{sizes}, got shape {a.shape}")


def _check_shape(name, a, letters, expected, context=""):
    """ndim first (the clearer message), then the sizes."""
    _check_ndim(name, a, letters, len(expected), f" = {expected}{context}")
    if a.shape != expected:
        raise ValueError(f"{name} must have shape {letters} = {expected}{context}, got {a.shape}")


def _check_optional(name, a, dtype, letters, expected, context=""):
    """None stays None; anything else must be a float array of ``dtype`` and shape ``expected``."""
    if a is None:
        return None
    a = _check_array(name, a, dtype)
    _check_shape(name, a, letters, expected, context)
    return a


def check_bool(name, value) -> bool:
    """A flag: a bool (NumPy's included), returned as a bool; TypeError naming it otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)
