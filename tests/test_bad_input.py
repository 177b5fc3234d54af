"""Bad input and edge cases, for every implementation of the functional API.

Each test runs against ``fastrnn.reference`` and ``fastrnn.ops`` (the C++ kernels), which
share their argument checks (``fastrnn._args``) and so must fail the same way: TypeError for
wrong types and dtypes, ValueError for wrong shapes and values, the message naming the
argument. Also: unusual memory layouts, inputs left untouched, empty sizes, NaN.
"""
from __future__ import annotations

import copy
import importlib
import pickle
import re

import numpy as np
import pytest

from conftest import assert_same, make_case
from fastrnn.modes import GATES, STATES

MODES = list(GATES)
ARRAY_ARGS = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
T, B, I, H = 4, 3, 5, 2


@pytest.fixture(params=["fastrnn.reference", "fastrnn.ops"])
def impl(request):
    """The module under test: it provides rnn_forward and rnn_backward."""
    return importlib.import_module(request.param)


def lstm_case(dtype=np.float64):
    return make_case("lstm", T, B, I, H, dtype)


def raises(kind, message):
    """pytest.raises matching ``message`` literally."""
    return pytest.raises(kind, match=re.escape(message))




# ----------------------------------------------------------------------------------------
# Types and dtypes of the arrays


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("kind", [np.ma.masked_array, np.asmatrix], ids=["masked", "matrix"])
def test_a_masked_array_or_matrix_is_a_type_error_rather_than_a_silent_plain_array(impl, kind):
    """The kernels would drop a mask or matrix semantics; padding is given as lengths."""
    case = lstm_case()
    case["w_hh"] = kind(case["w_hh"])
    with raises(TypeError, "w_hh must be a plain numpy.ndarray"):
        impl.rnn_forward("lstm", **case)


@pytest.mark.parametrize("name", ARRAY_ARGS)
def test_an_array_argument_given_as_a_list_is_a_type_error_naming_it(impl, name):
    case = lstm_case()
    case[name] = case[name].tolist()
    with raises(TypeError, f"{name} must be a numpy.ndarray, got list"):
        impl.rnn_forward("lstm", **case)


@pytest.mark.parametrize("name", ARRAY_ARGS)
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128])
def test_an_array_argument_of_a_non_float_dtype_is_a_type_error_naming_it(impl, name, dtype):
    case = lstm_case()
    case[name] = case[name].astype(dtype)
    with raises(TypeError, f"{name} must have dtype float32 or float64, got {np.dtype(dtype)}"):
        impl.rnn_forward("lstm", **case)


@pytest.mark.parametrize("name", ["h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"])
def test_an_array_argument_of_another_dtype_than_x_is_a_type_error_naming_both(impl, name):
    case = lstm_case(np.float32)
    case[name] = case[name].astype(np.float64)
    with raises(TypeError, f"{name} has dtype float64 but x has float32"):
        impl.rnn_forward("lstm", **case)


# ----------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("name", ARRAY_ARGS)
def test_an_array_argument_with_an_extra_dimension_is_a_value_error_naming_it(impl, name):
    case = lstm_case()
    expected_ndim = case[name].ndim
    case[name] = case[name][None]
    with raises(ValueError, f"{name} must be {expected_ndim}-D"):
        impl.rnn_forward("lstm", **case)


@pytest.mark.parametrize("name, letters, expected", [
    ("w_hh", "(G*H, H)", (4 * H, H)),
    ("w_ih", "(G*H, I)", (4 * H, I)),
    ("b_ih", "(G*H,)", (4 * H,)),
    ("b_hh", "(G*H,)", (4 * H,)),
    ("h0", "(B, H)", (B, H)),
    ("c0", "(B, H)", (B, H)),
])
def test_an_array_argument_of_the_wrong_size_is_a_value_error_with_the_expected_shape(
        impl, name, letters, expected):
    case = lstm_case()
    case[name] = case[name][:-1]  # one row short
    with raises(ValueError, f"{name} must have shape {letters} = {expected}"):
        impl.rnn_forward("lstm", **case)


def test_the_shape_message_spells_out_mode_letters_and_sizes(impl):
    case = make_case("lstm", 2, 1, 32, 64, np.float32)
    case["w_ih"] = case["w_ih"][:, :31]
    message = "w_ih must have shape (G*H, I) = (256, 32) for mode 'lstm', got (256, 31)"
    with raises(ValueError, message):
        impl.rnn_forward("lstm", **case)


def test_the_hidden_size_is_read_from_w_hh_so_w_hh_with_too_few_rows_is_the_error(impl):
    case = make_case("gru", T, B, I, H, np.float64)
    case["w_hh"] = case["w_hh"][:2 * H]
    with raises(ValueError, f"w_hh must have shape (G*H, H) = {(3 * H, H)} for mode 'gru'"):
        impl.rnn_forward("gru", **case)


def test_x_with_the_wrong_batch_size_is_reported_against_h0(impl):
    case = lstm_case()
    case["x"] = case["x"][:, :-1]
    with raises(ValueError, f"h0 must have shape (B, H) = {(B - 1, H)}"):
        impl.rnn_forward("lstm", **case)


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "gru"])
def test_c0_for_a_mode_other_than_lstm_is_a_value_error(impl, mode):
    case = make_case(mode, T, B, I, H, np.float64)
    case["c0"] = np.zeros((B, H))
    with raises(ValueError, "c0 is only for mode 'lstm'"):
        impl.rnn_forward(mode, **case)


# ----------------------------------------------------------------------------------------
# mode, lengths, flags


def test_an_unknown_mode_is_a_value_error_listing_the_valid_ones(impl):
    case = lstm_case()
    with pytest.raises(ValueError) as error:
        impl.rnn_forward("LSTM", **case)
    for mode in MODES:
        assert repr(mode) in str(error.value)


@pytest.mark.parametrize("mode", [4, None, b"lstm"])
def test_a_mode_that_is_not_a_str_is_a_type_error(impl, mode):
    with raises(TypeError, "mode must be a str"):
        impl.rnn_forward(mode, **lstm_case())


@pytest.mark.parametrize("lengths", [[4, 4], [4, 4, 4, 4], [[4, 4, 4]], 4])
def test_lengths_of_the_wrong_shape_is_a_value_error(impl, lengths):
    with raises(ValueError, f"lengths must have shape (B,) = ({B},)"):
        impl.rnn_forward("lstm", **lstm_case(), lengths=lengths)


@pytest.mark.parametrize("lengths", [[4, -1, 2], [4, 5, 2]])
def test_lengths_outside_zero_to_T_is_a_value_error(impl, lengths):
    with raises(ValueError, f"lengths must lie in [0, T] = [0, {T}], got lengths[1] = {lengths[1]}"):
        impl.rnn_forward("lstm", **lstm_case(), lengths=lengths)


@pytest.mark.parametrize("lengths", [
    [4.0, 1.0, 2.0], np.array([4.0, 1.0, 2.0]), np.array([True, True, False]), ["4", "1", "2"],
])
def test_lengths_that_are_not_integers_is_a_type_error(impl, lengths):
    with raises(TypeError, "lengths must hold integers"):
        impl.rnn_forward("lstm", **lstm_case(), lengths=lengths)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("make", [lambda: np.ma.masked_array([4, 1, 2], mask=[False, True, False]),
                                  lambda: np.asmatrix([4, 1, 2])], ids=["masked", "matrix"])
def test_lengths_as_a_masked_array_or_matrix_is_a_type_error(impl, make):
    """A masked entry has no length to read; a matrix is 2-D. Neither is read as if it were plain."""
    lengths = make()
    with raises(TypeError, f"lengths must be a plain array of integers, got {type(lengths).__name__}"):
        impl.rnn_forward("lstm", **lstm_case(), lengths=lengths)


@pytest.mark.parametrize("lengths", [(4, 1, 2), np.array([4, 1, 2], dtype=np.uint8),
                                     np.array([4, 1, 2], dtype=np.int32)])
def test_lengths_may_be_any_array_like_of_integers(impl, lengths):
    case = lstm_case()
    want = impl.rnn_forward("lstm", **case, lengths=np.array([4, 1, 2]))
    got = impl.rnn_forward("lstm", **case, lengths=lengths)
    for a, b in zip(want[:3], got[:3]):
        assert_same(a, b)


def test_changing_lengths_after_the_forward_does_not_change_the_backward(impl):
    case = lstm_case()
    lengths = np.array([4, 1, 2])
    dy = np.ones((T, B, H))
    _, _, _, cache = impl.rnn_forward("lstm", **case, lengths=lengths)
    want = impl.rnn_backward(cache, dy)
    _, _, _, cache = impl.rnn_forward("lstm", **case, lengths=lengths)
    lengths[:] = 0
    got = impl.rnn_backward(cache, dy)
    for name in want:
        assert_same(want[name], got[name], name)


@pytest.mark.parametrize("mask", [[[True] * B] * T, np.ones((T, B), np.int64),
                                  np.ones((T, B), np.float32)], ids=["list", "int64", "float32"])
def test_a_mask_that_is_not_a_bool_or_uint8_array_is_a_type_error(impl, mask):
    with pytest.raises(TypeError, match="mask must"):
        impl.rnn_forward("lstm", **lstm_case(), mask=mask)


@pytest.mark.parametrize("shape", [(B, T), (T,), (T, B, 1)])
def test_a_mask_of_the_wrong_shape_is_a_value_error_naming_T_and_B(impl, shape):
    with raises(ValueError, f"mask must have shape (T, B) = ({T}, {B}), got {shape}"):
        impl.rnn_forward("lstm", **lstm_case(), mask=np.ones(shape, bool))


def test_lengths_and_a_mask_together_are_a_value_error(impl):
    with raises(ValueError, "give lengths or mask, not both"):
        impl.rnn_forward("lstm", **lstm_case(), lengths=[4, 4, 4], mask=np.ones((T, B), bool))


def test_a_uint8_mask_counts_any_nonzero_as_real(impl):
    case = lstm_case()
    mask = np.array([[1, 0, 7], [0, 255, 1], [1, 1, 0], [0, 0, 1]], np.uint8)
    want = impl.rnn_forward("lstm", **case, mask=mask != 0)
    got = impl.rnn_forward("lstm", **case, mask=mask)
    for a, b in zip(want[:3], got[:3]):
        assert_same(a, b)


def test_changing_the_mask_after_the_forward_does_not_change_the_backward(impl):
    case = lstm_case()
    mask = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1]], bool)
    dy = np.ones((T, B, H))
    want = impl.rnn_backward(impl.rnn_forward("lstm", **case, mask=mask)[3], dy)
    _, _, _, cache = impl.rnn_forward("lstm", **case, mask=mask)
    mask[:] = False
    got = impl.rnn_backward(cache, dy)
    for name in want:
        assert_same(want[name], got[name], name)


@pytest.mark.parametrize("flag", ["reverse", "training"])
def test_reverse_and_training_must_be_bools(impl, flag):
    with raises(TypeError, f"{flag} must be a bool, got str"):
        impl.rnn_forward("lstm", **lstm_case(), **{flag: "yes"})


# ----------------------------------------------------------------------------------------
# rnn_backward's arguments


def test_backward_without_a_cache_says_training_was_false(impl):
    _, _, _, cache = impl.rnn_forward("lstm", **lstm_case(), training=False)
    assert cache is None
    with raises(ValueError, "cache is None: rnn_forward was called with training=False"):
        impl.rnn_backward(cache, np.ones((T, B, H)))


@pytest.mark.parametrize("cache", [object(), {"x": 1}, (1, 2)])
def test_backward_with_a_foreign_cache_is_a_type_error(impl, cache):
    with pytest.raises(TypeError, match="cache"):
        impl.rnn_backward(cache, np.ones((T, B, H)))


@pytest.mark.parametrize("name, shape", [("dy", (T, B, H + 1)), ("dy", (B, H)),
                                         ("dh_n", (B + 1, H)), ("dh_n", (T, B, H)),
                                         ("dc_n", (B, H - 1))])
def test_incoming_gradients_of_the_wrong_shape_are_value_errors_naming_them(impl, name, shape):
    _, _, _, cache = impl.rnn_forward("lstm", **lstm_case())
    with raises(ValueError, f"{name} must"):
        impl.rnn_backward(cache, **{"dy": None, name: np.ones(shape)})


@pytest.mark.parametrize("name, shape", [("dy", (T, B, H)), ("dh_n", (B, H)), ("dc_n", (B, H))])
def test_incoming_gradients_of_another_dtype_are_type_errors_naming_them(impl, name, shape):
    _, _, _, cache = impl.rnn_forward("lstm", **lstm_case(np.float32))
    with raises(TypeError, f"{name} has dtype float64 but x has float32"):
        impl.rnn_backward(cache, **{"dy": None, name: np.ones(shape)})


@pytest.mark.parametrize("name, shape", [("dy", (T, B, H)), ("dh_n", (B, H)), ("dc_n", (B, H))])
def test_incoming_gradients_given_as_lists_are_type_errors_naming_them(impl, name, shape):
    _, _, _, cache = impl.rnn_forward("lstm", **lstm_case())
    with raises(TypeError, f"{name} must be a numpy.ndarray, got list"):
        impl.rnn_backward(cache, **{"dy": None, name: np.ones(shape).tolist()})


def test_dc_n_for_a_mode_other_than_lstm_is_a_value_error(impl):
    _, _, _, cache = impl.rnn_forward("gru", **make_case("gru", T, B, I, H, np.float64))
    with raises(ValueError, "dc_n is only for mode 'lstm'"):
        impl.rnn_backward(cache, None, None, np.ones((B, H)))


# ----------------------------------------------------------------------------------------
# Memory layouts and untouched inputs


def run_both_passes(impl, mode, case, seeds, **options):
    """Forward, then backward with dy, dh_n (and dc_n): all outputs and gradients in one dict."""
    y, h_n, c_n, cache = impl.rnn_forward(mode, **case, **options)
    grads = impl.rnn_backward(cache, *seeds)
    return {"y": y, "h_n": h_n, "c_n": c_n, **{f"d{k}": v for k, v in grads.items()}}


def incoming(mode, dtype=np.float64):
    rng = np.random.default_rng(2)
    dy, dh_n = rng.standard_normal((T, B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    dc_n = rng.standard_normal((B, H)).astype(dtype) if "c" in STATES[mode] else None
    return dy, dh_n, dc_n


def strided(a):
    """The same values as a non-contiguous view (every other element of a bigger array)."""
    big = np.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    return big[..., 0]


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", [strided, np.asfortranarray, read_only],
                         ids=["strided", "fortran", "read_only"])
def test_unusual_memory_layouts_give_the_same_results(impl, mode, layout):
    case = make_case(mode, T, B, I, H, np.float64)
    seeds = incoming(mode)
    options = dict(lengths=[4, 0, 2], reverse=True)
    want = run_both_passes(impl, mode, case, seeds, **options)
    other_case = {k: None if a is None else layout(a) for k, a in case.items()}
    other_seeds = [None if a is None else layout(a) for a in seeds]
    if layout is strided:
        assert not other_case["x"].flags.c_contiguous
    got = run_both_passes(impl, mode, other_case, other_seeds, **options)
    for name in want:
        assert_same(got[name], want[name], name)


@pytest.mark.parametrize("mode", MODES)
def test_inputs_are_not_modified(impl, mode):
    case = make_case(mode, T, B, I, H, np.float64)
    dy, dh_n, dc_n = incoming(mode)
    arrays = {**case, "dy": dy, "dh_n": dh_n, "dc_n": dc_n, "lengths": np.array([4, 0, 2])}
    before = {name: None if a is None else a.copy() for name, a in arrays.items()}
    run_both_passes(impl, mode, case, (dy, dh_n, dc_n), lengths=arrays["lengths"], reverse=True)
    for name, a in arrays.items():
        if a is not None:
            np.testing.assert_array_equal(a, before[name], err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_the_final_state_is_a_new_array_not_the_initial_one(impl, mode):
    case = make_case(mode, T, B, I, H, np.float64)
    _, h_n, c_n, _ = impl.rnn_forward(mode, **case, lengths=[0, 0, 0])
    assert not np.shares_memory(h_n, case["h0"])
    if "c" in STATES[mode]:
        assert not np.shares_memory(c_n, case["c0"])


# ----------------------------------------------------------------------------------------
# Empty sizes


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("initial_state", ["given", "none"])
def test_zero_steps_output_nothing_and_keep_the_initial_state(impl, mode, initial_state, training):
    case = make_case(mode, 0, B, I, H, np.float64)
    if initial_state == "none":
        case["h0"] = case["c0"] = None
    y, h_n, c_n, _ = impl.rnn_forward(mode, **case, training=training)
    assert y.shape == (0, B, H)
    expected_h = np.zeros((B, H)) if case["h0"] is None else case["h0"]
    np.testing.assert_array_equal(h_n, expected_h)
    if "c" in STATES[mode]:
        expected_c = np.zeros((B, H)) if case["c0"] is None else case["c0"]
        np.testing.assert_array_equal(c_n, expected_c)


@pytest.mark.parametrize("mode", MODES)
def test_zero_steps_pass_the_final_state_gradient_straight_to_the_initial_state(impl, mode):
    case = make_case(mode, 0, B, I, H, np.float64)
    dh_n = np.full((B, H), 2.0)
    dc_n = np.full((B, H), 3.0) if "c" in STATES[mode] else None
    _, _, _, cache = impl.rnn_forward(mode, **case, lengths=[0, 0, 0])
    grads = impl.rnn_backward(cache, np.zeros((0, B, H)), dh_n, dc_n)
    assert grads["x"].shape == (0, B, I)
    np.testing.assert_array_equal(grads["h0"], dh_n)
    if "c" in STATES[mode]:
        np.testing.assert_array_equal(grads["c0"], dc_n)
    for name in ["w_ih", "w_hh", "b_ih", "b_hh"]:
        assert grads[name].shape == case[name].shape
        assert np.all(grads[name] == 0), name


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_batch_gives_empty_outputs_and_zero_weight_gradients(impl, mode):
    case = make_case(mode, T, 0, I, H, np.float64)
    y, h_n, c_n, cache = impl.rnn_forward(mode, **case, lengths=[])
    assert y.shape == (T, 0, H)
    assert h_n.shape == (0, H)
    assert (c_n.shape == (0, H)) if "c" in STATES[mode] else (c_n is None)
    grads = impl.rnn_backward(cache, np.zeros((T, 0, H)))
    assert grads["x"].shape == (T, 0, I)
    assert grads["h0"].shape == (0, H)
    for name in ["w_ih", "w_hh", "b_ih", "b_hh"]:
        assert grads[name].shape == case[name].shape
        assert np.all(grads[name] == 0), name


# ----------------------------------------------------------------------------------------
# dtype kept, NaN propagated


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_outputs_and_gradients_keep_the_input_dtype(impl, mode, dtype):
    case = make_case(mode, T, B, I, H, dtype)
    results = run_both_passes(impl, mode, case, incoming(mode, dtype))
    for name, a in results.items():
        if a is not None:
            assert a.dtype == dtype, name


@pytest.mark.parametrize("mode", MODES)
def test_nan_in_x_propagates_to_later_outputs_of_its_sequence_only(impl, mode):
    case = make_case(mode, T, B, I, H, np.float64)
    case["x"][1, 0, 0] = np.nan
    y, h_n, _, _ = impl.rnn_forward(mode, **case)
    assert np.all(np.isnan(y[1:, 0]))
    assert np.all(np.isnan(h_n[0]))
    assert np.all(np.isfinite(y[0]))
    assert np.all(np.isfinite(y[:, 1:]))


def test_a_cache_serves_one_backward(impl):
    y, _, _, cache = impl.rnn_forward("lstm", **lstm_case())
    impl.rnn_backward(cache, np.ones_like(y))
    with pytest.raises(RuntimeError, match="already used by rnn_backward"):
        impl.rnn_backward(cache, np.ones_like(y))


def test_a_shallow_copy_of_a_cache_is_refused(impl):
    """It would share the workspace backward overwrites, and so give a second, wrong, backward."""
    _, _, _, cache = impl.rnn_forward("lstm", **lstm_case())
    with raises(TypeError, "cannot be shallow-copied"):
        copy.copy(cache)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
                         ids=["deepcopy", "pickle"])
def test_a_deep_copy_of_a_cache_serves_a_backward_of_its_own(impl, mode, duplicate):
    case = make_case(mode, T, B, I, H, np.float64)
    y, _, _, cache = impl.rnn_forward(mode, **case)
    twin = duplicate(cache)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    want = impl.rnn_backward(cache, dy)
    got = impl.rnn_backward(twin, dy)
    for name, grad in want.items():
        assert_same(got[name], grad, name)
    with pytest.raises(RuntimeError, match="already used by rnn_backward"):
        impl.rnn_backward(twin, dy)
