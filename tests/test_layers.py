"""The layers of ``fastrnn.layers`` against computations written independently in the tests.

Recurrent layers are checked against Keras's equations applied to Keras-layout weights,
one time step at a time (``keras_run`` below, which does not use ``fastrnn.modes``), and
against ``fastrnn.reference`` runs on sequences rearranged by hand (reversed, truncated
to their length, split in pieces). Everything runs in float64 with rtol 1e-10, except
where a test is about float32.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import finite_difference
from fastrnn import reference
from fastrnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout, Embedding,
                            Masking, SimpleRNN, TimeDistributed)
from fastrnn.modes import keras_to_kernel
from fastrnn.utils import get_rng, set_random_seed

RTOL = 1e-10
ATOL = 1e-12
F64 = "float64"


# ------------------------------------------------------------------------------------
# Keras's equations, written out for Keras-layout weights.

def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def keras_step(kind, x_t, h, c, kernel, recurrent, bias):
    """One step of Keras's cell: x_t (B, F), h, c (B, H) -> (h', c')."""
    if kind in ("tanh", "relu"):
        a = x_t @ kernel + h @ recurrent + bias  # (B, H)
        return (np.tanh(a) if kind == "tanh" else np.maximum(a, 0)), None
    if kind == "lstm":
        z = x_t @ kernel + h @ recurrent + bias  # (B, 4H), gates i, f, c, o
        i, f, g, o = np.split(z, 4, axis=1)
        c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c_new), c_new
    # GRU with reset_after: gates z, r, h; bias row 0 with the input, row 1 with the state.
    xz, xr, xh = np.split(x_t @ kernel + bias[0], 3, axis=1)  # (B, H) each
    hz, hr, hh = np.split(h @ recurrent + bias[1], 3, axis=1)  # (B, H) each
    z = sigmoid(xz + hz)
    r = sigmoid(xr + hr)
    candidate = np.tanh(xh + r * hh)
    return z * h + (1 - z) * candidate, None


def keras_run(kind, x, weights, h0=None, c0=None):
    """x (B, T, F) -> outputs (B, T, H), h (B, H), c (B, H) or None, by Keras's equations."""
    kernel, recurrent, bias = weights
    B, T, _ = x.shape
    H = recurrent.shape[0]
    h = np.zeros((B, H)) if h0 is None else h0
    c = (np.zeros((B, H)) if c0 is None else c0) if kind == "lstm" else None
    outputs = []
    for t in range(T):
        h, c = keras_step(kind, x[:, t], h, c, kernel, recurrent, bias)
        outputs.append(h)
    return np.stack(outputs, axis=1) if outputs else np.zeros((B, 0, H)), h, c


KINDS = {
    "tanh": lambda units, **kw: SimpleRNN(units, dtype=F64, **kw),
    "relu": lambda units, **kw: SimpleRNN(units, activation="relu", dtype=F64, **kw),
    "lstm": lambda units, **kw: LSTM(units, dtype=F64, **kw),
    "gru": lambda units, **kw: GRU(units, dtype=F64, **kw),
}


def random_weights(kind, F, H, seed=0):
    """Keras-layout weights with every entry random (biases too, so none is left untested)."""
    rng = np.random.default_rng(seed)
    G = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}[kind]
    bias_shape = (2, G * H) if kind == "gru" else (G * H,)
    scale = 0.6
    return [scale * rng.standard_normal((F, G * H)), scale * rng.standard_normal((H, G * H)),
            scale * rng.standard_normal(bias_shape)]


def make_layer(kind, F=3, H=4, seed=0, **kwargs):
    layer = KINDS[kind](H, input_shape=(None, F), **kwargs)
    layer.build((None, None, F))
    weights = random_weights(kind, F, H, seed)
    layer.set_weights(weights)
    return layer, weights


def random_x(B=3, T=5, F=3, seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, F))


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------
# Recurrent layers: plain outputs.

@pytest.mark.parametrize("kind", list(KINDS))
def test_sequence_output_follows_keras_equations(kind):
    layer, weights = make_layer(kind, return_sequences=True)
    x = random_x()
    expected, _, _ = keras_run(kind, x, weights)
    close(layer(x), expected)


@pytest.mark.parametrize("kind", list(KINDS))
def test_last_output_is_final_state(kind):
    layer, weights = make_layer(kind)
    x = random_x()
    _, h, _ = keras_run(kind, x, weights)
    close(layer(x), h)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_return_state_gives_output_and_final_states(kind):
    layer, weights = make_layer(kind, return_sequences=True, return_state=True)
    x = random_x()
    expected, h, c = keras_run(kind, x, weights)
    result = layer(x)
    assert len(result) == (3 if kind == "lstm" else 2)
    close(result[0], expected)
    close(result[1], h)
    if kind == "lstm":
        close(result[2], c)


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_initial_state_argument_starts_from_given_state(kind):
    layer, weights = make_layer(kind, return_sequences=True)
    x = random_x()
    rng = np.random.default_rng(5)
    h0, c0 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    states = [h0, c0] if kind == "lstm" else [h0]
    expected, _, _ = keras_run(kind, x, weights, h0, c0)
    close(layer(x, initial_state=states), expected)


def test_initial_state_of_wrong_shape_raises():
    layer, _ = make_layer("lstm")
    with pytest.raises(ValueError, match="initial state"):
        layer(random_x(), initial_state=[np.zeros((3, 5)), np.zeros((3, 5))])
    with pytest.raises(ValueError, match="2 array"):
        layer(random_x(), initial_state=[np.zeros((3, 4))])


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_go_backwards_reads_reversed_input_and_returns_outputs_in_reading_order(kind):
    layer, weights = make_layer(kind, return_sequences=True, go_backwards=True)
    x = random_x()
    expected, _, _ = keras_run(kind, x[:, ::-1], weights)
    close(layer(x), expected)


def test_float32_layer_computes_in_float32_and_matches_float64():
    x = random_x()
    weights = random_weights("lstm", 3, 4)
    l32 = LSTM(4, return_sequences=True, input_shape=(None, 3))
    l32.build((None, None, 3))
    l32.set_weights(weights)
    out = l32(x)
    assert out.dtype == np.float32
    expected, _, _ = keras_run("lstm", x, weights)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------
# Stateful layers.

@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_stateful_layer_continues_from_previous_batch(kind):
    layer, weights = make_layer(kind, return_sequences=True, stateful=True)
    x = random_x(T=6)
    expected, _, _ = keras_run(kind, x, weights)
    pieces = [layer(x[:, :2]), layer(x[:, 2:3]), layer(x[:, 3:])]
    close(np.concatenate(pieces, axis=1), expected)


def test_reset_states_makes_stateful_layer_start_from_zero():
    layer, weights = make_layer("lstm", stateful=True)
    x = random_x()
    first = layer(x)
    assert not np.allclose(layer(x), first)  # the carried state changed the result
    layer.reset_states()
    close(layer(x), first)


def test_stateful_layer_refuses_a_different_batch_size_until_reset():
    layer, _ = make_layer("gru", stateful=True)
    layer(random_x(B=3))
    with pytest.raises(ValueError, match="batch size 3"):
        layer(random_x(B=2))
    layer.reset_states()
    layer(random_x(B=2))


def test_non_stateful_layer_forgets_between_calls():
    layer, _ = make_layer("lstm")
    x = random_x()
    close(layer(x), layer(x))


# ------------------------------------------------------------------------------------
# Masks: post-padded batches (every other form: test_masks.py).

LENGTHS = np.array([5, 2, 0, 3])


def prefix_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)


def per_sequence(kind, x, weights, lengths, reverse=False):
    """Each sequence run alone on its real steps (reversed if asked): list of (outputs, h, c)."""
    runs = []
    for b, n in enumerate(lengths):
        seq = x[b:b + 1, :n]
        runs.append(keras_run(kind, seq[:, ::-1] if reverse else seq, weights))
    return runs


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_masked_final_state_is_state_after_last_real_step(kind):
    layer, weights = make_layer(kind)
    x = random_x(B=4, T=5)
    out = layer(x, mask=prefix_mask(LENGTHS, 5))
    for b, (_, h, _) in enumerate(per_sequence(kind, x, weights, LENGTHS)):
        close(out[b], h[0])


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_masked_sequence_output_repeats_last_real_output_as_keras_does(kind):
    layer, weights = make_layer(kind, return_sequences=True)
    x = random_x(B=4, T=5)
    out = layer(x, mask=prefix_mask(LENGTHS, 5))
    for b, (outputs, _, _) in enumerate(per_sequence(kind, x, weights, LENGTHS)):
        n = LENGTHS[b]
        close(out[b, :n], outputs[0])
        last = outputs[0, -1] if n else np.zeros(4)
        close(out[b, n:], np.broadcast_to(last, (5 - n, 4)))


def test_zero_output_for_mask_gives_zeros_at_padded_steps():
    layer, weights = make_layer("lstm", return_sequences=True, zero_output_for_mask=True)
    x = random_x(B=4, T=5)
    out = layer(x, mask=prefix_mask(LENGTHS, 5))
    assert np.all(out[~prefix_mask(LENGTHS, 5)] == 0)


@pytest.mark.parametrize("kind", ["tanh", "gru", "lstm"])
def test_masked_go_backwards_reads_each_real_part_from_its_end(kind):
    layer, weights = make_layer(kind, return_sequences=True, go_backwards=True)
    x = random_x(B=4, T=5)
    out = layer(x, mask=prefix_mask(LENGTHS, 5))
    for b, (outputs, _, _) in enumerate(per_sequence(kind, x, weights, LENGTHS, reverse=True)):
        n = LENGTHS[b]
        # Reading order: the padding (read first) gives zeros, then the real steps.
        close(out[b, :5 - n], np.zeros((5 - n, 4)))
        close(out[b, 5 - n:], outputs[0])


def test_full_mask_is_the_same_as_no_mask():
    layer, _ = make_layer("gru", return_sequences=True)
    x = random_x()
    close(layer(x, mask=np.ones((3, 5), bool)), layer(x))


def test_mask_of_wrong_shape_raises_value_error():
    layer, _ = make_layer("gru")
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, timesteps\)"):
        layer(random_x(), mask=np.ones((3, 4), bool))


def test_mask_shape_is_passed_on_only_with_return_sequences():
    mask = prefix_mask([5, 2, 1], 5)
    seq, _ = make_layer("lstm", return_sequences=True)
    last, _ = make_layer("lstm")
    assert seq.compute_mask(random_x(), mask) is mask
    assert last.compute_mask(random_x(), mask) is None


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", list(KINDS))
def test_final_state_agrees_with_the_numpy_reference_on_padded_batches(kind, go_backwards):
    # fastrnn.reference is the ground truth for the kernels: time-major input, lengths,
    # reverse for reading backwards, and PyTorch's layout (converted from Keras's here).
    layer, weights = make_layer(kind, go_backwards=go_backwards, return_state=True)
    x = random_x(B=4, T=5)
    mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(kind, kind)
    w_ih, w_hh, b_ih, b_hh = keras_to_kernel(mode, *weights)
    _, h_n, c_n, _ = reference.rnn_forward(mode, np.ascontiguousarray(x.transpose(1, 0, 2)), None,
                                           w_ih, w_hh, b_ih, b_hh, lengths=LENGTHS,
                                           reverse=go_backwards, training=False)
    result = layer(x, mask=prefix_mask(LENGTHS, 5))
    close(result[1], h_n)
    if kind == "lstm":
        close(result[2], c_n)


# ------------------------------------------------------------------------------------
# Dropout inside recurrent layers.

def test_recurrent_dropout_uses_one_input_mask_per_sequence_for_all_steps():
    rate = 0.4
    layer, weights = make_layer("gru", return_sequences=True, dropout=rate)
    x = random_x(B=6, T=5, F=3)
    set_random_seed(11)
    out = layer(x, training=True)
    # The documented draw: uniform (B, F) from the library generator, kept where >= rate.
    set_random_seed(11)
    keep = get_rng().random((6, 3)) >= rate
    dropped_x = x * (keep / (1 - rate))[:, None, :]
    expected, _, _ = keras_run("gru", dropped_x, weights)
    close(out, expected)
    assert 0 < keep.sum() < keep.size  # the seed really drops some features


def test_recurrent_dropout_is_off_in_inference():
    layer, weights = make_layer("lstm", dropout=0.5)
    x = random_x()
    _, h, _ = keras_run("lstm", x, weights)
    close(layer(x, training=False), h)


def test_recurrent_dropout_repeats_with_the_same_seed():
    layer, _ = make_layer("tanh", dropout=0.5)
    x = random_x()
    set_random_seed(3)
    a = layer(x, training=True)
    set_random_seed(3)
    b = layer(x, training=True)
    close(a, b)


def test_layer_seed_gives_its_own_repeatable_dropout_stream():
    x = random_x()
    a = SimpleRNN(4, dropout=0.5, seed=7, dtype=F64)
    b = SimpleRNN(4, dropout=0.5, seed=7, dtype=F64)
    a.build((None, None, 3))
    b.build((None, None, 3))
    b.set_weights(a.get_weights())
    get_rng().random(10)  # draws from the library's generator do not disturb the layer's own
    close(a(x, training=True), b(x, training=True))


# ------------------------------------------------------------------------------------
# Bidirectional.

MERGES = {
    "concat": lambda a, b: np.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2,
}


def make_bidirectional(kind, merge_mode="concat", return_sequences=True, F=3, H=4):
    layer = Bidirectional(KINDS[kind](H, return_sequences=return_sequences),
                          merge_mode=merge_mode, input_shape=(None, F))
    layer.build((None, None, F))
    fw, bw = random_weights(kind, F, H, seed=0), random_weights(kind, F, H, seed=1)
    layer.set_weights(fw + bw)
    return layer, fw, bw


@pytest.mark.parametrize("merge_mode", list(MERGES))
@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_bidirectional_sequences_merge_forward_and_reversed_backward_runs(kind, merge_mode):
    layer, fw, bw = make_bidirectional(kind, merge_mode)
    x = random_x()
    forward, _, _ = keras_run(kind, x, fw)
    backward, _, _ = keras_run(kind, x[:, ::-1], bw)
    close(layer(x), MERGES[merge_mode](forward, backward[:, ::-1]))


@pytest.mark.parametrize("merge_mode", ["concat", "mul"])
def test_bidirectional_last_output_merges_both_final_states(merge_mode):
    layer, fw, bw = make_bidirectional("lstm", merge_mode, return_sequences=False)
    x = random_x()
    _, h_f, _ = keras_run("lstm", x, fw)
    _, h_b, _ = keras_run("lstm", x[:, ::-1], bw)
    close(layer(x), MERGES[merge_mode](h_f, h_b))


def test_bidirectional_with_mask_reads_each_real_part_both_ways_and_zeroes_padding():
    layer, fw, bw = make_bidirectional("gru")
    x = random_x(B=4, T=5)
    out = layer(x, mask=prefix_mask(LENGTHS, 5))
    for b, n in enumerate(LENGTHS):
        forward, _, _ = keras_run("gru", x[b:b + 1, :n], fw)
        backward, _, _ = keras_run("gru", x[b:b + 1, :n][:, ::-1], bw)
        close(out[b, :n], np.concatenate([forward[0], backward[0, ::-1]], axis=-1))
        close(out[b, n:], np.zeros((5 - n, 8)))


def test_bidirectional_weights_are_forward_then_backward_in_keras_layout():
    layer, fw, bw = make_bidirectional("lstm")
    for got, want in zip(layer.get_weights(), fw + bw):
        close(got, want)
    assert [w.shape for w in layer.get_weights()] == [(3, 16), (4, 16), (16,)] * 2


def test_bidirectional_output_shape_and_names():
    layer, _, _ = make_bidirectional("lstm", "concat")
    assert layer.compute_output_shape((None, 7, 3)) == (None, 7, 8)
    assert layer.forward_layer.name.startswith("forward_")
    assert layer.backward_layer.name.startswith("backward_")
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards


def test_bidirectional_rejects_bad_merge_mode_and_non_recurrent_layers():
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(3), merge_mode="max")
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        Bidirectional(Dense(3))


# ------------------------------------------------------------------------------------
# Weights and construction of recurrent layers.

@pytest.mark.parametrize("kind,shapes", [
    ("tanh", [(3, 4), (4, 4), (4,)]),
    ("lstm", [(3, 16), (4, 16), (16,)]),
    ("gru", [(3, 12), (4, 12), (2, 12)]),
])
def test_get_weights_returns_keras_shapes_and_round_trips(kind, shapes):
    layer, weights = make_layer(kind)
    got = layer.get_weights()
    assert [w.shape for w in got] == shapes
    for g, w in zip(got, weights):
        close(g, w)


def test_parameters_are_kept_in_kernel_layout():
    layer, weights = make_layer("gru")
    w_ih, w_hh, b_ih, b_hh = keras_to_kernel("gru", *weights)
    for p, expected in zip(layer.params, (w_ih, w_hh, b_ih, b_hh)):
        close(p, expected)


def test_set_weights_with_wrong_count_or_shape_raises_naming_expected_shapes():
    layer, weights = make_layer("lstm")
    with pytest.raises(ValueError, match="expects 3 arrays"):
        layer.set_weights(weights[:2])
    with pytest.raises(ValueError, match=r"weight 1 must have shape \(4, 16\)"):
        layer.set_weights([weights[0], weights[1][:, :8], weights[2]])


def test_set_weights_does_not_replace_the_parameter_arrays():
    # Optimizers hold on to layer.params, so set_weights must write into them.
    layer, weights = make_layer("lstm")
    before = [id(p) for p in layer.params]
    layer.set_weights([w * 2 for w in weights])
    assert [id(p) for p in layer.params] == before


def test_layer_without_bias_has_two_weights_and_computes_with_zero_bias():
    layer = LSTM(4, use_bias=False, return_sequences=True, dtype=F64)
    layer.build((None, None, 3))
    kernel, recurrent, _ = random_weights("lstm", 3, 4)
    layer.set_weights([kernel, recurrent])
    x = random_x()
    expected, _, _ = keras_run("lstm", x, [kernel, recurrent, np.zeros(16)])
    close(layer(x), expected)
    assert len(layer.get_weights()) == 2


def test_lstm_unit_forget_bias_starts_forget_gate_bias_at_one():
    layer = LSTM(5, dtype=F64)
    layer.build((None, None, 2))
    bias = layer.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    plain = LSTM(5, unit_forget_bias=False)
    plain.build((None, None, 2))
    assert np.all(plain.get_weights()[2] == 0)


def test_default_initialisers_are_glorot_uniform_and_orthogonal():
    set_random_seed(0)
    layer = GRU(6, dtype=F64)
    layer.build((None, None, 4))
    kernel, recurrent, _ = layer.get_weights()
    limit = np.sqrt(6 / (4 + 18))  # glorot uniform for a (4, 18) kernel
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(6), atol=1e-12)  # orthonormal rows


def test_initialisation_repeats_with_the_same_seed():
    set_random_seed(4)
    a = LSTM(3)
    a.build((None, None, 2))
    set_random_seed(4)
    b = LSTM(3)
    b.build((None, None, 2))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("make,match", [
    (lambda: LSTM(3, activation="softmax"), "LSTM: activation must be an element-wise activation"),
    (lambda: GRU(3, recurrent_activation="nope"), "GRU: recurrent_activation must be"),
    (lambda: SimpleRNN(3, activation="glu"), "SimpleRNN: activation must be"),
    (lambda: LSTM(3, recurrent_dropout=1.0), "recurrent_dropout"),
    (lambda: LSTM(3, dropout=1.5), "dropout"),
    (lambda: LSTM(0), "units must be positive"),
    (lambda: GRU(3, kernel_initializer="nope"), "unknown initializer"),
])
def test_unsupported_recurrent_options_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_bad_units_type_is_a_type_error_and_a_dtype_not_computed_in_a_value_error():
    with pytest.raises(TypeError, match="units"):
        LSTM(2.5)
    with pytest.raises(ValueError, match="dtype"):
        LSTM(2, dtype="int32")


def test_recurrent_layer_rejects_wrong_rank_and_feature_size():
    layer, _ = make_layer("lstm")
    with pytest.raises(ValueError, match=r"rank 3 \(batch, timesteps, features\)"):
        layer(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expects 3 features"):
        layer(np.zeros((3, 5, 2)))


def test_recurrent_layer_config_round_trip_gives_same_outputs():
    layer, weights = make_layer("gru", return_sequences=True, go_backwards=True)
    twin = GRU.from_config(layer.get_config())
    twin.build((None, None, 3))
    twin.set_weights(weights)
    x = random_x()
    close(twin(x), layer(x))


# ------------------------------------------------------------------------------------
# Dense, Embedding, Masking, Dropout.

def make_dense(units=3, activation=None, F=4, seed=0):
    layer = Dense(units, activation=activation, dtype=F64)
    layer.build((None, F))
    rng = np.random.default_rng(seed)
    kernel, bias = rng.standard_normal((F, units)), rng.standard_normal(units)
    layer.set_weights([kernel, bias])
    return layer, kernel, bias


ACTIVATIONS = {
    None: lambda a: a,
    "linear": lambda a: a,
    "relu": lambda a: np.maximum(a, 0),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "softmax": lambda a: np.exp(a) / np.exp(a).sum(axis=-1, keepdims=True),
}


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_dense_computes_activation_of_affine_map(activation):
    layer, kernel, bias = make_dense(activation=activation)
    x = np.random.default_rng(2).standard_normal((5, 4))
    close(layer(x), ACTIVATIONS[activation](x @ kernel + bias))


def test_dense_on_sequences_acts_on_each_time_step():
    layer, _, _ = make_dense(activation="softmax")
    x = np.random.default_rng(2).standard_normal((2, 6, 4))
    out = layer(x)
    assert out.shape == (2, 6, 3)
    for t in range(6):
        close(out[:, t], layer(x[:, t]))


def test_dense_passes_the_mask_on():
    layer, _, _ = make_dense()
    mask = np.ones((2, 6), bool)
    assert layer.compute_mask(np.zeros((2, 6, 4)), mask) is mask


def test_dense_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        Dense(3, activation="swishy")


def test_time_distributed_dense_equals_dense_on_every_step():
    dense, kernel, bias = make_dense(activation="tanh")
    wrapped = TimeDistributed(Dense(3, activation="tanh", dtype=F64))
    wrapped.build((None, 6, 4))
    wrapped.set_weights([kernel, bias])
    x = np.random.default_rng(2).standard_normal((2, 6, 4))
    close(wrapped(x), np.tanh(x @ kernel + bias))
    assert wrapped.compute_output_shape((None, 6, 4)) == (None, 6, 3)


def test_time_distributed_model_takes_its_weights_in_a_model():
    import fastrnn

    inner = fastrnn.Sequential([fastrnn.Input((3,)), Dense(3), Dense(2, use_bias=False)])
    x = fastrnn.Input((5, 3))
    model = fastrnn.Model(x, TimeDistributed(inner)(x))
    weights = [np.full(w.shape, k, np.float32) for k, w in enumerate(model.get_weights(), 1)]
    model.set_weights(weights)
    for got, want in zip(model.get_weights() + inner.get_weights(), weights + weights):
        np.testing.assert_array_equal(got, want)


def test_time_distributed_refuses_recurrent_layers():
    with pytest.raises(ValueError, match="recurrent"):
        TimeDistributed(LSTM(3))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softmax", "linear"])
def test_activation_layer_applies_its_function(activation):
    x = np.random.default_rng(3).standard_normal((2, 5, 4))
    close(Activation(activation, dtype=F64)(x), ACTIVATIONS[activation](x))


def test_embedding_looks_up_rows_and_masks_zero_ids():
    layer = Embedding(10, 3, mask_zero=True, dtype=F64)
    ids = np.array([[1, 4, 0, 0], [9, 9, 9, 2]])
    out = layer(ids)
    table = layer.get_weights()[0]
    close(out, table[ids])
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)


def test_embedding_without_mask_zero_gives_no_mask():
    assert Embedding(5, 2).compute_mask(np.array([[0, 1]])) is None


def test_embedding_rejects_ids_out_of_range_and_non_integers():
    layer = Embedding(5, 2)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        layer(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="integer ids"):
        layer(np.array([[1.5, 2.0]]))
    with pytest.raises(TypeError, match="integer ids"):
        layer(np.array([[True, False]]))
    with pytest.raises(ValueError, match="from 1 to 18446744073709551615"):  # as given, not wrapped
        layer(np.array([[1, 2**64 - 1]], dtype=np.uint64))


def test_embedding_accepts_whole_floats_as_ids():
    layer = Embedding(5, 2, dtype=F64)
    close(layer(np.array([[1.0, 3.0]])), layer(np.array([[1, 3]])))


def test_masking_zeroes_and_masks_steps_equal_to_mask_value():
    layer = Masking(mask_value=-1.0, dtype=F64)
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    x[0, 3] = -1.0
    x[1, 2:] = -1.0
    expected_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    np.testing.assert_array_equal(layer.compute_mask(x), expected_mask)
    close(layer(x), x * expected_mask[..., None])


def test_masking_then_lstm_equals_lstm_on_truncated_sequences():
    lstm, weights = make_layer("lstm")
    x = random_x(B=4, T=5)
    x[~prefix_mask(LENGTHS, 5)] = 0.0
    masking = Masking(dtype=F64)
    out = lstm(masking(x), mask=masking.compute_mask(x))
    for b, (_, h, _) in enumerate(per_sequence("lstm", x, weights, LENGTHS)):
        close(out[b], h[0])


def test_dropout_is_identity_in_inference():
    x = np.random.default_rng(0).standard_normal((4, 5))
    close(Dropout(0.5, dtype=F64)(x), x)


def test_dropout_in_training_zeroes_or_scales_each_entry():
    x = np.random.default_rng(0).standard_normal((200, 50)) + 3
    set_random_seed(1)
    out = Dropout(0.3, dtype=F64)(x, training=True)
    kept = out != 0
    close(out[kept], x[kept] / 0.7)
    assert abs(1 - kept.mean() - 0.3) < 0.02  # 10000 draws: the dropped fraction is near 0.3


def test_dropout_noise_shape_shares_the_mask_along_axes_of_size_one():
    x = np.ones((4, 6, 5))
    set_random_seed(2)
    out = Dropout(0.5, noise_shape=(None, 1, 5), dtype=F64)(x, training=True)
    assert np.all(out == out[:, :1, :])


def test_dropout_rejects_rate_outside_unit_interval():
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)


# ------------------------------------------------------------------------------------
# Layer backward passes against finite differences (whole models are in
# test_model_gradients.py; these check return_state and initial_state gradients).

numeric_grad = finite_difference


def test_return_state_backward_takes_gradients_of_every_output():
    layer, _ = make_layer("lstm", return_sequences=True, return_state=True)
    x = random_x(B=2, T=3)
    rng = np.random.default_rng(3)
    R = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))]

    def loss():
        return sum(np.sum(o * r) for o, r in zip(layer(x), R))

    layer(x, training=True)
    dx = layer.backward(R)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(layer.grads[1], numeric_grad(loss, layer.w_hh), rtol=1e-6, atol=1e-9)


def test_initial_state_gradients_are_reported():
    layer, _ = make_layer("gru")
    x = random_x(B=2, T=3)
    h0 = np.random.default_rng(4).standard_normal((2, 4))
    R = np.random.default_rng(5).standard_normal((2, 4))

    def loss():
        return np.sum(layer(x, initial_state=[h0]) * R)

    layer(x, training=True, initial_state=[h0])
    layer.backward(R)
    np.testing.assert_allclose(layer.initial_state_grads[0], numeric_grad(loss, h0), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_sequence_output_backward_matches_finite_differences(go_backwards):
    # Keras's repeated last output at padded steps sends their gradient to the last real step.
    layer, _ = make_layer("gru", return_sequences=True, go_backwards=go_backwards)
    x = random_x(B=4, T=5)
    mask = prefix_mask(LENGTHS, 5)
    R = np.random.default_rng(6).standard_normal((4, 5, 4))

    def loss():
        return np.sum(layer(x, mask=mask) * R)

    layer(x, training=True, mask=mask)
    dx = layer.backward(R)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(layer.grads[0], numeric_grad(loss, layer.w_ih), rtol=1e-6, atol=1e-9)


def test_call_state_lets_a_layer_called_twice_backpropagate_through_each_call():
    from fastrnn.layers import Bidirectional, Dense, LSTM

    rng = np.random.default_rng(0)
    for layer, shape in ((Dense(3), (4, 5)), (Bidirectional(LSTM(3, return_sequences=True)), (2, 6, 5))):
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        dy_a = rng.standard_normal(layer(a).shape)
        dy_b = rng.standard_normal(dy_a.shape)
        layer(a, training=True)
        dx_a = layer.backward(dy_a)
        grads_a = [g.copy() for g in layer.grads]
        layer(b, training=True)
        dx_b = layer.backward(dy_b)
        grads_b = [g.copy() for g in layer.grads]

        layer(a, training=True)
        state_a = layer.call_state()
        layer(b, training=True)
        np.testing.assert_array_equal(layer.backward(dy_b), dx_b)
        assert all(np.array_equal(g, h) for g, h in zip(layer.grads, grads_b))
        layer.set_call_state(state_a)
        np.testing.assert_array_equal(layer.backward(dy_a), dx_a)
        assert all(np.array_equal(g, h) for g, h in zip(layer.grads, grads_a))
