"""``LSTM(use_peepholes=True)`` and ``LSTMCell(use_peepholes=True)``: fastrnn's extension (Keras has
no peepholes), the kernels' mode ``lstm_peephole``.

- the layer's gradients, the peephole's among them, against finite differences (float64), with a
  mask, reading backwards;
- its weights (``[kernel, recurrent_kernel, bias, peephole (3, H)]``), config, the cell in
  ``RNN``, Bidirectional and stateful runs against the layer run by hand;
- saving: ``.npz`` round trip; ``.keras`` and ``.weights.h5`` refused naming the layer;
  ``to_torch`` refused. ONNX Runtime parity is in ``tests/test_export_onnx_layers.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import Sequential
from fastrnn.layers import LSTM, RNN, Bidirectional, Input, LSTMCell, Masking
from layer_checks import check_gradients, round_trip

F, H = 3, 4


def peephole_lstm(seed=0, **options):
    """A built float64 LSTM with peepholes and random weights, peepholes included."""
    layer = LSTM(H, use_peepholes=True, dtype="float64", **options)
    layer.build((None, None, F))
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.8, 0.8, s) for s in layer.weight_shapes()])
    return layer


def masked_batch(B=3, T=5, seed=1):
    x = np.random.default_rng(seed).standard_normal((B, T, F))
    mask = np.ones((B, T), dtype=bool)
    mask[0, 3:] = mask[1, :2] = False
    mask[2, 2] = False
    return x, mask


@pytest.mark.parametrize("options", [dict(return_sequences=True), dict(go_backwards=True, return_state=True)],
                         ids=["sequences", "backwards-states"])
def test_layer_gradients_match_finite_differences(options):
    layer = peephole_lstm(**options)
    x, mask = masked_batch()
    check_gradients(layer, x, mask=mask, rtol=1e-6, atol=1e-8)
    assert len(layer.params) == 4 and layer.params[-1].shape == (3, H)


def test_weights_config_and_zero_peepholes():
    layer = peephole_lstm()
    assert [w.shape for w in layer.get_weights()] == [(F, 4 * H), (H, 4 * H), (4 * H,), (3, H)]
    np.testing.assert_array_equal(layer.get_weights()[3], layer.cell_params["peephole"])
    config = layer.get_config()
    assert config["use_peepholes"] is True and "use_peepholes" not in LSTM(H).get_config()
    twin = round_trip(layer)
    twin.build((None, None, F))
    twin.set_weights(layer.get_weights())
    x, mask = masked_batch()
    np.testing.assert_array_equal(twin(x, mask=mask), layer(x, mask=mask))
    # zero peepholes (the default initializer) are the plain LSTM
    plain = LSTM(H, dtype="float64")
    plain.build((None, None, F))
    plain.set_weights(layer.get_weights()[:3])
    layer.set_weights(layer.get_weights()[:3] + [np.zeros((3, H))])
    np.testing.assert_allclose(layer(x, mask=mask), plain(x, mask=mask), rtol=1e-13, atol=1e-14)
    assert not np.any(LSTM(H, use_peepholes=True).__class__(H, use_peepholes=True).get_weights())


def test_the_cell_in_rnn_and_bidirectional_and_stateful_runs_match_the_layer():
    layer = peephole_lstm(return_sequences=True)
    x, mask = masked_batch()
    want = layer(x, mask=mask)
    rnn = RNN(LSTMCell(H, use_peepholes=True, dtype="float64"), return_sequences=True, dtype="float64")
    rnn.build((None, None, F))
    rnn.set_weights(layer.get_weights())
    np.testing.assert_allclose(rnn(x, mask=mask), want, rtol=1e-13, atol=1e-14)
    h, (h1, c1) = rnn.cell(x[:, 0], None)
    np.testing.assert_allclose(h, layer(x)[:, 0], rtol=1e-13, atol=1e-14)

    both = Bidirectional(LSTM(H, use_peepholes=True, return_sequences=True, dtype="float64"))
    both.build((None, None, F))
    backward = peephole_lstm(seed=2, return_sequences=True, go_backwards=True)
    both.set_weights(layer.get_weights() + backward.get_weights())
    got = both(x)  # (masked outputs are Bidirectional's own: tests/test_layers_bidirectional.py)
    np.testing.assert_allclose(got[..., :H], layer(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[..., H:], backward(x)[:, ::-1], rtol=1e-13, atol=1e-14)

    stateful = peephole_lstm(stateful=True, return_sequences=True)
    first, second = stateful(x[:, :2]), stateful(x[:, 2:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), layer(x), rtol=1e-13, atol=1e-14)


def peephole_model():
    model = Sequential([Input(shape=(None, F)), Masking(),
                        LSTM(H, use_peepholes=True, return_sequences=True, name="peep")])
    rng = np.random.default_rng(3)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_npz_round_trip_and_keras_files_refused_naming_the_layer(tmp_path):
    model = peephole_model()
    x, _ = masked_batch()
    x = x.astype(np.float32)
    model.save(tmp_path / "m.npz")
    again = fastrnn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    for name, save in (("m.keras", model.save), ("m.weights.h5", model.save_weights)):
        with pytest.raises(ValueError, match=r"layer 'peep' \(LSTM\) has peepholes.*\.npz"):
            save(tmp_path / name)
        assert not (tmp_path / name).exists()


def test_to_torch_is_refused_naming_the_layer():
    pytest.importorskip("torch")
    from fastrnn.interop import to_torch

    with pytest.raises(ValueError, match=r"layer 'peep' \(LSTM\) is an LSTM with peepholes"):
        to_torch(peephole_model().layers[-1])
