"""The functional NumPy API over the C++ kernels.

``rnn_forward`` and ``rnn_backward`` have exactly the signatures, semantics and argument
checks of ``fastrnn.reference`` (whose docstrings are the full description); only the
implementation differs. Equations and weight layouts are in ``fastrnn.modes``.

Arrays are handed to the kernels in place when they are C-contiguous and copied once when
they are not. The GIL is released while the kernels run, so other Python threads go on.

A cache serves one ``rnn_backward``: BPTT overwrites the saved gate activations with the gate
gradients instead of allocating a second (T, B, G*H) buffer. A second call raises RuntimeError.

Memory: the arrays the kernels return live in blocks that, once freed, are kept (those of 64 KB
or more, up to ``get_cache_limit()`` bytes in all, 1 GB by default or ``FASTRNN_CACHE_LIMIT``
bytes when that is set, the oldest going first) for the next call that asks for their size or
for a smaller one they exceed by at most an eighth. A fresh block costs a page fault per page on
first write: more than half of a small call's time, and a few per cent of a training step whose
workspace is hundreds of MB. A kept block not taken again while 1024 more come back is handed
back, so calls whose shapes keep changing fill the cache less. Still, after a large call the
process keeps up to the limit in freed blocks: ``cached_bytes()`` tells how much,
``empty_cache()`` hands it back, and ``set_cache_limit(0)`` keeps nothing.

Threads: the kernels use ``get_num_threads()`` OpenMP threads (one per physical core by default).
GNU OpenMP's threads do not survive a fork (multiprocessing's default start method on Linux), so
a forked child runs the kernels on one thread; where the parent had run them on several, asking
the child for more raises RuntimeError. Worker processes started with the "spawn" or
"forkserver" method use threads as usual. A fork waits for a kernel call under way in another
thread to finish. The thread count changes between kernel calls, never during one.
"""
from __future__ import annotations

import math
import os

import numpy as np
from numpy.typing import ArrayLike

from fastrnn import _core, _cpus
from fastrnn._args import (MAX_THREADS, OneBackward, check_backward, check_cache, check_forward, check_mode,
                           claim_cache)
from fastrnn.modes import MODES, RECURRENT_ACTIVATION

__all__ = ["rnn_forward", "rnn_backward", "matmul", "set_num_threads", "get_num_threads", "threads_source",
           "build_info",
           "cached_bytes", "empty_cache", "set_cache_limit", "get_cache_limit",
           "set_bptt_memory_limit", "get_bptt_memory_limit", "checkpoint_steps"]


MAX_CACHE_LIMIT = 2**63 - 1


class KernelCache(OneBackward):
    """What ``rnn_backward`` needs from the forward pass: its inputs and the kernels' workspace."""

    def __init__(self, args, cell, arrays, workspace):
        self.args = args                # fastrnn._args.ForwardArgs
        self.cell = cell                # the kernels' cell (fastrnn._core.Cell)
        self.arrays = arrays            # C-contiguous x, w_ih, w_hh, b_ih, b_hh as the kernels saw them
        self.workspace = workspace      # fastrnn._core.Workspace: (T, B, ...) arrays by name, see
                                        # src/cpp/workspace.h


_cells = {}


def _cell(args):
    """The kernels' cell for the mode and activations of ``args`` (made once)."""
    key = (args.mode, args.activation, args.recurrent_activation)
    cell = _cells.get(key)
    if cell is None:
        cell = _cells[key] = _core.Cell(MODES[args.mode].cell, args.activation,
                                        args.recurrent_activation or RECURRENT_ACTIVATION)
    return cell


def _contiguous(a):
    return None if a is None else np.ascontiguousarray(a)


def rnn_forward(mode: str, x: np.ndarray, h0: np.ndarray | None, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None, b_hh: np.ndarray | None = None,
                *, c0: np.ndarray | None = None, lengths: ArrayLike | None = None,
                mask: np.ndarray | None = None, reverse: bool = False, training: bool = True,
                activation: str | None = None, recurrent_activation: str | None = None,
                recurrent_masks: np.ndarray | None = None, input_masks: np.ndarray | None = None,
                params: dict | None = None, checkpoint_every: int | None = None,
                return_sequences: bool = True, zoneout: float = 0.0, zoneout_seed: int = 0,
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, KernelCache | None]:
    """Run a recurrent layer over a time-major batch with the C++ kernels.

    x: (T, B, I), h0: (B, H) or None, w_ih: (G*H, I), w_hh: (G*H, H), b_ih, b_hh: (G*H,) or None,
    c0: (B, H) or None (LSTM), lengths: (B,) or None, mask: (T, B) bool/uint8 or None;
    activation, recurrent_activation: names from ``fastrnn.modes.ACTIVATIONS``, None for the
    mode's own; recurrent_masks: (G, B, H), input_masks: (G, B, I) or None, per gate block
    multiplying h and x_t in that block's products (dropout masks); params: {name: (width*H,)}
    the cell's parameter vectors (``modes.PARAMS``), e.g. ``{"peephole": p}`` for
    ``lstm_peephole``.

    checkpoint_every: how training keeps what BPTT needs. 0 keeps every step's gates and
    states; n > 0 keeps only the states every n steps (rounded up to whole units of about 256
    rows, ``cache.workspace.steps``) and one segment of steps, and ``rnn_backward`` recomputes
    each segment from its checkpoint: memory O(T/n + n) steps instead of O(T), for about one
    more forward's time, with gradients equal bit for bit. None (the default) keeps every step
    unless that would take more than ``get_bptt_memory_limit()`` bytes, and checkpoints every
    ``checkpoint_steps(...)`` steps (about the square root of T) otherwise.
    return_sequences: False returns y as None and keeps no (T, B, H) outputs (``rnn_backward``
    then takes dy=None).
    zoneout: in [0, 1), haste's zoneout of h, drawn per step from ``zoneout_seed`` (an int in
    [0, 2**64)) with ``training``, its expectation without (``fastrnn.modes``).

    Returns ``(y, h_n, c_n, cache)`` with y: (T, B, H) or None, h_n, c_n: (B, H).
    See ``fastrnn.reference.rnn_forward`` for the details.
    """
    args = check_forward(mode, x, h0, w_ih, w_hh, b_ih, b_hh, c0, lengths, reverse, training, mask,
                         activation, recurrent_activation, recurrent_masks, input_masks, params,
                         checkpoint_every, return_sequences, zoneout, zoneout_seed)
    cell = _cell(args)
    every = args.checkpoint_every
    if every is None:
        every = _checkpoint_steps(cell, args.T, args.B, args.H, args.dtype.itemsize) if args.training else 0
    arrays = {name: _contiguous(getattr(args, name)) for name in ("x", "w_ih", "w_hh", "b_ih", "b_hh")}
    arrays["params"] = [_contiguous(p) for p in args.params.values()]  # in the cell's order
    states = [_contiguous(args.h0), _contiguous(args.c0)][:len(cell.states)]
    y, final, workspace = _core.forward(
        cell, arrays["x"], states, arrays["w_ih"], arrays["w_hh"], arrays["b_ih"], arrays["b_hh"],
        args.lengths, args.reverse, args.training, args.mask, args.recurrent_masks, args.input_masks,
        arrays["params"], min(every, args.T), args.return_sequences, args.zoneout, args.zoneout_seed)
    cache = KernelCache(args, cell, arrays, workspace) if args.training else None
    return y, final[0], final[1] if len(final) > 1 else None, cache


def rnn_backward(cache: KernelCache, dy: np.ndarray | None, dh_n: np.ndarray | None = None,
                 dc_n: np.ndarray | None = None) -> dict[str, np.ndarray | None]:
    """Backpropagate through time with the C++ kernels; uses up ``cache``.

    dy: (T, B, H) or None, dh_n, dc_n: (B, H) or None (None = zero). Returns a dict with the
    gradients 'x', 'h0', 'c0' (LSTM), 'w_ih', 'w_hh', 'b_ih', 'b_hh' (None without that bias), and
    one per cell parameter under its name ('peephole').
    See ``fastrnn.reference.rnn_backward`` for the details.
    """
    check_cache(cache, KernelCache)
    args = cache.args
    dy, dh_n, dc_n = check_backward(args, dy, dh_n, dc_n)
    a = cache.arrays
    states = cache.cell.states
    claim_cache(cache)
    dx, d_initial, dw_ih, dw_hh, db_ih, db_hh, d_params = _core.backward(
        cache.cell, a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], args.lengths, args.reverse,
        cache.workspace, _contiguous(dy), [_contiguous(dh_n), _contiguous(dc_n)][:len(states)], args.mask,
        args.recurrent_masks, args.input_masks, a["params"], args.zoneout, args.zoneout_seed)
    grads = {"x": dx}
    grads.update({f"{name}0": d for name, d in zip(states, d_initial)})
    grads.update(w_ih=dw_ih, w_hh=dw_hh, b_ih=db_ih, b_hh=db_hh)
    grads.update(zip(args.params, d_params))
    return grads


_bptt_memory_limit = 2 ** 31


def set_bptt_memory_limit(nbytes: int) -> None:
    """The most bytes a training forward keeps for BPTT before it keeps checkpoints instead
    (``rnn_forward(..., checkpoint_every=None)``, the layers' default). Default 2 GiB; per call
    and direction."""
    global _bptt_memory_limit
    if isinstance(nbytes, (bool, np.bool_)) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    _bptt_memory_limit = int(nbytes)


def get_bptt_memory_limit() -> int:
    """The limit ``set_bptt_memory_limit`` set, in bytes."""
    return _bptt_memory_limit


def checkpoint_steps(mode: str, T: int, B: int, H: int, dtype=np.float32) -> int:
    """What ``checkpoint_every=None`` chooses for a training forward of T steps, batch B and H
    units: 0 (every step kept) when that fits in ``get_bptt_memory_limit()`` bytes, else the
    segment length n that makes the least memory, n = sqrt(T * c / s) for c and s the bytes of
    one checkpoint and of one step's arrays (about sqrt(T / 3) for LSTM)."""
    check_mode(mode)
    return _checkpoint_steps(_core.Cell(MODES[mode].cell), T, B, H, np.dtype(dtype).itemsize)


def _checkpoint_steps(cell, T, B, H, itemsize):
    step = B * H * sum(width for _, width in cell.workspace) * itemsize  # bytes of one kept step
    if T * step <= _bptt_memory_limit:
        return 0
    checkpoint = B * H * len(cell.states) * itemsize
    return max(1, math.ceil(math.sqrt(T * checkpoint / step)))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays a: (m, k), b: (k, n), on the kernels' threads.

    The model layers use it for their products, so that a model's heavy work runs on one pool
    of threads: NumPy's BLAS keeps threads of its own, and on a few cores the two pools slow
    each other down badly. Transposed views are used in place. Arrays that are not both float32
    or both float64, and anything but plain ndarrays (lists, masked arrays), fall back to NumPy.
    """
    if type(a) is not np.ndarray or type(b) is not np.ndarray:  # keep subclasses' semantics
        return np.matmul(a, b)
    if (a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or a.shape[1] != b.shape[0]):
        return a @ b
    a, ta = _row_major(a)
    b, tb = _row_major(b)
    return _core.matmul(a, b, ta, tb)


def _row_major(m):
    """(C-contiguous array, whether it is the transpose of m)."""
    if m.flags.c_contiguous:
        return m, False
    if m.flags.f_contiguous:
        return m.T, True
    return np.ascontiguousarray(m), False


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share a core's FMA units)."""
    return _cpus.cores_of(_cpus.affinity_cpus())


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (n >= 1) for the kernels' GEMMs and element-wise work.

    The default is what the process may use: the physical cores, fewer under a CPU affinity mask
    or a cgroup CPU quota, or ``OMP_NUM_THREADS`` when that is set (``threads_source()`` says
    which). A call
    made while a kernel runs in another thread waits for it to finish. RuntimeError for n > 1 in
    a process forked after the kernels ran on several threads (see the module's docstring).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be an integer from 1 to {MAX_THREADS}, got {n!r}")
    _core.set_num_threads(int(n))
    global _threads_source
    _threads_source = "set_num_threads"


def get_num_threads() -> int:
    """The number of threads the kernels use."""
    return _core.get_num_threads()


def threads_source() -> str:
    """Where ``get_num_threads()`` came from: "physical cores", "affinity mask", "cgroup quota",
    "OMP_NUM_THREADS" or "set_num_threads"."""
    return _threads_source


def build_info() -> dict:
    """Facts about the compiled kernels: Eigen version, SIMD sets, OpenMP, threads, ISA level."""
    return dict(_core.build_info())


def cached_bytes() -> int:
    """Bytes of freed kernel arrays kept for reuse (at most ``get_cache_limit()``)."""
    return _core.cached_bytes()


def empty_cache() -> None:
    """Hand the kept blocks back to the C library's allocator (arrays in use are not touched)."""
    _core.empty_cache()


def set_cache_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of freed kernel arrays for reuse (0: keep none).

    Blocks kept beyond a lower limit are handed back at once, the oldest first. The default is
    2**30 bytes (1 GB), or ``FASTRNN_CACHE_LIMIT`` when that is set at import. ValueError
    unless ``nbytes`` is an integer from 0 to 2**63 - 1.
    """
    integer = isinstance(nbytes, (int, np.integer)) and not isinstance(nbytes, bool)
    if not integer or not 0 <= nbytes <= MAX_CACHE_LIMIT:
        raise ValueError(f"nbytes must be an integer from 0 to {MAX_CACHE_LIMIT}, got {nbytes!r}")
    _core.set_cache_limit(int(nbytes))


def get_cache_limit() -> int:
    """The most bytes of freed kernel arrays kept for reuse (see ``set_cache_limit``)."""
    return _core.cache_limit()


def _cache_limit_from_environment() -> None:
    limit = os.environ.get("FASTRNN_CACHE_LIMIT", "").strip()
    if not limit:
        return
    if not (limit.isascii() and limit.isdigit()) or len(limit) > 19 or int(limit) > MAX_CACHE_LIMIT:
        raise ImportError(f"FASTRNN_CACHE_LIMIT={limit!r}: give a byte count from 0 to {MAX_CACHE_LIMIT}")
    set_cache_limit(int(limit))


if os.environ.get("OMP_NUM_THREADS"):
    _threads_source = "OMP_NUM_THREADS"
else:
    _threads, _threads_source = _cpus.detect()
    _core.set_num_threads(min(_threads, MAX_THREADS))
_cache_limit_from_environment()
if hasattr(os, "register_at_fork"):
    # One thread runs without entering OpenMP, whose thread pool does not survive a fork.
    os.register_at_fork(after_in_child=lambda: _core.set_num_threads(1))
