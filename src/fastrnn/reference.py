"""The NumPy reference: ``rnn_forward`` and ``rnn_backward`` written plainly, one step at a time.

This module is the ground truth that ``fastrnn.ops`` (the C++ kernels) is tested against,
so it favours being obviously right over being fast: a Python loop over time steps,
the cell equations of ``fastrnn.modes`` spelled out per mode, and backpropagation
through time written by hand. Both modules have the same API and the same argument
checks (``fastrnn._args``).

Each cell is a pair of small functions working on the two gate pre-activations

    gi = x_t @ w_ih.T + b_ih    (B, G*H)    the input's share
    gh = h @ w_hh.T + b_hh      (B, G*H)    the recurrent share

- ``forward(gi, gh, h, c) -> (h_new, c_new, saved)``
- ``backward(dh_new, dc_new, h, c, saved) -> (dgi, dgh, dh, dc)``, where ``dgi``/``dgh``
  are the gradients of ``gi``/``gh`` and ``dh``/``dc`` the gradients of the previous state
  along every path that does not go through ``gh`` (GRU's ``z * h``, LSTM's ``f * c``).

The shared loop turns ``dgi``/``dgh`` into the gradients of x, the weights and the state.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fastrnn._args import ForwardArgs, OneBackward, check_backward, check_cache, check_forward, claim_cache
from fastrnn.modes import STATES

__all__ = ["rnn_forward", "rnn_backward"]


def rnn_forward(mode: str, x: np.ndarray, h0: np.ndarray | None, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None,
                *, c0: np.ndarray | None = None, lengths: ArrayLike | None = None,
                mask: np.ndarray | None = None, reverse: bool = False, training: bool = True,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, _ReferenceCache | None]:
    """Run a recurrent layer over a time-major batch.

    mode: 'rnn_tanh', 'rnn_relu', 'lstm' or 'gru' (equations in ``fastrnn.modes``).
    x: (T, B, I) input. h0: (B, H) initial state, None for zeros.
    w_ih: (G*H, I), w_hh: (G*H, H), b_ih, b_hh: (G*H,) or None (no bias); PyTorch's layout
    and gate order. H is ``w_hh.shape[1]``.
    c0: (B, H) initial cell state, LSTM only; None for zeros.
    lengths: None, or (B,) integers in [0, T]. Steps ``t >= lengths[b]`` are padding: they leave
    sequence b's state unchanged and output zeros, so ``h_n`` is the state after the last
    valid step (PyTorch's packed sequences).
    mask: None, or (T, B) bool or uint8, time-major like x: step t of sequence b is real where
    ``mask[t, b]`` is nonzero. Any pattern (padding before, after, holes; all-masked rows):
    a masked step leaves the state unchanged and outputs zeros, as padding does. Give
    lengths or mask, not both. Equivalent: ``mask[t, b] = t < lengths[b]``.
    reverse: process the steps from T-1 back to 0; outputs stay at their own time positions
    and the mask is read at each step's own position (so with lengths each sequence's
    valid part runs from its last valid step back to step 0).
    training: keep the workspace ``rnn_backward`` needs; with False ``cache`` is None.

    Returns ``(y, h_n, c_n, cache)`` with y: (T, B, H), h_n: (B, H), c_n: (B, H) for LSTM
    and None otherwise. All arrays have x's dtype (float32 or float64) and are computed in it.
    Inputs are never written to; the cache refers to x and the weights, so leave them
    unchanged until ``rnn_backward``. NaN and inf are not checked for: they propagate.
    """
    args = check_forward(mode, x, h0, w_ih, w_hh, b_ih, b_hh, c0, lengths, reverse, training, mask)
    cell_forward, _ = _CELLS[mode]
    x, w_ih, w_hh = args.x, args.w_ih, args.w_hh
    b_ih, b_hh = _bias(args, args.b_ih), _bias(args, args.b_hh)  # (G*H,) each
    h = _state(args, args.h0)  # (B, H)
    c = _state(args, args.c0) if "c" in STATES[mode] else None  # (B, H) or None
    valid = _valid_steps(args)  # (T, B, 1)

    y = np.zeros((args.T, args.B, args.H), dtype=args.dtype)  # (T, B, H)
    saved = [None] * args.T  # per step: (h, c, what the cell needs for its backward)
    for t in _processing_order(args):
        gi = x[t] @ w_ih.T + b_ih  # (B, G*H)
        gh = h @ w_hh.T + b_hh  # (B, G*H)
        h_new, c_new, cell_saved = cell_forward(gi, gh, h, c)  # (B, H), (B, H) or None
        if training:
            saved[t] = (h, c, cell_saved)
        y[t] = np.where(valid[t], h_new, 0)  # (B, H); padding outputs zeros
        h = np.where(valid[t], h_new, h)  # (B, H); padding keeps the state
        if c is not None:
            c = np.where(valid[t], c_new, c)  # (B, H)

    cache = _ReferenceCache(args, valid, saved) if training else None
    return y, h, c, cache


def rnn_backward(cache: _ReferenceCache, dy: np.ndarray | None, dh_n: np.ndarray | None = None,
                 dc_n: np.ndarray | None = None) -> dict[str, np.ndarray | None]:
    """Backpropagate through time: the gradients of a loss given those of the forward's outputs.

    cache: from ``rnn_forward(..., training=True)``.
    dy: (T, B, H) or None, dh_n: (B, H) or None, dc_n: (B, H) or None (LSTM only); None means
    zero. dy at padded or masked steps has no effect: the output there is constant.

    Returns a dict of gradients with the forward's dtype: 'x' (T, B, I), 'h0' (B, H),
    'c0' (B, H, LSTM only; the key is absent otherwise), 'w_ih' (G*H, I), 'w_hh' (G*H, H),
    'b_ih', 'b_hh' (G*H,) or None where the forward had no such bias. 'h0'/'c0' are arrays
    also when the forward's h0/c0 were None (zeros). NaN and inf propagate.
    """
    check_cache(cache, _ReferenceCache)
    args = cache.args
    dy, dh_n, dc_n = check_backward(args, dy, dh_n, dc_n)
    claim_cache(cache)
    _, cell_backward = _CELLS[args.mode]
    x, w_ih, w_hh = args.x, args.w_ih, args.w_hh
    lstm = "c" in STATES[args.mode]  # a cell state

    dx = np.zeros(x.shape, dtype=args.dtype)  # (T, B, I)
    dw_ih = np.zeros(w_ih.shape, dtype=args.dtype)  # (G*H, I)
    dw_hh = np.zeros(w_hh.shape, dtype=args.dtype)  # (G*H, H)
    db_ih = np.zeros(args.G * args.H, dtype=args.dtype)  # (G*H,)
    db_hh = np.zeros(args.G * args.H, dtype=args.dtype)  # (G*H,)
    dh = _state(args, dh_n)  # (B, H) gradient of the state after the current step
    dc = _state(args, dc_n) if lstm else None  # (B, H) or None

    for t in reversed(_processing_order(args)):
        h, c, cell_saved = cache.saved[t]  # the state before step t: (B, H), (B, H) or None
        valid = cache.valid[t]  # (B, 1)
        dh_new = dh if dy is None else dh + dy[t]  # (B, H)
        dgi, dgh, dh_prev, dc_prev = cell_backward(dh_new, dc, h, c, cell_saved)
        # Padded steps copy the state through: no gradient reaches x or the weights there.
        dgi = np.where(valid, dgi, 0)  # (B, G*H)
        dgh = np.where(valid, dgh, 0)  # (B, G*H)
        dx[t] = dgi @ w_ih  # (B, I)
        dw_ih += dgi.T @ x[t]  # (G*H, I)
        dw_hh += dgh.T @ h  # (G*H, H)
        db_ih += dgi.sum(axis=0)  # (G*H,)
        db_hh += dgh.sum(axis=0)  # (G*H,)
        dh = np.where(valid, dh_prev + dgh @ w_hh, dh)  # (B, H)
        if lstm:
            dc = np.where(valid, dc_prev, dc)  # (B, H)

    grads = {"x": dx, "h0": dh}
    if lstm:
        grads["c0"] = dc
    grads["w_ih"] = dw_ih
    grads["w_hh"] = dw_hh
    grads["b_ih"] = None if args.b_ih is None else db_ih
    grads["b_hh"] = None if args.b_hh is None else db_hh
    return grads


class _ReferenceCache(OneBackward):
    """What ``rnn_backward`` needs from a forward: the checked arguments and every step's state."""

    def __init__(self, args: ForwardArgs, valid: np.ndarray, saved: list):
        self.args = args
        self.valid = valid  # (T, B, 1) bool, step t is part of sequence b
        self.saved = saved  # per step t: (h, c, cell_saved), the state before step t


# ----------------------------------------------------------------------------------------
# Cells. Gate blocks are sliced from gi/gh in the order of fastrnn.modes.


def _sigmoid(a):
    # Written with tanh: exact, and no overflow warning for large negative a.
    return 0.5 * (1 + np.tanh(0.5 * a))


def _rnn_tanh_forward(gi, gh, h, c):
    h_new = np.tanh(gi + gh)  # (B, H)   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    return h_new, None, h_new


def _rnn_tanh_backward(dh_new, dc_new, h, c, h_new):
    da = dh_new * (1 - h_new**2)  # (B, H)
    return da, da, 0, None


def _rnn_relu_forward(gi, gh, h, c):
    a = gi + gh  # (B, H)
    h_new = np.maximum(a, 0)  # (B, H)   h' = relu(W_ih x + b_ih + W_hh h + b_hh)
    return h_new, None, a


def _rnn_relu_backward(dh_new, dc_new, h, c, a):
    da = np.where(a > 0, dh_new, 0)  # (B, H)
    return da, da, 0, None


def _lstm_forward(gi, gh, h, c):
    a_i, a_f, a_g, a_o = np.split(gi + gh, 4, axis=1)  # 4 x (B, H)
    i = _sigmoid(a_i)  # (B, H) input gate
    f = _sigmoid(a_f)  # (B, H) forget gate
    g = np.tanh(a_g)  # (B, H) candidate
    o = _sigmoid(a_o)  # (B, H) output gate
    c_new = f * c + i * g  # (B, H)
    tanh_c = np.tanh(c_new)  # (B, H)
    h_new = o * tanh_c  # (B, H)
    return h_new, c_new, (i, f, g, o, tanh_c)


def _lstm_backward(dh_new, dc_new, h, c, saved):
    i, f, g, o, tanh_c = saved  # (B, H) each
    do = dh_new * tanh_c  # (B, H)
    dc = dc_new + dh_new * o * (1 - tanh_c**2)  # (B, H) gradient of c'
    di = dc * g  # (B, H)
    df = dc * c  # (B, H)
    dg = dc * i  # (B, H)
    da = np.concatenate([di * i * (1 - i),  # through the sigmoids and tanh
                         df * f * (1 - f),
                         dg * (1 - g**2),
                         do * o * (1 - o)], axis=1)  # (B, 4H)
    return da, da, 0, dc * f


def _gru_forward(gi, gh, h, c):
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)  # 3 x (B, H)
    gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)  # 3 x (B, H)
    r = _sigmoid(gi_r + gh_r)  # (B, H) reset gate
    z = _sigmoid(gi_z + gh_z)  # (B, H) update gate
    n = np.tanh(gi_n + r * gh_n)  # (B, H) candidate, reset applied after the product
    h_new = (1 - z) * n + z * h  # (B, H)
    return h_new, None, (r, z, n, gh_n)


def _gru_backward(dh_new, dc_new, h, c, saved):
    r, z, n, gh_n = saved  # (B, H) each
    dn = dh_new * (1 - z)  # (B, H)
    dz = dh_new * (h - n)  # (B, H)
    da_n = dn * (1 - n**2)  # (B, H) gradient of n's pre-activation
    dr = da_n * gh_n  # (B, H)
    da_r = dr * r * (1 - r)  # (B, H)
    da_z = dz * z * (1 - z)  # (B, H)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
    return dgi, dgh, dh_new * z, None


_CELLS = {
    "rnn_tanh": (_rnn_tanh_forward, _rnn_tanh_backward),
    "rnn_relu": (_rnn_relu_forward, _rnn_relu_backward),
    "lstm": (_lstm_forward, _lstm_backward),
    "gru": (_gru_forward, _gru_backward),
}


# ----------------------------------------------------------------------------------------
# Small helpers of the loops.


def _bias(args: ForwardArgs, b):
    """b: (G*H,) or None -> (G*H,); no bias is a zero bias."""
    return np.zeros(args.G * args.H, dtype=args.dtype) if b is None else b


def _state(args: ForwardArgs, s):
    """s: (B, H) or None -> a fresh (B, H) array; None means zeros."""
    if s is None:
        return np.zeros((args.B, args.H), dtype=args.dtype)
    return np.array(s, dtype=args.dtype, order="C")


def _valid_steps(args: ForwardArgs) -> np.ndarray:
    """(T, B, 1) bool: step t is real for sequence b (``mask[t, b]``, or t < lengths[b]);
    all True without either.

    The same mask serves both directions: in reverse the padded steps come first and
    leave the initial state untouched.
    """
    if args.mask is not None:
        return (args.mask != 0)[:, :, None]
    if args.lengths is None:
        return np.ones((args.T, args.B, 1), dtype=bool)
    steps = np.arange(args.T)[:, None]  # (T, 1)
    return (steps < args.lengths[None, :])[:, :, None]  # (T, B, 1)


def _processing_order(args: ForwardArgs) -> range:
    """The steps in the order they are computed: T-1 down to 0 when reversed."""
    return range(args.T - 1, -1, -1) if args.reverse else range(args.T)
