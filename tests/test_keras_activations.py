"""Every element-wise activation of the recurrent layers against real Keras 3 (torch backend).

For each activation (and Keras's aliases) as SimpleRNN's activation and as LSTM's and GRU's
(with ``reset_after`` either way) activation and recurrent_activation: the same model in keras
and fastrnn from identical weights; ``predict`` agrees to rtol 1e-5 / atol 1e-6 in float32, and so do the weights after
one ``train_on_batch`` step of SGD on a mean squared error (the gradients through every
activation). Inputs are spread over [-3, 3], so the piecewise activations are met on every
piece. Skipped when keras is not installed.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import fastrnn  # noqa: E402
from fastrnn import layers as fl  # noqa: E402
from fastrnn.modes import ACTIVATION_ALIASES, ACTIVATIONS  # noqa: E402

B, T, F, H = 4, 5, 3, 4
NAMES = list(ACTIVATIONS) + list(ACTIVATION_ALIASES)
LAYERS = {
    "SimpleRNN": lambda L, name: L.SimpleRNN(H, activation=name, return_sequences=True),
    "LSTM": lambda L, name: L.LSTM(H, activation=name, return_sequences=True),
    "LSTM-recurrent": lambda L, name: L.LSTM(H, recurrent_activation=name, return_sequences=True),
    "GRU": lambda L, name: L.GRU(H, activation=name, return_sequences=True),
    "GRU-recurrent": lambda L, name: L.GRU(H, recurrent_activation=name, return_sequences=True),
    "GRU-reset-before": lambda L, name: L.GRU(H, activation=name, reset_after=False, return_sequences=True),
    "GRU-reset-before-recurrent": lambda L, name: L.GRU(H, recurrent_activation=name, reset_after=False,
                                                        return_sequences=True),
}


def model(lib, L, name):
    """Every layer kind side by side on one input, their outputs joined: (B, T, 7H)."""
    x = L.Input(shape=(T, F))
    branches = [make(L, name)(x) for make in LAYERS.values()]
    return lib.Model(x, L.Concatenate()(branches))


def close(got, want):
    """To 1e-5 of each array's largest entry: an unbounded gate (linear, exponential) makes
    entries of very different sizes."""
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 + 1e-5 * np.abs(want).max())


@pytest.mark.parametrize("name", NAMES)
def test_predict_and_a_training_step_match_keras(name):
    keras.utils.set_random_seed(0)
    k = model(keras, keras.layers, name)
    f = model(fastrnn, fl, name)
    rng = np.random.default_rng(1)
    scale = 0.3 if name == "exponential" else 1.0  # e^x feeds on itself through LSTM's c
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) * scale for w in k.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    x = rng.uniform(-3, 3, (B, T, F)).astype(np.float32) * scale
    y = rng.uniform(-1, 1, (B, T, len(LAYERS) * H)).astype(np.float32)
    close(f.predict(x, verbose=0), k.predict(x, verbose=0))
    k.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    f.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    k.train_on_batch(x, y)
    f.train_on_batch(x, y)
    for got, want in zip(f.get_weights(), k.get_weights()):
        close(got, want)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_config_keeps_the_activations_and_keras_reads_it(kind, tmp_path):
    f = fastrnn.Sequential([fl.Input(shape=(T, F)),
                            getattr(fl, kind)(H, activation="selu", recurrent_activation="hard_sigmoid")])
    layer = f.layers[0]
    assert (layer.get_config()["activation"], layer.get_config()["recurrent_activation"]) == ("selu", "hard_sigmoid")
    path = tmp_path / "m.keras"
    f.save(path)
    k = keras.saving.load_model(path)
    config = k.layers[0].get_config()
    assert (config["activation"], config["recurrent_activation"]) == ("selu", "hard_sigmoid")
    back = fastrnn.load_model(path)
    x = np.random.default_rng(0).uniform(-2, 2, (B, T, F)).astype(np.float32)
    np.testing.assert_allclose(back.predict(x, verbose=0), np.asarray(k.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
