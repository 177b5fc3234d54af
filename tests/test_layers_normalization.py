"""LayerNormalization against Keras 3 from the same weights, its gradients against finite
differences, masks, configs and bad arguments."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from fastrnn import layers as L
from layer_checks import check_gradients, keras_run, round_trip

os.environ.setdefault("KERAS_BACKEND", "torch")

RNG = np.random.default_rng(0)

VARIANTS = [
    {},
    {"epsilon": 1e-5},
    {"center": False},
    {"scale": False},
    {"center": False, "scale": False},
    {"axis": [1, 2]},
    {"axis": (-2, -1), "epsilon": 0.1},
    {"rms_scaling": True},
    {"rms_scaling": True, "axis": [1, 2]},
]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def with_random_weights(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 1.5, s) for s in layer.weight_shapes()])
    return layer


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_layer_normalization_matches_keras(keras, kwargs):
    x = (3 * RNG.standard_normal((2, 3, 4)) + 1).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rms_scaling's deprecation, in both
        ours = L.LayerNormalization(**kwargs)
        theirs = keras.layers.LayerNormalization(**kwargs)
    ours(x)
    theirs.build(x.shape)
    assert ours.weight_shapes() == [tuple(w.shape) for w in theirs.get_weights()]
    with_random_weights(ours)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), keras_run(keras, theirs, x), rtol=1e-5, atol=2e-6)


def test_layer_normalization_over_a_middle_axis_matches_keras_over_the_last(keras):
    # Keras 3.15's torch path cannot normalise over a leading axis alone (torch's layer_norm
    # takes trailing axes), so the input is transposed for it.
    x = (3 * RNG.standard_normal((2, 3, 4)) + 1).astype(np.float32)
    ours = L.LayerNormalization(axis=1)
    ours(x)
    with_random_weights(ours)
    theirs = keras.layers.LayerNormalization(axis=-1)
    theirs.build((2, 4, 3))
    theirs.set_weights(ours.get_weights())
    expected = keras_run(keras, theirs, np.ascontiguousarray(x.transpose(0, 2, 1)))
    np.testing.assert_allclose(ours(x), expected.transpose(0, 2, 1), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kwargs", VARIANTS + [{"axis": 1}])
def test_layer_normalization_gradients_match_finite_differences(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = L.LayerNormalization(dtype="float64", **kwargs)
    x = 2 * RNG.standard_normal((2, 3, 4)) + 0.5
    layer(x)
    with_random_weights(layer)
    check_gradients(layer, x, rtol=1e-6, atol=1e-8)


def test_layer_normalization_default_weights_and_keras_layout():
    layer = L.LayerNormalization(axis=[1, 2])
    layer(np.zeros((2, 3, 4)))
    gamma, beta = layer.get_weights()
    assert gamma.shape == beta.shape == (3, 4)
    np.testing.assert_array_equal(gamma, 1)
    np.testing.assert_array_equal(beta, 0)
    no_beta = L.LayerNormalization(center=False)
    no_beta(np.zeros((2, 5)))
    assert no_beta.weight_shapes() == [(5,)]
    with pytest.warns(UserWarning):
        rms = L.LayerNormalization(rms_scaling=True)
    rms(np.zeros((2, 5)))
    assert rms.weight_shapes() == [(5,)]  # gamma only, as in Keras


def test_layer_normalization_normalises_each_sample_over_its_features():
    x = RNG.standard_normal((3, 5, 6)) * 4 + 2
    y = L.LayerNormalization(epsilon=0.0, dtype="float64")(x)
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=-1), 1, rtol=1e-12)


def test_layer_normalization_passes_the_mask_and_keeps_its_dtype():
    layer = L.LayerNormalization()
    x = RNG.standard_normal((2, 3, 4))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    assert layer(x, mask=mask).dtype == np.float32
    np.testing.assert_array_equal(layer.compute_mask(x, mask), mask)
    assert L.LayerNormalization(dtype="float64")(x).dtype == np.float64


def test_layer_normalization_config_round_trips():
    layer = L.LayerNormalization(axis=[1, 2], epsilon=1e-4, center=False, gamma_initializer="zeros",
                                 name="norm")
    x = RNG.standard_normal((2, 3, 4))
    layer(x)
    twin = round_trip(layer)
    assert twin.get_config() == layer.get_config()
    twin(x)
    twin.set_weights(with_random_weights(layer).get_weights())
    np.testing.assert_array_equal(twin(x), layer(x))


def test_layer_normalization_rejects_bad_arguments_and_inputs_naming_them():
    with pytest.raises(TypeError, match="axis"):
        L.LayerNormalization(axis="features")
    with pytest.raises(ValueError, match="epsilon"):
        L.LayerNormalization(epsilon=-1.0)
    with pytest.raises(ValueError, match="gamma_regularizer"):
        L.LayerNormalization(gamma_regularizer="l2")
    with pytest.raises(ValueError, match="unknown initializer"):
        L.LayerNormalization(beta_initializer="nope")
    with pytest.raises(ValueError, match="out of range"):
        L.LayerNormalization(axis=3)(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="batch axis"):
        L.LayerNormalization(axis=[0, 1])(np.zeros((2, 3, 4)))
    layer = L.LayerNormalization()
    layer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="built for inputs"):
        layer(np.zeros((2, 3, 5)))
    with pytest.warns(UserWarning, match="deprecated"):
        L.LayerNormalization(rms_scaling=True)
