"""Bidirectional with ``merge_mode=None``, ``return_state=True`` and ``initial_state`` against
Keras 3 from the same weights and masks; gradients of every output and state against finite
differences; shapes, masks, configs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import finite_difference
from fastrnn import layers as L
from layer_checks import check_gradients, keras_run, round_trip

os.environ.setdefault("KERAS_BACKEND", "torch")

B, T, F, H = 3, 5, 4, 3
LENGTHS = np.array([5, 3, 1])
MASK = np.arange(T)[None, :] < LENGTHS[:, None]  # (B, T), post-padded
KINDS = ["SimpleRNN", "LSTM", "GRU"]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def inputs(dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype(dtype)


def pair(keras, kind, merge_mode, return_sequences, return_state=True):
    """Our Bidirectional and Keras's, built, with the same random weights."""
    kwargs = {"return_sequences": return_sequences, "return_state": return_state}
    ours = L.Bidirectional(getattr(L, kind)(H, **kwargs), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(getattr(keras.layers, kind)(H, **kwargs),
                                        merge_mode=merge_mode)
    ours.build((None, T, F))
    theirs.build((None, T, F))
    rng = np.random.default_rng(1)
    ours.set_weights([rng.uniform(-0.5, 0.5, s) for s in ours.weight_shapes()])
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def assert_outputs_close(ours, theirs):
    assert isinstance(ours, list) == isinstance(theirs, (list, tuple))
    ours, theirs = (list(ours), list(theirs)) if isinstance(ours, list) else ([ours], [theirs])
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6, err_msg=f"output {k}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", [None, "concat", "sum"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_outputs_and_states_match_keras(keras, kind, merge_mode, return_sequences,
                                                      masked):
    x = inputs()
    ours, theirs = pair(keras, kind, merge_mode, return_sequences)
    mask = MASK if masked else None
    kwargs = {"mask": keras.ops.convert_to_tensor(MASK)} if masked else {}
    assert_outputs_close(ours(x, mask=mask), keras_run(keras, theirs, x, **kwargs))
    shapes = ours.compute_output_shape((None, T, F))
    expected = theirs.compute_output_shape((None, T, F))
    assert [tuple(s) for s in shapes] == [tuple(s) for s in expected]


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_merge_mode_none_without_states_matches_keras(keras, return_sequences):
    x = inputs()
    ours, theirs = pair(keras, "GRU", None, return_sequences, return_state=False)
    out = ours(x, mask=MASK)
    assert isinstance(out, list) and len(out) == 2
    assert_outputs_close(out, keras_run(keras, theirs, x, mask=keras.ops.convert_to_tensor(MASK)))
    assert [tuple(s) for s in ours.compute_output_shape((None, T, F))] == \
        [tuple(s) for s in theirs.compute_output_shape((None, T, F))]


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_bidirectional_initial_state_matches_keras(keras, kind):
    x = inputs()
    ours, theirs = pair(keras, kind, "concat", True)
    n = 2 if kind == "LSTM" else 1
    rng = np.random.default_rng(2)
    states = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(2 * n)]
    got = ours(x, mask=MASK, initial_state=states)
    expected = keras_run(keras, theirs, x, mask=keras.ops.convert_to_tensor(MASK),
                         initial_state=[keras.ops.convert_to_tensor(s) for s in states])
    assert_outputs_close(got, expected)


def test_bidirectional_states_are_the_two_directions_final_states():
    x = inputs(np.float64)
    layer = L.Bidirectional(L.LSTM(H, return_state=True, dtype="float64"), merge_mode=None)
    y_f, y_b, h_f, c_f, h_b, c_b = layer(x, mask=MASK)
    fwd = L.LSTM(H, return_state=True, dtype="float64")
    bwd = L.LSTM(H, return_state=True, go_backwards=True, dtype="float64")
    fwd(x)
    bwd(x)
    fwd.set_weights(layer.forward_layer.get_weights())
    bwd.set_weights(layer.backward_layer.get_weights())
    for b, n in enumerate(LENGTHS):  # each sequence alone, cut to its real length
        out_f, hf, cf = fwd(x[b:b + 1, :n])
        out_b, hb, cb = bwd(x[b:b + 1, :n])
        for got, want in ((y_f, out_f), (h_f, hf), (c_f, cf), (y_b, out_b), (h_b, hb), (c_b, cb)):
            np.testing.assert_allclose(got[b:b + 1], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", [None, "concat", "mul"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradients_of_outputs_and_states_match_finite_differences(
        kind, merge_mode, return_sequences):
    layer = L.Bidirectional(getattr(L, kind)(H, return_sequences=return_sequences,
                                             return_state=True, dtype="float64"),
                            merge_mode=merge_mode)
    check_gradients(layer, inputs(np.float64), mask=MASK, rtol=1e-6, atol=1e-8)


def test_bidirectional_backward_takes_none_for_unused_outputs():
    x = inputs(np.float64)
    layer = L.Bidirectional(L.LSTM(H, return_sequences=True, return_state=True, dtype="float64"),
                            merge_mode=None)
    outputs = layer(x, training=True)
    weights = [np.random.default_rng(k).standard_normal(o.shape) for k, o in enumerate(outputs)]
    used = [0, 3]  # the forward sequence and the forward cell state only
    d = [w if k in used else None for k, w in enumerate(weights)]
    dx = layer.backward(d)

    def loss():
        out = layer(x)
        return sum(float((weights[k] * out[k]).sum()) for k in used)

    np.testing.assert_allclose(dx, finite_difference(loss, x), rtol=1e-6, atol=1e-9)
    backward_grads = layer.grads[len(layer.forward_layer.params):]
    assert all(not np.any(g) for g in backward_grads)  # nothing reached the backward direction


def test_bidirectional_initial_state_gradients_match_finite_differences():
    x = inputs(np.float64)
    layer = L.Bidirectional(L.LSTM(H, return_state=True, dtype="float64"), merge_mode="ave")
    rng = np.random.default_rng(3)
    states = [rng.standard_normal((B, H)) for _ in range(4)]
    outputs = layer(x, mask=MASK, initial_state=states)
    weights = [rng.standard_normal(o.shape) for o in outputs]

    def loss():
        out = layer(x, mask=MASK, initial_state=states)
        return sum(float((w * o).sum()) for w, o in zip(weights, out))

    layer(x, training=True, mask=MASK, initial_state=states)
    layer.backward(weights)
    grads = [g.copy() for g in layer.initial_state_grads]
    assert len(grads) == 4
    for k, s in enumerate(states):
        np.testing.assert_allclose(grads[k], finite_difference(loss, s), rtol=1e-6, atol=1e-9,
                                   err_msg=f"initial state {k}")


def test_bidirectional_masks_follow_the_outputs():
    x = inputs()
    seq = L.Bidirectional(L.GRU(H, return_sequences=True, return_state=True), merge_mode=None)
    masks = seq.compute_mask(x, MASK)
    assert len(masks) == 4 and masks[2] is None and masks[3] is None
    np.testing.assert_array_equal(masks[0], MASK)
    np.testing.assert_array_equal(masks[1], MASK)
    last = L.Bidirectional(L.GRU(H), merge_mode=None)
    assert last.compute_mask(x, MASK) == [None, None]
    merged = L.Bidirectional(L.LSTM(H, return_state=True))
    assert merged.compute_mask(x, MASK) == [None] * 5


def test_bidirectional_weights_argument_sets_the_weights_at_build():
    source = L.Bidirectional(L.LSTM(H))
    source.build((None, T, F))
    layer = L.Bidirectional(L.LSTM(H), weights=source.get_weights())
    x = inputs()
    np.testing.assert_array_equal(layer(x), source(x))


@pytest.mark.parametrize("merge_mode", [None, "sum"])
def test_bidirectional_config_round_trip_keeps_merge_mode_and_states(merge_mode):
    layer = L.Bidirectional(L.LSTM(H, return_sequences=True, return_state=True),
                            merge_mode=merge_mode)
    x = inputs()
    layer(x)
    twin = round_trip(layer)
    assert twin.merge_mode == merge_mode and twin.return_state
    twin(x)
    twin.set_weights(layer.get_weights())
    for a, b in zip(twin(x, mask=MASK), layer(x, mask=MASK)):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_rejects_bad_initial_state_and_sequential_rejects_several_outputs():
    from fastrnn.models import Sequential

    layer = L.Bidirectional(L.LSTM(H, return_state=True))
    with pytest.raises(ValueError, match="initial_state must be a list of 4"):
        layer(inputs(), initial_state=[np.zeros((B, H))] * 2)
    with pytest.raises(ValueError, match="each initial state must have shape"):
        layer(inputs(), initial_state=[np.zeros((B, H + 1))] * 4)
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(L.LSTM(H), merge_mode="max")
    with pytest.raises(ValueError, match="several outputs"):
        Sequential([L.Bidirectional(L.LSTM(H, return_state=True), input_shape=(T, F))])


def test_bidirectional_with_a_backward_layer_of_another_kind_orders_its_states():
    layer = L.Bidirectional(L.LSTM(H, return_state=True, dtype="float64"), merge_mode=None,
                            backward_layer=L.GRU(2, return_state=True, go_backwards=True,
                                                 dtype="float64"))
    x = inputs(np.float64)
    out = layer(x, mask=MASK)
    assert [o.shape for o in out] == [(B, H), (B, 2), (B, H), (B, H), (B, 2)]
    assert [tuple(s[1:]) for s in layer.compute_output_shape((None, T, F))[2:]] == [(H,), (H,), (2,)]
    states = [np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, 2))]
    for a, b in zip(layer(x, mask=MASK, initial_state=states), out):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    check_gradients(layer, x, mask=MASK, rtol=1e-6, atol=1e-8)
