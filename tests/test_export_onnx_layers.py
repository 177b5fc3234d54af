"""ONNX export of the merging, reshaping, pooling, normalization and attention layers,
``RNN(cell)`` with every cell and stacked cells, ``Bidirectional(merge_mode=None,
return_state=True)`` and the LSTM with peepholes (ONNX's ``P``): ONNX Runtime against ``model.predict`` from the same weights to 1e-5
(float32), on padded batches whose masks differ between inputs, of a batch size (and, where
the layer allows, a length) the model was not built for. Skipped without onnx and onnxruntime.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import randomize
import fastrnn
from fastrnn import Sequential
from fastrnn.layers import (GRU, LSTM, RNN, Add, AdditiveAttention, Attention, Average,
                            Bidirectional, Concatenate, Dense, Dot, Embedding, Flatten,
                            GlobalAveragePooling1D, GlobalMaxPooling1D, GRUCell, Input,
                            LayerNormalization, LSTMCell, Masking, Maximum, Minimum, Multiply,
                            Permute, RepeatVector, Reshape, SimpleRNN, SimpleRNNCell,
                            StackedRNNCells, Subtract)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from fastrnn.export.onnx import to_onnx  # noqa: E402 (needs onnx)

TOL = dict(rtol=1e-5, atol=1e-5)
F, V = 3, 7  # features, vocabulary



def run(model) -> tuple:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # state inputs with defaults make ORT warn about each
    sess = ort.InferenceSession(to_onnx(model).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    return sess, [o.name for o in sess.get_outputs()]


def assert_matches_predict(model, *xs):
    """Every output of the graph against predict, for the inputs xs in the model's order."""
    want = model.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0)
    want = want if isinstance(want, list) else [want]
    sess, names = run(model)
    inputs = [i.name for i in sess.get_inputs()]  # the model's (states with defaults are not listed)
    assert len(inputs) == len(xs)
    got = sess.run(None, dict(zip(inputs, xs)))  # the model's outputs first, then final states
    for name, g, w in zip(names, got, want):
        np.testing.assert_allclose(g, w, **TOL, err_msg=name)


def features(B=5, T=7, lengths=(7, 4, 1, 0, 3), seed=1, last=F):
    """(B, T, last) nonzero values, zero after each row's length (T for rows past the list)."""
    rng = np.random.default_rng(seed)
    x = (rng.uniform(0.1, 1.0, (B, T, last)) * rng.choice([-1, 1], (B, T, last))).astype(np.float32)
    for row, length in enumerate(lengths[:B]):
        x[row, length:] = 0
    return x


def ids(B=5, T=7, lengths=(7, 5, 2, 1, 4), seed=1):
    rng = np.random.default_rng(seed)
    out = rng.integers(1, V, (B, T)).astype(np.int64)
    for row, length in enumerate(lengths[:B]):
        out[row, length:] = 0
    return out


# -- merges ----------------------------------------------------------------------------------

MERGES = [Add, Subtract, Average, Multiply, Maximum, Minimum]


@pytest.mark.parametrize("merge", MERGES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("masks", ["both", "first", "none"])
def test_merges_of_masked_sequences_match_predict(merge, masks):
    """Two sequences with different masks (or one, or none), then an RNN that reads the
    merged mask: masked steps count as Keras counts them, and the mask travels on."""
    a, b = Input(shape=(None, F), name="a"), Input(shape=(None, F), name="b")
    ha = Masking()(a) if masks != "none" else a
    hb = Masking()(b) if masks == "both" else b
    merged = merge()([ha, hb])
    model = randomize(fastrnn.Model([a, b], [merged, SimpleRNN(2, return_sequences=True)(merged)]))
    assert_matches_predict(model, features(seed=1), features(seed=2, lengths=(2, 7, 0, 0, 5)))


@pytest.mark.parametrize("merge", [Add, Multiply, Maximum], ids=lambda c: c.__name__)
def test_merges_of_three_inputs_and_of_a_sequence_with_a_vector_broadcast_as_keras(merge):
    a, b, v = Input(shape=(None, F), name="a"), Input(shape=(None, F), name="b"), Input(shape=(F,), name="v")
    model = fastrnn.Model([a, b, v], [merge()([Masking()(a), Masking()(b), v]), merge()([a, v])])
    rng = np.random.default_rng(4)
    assert_matches_predict(model, features(seed=1), features(seed=2, lengths=(2, 7, 0, 0, 5)),
                           rng.uniform(-1, 1, (5, F)).astype(np.float32))


@pytest.mark.parametrize("axis", [-1, 1], ids=["features", "time"])
def test_concatenate_of_masked_and_unmasked_sequences_matches_predict(axis):
    a, b = Input(shape=(None, F), name="a"), Input(shape=(None, F), name="b")
    joined = Concatenate(axis=axis)([Masking()(a), b])
    model = randomize(fastrnn.Model([a, b], [joined, GlobalAveragePooling1D()(Dense(2)(joined))]))
    assert_matches_predict(model, features(seed=1), features(seed=2, lengths=(2, 7, 0, 0, 5)))


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalized"])
def test_dot_on_every_kind_of_axes_matches_predict(normalize):
    s, u = Input(shape=(None, F), name="s"), Input(shape=(None, F), name="u")
    v, w = Input(shape=(F,), name="v"), Input(shape=(F,), name="w")
    outs = [Dot(axes=2, normalize=normalize)([s, u]),  # (B, Ts, Tu)
            Dot(axes=1, normalize=normalize)([s, u]),  # (B, F, F), the time axes contracted
            Dot(axes=(2, 1), normalize=normalize)([s, v]),  # (B, Ts)
            Dot(axes=(1, 2), normalize=normalize)([v, u]),  # (B, Tu)
            Dot(axes=-1, normalize=normalize)([v, w])]  # (B, 1)
    model = fastrnn.Model([s, u, v, w], outs)
    rng = np.random.default_rng(5)
    assert_matches_predict(model, features(T=6), features(T=6, seed=2),
                           *rng.uniform(-1, 1, (2, 5, F)).astype(np.float32))


# -- reshaping -------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [
    [Flatten(), Dense(2)],
    [Flatten(data_format="channels_first"), Dense(2)],
    [Reshape((3, -1)), LSTM(2)],
    [Reshape((F, 6)), Permute((2, 1)), GRU(2)],
    [Permute((2, 1)), Flatten()],
    [LSTM(4), RepeatVector(5), GRU(2, return_sequences=True)],
], ids=["flatten", "flatten_channels_first", "reshape", "reshape_permute", "permute", "repeat_vector"])
def test_reshaping_layers_match_predict(layers):
    model = randomize(Sequential([Input(shape=(6, F)), *layers]))
    assert_matches_predict(model, features(B=5, T=6, lengths=(6, 3, 6, 1, 6)))


def test_a_model_that_reshapes_time_keeps_its_length_and_others_take_any():
    def time_dim(model):
        return to_onnx(model).graph.input[0].type.tensor_type.shape.dim[1]

    assert time_dim(Sequential([Input(shape=(6, F)), Flatten(), Dense(2)])).dim_value == 6
    assert time_dim(Sequential([Input(shape=(6, F)), LayerNormalization(axis=[1, 2])])).dim_value == 6
    assert time_dim(Sequential([Input(shape=(6, F)), LayerNormalization(), LSTM(2)])).dim_param == "time"
    assert time_dim(Sequential([Input(shape=(None, F)), Permute((2, 1))])).dim_param == "time"


def test_repeat_vector_keeps_ids_and_drops_the_mask():
    model = randomize(Sequential([Input(shape=(None,), dtype="int64"), Embedding(V, F, mask_zero=True),
                                  LSTM(3), RepeatVector(4), SimpleRNN(2)]))
    assert_matches_predict(model, ids())


# -- pooling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pool", [GlobalAveragePooling1D, GlobalMaxPooling1D], ids=["average", "max"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("keepdims", [False, True], ids=["dropped", "kept"])
def test_global_pooling_matches_predict(pool, masked, keepdims):
    first = [Embedding(V, F, mask_zero=masked), LSTM(4, return_sequences=True)]
    model = randomize(Sequential([Input(shape=(None,), dtype="int64"), *first, pool(keepdims=keepdims)]))
    assert_matches_predict(model, ids(B=6, T=9))


@pytest.mark.parametrize("pool", [GlobalAveragePooling1D, GlobalMaxPooling1D], ids=["average", "max"])
def test_global_pooling_channels_first_matches_predict(pool):
    model = Sequential([Input(shape=(F, None)), pool(data_format="channels_first")])
    assert_matches_predict(model, features(T=F, last=8))


def test_masked_average_of_a_sequence_without_real_steps_is_nan_as_predict():
    model = randomize(Sequential([Input(shape=(None, F)), Masking(), GlobalAveragePooling1D()]))
    x = features()
    want = model.predict(x, verbose=0)
    sess, _ = run(model)
    got = sess.run(None, {"input": x})[0]
    assert np.isnan(want[3]).all() and np.isnan(got[3]).all()
    np.testing.assert_allclose(got, want, **TOL)  # NaNs in the same places


# -- normalization ---------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    {}, {"center": False}, {"scale": False}, {"center": False, "scale": False},
    {"rms_scaling": True}, {"axis": [1, 2]}, {"axis": 1, "epsilon": 0.1},
], ids=["default", "no_center", "no_scale", "neither", "rms", "two_axes", "time_axis"])
@pytest.mark.filterwarnings("ignore:rms_scaling=True is deprecated")
def test_layer_normalization_matches_predict(options):
    free = "axis" not in options  # normalizing over time needs the model's length
    model = randomize(Sequential([Input(shape=(None if free else 6, F)), Masking(),
                                  LayerNormalization(**options), GRU(2, return_sequences=True)]))
    assert_matches_predict(model, features(T=8 if free else 6, lengths=(8, 4, 1, 0, 3)))


# -- attention -------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    lambda: Attention(), lambda: Attention(use_scale=True), lambda: Attention(score_mode="concat"),
    lambda: Attention(use_scale=True, score_mode="concat"), lambda: AdditiveAttention(),
    lambda: AdditiveAttention(use_scale=False),
], ids=["dot", "dot_scaled", "concat", "concat_scaled", "additive", "additive_unscaled"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_with_masked_queries_values_and_keys_matches_predict(layer, causal):
    q, v, k = Input(shape=(None, F), name="q"), Input(shape=(None, F), name="v"), Input(shape=(None, F), name="k")
    attention = layer()
    out, scores = attention([Masking()(q), Masking()(v), k], return_attention_scores=True, use_causal_mask=causal)
    model = randomize(fastrnn.Model([q, v, k], [out, scores, LSTM(2)(out), attention([q, v])]))
    assert_matches_predict(model, features(T=6), features(T=8, seed=2, lengths=(2, 8, 1, 5, 3)),
                           features(T=8, seed=3, lengths=()))


# -- RNN(cell) and stacked cells -------------------------------------------------------------

CELL_CLASSES = {"simple": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}


@pytest.mark.parametrize("cell", CELL_CLASSES)
@pytest.mark.parametrize("options", [
    {}, {"return_sequences": True}, {"go_backwards": True},
    {"return_sequences": True, "go_backwards": True, "zero_output_for_mask": True},
], ids=["last", "sequences", "backwards", "backwards_zeroed"])
def test_rnn_of_a_cell_matches_the_layer_of_its_kind_and_predict(cell, options):
    model = randomize(Sequential([Input(shape=(None,), dtype="int64"), Embedding(V, F, mask_zero=True),
                                  RNN(CELL_CLASSES[cell](4), **options)]))
    assert_matches_predict(model, ids(B=6, T=9))


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_stacked_cells_with_states_match_predict(return_sequences):
    x = Input(shape=(None, F), name="x")
    cells = StackedRNNCells([LSTMCell(4, name="a"), GRUCell(3, name="b"), SimpleRNNCell(2, name="c")])
    out, (h_a, c_a), (h_b,), (h_c,) = RNN(cells, return_sequences=return_sequences, return_state=True,
                                          name="stack")(Masking()(x))
    model = randomize(fastrnn.Model(x, [out, h_a, c_a, h_b, h_c]))
    assert_matches_predict(model, features(B=5, T=8))
    sess, names = run(model)
    assert {"stack/a/final_c", "stack/b/final_h", "stack/c/final_h"} <= set(names)
    ops = [n.op_type for n in to_onnx(model).graph.node]
    assert (ops.count("LSTM"), ops.count("GRU"), ops.count("RNN")) == (1, 1, 1)


def test_rnn_of_a_list_of_cells_takes_initial_states_from_inputs():
    x, h0, c0 = Input(shape=(None, F), name="x"), Input(shape=(4,), name="h0"), Input(shape=(4,), name="c0")
    g0 = Input(shape=(3,), name="g0")
    out = RNN([LSTMCell(4), GRUCell(3)], return_sequences=True)(Masking()(x), initial_state=[[h0, c0], [g0]])
    model = randomize(fastrnn.Model([x, h0, c0, g0], out))
    rng = np.random.default_rng(6)
    assert_matches_predict(model, features(), *[rng.uniform(-1, 1, (5, n)).astype(np.float32) for n in (4, 4, 3)])


# -- Bidirectional(merge_mode=None, return_state=True) ----------------------------------------

@pytest.mark.parametrize("merge_mode", [None, "concat"], ids=["none", "concat"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_bidirectional_returning_both_directions_and_states_matches_predict(merge_mode, return_sequences):
    x = Input(shape=(None,), dtype="int64", name="x")
    outs = Bidirectional(LSTM(4, return_sequences=return_sequences, return_state=True),
                         merge_mode=merge_mode)(Embedding(V, F, mask_zero=True)(x))
    model = randomize(fastrnn.Model(x, list(outs)))
    assert len(model.output_names) == (6 if merge_mode is None else 5)
    assert_matches_predict(model, ids(B=6, T=9))


@pytest.mark.parametrize("make", [
    lambda: LSTM(4, use_peepholes=True, return_sequences=True, return_state=True),
    lambda: LSTM(4, use_peepholes=True, go_backwards=True, activation="softsign"),
    lambda: Bidirectional(LSTM(4, use_peepholes=True, return_sequences=True)),
    lambda: RNN(LSTMCell(4, use_peepholes=True), return_sequences=True),
], ids=["sequences-states", "backwards-softsign", "Bidirectional", "RNN-cell"])
def test_lstm_with_peepholes_matches_predict_in_onnx_runtime(make):
    x = Input(shape=(None, F), name="x")
    out = make()(Masking()(x))
    model = randomize(fastrnn.Model(x, list(out) if isinstance(out, (list, tuple)) else out), seed=4)
    # peepholes (3, 4) larger than the other weights, so that a wrong order of P shows
    model.set_weights([w * 4 if w.shape == (3, 4) else w for w in model.get_weights()])
    assert_matches_predict(model, features(B=5, T=7))
    lstm = [n for n in to_onnx(model).graph.node if n.op_type == "LSTM"]
    assert lstm and all(len(n.input) == 8 and n.input[7] for n in lstm)  # P given


def test_a_recurrent_cell_the_export_does_not_set_raises_naming_the_layer():
    """An activation ONNX's recurrent operators do not have is refused, not exported as
    another cell."""
    model = Sequential([Input(shape=(None, F)), LSTM(2, recurrent_activation="silu", name="odd")])
    with pytest.raises(ValueError, match="'odd'.*recurrent_activation 'silu' has no form"):
        to_onnx(model)


ONNX_ACTIVATIONS = ["tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "leaky_relu", "elu",
                    "celu", "softsign", "softplus"]


@pytest.mark.parametrize("name", ONNX_ACTIVATIONS)
@pytest.mark.parametrize("make", [
    lambda name: SimpleRNN(3, activation=name, return_sequences=True),
    lambda name: LSTM(3, activation=name, return_sequences=True),
    lambda name: LSTM(3, recurrent_activation=name, return_sequences=True),
    lambda name: GRU(3, activation=name, return_sequences=True),
    lambda name: Bidirectional(GRU(3, recurrent_activation=name, return_sequences=True)),
], ids=["SimpleRNN", "LSTM", "LSTM-recurrent", "GRU", "Bidirectional-GRU-recurrent"])
def test_every_activation_onnx_has_matches_predict_in_onnx_runtime(make, name):
    model = randomize(Sequential([Input(shape=(None, F)), make(name)]), seed=2)
    x = np.random.default_rng(3).uniform(-3, 3, (4, 6, F)).astype(np.float32)  # past the kinks
    assert_matches_predict(model, x)


@pytest.mark.filterwarnings("ignore:rms_scaling=True is deprecated")
def test_the_new_layers_run_at_the_newest_opset_onnxruntime_knows():
    """Reductions take their axes as an input from opset 18 on: every layer that reduces."""
    from test_export_onnx import newest_runtime_opset

    opset = newest_runtime_opset()
    x = Input(shape=(None, F), name="x")
    seq = LSTM(4, return_sequences=True)(Masking()(x))
    normed = LayerNormalization(rms_scaling=True)(LayerNormalization()(seq))
    pooled = [GlobalAveragePooling1D()(normed), GlobalMaxPooling1D()(normed),
              GlobalAveragePooling1D()(AdditiveAttention()([normed, seq]))]
    model = randomize(fastrnn.Model(x, [*pooled, Dot(axes=-1, normalize=True)(pooled[:2])]))
    proto = to_onnx(model, opset)
    assert proto.opset_import[0].version == opset
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = features(B=4, T=8, lengths=(8, 4, 1, 2))
    for got, want in zip(sess.run(None, {"x": xs}), model.predict(xs, verbose=0)):
        np.testing.assert_allclose(got, want, **TOL)
