"""Flatten, Reshape, Permute, RepeatVector and the global poolings against Keras 3, their
gradients against finite differences, masks, configs and bad arguments."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastrnn import layers as L
from layer_checks import check_gradients, keras_run, round_trip

os.environ.setdefault("KERAS_BACKEND", "torch")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)  # (B, T, F)
MASK = np.array([[1, 1, 0], [1, 0, 1]], bool)  # (B, T), one not a prefix


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


CASES = [
    ("Flatten", {}, (2, 3, 4)),
    ("Flatten", {"data_format": "channels_first"}, (2, 3, 4, 2)),
    ("Flatten", {}, (2,)),
    ("Reshape", {"target_shape": (4, 3)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (-1, 2)}, (2, 3, 4)),
    ("Reshape", {"target_shape": (2, -1, 3)}, (2, 3, 4)),
    ("Permute", {"dims": (2, 1)}, (2, 3, 4)),
    ("Permute", {"dims": (3, 1, 2)}, (2, 3, 4, 5)),
    ("RepeatVector", {"n": 3}, (2, 4)),
]


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_rearranging_layers_match_keras(keras, name, kwargs, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    ours, theirs = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    out = ours(x)
    np.testing.assert_array_equal(out, keras_run(keras, theirs, x))
    assert ours.compute_output_shape((None, *shape[1:])) == \
        tuple(theirs.compute_output_shape((None, *shape[1:])))
    assert ours.compute_mask(x, MASK if len(shape) == 3 else None) is None


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_rearranging_layers_backward_is_the_inverse_rearrangement(name, kwargs, shape):
    check_gradients(getattr(L, name)(dtype="float64", **kwargs), RNG.standard_normal(shape))


def test_rearranging_layers_keep_integer_ids_and_cast_floats_to_their_dtype():
    ids = np.arange(24).reshape(2, 3, 4)
    for layer in (L.Flatten(), L.Reshape((12,)), L.Permute((2, 1))):
        assert layer(ids).dtype.kind == "i"
        assert layer(ids.astype(np.float64)).dtype == np.float32
    assert L.RepeatVector(2)(ids[:, 0]).dtype.kind == "i"


def test_reshape_takes_any_batch_size_and_unknown_steps_in_shapes():
    layer = L.Reshape((-1, 2))
    assert layer(np.zeros((5, 3, 4))).shape == (5, 6, 2)
    assert layer.compute_output_shape((None, None, 4)) == (None, None, 2)
    assert L.Flatten().compute_output_shape((None, None, 4)) == (None, None)


@pytest.mark.parametrize("make", [
    lambda: L.Flatten(data_format="channels_first"), lambda: L.Reshape((-1, 6)),
    lambda: L.Permute((1, 3, 2)), lambda: L.RepeatVector(4, name="rep")])
def test_rearranging_configs_round_trip(make):
    layer = make()
    twin = round_trip(layer)
    assert twin.get_config() == layer.get_config()
    x = RNG.standard_normal((2, 3) if isinstance(layer, L.RepeatVector) else (2, 3, 4, 2))
    np.testing.assert_array_equal(twin(x), layer(x))


def test_rearranging_layers_reject_bad_arguments_naming_them():
    with pytest.raises(ValueError, match="data_format"):
        L.Flatten(data_format="nhwc")
    with pytest.raises(ValueError, match="at most one -1"):
        L.Reshape((-1, -1))
    with pytest.raises(TypeError, match="target_shape"):
        L.Reshape(4)
    with pytest.raises(TypeError, match="target_shape must hold ints"):
        L.Reshape((2.5, 2))
    with pytest.raises(ValueError, match="cannot reshape"):
        L.Reshape((5,))(X)
    with pytest.raises(ValueError, match="not a multiple"):
        L.Reshape((-1, 5))(X)
    with pytest.raises(ValueError, match="permutation of 1..2"):
        L.Permute((0, 1))
    with pytest.raises(ValueError, match="rank 3"):
        L.Permute((2, 1))(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="n must be an int"):
        L.RepeatVector(2.0)
    with pytest.raises(ValueError, match="n must be a positive"):
        L.RepeatVector(0)
    with pytest.raises(ValueError, match="rank 2"):
        L.RepeatVector(2)(X)


# -- global pooling -------------------------------------------------------------------------

POOLS = ["GlobalAveragePooling1D", "GlobalMaxPooling1D"]


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_global_pooling_matches_keras(keras, name, data_format, keepdims, masked):
    x = X if data_format == "channels_last" else np.ascontiguousarray(X.transpose(0, 2, 1))
    mask = MASK if masked else None
    ours = getattr(L, name)(data_format=data_format, keepdims=keepdims)
    theirs = getattr(keras.layers, name)(data_format=data_format, keepdims=keepdims)
    kwargs = {"mask": keras.ops.convert_to_tensor(mask)} if masked and "Average" in name else {}
    np.testing.assert_allclose(ours(x, mask=mask), keras_run(keras, theirs, x, **kwargs),
                               rtol=1e-6, atol=1e-7)
    assert ours.compute_output_shape((None, *x.shape[1:])) == \
        tuple(theirs.compute_output_shape((None, *x.shape[1:])))
    assert ours.compute_mask(x, mask) is None


def test_global_average_pooling_averages_over_real_steps_only():
    out = L.GlobalAveragePooling1D(dtype="float64")(X, mask=MASK)
    np.testing.assert_allclose(out[0], X[0, :2].mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(out[1], X[1, [0, 2]].mean(axis=0), rtol=1e-7)


def test_global_average_pooling_of_a_sequence_without_real_steps_is_nan_as_in_keras(keras):
    mask = np.array([[1, 1, 0], [0, 0, 0]], bool)
    layer = L.GlobalAveragePooling1D()
    out = layer(X, mask=mask, training=True)
    expected = keras_run(keras, keras.layers.GlobalAveragePooling1D(), X,
                         mask=keras.ops.convert_to_tensor(mask))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()
    dx = layer.backward(np.ones_like(out))
    assert np.array_equal(dx[1], np.zeros_like(dx[1]))  # no real step, no gradient


def test_global_max_pooling_after_a_recurrent_layer_equals_the_max_over_real_steps():
    lstm = L.LSTM(3, return_sequences=True, dtype="float64")
    lengths = np.array([3, 2])
    mask = np.arange(3)[None, :] < lengths[:, None]
    y = lstm(X, mask=mask)  # padded steps repeat the last real output
    out = L.GlobalMaxPooling1D(dtype="float64")(y, mask=lstm.compute_mask(X, mask))
    np.testing.assert_allclose(out[1], y[1, :2].max(axis=0))


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_gradients_match_finite_differences(name, data_format, keepdims):
    x = RNG.standard_normal((2, 3, 4))
    mask = MASK if data_format == "channels_last" else np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)
    check_gradients(getattr(L, name)(data_format=data_format, keepdims=keepdims, dtype="float64"),
                    x, mask=mask)
    check_gradients(getattr(L, name)(data_format=data_format, keepdims=keepdims, dtype="float64"), x)


def test_global_pooling_aliases_configs_and_bad_arguments():
    assert L.GlobalAvgPool1D is L.GlobalAveragePooling1D
    assert L.GlobalMaxPool1D is L.GlobalMaxPooling1D
    layer = L.GlobalAveragePooling1D(data_format="channels_first", keepdims=True)
    twin = round_trip(layer)
    assert twin.get_config() == layer.get_config()
    np.testing.assert_array_equal(twin(X), layer(X))
    with pytest.raises(ValueError, match="data_format"):
        L.GlobalMaxPooling1D(data_format="NTC")
    with pytest.raises(ValueError, match="rank 3"):
        L.GlobalAveragePooling1D()(X[:, 0])
    with pytest.raises(ValueError, match="mask must have shape"):
        L.GlobalAveragePooling1D()(X, mask=MASK[:, :2])
    with pytest.raises(ValueError, match="mask must have shape"):
        L.GlobalMaxPooling1D()(X, mask=MASK.T)



def test_default_names_are_made_as_keras_makes_them(keras):
    from keras.src.utils.naming import to_snake_case

    from fastrnn.layers.base import snake_case

    names = list(L.__all__) + ["Conv1D", "GlobalMaxPooling1D", "ABCLayer2Stage"]
    for name in names:
        if name[0].isupper():
            assert snake_case(name) == to_snake_case(name), name
    assert L.GlobalMaxPooling1D().name.startswith("global_max_pooling1d")
