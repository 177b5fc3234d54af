"""Two numbers that once differed from Keras 3's, now checked against it.

- The crossentropies clip probabilities in the prediction's dtype, as Keras does: a float32
  probability of exactly 1 against a target of 0 costs -log(2**-23) = 15.94 (16.12 in float64).
- ``clipnorm`` clips each Keras variable as one: GRU's bias ``(2, 3H)`` is two kernel-layout
  arrays (b_ih, b_hh), clipped together.
"""
import math
import os

import numpy as np
import pytest

from fastrnn import losses


# Keras turns torch tensors into arrays in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def to_numpy(keras, tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


# ---------------------------------------------------------------------- crossentropy clipping
SATURATED = (np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]),       # y_true
             np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.999]]))     # y_pred: at and near the clip


def test_binary_crossentropy_of_one_saturated_float32_element_is_keras_15_94(keras):
    value = losses.binary_crossentropy(np.array([[0.0]]), np.array([[1.0]], np.float32))
    assert value[0] == pytest.approx(-math.log(2.0 ** -23), rel=1e-6)  # 15.942
    expected = to_numpy(keras, keras.losses.binary_crossentropy(np.array([[0.0]], np.float32),
                                                                 np.array([[1.0]], np.float32)))
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_float64_predictions_still_clip_at_1e7():
    value = losses.binary_crossentropy(np.array([[0.0]]), np.array([[1.0]]))
    assert value[0] == pytest.approx(-math.log(1e-7), rel=1e-9)  # 16.118


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy"])
def test_crossentropy_values_and_gradients_at_the_clip_match_keras(keras, name, dtype):
    """Against Keras's backend ops, which compute in the input's dtype. (Keras's Loss classes
    first cast to their own dtype, float32 by default, and its loss functions take the mean
    over the last axis in float32, so in float64 only the ops show the clip as it is.)"""
    import torch

    y_true, y_pred = (a.astype(dtype) for a in SATURATED)
    if name == "categorical_crossentropy":
        y_pred = y_pred / y_pred.sum(axis=-1, keepdims=True)
    ours = losses.get(name)
    pred = torch.tensor(y_pred, requires_grad=True)
    theirs = getattr(keras.ops, name)(torch.tensor(y_true), pred)
    if name == "binary_crossentropy":
        theirs = theirs.mean(dim=-1)  # elementwise -> per sample
    theirs = theirs.mean()  # sum_over_batch_size
    theirs.backward()
    assert theirs.dtype == getattr(torch, dtype)
    rtol = 1e-6 if dtype == "float32" else 1e-12
    assert ours(y_true, y_pred) == pytest.approx(float(theirs.detach()), rel=rtol)
    grad = ours.gradient(y_true, y_pred)
    assert grad.dtype == np.dtype(dtype)
    # atol: Keras's float32 gradient of the rescaled categorical probabilities cancels 3 digits
    atol = 5e-8 if dtype == "float32" else 1e-15
    np.testing.assert_allclose(grad, pred.grad.numpy(), rtol=rtol, atol=atol)


def test_sparse_categorical_crossentropy_at_the_clip_matches_keras(keras):
    labels = np.array([0, 1])
    probs = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    expected = to_numpy(keras, keras.losses.sparse_categorical_crossentropy(labels, probs))
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, probs), expected, rtol=1e-6)


# ---------------------------------------------------------------------- clipnorm per variable
def test_clipnorm_clips_the_gru_bias_as_one_variable_as_keras_does(keras):
    from fastrnn.layers import GRU, Dense
    from fastrnn.models import Sequential
    from fastrnn.optimizers import SGD

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 3)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)
    ours = Sequential([GRU(5, input_shape=(6, 3)), Dense(1)])
    theirs = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(5), keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    before = ours.get_weights()
    ours.compile(optimizer=SGD(1.0, clipnorm=0.01), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(1.0, clipnorm=0.01), loss="mse")
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for k, (old, new) in enumerate(zip(before, ours.get_weights())):
        # Every gradient here is larger than 0.01, so every variable moves by exactly 0.01;
        # the bias, clipped as two arrays, used to move by 0.01 * sqrt(2) = 0.0141.
        assert np.linalg.norm((new - old).astype(np.float64)) == pytest.approx(0.01, rel=1e-5), k
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_clipnorm_of_a_bidirectional_gru_groups_each_directions_bias():
    from fastrnn.layers import GRU, Bidirectional, Dense
    from fastrnn.layers.variables import variable_groups
    from fastrnn.models import Sequential

    model = Sequential([Bidirectional(GRU(2), input_shape=(4, 3)), Dense(1)])
    # params: forward w_ih, w_hh, b_ih, b_hh, backward likewise, then the Dense kernel and bias
    assert variable_groups(model.layers, model.trainable_params) == [(2, 3), (6, 7)]
