"""The kernels' paths through the time loop against the NumPy reference: which of them a call takes
depends on its sizes (inputs projected by one GEMM or step by step, single sequences on panels
of w_hh, chunks of steps, weights packed in blocks, bias sums in the loop). Tolerances as in
test_ops_reference.py.
"""
import sys

import numpy as np
import pytest

from conftest import make_case, steps_to_split_by_units
from fastrnn import ops, reference
from fastrnn.modes import GATES
from ops_checks import (MODES, assert_close, assert_inference_matches_reference, assert_matches_reference,
                        holey_mask, kernel_threads)


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
