"""ONNX export of functional models run in ONNX Runtime, against ``model.predict``.

Several inputs and outputs, the lstm_seq2seq encoder–decoder and its inference models, a
shared layer (one initializer for its weights), a model used as a layer, masks travelling
through merges, and an attention model over a masked Bidirectional: every output to 1e-5
(float32), on padded batches of a batch size and length the model was not built for.
Skipped without onnx and onnxruntime.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import randomize
import fastrnn
from fastrnn.layers import (GRU, LSTM, Attention, Bidirectional, Concatenate, Dense, Embedding,
                            GlobalAveragePooling1D, Input, Layer, Masking, SimpleRNN, Subtract)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from fastrnn.export.onnx import to_onnx  # noqa: E402 (needs onnx)

TOL = dict(rtol=1e-5, atol=1e-5)
F, V = 3, 7  # features, vocabulary



def session(model_or_proto):
    proto = model_or_proto if isinstance(model_or_proto, onnx.ModelProto) else to_onnx(model_or_proto)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # state inputs with defaults make ORT warn about each
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(model, feeds: dict) -> dict:
    sess = session(model)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def padded_features(B=4, T=7, seed=1, lengths=(7, 4, 1, 0)):
    """x: (B, T, F), sequences of the given lengths (T for the rows after), zero after."""
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0.1, 1.0, (B, T, F)) * rng.choice([-1, 1], (B, T, F))).astype(np.float32)
    for row, length in enumerate(lengths[:B]):
        x[row, length:] = 0
    return x


def padded_ids(B=4, T=7, seed=1, lengths=(7, 5, 2, 1)):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, (B, T)).astype(np.int64)
    for row, length in enumerate(lengths[:B]):
        ids[row, length:] = 0
    return ids


def assert_outputs_match(model, feeds: dict):
    """Every output of the exported graph equals predict's, in the model's output order."""
    want = model.predict([feeds[name] for name in model.input_names], verbose=0)
    want = want if isinstance(want, list) else [want]
    got = run(model, feeds)
    assert list(got)[:len(want)] == model.output_names
    for name, w in zip(model.output_names, want):
        np.testing.assert_allclose(got[name], w, **TOL, err_msg=name)


def test_lstm_seq2seq_training_model_and_its_inference_models_match_predict():
    """Keras's lstm_seq2seq example: the encoder's states start the decoder; then the
    inference models (the encoder; the decoder taking and returning its states)."""
    latent, n_in, n_out = 5, F, 4
    encoder_inputs = Input(shape=(None, n_in), name="encoder_inputs")
    encoder = LSTM(latent, return_state=True, name="encoder")
    _, state_h, state_c = encoder(encoder_inputs)
    decoder_inputs = Input(shape=(None, n_out), name="decoder_inputs")
    decoder_lstm = LSTM(latent, return_sequences=True, return_state=True, name="decoder")
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = Dense(n_out, activation="softmax", name="dense")
    model = randomize(fastrnn.Model([encoder_inputs, decoder_inputs], decoder_dense(decoder_outputs)))
    rng = np.random.default_rng(3)
    enc_x = rng.uniform(-1, 1, (3, 6, n_in)).astype(np.float32)
    dec_x = rng.uniform(-1, 1, (3, 5, n_out)).astype(np.float32)
    assert_outputs_match(model, {"encoder_inputs": enc_x, "decoder_inputs": dec_x})
    inputs = {i.name for i in session(model).get_overridable_initializers()}
    assert "encoder/initial_h" in inputs and "decoder/initial_h" not in inputs  # fed by the encoder

    encoder_model = fastrnn.Model(encoder_inputs, [state_h, state_c])
    assert_outputs_match(encoder_model, {"encoder_inputs": enc_x})
    h_in, c_in = Input(shape=(latent,), name="h_in"), Input(shape=(latent,), name="c_in")
    y, h, c = decoder_lstm(decoder_inputs, initial_state=[h_in, c_in])
    decoder_model = fastrnn.Model([decoder_inputs, h_in, c_in], [decoder_dense(y), h, c])
    h0, c0 = rng.uniform(-1, 1, (2, 2, latent)).astype(np.float32)
    assert_outputs_match(decoder_model, {"decoder_inputs": dec_x[:2, :1], "h_in": h0, "c_in": c0})


def test_a_two_output_model_on_masked_ids_matches_predict():
    ids = Input(shape=(None,), dtype="int64", name="ids")
    h = Embedding(V, F, mask_zero=True)(ids)
    seq = GRU(4, return_sequences=True, name="gru")(h)
    per_step = Dense(2, name="tags")(seq)
    pooled = Dense(1, activation="sigmoid", name="score")(GlobalAveragePooling1D()(seq))
    model = randomize(fastrnn.Model(ids, [per_step, pooled]))
    model.compile(optimizer="adam", loss=["mse", "binary_crossentropy"])
    train = padded_ids(B=3, T=5, seed=4, lengths=(5, 3, 2))
    rng = np.random.default_rng(4)
    model.fit(train, [rng.normal(size=(3, 5, 2)).astype(np.float32), np.array([[0.], [1.], [1.]], np.float32)],
              epochs=2, verbose=0)
    assert_outputs_match(model, {"ids": padded_ids(B=5, T=8)})  # a batch size and length not trained on


def test_a_shared_layer_is_emitted_per_call_with_one_copy_of_its_weights():
    a, b = Input(shape=(None, F), name="a"), Input(shape=(None, F), name="b")
    masking, shared = Masking(), LSTM(4, name="shared")
    ha, hb = shared(masking(a)), shared(masking(b))
    model = randomize(fastrnn.Model([a, b], [Subtract()([ha, hb]), ha]))
    xa, xb = padded_features(B=4, T=6, seed=1), padded_features(B=4, T=9, seed=2, lengths=(2, 9, 0, 5))
    assert_outputs_match(model, {"a": xa, "b": xb})
    proto = to_onnx(model)
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 2
    assert sum(i.name.endswith("/W") for i in proto.graph.initializer) == 1
    states = {i.name for i in session(proto).get_overridable_initializers()}
    assert {"shared/call_0/initial_h", "shared/call_1/initial_h"} <= states


def test_initial_state_from_another_layers_state_and_a_layer_returning_several_outputs():
    x = Input(shape=(None, F), name="x")
    masked = Masking()(x)
    seq, h = SimpleRNN(4, return_sequences=True, return_state=True, name="first")(masked)
    both = Bidirectional(GRU(4, return_state=True), merge_mode=None, name="bidi")
    fwd, bwd, h_f, h_b = both(seq, initial_state=[h, h])
    model = randomize(fastrnn.Model(x, [Concatenate()([fwd, bwd, h_f, h_b]), h]))
    assert_outputs_match(model, {"x": padded_features(B=4, T=8)})


def test_a_model_used_as_a_layer_matches_predict():
    inner_in = Input(shape=(None, F))
    inner = fastrnn.Model(inner_in, LSTM(4, return_sequences=True)(Masking()(inner_in)), name="inner")
    x = Input(shape=(None, F), name="x")
    model = randomize(fastrnn.Model(x, GRU(3)(inner(x))))
    assert_outputs_match(model, {"x": padded_features(B=4, T=5)})


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_over_a_masked_bidirectional_matches_predict(causal):
    ids = Input(shape=(None,), dtype="int64", name="ids")
    seq = Bidirectional(LSTM(4, return_sequences=True))(Embedding(V, F, mask_zero=True)(ids))
    context, scores = Attention(use_scale=True)([seq, seq], return_attention_scores=True,
                                                use_causal_mask=causal)
    pooled = GlobalAveragePooling1D()(Concatenate()([context, seq]))
    model = randomize(fastrnn.Model(ids, [Dense(2, name="out")(pooled), scores]))
    assert_outputs_match(model, {"ids": padded_ids(B=5, T=9)})


def test_masks_given_in_calls_and_a_shared_bidirectional_match_predict():
    """A mask fed as a model input (0/1 ints) to Attention and to an LSTM; a Bidirectional
    called on two inputs."""
    q, k = Input(shape=(None, F), name="q"), Input(shape=(None, F), name="k")
    keep = Input(shape=(None,), dtype="int64", name="keep")
    attended = Attention()([q, q, k], mask=[None, keep])
    shared = Bidirectional(GRU(3, return_sequences=True), name="both")
    last = LSTM(2)(shared(q), mask=keep)
    model = randomize(fastrnn.Model([q, k, keep], [attended, last, shared(k)]))
    xq = padded_features(B=4, T=6, seed=1, lengths=())
    xk = padded_features(B=4, T=6, seed=2, lengths=(6, 3, 2, 1))
    keep_x = (np.abs(xk).sum(-1) > 0).astype(np.int64)
    assert_outputs_match(model, {"q": xq, "k": xk, "keep": keep_x})
    assert sum(n.op_type == "GRU" for n in to_onnx(model).graph.node) == 2


def test_a_layer_without_an_onnx_form_in_a_graph_raises_naming_it():
    class Twice(Layer):
        def call(self, x, training=False, mask=None):
            return 2 * x

    x = Input(shape=(None, F))
    model = fastrnn.Model(x, LSTM(2)(Twice(name="twice")(x)))
    with pytest.raises(ValueError, match="twice"):
        to_onnx(model)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("padding", ["before", "holes"])
def test_attention_over_a_masked_bidirectional_with_pre_padding_and_holes_matches_keras(padding):
    """Masks fastrnn's own recurrent layers refuse (pre-padding, holes) run in the graph as
    in Keras 3, from the same weights, through the whole functional model."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

    def build(lib, model_class):
        x = lib.Input(shape=(None, F), name="x")
        seq = lib.layers.Bidirectional(lib.layers.LSTM(4, return_sequences=True))(lib.layers.Masking()(x))
        context = lib.layers.Attention(use_scale=True)([seq, seq])
        pooled = lib.layers.GlobalAveragePooling1D()(lib.layers.Add()([context, seq]))
        return model_class(x, lib.layers.Dense(2)(pooled))

    model = randomize(build(fastrnn, fastrnn.Model))
    twin = build(keras, keras.Model)
    twin.set_weights(model.get_weights())
    x = padded_features(B=4, T=7, seed=1, lengths=())
    if padding == "before":
        for row, length in enumerate([7, 4, 1, 0]):
            x[row, :7 - length] = 0
    else:
        x[0, [1, 4]] = 0
        x[1, [0, 2, 3, 6]] = 0
        x[2, :5] = 0
        x[3] = 0
    got = run(model, {"x": x})[model.output_names[0]]
    want = twin.predict(x, verbose=0)
    assert np.isnan(want[3]).all()  # a row with no real step averages nothing, as in Keras
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_layer_converted_from_pytorch_keeps_both_biases_and_matches_torch(kind):
    """from_torch keeps torch's two biases; the export gives both to ONNX's operator."""
    torch = pytest.importorskip("torch")
    from fastrnn.interop import from_torch

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(F, 4, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.5, 0.5)
    converted = from_torch(module)
    assert converted.layers[0].forward_layer.b_hh is not None  # the second bias is kept
    x = Input(shape=(None, F), name="x")
    model = fastrnn.Model(x, converted(x))
    xs = padded_features(B=3, T=6, lengths=())
    with torch.no_grad():
        want = module(torch.from_numpy(xs))[0].numpy()
    got = run(model, {"x": xs})[model.output_names[0]]
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(got, model.predict(xs, verbose=0), **TOL)
