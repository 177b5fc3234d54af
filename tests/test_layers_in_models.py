"""The new layers inside Sequential models as keras-io scripts stack them: predictions against
the same Keras 3 model from identical weights (masks travelling from an Embedding), and
whole-model gradients against finite differences in float64."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import finite_difference
from fastrnn import Sequential
from fastrnn import layers as L
from fastrnn.utils import set_random_seed
from layer_checks import to_numpy

os.environ.setdefault("KERAS_BACKEND", "torch")

IDS = np.array([[3, 5, 2, 7, 0, 0], [1, 4, 4, 0, 0, 0], [6, 2, 5, 3, 1, 8]])  # post-padded


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def addition_rnn(lib, dtype="float32"):
    """keras-io addition_rnn.py's model, small: encoder LSTM, RepeatVector, decoder LSTM."""
    kw = {"dtype": dtype} if lib is L else {}
    return [lib.LSTM(8, **kw), lib.RepeatVector(3, **kw), lib.LSTM(8, return_sequences=True, **kw),
            lib.Dense(5, activation="softmax", **kw)]


def masked_text(lib, dtype="float32"):
    """Embedding with mask_zero, a bidirectional LSTM, normalisation, masked average, Dense."""
    kw = {"dtype": dtype} if lib is L else {}
    return [lib.Embedding(10, 4, mask_zero=True, **kw),
            lib.Bidirectional(lib.LSTM(3, return_sequences=True, **kw), **kw),
            lib.LayerNormalization(**kw), lib.GlobalAveragePooling1D(**kw),
            lib.Dense(2, **kw)]


def reshaped(lib, dtype="float32"):
    """GRU outputs permuted, flattened and reshaped back into steps, then max-pooled."""
    kw = {"dtype": dtype} if lib is L else {}
    return [lib.GRU(4, return_sequences=True, **kw), lib.Permute((2, 1), **kw),
            lib.Flatten(**kw), lib.Reshape((6, -1), **kw), lib.GlobalMaxPooling1D(**kw),
            lib.Dense(3, **kw)]


MODELS = {"addition_rnn": (addition_rnn, (None, 6, 5)),
          "masked_text": (masked_text, (None, 6)),
          "reshaped": (reshaped, (None, 6, 5))}


def model_input(name, dtype=np.float32):
    if name == "masked_text":
        return IDS
    return np.random.default_rng(0).standard_normal((3, 6, 5)).astype(dtype)


@pytest.mark.parametrize("name", list(MODELS))
def test_sequential_with_the_new_layers_predicts_as_keras(keras, name):
    make, shape = MODELS[name]
    set_random_seed(0)
    ours = Sequential(make(L))
    ours.build(shape)
    theirs = keras.Sequential([keras.Input(shape[1:], dtype="int32" if len(shape) == 2 else None)]
                              + make(keras.layers))
    rng = np.random.default_rng(1)
    for a, b in zip(ours.layers, theirs.layers):
        weights = [rng.uniform(-0.5, 0.5, w.shape) for w in a.get_weights()]
        a.set_weights(weights)
        b.set_weights(weights)
    x = model_input(name)
    expected = to_numpy(theirs(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_whole_model_gradients_match_finite_differences(name):
    make, shape = MODELS[name]
    set_random_seed(0)
    model = Sequential(make(L, "float64"))
    model.build(shape)
    model.compile(optimizer="sgd", loss="mse")
    x = model_input(name, np.float64)
    y = np.random.default_rng(2).standard_normal(model.predict(x, verbose=0).shape)

    def loss():
        return model.compute_gradients(x, y)[0]

    _, grads = model.compute_gradients(x, y)
    params = model.trainable_params
    assert len(grads) == len(params) > 0
    for k, (p, g) in enumerate(zip(params, grads)):
        np.testing.assert_allclose(g, finite_difference(loss, p), rtol=1e-6, atol=1e-9,
                                   err_msg=f"parameter {k} of shape {p.shape}")
