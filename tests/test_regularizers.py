"""Regularizers and constraints (fastrnn.regularizers, fastrnn.constraints) and how models
apply them, checked against Keras 3.

- Each regularizer's value and gradient against Keras's (through torch autograd), and the
  gradients against central differences in float64.
- Each constraint's projection against Keras's.
- A few training steps of small models whose layers carry regularizers, activity
  regularizers and constraints, from identical weights in fastrnn and Keras: the losses
  reported and the weights after each step agree (float32, rtol 1e-5).
"""
import os

import numpy as np
import pytest
from conftest import finite_difference

from fastrnn import constraints, regularizers
from fastrnn.layers import GRU, LSTM, Bidirectional, Dense, Embedding, SimpleRNN
from fastrnn.models import Sequential, load_model
from fastrnn.optimizers import SGD

# Keras turns torch tensors into arrays in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RTOL = 1e-5  # float32 training steps: a few float32 roundings apart
B, T, F, H = 4, 5, 3, 4


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def keras_value_and_grad(keras, fn, x):
    import torch

    t = torch.tensor(x, requires_grad=True)
    value = fn(t)
    value.backward()
    return float(value.detach()), t.grad.numpy()


REGULARIZERS = [
    ("L1", dict(l1=0.03)),
    ("L2", dict(l2=0.02)),
    ("L1L2", dict(l1=0.01, l2=0.05)),
    ("OrthogonalRegularizer", dict(factor=0.1)),
    ("OrthogonalRegularizer", dict(factor=0.1, mode="columns")),
]


@pytest.mark.parametrize("name, kwargs", REGULARIZERS)
def test_regularizer_value_and_gradient_match_keras(keras, name, kwargs):
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    x[0, 0] = 0.0  # |x| at 0: gradient 0 in both
    ours = getattr(regularizers, name)(**kwargs)
    value, grad = keras_value_and_grad(keras, getattr(keras.regularizers, name)(**kwargs), x)
    assert ours(x) == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(ours.gradient(x), grad, rtol=1e-5, atol=1e-7)
    assert ours.gradient(x).dtype == np.float32


@pytest.mark.parametrize("name, kwargs", REGULARIZERS)
def test_regularizer_gradient_matches_finite_differences(name, kwargs):
    x = np.random.default_rng(1).standard_normal((4, 6))
    reg = getattr(regularizers, name)(**kwargs)
    np.testing.assert_allclose(reg.gradient(x), finite_difference(lambda: reg(x), x), rtol=1e-6, atol=1e-9)


def test_orthogonal_regularizer_of_orthogonal_rows_is_zero_and_needs_a_matrix():
    reg = regularizers.OrthogonalRegularizer(1.0)
    assert reg(np.eye(3) * 2.5) == 0.0
    with pytest.raises(ValueError, match="2-D"):
        reg(np.ones(3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        reg(np.ones((1, 3)))


def test_regularizer_names_defaults_and_configs(keras):
    for name in ("l1", "l2", "L1", "L2", "l1l2", "orthogonal_regularizer"):
        ours, theirs = regularizers.get(name), keras.regularizers.get(name)
        assert type(ours).__name__ == type(theirs).__name__
        config, expected = ours.get_config(), theirs.get_config()  # Keras rounds some to float32
        assert config.keys() == expected.keys()
        assert all(config[k] == (pytest.approx(v, rel=1e-7) if isinstance(v, float) else v)
                   for k, v in expected.items())
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)  # as Keras's docs spell it
    assert regularizers.l2 is regularizers.L2 and regularizers.l1_l2 is regularizers.L1L2
    reg = regularizers.L1L2(l1=0.1, l2=0.2)
    twin = regularizers.deserialize(regularizers.serialize(reg))
    assert type(twin) is regularizers.L1L2 and twin.get_config() == {"l1": 0.1, "l2": 0.2}


def test_bad_regularizers_raise_clear_errors():
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="unknown regularizer"):
        regularizers.get("l3")
    with pytest.raises(TypeError, match="no gradient"):
        regularizers.get(lambda w: 0.0)
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")


CONSTRAINTS = [
    ("MaxNorm", dict(max_value=1.5)),
    ("MaxNorm", dict(max_value=1.0, axis=1)),
    ("MaxNorm", dict(max_value=2.0, axis=[0, 1])),
    ("NonNeg", {}),
    ("UnitNorm", {}),
    ("UnitNorm", dict(axis=1)),
    ("MinMaxNorm", dict(min_value=1.5, max_value=2.0)),
    ("MinMaxNorm", dict(min_value=0.5, max_value=1.0, rate=0.3, axis=1)),
]


@pytest.mark.parametrize("name, kwargs", CONSTRAINTS)
def test_constraint_matches_keras(keras, name, kwargs):
    w = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    ours = getattr(constraints, name)(**kwargs)(w)
    theirs = keras.ops.convert_to_numpy(getattr(keras.constraints, name)(**kwargs)(w))
    assert ours.dtype == np.float32 and ours.shape == w.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_constraint_names_configs_and_bad_arguments(keras):
    for name in ("max_norm", "non_neg", "unit_norm", "min_max_norm", "MaxNorm"):
        assert constraints.get(name).get_config() == keras.constraints.get(name).get_config()
    assert constraints.max_norm is constraints.MaxNorm
    twin = constraints.deserialize(constraints.serialize(constraints.MinMaxNorm(0.5, 2.0, 0.5, [0])))
    assert twin.get_config() == {"min_value": 0.5, "max_value": 2.0, "rate": 0.5, "axis": [0]}
    with pytest.raises(ValueError, match="axis"):
        constraints.MaxNorm(axis="rows")
    with pytest.raises(ValueError, match="max_value"):
        constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
    with pytest.raises(ValueError, match="axis=2"):
        constraints.UnitNorm(axis=2)(np.ones((2, 2)))
    with pytest.raises(TypeError, match="subclass"):
        constraints.get(lambda w: w)


# ---------------------------------------------------------------------- models, against Keras
def keras_model(keras, layers):
    model = keras.Sequential([keras.Input((T, F)), *layers])
    return model


def run_both(keras, ours_layers, keras_layers, steps=3, lr=0.1, x=None, input_shape=(T, F)):
    """Train both models for ``steps`` batches from the same weights; compare the reported
    losses and the weights after each step."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((B, *input_shape)).astype(np.float32) if x is None else x
    y = rng.standard_normal((B, 2)).astype(np.float32)
    ours = Sequential(ours_layers)
    theirs = keras.Sequential([keras.Input(input_shape, dtype="int32" if x.dtype.kind == "i" else "float32"),
                               *keras_layers])
    ours.build((None, *input_shape))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=SGD(lr), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    for step in range(steps):
        loss = ours.train_on_batch(x, y)
        expected = float(theirs.train_on_batch(x, y))
        assert loss == pytest.approx(expected, rel=RTOL), f"loss of step {step}"
        for k, (a, b) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6, err_msg=f"weight {k} after step {step}")
    assert ours.test_on_batch(x, y) == pytest.approx(float(theirs.test_on_batch(x, y)), rel=RTOL)
    return ours, theirs


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_weight_regularizers_of_recurrent_layers_train_as_in_keras(keras, kind):
    def layers(lib):
        r = lib.regularizers
        # Not an orthogonal recurrent kernel: there the penalty's products are 0 and their
        # signs (its gradient) rounding noise.
        rnn = getattr(lib.layers, kind)(H, kernel_regularizer=r.L2(0.05),
                                        recurrent_regularizer=r.OrthogonalRegularizer(0.2),
                                        bias_regularizer=r.L1(0.03), bias_initializer="ones",
                                        recurrent_initializer="glorot_uniform")
        return [rnn, lib.layers.Dense(2, kernel_regularizer=r.L1L2(0.01, 0.02))]

    run_both(keras, layers(_fastrnn()), layers(keras))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])  # SimpleRNN: see the next test
def test_activity_regularizers_train_as_in_keras(keras, kind):
    def layers(lib):
        r = lib.regularizers
        return [getattr(lib.layers, kind)(H, return_sequences=True, activity_regularizer=r.L2(0.1)),
                lib.layers.LSTM(H, activity_regularizer=r.L1L2(0.02, 0.03)),
                lib.layers.Dense(2, activity_regularizer=r.L1(0.05))]

    run_both(keras, layers(_fastrnn()), layers(keras))


def test_simple_rnn_applies_its_activity_regularizer_which_keras_3_15_drops(keras):
    # Keras 3.15's SimpleRNN takes activity_regularizer and does not pass it on (its LSTM and
    # GRU do); fastrnn applies it as documented, the penalty of the output over the batch size.
    assert keras.layers.SimpleRNN(H, activity_regularizer="l2").activity_regularizer is None
    x = np.random.default_rng(11).standard_normal((B, T, F)).astype(np.float32)
    layer = SimpleRNN(H, return_sequences=True, activity_regularizer=regularizers.L2(0.1))
    y = layer(x)
    assert layer.losses == [pytest.approx(0.1 * float(np.sum(np.square(y.astype(np.float64)))) / B)]


def test_activity_regularizer_covers_every_output_with_return_state_as_keras(keras):
    x = np.random.default_rng(10).standard_normal((B, T, F)).astype(np.float32)
    ours = LSTM(H, return_state=True, activity_regularizer=regularizers.L2(0.1))
    ours(x)
    theirs = keras.layers.LSTM(H, return_state=True, activity_regularizer=keras.regularizers.L2(0.1))
    theirs(x)
    theirs.set_weights(ours.get_weights())
    theirs(x)
    expected = [float(v.detach()) for v in theirs.losses]
    assert len(ours.losses) == len(expected) == 3  # output, h, c: each over the batch size
    np.testing.assert_allclose(ours.losses, expected, rtol=1e-6)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_constraints_of_recurrent_layers_in_keras_layout_train_as_in_keras(keras, kind):
    def layers(lib):
        c = lib.constraints
        rnn = getattr(lib.layers, kind)(H, kernel_constraint=c.MaxNorm(0.5),
                                        recurrent_constraint=c.UnitNorm(axis=1),
                                        bias_constraint=c.MaxNorm(0.3), bias_initializer="ones")
        return [rnn, lib.layers.Dense(2, kernel_constraint=c.NonNeg(), bias_constraint=c.MinMaxNorm(0.1, 0.2))]

    run_both(keras, layers(_fastrnn()), layers(keras), lr=0.5)


def test_embedding_regularizer_and_constraint_train_as_in_keras(keras):
    def layers(lib):
        return [lib.layers.Embedding(7, 3, embeddings_regularizer=lib.regularizers.L2(0.1),
                                     embeddings_constraint=lib.constraints.MaxNorm(0.04, axis=1)),
                lib.layers.LSTM(H), lib.layers.Dense(2)]

    x = np.random.default_rng(4).integers(0, 7, (B, T)).astype(np.int32)
    run_both(keras, layers(_fastrnn()), layers(keras), x=x, input_shape=(T,))


def test_layer_losses_list_activity_then_weight_penalties_as_keras(keras):
    x = np.random.default_rng(5).standard_normal((B, T, F)).astype(np.float32)
    ours = LSTM(H, kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2")
    ours(x)
    theirs = keras.layers.LSTM(H, kernel_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2")
    theirs(x)
    theirs.set_weights(ours.get_weights())
    theirs(x)
    expected = [float(v.detach()) for v in theirs.losses]
    assert len(ours.losses) == len(expected) == 3
    np.testing.assert_allclose(ours.losses, expected, rtol=1e-6)


def _fastrnn():
    import fastrnn

    return fastrnn


# ---------------------------------------------------------------------- fastrnn's own behaviour
def test_regularized_loss_gradients_match_finite_differences_in_float64():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((3, T, F)), rng.standard_normal((3, 2))
    model = Sequential([GRU(H, input_shape=(T, F), dtype="float64", kernel_regularizer="l2",
                            recurrent_regularizer=regularizers.OrthogonalRegularizer(0.3, mode="columns"),
                            bias_regularizer=regularizers.L1L2(0.02, 0.04), activity_regularizer="l2"),
                        Dense(2, dtype="float64", activity_regularizer=regularizers.L1(0.02))])
    model.compile(optimizer="sgd", loss="mse")
    for p in model.trainable_params[2:4]:  # biases away from 0, where |b| has no derivative
        p += 0.3
    _, grads = model.compute_gradients(x, y)
    for p, g in zip(model.trainable_params, grads):
        numeric = finite_difference(lambda: model.compute_gradients(x, y)[0], p)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_penalties_join_the_evaluated_loss():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((4, T, F)), rng.standard_normal((4, 2))
    plain = Sequential([SimpleRNN(H, input_shape=(T, F)), Dense(2)])
    penalised = Sequential([SimpleRNN(H, input_shape=(T, F), kernel_regularizer=regularizers.L2(0.5)),
                            Dense(2)])
    penalised.set_weights(plain.get_weights())
    for m in (plain, penalised):
        m.compile(optimizer="sgd", loss="mse")
    extra = 0.5 * float(np.sum(np.square(plain.layers[0].get_weights()[0].astype(np.float64))))
    assert penalised.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0) + extra, rel=1e-6)


def test_frozen_layers_are_neither_penalised_nor_constrained():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((4, T, F)), rng.standard_normal((4, 2))
    rnn = LSTM(H, input_shape=(T, F), kernel_regularizer=regularizers.L2(10.0),
               kernel_constraint=constraints.MaxNorm(1e-3), trainable=False)
    model = Sequential([rnn, Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    before = rnn.get_weights()
    unpenalised = model.loss(y, model.predict(x, verbose=0))
    assert model.train_on_batch(x, y) == pytest.approx(unpenalised, rel=1e-6)
    for a, b in zip(before, rnn.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert rnn.losses == []


def test_a_constraint_that_does_not_fit_fails_before_the_step():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((4, T, F)), rng.standard_normal((4, 2))
    model = Sequential([SimpleRNN(H, input_shape=(T, F), bias_constraint=constraints.MaxNorm(1.0, axis=1)),
                        Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(ValueError, match="axis=1"):
        model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_regularizers_and_constraints_are_saved_with_the_model(tmp_path):
    model = Sequential([GRU(H, input_shape=(T, F), kernel_regularizer=regularizers.L1L2(0.1, 0.2),
                            recurrent_constraint=constraints.UnitNorm(axis=1),
                            activity_regularizer=regularizers.OrthogonalRegularizer(0.5)),
                        Dense(2, bias_constraint="non_neg")])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.npz")
    layers = load_model(tmp_path / "m.npz").layers
    assert layers[0].kernel_regularizer.get_config() == {"l1": 0.1, "l2": 0.2}
    assert layers[0].recurrent_constraint.get_config() == {"axis": 1}
    assert isinstance(layers[0].activity_regularizer, regularizers.OrthogonalRegularizer)
    assert isinstance(layers[1].bias_constraint, constraints.NonNeg)


def test_bidirectional_copies_the_regularizers_and_refuses_an_inner_activity_regularizer():
    layer = Bidirectional(LSTM(H, kernel_regularizer=regularizers.L2(0.1)), input_shape=(T, F))
    layer.build((None, T, F))
    assert len(layer.losses) == 2  # the forward and the backward kernel
    with pytest.raises(ValueError, match="activity_regularizer"):
        Bidirectional(LSTM(H, activity_regularizer="l2"))


def test_embedding_penalty_is_computed_on_the_whole_table():
    emb = Embedding(5, 2, embeddings_regularizer=regularizers.L1(1.0))
    emb.build((None, 3))
    assert emb.losses == [pytest.approx(float(np.abs(emb.embeddings.astype(np.float64)).sum()))]


def test_the_call_state_keeps_each_calls_activity_gradient():
    rng = np.random.default_rng(12)
    layer = Dense(3, activity_regularizer=regularizers.L2(0.5))
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    dy = rng.standard_normal((4, 3))
    y_a = layer(a, training=True)
    state_a = layer.call_state()
    layer(b, training=True)
    layer.set_call_state(state_a)
    dx = layer.backward(dy)
    # d/dy of 0.5 * sum(y**2) / batch joins the output's gradient: 2 * 0.5 * y_a / 4
    np.testing.assert_allclose(dx, (dy + y_a / 4) @ layer.kernel.T, rtol=1e-6)


def test_activity_gradient_reaches_the_input_of_a_sequential_model():
    rng = np.random.default_rng(13)
    x, y = rng.standard_normal((3, T, F)), rng.standard_normal((3, 2))
    model = Sequential([LSTM(H, input_shape=(T, F), dtype="float64", return_sequences=True,
                             activity_regularizer=regularizers.L1L2(0.1, 0.2)),
                        GRU(H, dtype="float64", activity_regularizer=regularizers.L2(0.3)),
                        Dense(2, dtype="float64")])
    model.compile(optimizer="sgd", loss="mse")
    loss, grads = model.compute_gradients(x, y)
    plain_loss = model.loss(y, model.predict(x, verbose=0))
    assert loss > plain_loss  # the penalties are in
    for p, g in zip(model.trainable_params, grads):
        np.testing.assert_allclose(g, finite_difference(lambda: model.compute_gradients(x, y)[0], p),
                                   rtol=1e-6, atol=1e-8)
