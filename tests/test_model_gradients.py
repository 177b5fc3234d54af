"""Whole-model gradients against central finite differences, in float64.

For each model, ``model.compute_gradients(x, y)`` (forward, loss gradient, backward through
every layer and the kernels' BPTT) must match the finite-difference derivative of the
loss it reports, for every entry of every trainable parameter. eps = 1e-6; the
comparison uses rtol 1e-6 and atol 1e-9 (central differences in float64 are good to
about 1e-10 here).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import finite_difference
from fastrnn import Sequential
from fastrnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout, Embedding,
                            Masking, SimpleRNN, TimeDistributed)
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
