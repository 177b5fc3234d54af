"""The C++ kernels (fastrnn.ops) against the NumPy reference (fastrnn.reference): every output and
every gradient, for every mode, dtype and size, padded and masked batches, either direction, with
and without biases and initial states, empty sequences, batches, inputs and hidden units.

float64 kernels must agree with the float64 reference to 1e-10 relative to the array's scale;
float32 kernels are compared with the float64 reference on the same inputs and must agree to
2e-5 relative to the scale (a few float32 rounding steps per time step).
"""
import numpy as np
import pytest

from conftest import make_case
from fastrnn import ops, reference
from ops_checks import (MODES, SIZES, assert_inference_matches_reference, assert_matches_reference,
                        holey_mask, kernel_threads, run)


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


def test_relu_passes_no_gradient_through_an_inactive_unit_not_even_nan():
    case = make_case("rnn_relu", 3, 2, 3, 4, np.float64, seed=12)
    case["b_ih"] = np.full(4, -100.0)  # every unit off
    y, _, _, cache = ops.rnn_forward("rnn_relu", **case)
    dy = np.full_like(y, np.nan)
    grads = ops.rnn_backward(cache, dy)
    assert not any(np.isnan(g).any() for g in grads.values() if g is not None)


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
