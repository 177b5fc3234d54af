"""The merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot)
against Keras 3 from the same inputs and masks, their gradients against finite differences,
configs and bad arguments."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastrnn import layers as L
from layer_checks import check_gradients, keras_mask, keras_run, round_trip

os.environ.setdefault("KERAS_BACKEND", "torch")

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
B, T, F = 3, 4, 5


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def make_inputs(dtype=np.float32, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, T, F)).astype(dtype) for _ in range(n)]


def make_masks(n=3):
    """Masks of different patterns (not only prefixes), the second input without one."""
    m1 = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], bool)
    m3 = np.array([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 0]], bool)
    return [m1, None, m3][:n]


def count(name):
    return 2 if name == "Subtract" else 3


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("masked", ["none", "some", "all"])
def test_elementwise_merge_matches_keras(keras, name, masked):
    xs = make_inputs(n=count(name))
    masks = None
    if masked == "some":
        masks = make_masks(len(xs))
    elif masked == "all":
        masks = [m if m is not None else np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]], bool)
                 for m in make_masks(len(xs))]
    ours = getattr(L, name)()
    theirs = getattr(keras.layers, name)()
    np.testing.assert_allclose(ours(xs, mask=masks), keras_run(keras, theirs, xs, masks),
                               rtol=1e-6, atol=1e-6)
    expected = keras_mask(keras, theirs, xs, masks)
    got = ours.compute_mask(xs, masks)
    assert (got is None) == (expected is None)
    if expected is not None:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ["Add", "Multiply", "Maximum"])
def test_elementwise_merge_broadcasts_as_keras(keras, name):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((B, T, F)).astype(np.float32),
          rng.standard_normal((B, 1, F)).astype(np.float32),
          rng.standard_normal((B, F)).astype(np.float32)]
    ours = getattr(L, name)()
    out = ours(xs)
    np.testing.assert_allclose(out, keras_run(keras, getattr(keras.layers, name)(), xs),
                               rtol=1e-6, atol=1e-6)
    assert ours.compute_output_shape([(None, T, F), (None, 1, F), (None, F)]) == (None, T, F)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate_matches_keras_with_masks(keras, axis):
    rng = np.random.default_rng(2)
    shapes = {-1: [(B, T, 2), (B, T, 3)], 2: [(B, T, 2), (B, T, 3)], 1: [(B, 2, F), (B, 3, F)]}[axis]
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    masks = [rng.random(shapes[0][:2]) > 0.5, None]
    ours, theirs = L.Concatenate(axis=axis), keras.layers.Concatenate(axis=axis)
    np.testing.assert_array_equal(ours(xs, mask=masks), keras_run(keras, theirs, xs, masks))
    for m in (masks, [None, None], None, [masks[0], rng.random(shapes[1][:2]) > 0.5]):
        expected = keras_mask(keras, theirs, xs, m)
        got = ours.compute_mask(xs, m)
        assert (got is None) == (expected is None)
        if expected is not None:
            np.testing.assert_array_equal(got, expected)
    assert ours.compute_output_shape([(None, *s[1:]) for s in shapes]) == \
        tuple(theirs.compute_output_shape([(None, *s[1:]) for s in shapes]))


@pytest.mark.parametrize("axes, shapes", [
    (2, [(B, T, F), (B, 6, F)]),
    ((1, 1), [(B, T, 2), (B, T, 3)]),
    (-1, [(B, F), (B, F)]),
    ((2, 1), [(B, T, F), (B, F, 2)]),
    (1, [(B, F), (B, F, 3)]),
])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_matches_keras(keras, axes, shapes, normalize):
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = L.Dot(axes=axes, normalize=normalize)
    theirs = keras.layers.Dot(axes=axes, normalize=normalize)
    expected = keras_run(keras, theirs, xs)
    np.testing.assert_allclose(ours(xs), expected, rtol=1e-5, atol=1e-6)
    assert ours.compute_output_shape(shapes) == tuple(theirs.compute_output_shape(shapes))
    assert ours.compute_mask(xs, [np.ones(s[:2], bool) for s in shapes]) is None


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("masked", [False, True])
def test_elementwise_merge_gradients_match_finite_differences(name, masked):
    xs = make_inputs(np.float64, n=count(name), seed=4)
    masks = make_masks(len(xs)) if masked else None
    check_gradients(getattr(L, name)(dtype="float64"), xs, mask=masks)


def test_broadcast_merge_gradients_sum_over_the_stretched_axes():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((B, T, F)), rng.standard_normal((B, 1, F)), rng.standard_normal((B, F))]
    for name in ("Add", "Multiply", "Minimum"):
        dx = check_gradients(getattr(L, name)(dtype="float64"), xs)
        assert [d.shape for d in dx] == [x.shape for x in xs]


def test_maximum_gives_tied_inputs_equal_shares_of_the_gradient():
    x = np.random.default_rng(6).standard_normal((2, 3))
    layer = L.Maximum(dtype="float64")
    layer([x, x.copy()], training=True)
    da, db = layer.backward(np.ones((2, 3)))
    np.testing.assert_array_equal(da, np.full((2, 3), 0.5))
    np.testing.assert_array_equal(db, da)


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_gradients_match_finite_differences(axis):
    rng = np.random.default_rng(7)
    shapes = [(2, 3, 2), (2, 3, 4)] if axis == -1 else [(2, 1, 3), (2, 4, 3)]
    check_gradients(L.Concatenate(axis=axis, dtype="float64"),
                    [rng.standard_normal(s) for s in shapes])


@pytest.mark.parametrize("axes, shapes", [(2, [(2, 3, 4), (2, 5, 4)]), ((1, 2), [(2, 4), (2, 3, 4)]),
                                          ((1, 1), [(2, 3, 2), (2, 3, 4)])])
@pytest.mark.parametrize("normalize", [False, True])
def test_dot_gradients_match_finite_differences(axes, shapes, normalize):
    rng = np.random.default_rng(8)
    check_gradients(L.Dot(axes=axes, normalize=normalize, dtype="float64"),
                    [rng.standard_normal(s) for s in shapes])


def test_merges_run_in_their_dtype():
    xs = make_inputs(np.float64, n=2)
    assert L.Add()(xs).dtype == np.float32
    assert L.Add(dtype="float64")(xs).dtype == np.float64
    assert L.Concatenate(dtype="float64")(make_inputs(np.float32, n=2)).dtype == np.float64


def test_concatenate_keeps_integer_ids():
    ids = [np.arange(6).reshape(2, 3), np.arange(4).reshape(2, 2)]
    out = L.Concatenate(axis=1)(ids)
    assert out.dtype.kind == "i"
    np.testing.assert_array_equal(out, np.concatenate(ids, axis=1))


def test_lowercase_functions_call_the_layers():
    xs = make_inputs(np.float64, n=2)
    np.testing.assert_array_equal(L.add(xs), xs[0].astype(np.float32) + xs[1].astype(np.float32))
    np.testing.assert_allclose(L.average(xs, dtype="float64"), (xs[0] + xs[1]) / 2)
    np.testing.assert_allclose(L.multiply(xs, dtype="float64"), xs[0] * xs[1])
    np.testing.assert_allclose(L.subtract(xs, dtype="float64"), xs[0] - xs[1])
    np.testing.assert_allclose(L.maximum(xs, dtype="float64"), np.maximum(*xs))
    np.testing.assert_allclose(L.minimum(xs, dtype="float64"), np.minimum(*xs))
    np.testing.assert_allclose(L.concatenate(xs, axis=1, dtype="float64"), np.concatenate(xs, 1))
    assert L.dot(xs, axes=2).shape == (B, T, T)


def test_configs_round_trip():
    xs = make_inputs(np.float32, n=2)
    for layer in [L.Add(name="plus"), L.Subtract(), L.Multiply(), L.Average(), L.Maximum(),
                  L.Minimum(), L.Concatenate(axis=1), L.Dot(axes=[2, 2], normalize=True)]:
        twin = round_trip(layer)
        assert type(twin) is type(layer) and twin.get_config() == layer.get_config()
        np.testing.assert_array_equal(twin(xs), layer(xs))


def test_bad_arguments_and_inputs_raise_naming_them():
    xs = make_inputs(n=2)
    with pytest.raises(TypeError, match="list of inputs"):
        L.Add()(xs[0])
    with pytest.raises(ValueError, match="exactly 2"):
        L.Subtract()(make_inputs(n=3))
    with pytest.raises(ValueError, match="batch sizes"):
        L.Add()([xs[0], xs[1][:2]])
    with pytest.raises(ValueError, match="incompatible shapes"):
        L.Add()([xs[0], xs[1][:, :2]])
    with pytest.raises(ValueError, match="mask must have one entry per input"):
        L.Multiply()(xs, mask=[None])
    with pytest.raises(ValueError, match="mask 0 must have shape"):
        L.Multiply()(xs, mask=[np.ones((B, T + 1), bool), None])
    with pytest.raises(TypeError, match="mask must be a list"):
        L.Add().compute_mask(xs, np.ones((B, T), bool))
    with pytest.raises(TypeError, match="axis must be an int"):
        L.Concatenate(axis="last")
    with pytest.raises(ValueError, match="matching shapes except"):
        L.Concatenate()([xs[0], xs[1][:, :2]])
    with pytest.raises(ValueError, match="axis 3"):
        L.Concatenate(axis=3)(xs)
    with pytest.raises(TypeError, match="axes must be"):
        L.Dot(axes=(1, 2, 3))
    with pytest.raises(ValueError, match="dimensions along axes"):
        L.Dot(axes=1)([xs[0], xs[1][:, :2]])
    with pytest.raises(ValueError, match="exactly 2"):
        L.Dot(axes=2)(make_inputs(n=3))


def test_multi_input_layers_record_the_shapes_of_their_inputs():
    xs = [np.zeros((2, 3, 4)), np.zeros((2, 3, 5))]
    for layer in (L.Concatenate(), L.Dot(axes=1), L.Add()):
        layer(xs if not isinstance(layer, L.Add) else [xs[0], xs[0]])
        assert layer.built and isinstance(layer.input_shape, list)
        assert layer.input_shape[0] == (None, 3, 4)
