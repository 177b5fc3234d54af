"""Whole-model gradients against central finite differences, in float64.

Sequential, functional (shared layers, initial states from other layers, branches joined,
several outputs with loss weights, models inside models) and subclassed models. For each model, ``model.compute_gradients(x, y)`` (forward, loss gradient, backward through
every layer and the kernels' BPTT) must match the finite-difference derivative of the
loss it reports, for every entry of every trainable parameter. eps = 1e-6; the
comparison uses rtol 1e-6 and atol 1e-9 (central differences in float64 are good to
about 1e-10 here).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import Sum, finite_difference
from fastrnn import Input, Model, Sequential
from fastrnn.layers import (GRU, LSTM, RNN, Activation, Attention, Bidirectional, Concatenate, Dense,
                            Dropout, Embedding, GRUCell, LSTMCell, Masking, SimpleRNN,
                            TimeDistributed)
from fastrnn.utils import set_random_seed

F64 = "float64"
EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-9


def numeric_gradient(loss, p):
    return finite_difference(loss, p, EPS)


def check_gradients(model, x, y, before_each=lambda: None):
    """Analytic gradients of every trainable parameter against finite differences.

    before_each: run before every evaluation (to reseed dropout, or reset a carried state).
    """
    def loss():
        before_each()
        return model.compute_gradients(x, y)[0]

    before_each()
    _, grads = model.compute_gradients(x, y)
    params = model.trainable_params
    assert len(grads) == len(params) > 0
    for k, (p, g) in enumerate(zip(params, grads)):
        np.testing.assert_allclose(g, numeric_gradient(loss, p), rtol=RTOL, atol=ATOL,
                                   err_msg=f"parameter {k} of shape {p.shape}")


def build(layers, loss, input_shape):
    set_random_seed(0)
    model = Sequential(layers)
    model.build(input_shape)
    model.compile(optimizer="sgd", loss=loss)
    return model


def data(B=3, T=4, F=2, seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, F))


def test_stacked_recurrent_layers_of_every_kind():
    model = build([SimpleRNN(3, return_sequences=True, dtype=F64),
                   LSTM(3, return_sequences=True, dtype=F64),
                   GRU(3, dtype=F64),
                   Dense(2, dtype=F64)], "mse", (None, 4, 2))
    check_gradients(model, data(), np.random.default_rng(2).standard_normal((3, 2)))


def test_relu_simple_rnn_and_sequence_outputs():
    model = build([SimpleRNN(3, activation="relu", return_sequences=True, dtype=F64),
                   Dense(2, activation="tanh", dtype=F64)], "mse", (None, 4, 2))
    check_gradients(model, data(), np.random.default_rng(2).standard_normal((3, 4, 2)))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_stacked_bidirectional_layers(merge_mode):
    model = build([Bidirectional(LSTM(3, return_sequences=True, dtype=F64), merge_mode=merge_mode),
                   Bidirectional(GRU(2, dtype=F64), merge_mode=merge_mode),
                   Dense(1, activation="sigmoid", dtype=F64)], "binary_crossentropy", (None, 4, 2))
    check_gradients(model, data(), np.array([[1.0], [0.0], [1.0]]))


def test_time_distributed_dense_and_activation_layers():
    model = build([LSTM(3, return_sequences=True, dtype=F64),
                   TimeDistributed(Dense(4, dtype=F64)),
                   Activation("softmax", dtype=F64)], "categorical_crossentropy", (None, 4, 2))
    targets = np.eye(4)[np.random.default_rng(3).integers(0, 4, (3, 4))]
    check_gradients(model, data(), targets)


def test_go_backwards_with_sequence_outputs():
    model = build([GRU(3, go_backwards=True, return_sequences=True, dtype=F64),
                   SimpleRNN(2, go_backwards=True, dtype=F64),
                   Dense(1, dtype=F64)], "mse", (None, 4, 2))
    check_gradients(model, data(), np.random.default_rng(2).standard_normal((3, 1)))


def padded_ids():
    return np.array([[3, 1, 4, 0, 0], [2, 2, 0, 0, 0], [1, 4, 3, 2, 1], [4, 0, 0, 0, 0]])


def test_masked_embedding_model_with_sequence_targets_and_masked_loss():
    # Padded steps change no state, and the loss ignores them (the output mask).
    model = build([Embedding(5, 3, mask_zero=True, dtype=F64),
                   LSTM(3, return_sequences=True, dtype=F64),
                   Bidirectional(SimpleRNN(2, return_sequences=True, dtype=F64)),
                   Dense(5, activation="softmax", dtype=F64)],
                  "sparse_categorical_crossentropy", (None, 5))
    ids = padded_ids()
    targets = np.roll(ids, -1, axis=1)
    check_gradients(model, ids, targets)


def test_masking_layer_with_padded_outputs_repeating_the_last_real_one():
    x = data(B=4, T=5)
    x[0, 3:] = 0.0
    x[1, 1:] = 0.0
    x[3, :] = 0.0
    model = build([Masking(dtype=F64),
                   SimpleRNN(3, return_sequences=True, dtype=F64),
                   GRU(3, return_sequences=True, dtype=F64),
                   LSTM(2, dtype=F64),
                   Dense(1, dtype=F64)], "mse", (None, 5, 2))
    check_gradients(model, x, np.random.default_rng(2).standard_normal((4, 1)))


@pytest.mark.parametrize("loss,activation,targets", [
    ("mse", None, lambda rng: rng.standard_normal((4, 3))),
    ("mae", "tanh", lambda rng: rng.standard_normal((4, 3))),
    ("binary_crossentropy", "sigmoid", lambda rng: rng.integers(0, 2, (4, 3)).astype(float)),
    ("categorical_crossentropy", "softmax", lambda rng: np.eye(3)[rng.integers(0, 3, 4)]),
    ("sparse_categorical_crossentropy", "softmax", lambda rng: rng.integers(0, 3, 4)),
])
def test_every_loss(loss, activation, targets):
    model = build([GRU(3, dtype=F64), Dense(3, activation=activation, dtype=F64)], loss, (None, 4, 2))
    check_gradients(model, data(B=4), targets(np.random.default_rng(5)))


def test_dropout_layers_with_a_fixed_seed():
    # A layer before the dropping LSTM, so the gradient of its dropped input is checked too.
    model = build([SimpleRNN(3, return_sequences=True, dtype=F64),
                   LSTM(3, dropout=0.3, return_sequences=True, dtype=F64),
                   Dropout(0.4, dtype=F64),
                   GRU(2, dtype=F64),
                   Dense(1, dtype=F64)], "mse", (None, 4, 2))
    check_gradients(model, data(B=5), np.ones((5, 1)), before_each=lambda: set_random_seed(9))


def test_stateful_layer_gradient_treats_the_carried_state_as_a_constant():
    # Truncated BPTT: the loss is differentiated with the carried-in state held fixed.
    model = build([LSTM(3, stateful=True, dtype=F64), Dense(1, dtype=F64)], "mse", (None, 4, 2))
    lstm = model.layers[0]
    model.predict(data(seed=7), verbose=0)  # now a state is carried
    carried = [s.copy() for s in lstm.states]
    assert np.abs(carried[0]).max() > 0.01
    check_gradients(model, data(), np.ones((3, 1)), before_each=lambda: lstm.reset_states(carried))


def test_frozen_layer_is_left_out_of_trainable_params():
    frozen = Embedding(5, 3, dtype=F64, trainable=False)
    model = build([frozen, GRU(2, dtype=F64), Dense(1, dtype=F64)], "mse", (None, 5))
    assert not any(p is frozen.embeddings for p in model.trainable_params)
    check_gradients(model, padded_ids() + 0, np.ones((4, 1)))


# ------------------------------------------------------------------------------------
# Functional, nested and subclassed models: gradients routed through the graph.

def functional(inputs, outputs, loss, **compile_args):
    model = Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=loss, **compile_args)
    return model


def f64_input(shape, **kwargs):
    return Input(shape=shape, dtype=F64, **kwargs)


def test_initial_state_gradients_reach_the_encoder_of_a_seq2seq_model():
    # The encoder's only way to the loss is the decoder's initial state.
    set_random_seed(0)
    encoder_in, decoder_in = f64_input((None, 2)), f64_input((None, 3))
    _, h, c = LSTM(3, return_state=True, dtype=F64)(encoder_in)
    decoded = LSTM(3, return_sequences=True, dtype=F64)(decoder_in, initial_state=[h, c])
    model = functional([encoder_in, decoder_in], Dense(3, activation="softmax", dtype=F64)(decoded),
                       "categorical_crossentropy")
    rng = np.random.default_rng(3)
    targets = np.eye(3)[rng.integers(0, 3, (3, 2))]
    check_gradients(model, [data(T=4, F=2), data(T=2, F=3, seed=2)], targets)


def test_a_gru_initial_state_from_a_dense_layer():
    set_random_seed(0)
    x_in, s_in = f64_input((4, 2)), f64_input((3,))
    h0 = Dense(2, activation="tanh", dtype=F64)(s_in)
    out = GRU(2, dtype=F64)(x_in, initial_state=h0)
    model = functional([x_in, s_in], Dense(1, dtype=F64)(out), "mse")
    check_gradients(model, [data(), np.random.default_rng(4).standard_normal((3, 3))], np.ones((3, 1)))


def test_a_layer_shared_between_two_branches_sums_its_gradients():
    set_random_seed(0)
    a, b = f64_input((4, 2)), f64_input((4, 2))
    shared = GRU(3, dtype=F64)
    merged = Sum(dtype=F64)([shared(a), Dense(3, dtype=F64)(shared(b))])
    model = functional([a, b], Dense(1, dtype=F64)(merged), "mse")
    check_gradients(model, [data(), data(seed=5)], np.random.default_rng(2).standard_normal((3, 1)))


def test_a_layer_shared_at_two_depths_and_a_tensor_used_twice():
    set_random_seed(0)
    x = f64_input((3,))
    shared = Dense(3, activation="tanh", dtype=F64)
    first = shared(x)
    second = shared(Dense(3, dtype=F64)(first))
    out = Dense(1, dtype=F64)(Sum(dtype=F64)([first, second, first]))
    model = functional(x, out, "mse")
    check_gradients(model, np.random.default_rng(1).standard_normal((4, 3)), np.ones((4, 1)))


def test_two_outputs_with_loss_weights_and_a_returned_state_as_an_output():
    set_random_seed(0)
    x = f64_input((4, 2))
    seq, h, _ = LSTM(3, return_sequences=True, return_state=True, dtype=F64)(x)
    tagged = Dense(2, activation="softmax", dtype=F64)(seq)
    model = functional(x, [tagged, h, Dense(1, activation="sigmoid", dtype=F64)(h)],
                       ["sparse_categorical_crossentropy", "mse", "binary_crossentropy"],
                       loss_weights=[0.3, 2.0, 1.5])
    rng = np.random.default_rng(6)
    check_gradients(model, data(), [rng.integers(0, 2, (3, 4)), rng.standard_normal((3, 3)),
                                    np.array([[1.0], [0.0], [1.0]])])


def test_a_masked_embedding_into_a_bidirectional_lstm_graph():
    set_random_seed(0)
    ids = Input(shape=(None,), dtype="int64")
    x = Embedding(5, 3, mask_zero=True, dtype=F64)(ids)
    x = Bidirectional(LSTM(2, return_sequences=True, dtype=F64))(x)
    model = functional(ids, Dense(5, activation="softmax", dtype=F64)(x), "sparse_categorical_crossentropy")
    check_gradients(model, padded_ids(), np.roll(padded_ids(), -1, axis=1))


def test_a_model_used_twice_inside_another_backpropagates_through_each_call():
    set_random_seed(0)
    inner_in = f64_input((4, 2))
    encoder = Model(inner_in, SimpleRNN(3, dtype=F64)(inner_in))
    a, b = f64_input((4, 2)), f64_input((4, 2))
    merged = Sum(dtype=F64)([encoder(a), encoder(b)])
    nested = Sequential([Dense(2, activation="tanh", dtype=F64), Dense(1, dtype=F64)])
    model = functional([a, b], nested(merged), "mse")
    assert len(model.trainable_params) == 3 + 4
    check_gradients(model, [data(), data(seed=7)], np.random.default_rng(2).standard_normal((3, 1)))


class TwoTowers(Model):
    """A subclassed model: a shared GRU over two inputs, a masked LSTM, a nested Sequential."""

    def __init__(self):
        super().__init__()
        self.tower = GRU(3, return_sequences=True, dtype=F64)
        self.merge = Sum(dtype=F64)
        self.embed = Embedding(5, 3, mask_zero=True, dtype=F64)
        self.reader = LSTM(3, dtype=F64)
        self.head = Sequential([Dense(2, activation="tanh", dtype=F64), Dense(1, dtype=F64)])

    def call(self, inputs, training=False):
        x, ids = inputs
        towers = self.merge([self.tower(x), self.tower(x[:, ::-1].copy()), self.embed(ids)])
        return self.head(self.reader(towers))


def test_a_subclassed_model_backpropagates_through_its_tape():
    set_random_seed(0)
    model = TwoTowers()
    model.compile(optimizer="sgd", loss="mse")
    ids = np.array([[1, 2, 3, 0], [4, 0, 0, 0], [2, 2, 2, 2]])
    x = data(T=4, F=3)
    check_gradients(model, [x, ids], np.random.default_rng(2).standard_normal((3, 1)))


def test_stacked_cells_pass_their_nested_states_to_another_rnn():
    set_random_seed(0)
    encoder_in, decoder_in = f64_input((None, 2)), f64_input((None, 3))
    _, *states = RNN([LSTMCell(3, dtype=F64), GRUCell(2, dtype=F64)], return_state=True,
                     dtype=F64)(encoder_in)
    assert [len(s) for s in states] == [2, 1]  # [h, c] of the LSTM cell, [h] of the GRU cell
    decoded = RNN([LSTMCell(3, dtype=F64), GRUCell(2, dtype=F64)], return_sequences=True,
                  dtype=F64)(decoder_in, initial_state=states)
    model = functional([encoder_in, decoder_in], Dense(1, dtype=F64)(decoded), "mse")
    check_gradients(model, [data(T=4, F=2), data(T=3, F=3, seed=2)],
                    np.random.default_rng(3).standard_normal((3, 3, 1)))


def test_a_bidirectional_encoders_states_joined_start_a_decoder_with_attention():
    # The encoder-decoder with attention: the decoder starts from both directions' states and
    # attends over the encoder's outputs; the attention scores are a second output with a loss.
    set_random_seed(0)
    encoder_in, decoder_in = f64_input((None, 2)), f64_input((None, 3))
    encoded, fh, fc, bh, bc = Bidirectional(LSTM(2, return_sequences=True, return_state=True,
                                                 dtype=F64))(encoder_in)
    h, c = Concatenate(dtype=F64)([fh, bh]), Concatenate(dtype=F64)([fc, bc])
    decoded = LSTM(4, return_sequences=True, dtype=F64)(decoder_in, initial_state=[h, c])
    context, scores = Attention(dtype=F64)([decoded, encoded], return_attention_scores=True)
    out = Dense(2, activation="softmax", dtype=F64)(Concatenate(dtype=F64)([decoded, context]))
    model = functional([encoder_in, decoder_in], [out, scores],
                       ["categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5])
    rng = np.random.default_rng(4)
    targets = [np.eye(2)[rng.integers(0, 2, (3, 3))], rng.random((3, 3, 4))]
    check_gradients(model, [data(T=4, F=2), data(T=3, F=3, seed=2)], targets)


def test_a_bidirectional_layer_started_from_given_states():
    set_random_seed(0)
    x_in, s_in = f64_input((4, 2)), f64_input((3,))
    states = [Dense(2, activation="tanh", dtype=F64)(s_in) for _ in range(2)]
    out = Bidirectional(GRU(2, dtype=F64))(x_in, initial_state=states)
    model = functional([x_in, s_in], Dense(1, dtype=F64)(out), "mse")
    check_gradients(model, [data(), np.random.default_rng(4).standard_normal((3, 3))], np.ones((3, 1)))


def test_an_activity_penalty_on_an_output_without_a_loss_still_trains_the_layers_before_it():
    set_random_seed(0)
    x = f64_input((4, 2))
    h = LSTM(3, dtype=F64)(x)
    judged = Dense(1, dtype=F64)(h)
    penalised = Dense(2, activity_regularizer="l2", dtype=F64)(h)
    model = functional(x, [judged, penalised], ["mse", None])
    check_gradients(model, data(), [np.ones((3, 1))])
