"""Every instruction-set level built into the package computes the same thing.

Each level is a module of its own, run through the bindings as a Kernels object beside the
level in use (see fastrnn/_core.py). Levels are compared with the
float64 reference (1e-10 relative to scale) and, in float32, with each other (2e-5 relative to
scale: different SIMD widths round the element-wise math differently).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_case, steps_to_split_by_units
from fastrnn import _core, ops, reference
from fastrnn.modes import MODES

LEVELS = [level for level, ok in _core.available_levels().items() if ok]
needs_levels = pytest.mark.skipif(not LEVELS, reason="a single-level build (native or non-x86)")


def kernels(level):
    return _core.kernels_at(level)


def run_level(module, mode, case, lengths):
    cell = _core.Cell(MODES[mode].cell, MODES[mode].activation)
    states = [case["h0"], case["c0"]][:len(cell.states)]
    y, final, ws = module.forward(cell, case["x"], states, case["w_ih"], case["w_hh"], case["b_ih"], case["b_hh"],
                                  lengths, False, True)
    dy = np.ones_like(y)
    dx, _, dw_ih, dw_hh, _, _, _ = module.backward(cell, case["x"], case["w_ih"], case["w_hh"], case["b_ih"],
                                                case["b_hh"], lengths, False, ws, dy, [None] * len(states))
    return y, final[0], {"x": dx, "w_ih": dw_ih, "w_hh": dw_hh}


def run_reference(mode, case, lengths):
    """What run_level gives, from the float64 reference."""
    y, h_n, _, cache = reference.rnn_forward(
        mode, **{k: None if v is None else v.astype(np.float64) for k, v in case.items()}, lengths=lengths)
    return y, h_n, reference.rnn_backward(cache, np.ones_like(y))


def assert_close(got, want, tol, level):
    """y, h_n and the gradients of x, w_ih and w_hh agree to tol relative to scale."""
    (y, h_n, grads), (y_ref, h_ref, g_ref) = got, want
    for a, b in [(y, y_ref), (h_n, h_ref)] + [(grads[k], g_ref[k]) for k in ("x", "w_ih", "w_hh")]:
        scale = max(1.0, np.abs(b).max())
        assert np.abs(a - b).max() <= tol * scale, level


@needs_levels
@pytest.mark.parametrize("lengths", [[9, 3, 0, 9, 1], [17], [20, 11], [20, 7, 20]],
                         ids=["batch", "one-sequence", "two-sequences", "three-sequences"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_every_supported_level_agrees_with_the_reference(mode, dtype, tol, lengths):
    """H = 19 and 41 are off every SIMD width. One to three sequences of 20 steps take the
    path with w_hh packed in panels, whose width and the columns summed at once for each row
    depend on the level's registers (with H = 41, LSTM's 164 gate columns fill a panel at
    every level, GRU's 123 on levels with panels narrower than 128 floats)."""
    lengths = np.array(lengths, dtype=np.int64)
    B = len(lengths)
    case = make_case(mode, 20 if B <= 3 else 9, B, 7, 41 if B in (2, 3) else 19, dtype, seed=11)
    want = run_reference(mode, case, lengths)
    for level in LEVELS:
        assert_close(run_level(kernels(level), mode, case, lengths), want, tol, level)


@needs_levels
@pytest.mark.parametrize("B", [2, 3])
@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_every_supported_level_agrees_with_the_reference_on_two_threads(mode, B):
    """Two or three sequences with enough work to split the hidden units between two threads:
    each thread's panels write into rows wider than its slice, at every level's register
    budget (float64, H = 150)."""
    H = 150
    T = max(20, steps_to_split_by_units(mode, B, H))
    lengths = np.full(B, T, dtype=np.int64)
    lengths[-1] = 5
    case = make_case(mode, T, B, 9, H, np.float64, seed=33)
    want = run_reference(mode, case, lengths)
    for level in LEVELS:
        module = kernels(level)
        before = module.get_num_threads()
        module.set_num_threads(2)
        try:
            got = run_level(module, mode, case, lengths)
        finally:
            module.set_num_threads(before)
        assert_close(got, want, 1e-10, level)


@needs_levels
def test_the_best_supported_level_is_chosen_by_default():
    assert _core.build_info()["isa"] == LEVELS[0]


@needs_levels
@pytest.mark.parametrize("level", LEVELS)
def test_fastrnn_isa_forces_a_level(level):
    code = "import fastrnn.ops as o; print(o.build_info()['isa'])"
    env = dict(os.environ, FASTRNN_ISA=level)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == level


def test_fastrnn_isa_naming_the_level_in_use_is_accepted():
    code = "import fastrnn.ops as o; print(o.build_info()['isa'])"
    run = lambda env: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k != "FASTRNN_ISA"}
    level = run(env)
    assert run(dict(env, FASTRNN_ISA=level)) == level


def test_an_unknown_fastrnn_isa_is_a_clear_import_error():
    code = "import fastrnn.ops"
    env = dict(os.environ, FASTRNN_ISA="x86-64-v9")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "FASTRNN_ISA='x86-64-v9'" in out.stderr


def test_build_info_names_eigen_and_simd():
    info = ops.build_info()
    assert info["eigen"].startswith("3.4")
    assert "SSE" in info["simd"] or "AVX" in info["simd"]
    assert info["threads"] >= 1
