"""What the kernels' tests share (tests/test_ops_*.py): the modes, sizes and tolerances, a forward
and backward call with random output gradients, and the comparison with the reference.

float64 kernels must agree with the float64 reference to 1e-10 relative to the array's scale;
float32 kernels are compared with the float64 reference on the same inputs and must agree to
2e-5 relative to the scale (a few float32 rounding steps per time step).
"""
import contextlib

import numpy as np

from fastrnn import ops, reference
from fastrnn.modes import STATES

MODES = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"]
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-5}

# (T, B, I, H): the basic case; one step of one sequence; H not a multiple of any SIMD width
# with I != H; more inputs than hidden units; a long thin one.
SIZES = [(5, 3, 4, 6), (1, 1, 3, 5), (7, 4, 9, 17), (6, 2, 16, 3), (30, 2, 2, 4)]


@contextlib.contextmanager
def kernel_threads(n):
    """Run the kernels on n threads inside the block, then go back to the previous count."""
    before = ops.get_num_threads()
    ops.set_num_threads(n)
    try:
        yield
    finally:
        ops.set_num_threads(before)


def run(module, mode, case, *, lengths=None, mask=None, reverse=False, dy=True, dh_n=True, dc_n=True,
        seed=1):
    """Forward and backward with random output gradients; returns (y, h_n, c_n, grads)."""
    y, h_n, c_n, cache = module.rnn_forward(mode, **case, lengths=lengths, mask=mask, reverse=reverse)
    rng = np.random.default_rng(seed)
    dtype = case["x"].dtype
    g_y = rng.standard_normal(y.shape).astype(dtype) if dy else None
    g_h = rng.standard_normal(h_n.shape).astype(dtype) if dh_n else None
    g_c = rng.standard_normal(h_n.shape).astype(dtype) if (dc_n and "c" in STATES[mode]) else None
    return y, h_n, c_n, module.rnn_backward(cache, g_y, g_h, g_c)


def as_float64(case):
    return {k: None if v is None else v.astype(np.float64) for k, v in case.items()}


def assert_close(got, want, dtype, what):
    if want is None:
        assert got is None, what
        return
    assert got.dtype == dtype, what
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    err = float(np.abs(got.astype(np.float64) - want).max(initial=0))
    assert err <= TOLERANCE[dtype] * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


def assert_matches_reference(mode, case, **kw):
    dtype = case["x"].dtype.type
    got = run(ops, mode, case, **kw)
    want = run(reference, mode, as_float64(case), **kw)
    for name, g, w in zip(["y", "h_n", "c_n"], got[:3], want[:3]):
        assert_close(g, w, dtype, name)
    assert got[3].keys() == want[3].keys()
    for key in want[3]:
        assert_close(got[3][key], want[3][key], dtype, f"d{key}")


def holey_mask(T, B, seed=0):
    """(T, B) bool: random holes, with row 0 pre-padded, row 1 post-padded and row 2 all masked."""
    mask = np.random.default_rng(seed).random((T, B)) < 0.6
    mask[:, 0] = np.arange(T) >= T // 2
    if B > 1:
        mask[:, 1] = np.arange(T) < T // 3
    if B > 2:
        mask[:, 2] = False
    return mask


def assert_inference_matches_reference(mode, case, **kw):
    """training=False: the outputs and final states alone, and no cache."""
    y, h_n, c_n, cache = ops.rnn_forward(mode, **case, **kw, training=False)
    want = reference.rnn_forward(mode, **case, **kw, training=False)
    assert cache is None
    for got, w, what in zip((y, h_n, c_n), want[:3], ("y", "h_n", "c_n")):
        assert_close(got, w, case["x"].dtype.type, what)
