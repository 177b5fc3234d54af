"""ONNX export (``model.export(path, format="onnx")``) run in ONNX Runtime.

Every layer and option against ``model.predict`` from the same weights, to 1e-5 (float32),
on padded batches of a size and length the model was not built or trained for; pre-padded
batches and masks with holes against real Keras 3 from the same weights (the layers are
checked against Keras on those in test_keras_masks.py); initial states fed and final states read back, a streaming
generation loop against a stateful model's ``predict``; the graph itself (ONNX's recurrent
operators, free batch and time axes, opsets); and bad input. Skipped without onnx and
onnxruntime.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import randomize
from fastrnn import Sequential
from fastrnn.export import graph as export_graph
from fastrnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout, Embedding, Layer,
                            Masking, SimpleRNN, TimeDistributed)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from fastrnn.export.onnx import graph_to_onnx, to_onnx  # noqa: E402 (needs onnx)

TOL = dict(rtol=1e-5, atol=1e-5)
F, V = 3, 7  # features, vocabulary
CELLS = {
    "rnn_tanh": lambda **kw: SimpleRNN(4, **kw),
    "rnn_relu": lambda **kw: SimpleRNN(4, activation="relu", **kw),
    "lstm": lambda **kw: LSTM(4, **kw),
    "gru": lambda **kw: GRU(4, **kw),
}



def session(proto_or_model, opset=17):
    proto = proto_or_model if isinstance(proto_or_model, onnx.ModelProto) else to_onnx(proto_or_model, opset)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # state inputs with defaults make ORT warn about each
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def outputs(sess, feeds):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def padded_features(B=4, T=7, after=True, seed=1):
    """x: (B, T, F) with sequences of lengths T, 4, 1 and 0 (more rows: T), zero-padded after
    (or before) the real steps, which are never all zero."""
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0.1, 1.0, (B, T, F)) * rng.choice([-1, 1], (B, T, F))).astype(np.float32)
    for row, length in enumerate([T, 4, 1, 0][:B]):
        if after:
            x[row, length:] = 0
        else:
            x[row, :T - length] = 0
    return x


def padded_ids(B=4, T=7, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, (B, T)).astype(np.int64)
    for row, length in enumerate([T, 5, 2, 0][:B]):
        ids[row, length:] = 0
    return ids


def assert_matches_predict(model, x, opset=17):
    want = model.predict(x, verbose=0)
    got = outputs(session(model, opset), {"input": x})["output"]
    np.testing.assert_allclose(got, want, **TOL)


# -- every layer and option against predict -----------------------------------------------

@pytest.mark.parametrize("mode", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
def test_recurrent_layer_on_a_post_padded_batch_matches_predict(mode, return_sequences, go_backwards):
    model = randomize(Sequential([Masking(input_shape=(5, F)),
                                  CELLS[mode](return_sequences=return_sequences, go_backwards=go_backwards)]))
    assert_matches_predict(model, padded_features(B=4, T=7))  # built for T=5, any B


@pytest.mark.parametrize("mode", CELLS)
def test_recurrent_layer_without_a_mask_or_bias_matches_predict(mode):
    model = randomize(Sequential([CELLS[mode](use_bias=False, return_sequences=True, input_shape=(None, F)),
                                  CELLS[mode](go_backwards=True)]))
    assert_matches_predict(model, padded_features(B=2, T=6))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_masked_bidirectional_matches_predict(merge_mode, return_sequences):
    model = randomize(Sequential([
        Embedding(V, F, mask_zero=True, input_shape=(None,)),
        Bidirectional(LSTM(4, return_sequences=return_sequences), merge_mode=merge_mode)]))
    assert_matches_predict(model, padded_ids())
    [node] = [n for n in to_onnx(model).graph.node if n.op_type == "LSTM"]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}["direction"] == b"bidirectional"


@pytest.mark.parametrize("case", ["go_backwards", "backward_layer"])
def test_bidirectional_with_a_reversed_or_a_different_backward_layer_matches_predict(case):
    if case == "go_backwards":
        wrapper = Bidirectional(GRU(4, return_sequences=True, go_backwards=True))
    else:  # different size and cell: two ONNX operators instead of one bidirectional one
        wrapper = Bidirectional(GRU(4, return_sequences=True),
                                backward_layer=SimpleRNN(2, return_sequences=True, go_backwards=True))
    model = randomize(Sequential([Masking(input_shape=(None, F)), wrapper]))
    assert_matches_predict(model, padded_features())


def test_stacked_masked_layers_and_every_other_layer_match_predict():
    model = randomize(Sequential([
        Embedding(V, 5, mask_zero=True, input_shape=(None,)),
        LSTM(6, return_sequences=True),
        Dropout(0.5),
        Bidirectional(GRU(4, return_sequences=True), merge_mode="sum"),
        TimeDistributed(Dense(5, activation="relu")),
        SimpleRNN(4, return_sequences=True, go_backwards=True),
        GRU(3),
        Dense(4, activation="tanh"),
        Activation("softmax"),
    ]))
    assert_matches_predict(model, padded_ids(B=5, T=9))


def test_masking_then_dense_per_step_matches_predict():
    model = randomize(Sequential([Masking(input_shape=(None, F)), Dense(4, activation="sigmoid"),
                                  LSTM(3, return_sequences=True), TimeDistributed(Dense(2)),
                                  Dense(2, activation="linear")]))
    assert_matches_predict(model, padded_features())


@pytest.mark.parametrize("layers, x", [
    ([Dense(3, activation="softmax", input_shape=(F,))], np.linspace(-1, 1, 2 * F, dtype=np.float32).reshape(2, F)),
    ([Embedding(V, 3, mask_zero=True, input_shape=(None,)), Dense(2)], padded_ids()),
], ids=["dense", "embedding"])
def test_models_without_a_recurrent_layer_match_predict(layers, x):
    assert_matches_predict(randomize(Sequential(layers)), x)


def test_a_trained_model_runs_on_a_batch_size_and_length_it_never_saw():
    rng = np.random.default_rng(0)
    x = padded_features(B=4, T=6)[np.arange(16) % 4]
    y = rng.random((16, 1)).astype(np.float32)
    model = Sequential([Masking(input_shape=(6, F)), Bidirectional(LSTM(5, return_sequences=True)),
                        GRU(4), Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert_matches_predict(model, padded_features(B=3, T=11, seed=5))


@pytest.mark.parametrize("opset", ["17", "newest"])
def test_opset_17_and_the_newest_onnxruntime_runs(opset):
    newest = newest_runtime_opset()
    opset = 17 if opset == "17" else newest
    model = randomize(Sequential([Embedding(V, 4, mask_zero=True, input_shape=(None,)),
                                  Bidirectional(GRU(3, return_sequences=True)), LSTM(3)]))
    proto = to_onnx(model, opset)
    assert proto.opset_import[0].version == opset
    onnx.checker.check_model(proto, full_check=True)
    assert_matches_predict(model, padded_ids(), opset)


def newest_runtime_opset():
    """The newest opset both onnx and onnxruntime here know."""
    for opset in range(onnx.defs.onnx_opset_version(), 16, -1):
        graph = onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])], "probe",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
        probe = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
        probe.ir_version = onnx.helper.find_min_ir_version_for(list(probe.opset_import))
        try:
            session(probe)
            return opset
        except Exception:  # noqa: BLE001 (ORT raises its own types for an unknown opset)
            continue
    pytest.skip("onnxruntime runs no opset from 17 on")


# -- pre-padding and masks with holes, against Keras ----------------------------------------

# Keras's torch backend converts arrays in a way NumPy 2 warns about.
keras_warnings = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def with_holes(x):
    """x: (4, 7, F) with masked steps inside sequences, before them, after them, and a row
    all masked."""
    x = x.copy()
    x[0, [1, 4]] = 0
    x[1, [0, 2, 3, 6]] = 0
    x[2, :5] = 0
    x[3] = 0
    return x


KERAS_CELLS = {"rnn_tanh": ("SimpleRNN", {}), "lstm": ("LSTM", {}), "gru": ("GRU", {})}


@keras_warnings
@pytest.mark.parametrize("padding", ["before", "holes"])
@pytest.mark.parametrize("mode", KERAS_CELLS)
@pytest.mark.parametrize("options", [
    dict(return_sequences=True), dict(return_sequences=True, go_backwards=True),
    dict(return_sequences=True, zero_output_for_mask=True),
    dict(return_sequences=True, go_backwards=True, zero_output_for_mask=True),
    dict(), dict(go_backwards=True), dict(zero_output_for_mask=True),
], ids=["seq", "seq-back", "seq-zero", "seq-back-zero", "last", "last-back", "last-zero"])
def test_pre_padding_and_holes_match_keras(keras, padding, mode, options):
    x = padded_features(after=False) if padding == "before" else with_holes(padded_features())
    model = randomize(Sequential([Masking(input_shape=(None, F)), CELLS[mode](**options)]))
    name, extra = KERAS_CELLS[mode]
    twin = keras.Sequential([keras.Input((None, F)), keras.layers.Masking(),
                             getattr(keras.layers, name)(4, **options, **extra)])
    twin.set_weights(model.get_weights())
    got = outputs(session(model), {"input": x})["output"]
    np.testing.assert_allclose(got, twin.predict(x, verbose=0), **TOL)


@keras_warnings
@pytest.mark.parametrize("padding", ["before", "holes"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_bidirectional_with_pre_padding_and_holes_matches_keras(keras, padding, return_sequences):
    x = padded_features(after=False) if padding == "before" else with_holes(padded_features())
    model = randomize(Sequential([Masking(input_shape=(None, F)), Bidirectional(GRU(4, return_sequences=True)),
                                  Bidirectional(LSTM(3, return_sequences=return_sequences))]))
    twin = keras.Sequential([keras.Input((None, F)), keras.layers.Masking(),
                             keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)),
                             keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=return_sequences))])
    twin.set_weights(model.get_weights())
    got = outputs(session(model), {"input": x})["output"]
    np.testing.assert_allclose(got, twin.predict(x, verbose=0), **TOL)


@keras_warnings
def test_final_states_with_holes_and_fed_initial_states_match_keras(keras):
    """A masked step keeps the state; a sequence with no real step ends where it began."""
    x = with_holes(padded_features())
    model = randomize(Sequential([Masking(input_shape=(None, F)), LSTM(4, return_sequences=True, name="lstm")]))
    rng = np.random.default_rng(3)
    h0, c0 = (rng.uniform(-1, 1, (4, 4)).astype(np.float32) for _ in range(2))
    got = outputs(session(model), {"input": x, "lstm/initial_h": h0, "lstm/initial_c": c0})
    twin = keras.layers.LSTM(4, return_sequences=True, return_state=True)
    twin.build((None, None, F))
    twin.set_weights(model.layers[1].get_weights())
    y, h, c = (t.detach().numpy() for t in twin(x, mask=np.any(x != 0, axis=-1), initial_state=[h0, c0]))
    np.testing.assert_allclose(got["output"], y, **TOL)
    np.testing.assert_allclose(got["lstm/final_h"], h, **TOL)
    np.testing.assert_allclose(got["lstm/final_c"], c, **TOL)
    np.testing.assert_array_equal(got["lstm/final_h"][3], h0[3])  # row 3 is all padding


# -- states ----------------------------------------------------------------------------------

def test_states_default_to_zeros_and_fed_states_match_a_stateful_predict():
    model = randomize(Sequential([Masking(input_shape=(None, F)), GRU(4, stateful=True, return_sequences=True),
                                  Bidirectional(LSTM(3, stateful=True, return_sequences=True), name="bidi"),
                                  SimpleRNN(3, stateful=True)]))
    gru, bidi, rnn = model.layers[1:]
    carriers = {gru.name: gru, "bidi/forward": bidi.forward_layer, "bidi/backward": bidi.backward_layer,
                rnn.name: rnn}
    x1, x2 = padded_features(B=4, T=5, seed=1), padded_features(B=4, T=6, seed=2)
    sess = session(model)
    first = outputs(sess, {"input": x1})
    np.testing.assert_allclose(first["output"], model.predict(x1, verbose=0), **TOL)
    feeds = {"input": x2}
    for path, layer in carriers.items():  # what the stateful layers carry now
        for k, s in enumerate(("h", "c")[:layer.state_count]):
            np.testing.assert_allclose(first[f"{path}/final_{s}"], layer.states[k], **TOL)
            feeds[f"{path}/initial_{s}"] = first[f"{path}/final_{s}"]
    np.testing.assert_allclose(outputs(sess, feeds)["output"], model.predict(x2, verbose=0), **TOL)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_a_batch_of_no_steps_gives_predicts_outputs_and_keeps_the_states(masked):
    """ONNX Runtime's GRU without sequence lengths aborts the process on zero steps: the graph
    always gives them."""
    first = Masking(input_shape=(None, F)) if masked else Dropout(0.5, input_shape=(None, F))
    model = randomize(Sequential([first, GRU(3, return_sequences=True, name="gru"),
                                  Bidirectional(SimpleRNN(2, return_sequences=True), name="bidi"),
                                  LSTM(2, name="lstm")]))
    x = np.zeros((2, 0, F), np.float32)
    h0 = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    got = outputs(session(model), {"input": x, "gru/initial_h": h0})
    np.testing.assert_array_equal(got["output"], model.predict(x, verbose=0))
    np.testing.assert_array_equal(got["gru/final_h"], h0)
    np.testing.assert_array_equal(got["bidi/backward/final_h"], np.zeros((2, 2)))


def test_state_inputs_are_optional_and_the_outputs_name_every_direction():
    model = randomize(Sequential([Masking(input_shape=(None, F)), Bidirectional(LSTM(3, return_sequences=True),
                                                                                name="bidi"), GRU(2, name="gru")]))
    sess = session(model)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    optional = {i.name: i.shape for i in sess.get_overridable_initializers()}
    assert optional == {f"bidi/{d}/initial_{s}": ["batch", 3] for d in ("forward", "backward") for s in "hc"} | {
        "gru/initial_h": ["batch", 2]}
    assert [o.name for o in sess.get_outputs()] == ["output"] + [
        f"bidi/{d}/final_{s}" for d in ("forward", "backward") for s in "hc"] + ["gru/final_h"]


def test_streaming_generation_one_character_at_a_time_matches_a_stateful_model():
    """The text-generation loop: feed the character picked, carry the states, in ORT and in
    fastrnn's stateful predict, step by step."""
    model = randomize(Sequential([Embedding(V, 5, input_shape=(1,), batch_size=1),
                                  LSTM(8, stateful=True, return_sequences=True, name="lstm"),
                                  GRU(6, stateful=True, name="gru"),
                                  Dense(V, activation="softmax")]), seed=4)
    sess = session(model)
    states = {}
    fastrnn_char = onnx_char = 1
    for _ in range(12):
        want = model.predict(np.array([[fastrnn_char]]), verbose=0)  # (1, V)
        got = outputs(sess, {"input": np.array([[onnx_char]], np.int64), **states})
        np.testing.assert_allclose(got["output"], want, **TOL)
        states = {name.replace("final", "initial"): value for name, value in got.items() if "final" in name}
        fastrnn_char, onnx_char = int(want.argmax()), int(got["output"].argmax())
        assert onnx_char == fastrnn_char


def test_initial_states_from_another_layer_in_a_graph():
    """The walker takes any graph description: an encoder's returned states as a decoder's
    initial state (what the functional API gives), against the layers called directly."""
    encoder = LSTM(4, return_state=True, name="encoder")
    decoder = LSTM(4, return_sequences=True, name="decoder")
    enc_x, dec_x = padded_features(B=3, T=5, seed=1), padded_features(B=3, T=4, seed=2)
    encoder.build((None, None, F))
    decoder.build((None, None, F))
    for layer in (encoder, decoder):
        layer.set_weights(randomize_list(layer.get_weights()))
    _, h, c = encoder(enc_x)
    want = decoder(dec_x, initial_state=[h, c])
    graph = export_graph.Graph("seq2seq", inputs=[
        export_graph.Input("encoder_input", (None, None, F), np.dtype(np.float32), 1),
        export_graph.Input("decoder_input", (None, None, F), np.dtype(np.float32), 1)])
    graph.nodes = [export_graph.Node(encoder, "encoder_input", ["enc_y", "enc_h", "enc_c"]),
                   export_graph.Node(decoder, "decoder_input", ["output"], initial_state=["enc_h", "enc_c"])]
    graph.outputs = ["output", "enc_h"]
    got = outputs(session(graph_to_onnx(graph)), {"encoder_input": enc_x, "decoder_input": dec_x})
    np.testing.assert_allclose(got["output"], want, **TOL)
    np.testing.assert_allclose(got["enc_h"], h, **TOL)
    assert "decoder/initial_h" not in {i.name for i in session(graph_to_onnx(graph)).get_overridable_initializers()}


def randomize_list(weights, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in weights]


# -- the graph ---------------------------------------------------------------------------------

def test_the_file_passes_the_checker_and_uses_onnx_recurrent_operators(tmp_path):
    model = randomize(Sequential([Masking(input_shape=(5, F)), SimpleRNN(3, return_sequences=True),
                                  Bidirectional(LSTM(3, return_sequences=True)), GRU(2)]))
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx", verbose=False)
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(path)
    ops = [n.op_type for n in proto.graph.node]
    assert [op for op in ops if op in ("RNN", "LSTM", "GRU", "Loop", "Scan")] == ["RNN", "LSTM", "GRU"]
    [x] = [v for v in proto.graph.input if v.name == "input"]
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["batch", "time", F]
    out = proto.graph.output[0]
    assert out.name == "output"
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 2]
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_export_prints_where_the_file_went_as_keras_does(tmp_path, capsys):
    model = randomize(Sequential([LSTM(2, input_shape=(None, F))]))
    model.export(tmp_path / "m.onnx")
    assert f"Saved artifact at '{tmp_path / 'm.onnx'}'." in capsys.readouterr().out
    model.export(tmp_path / "m.onnx", verbose=False, opset_version=18)
    assert capsys.readouterr().out == ""
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == 18


# -- bad input -----------------------------------------------------------------------------------

class Doubling(Layer):
    def call(self, x, training=False, mask=None):
        return 2 * x


def test_a_layer_without_an_onnx_form_raises_naming_it_and_writes_nothing(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"an older export")
    model = Sequential([LSTM(2, return_sequences=True, input_shape=(None, F)), Doubling(name="twice")])
    with pytest.raises(ValueError, match="'twice' \\(Doubling\\) cannot be exported to ONNX"):
        model.export(path, verbose=False)
    assert path.read_bytes() == b"an older export"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_a_float64_layer_raises_naming_it(tmp_path):
    model = Sequential([GRU(2, input_shape=(None, F), dtype="float64", name="g64")])
    with pytest.raises(ValueError, match="'g64'.*float64"):
        model.export(tmp_path / "m.onnx", verbose=False)
    assert os.listdir(tmp_path) == []


def test_an_unbuilt_model_raises(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([LSTM(2)]).export(tmp_path / "m.onnx", verbose=False)
    with pytest.raises(ValueError, match="no layers"):
        Sequential().export(tmp_path / "m.onnx", verbose=False)


def test_paths_that_cannot_be_written_raise_and_leave_nothing(tmp_path):
    model = randomize(Sequential([LSTM(2, input_shape=(None, F))]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.export(tmp_path / "missing" / "m.onnx", verbose=False)
    with pytest.raises(IsADirectoryError):
        model.export(tmp_path, verbose=False)
    with pytest.raises(TypeError, match="filepath"):
        model.export(3, verbose=False)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from fastrnn.export import onnx as onnx_export

    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = randomize(Sequential([LSTM(2, input_shape=(None, F))]))

    class Broken:
        def SerializeToString(self):  # noqa: N802 (protobuf's name)
            raise OSError("disk full")

    monkeypatch.setattr(onnx_export, "to_onnx", lambda model, opset: Broken())
    with pytest.raises(OSError, match="disk full"):
        model.export(path, verbose=False)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(format="tf_saved_model"), ValueError, "format"),
    (dict(opset=16), ValueError, "opset must be from 17"),
    (dict(opset=10_000), ValueError, "opset must be from 17"),
    (dict(opset="17"), TypeError, "opset must be an int"),
    (dict(opset=17, opset_version=18), ValueError, "disagree"),
    (dict(input_signature=[(None, 5, F)]), ValueError, "input_signature"),
    (dict(dynamic=True), TypeError, "dynamic"),
])
def test_bad_arguments_raise(tmp_path, kwargs, error, match):
    model = randomize(Sequential([LSTM(2, input_shape=(None, F))]))
    with pytest.raises(error, match=match):
        model.export(tmp_path / "m.onnx", verbose=False, **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_feeds_raise_in_onnx_runtime():
    """Ids past the vocabulary, and states of another batch size or width, are errors of the
    run (a session stays usable), not wrong results."""
    model = randomize(Sequential([Embedding(V, 3, mask_zero=True, input_shape=(None,)), GRU(4, name="gru")]))
    sess = session(model)
    ids = padded_ids(B=2, T=3)
    for feeds in ({"input": np.full((2, 3), V, np.int64)},
                  {"input": ids, "gru/initial_h": np.zeros((3, 4), np.float32)},
                  {"input": ids, "gru/initial_h": np.zeros((2, 5), np.float32)}):
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):  # noqa: B017 (ORT's own types)
            sess.run(None, feeds)
    np.testing.assert_allclose(outputs(sess, {"input": ids})["output"], model.predict(ids, verbose=0), **TOL)
