"""The C++ kernels (fastrnn.ops) against the NumPy reference (fastrnn.reference).

Every output and every gradient is compared. float64 kernels must agree with the float64
reference to 1e-10 relative to the array's scale; float32 kernels are compared with the float64
reference on the same inputs and must agree to 2e-5 relative to the scale (a few float32
rounding steps per time step).
"""
import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from importlib import import_module

import numpy as np
import pytest

from conftest import make_case, steps_to_split_by_units
from fastrnn import _core, modes, ops, reference
from fastrnn.modes import GATES

MODES = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
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
    g_c = rng.standard_normal(h_n.shape).astype(dtype) if (dc_n and mode == "lstm") else None
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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "T{}B{}I{}H{}".format(*s))
@pytest.mark.parametrize("mode", MODES)
def test_outputs_and_gradients_match_reference(mode, size, dtype):
    assert_matches_reference(mode, make_case(mode, *size, dtype))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_padded_batches_match_reference(mode, dtype, reverse):
    case = make_case(mode, 6, 5, 3, 7, dtype, seed=2)
    lengths = np.array([6, 0, 3, 1, 6])  # full, empty, and in between
    assert_matches_reference(mode, case, lengths=lengths, reverse=reverse)


def holey_mask(T, B, seed=0):
    """(T, B) bool: random holes, with row 0 pre-padded, row 1 post-padded and row 2 all masked."""
    mask = np.random.default_rng(seed).random((T, B)) < 0.6
    mask[:, 0] = np.arange(T) >= T // 2
    if B > 1:
        mask[:, 1] = np.arange(T) < T // 3
    if B > 2:
        mask[:, 2] = False
    return mask


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_masked_batches_match_reference(mode, dtype, reverse):
    case = make_case(mode, 6, 5, 3, 7, dtype, seed=2)
    mask = holey_mask(6, 5)
    assert_matches_reference(mode, case, mask=mask, reverse=reverse)
    assert_matches_reference(mode, case, mask=mask.astype(np.uint8), reverse=reverse)
    assert_inference_matches_reference(mode, case, mask=mask, reverse=reverse)


@pytest.mark.parametrize("mode", MODES)
def test_a_prefix_mask_gives_what_its_lengths_give(mode):
    case = make_case(mode, 6, 5, 3, 7, np.float32, seed=2)
    lengths = np.array([6, 0, 3, 1, 6])
    by_mask = run(ops, mode, case, mask=np.arange(6)[:, None] < lengths[None, :])
    by_lengths = run(ops, mode, case, lengths=lengths)
    for a, b in zip(by_mask[:3], by_lengths[:3]):
        if b is not None:
            np.testing.assert_array_equal(a, b)
    for key, b in by_lengths[3].items():
        if b is not None:
            np.testing.assert_array_equal(by_mask[3][key], b, err_msg=key)


@pytest.mark.parametrize("mode", MODES)
def test_reverse_without_lengths_matches_reference(mode):
    assert_matches_reference(mode, make_case(mode, 5, 3, 4, 6, np.float64, seed=3), reverse=True)


@pytest.mark.parametrize("mode", MODES)
def test_no_bias_and_zero_initial_state_match_reference(mode):
    case = make_case(mode, 4, 3, 5, 4, np.float64, bias=False, seed=4)
    case["h0"] = None
    case["c0"] = None
    assert_matches_reference(mode, case)


@pytest.mark.parametrize("mode", MODES)
def test_one_bias_only_matches_reference(mode):
    case = make_case(mode, 4, 3, 5, 4, np.float64, seed=5)
    case["b_hh"] = None
    assert_matches_reference(mode, case)


@pytest.mark.parametrize("which", ["dy", "dh_n", "dc_n"])
@pytest.mark.parametrize("mode", MODES)
def test_missing_output_gradients_count_as_zero(mode, which):
    case = make_case(mode, 4, 2, 3, 5, np.float64, seed=6)
    assert_matches_reference(mode, case, **{which: False})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("T, B", [(0, 3), (4, 0), (0, 0)])
def test_empty_sequences_and_batches(mode, T, B):
    case = make_case(mode, T, B, 3, 4, np.float64)
    y, h_n, c_n, grads = run(ops, mode, case)
    assert y.shape == (T, B, 4)
    if T == 0:  # no steps: the state is the initial state and its gradient passes straight back
        np.testing.assert_array_equal(h_n, case["h0"])
    assert_matches_reference(mode, case)
    assert np.all(grads["w_ih"] == 0) or B > 0 and T > 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B", [3, 64])
@pytest.mark.parametrize("I, H", [(0, 12), (5, 0), (0, 0)], ids=["no-inputs", "no-units", "neither"])
@pytest.mark.parametrize("mode", MODES)
def test_no_input_features_or_no_hidden_units_match_reference(mode, I, H, B, threads):
    """I = 0 leaves the biases and the state alone to drive the cell (x: (T, B, 0)); H = 0 gives
    empty outputs and zero-sized weights. Either way every product has an empty side and does
    nothing; B = 64 takes the step-by-step input products, B = 3 the GEMM over all steps."""
    case = make_case(mode, 7, B, I, H, np.float64, seed=16)
    with kernel_threads(threads):
        assert_matches_reference(mode, case)
        assert_inference_matches_reference(mode, case)


@pytest.mark.parametrize("mode", MODES)
def test_inference_mode_gives_the_training_outputs(mode):
    case = make_case(mode, 8, 4, 5, 6, np.float32, seed=7)
    lengths = np.array([8, 2, 0, 5])
    want = ops.rnn_forward(mode, **case, lengths=lengths, training=True)
    got = ops.rnn_forward(mode, **case, lengths=lengths, training=False)
    assert got[3] is None
    for g, w in zip(got[:3], want[:3]):
        if w is not None:
            np.testing.assert_array_equal(g, w)


def test_a_reference_cache_is_refused():
    case = make_case("gru", 3, 2, 3, 4, np.float64)
    y, _, _, cache = reference.rnn_forward("gru", **case)
    with pytest.raises(TypeError, match="cache"):
        ops.rnn_backward(cache, np.ones_like(y))


@pytest.mark.parametrize("mode", MODES)
def test_results_repeat_bit_for_bit(mode):
    case = make_case(mode, 20, 16, 24, 40, np.float32, seed=8)
    first = run(ops, mode, case)
    second = run(ops, mode, case)
    for a, b in zip(first[:3], second[:3]):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for key, a in first[3].items():
        if a is not None:
            np.testing.assert_array_equal(a, second[3][key])


def test_calls_from_several_python_threads_give_the_single_thread_results():
    cases = [make_case(m, 30, 8, 16, 32, np.float32, seed=i) for i, m in enumerate(MODES)]
    want = [run(ops, m, c) for m, c in zip(MODES, cases)]
    got = [None] * len(MODES)

    def work(k):
        got[k] = run(ops, MODES[k], cases[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(MODES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g[0], w[0])
        np.testing.assert_array_equal(g[3]["w_hh"], w[3]["w_hh"])


def test_thread_count_can_be_set_and_read():
    with kernel_threads(1):
        assert ops.get_num_threads() == 1
    for bad in (0, -1, 1.5, "2", True, 2**31, np.int64(2**40)):
        with pytest.raises(ValueError, match="n must be an integer"):
            ops.set_num_threads(bad)


def test_a_thread_count_set_during_a_call_applies_from_the_next_call():
    """A call takes the thread count once, at its start: its results are bit for bit those of
    two threads or, where the change came before the call began (a busy machine can delay it
    past the timer), of one; never a mix."""
    case = make_case("lstm", 400, 32, 64, 128, np.float32, seed=21)
    results = {}
    for n in (2, 1):
        with kernel_threads(n):
            y, _, _, cache = ops.rnn_forward("lstm", **case)
            results[n] = ops.rnn_backward(cache, np.ones_like(y))
    for delay in (0.002, 0.01):  # a backward takes some tens of milliseconds
        with kernel_threads(2):
            y, _, _, cache = ops.rnn_forward("lstm", **case)
            switch = threading.Timer(delay, ops.set_num_threads, args=(1,))
            switch.start()
            got = ops.rnn_backward(cache, np.ones_like(y))
            switch.join()
            assert ops.get_num_threads() == 1
        same_as = [n for n, want in results.items() if all(np.array_equal(got[k], want[k]) for k in want)]
        assert same_as, "the gradients mix one and two threads' results"


def _last_process_id():
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


@pytest.mark.skipif(not os.access("/proc/sys/kernel/ns_last_pid", os.R_OK), reason="Linux's last process id")
@pytest.mark.skipif(not ops.build_info()["openmp"], reason="kernels built without OpenMP")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("B, I, H", [(1, 65, 100), (3, 32, 64)])
def test_calls_after_the_first_start_no_threads(mode, B, I, H):
    """Every call uses the threads the first one started. A thread started per call (a team
    nested in a region of one thread, as the weight gradients of a sequence or three once
    made) costs far more than the arithmetic on these shapes, while the idle threads of the
    last team keep its cores. Linux numbers threads and processes in one sequence, so the last
    number handed out counts them; other processes take some too, so the fewest
    of up to ten rounds counts (a busy machine starts processes all the time; a thread a call
    would show in every round)."""
    case = make_case(mode, 25, B, I, H, np.float32, seed=30)
    calls = 20
    with kernel_threads(2):
        run(ops, mode, case)
        started = []
        for _ in range(10):
            before = _last_process_id()
            for _ in range(calls):
                run(ops, mode, case)
                ops.rnn_forward(mode, **case, training=False)
            started.append(_last_process_id() - before)
            if 0 <= started[-1] < calls // 2:
                break
    assert 0 <= min(started) < calls // 2, started


def test_build_info_names_eigen_and_simd():
    info = ops.build_info()
    assert info["eigen"].startswith("3.4")
    assert "SSE" in info["simd"] or "AVX" in info["simd"]
    assert info["threads"] >= 1


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_batches_large_enough_to_split_across_threads_match_reference(mode, threads):
    """Big enough that the kernels give each thread a slice of the batch (uneven with 3)."""
    case = make_case(mode, 30, 33, 16, 64, np.float64, seed=9)
    lengths = np.random.default_rng(0).integers(0, 31, size=33)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 2))
        assert_matches_reference(mode, case, mask=holey_mask(30, 33), reverse=(threads != 2))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_little_work_on_a_few_rows_a_thread_matches_reference(mode, threads):
    """A slice of the batch goes to a thread for a million multiply-adds of recurrent work: here
    4 or 5 rows a thread (B = 8 on two, 13 on three) and 1.7-2.2 million multiply-adds, with
    lengths, in both directions."""
    B = 8 if threads == 2 else 13
    H = {1: (96, 80), 4: (48, 40), 3: (56, 48)}[GATES[mode]][threads - 2]  # 4.4-5.4 M in all
    case = make_case(mode, 60, B, 8, H, np.float64, seed=21)
    lengths = np.random.default_rng(3).integers(0, 61, size=B)
    with kernel_threads(threads):
        for reverse in (False, True):
            assert_matches_reference(mode, case, lengths=lengths, reverse=reverse)
            assert_inference_matches_reference(mode, case, lengths=lengths, reverse=reverse)
        assert_matches_reference(mode, case, mask=holey_mask(60, B), reverse=True)
        assert_inference_matches_reference(mode, case, mask=holey_mask(60, B))


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("mode", MODES)
def test_weight_gradients_shared_out_by_gate_columns_match_reference(mode, threads):
    """The weight gradients are products over all T*B rows, which the threads share out by gate
    columns, cut on multiples of 16. With H = 48, GRU's recurrent side differs from the input
    side in columns 96-143 (the last gate block): on three threads one thread's columns start at
    96, on four one thread's straddle it (80-111) and one's start inside it (112-143)."""
    B, I, H = 64, 16, 48
    GH = GATES[mode] * H
    T = int(np.ceil(4.5e6 * threads / (B * GH * (I + H))))  # enough work for every thread
    case = make_case(mode, T, B, I, H, np.float64, seed=12)
    lengths = np.random.default_rng(4).integers(0, T + 1, size=B)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 3))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_small_batches_split_across_threads_by_hidden_units_match_reference(mode, threads):
    """Too few rows to share out, so the kernels give each thread a range of hidden units
    (here 144 units: uneven ranges, cut on multiples of 16) and sync the threads every step."""
    B, H = 3, 144
    T = steps_to_split_by_units(mode, B, H)
    case = make_case(mode, T, B, 8, H, np.float64, seed=10)
    lengths = np.array([T, T // 2, 0])
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 2))
        assert_matches_reference(mode, case, mask=holey_mask(T, B), reverse=(threads != 2))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_a_few_steps_with_large_weights_split_across_threads_by_hidden_units_match_reference(mode, threads):
    """A step of one sequence with half a million multiply-adds by w_hh or more is split by
    hidden units however few the steps (here one, as in text generated a step at a time, and
    three, padded)."""
    H = {1: 720, 4: 360, 3: 416}[GATES[mode]]  # 518,400-519,168 multiply-adds a step
    for T, lengths in ((1, None), (3, np.array([2]))):
        case = make_case(mode, T, 1, 16, H, np.float64, seed=31)
        with kernel_threads(threads):
            assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 3))
            assert_inference_matches_reference(mode, case, lengths=lengths)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_single_sequences_match_reference(mode, dtype, threads):
    """One sequence (B = 1) makes each step's recurrent product a matrix-vector product, which
    the kernels compute from a transposed copy of w_hh in panels, made a SIMD tile at a time.
    H = 150 leaves part tiles and a narrower last panel; on two threads the units are split
    64 and 86."""
    H = 150
    T = steps_to_split_by_units(mode, 1, H)
    case = make_case(mode, T, 1, 24, H, dtype, seed=14)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=np.array([T - 3]), reverse=(threads == 2))
        assert_matches_reference(mode, case, mask=holey_mask(T, 1, seed=1), reverse=(threads != 2))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_two_or_three_sequences_match_reference(mode, dtype, B, threads):
    """Two or three rows read the same transposed panels of w_hh as one row does, each weight
    read serving every row, with the registers shared between the rows (fewer columns at once
    on a 16-register ISA). H = 150 leaves part panels; one row is padded. On two threads the
    units are split, so each slice writes into rows wider than itself."""
    H = 150
    T = steps_to_split_by_units(mode, B, H)
    T = max(T, 20)  # packing pays from 16 steps
    case = make_case(mode, T, B, 24, H, dtype, seed=32)
    lengths = np.full(B, T)
    lengths[1] = T // 2
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=(threads == 2))
        assert_inference_matches_reference(mode, case, lengths=lengths)


# Hidden sizes where each step's product packs w_hh in several of Eigen's cache-sized blocks of
# odd lengths (G*H from about 640 rows up, in float32 with AVX-512), and a round one beside them.
PACKED_BLOCK_SIZES = {"rnn_tanh": [641, 655, 673, 640], "rnn_relu": [647, 640],
                      "lstm": [161, 163, 171, 235, 299, 160], "gru": [321, 323, 337, 320]}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode, H", [(m, H) for m, sizes in PACKED_BLOCK_SIZES.items() for H in sizes])
def test_weights_packed_in_blocks_of_odd_length_match_reference(mode, H, dtype, threads):
    """The recurrent products pack the weights once per call, cut into blocks sized for the
    caches; Eigen's packing stores whole SIMD registers at aligned addresses from each block's
    start, so every block must start on an alignment boundary, whatever the hidden size."""
    case = make_case(mode, 3, 3, 5, H, dtype, seed=15)
    with kernel_threads(threads):
        assert_matches_reference(mode, case)
        assert_inference_matches_reference(mode, case)


@pytest.mark.parametrize("T", [1, 15])
@pytest.mark.parametrize("mode", MODES)
def test_short_single_sequences_match_reference(mode, T):
    """Under 16 steps copying w_hh would cost more than it saves: the products read it as it is."""
    case = make_case(mode, T, 1, 24, 150, np.float32, seed=15)
    assert_matches_reference(mode, case)


@pytest.mark.parametrize("mode", MODES)
def test_input_gradient_shared_out_by_rows_after_the_loop_matches_reference(mode):
    # B = 3 is too few rows to share out in the time loop, so the input gradient is taken after
    # it, and the threads share it out by rows beside the weight gradients' columns; H = 70 puts
    # the column cut off the SIMD width and, for GRU, inside the block where its own gradient
    # starts.
    B, I, H = 3, 40, 70
    T = int(np.ceil(8.5e6 / (B * GATES[mode] * H * (2 * I + H))))  # enough work for two threads
    case = make_case(mode, T, B, I, H, np.float64, seed=11)
    with kernel_threads(2):
        assert_matches_reference(mode, case, lengths=np.array([T, T // 3, 0]), reverse=True)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_workspaces_of_several_megabytes_match_reference(mode):
    """Arrays of 4 MB and more come from 2 MB-aligned memory marked for huge pages on Linux;
    here the saved gates (T*B*G*H float64: 10.7 MB for LSTM) and dx (5.4 MB) are that big and
    not a whole number of 2 MB pages."""
    case = make_case(mode, 41, 64, 256, 128, np.float64, seed=13)
    y, h_n, c_n, cache = ops.rnn_forward(mode, **case)
    gates = cache.workspace["gates"]
    assert gates.nbytes >= 4 << 20 and gates.nbytes % (2 << 20)
    if sys.platform == "linux":
        assert gates.ctypes.data % (2 << 20) == 0
    assert_matches_reference(mode, case)


def test_relu_passes_no_gradient_through_an_inactive_unit_not_even_nan():
    case = make_case("rnn_relu", 3, 2, 3, 4, np.float64, seed=12)
    case["b_ih"] = np.full(4, -100.0)  # every unit off
    y, _, _, cache = ops.rnn_forward("rnn_relu", **case)
    dy = np.full_like(y, np.nan)
    grads = ops.rnn_backward(cache, dy)
    assert not any(np.isnan(g).any() for g in grads.values() if g is not None)


# The float64 logistic function and tanh run on an exp of their own at one instruction-set level
# and on Eigen's at the others (src/cpp/cells.h), so their accuracy is checked at every level
# this machine runs; None is the one level of a single-level build.
LEVELS = [level for level, ok in _core.available_levels().items() if ok] or [None]


def forward_at(level, mode, x, w_ih, b):
    """One inference call of the kernels built for ``level``: (y, h_n, c_n), from zero states and
    with no recurrence (w_hh zero)."""
    kernels = _core.kernels if level is None else _core.kernels_at(level)
    H = w_ih.shape[0] // GATES[mode]
    cell = _core.Cell(modes.MODES[mode].cell, modes.MODES[mode].activation)
    y, final, _ = kernels.forward(cell, x, [None] * len(cell.states), w_ih, np.zeros((w_ih.shape[0], H)), b, None,
                                  None, False, False)
    return y, final[0], final[1] if len(final) > 1 else None


def kernel_tanh(x, level=None, bias=None):
    """tanh of a float64 vector as the rnn_tanh kernel computes it: one step with identity input
    weights and no recurrence, so the pre-activation is x exactly, 64 units wide for SIMD;
    ``bias`` (64,) brings in values that x would spoil (an inf times the identity's zeros)."""
    H, n = 64, len(x)
    x = np.concatenate([x, np.zeros(-n % H)])
    y, _, _ = forward_at(level, "rnn_tanh", x.reshape(1, -1, H), np.eye(H), bias)
    return y.ravel()[:n]


@pytest.mark.parametrize("level", LEVELS)
def test_float64_tanh_is_within_two_units_in_the_last_place(level):
    tiny = np.geomspace(1e-300, 1e-3, 2000)
    x = np.concatenate([np.linspace(-20, 20, 400_001), tiny, -tiny, 0.625 + np.arange(-50, 50) * 2.0**-53,
                        [0.625, np.nextafter(0.625, 0), 19.06, 354.0, 710.0, 1e308, np.finfo(float).tiny]])
    got, want = kernel_tanh(x, level), np.tanh(x)
    ulps = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulps.max() <= 2, f"{ulps.max():.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", LEVELS)
def test_float64_tanh_maps_inf_to_one_and_keeps_nan(level):
    bias = np.zeros(64)
    bias[:3] = [np.inf, -np.inf, np.nan]
    got = kernel_tanh(np.zeros(64), level, bias)[:3]
    np.testing.assert_array_equal(got[:2], [1.0, -1.0])
    assert np.isnan(got[2])


def kernel_sigmoid(x, level=None, bias=None):
    """The logistic function of a float64 vector as the LSTM kernel computes it: one step from
    c0 = 0 with the input gate's pre-activation x and a candidate g = tanh(40) = 1 exactly, so that
    c_n = i * g is the input gate itself. 64 units wide for SIMD; ``bias`` (64,), added to the
    input gate, brings in values that x would spoil (an inf times the identity's zeros)."""
    H, n = 64, len(x)
    x = np.concatenate([x, np.zeros(-n % H)])
    w_ih = np.zeros((4 * H, H))
    w_ih[:H] = np.eye(H)
    b = np.zeros(4 * H)
    b[2 * H:3 * H] = 40.0
    if bias is not None:
        b[:H] = bias
    _, _, c_n = forward_at(level, "lstm", x.reshape(1, -1, H), w_ih, b)
    return c_n.ravel()[:n]


@pytest.mark.parametrize("level", LEVELS)
def test_float64_sigmoid_is_within_two_and_a_half_units_in_the_last_place(level):
    """1 / (1 + e^-x) rounds e^-x, the sum and the quotient; where e^-x is just below a power of
    two its error counts double in units of the result. The bound is the worst found, not derived:
    a search of 50 million points found 2.4995 units, near x = -53 ln2 = -36.74; this grid's worst
    is 2.28. Down to where e^-x overflows (x = -709.78): below that it is 0, as Eigen's own
    logistic function gives too."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs a long double with more precision than a double for the exact values")
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.linspace(-709, 40, 100_001),
                        -np.geomspace(1e-300, 1e-3, 2000), np.geomspace(1e-300, 1e-3, 2000),
                        [0.0, 36.04, 36.05, 37.5, 708.0, 709.78]])
    got = kernel_sigmoid(x, level)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))  # x86's 80-bit long double: 11 more bits
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float64))
    assert ulps.max() <= 2.5, f"{float(ulps.max()):.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", [level for level in LEVELS if level == "x86-64-v4"])
def test_float64_exp_of_our_own_rounds_nearly_as_well_as_the_c_library(level):
    """Below x = -40 the logistic function is 1 / e^-x rounded: its error is the exp's plus the
    division's. With the exp of our own (AVX-512) it stays within 1.55 units in the last place
    there; the worst on this grid is 1.47. With Eigen's exp, which the other levels use, it
    reaches 1.96."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs a long double with more precision than a double for the exact values")
    x = np.linspace(-709, -40, 400_001)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
    ulps = np.abs(kernel_sigmoid(x, level) - exact) / np.spacing(exact.astype(np.float64))
    assert ulps.max() <= 1.55, f"{float(ulps.max()):.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", LEVELS)
def test_float64_sigmoid_at_the_ends_of_the_line_and_nan(level):
    bias = np.zeros(64)
    bias[:6] = [np.inf, -np.inf, np.nan, -709.79, -745.2, 1e308]
    got = kernel_sigmoid(np.zeros(64), level, bias)[:6]
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], [1.0, 0.0, 0.0, 0.0, 1.0])
    assert np.isnan(got[2])


def test_padding_passes_the_state_gradient_through_exactly_even_with_inf_weights():
    case = make_case("lstm", 3, 2, 3, 4, np.float64, seed=13)
    case["w_hh"][0, 0] = np.inf
    y, h_n, _, cache = ops.rnn_forward("lstm", **case, lengths=np.array([0, 0]))
    grads = ops.rnn_backward(cache, None, np.ones_like(h_n))
    np.testing.assert_array_equal(grads["h0"], np.ones_like(h_n))


def test_dtypes_equal_to_float64_but_not_identical_are_accepted():
    dt = np.dtype(np.float64, metadata={"units": "V"})
    case = make_case("gru", 3, 2, 3, 4, np.float64, seed=14)
    want = ops.rnn_forward("gru", **case)[0]
    case["x"] = case["x"].astype(dt)
    np.testing.assert_array_equal(ops.rnn_forward("gru", **case)[0], want)


RUN_IN_CHILD = """
import numpy as np, sys
sys.path[:0] = {path!r}
from conftest import make_case
from fastrnn import ops, reference
case = make_case("lstm", 40, 2, 8, 256, np.float64, seed=15)   # split by hidden units
lengths = np.array([40, 7])
y = ops.rnn_forward("lstm", **case, lengths=lengths)[0]
want = reference.rnn_forward("lstm", **case, lengths=lengths)[0]
print(float(np.abs(y - want).max()))
"""


def test_a_thread_limit_below_the_asked_threads_still_computes_every_output(tmp_path):
    import os
    import subprocess
    import sys
    code = RUN_IN_CHILD.format(path=[os.path.dirname(__file__)])
    env = dict(os.environ, OMP_THREAD_LIMIT="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) < 1e-10


def test_a_forked_child_can_use_the_kernels_after_the_parent_did():
    import multiprocessing
    case = make_case("lstm", 40, 2, 8, 256, np.float64, seed=15)
    want = ops.rnn_forward("lstm", **case)[0]      # the parent's threads have run
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_forward_lstm, (case,)).get(timeout=60)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _forward_lstm(case):
    return ops.rnn_forward("lstm", **case)[0]


def test_a_child_forked_while_another_thread_runs_a_kernel_can_use_the_kernels():
    import multiprocessing
    import time
    long_case = make_case("lstm", 3000, 64, 64, 256, np.float32, seed=22)  # most of a second
    case = make_case("gru", 20, 3, 4, 8, np.float64, seed=23)
    want = ops.rnn_forward("gru", **case)[0]
    busy = threading.Thread(target=ops.rnn_forward, args=("lstm",), kwargs={**long_case, "training": False})
    busy.start()
    time.sleep(0.1)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # forks now: it waits for the kernel call under way
        got = pool.apply_async(_forward_gru, (case,)).get(timeout=60)
    busy.join()
    np.testing.assert_array_equal(got, want)


def _forward_gru(case):
    return ops.rnn_forward("gru", **case)[0]


def test_a_child_forked_after_kernels_ran_on_threads_stays_on_one():
    import multiprocessing
    with kernel_threads(2):
        ops.rnn_forward("lstm", **make_case("lstm", 40, 64, 8, 256, np.float32, seed=24))
        with multiprocessing.get_context("fork").Pool(1) as pool:
            threads, error = pool.apply_async(_ask_for_two_threads).get(timeout=60)
    assert threads == 1
    assert "forked after the kernels had run on several threads" in error


def _ask_for_two_threads():
    threads = ops.get_num_threads()
    try:
        ops.set_num_threads(2)
    except RuntimeError as e:
        ops.set_num_threads(1)  # one thread is always allowed
        return threads, str(e)
    return threads, ""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_matches_numpy_for_plain_and_transposed_operands(dtype):
    rng = np.random.default_rng(16)
    a = rng.standard_normal((37, 19)).astype(dtype)
    b = rng.standard_normal((19, 23)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for x, y in [(a, b), (a.T.copy().T, b), (a, b.T.copy().T), (a[:, ::1], b[::1])]:
        np.testing.assert_allclose(ops.matmul(x, y), a @ b, rtol=tol, atol=tol)
    np.testing.assert_allclose(ops.matmul(a[::2], b), a[::2] @ b, rtol=tol, atol=tol)  # strided rows


def test_matmul_falls_back_to_numpy_for_mixed_dtypes_and_keeps_shape_errors():
    a = np.ones((2, 3), np.float32)
    assert ops.matmul(a, np.ones((3, 4), np.float64)).dtype == np.float64
    with pytest.raises(ValueError):
        ops.matmul(a, np.ones((4, 4), np.float32))


def test_matmul_of_lists_or_masked_arrays_is_numpys():
    """Only plain ndarrays go to the kernels; anything else keeps NumPy's meaning."""
    assert ops.matmul([[1.0, 2.0]], [[3.0], [4.0]]).tolist() == [[11.0]]
    a = np.ma.masked_array(np.ones((2, 2), np.float32), mask=[[False, True], [False, False]])
    got = ops.matmul(a, a)
    assert isinstance(got, np.ma.MaskedArray)
    assert got.mask.tolist() == (a @ a).mask.tolist() == [[False, True], [False, False]]


def assert_inference_matches_reference(mode, case, **kw):
    """training=False: the outputs and final states alone, and no cache."""
    y, h_n, c_n, cache = ops.rnn_forward(mode, **case, **kw, training=False)
    want = reference.rnn_forward(mode, **case, **kw, training=False)
    assert cache is None
    for got, w, what in zip((y, h_n, c_n), want[:3], ("y", "h_n", "c_n")):
        assert_close(got, w, case["x"].dtype.type, what)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_projecting_inputs_step_by_step_matches_the_reference(mode, reverse, threads):
    """Where each thread has 4 rows of the batch or more (or one thread has them all), each
    projects its own rows' inputs step by step, and backward takes their gradient step by step:
    inference never holds more than one step's gates, and training writes them straight into
    the workspace."""
    case = make_case(mode, 40, 64, 8, 256, np.float64, seed=17)
    lengths = np.random.default_rng(1).integers(0, 41, size=64)
    with kernel_threads(threads):
        assert_inference_matches_reference(mode, case, lengths=lengths, reverse=reverse)
        assert_matches_reference(mode, case, lengths=lengths, reverse=reverse)
        assert_inference_matches_reference(mode, case, mask=holey_mask(40, 64), reverse=reverse)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_inference_projecting_by_chunks_of_steps_matches_the_reference(mode, reverse, threads):
    """With fewer rows (here B = 3: one thread's whole batch, or on two threads each a range of
    the hidden units), inference projects the inputs by GEMM a few steps at a time, at most about
    4 MB of gates: 85 steps of (3, 4*512) doubles for LSTM, 113 for GRU, 341 for the others. So
    the sequence goes in three or four even chunks (four of 75 steps for LSTM)."""
    T = {"lstm": 300, "gru": 300}.get(mode, 900)
    case = make_case(mode, T, 3, 8, 512, np.float64, seed=17)
    lengths = np.array([T, T - 100, 7])
    with kernel_threads(threads):
        assert_inference_matches_reference(mode, case, lengths=lengths, reverse=reverse)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_training_in_chunks_of_steps_matches_the_reference(mode, reverse, threads):
    """Backward goes through a sequence with more than 32 MB of gates a chunk of steps at a
    time (about 4 MB of gates, and 1024 rows or more), taking a chunk's weight gradients just
    after the backward loop has left it; the weight gradients add up over the chunks. Here each
    cell has about 34 MB of (32, G*64) doubles, in 9 chunks of two sizes (58 and 59 steps for
    LSTM)."""
    B, H = 32, 64
    T = {"lstm": 530, "gru": 701}.get(mode, 2100)
    case = make_case(mode, T, B, 8, H, np.float64, seed=20)
    lengths = np.random.default_rng(2).integers(0, T + 1, size=B)
    with kernel_threads(threads):
        assert_matches_reference(mode, case, lengths=lengths, reverse=reverse)


def assert_column_sums(got, rows):
    """got (n,) float32 is the column sums of rows (m, n) to within 32 float32 rounding steps of
    each column's sum of magnitudes: what blocked summation keeps to (a sum in one long run over
    tens of thousands of rows of one sign drifts by about the square root of their number)."""
    exact = rows.astype(np.float64).sum(axis=0)
    bound = 32 * np.finfo(np.float32).eps * np.abs(rows.astype(np.float64)).sum(axis=0)
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= bound), f"worst error {float((err / bound).max()):.2f} times the bound"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("B, H", [(16, 32), (1, 128)], ids=["rows-split", "units-split"])
@pytest.mark.parametrize("mode", MODES)
def test_bias_gradients_are_the_gate_gradients_summed_over_every_step_and_row(mode, B, H, threads):
    """Backward adds up each step's gate gradients for the bias gradients inside the time loop:
    each thread its own batch rows (B = 16) or hidden units (B = 1), in blocks of about 256 rows.
    Backward leaves the gate gradients in the workspace (and for GRU, in 'hn', the gradient of
    W_hn h + b_hn, which is b_hh's last block's), so the sums can be checked against them
    directly, over 24,000 rows of float32."""
    T, G = 24000 // B, GATES[mode]
    case = make_case(mode, T, B, 8, H, np.float32, seed=3)
    with kernel_threads(threads):
        y, _, _, cache = ops.rnn_forward(mode, **case)
        grads = ops.rnn_backward(cache, np.ones_like(y))
    shared = (G - 1) * H if mode == "gru" else G * H  # columns where b_hh's gradient is b_ih's
    assert_column_sums(grads["b_ih"], cache.workspace["gates"].reshape(T * B, G * H))
    np.testing.assert_array_equal(grads["b_hh"][:shared], grads["b_ih"][:shared])
    if mode == "gru":
        assert_column_sums(grads["b_hh"][shared:], cache.workspace["hn"].reshape(T * B, H))


def test_a_freed_output_block_is_reused_by_the_next_call_of_the_same_size():
    case = make_case("gru", 50, 32, 8, 64, np.float32, seed=18)  # y: 400 KB
    ops.empty_cache()
    y = ops.rnn_forward("gru", **case, training=False)[0]
    first, want = y.ctypes.data, y.copy()
    del y
    assert ops.cached_bytes() >= want.nbytes
    y = ops.rnn_forward("gru", **case, training=False)[0]
    assert y.ctypes.data == first  # no fresh pages to fault in
    np.testing.assert_array_equal(y, want)


@contextlib.contextmanager
def cache_limit(nbytes):
    """Keep at most nbytes of freed blocks inside the with statement, then go back to the previous
    limit."""
    before = ops.get_cache_limit()
    ops.set_cache_limit(nbytes)
    try:
        yield
    finally:
        ops.set_cache_limit(before)


def block_of(nbytes):
    """A kernel array of nbytes (a multiple of 4096), made by a cheap product."""
    return ops.matmul(np.ones((nbytes // 4096, 1), np.float32), np.ones((1, 1024), np.float32))


def test_a_freed_80_mb_block_is_kept_for_the_next_call_by_default():
    """The default limit is 1 GB, so a training step's workspace of hundreds of MB is reused by
    the next step instead of being faulted in afresh."""
    assert ops.get_cache_limit() == 2**30
    ops.empty_cache()
    big = block_of(80 << 20)
    first = big.ctypes.data
    del big
    assert ops.cached_bytes() == 80 << 20
    assert block_of(80 << 20).ctypes.data == first


def test_kept_blocks_stay_under_the_limit_and_empty_cache_gives_them_back():
    with cache_limit(64 << 20):
        big = [block_of((8 << 20) + k * 4096) for k in range(12)]
        del big  # twelve blocks of 8 MB and more
        assert 0 < ops.cached_bytes() <= 64 << 20
        ops.empty_cache()
        assert ops.cached_bytes() == 0


def test_a_lower_limit_hands_back_the_oldest_blocks_at_once_and_zero_keeps_none():
    ops.empty_cache()
    oldest, middle, newest = (block_of(4 << 20) for _ in range(3))
    address = newest.ctypes.data
    del oldest, middle, newest  # freed in this order
    assert ops.cached_bytes() == 12 << 20
    with cache_limit(5 << 20):
        assert ops.cached_bytes() == 4 << 20
        assert block_of(4 << 20).ctypes.data == address  # the newest is the one kept
    with cache_limit(0):
        assert ops.cached_bytes() == 0
        block_of(4 << 20)  # made and freed at once
        assert ops.cached_bytes() == 0


def test_a_block_over_the_limit_is_handed_back_without_evicting_the_others():
    ops.empty_cache()
    with cache_limit(5 << 20):
        small = block_of(4 << 20)
        del small
        big = block_of(8 << 20)
        del big
        assert ops.cached_bytes() == 4 << 20


def test_a_block_the_size_of_the_limit_is_kept():
    ops.empty_cache()
    with cache_limit(4 << 20):
        block = block_of(4 << 20)
        del block
        assert ops.cached_bytes() == 4 << 20


def test_blocks_beyond_the_limit_go_oldest_first_and_the_rest_stay():
    ops.empty_cache()
    with cache_limit(10 << 20):
        blocks = [block_of(4 << 20) for _ in range(3)]
        addresses = [b.ctypes.data for b in blocks]
        for i in range(3):
            blocks[i] = None  # freed oldest first
        assert ops.cached_bytes() == 8 << 20  # the two newest
        again = [block_of(4 << 20) for _ in range(2)]
        assert {b.ctypes.data for b in again} == set(addresses[1:])


def test_a_kept_block_serves_a_smaller_request_it_exceeds_by_at_most_an_eighth():
    """Batches of varying length reuse each other's blocks: a 4 MB block serves a 3644 KB request
    (4096 <= 3644 + 3644 / 8), not a 3640 KB one."""
    ops.empty_cache()
    block = block_of(4 << 20)
    address = block.ctypes.data
    del block
    assert block_of(3640 << 10).ctypes.data != address
    assert block_of(3644 << 10).ctypes.data == address
    ops.empty_cache()


def test_a_block_of_the_size_asked_for_comes_first_then_the_longest_kept_that_fits():
    """In a loop of one shape whose blocks differ a little in size, each request gets its own
    block back, so none sits idle until it is handed back."""
    ops.empty_cache()
    oldest, larger, exact = block_of(4352 << 10), block_of(4224 << 10), block_of(4 << 20)
    addresses = [oldest.ctypes.data, larger.ctypes.data, exact.ctypes.data]
    del oldest, larger, exact  # freed in this order
    first, second, third = block_of(4 << 20), block_of(4 << 20), block_of(4 << 20)
    got = [first.ctypes.data, second.ctypes.data, third.ctypes.data]
    assert got == [addresses[2], addresses[0], addresses[1]]  # exact, then oldest, then larger
    del first, second, third
    ops.empty_cache()


def test_of_equal_kept_blocks_the_newest_is_taken():
    ops.empty_cache()
    older, newer = block_of(4 << 20), block_of(4 << 20)
    address = newer.ctypes.data
    del older, newer  # freed in this order
    assert block_of(4 << 20).ctypes.data == address
    ops.empty_cache()


def test_a_larger_block_handed_out_comes_back_with_its_own_size():
    ops.empty_cache()
    block_of(4352 << 10)  # made and freed at once
    smaller = block_of(4 << 20)
    assert ops.cached_bytes() == 0
    del smaller
    assert ops.cached_bytes() == 4352 << 10
    ops.empty_cache()


def test_results_do_not_depend_on_a_larger_reused_block_full_of_nan():
    """Blocks of a longer call (T = 32), filled with NaN, serve a shorter one (T = 30): every
    output of the shorter call equals that of a call on fresh blocks."""
    T = 30
    case = {t: make_case("lstm", t, 33, 16, 64, np.float64, seed=7) for t in (T, T + 2)}
    with cache_limit(0):
        y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T])
        grads = ops.rnn_backward(cache, np.ones_like(y))
        want = [y.copy(), h_n.copy(), c_n.copy()] + [g.copy() for g in grads.values()]
        del y, h_n, c_n, cache, grads
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T + 2])
    grads = ops.rnn_backward(cache, np.ones_like(y))
    arrays = [y, h_n, c_n, *grads.values(), *cache.workspace.values()]
    held = {a.ctypes.data: a.nbytes for a in arrays}
    for a in arrays:
        a.fill(np.nan)
    del y, h_n, c_n, cache, grads, arrays, a
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case[T])
    grads = ops.rnn_backward(cache, np.ones_like(y))
    gates = cache.workspace["gates"]
    assert held.get(gates.ctypes.data, 0) > gates.nbytes  # the longer call's, larger block
    for got, expected in zip([y, h_n, c_n, *grads.values()], want):
        np.testing.assert_array_equal(got, expected)
    ops.empty_cache()


def test_a_kept_block_not_taken_again_while_1024_more_come_back_is_handed_back():
    """Calls whose shapes keep changing fill the cache less: of 1100 blocks freed, the newest
    1024 are kept, well under the limit."""
    ops.empty_cache()
    blocks = [block_of(128 << 10) for _ in range(1100)]
    addresses = [b.ctypes.data for b in blocks]
    for i in range(1100):
        blocks[i] = None  # freed oldest first
    assert ops.cached_bytes() == 1024 * (128 << 10)
    again = [block_of(128 << 10) for _ in range(1024)]
    assert {b.ctypes.data for b in again} == set(addresses[-1024:])
    del again
    ops.empty_cache()


def test_a_block_idle_while_1024_others_come_back_goes_even_with_few_blocks_kept():
    """The idle count is of blocks coming back, not of blocks kept: one block taken and freed
    again 1024 times pushes out a block freed before them, though only two are ever kept."""
    ops.empty_cache()
    block_of(128 << 10)
    for _ in range(1023):
        block_of(256 << 10)
    assert ops.cached_bytes() == (128 + 256) << 10  # 1023 came back after it: still kept
    block_of(256 << 10)
    assert ops.cached_bytes() == 256 << 10
    ops.empty_cache()


@pytest.mark.parametrize("nbytes", [np.int64(1 << 20), np.uint64(2**63 - 1), 0])
def test_set_cache_limit_takes_numpy_integers(nbytes):
    with cache_limit(nbytes):
        assert ops.get_cache_limit() == int(nbytes)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_kept_blocks_go_back_when_a_request_of_another_size_fails():
    code = textwrap.dedent("""
        import resource, numpy as np
        from fastrnn import ops
        block = lambda n: ops.matmul(np.ones((n // 4096, 1), np.float32), np.ones((1, 1024), np.float32))
        kept = [block((40 + i) << 20) for i in range(8)]
        del kept
        assert ops.cached_bytes() > 300 << 20
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (200 << 20), resource.RLIM_INFINITY))
        big = block(300 << 20)  # fits only once the kept blocks are handed back
        print("ok", ops.cached_bytes())
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("ok 0"), run.stderr[-500:]


@pytest.mark.parametrize("value, limit", [("4096", 4096), (" 0 ", 0), ("", 2**30)])
def test_fastrnn_cache_limit_sets_the_limit_at_import(value, limit):
    code = "from fastrnn import ops; print(ops.get_cache_limit())"
    env = dict(os.environ, FASTRNN_CACHE_LIMIT=value)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == [str(limit)], run.stderr[-500:]


@pytest.mark.parametrize("value", ["1GB", "-1", "1e9", "\u00b2", str(2**63)])
def test_a_bad_fastrnn_cache_limit_fails_the_import_naming_it(value):
    env = dict(os.environ, FASTRNN_CACHE_LIMIT=value)
    run = subprocess.run([sys.executable, "-c", "import fastrnn.ops"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode != 0 and "FASTRNN_CACHE_LIMIT=" in run.stderr


@pytest.mark.parametrize("nbytes", [-1, 2**63, 1.5, True, None, "1024"])
def test_set_cache_limit_takes_only_a_byte_count(nbytes):
    before = ops.get_cache_limit()
    with pytest.raises(ValueError, match="nbytes must be an integer from 0"):
        ops.set_cache_limit(nbytes)
    assert ops.get_cache_limit() == before


def test_results_do_not_depend_on_what_a_reused_block_held_before():
    """Every output element is written by the kernels: a block that held NaNs gives the same
    results as a fresh one."""
    case = make_case("lstm", 30, 33, 16, 64, np.float64, seed=19)
    ops.empty_cache()
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case)
    grads = ops.rnn_backward(cache, np.ones_like(y))
    want = [y.copy(), h_n.copy(), c_n.copy()] + [g.copy() for g in grads.values()]
    held = {a.ctypes.data for a in [y, h_n, c_n, *grads.values(), *cache.workspace.values()]}
    for a in [y, h_n, c_n, *grads.values(), *cache.workspace.values()]:
        a.fill(np.nan)
    del y, h_n, c_n, cache, grads, a
    y, h_n, c_n, cache = ops.rnn_forward("lstm", **case)
    grads = ops.rnn_backward(cache, np.ones_like(y))
    assert y.ctypes.data in held and cache.workspace["gates"].ctypes.data in held
    for got, w in zip([y, h_n, c_n, *grads.values()], want):
        np.testing.assert_array_equal(got, w)
