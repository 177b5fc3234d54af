"""The NumPy reference: ``rnn_forward`` and ``rnn_backward`` written plainly, one step at a time.

This module is the ground truth that ``fastrnn.ops`` (the C++ kernels) is tested against,
so it favours being obviously right over being fast: a Python loop over time steps,
the cell equations of ``fastrnn.modes`` spelled out per mode, and backpropagation
through time written by hand. Both modules have the same API and the same argument
checks (``fastrnn._args``).

Each cell is a pair of small functions working on the two gate pre-activations

    gi = x_t @ w_ih.T + b_ih    (B, G*H)    the input's share
    gh = h @ w_hh.T + b_hh      (B, G*H)    the recurrent share

With masks, gate block k's share reads its input times mask k (``_product``)::

    gi_k = (x_t * input_masks[k]) @ w_ih_k.T + b_ih_k      gh_k = (h * recurrent_masks[k]) @ w_hh_k.T + b_hh_k

- ``forward(gi, gh, h, c, w, act, rec) -> (h_new, c_new, saved)``
- ``backward(dh_new, dc_new, h, c, saved, w, act, rec) -> (dgi, dgh, dh, dc, own, dp)``, where
  ``dgi``/``dgh`` are the gradients of ``gi``/``gh``, ``dh``/``dc`` the gradients of the
  previous state along every path that does not go through ``gh`` (GRU's ``z * h``, LSTM's
  ``f * c``), and ``dp`` each row's share of the gradients of the cell's parameters
  ``w.params`` (a dict by name of (width*H,) vectors: the peephole LSTM's), {name: (B, width*H)}.

A cell whose recurrent product takes something other than h (``gru_reset_before``: W_hn times
r * h) makes that product itself from ``w`` (``_Recurrent``: W_hh, b_hh and the masks by gate blocks) and
ignores gh's block there; its backward returns, in ``own``, each such product as
``(k, u, d)``: gate block k, its input u (B, H) and the gradient d (B, H) of its output, whose
share of ``dh`` it has added itself. The loop turns ``d`` into block k's weight gradients.

``act`` and ``rec`` are the activation and the recurrent activation, each an ``_Activation``
(the function and its derivative) from the table at the end of this module.

The shared loop turns ``dgi``/``dgh`` into the gradients of x, the weights and the state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from fastrnn._args import ForwardArgs, OneBackward, check_backward, check_cache, check_forward, claim_cache
from fastrnn.modes import MODES, STATES, zoneout_uniform

__all__ = ["rnn_forward", "rnn_backward"]


def rnn_forward(mode: str, x: np.ndarray, h0: np.ndarray | None, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None,
                *, c0: np.ndarray | None = None, lengths: ArrayLike | None = None,
                mask: np.ndarray | None = None, reverse: bool = False, training: bool = True,
                activation: str | None = None, recurrent_activation: str | None = None,
                recurrent_masks: np.ndarray | None = None, input_masks: np.ndarray | None = None,
                params: dict | None = None, checkpoint_every: int | None = None,
                return_sequences: bool = True, zoneout: float = 0.0, zoneout_seed: int = 0,
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, _ReferenceCache | None]:
    """Run a recurrent layer over a time-major batch.

    mode: 'rnn_tanh', 'rnn_relu', 'lstm', 'lstm_peephole', 'gru' or 'gru_reset_before' (equations in
    ``fastrnn.modes``).
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
    activation: the activation of h (rnn), of the candidate and of the cell state (LSTM), of the
    candidate (GRU); recurrent_activation: of LSTM's i, f, o and GRU's r, z. Names from
    ``fastrnn.modes.ACTIVATIONS`` (Keras's); None for the mode's own (tanh or relu, sigmoid).
    recurrent_masks: None, or (G, B, H): gate block k's recurrent product reads
    ``h * recurrent_masks[k]`` at every step (the blocks in the order of ``fastrnn.modes``);
    input_masks: None, or (G, B, I), likewise ``x_t * input_masks[k]`` for block k's input
    product. Keras's per-gate dropout masks (``recurrent_dropout``), any values, of x's dtype.
    params: the cell's parameter vectors by name (``fastrnn.modes.PARAMS``), each (width*H,):
    ``{"peephole": (3H,)}`` for 'lstm_peephole' (p_i, p_f, p_o); one not given is zero.
    checkpoint_every: None or an int >= 0, how the kernels keep what BPTT needs
    (``fastrnn.ops.rnn_forward``); checked here, and the reference keeps every step whatever it
    is, since the gradients are the same. return_sequences: False returns y as None, and
    ``rnn_backward`` then takes dy=None.
    zoneout: in [0, 1), the probability that each unit of h keeps its previous value at a step,
    drawn per step from ``zoneout_seed`` (an int in [0, 2**64)) with training, its expectation
    without (haste's zoneout; the equations in ``fastrnn.modes``). c is never zoned out.

    Returns ``(y, h_n, c_n, cache)`` with y: (T, B, H) or None, h_n: (B, H), c_n: (B, H) for LSTM
    and None otherwise. All arrays have x's dtype (float32 or float64) and are computed in it.
    Inputs are never written to; the cache refers to x and the weights, so leave them
    unchanged until ``rnn_backward``. NaN and inf are not checked for: they propagate.
    """
    args = check_forward(mode, x, h0, w_ih, w_hh, b_ih, b_hh, c0, lengths, reverse, training, mask,
                         activation, recurrent_activation, recurrent_masks, input_masks, params,
                         checkpoint_every, return_sequences, zoneout, zoneout_seed)
    cell_forward, _ = _CELLS[MODES[mode].cell]
    act, rec = _activations(args)
    x, w_ih, w_hh = args.x, args.w_ih, args.w_hh
    b_ih, b_hh = _bias(args, args.b_ih), _bias(args, args.b_hh)  # (G*H,) each
    w = _Recurrent(w_hh, b_hh, args.H, args.recurrent_masks, args.params)
    h = _state(args, args.h0)  # (B, H)
    c = _state(args, args.c0) if "c" in STATES[mode] else None  # (B, H) or None
    valid = _valid_steps(args)  # (T, B, 1)

    y = np.zeros((args.T, args.B, args.H), dtype=args.dtype)  # (T, B, H)
    saved = [None] * args.T  # per step: (h, c, what the cell needs for its backward)
    for t in _processing_order(args):
        gi = _product(x[t], w_ih, b_ih, args.input_masks)  # (B, G*H)
        gh = _product(h, w_hh, b_hh, args.recurrent_masks)  # (B, G*H)
        h_new, c_new, cell_saved = cell_forward(gi, gh, h, c, w, act, rec)  # (B, H), (B, H) or None
        h_new = _zone_out(args, t, h, h_new)  # (B, H)
        if training:
            saved[t] = (h, c, cell_saved)
        y[t] = np.where(valid[t], h_new, 0)  # (B, H); padding outputs zeros
        h = np.where(valid[t], h_new, h)  # (B, H); padding keeps the state
        if c is not None:
            c = np.where(valid[t], c_new, c)  # (B, H)

    cache = _ReferenceCache(args, valid, saved) if training else None
    return y if args.return_sequences else None, h, c, cache


def rnn_backward(cache: _ReferenceCache, dy: np.ndarray | None, dh_n: np.ndarray | None = None,
                 dc_n: np.ndarray | None = None) -> dict[str, np.ndarray | None]:
    """Backpropagate through time: the gradients of a loss given those of the forward's outputs.

    cache: from ``rnn_forward(..., training=True)``.
    dy: (T, B, H) or None, dh_n: (B, H) or None, dc_n: (B, H) or None (LSTM only); None means
    zero. dy at padded or masked steps has no effect: the output there is constant.

    Returns a dict of gradients with the forward's dtype: 'x' (T, B, I), 'h0' (B, H),
    'c0' (B, H, LSTM only; the key is absent otherwise), 'w_ih' (G*H, I), 'w_hh' (G*H, H),
    'b_ih', 'b_hh' (G*H,) or None where the forward had no such bias, and each of the cell's
    parameters under its name ('peephole' (3H,) for 'lstm_peephole'). 'h0'/'c0' are arrays
    also when the forward's h0/c0 were None (zeros). NaN and inf propagate.
    """
    check_cache(cache, _ReferenceCache)
    args = cache.args
    dy, dh_n, dc_n = check_backward(args, dy, dh_n, dc_n)
    claim_cache(cache)
    _, cell_backward = _CELLS[MODES[args.mode].cell]
    act, rec = _activations(args)
    x, w_ih, w_hh = args.x, args.w_ih, args.w_hh
    lstm = "c" in STATES[args.mode]  # a cell state
    w = _Recurrent(w_hh, None, args.H, args.recurrent_masks, args.params)

    dx = np.zeros(x.shape, dtype=args.dtype)  # (T, B, I)
    dw_ih = np.zeros(w_ih.shape, dtype=args.dtype)  # (G*H, I)
    dw_hh = np.zeros(w_hh.shape, dtype=args.dtype)  # (G*H, H)
    db_ih = np.zeros(args.G * args.H, dtype=args.dtype)  # (G*H,)
    db_hh = np.zeros(args.G * args.H, dtype=args.dtype)  # (G*H,)
    dh = _state(args, dh_n)  # (B, H) gradient of the state after the current step
    dc = _state(args, dc_n) if lstm else None  # (B, H) or None
    dparams = {name: np.zeros_like(p) for name, p in args.params.items()}  # (width*H,) each

    for t in reversed(_processing_order(args)):
        h, c, cell_saved = cache.saved[t]  # the state before step t: (B, H), (B, H) or None
        valid = cache.valid[t]  # (B, 1)
        dh_new = dh if dy is None else dh + dy[t]  # (B, H)
        dh_new, dh_kept = _zone_out_grad(args, t, dh_new)  # to the cell's h', to h where kept
        dgi, dgh, dh_prev, dc_prev, own, dp = cell_backward(dh_new, dc, h, c, cell_saved, w, act, rec)
        dh_prev = dh_prev + dh_kept
        # Padded steps copy the state through: no gradient reaches x or the weights there.
        dgi = np.where(valid, dgi, 0)  # (B, G*H)
        dgh = np.where(valid, dgh, 0)  # (B, G*H)
        dx[t], dw = _product_grads(dgi, x[t], w_ih, args.input_masks)  # (B, I), (G*H, I)
        dw_ih += dw
        dh_product, dw = _product_grads(dgh, h, w_hh, args.recurrent_masks)  # (B, H), (G*H, H)
        dw_hh += dw
        db_ih += dgi.sum(axis=0)  # (G*H,)
        db_hh += dgh.sum(axis=0)  # (G*H,)
        for k, u, d in own:  # a product of the cell's own: input u (B, H), gradient d (B, H)
            d = np.where(valid, d, 0)  # (B, H)
            dw_hh[w.rows(k)] += d.T @ w.masked(u, k)  # (H, H)
            db_hh[w.rows(k)] += d.sum(axis=0)  # (H,)
        for name, rows in dp.items():  # (B, width*H) -> (width*H,)
            dparams[name] += np.where(valid, rows, 0).sum(axis=0)
        dh = np.where(valid, dh_prev + dh_product, dh)  # (B, H)
        if lstm:
            dc = np.where(valid, dc_prev, dc)  # (B, H)

    grads = {"x": dx, "h0": dh}
    if lstm:
        grads["c0"] = dc
    grads["w_ih"] = dw_ih
    grads["w_hh"] = dw_hh
    grads["b_ih"] = None if args.b_ih is None else db_ih
    grads["b_hh"] = None if args.b_hh is None else db_hh
    grads.update(dparams)
    return grads


def _zone_out(args: ForwardArgs, t: int, h: np.ndarray, h_new: np.ndarray) -> np.ndarray:
    """h, h_new: (B, H) -> the step's h after zoneout (modes.py)."""
    if args.zoneout == 0:
        return h_new
    z = args.zoneout
    if args.training:
        return np.where(_kept(args, t), h, h_new)
    return args.dtype.type(z) * h + args.dtype.type(1 - z) * h_new


def _zone_out_grad(args: ForwardArgs, t: int, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dh: (B, H) the zoned h's gradient -> (the cell's h' share, h's share), each (B, H)."""
    if args.zoneout == 0:
        return dh, np.zeros_like(dh)
    kept = _kept(args, t)
    return np.where(kept, 0, dh), np.where(kept, dh, 0)


def _kept(args: ForwardArgs, t: int) -> np.ndarray:
    """(B, H) bool: the units of h that keep their value at time t."""
    return zoneout_uniform(args.zoneout_seed, t, args.B, args.H) < args.zoneout


class _ReferenceCache(OneBackward):
    """What ``rnn_backward`` needs from a forward: the checked arguments and every step's state."""

    def __init__(self, args: ForwardArgs, valid: np.ndarray, saved: list):
        self.args = args
        self.valid = valid  # (T, B, 1) bool, step t is part of sequence b
        self.saved = saved  # per step t: (h, c, cell_saved), the state before step t


# ----------------------------------------------------------------------------------------
# The products, with a mask per gate block on their input or without.


def _product(v, w, b, masks):
    """v: (B, K), w: (G*H, K), b: (G*H,), masks: (G, B, K) or None -> (B, G*H):
    block k is (v * masks[k]) @ w_k.T + b_k."""
    if masks is None:
        return v @ w.T + b
    w_blocks = np.split(w, len(masks), axis=0)  # G x (H, K)
    return np.concatenate([(v * m) @ w_k.T for m, w_k in zip(masks, w_blocks)], axis=1) + b


def _product_grads(d, v, w, masks):
    """Backward of ``_product``: d: (B, G*H) -> (dv (B, K), dw (G*H, K))."""
    if masks is None:
        return d @ w, d.T @ v
    d_blocks = np.split(d, len(masks), axis=1)  # G x (B, H)
    w_blocks = np.split(w, len(masks), axis=0)  # G x (H, K)
    dv = sum((d_k @ w_k) * m for d_k, w_k, m in zip(d_blocks, w_blocks, masks))  # (B, K)
    dw = np.concatenate([d_k.T @ (v * m) for d_k, m in zip(d_blocks, masks)], axis=0)  # (G*H, K)
    return dv, dw


# ----------------------------------------------------------------------------------------
# Cells. Gate blocks are sliced from gi/gh in the order of fastrnn.modes.


def _rnn_forward(gi, gh, h, c, w, act, rec):
    a = gi + gh  # (B, H)
    h_new = act.f(a)  # (B, H)   h' = act(W_ih x + b_ih + W_hh h + b_hh)
    return h_new, None, (a, h_new)


def _rnn_backward(dh_new, dc_new, h, c, saved, w, act, rec):
    a, h_new = saved  # (B, H) each
    da = act.grad(dh_new, a, h_new)  # (B, H)
    return da, da, 0, None, (), {}


def _lstm_forward(gi, gh, h, c, w, act, rec):
    a_i, a_f, a_g, a_o = np.split(gi + gh, 4, axis=1)  # 4 x (B, H)
    i = rec.f(a_i)  # (B, H) input gate
    f = rec.f(a_f)  # (B, H) forget gate
    g = act.f(a_g)  # (B, H) candidate
    o = rec.f(a_o)  # (B, H) output gate
    c_new = f * c + i * g  # (B, H)
    act_c = act.f(c_new)  # (B, H)
    h_new = o * act_c  # (B, H)
    return h_new, c_new, (a_i, a_f, a_g, a_o, i, f, g, o, c_new, act_c)


def _lstm_backward(dh_new, dc_new, h, c, saved, w, act, rec):
    a_i, a_f, a_g, a_o, i, f, g, o, c_new, act_c = saved  # (B, H) each
    do = dh_new * act_c  # (B, H)
    dc = dc_new + dh_new * o * act.df(c_new, act_c)  # (B, H) gradient of c'
    da = np.concatenate([rec.grad(dc * g, a_i, i),  # through the activations
                         rec.grad(dc * c, a_f, f),
                         act.grad(dc * i, a_g, g),
                         rec.grad(do, a_o, o)], axis=1)  # (B, 4H)
    return da, da, 0, dc * f, (), {}


def _peephole_lstm_forward(gi, gh, h, c, w, act, rec):
    p_i, p_f, p_o = np.split(w.params["peephole"], 3)  # (H,) each
    a_i, a_f, a_g, a_o = np.split(gi + gh, 4, axis=1)  # 4 x (B, H), without the peepholes
    a_i = a_i + p_i * c  # (B, H)
    a_f = a_f + p_f * c  # (B, H)
    i = rec.f(a_i)  # (B, H) input gate
    f = rec.f(a_f)  # (B, H) forget gate
    g = act.f(a_g)  # (B, H) candidate
    c_new = f * c + i * g  # (B, H)
    a_o = a_o + p_o * c_new  # (B, H): the output gate sees the new cell state
    o = rec.f(a_o)  # (B, H) output gate
    act_c = act.f(c_new)  # (B, H)
    h_new = o * act_c  # (B, H)
    return h_new, c_new, (a_i, a_f, a_g, a_o, i, f, g, o, c_new, act_c)


def _peephole_lstm_backward(dh_new, dc_new, h, c, saved, w, act, rec):
    a_i, a_f, a_g, a_o, i, f, g, o, c_new, act_c = saved  # (B, H) each
    p_i, p_f, p_o = np.split(w.params["peephole"], 3)  # (H,) each
    da_o = rec.grad(dh_new * act_c, a_o, o)  # (B, H)
    dc = dc_new + dh_new * o * act.df(c_new, act_c) + da_o * p_o  # (B, H) gradient of c'
    da_i = rec.grad(dc * g, a_i, i)  # (B, H)
    da_f = rec.grad(dc * c, a_f, f)  # (B, H)
    da = np.concatenate([da_i, da_f, act.grad(dc * i, a_g, g), da_o], axis=1)  # (B, 4H)
    dc_prev = dc * f + da_i * p_i + da_f * p_f  # (B, H)
    dp = np.concatenate([da_i * c, da_f * c, da_o * c_new], axis=1)  # (B, 3H)
    return da, da, 0, dc_prev, (), {"peephole": dp}


def _gru_forward(gi, gh, h, c, w, act, rec):
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)  # 3 x (B, H)
    gh_r, gh_z, gh_n = np.split(gh, 3, axis=1)  # 3 x (B, H)
    a_r, a_z = gi_r + gh_r, gi_z + gh_z  # (B, H) each
    r = rec.f(a_r)  # (B, H) reset gate
    z = rec.f(a_z)  # (B, H) update gate
    a_n = gi_n + r * gh_n  # (B, H) reset applied after the product
    n = act.f(a_n)  # (B, H) candidate
    h_new = (1 - z) * n + z * h  # (B, H)
    return h_new, None, (a_r, a_z, a_n, r, z, n, gh_n)


def _gru_backward(dh_new, dc_new, h, c, saved, w, act, rec):
    a_r, a_z, a_n, r, z, n, gh_n = saved  # (B, H) each
    da_n = act.grad(dh_new * (1 - z), a_n, n)  # (B, H) gradient of n's pre-activation
    da_r = rec.grad(da_n * gh_n, a_r, r)  # (B, H)
    da_z = rec.grad(dh_new * (h - n), a_z, z)  # (B, H)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
    return dgi, dgh, dh_new * z, None, (), {}


def _gru_reset_before_forward(gi, gh, h, c, w, act, rec):
    gi_r, gi_z, gi_n = np.split(gi, 3, axis=1)  # 3 x (B, H)
    gh_r, gh_z, _ = np.split(gh, 3, axis=1)  # (B, H) each; n's product is of r * h, below
    a_r, a_z = gi_r + gh_r, gi_z + gh_z  # (B, H) each
    r = rec.f(a_r)  # (B, H) reset gate
    z = rec.f(a_z)  # (B, H) update gate
    rh = r * h  # (B, H) reset applied before the product
    a_n = gi_n + w.product(rh, 2)  # (B, H)
    n = act.f(a_n)  # (B, H) candidate
    h_new = (1 - z) * n + z * h  # (B, H)
    return h_new, None, (a_r, a_z, a_n, r, z, n, rh)


def _gru_reset_before_backward(dh_new, dc_new, h, c, saved, w, act, rec):
    a_r, a_z, a_n, r, z, n, rh = saved  # (B, H) each
    da_n = act.grad(dh_new * (1 - z), a_n, n)  # (B, H) gradient of n's pre-activation
    d_rh = w.product_grad(da_n, 2)  # (B, H) gradient of r * h
    da_r = rec.grad(d_rh * h, a_r, r)  # (B, H)
    da_z = rec.grad(dh_new * (h - n), a_z, z)  # (B, H)
    zero = np.zeros_like(da_n)  # (B, H)
    dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
    dgh = np.concatenate([da_r, da_z, zero], axis=1)  # (B, 3H) n's block of gh is not used
    return dgi, dgh, dh_new * z + d_rh * r, None, ((2, rh, da_n),), {}


_CELLS = {  # by the kernels' cell kind (fastrnn.modes.MODES)
    "rnn": (_rnn_forward, _rnn_backward),
    "lstm": (_lstm_forward, _lstm_backward),
    "lstm_peephole": (_peephole_lstm_forward, _peephole_lstm_backward),
    "gru": (_gru_forward, _gru_backward),
    "gru_reset_before": (_gru_reset_before_forward, _gru_reset_before_backward),
}


@dataclass(frozen=True)
class _Recurrent:
    """W_hh (G*H, H), b_hh (G*H,) or None and the recurrent masks (G, B, H) or None, by gate
    blocks of H rows; and the cell's parameter vectors by name, (width*H,) each."""

    w_hh: np.ndarray
    b_hh: np.ndarray | None
    H: int
    masks: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def rows(self, k: int) -> slice:
        return slice(k * self.H, (k + 1) * self.H)

    def masked(self, u, k):
        """u: (B, H) -> (B, H): block k's product input, times its mask if there is one."""
        return u if self.masks is None else u * self.masks[k]

    def product(self, u, k):
        """u: (B, H) -> (B, H): block k's recurrent product of u, with its bias."""
        out = self.masked(u, k) @ self.w_hh[self.rows(k)].T  # (B, H)
        return out if self.b_hh is None else out + self.b_hh[self.rows(k)]

    def product_grad(self, d, k):
        """d: (B, H), the gradient of ``product(u, k)`` -> (B, H), that of u."""
        return self.masked(d @ self.w_hh[self.rows(k)], k)  # (B, H)


# ----------------------------------------------------------------------------------------
# Activations: Keras 3's element-wise ones with its default constants, each a function f and
# its derivative df(x, y) at x, where y = f(x).


@dataclass(frozen=True)
class _Activation:
    f: Callable  # x -> y
    df: Callable  # (x, y) -> f'(x)
    flat: bool = False  # f' is 0 on an interval: the gradient there is 0 whatever flows in

    def grad(self, dy, x, y):
        """dy * f'(x), and exactly 0 where a flat activation's f' is."""
        d = self.df(x, y)
        return np.where(d == 0, 0, dy * d) if self.flat else dy * d


def _sigmoid(x):
    # Written with tanh: exact, and no overflow warning for large negative x.
    return 0.5 * (1 + np.tanh(0.5 * x))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _phi(x):  # the standard normal distribution function
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2)).astype(x.dtype)


def _step(condition, x):
    return condition.astype(x.dtype)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

_ACTIVATIONS = {
    "tanh": _Activation(np.tanh, lambda x, y: 1 - y**2),
    "sigmoid": _Activation(_sigmoid, lambda x, y: y * (1 - y)),
    "relu": _Activation(lambda x: np.maximum(x, 0), lambda x, y: _step(x > 0, x), True),
    "linear": _Activation(lambda x: x, lambda x, y: np.ones_like(x)),
    "hard_sigmoid": _Activation(lambda x: np.clip(x / 6 + 0.5, 0, 1),
                                lambda x, y: _step((x > -3) & (x < 3), x) / 6, True),
    "relu6": _Activation(lambda x: np.clip(x, 0, 6), lambda x, y: _step((x > 0) & (x < 6), x), True),
    "leaky_relu": _Activation(lambda x: np.where(x > 0, x, 0.2 * x),
                              lambda x, y: np.where(x > 0, 1, 0.2).astype(x.dtype)),
    "elu": _Activation(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
                       lambda x, y: np.where(x > 0, 1, np.exp(np.minimum(x, 0))).astype(x.dtype)),
    "celu": _Activation(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
                        lambda x, y: np.where(x > 0, 1, np.exp(np.minimum(x, 0))).astype(x.dtype)),
    "selu": _Activation(
        lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        lambda x, y: _SELU_SCALE * np.where(x > 0, 1, _SELU_ALPHA * np.exp(np.minimum(x, 0)))),
    "softplus": _Activation(_softplus, lambda x, y: _sigmoid(x)),
    "softsign": _Activation(lambda x: x / (1 + np.abs(x)), lambda x, y: 1 / (1 + np.abs(x))**2),
    "exponential": _Activation(np.exp, lambda x, y: np.exp(x)),
    "silu": _Activation(lambda x: x * _sigmoid(x),
                        lambda x, y: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "hard_silu": _Activation(lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
                             lambda x, y: np.where(x < -3, 0, np.where(x <= 3, x / 3 + 0.5, 1)),
                             True),
    "gelu": _Activation(lambda x: x * _phi(x),
                        lambda x, y: _phi(x) + x * np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)),
    "mish": _Activation(lambda x: x * np.tanh(_softplus(x)),
                        lambda x, y: np.tanh(_softplus(x)) + x * _sigmoid(x) * (1 - np.tanh(_softplus(x))**2)),
    "log_sigmoid": _Activation(lambda x: -_softplus(-x), lambda x, y: _sigmoid(-x)),
    "sparse_plus": _Activation(lambda x: np.where(x <= -1, 0, np.where(x < 1, (x + 1)**2 / 4, x)),
                               lambda x, y: np.where(x <= -1, 0, np.where(x < 1, (x + 1) / 2, 1)),
                               True),
    "sparse_sigmoid": _Activation(lambda x: np.clip((x + 1) / 2, 0, 1),
                                  lambda x, y: _step((x > -1) & (x < 1), x) / 2, True),
    "hard_tanh": _Activation(lambda x: np.clip(x, -1, 1), lambda x, y: _step((x > -1) & (x < 1), x), True),
    "tanh_shrink": _Activation(lambda x: x - np.tanh(x), lambda x, y: np.tanh(x)**2),
    "soft_shrink": _Activation(lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
                               lambda x, y: _step(np.abs(x) > 0.5, x), True),
    "hard_shrink": _Activation(lambda x: np.where(np.abs(x) > 0.5, x, 0),
                               lambda x, y: _step(np.abs(x) > 0.5, x), True),
    "squareplus": _Activation(lambda x: (x + np.sqrt(x**2 + 4)) / 2,
                              lambda x, y: (1 + x / np.sqrt(x**2 + 4)) / 2),
}


def _activations(args: ForwardArgs) -> tuple[_Activation, _Activation]:
    """The cell's activation and recurrent activation (sigmoid where the mode has none)."""
    return _ACTIVATIONS[args.activation], _ACTIVATIONS[args.recurrent_activation or "sigmoid"]


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
