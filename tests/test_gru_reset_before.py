"""GRU with the reset gate before the recurrent product (mode ``gru_reset_before``, Keras's
``GRU(reset_after=False)``), end to end.

The kernels' paths are checked against the reference in tests/test_ops_*.py (the mode is in
ops_checks.MODES) and the reference against finite differences in test_reference.py; every
activation against Keras in test_keras_activations.py. Here: the layers against real Keras
3.15.1 (torch backend) from identical weights, predict and one SGD step to rtol 1e-5 / atol
1e-6 in float32 (stacked, Bidirectional, RNN(GRUCell), masks with holes and pre-padding,
go_backwards); configs and .keras files both ways, .npz; stateful against one long call;
ONNX Runtime against predict (linear_before_reset=0); to_torch refused.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastrnn
from conftest import randomize
from fastrnn import layers as fl
from fastrnn.modes import keras_to_kernel, kernel_to_keras

os.environ.setdefault("KERAS_BACKEND", "torch")

B, T, F, H = 4, 6, 3, 5
TOL = dict(rtol=1e-5, atol=1e-6)


def masked_input(seed=1):
    """x: (B, T, F) with zero steps (masked by Masking): holes, pre-padding, a row all masked."""
    x = np.random.default_rng(seed).uniform(-2, 2, (B, T, F)).astype(np.float32)
    x[0, [1, 4]] = 0
    x[1, :3] = 0
    x[3] = 0
    return x


def model(lib, L, masked):
    """GRU(reset_after=False) as a layer, stacked, in Bidirectional and as RNN(GRUCell):
    (B, T, 2H)."""
    x = L.Input(shape=(T, F))
    h = L.Masking()(x) if masked else x
    h = L.GRU(H, reset_after=False, return_sequences=True)(h)
    h = L.GRU(H, reset_after=False, return_sequences=True, go_backwards=True)(h)
    h = L.Bidirectional(L.GRU(H, reset_after=False, return_sequences=True))(h)
    return lib.Model(x, L.RNN(L.GRUCell(2 * H, reset_after=False), return_sequences=True)(h))


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
def test_predict_and_a_training_step_match_keras(masked):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    k = model(keras, keras.layers, masked)
    f = model(fastrnn, fl, masked)
    assert [w.shape for w in f.get_weights()] == [tuple(w.shape) for w in k.get_weights()]
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in k.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    x = masked_input() if masked else rng.uniform(-2, 2, (B, T, F)).astype(np.float32)
    y = rng.uniform(-1, 1, (B, T, 2 * H)).astype(np.float32)
    np.testing.assert_allclose(f.predict(x, verbose=0), k.predict(x, verbose=0), **TOL)
    k.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    f.compile(optimizer=fastrnn.optimizers.SGD(0.1), loss="mse")
    k.train_on_batch(x, y)
    f.train_on_batch(x, y)
    for got, want in zip(f.get_weights(), k.get_weights()):
        np.testing.assert_allclose(got, want, **TOL)


def test_keras_weights_map_to_the_kernel_layout_and_back():
    """Keras's single bias (3H,) in gates z, r, h is b_ih in r, z, n; nothing in b_hh."""
    rng = np.random.default_rng(0)
    kernel, recurrent, bias = rng.standard_normal((F, 3 * H)), rng.standard_normal((H, 3 * H)), rng.standard_normal(3 * H)
    w_ih, w_hh, b_ih, b_hh = keras_to_kernel("gru_reset_before", kernel, recurrent, bias)
    np.testing.assert_array_equal(b_ih, np.concatenate([bias[H:2 * H], bias[:H], bias[2 * H:]]))
    np.testing.assert_array_equal(w_hh[:H], recurrent[:, H:2 * H].T)  # r
    assert b_hh is None
    for got, want in zip(kernel_to_keras("gru_reset_before", w_ih, w_hh, b_ih, b_hh), (kernel, recurrent, bias)):
        np.testing.assert_array_equal(got, want)


def test_the_config_and_keras_files_go_both_ways(tmp_path):
    keras = pytest.importorskip("keras")
    f = randomize(fastrnn.Sequential([fl.Input(shape=(T, F)),
                                      fl.GRU(H, reset_after=False, activation="selu", return_sequences=True),
                                      fl.RNN(fl.GRUCell(H, reset_after=False))]))
    assert f.layers[0].get_config()["reset_after"] is False
    assert type(f.layers[0]).from_config(f.layers[0].get_config()).mode == "gru_reset_before"
    x = masked_input()
    want = f.predict(x, verbose=0)
    f.save(tmp_path / "f.keras")
    k = keras.saving.load_model(tmp_path / "f.keras")
    assert k.layers[0].get_config()["reset_after"] is False
    assert k.layers[1].cell.get_config()["reset_after"] is False
    np.testing.assert_allclose(np.asarray(k.predict(x, verbose=0)), want, **TOL)
    k.save(tmp_path / "k.keras")
    back = fastrnn.load_model(tmp_path / "k.keras")
    assert back.layers[0].mode == back.layers[1].cell.layer.mode == "gru_reset_before"
    np.testing.assert_allclose(back.predict(x, verbose=0), want, **TOL)
    f.save_weights(tmp_path / "w.npz")
    again = fastrnn.Sequential([fl.Input(shape=(T, F)),
                                fl.GRU(H, reset_after=False, activation="selu", return_sequences=True),
                                fl.RNN(fl.GRUCell(H, reset_after=False))])
    again.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)


def test_stateful_halves_equal_one_call():
    whole = randomize(fastrnn.Sequential([fl.Input(shape=(T, F), batch_size=B),
                                          fl.GRU(H, reset_after=False, return_sequences=True)]))
    halves = fastrnn.Sequential([fl.Input(shape=(T // 2, F), batch_size=B),
                                 fl.GRU(H, reset_after=False, return_sequences=True, stateful=True)])
    halves.set_weights(whole.get_weights())
    x = np.random.default_rng(2).uniform(-2, 2, (B, T, F)).astype(np.float32)
    got = np.concatenate([halves.predict(x[:, :T // 2], verbose=0), halves.predict(x[:, T // 2:], verbose=0)], axis=1)
    np.testing.assert_allclose(got, whole.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_onnx_runtime_matches_predict_with_masks_bidirectional_and_states():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from fastrnn.export.onnx import to_onnx

    m = randomize(fastrnn.Sequential([
        fl.Masking(input_shape=(None, F)),
        fl.GRU(H, reset_after=False, return_sequences=True, name="gru"),
        fl.Bidirectional(fl.GRU(H, reset_after=False, return_sequences=True, go_backwards=True), name="bidi"),
        fl.RNN(fl.GRUCell(H, reset_after=False, activation="relu", recurrent_activation="hard_sigmoid"),
               name="cell")]))
    proto = to_onnx(m, 17)
    attrs = [{a.name: a.i for a in node.attribute if a.name == "linear_before_reset"}
             for node in proto.graph.node if node.op_type == "GRU"]
    assert attrs == [{"linear_before_reset": 0}] * 3
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    x = masked_input()
    got = dict(zip(names, sess.run(None, {"input": x})))
    np.testing.assert_allclose(got["output"], m.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    h0 = np.random.default_rng(3).uniform(-1, 1, (B, H)).astype(np.float32)
    got = dict(zip(names, sess.run(None, {"input": x, "gru/initial_h": h0})))
    gru = m.get_layer("gru")
    gru.stateful = True  # predict from h0, and keep the final state
    gru.reset_states([h0])
    np.testing.assert_allclose(got["output"], m.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["gru/final_h"], gru.states[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got["gru/final_h"][3], h0[3])  # row 3 is all masked


def test_to_torch_refuses_it():
    pytest.importorskip("torch")
    from fastrnn.interop import to_torch

    layer = fl.GRU(H, reset_after=False, return_sequences=True, input_shape=(None, F))
    layer.build((None, None, F))
    with pytest.raises(ValueError, match=r"reset_after=False.*torch's GRU"):
        to_torch(layer)
