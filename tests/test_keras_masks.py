"""Masks of every form against real Keras 3 (torch backend), from identical weights.

Layers called with explicit ``mask=`` arrays (padding before, after, holes, rows with no real
step, nothing masked) and nonzero initial states, in float32, to rtol 1e-5 / atol 1e-6 (a
semantic difference is of order 1; Keras 3.15.1's float64 layers on torch multiply in float32,
as ``keras.ops.matmul`` takes the result type of two torch float64 tensors for float32, so
float64 would be no tighter): SimpleRNN, LSTM
and GRU with return_sequences both ways, go_backwards, zero_output_for_mask, return_state;
Bidirectional with every merge mode; stateful layers over two batches; stacked cells. Models
with Embedding(mask_zero=True) on pre-padded ids and Masking on inputs with holes, in
float32: predict to rtol 1e-5 and three Adam steps with the same losses (rtol 1e-5) and
weights (atol 1e-6). Skipped when keras is not installed.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import fastrnn  # noqa: E402
from fastrnn import layers as fl  # noqa: E402
from test_masks import B, F, H, MASKS, T  # noqa: E402  (the mask forms, written once)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

RTOL, ATOL = 1e-5, 1e-6
F32 = "float32"
KINDS = ["SimpleRNN", "LSTM", "GRU"]


def numpy(out):
    """Keras's output(s) -> a list of ndarrays."""
    out = out if isinstance(out, (list, tuple)) else [out]
    return [o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o) for o in out]


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def tensor(a):
    return keras.ops.convert_to_tensor(a)


def twins(kind, batch_shape=None, **options):
    """The same layer in Keras and fastrnn, built, with Keras's random weights in both."""
    keras.utils.set_random_seed(0)
    k = getattr(keras.layers, kind)(H, dtype=F32, **options)
    f = getattr(fl, kind)(H, dtype=F32, **options)
    k.build(batch_shape or (None, None, F))
    f.build(batch_shape or (None, None, F))
    rng = np.random.default_rng(1)
    weights = [w + 0.3 * rng.standard_normal(w.shape, dtype=np.float32) for w in k.get_weights()]
    k.set_weights(weights)  # every bias entry nonzero too
    f.set_weights(weights)
    return k, f


def data(seed=2):
    """x (B, T, F), h0, c0 (B, H), float32."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape, dtype=np.float32) for shape in ((B, T, F), (B, H), (B, H)))


def close_all(got, expected):
    got, expected = as_list(got), numpy(expected)
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=f"output {k}")


# ------------------------------------------------------------------------------------
# Layers with explicit masks


@pytest.mark.parametrize("form", list(MASKS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", [
    dict(return_sequences=True), dict(return_sequences=True, go_backwards=True),
    dict(return_sequences=True, zero_output_for_mask=True),
    dict(return_sequences=True, go_backwards=True, zero_output_for_mask=True),
    dict(), dict(go_backwards=True), dict(zero_output_for_mask=True),
    dict(go_backwards=True, zero_output_for_mask=True),
], ids=["seq", "seq-back", "seq-zero", "seq-back-zero", "last", "last-back", "last-zero",
        "last-back-zero"])
def test_a_layer_with_a_mask_and_initial_state_equals_keras(form, kind, options):
    k, f = twins(kind, return_state=True, **options)
    x, h0, c0 = data()
    states = [h0, c0] if kind == "LSTM" else [h0]
    expected = k(tensor(x), mask=tensor(MASKS[form]), initial_state=[tensor(s) for s in states])
    close_all(f(x, mask=MASKS[form], initial_state=states), expected)


@pytest.mark.parametrize("form", ["pre", "holes", "empty_rows"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_layer_with_a_mask_and_no_initial_state_equals_keras(form, kind):
    k, f = twins(kind, return_sequences=True)
    x, _, _ = data()
    close_all(f(x, mask=MASKS[form]), k(tensor(x), mask=tensor(MASKS[form])))


@pytest.mark.parametrize("form", ["pre", "holes", "empty_rows", "none_masked"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_bidirectional_with_a_mask_equals_keras(form, merge_mode, return_sequences):
    keras.utils.set_random_seed(0)
    k = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=return_sequences,
                                                     return_state=True, dtype=F32),
                                   merge_mode=merge_mode, dtype=F32)
    f = fl.Bidirectional(fl.LSTM(H, return_sequences=return_sequences, return_state=True,
                                 dtype=F32), merge_mode=merge_mode)
    k.build((None, None, F))
    f.build((None, None, F))
    f.set_weights(k.get_weights())
    x, h0, c0 = data()
    _, h1, c1 = data(4)
    states = [h0, c0, h1, c1]
    expected = k(tensor(x), mask=tensor(MASKS[form]), initial_state=[tensor(s) for s in states])
    close_all(f(x, mask=MASKS[form], initial_state=states), expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_bidirectional_with_a_backward_layer_of_its_own_and_a_mask_equals_keras(kind,
                                                                              return_sequences):
    def build(lib):
        forward = lib.layers.GRU(H, return_sequences=return_sequences, dtype=F32)
        backward = getattr(lib.layers, kind)(3, return_sequences=return_sequences,
                                             go_backwards=True, dtype=F32)
        return lib.layers.Bidirectional(forward, backward_layer=backward, dtype=F32)
    keras.utils.set_random_seed(0)
    k, f = build(keras), build(fastrnn)
    k.build((None, None, F))
    f.build((None, None, F))
    f.set_weights(k.get_weights())
    x, _, _ = data()
    close_all(f(x, mask=MASKS["holes"]), k(tensor(x), mask=tensor(MASKS["holes"])))


@pytest.mark.parametrize("kind", KINDS)
def test_a_stateful_layer_with_masks_over_two_batches_equals_keras(kind):
    k, f = twins(kind, batch_shape=(B, T, F), stateful=True, return_sequences=True,
                 return_state=True)
    for seed, form in ((2, "holes"), (3, "pre")):
        x, _, _ = data(seed)
        close_all(f(x, mask=MASKS[form]), k(tensor(x), mask=tensor(MASKS[form])))


@pytest.mark.parametrize("form", ["pre", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["repeat", "zero"])
def test_stacked_cells_with_a_mask_equal_keras(form, go_backwards, zero_output):
    def build(lib):
        cells = [lib.layers.LSTMCell(H, dtype=F32), lib.layers.GRUCell(H, dtype=F32)]
        return lib.layers.RNN(cells, return_sequences=True, return_state=True, dtype=F32,
                              go_backwards=go_backwards, zero_output_for_mask=zero_output)
    keras.utils.set_random_seed(0)
    k, f = build(keras), build(fastrnn)
    k.build((None, None, F))
    f.build((None, None, F))
    f.set_weights(k.get_weights())
    x, _, _ = data()
    got = f(x, mask=MASKS[form])
    expected = k(tensor(x), mask=tensor(MASKS[form]))
    flat = [got[0]] + [s for states in got[1:] for s in states]
    close_all(flat, [expected[0]] + [s for states in expected[1:] for s in states])


# ------------------------------------------------------------------------------------
# Models: Embedding(mask_zero) on pre-padded ids, Masking on inputs with holes; training


def both_models(build):
    keras.utils.set_random_seed(0)
    k, f = build(keras), build(fastrnn)
    assert [layer.name for layer in f.layers] == [layer.name for layer in k.layers]
    for k_layer, f_layer in zip(k.layers, f.layers):
        f_layer.set_weights(k_layer.get_weights())
    return k, f


def check_predict_and_training(k, f, x, y, loss):
    np.testing.assert_allclose(f.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    k.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    f.compile(optimizer=fastrnn.optimizers.Adam(1e-3), loss=loss)
    for _ in range(3):
        expected = float(k.train_on_batch(x, y))
        assert float(f.train_on_batch(x, y)) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    for k_layer, f_layer in zip(k.layers, f.layers):
        for a, b in zip(f_layer.get_weights(), k_layer.get_weights()):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


def embedding_model(lib):
    layers = lib.layers
    return lib.Sequential([
        lib.Input((None,), dtype="int32"),
        layers.Embedding(30, 6, mask_zero=True, name="embed"),
        layers.Bidirectional(layers.GRU(5, return_sequences=True), merge_mode="sum", name="bi"),
        layers.LSTM(4, go_backwards=True, name="lstm"),
        layers.Dense(1, activation="sigmoid", name="out")])


def test_embedding_mask_zero_on_keras_pre_padded_ids_trains_as_keras():
    rng = np.random.default_rng(5)
    texts = [list(rng.integers(1, 30, n)) for n in (7, 3, 1, 5, 6, 2, 4, 7)]
    ids = keras.utils.pad_sequences(texts, maxlen=6)  # pre-padding, the long ones cut at the front
    np.testing.assert_array_equal(ids, fastrnn.utils.pad_sequences(texts, maxlen=6))
    y = rng.integers(0, 2, (len(texts), 1)).astype(np.float32)
    check_predict_and_training(*both_models(embedding_model), ids, y, "binary_crossentropy")


def masking_model(lib):
    layers = lib.layers
    return lib.Sequential([
        lib.Input((None, F)),
        layers.Masking(name="masking"),
        layers.SimpleRNN(5, return_sequences=True, name="rnn"),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode="concat", name="bi"),
        layers.GRU(3, zero_output_for_mask=True, name="gru"),
        layers.Dense(2, name="out")])


def test_masking_with_holes_and_empty_rows_trains_as_keras():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 7, F)).astype(np.float32)
    mask = rng.random((6, 7)) < 0.6
    mask[2] = False  # a row with no real step
    mask[4, -1] = False  # the last step masked, so that zero_output_for_mask matters
    x[~mask] = 0
    y = rng.standard_normal((6, 2)).astype(np.float32)
    check_predict_and_training(*both_models(masking_model), x, y, "mse")
