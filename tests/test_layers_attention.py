"""Attention and AdditiveAttention against Keras 3 from the same weights and masks, their
gradients (inputs, weights, dropout) against finite differences, configs and bad arguments."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastrnn import layers as L
from layer_checks import check_gradients, keras_mask, keras_run, round_trip

os.environ.setdefault("KERAS_BACKEND", "torch")

B, TQ, TV, D, DV = 2, 3, 4, 5, 6


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def make_inputs(dtype=np.float32, with_key=True, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, TQ, D)).astype(dtype)
    v = rng.standard_normal((B, TV, DV if with_key else D)).astype(dtype)
    k = rng.standard_normal((B, TV, D)).astype(dtype)
    return [q, v, k] if with_key else [q, v]


Q_MASK = np.array([[1, 1, 0], [1, 0, 1]], bool)
V_MASK = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], bool)  # the second row has no real value step

MASKS = {"none": None, "query": [Q_MASK, None], "value": [None, V_MASK], "both": [Q_MASK, V_MASK]}

LAYERS = [
    ("Attention", {}),
    ("Attention", {"use_scale": True}),
    ("Attention", {"score_mode": "concat"}),
    ("Attention", {"score_mode": "concat", "use_scale": True}),
    ("AdditiveAttention", {}),
    ("AdditiveAttention", {"use_scale": False}),
]


def with_random_weights(layer, seed=1):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(0.5, 1.5, s) for s in layer.weight_shapes()])
    return layer


@pytest.mark.parametrize("name, kwargs", LAYERS)
@pytest.mark.parametrize("masks, causal", [("none", False), ("query", False), ("value", False),
                                           ("both", False), ("none", True), ("both", True)])
def test_attention_matches_keras(keras, name, kwargs, masks, causal):
    inputs = make_inputs()
    mask = MASKS[masks]
    ours = getattr(L, name)(**kwargs)
    theirs = getattr(keras.layers, name)(**kwargs)
    ours(inputs)
    theirs.build([x.shape for x in inputs])
    assert ours.weight_shapes() == [tuple(w.shape) for w in theirs.get_weights()]
    with_random_weights(ours)
    theirs.set_weights(ours.get_weights())
    keras_mask_arg = None if mask is None else [
        None if m is None else keras.ops.convert_to_tensor(m) for m in mask]
    out, scores = ours(inputs, mask=mask, return_attention_scores=True, use_causal_mask=causal)
    k_out, k_scores = keras_run(keras, theirs, inputs, mask=keras_mask_arg,
                                return_attention_scores=True, use_causal_mask=causal)
    np.testing.assert_allclose(out, k_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, k_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours(inputs, mask=mask, use_causal_mask=causal), k_out,
                               rtol=1e-5, atol=1e-6)
    expected = keras_mask(keras, theirs, inputs, mask)
    got = ours.compute_mask(inputs, mask)
    assert (got is None) == (expected is None)
    if expected is not None:
        np.testing.assert_array_equal(got, expected)


def test_attention_without_key_uses_the_value_as_key(keras):
    q, v = make_inputs(with_key=False)
    ours, theirs = L.Attention(use_scale=True), keras.layers.Attention(use_scale=True)
    np.testing.assert_allclose(ours([q, v]), keras_run(keras, theirs, [q, v]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours([q, v]), ours([q, v, v]), rtol=1e-6)
    assert ours.compute_output_shape([(None, TQ, D), (None, TV, D)]) == \
        tuple(theirs.compute_output_shape([(None, TQ, D), (None, TV, D)]))


def test_attention_weights_are_a_softmax_over_the_real_value_steps():
    q, v, k = make_inputs(np.float64)
    _, weights = L.Attention(dtype="float64")([q, v, k], mask=[None, V_MASK],
                                              return_attention_scores=True)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, rtol=1e-12)
    assert np.all(weights[0][:, ~V_MASK[0]] < 1e-300)
    scores = q[0] @ k[0].T
    expected = np.exp(scores[:, V_MASK[0]])
    np.testing.assert_allclose(weights[0][:, V_MASK[0]], expected / expected.sum(-1, keepdims=True))


@pytest.mark.parametrize("name, kwargs", LAYERS)
@pytest.mark.parametrize("masks", ["none", "both"])
@pytest.mark.parametrize("with_key", [True, False])
def test_attention_gradients_match_finite_differences(name, kwargs, masks, with_key):
    layer = getattr(L, name)(dtype="float64", **kwargs)
    inputs = make_inputs(np.float64, with_key=with_key, seed=2)
    layer(inputs)
    with_random_weights(layer)
    # Every query step keeps a real value step: where none is, the scores shifted by 1e9 keep
    # only about 1e-7 of their value, too little for finite differences.
    mask = None if masks == "none" else [Q_MASK, np.array([[1, 0, 1, 1], [1, 1, 0, 0]], bool)]
    check_gradients(layer, inputs, mask=mask, atol=1e-8, use_causal_mask=masks == "both")
    check_gradients(layer, inputs, mask=mask, atol=1e-8, return_attention_scores=True, seed=3)


def test_attention_dropout_drops_weights_in_training_only_and_has_its_gradient():
    layer = L.Attention(dropout=0.5, dtype="float64", seed=0)
    inputs = make_inputs(np.float64, with_key=False)
    np.testing.assert_array_equal(layer(inputs), L.Attention(dtype="float64")(inputs))
    _, weights = layer(inputs, training=True, return_attention_scores=True)
    kept = weights != 0
    assert 0 < kept.mean() < 1
    _, plain = L.Attention(dtype="float64")(inputs, return_attention_scores=True)
    np.testing.assert_allclose(weights[kept], 2 * plain[kept])

    def reseed():
        layer._own_rng = np.random.default_rng(7)

    check_gradients(layer, inputs, reseed=reseed)


def test_attention_runs_in_its_dtype():
    inputs = make_inputs(np.float64)
    assert L.Attention()(inputs).dtype == np.float32
    out, scores = L.AdditiveAttention(dtype="float64")(inputs, return_attention_scores=True)
    assert out.dtype == scores.dtype == np.float64


@pytest.mark.parametrize("make", [
    lambda: L.Attention(use_scale=True, score_mode="concat", dropout=0.25, seed=3, name="att"),
    lambda: L.AdditiveAttention(use_scale=False, dropout=0.1)])
def test_attention_configs_round_trip(make):
    layer = make()
    inputs = make_inputs()
    layer(inputs)
    twin = round_trip(layer)
    assert twin.get_config() == layer.get_config()
    assert "score_mode" not in L.AdditiveAttention().get_config()
    twin(inputs)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(twin(inputs), layer(inputs))


def test_attention_rejects_bad_arguments_and_inputs_naming_them():
    q, v, k = make_inputs()
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match="dropout"):
        L.Attention(dropout=1.0)
    with pytest.raises(TypeError, match="list of inputs"):
        L.Attention()(q)
    with pytest.raises(ValueError, match="query, value"):
        L.Attention()([q])
    with pytest.raises(ValueError, match="rank 3"):
        L.Attention()([q[:, 0], v[:, 0]])
    with pytest.raises(ValueError, match="same number of features"):
        L.Attention()([q, v])  # value (and so key) has DV features, query D
    with pytest.raises(ValueError, match="same number of steps"):
        L.Attention()([q, v, k[:, :2]])
    with pytest.raises(ValueError, match="one batch size"):
        L.Attention()([q, v[:1], k[:1]])
    with pytest.raises(ValueError, match="mask must be a list"):
        L.Attention()([q, v, k], mask=Q_MASK)
    with pytest.raises(ValueError, match="value_mask must have shape"):
        L.Attention()([q, v, k], mask=[None, Q_MASK])
    layer = L.AdditiveAttention()
    layer([q, v, k])
    with pytest.raises(ValueError, match="built for queries"):
        layer([q[..., :2], v, k[..., :2]])
