"""The NumPy reference (``fastrnn.reference``) checked against independent computations.

- gradients: central finite differences of a scalar loss, in float64;
- forward: the cell equations of ``fastrnn.modes`` written out again here, per sample;
- ``lengths`` / ``reverse``: running the valid part of each sequence alone (and flipped);
- PyTorch, when it is installed: outputs and gradients of torch.nn.RNN / LSTM / GRU;
- float32: the float64 result rounded to float32.
"""
from __future__ import annotations

import numpy as np
import pytest

import conftest
from conftest import assert_same, make_case
from fastrnn.modes import GATES, PARAMS, STATES
from fastrnn.reference import rnn_backward, rnn_forward

MODES = list(GATES)

# Finite differences: with eps = 1e-6 the central difference is accurate to about
# eps**2 (truncation) + 1e-16 / eps (rounding), i.e. ~1e-10 for losses of size ~1.
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8


def loss_weights(mode, T, B, H, seed=1):
    """Random R (T, B, H), S (B, H), U (B, H) or None: loss = sum(y R) + sum(h_n S) + sum(c_n U)."""
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((T, B, H))
    S = rng.standard_normal((B, H))
    U = rng.standard_normal((B, H)) if "c" in STATES[mode] else None
    return R, S, U


def loss(mode, case, R, S, U, **options):
    y, h_n, c_n, _ = rnn_forward(mode, **case, training=False, **options)
    total = np.sum(y * R) + np.sum(h_n * S)
    if U is not None:
        total += np.sum(c_n * U)
    return total


def finite_difference(f, a):
    return conftest.finite_difference(f, a, FD_EPS)




# ----------------------------------------------------------------------------------------
# Gradients against finite differences


T, B, I, H = 4, 3, 3, 2
LENGTHS_WITH_0_AND_T = np.array([T, 0, 2])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", ["both", "none"])
@pytest.mark.parametrize("lengths", [None, LENGTHS_WITH_0_AND_T], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("initial_state", ["given", "none"])
def test_every_gradient_matches_finite_differences(mode, bias, lengths, reverse, initial_state):
    check_gradients(mode, bias, lengths, reverse, initial_state)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", ["ih_only", "hh_only"])
def test_gradients_with_one_bias_missing_match_finite_differences(mode, bias):
    check_gradients(mode, bias, LENGTHS_WITH_0_AND_T, reverse=True, initial_state="given")


def check_gradients(mode, bias, lengths, reverse, initial_state):
    """Analytic gradients of every input against finite differences of the loss."""
    case = make_case(mode, T, B, I, H, np.float64, seed=3)
    if bias in ("none", "hh_only"):
        case["b_ih"] = None
    if bias in ("none", "ih_only"):
        case["b_hh"] = None
    if initial_state == "none":
        case["h0"] = None
        case["c0"] = None
    if PARAMS[mode]:  # the cell's own parameters, nonzero
        rng = np.random.default_rng(4)
        case["params"] = {name: rng.uniform(-1, 1, width * H) for name, width in PARAMS[mode]}
    R, S, U = loss_weights(mode, T, B, H)
    options = dict(lengths=lengths, reverse=reverse)

    _, _, _, cache = rnn_forward(mode, **case, **options)
    grads = rnn_backward(cache, R, S, U)

    # A None initial state is a zero one; its gradient is taken at zero.
    if initial_state == "none":
        case["h0"] = np.zeros((B, H))
        if "c" in STATES[mode]:
            case["c0"] = np.zeros((B, H))
    expected_keys = {"x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"} | ({"c0"} if "c" in STATES[mode] else set())
    expected_keys |= {name for name, _ in PARAMS[mode]}
    assert set(grads) == expected_keys
    arrays = {**case, **case.get("params", {})}
    for name in expected_keys:
        if arrays[name] is None:
            assert grads[name] is None, name
            continue
        numeric = finite_difference(lambda: loss(mode, case, R, S, U, **options), arrays[name])
        np.testing.assert_allclose(grads[name], numeric, rtol=FD_RTOL, atol=FD_ATOL, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_without_dy_or_final_state_gradients_match_finite_differences(mode):
    """dy=None, dh_n=None and dc_n=None each mean zero."""
    case = make_case(mode, T, B, I, H, np.float64, seed=4)
    R, S, _ = loss_weights(mode, T, B, H)
    zero_R, zero_S = np.zeros_like(R), np.zeros_like(S)
    only_y = rnn_backward(rnn_forward(mode, **case)[3], R)
    only_h = rnn_backward(rnn_forward(mode, **case)[3], None, S)
    numeric_y = finite_difference(lambda: loss(mode, case, R, zero_S, None), case["w_hh"])
    numeric_h = finite_difference(lambda: loss(mode, case, zero_R, S, None), case["w_hh"])
    np.testing.assert_allclose(only_y["w_hh"], numeric_y, rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(only_h["w_hh"], numeric_h, rtol=FD_RTOL, atol=FD_ATOL)


def test_lstm_gradient_from_the_final_cell_state_alone_matches_finite_differences():
    case = make_case("lstm", T, B, I, H, np.float64, seed=5)
    R, S, U = loss_weights("lstm", T, B, H)
    _, _, _, cache = rnn_forward("lstm", **case)
    grads = rnn_backward(cache, None, None, U)
    numeric = finite_difference(lambda: loss("lstm", case, 0 * R, 0 * S, U), case["x"])
    np.testing.assert_allclose(grads["x"], numeric, rtol=FD_RTOL, atol=FD_ATOL)


# ----------------------------------------------------------------------------------------
# The forward pass, written out again from the equations of fastrnn.modes


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def hand_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step for one sample: x (I,), h (H,), c (H,) or None -> (h', c'), gate by gate."""
    Hn = h.shape[0]

    def pre(k):  # pre-activation parts of gate block k: input side, recurrent side
        rows = slice(k * Hn, (k + 1) * Hn)
        return w_ih[rows] @ x + b_ih[rows], w_hh[rows] @ h + b_hh[rows]

    if mode == "rnn_tanh":
        return np.tanh(sum(pre(0))), None
    if mode == "rnn_relu":
        return np.maximum(sum(pre(0)), 0), None
    if "c" in STATES[mode]:
        i = sigmoid(sum(pre(0)))
        f = sigmoid(sum(pre(1)))
        g = np.tanh(sum(pre(2)))
        o = sigmoid(sum(pre(3)))
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new
    r = sigmoid(sum(pre(0)))
    z = sigmoid(sum(pre(1)))
    n_input, n_recurrent = pre(2)
    if mode == "gru_reset_before":  # W_hn (r * h) + b_hn
        rows = slice(2 * Hn, 3 * Hn)
        n_recurrent = w_hh[rows] @ (r * h) + b_hh[rows]
        return (1 - z) * np.tanh(n_input + n_recurrent) + z * h, None
    n = np.tanh(n_input + r * n_recurrent)
    return (1 - z) * n + z * h, None


def hand_unroll(mode, case, steps):
    """Run hand_step over the given time steps, sample by sample: returns y (T, B, H), h_n, c_n."""
    x, h0, c0 = case["x"], case["h0"], case["c0"]
    y = np.zeros(x.shape[:2] + h0.shape[1:])  # (T, B, H)
    h_n, c_n = h0.copy(), None if c0 is None else c0.copy()
    for b in range(x.shape[1]):
        h, c = h0[b], None if c0 is None else c0[b]
        for t in steps:
            h, c = hand_step(mode, x[t, b], h, c, case["w_ih"], case["w_hh"], case["b_ih"], case["b_hh"])
            y[t, b] = h
        h_n[b] = h
        if c is not None:
            c_n[b] = c
    return y, h_n, c_n


@pytest.mark.parametrize("mode", MODES)
def test_one_step_follows_the_equations_of_modes(mode):
    case = make_case(mode, 1, 3, 4, 3, np.float64, seed=6)
    y, h_n, c_n, _ = rnn_forward(mode, **case)
    y_hand, h_hand, c_hand = hand_unroll(mode, case, range(1))
    np.testing.assert_allclose(y, y_hand, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h_n, h_hand, rtol=1e-13, atol=1e-14)
    if "c" in STATES[mode]:
        np.testing.assert_allclose(c_n, c_hand, rtol=1e-13, atol=1e-14)
    else:
        assert c_n is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_several_steps_chain_the_state_in_processing_order(mode, reverse):
    case = make_case(mode, 5, 2, 3, 3, np.float64, seed=7)
    y, h_n, c_n, _ = rnn_forward(mode, **case, reverse=reverse)
    steps = range(4, -1, -1) if reverse else range(5)
    y_hand, h_hand, c_hand = hand_unroll(mode, case, steps)
    np.testing.assert_allclose(y, y_hand, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n, h_hand, rtol=1e-12, atol=1e-14)
    if "c" in STATES[mode]:
        np.testing.assert_allclose(c_n, c_hand, rtol=1e-12, atol=1e-14)


def test_rnn_relu_clips_negative_pre_activations_to_zero():
    case = make_case("rnn_relu", 1, 2, 3, 3, np.float64, bias=False, seed=8)
    case["h0"][:] = 0
    case["w_ih"] = np.vstack([np.ones(3), -np.ones(3), np.zeros(3)])  # (H, I)
    case["x"][:] = 1.0
    y, _, _, _ = rnn_forward("rnn_relu", **case)
    np.testing.assert_array_equal(y[0], [[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]])


@pytest.mark.parametrize("mode", MODES)
def test_none_initial_state_equals_zeros(mode):
    case = make_case(mode, 3, 2, 3, 2, np.float64)
    zeros = np.zeros((2, 2))
    with_none = rnn_forward(mode, **{**case, "h0": None, "c0": None})
    with_zeros = rnn_forward(mode, **{**case, "h0": zeros, "c0": zeros if "c" in STATES[mode] else None})
    for a, b in zip(with_none[:3], with_zeros[:3]):
        assert_same(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_missing_biases_equal_zero_biases(mode):
    case = make_case(mode, 3, 2, 3, 2, np.float64, bias=False)
    zero = np.zeros(GATES[mode] * 2)
    y_none, h_none, _, _ = rnn_forward(mode, **case)
    y_zero, h_zero, _, _ = rnn_forward(mode, **{**case, "b_ih": zero, "b_hh": zero})
    assert_same(y_none, y_zero)
    assert_same(h_none, h_zero)


@pytest.mark.parametrize("mode", MODES)
def test_training_false_keeps_no_cache_and_gives_the_same_outputs(mode):
    case = make_case(mode, 3, 2, 3, 2, np.float64)
    trained = rnn_forward(mode, **case, training=True)
    inferred = rnn_forward(mode, **case, training=False)
    assert trained[3] is not None
    assert inferred[3] is None
    for a, b in zip(trained[:3], inferred[:3]):
        assert_same(a, b)


# ----------------------------------------------------------------------------------------
# lengths and reverse


def one_sequence(case, b, steps):
    """Sequence b alone, cut to its first ``steps`` steps (a batch of one)."""
    part = dict(case)
    part["x"] = case["x"][:steps, b:b + 1]
    part["h0"] = case["h0"][b:b + 1]
    if case["c0"] is not None:
        part["c0"] = case["c0"][b:b + 1]
    return part


LENGTHS = np.array([5, 0, 3, 1])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_padded_steps_output_zeros(mode, reverse):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    y, _, _, _ = rnn_forward(mode, **case, lengths=LENGTHS, reverse=reverse)
    for b, length in enumerate(LENGTHS):
        assert np.all(y[length:, b] == 0)


@pytest.mark.parametrize("mode", MODES)
def test_each_sequence_ends_where_it_would_alone(mode):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    y, h_n, c_n, _ = rnn_forward(mode, **case, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS):
        y_b, h_b, c_b, _ = rnn_forward(mode, **one_sequence(case, b, length))
        assert_same(y[:length, b], y_b[:, 0])
        assert_same(h_n[b], h_b[0])
        if "c" in STATES[mode]:
            assert_same(c_n[b], c_b[0])


def test_a_sequence_of_length_zero_keeps_its_initial_state():
    case = make_case("lstm", 5, 4, 3, 2, np.float64)
    _, h_n, c_n, _ = rnn_forward("lstm", **case, lengths=LENGTHS)
    np.testing.assert_array_equal(h_n[1], case["h0"][1])
    np.testing.assert_array_equal(c_n[1], case["c0"][1])


@pytest.mark.parametrize("mode", MODES)
def test_reverse_equals_running_the_flipped_valid_part_forward(mode):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    y, h_n, c_n, _ = rnn_forward(mode, **case, lengths=LENGTHS, reverse=True)
    for b, length in enumerate(LENGTHS):
        flipped = one_sequence(case, b, length)
        flipped["x"] = flipped["x"][::-1]
        y_b, h_b, c_b, _ = rnn_forward(mode, **flipped)
        assert_same(y[:length, b], y_b[::-1, 0])
        assert_same(h_n[b], h_b[0])
        if "c" in STATES[mode]:
            assert_same(c_n[b], c_b[0])


@pytest.mark.parametrize("mode", MODES)
def test_reverse_without_lengths_equals_forward_on_flipped_time(mode):
    case = make_case(mode, 5, 3, 3, 2, np.float64)
    y, h_n, _, _ = rnn_forward(mode, **case, reverse=True)
    y_f, h_f, _, _ = rnn_forward(mode, **{**case, "x": case["x"][::-1]})
    assert_same(y, y_f[::-1])
    assert_same(h_n, h_f)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_full_lengths_equal_no_lengths(mode, reverse):
    case = make_case(mode, 4, 3, 3, 2, np.float64)
    R, S, U = loss_weights(mode, 4, 3, 2)
    plain = rnn_forward(mode, **case, reverse=reverse)
    full = rnn_forward(mode, **case, reverse=reverse, lengths=[4, 4, 4])
    for a, b in zip(plain[:3], full[:3]):
        assert_same(a, b)
    g_plain, g_full = rnn_backward(plain[3], R, S, U), rnn_backward(full[3], R, S, U)
    for name in g_plain:
        assert_same(g_plain[name], g_full[name], name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_dy_at_padded_steps_has_no_effect(mode, reverse):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    R, S, U = loss_weights(mode, 5, 4, 2)
    noisy = R.copy()
    for b, length in enumerate(LENGTHS):
        noisy[length:, b] = 1e3
    clean = rnn_backward(rnn_forward(mode, **case, lengths=LENGTHS, reverse=reverse)[3], R, S, U)
    changed = rnn_backward(rnn_forward(mode, **case, lengths=LENGTHS, reverse=reverse)[3], noisy, S, U)
    for name in clean:
        assert_same(clean[name], changed[name], name)


@pytest.mark.parametrize("mode", MODES)
def test_padded_steps_get_zero_input_gradient(mode):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    R, S, U = loss_weights(mode, 5, 4, 2)
    _, _, _, cache = rnn_forward(mode, **case, lengths=LENGTHS)
    dx = rnn_backward(cache, R, S, U)["x"]
    for b, length in enumerate(LENGTHS):
        assert np.all(dx[length:, b] == 0)


# ----------------------------------------------------------------------------------------
# per-step masks: padding before, after, holes, all-masked rows

# (T, B) = (5, 5): pre-padding, post-padding, holes, nothing real, everything real.
MASK = np.array([[0, 1, 1, 0, 1],
                 [0, 1, 0, 0, 1],
                 [1, 1, 1, 0, 1],
                 [1, 0, 0, 0, 1],
                 [1, 0, 1, 0, 1]], dtype=bool)


def real_steps_alone(mode, case, mask, b, reverse):
    """Sequence b's real steps alone, packed together: (their positions, y at them, h_n, c_n)."""
    steps = np.flatnonzero(mask[:, b])
    part = one_sequence(case, b, case["x"].shape[0])
    part["x"] = part["x"][steps]
    y, h, c, _ = rnn_forward(mode, **part, reverse=reverse)
    return steps, y[:, 0], h[0], None if c is None else c[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_mask_runs_each_sequence_on_its_real_steps_alone(mode, reverse):
    case = make_case(mode, 5, 5, 3, 2, np.float64)
    y, h_n, c_n, _ = rnn_forward(mode, **case, mask=MASK, reverse=reverse)
    for b in range(MASK.shape[1]):
        steps, y_b, h_b, c_b = real_steps_alone(mode, case, MASK, b, reverse)
        assert_same(y[steps, b], y_b)
        assert np.all(y[~MASK[:, b], b] == 0)  # masked steps output zeros
        assert_same(h_n[b], h_b)
        if "c" in STATES[mode]:
            assert_same(c_n[b], c_b)
    np.testing.assert_array_equal(h_n[3], case["h0"][3])  # a row with no real step keeps h0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_prefix_mask_equals_its_lengths(mode, reverse):
    case = make_case(mode, 5, 4, 3, 2, np.float64)
    R, S, U = loss_weights(mode, 5, 4, 2)
    mask = np.arange(5)[:, None] < LENGTHS[None, :]  # (T, B)
    by_lengths = rnn_forward(mode, **case, lengths=LENGTHS, reverse=reverse)
    by_mask = rnn_forward(mode, **case, mask=mask.astype(np.uint8), reverse=reverse)
    for a, b in zip(by_lengths[:3], by_mask[:3]):
        assert_same(a, b)
    g_lengths, g_mask = rnn_backward(by_lengths[3], R, S, U), rnn_backward(by_mask[3], R, S, U)
    for name in g_lengths:
        assert_same(g_lengths[name], g_mask[name], name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_gradients_with_a_mask_match_finite_differences(mode, reverse):
    case = make_case(mode, 5, 5, 3, 2, np.float64, seed=6)
    R, S, U = loss_weights(mode, 5, 5, 2)
    _, _, _, cache = rnn_forward(mode, **case, mask=MASK, reverse=reverse)
    grads = rnn_backward(cache, R, S, U)
    for name in grads:
        if case.get(name) is None:
            continue
        numeric = finite_difference(lambda: loss(mode, case, R, S, U, mask=MASK, reverse=reverse),
                                    case[name])
        np.testing.assert_allclose(grads[name], numeric, rtol=FD_RTOL, atol=FD_ATOL, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_masked_steps_take_no_gradient(mode):
    case = make_case(mode, 5, 5, 3, 2, np.float64)
    R, S, U = loss_weights(mode, 5, 5, 2)
    noisy = np.where(MASK[:, :, None], R, 1e3)
    clean = rnn_backward(rnn_forward(mode, **case, mask=MASK)[3], R, S, U)
    changed = rnn_backward(rnn_forward(mode, **case, mask=MASK)[3], noisy, S, U)
    for name in clean:
        assert_same(clean[name], changed[name], name)
    assert np.all(clean["x"][~MASK] == 0)


# ----------------------------------------------------------------------------------------
# float32


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_float32_equals_float64_rounded(mode, reverse):
    """Same float32-representable inputs in both precisions: only the arithmetic differs."""
    case32 = make_case(mode, 5, 3, 4, 3, np.float32, seed=9)
    case64 = {k: None if a is None else a.astype(np.float64) for k, a in case32.items()}
    R, S, U = loss_weights(mode, 5, 3, 3)
    lengths = [5, 2, 0]

    out32 = rnn_forward(mode, **case32, lengths=lengths, reverse=reverse)
    out64 = rnn_forward(mode, **case64, lengths=lengths, reverse=reverse)
    grads32 = rnn_backward(out32[3], R.astype(np.float32), S.astype(np.float32),
                           None if U is None else U.astype(np.float32))
    grads64 = rnn_backward(out64[3], R, S, U)

    for got, want in [*zip(out32[:3], out64[:3]), *((grads32[k], grads64[k]) for k in grads64)]:
        if want is None:
            assert got is None
            continue
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------
# PyTorch


def torch_layer(torch, mode, input_size, hidden_size, bias, bidirectional):
    kind = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
    extra = {"nonlinearity": mode[4:]} if mode.startswith("rnn_") else {}
    return kind[mode](input_size=input_size, hidden_size=hidden_size, bias=bias, bidirectional=bidirectional,
                      dtype=torch.float64, **extra)


def run_torch(torch, mode, case, R, S, U, lengths, reverse):
    """Loss = sum(y R) + sum(h_n S) (+ sum(c_n U)) through torch; returns outputs and gradients.

    With reverse, the weights and state go into the reverse direction of a bidirectional
    layer, and only that direction's outputs enter the loss.
    """
    torch.manual_seed(0)
    Hn = case["w_hh"].shape[1]
    layer = torch_layer(torch, mode, case["x"].shape[2], Hn, case["b_ih"] is not None, reverse)
    suffix = "_l0_reverse" if reverse else "_l0"
    names = ["w_ih", "w_hh"] + (["b_ih", "b_hh"] if case["b_ih"] is not None else [])
    params = {}
    with torch.no_grad():
        for name in names:
            param = getattr(layer, name.replace("w_", "weight_").replace("b_", "bias_") + suffix)
            param.copy_(torch.from_numpy(case[name]))
            params[name] = param

    d = 1 if reverse else 0
    x = torch.tensor(case["x"], requires_grad=True)
    states = [torch.tensor(case["h0"])] + ([torch.tensor(case["c0"])] if "c" in STATES[mode] else [])
    full_states = []
    for s in states:
        other = torch.randn_like(s)
        full = torch.stack([other, s] if reverse else [s]).requires_grad_(True)  # (D, B, H)
        full_states.append(full)
    hx = tuple(full_states) if "c" in STATES[mode] else full_states[0]

    if lengths is None:
        out, h_last = layer(x, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False)
        packed_out, h_last = layer(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, total_length=x.shape[0])
    h_last, c_last = h_last if "c" in STATES[mode] else (h_last, None)
    y = out[..., d * Hn:(d + 1) * Hn]  # (T, B, H) of the direction under test
    total = (y * torch.from_numpy(R)).sum() + (h_last[d] * torch.from_numpy(S)).sum()
    if c_last is not None:
        total = total + (c_last[d] * torch.from_numpy(U)).sum()
    total.backward()

    outputs = [y.detach().numpy(), h_last[d].detach().numpy(),
               None if c_last is None else c_last[d].detach().numpy()]
    grads = {"x": x.grad.numpy(), "h0": full_states[0].grad[d].numpy()}
    if "c" in STATES[mode]:
        grads["c0"] = full_states[1].grad[d].numpy()
    grads.update({name: params[name].grad.numpy() for name in params})
    return outputs, grads


T_T, B_T, I_T, H_T = 5, 3, 4, 3
TORCH_MODES = [m for m in MODES if m != "gru_reset_before" and not PARAMS[m]]  # torch: reset after only, no peepholes


@pytest.mark.parametrize("mode", TORCH_MODES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("lengths", [None, [5, 1, 3]], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_outputs_and_gradients_match_pytorch(mode, bias, lengths, reverse):
    torch = pytest.importorskip("torch")
    case = make_case(mode, T_T, B_T, I_T, H_T, np.float64, bias=bias, seed=10)
    R, S, U = loss_weights(mode, T_T, B_T, H_T)

    y, h_n, c_n, cache = rnn_forward(mode, **case, lengths=lengths, reverse=reverse)
    grads = rnn_backward(cache, R, S, U)
    torch_outputs, torch_grads = run_torch(torch, mode, case, R, S, U, lengths, reverse)

    for name, ours, theirs in zip(["y", "h_n", "c_n"], [y, h_n, c_n], torch_outputs):
        if theirs is None:
            assert ours is None
            continue
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-13, err_msg=name)
    for name, theirs in torch_grads.items():
        np.testing.assert_allclose(grads[name], theirs, rtol=1e-11, atol=1e-13, err_msg=name)
    if not bias:
        assert grads["b_ih"] is None and grads["b_hh"] is None
