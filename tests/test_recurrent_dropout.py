"""recurrent_dropout: per-gate masks on the products' inputs, in the kernels and the layers.

- ops against the reference with fixed masks (``recurrent_masks`` (G, B, H), ``input_masks``
  (G, B, I)), float32 and float64, with lengths, masks, reverse, and on the kernels' paths
  (inputs projected step by step or by GEMM, a batch split by rows or by units); tolerances
  of ops_checks (1e-10 in float64, 2e-5 in float32 relative to the scale);
- the reference's gradients with masks against finite differences in float64;
- the layers against Keras 3 with the same masks injected into both (Keras's cells'
  ``get_dropout_mask`` / ``get_recurrent_dropout_mask``, fastrnn's ``dropout_masks``): a
  training-mode call and one SGD step, to rtol 1e-5 in float32;
- the masks the layers draw: kept fraction, scale, per gate, per call, fixed over time,
  repeatable with ``set_random_seed``, off in inference; Bidirectional, stacked cells,
  stateful.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import conftest
from conftest import make_case, steps_to_split_by_units
from fastrnn import ops, reference
from fastrnn.modes import GATES
from ops_checks import MODES, assert_matches_reference, holey_mask, kernel_threads

os.environ.setdefault("KERAS_BACKEND", "torch")


def with_masks(case, mode, seed=0, rate=0.3, recurrent=True, inputs=True):
    """``case`` with dropout-like masks per gate block: 0 or 1 / (1 - rate)."""
    T, B, I = case["x"].shape
    H, G, dtype = case["w_hh"].shape[1], GATES[mode], case["x"].dtype
    rng = np.random.default_rng(seed)

    def draw(K):
        return ((rng.random((G, B, K)) >= rate) / (1 - rate)).astype(dtype)

    return {**case, "recurrent_masks": draw(H) if recurrent else None,
            "input_masks": draw(I) if inputs else None}


# ----------------------------------------------------------------------------------------
# The kernels against the reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
def test_masked_products_match_reference(mode, dtype):
    T, B = 6, 5
    case = with_masks(make_case(mode, T, B, 7, 9, dtype, seed=4), mode, seed=1)
    assert_matches_reference(mode, case)
    assert_matches_reference(mode, case, lengths=np.array([6, 0, 3, 6, 1]), reverse=True)
    assert_matches_reference(mode, case, mask=holey_mask(T, B, seed=2))


@pytest.mark.parametrize("inputs", [False, True], ids=["recurrent", "both"])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_masked_products_match_reference_on_the_kernels_paths(mode, inputs):
    """Rows split between two threads (with recurrent masks alone the inputs are projected step
    by step, with input masks by GEMM), then one sequence whose units are split."""
    case = with_masks(make_case(mode, 9, 16, 10, 33, np.float32, seed=5), mode, seed=2, inputs=inputs)
    with kernel_threads(2):
        assert_matches_reference(mode, case, reverse=True)
        H = 130
        T = steps_to_split_by_units(mode, 1, H)
        single = with_masks(make_case(mode, T, 1, 6, H, np.float32, seed=6), mode, seed=3, inputs=inputs)
        assert_matches_reference(mode, single, lengths=np.array([T - 2]))


def test_masks_of_ones_change_nothing_and_inference_applies_them():
    case = make_case("lstm", 4, 3, 5, 6, np.float64, seed=7)
    ones = with_masks(case, "lstm", rate=0.0)
    plain = ops.rnn_forward("lstm", **case, training=False)
    masked = ops.rnn_forward("lstm", **ones, training=False)
    for a, b in zip(plain[:3], masked[:3]):
        np.testing.assert_array_equal(a, b)
    dropped = with_masks(case, "lstm", seed=3)
    y, _, _, _ = ops.rnn_forward("lstm", **dropped, training=False)
    want, _, _, _ = reference.rnn_forward("lstm", **dropped, training=False)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_reference_gradients_with_masks_match_finite_differences(mode):
    T, B, I, H = 4, 3, 3, 2
    case = with_masks(make_case(mode, T, B, I, H, np.float64, seed=8), mode, seed=4, rate=0.4)
    rng = np.random.default_rng(9)
    R, S = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    options = dict(lengths=np.array([4, 1, 3]), reverse=True)

    def loss():
        y, h_n, _, _ = reference.rnn_forward(mode, **case, training=False, **options)
        return float(np.sum(y * R) + np.sum(h_n * S))

    _, _, _, cache = reference.rnn_forward(mode, **case, **options)
    grads = reference.rnn_backward(cache, R, S)
    for name in ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"):
        numeric = conftest.finite_difference(loss, case[name], 1e-6)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("name, value, error, words", [
    ("recurrent_masks", np.ones((3, 2, 4)), ValueError, r"recurrent_masks must have shape \(G, B, H\) = \(4, 2, 4\)"),
    ("input_masks", np.ones((4, 2, 5)), ValueError, r"input_masks must have shape \(G, B, I\) = \(4, 2, 3\)"),
    ("input_masks", np.ones((4, 2, 3), np.float32), TypeError, "input_masks has dtype float32 but x has float64"),
    ("recurrent_masks", [[1.0]], TypeError, "recurrent_masks must be a numpy.ndarray"),
])
def test_bad_masks_are_refused_naming_the_argument(name, value, error, words):
    case = make_case("lstm", 2, 2, 3, 4, np.float64)
    for module in (ops, reference):
        with pytest.raises(error, match=words):
            module.rnn_forward("lstm", **case, **{name: value})


# ----------------------------------------------------------------------------------------
# The layers against Keras 3, with the same masks


B, T, F, H = 4, 5, 3, 4


def fixed_masks(kind, rate_in, rate_rec, seed=0):
    """Keras-order masks for one call: (input, recurrent) as Keras's cells hold them."""
    rng = np.random.default_rng(seed)
    G = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[kind]

    def mask(shape, rate):
        return ((rng.random(shape) >= rate) / (1 - rate)).astype(np.float32)

    per_gate = G > 1
    drop = [mask((B, F), rate_in) for _ in range(G)] if per_gate else mask((B, F), rate_in)
    rec = [mask((B, H), rate_rec) for _ in range(G)] if per_gate else mask((B, H), rate_rec)
    return drop, rec


def inject_keras(layer, drop, rec, monkeypatch):
    import keras
    cell = layer.cell

    def tensor(m):
        return [keras.ops.convert_to_tensor(a) for a in m] if isinstance(m, list) else keras.ops.convert_to_tensor(m)

    monkeypatch.setattr(cell, "get_dropout_mask", lambda step_input: tensor(drop))
    monkeypatch.setattr(cell, "get_recurrent_dropout_mask", lambda state: tensor(rec))


def inject_fastrnn(layer, drop, rec, monkeypatch):
    kernel_drop = np.stack(drop) if isinstance(drop, list) else drop
    kernel_rec = np.stack(rec) if isinstance(rec, list) else rec[None]
    monkeypatch.setattr(layer, "dropout_masks", lambda B_, F_: (kernel_drop, kernel_rec))


@pytest.mark.parametrize("kind, options", [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {}),
                                           ("GRU", {"reset_after": False})],
                         ids=["SimpleRNN", "LSTM", "GRU", "GRU-reset-before"])
def test_a_training_call_and_an_sgd_step_match_keras_with_the_same_masks(kind, options, monkeypatch):
    keras = pytest.importorskip("keras")
    import fastrnn
    from fastrnn import layers as fl

    def model(lib, L):
        x = L.Input(shape=(T, F))
        layer = getattr(L, kind)(H, dropout=0.3, recurrent_dropout=0.4, return_sequences=True, **options)
        return lib.Model(x, layer(x))

    keras.utils.set_random_seed(0)
    k, f = model(keras, keras.layers), model(fastrnn, fl)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in k.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    drop, rec = fixed_masks(kind, 0.3, 0.4, seed=2)
    inject_keras(k.layers[-1], drop, rec, monkeypatch)
    inject_fastrnn(f.layers[-1], drop, rec, monkeypatch)
    x = rng.uniform(-2, 2, (B, T, F)).astype(np.float32)
    y = rng.uniform(-1, 1, (B, T, H)).astype(np.float32)
    want = keras.ops.convert_to_numpy(k(x, training=True))
    np.testing.assert_allclose(f(x, training=True), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, keras.ops.convert_to_numpy(k(x, training=False)), atol=1e-3)
    k.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    f.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    k.train_on_batch(x, y)
    f.train_on_batch(x, y)
    for got, want in zip(f.get_weights(), k.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------
# The masks the layers draw


def test_drawn_masks_keep_one_minus_rate_scaled_and_differ_per_gate_and_call():
    from fastrnn import layers as fl
    rate = 0.3
    layer = fl.LSTM(64, dropout=0.2, recurrent_dropout=rate)
    drop, rec = layer.dropout_masks(256, 16)
    assert drop.shape == (4, 256, 16) and rec.shape == (4, 256, 64)
    assert set(np.unique(rec)) == {0.0, np.float32(1 / (1 - rate))}
    kept = float((rec > 0).mean())  # 65536 draws: 4 standard deviations are 0.007
    assert abs(kept - (1 - rate)) < 0.01
    assert not any(np.array_equal(rec[0], rec[k]) for k in (1, 2, 3))
    assert not np.array_equal(rec, layer.dropout_masks(256, 16)[1])
    simple = fl.SimpleRNN(8, dropout=0.2, recurrent_dropout=rate)
    drop, rec = simple.dropout_masks(5, 3)
    assert drop.shape == (5, 3) and rec.shape == (1, 5, 8)
    drop, rec = fl.GRU(8, dropout=0.2).dropout_masks(5, 3)  # dropout alone: Keras's one mask
    assert drop.shape == (5, 3) and rec is None


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_layer_applies_the_masks_it_draws_at_every_step(kind, monkeypatch):
    """The layer's training output is the reference's with the masks it drew, one per gate,
    the same at every step."""
    from fastrnn import layers as fl
    layer = getattr(fl, kind)(6, dropout=0.25, recurrent_dropout=0.35, return_sequences=True,
                              dtype="float64", go_backwards=True)
    x = np.random.default_rng(3).standard_normal((5, 7, 4))
    layer(x)
    drawn = []
    draw = layer.dropout_masks
    monkeypatch.setattr(layer, "dropout_masks", lambda *a: drawn.append(draw(*a)) or drawn[-1])
    out = layer(x, training=True)
    drop, rec = drawn[0]
    y, _, _, _ = reference.rnn_forward(layer.mode, np.ascontiguousarray(x.transpose(1, 0, 2)), None,
                                       layer.w_ih, layer.w_hh, layer.b_ih, layer.b_hh, reverse=True,
                                       training=False, input_masks=layer.kernel_blocks(drop),
                                       recurrent_masks=layer.kernel_blocks(rec))
    np.testing.assert_allclose(out, y[::-1].transpose(1, 0, 2), rtol=0, atol=1e-12)


def test_masks_repeat_with_set_random_seed_and_are_off_in_inference():
    from fastrnn import layers as fl
    from fastrnn.utils import set_random_seed
    layer = fl.GRU(5, dropout=0.2, recurrent_dropout=0.5)
    x = np.random.default_rng(0).standard_normal((3, 6, 2)).astype(np.float32)
    layer(x)  # built: its initialisation draws from the generator too
    set_random_seed(4)
    a = layer(x, training=True)
    set_random_seed(4)
    np.testing.assert_array_equal(layer(x, training=True), a)
    assert not np.allclose(layer(x, training=True), a)
    plain = fl.GRU(5)
    plain(x)
    plain.set_weights(layer.get_weights())
    np.testing.assert_array_equal(layer(x), plain(x))
    assert layer.get_config()["recurrent_dropout"] == 0.5


def test_gradients_of_bidirectional_and_stacked_cells_with_the_masks_fixed():
    from fastrnn import layers as fl
    from fastrnn.utils import set_random_seed
    from layer_checks import check_gradients
    x = np.random.default_rng(5).standard_normal((3, 4, 2))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 1, 1]], bool)
    bi = fl.Bidirectional(fl.LSTM(3, dropout=0.3, recurrent_dropout=0.4, return_sequences=True,
                                  dtype="float64"), dtype="float64")
    check_gradients(bi, x, mask=mask, reseed=lambda: set_random_seed(2))
    cells = fl.RNN([fl.GRUCell(3, recurrent_dropout=0.3, dtype="float64"),
                    fl.SimpleRNNCell(2, dropout=0.2, recurrent_dropout=0.3, dtype="float64")],
                   dtype="float64")
    check_gradients(cells, x, reseed=lambda: set_random_seed(3))


def test_a_stateful_layer_with_recurrent_dropout_carries_its_state():
    from fastrnn import layers as fl
    layer = fl.LSTM(3, recurrent_dropout=0.3, stateful=True, seed=1)
    x = np.random.default_rng(6).standard_normal((2, 4, 2)).astype(np.float32)
    layer(x, training=True)
    carried = [s.copy() for s in layer.states]
    layer(x, training=True)
    assert not np.allclose(layer.states[0], carried[0])
    layer.reset_states()
    assert layer.states is None
