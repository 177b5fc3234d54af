"""The functional API: ``fastrnn.Input``, layers called on symbolic tensors, ``Model(inputs,
outputs)``, models with several inputs and outputs, nested and subclassed models, their
errors, and saving them.

Results are compared with the same computation done another way (the layers called one after
another on arrays, or a Sequential model of the same layers), in float64 to rtol 1e-12 unless
a test says otherwise. Comparisons with real Keras are in test_keras_parity.py, gradients
against finite differences in test_model_gradients.py.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fastrnn
from conftest import Sum
from fastrnn import Input, Model, Sequential, load_model
from fastrnn.keras_tensor import KerasTensor, Node, flatten
from fastrnn.layers import (GRU, LSTM, RNN, Attention, Bidirectional, Concatenate, Dense, Dropout,
                            Embedding, GRUCell, InputLayer, LSTMCell, Masking, SimpleRNN)
from fastrnn.utils import set_random_seed

F64 = "float64"
RTOL = 1e-12


def close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-14)


def seq2seq(latent=5, enc_features=7, dec_features=6, dtype="float32"):
    """keras-io's lstm_seq2seq: the encoder's final states start the decoder."""
    encoder_inputs = Input(shape=(None, enc_features), name="encoder_inputs", dtype=dtype)
    _, state_h, state_c = LSTM(latent, return_state=True, name="encoder", dtype=dtype)(encoder_inputs)
    decoder_inputs = Input(shape=(None, dec_features), name="decoder_inputs", dtype=dtype)
    decoder_lstm = LSTM(latent, return_sequences=True, return_state=True, name="decoder", dtype=dtype)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    outputs = Dense(dec_features, activation="softmax", name="head", dtype=dtype)(decoder_outputs)
    return Model([encoder_inputs, decoder_inputs], outputs)


def seq2seq_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x_enc, x_dec = rng.random((n, 4, 7)), rng.random((n, 3, 6))
    y = np.eye(6)[rng.integers(0, 6, (n, 3))]
    return [x_enc, x_dec], y


def two_outputs(dtype="float32"):
    inputs = Input(shape=(5, 3), name="x", dtype=dtype)
    h = LSTM(4, name="lstm", dtype=dtype)(inputs)
    a = Dense(1, activation="sigmoid", name="a", dtype=dtype)(h)
    b = Dense(2, name="b", dtype=dtype)(h)
    return Model(inputs, [a, b])


def two_outputs_data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 5, 3)), rng.integers(0, 2, (n, 1)).astype(float), rng.random((n, 2))


# ------------------------------------------------------------------------------------
# Inputs and symbolic tensors.

def test_input_is_available_where_keras_scripts_look_for_it():
    assert fastrnn.Input is fastrnn.layers.Input
    assert fastrnn.Model is fastrnn.models.Model
    t = fastrnn.Input(shape=(None,), dtype="int32")
    assert isinstance(t, KerasTensor) and t.shape == (None, None) and t.dtype == "int32"


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", np.int32, np.dtype("float64")])
def test_input_takes_float_and_integer_dtypes(dtype):
    t = Input(shape=(3,), dtype=dtype)
    assert t.dtype == np.dtype(dtype).name
    assert t._keras_history.layer.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["int8", "bool", "complex64", "text", 3])
def test_input_refuses_other_dtypes_naming_the_valid_ones(dtype):
    with pytest.raises(ValueError, match="Input dtype must be one of .*'int32'"):
        Input(shape=(3,), dtype=dtype)


def test_input_shape_batch_size_batch_shape_and_name():
    assert Input(shape=(4, 2), batch_size=8).shape == (8, 4, 2)
    assert Input(batch_shape=(None, 7)).shape == (None, 7)
    assert Input(shape=5).shape == (None, 5)
    t = Input(shape=(2,), name="tokens")
    assert t.name == "tokens" and t._keras_history.layer.name == "tokens"
    with pytest.raises(ValueError, match="shape"):
        Input()
    with pytest.raises(ValueError, match="not both"):
        InputLayer(shape=(2,), batch_shape=(None, 2))
    with pytest.raises(ValueError, match="non-negative ints"):
        Input(shape=(2.5,))


def test_symbolic_tensors_refuse_arithmetic_and_numpy():
    t = Input(shape=(3,))
    for attempt in (lambda: t + 1, lambda: 2 * t, lambda: np.asarray(t), lambda: np.tanh(t),
                    lambda: t[0], lambda: list(t), lambda: np.zeros(3) + t):
        with pytest.raises(TypeError, match="symbolic"):
            attempt()


def test_calling_layers_records_nodes_that_can_be_walked_from_outside():
    inputs = Input(shape=(None, 3), name="seq")
    lstm = LSTM(4, return_sequences=True, return_state=True)
    y, h, c = lstm(inputs)
    assert (y.shape, h.shape, c.shape) == ((None, None, 4), (None, 4), (None, 4))
    node = lstm._inbound_nodes[0]
    assert isinstance(node, Node) and node.layer is lstm and node.operation is lstm
    assert node.inputs is inputs and node.input_tensors == [inputs]
    assert node.outputs == [y, h, c] and node.parent_nodes == [inputs.node]
    assert inputs.node.is_input and not node.is_input
    assert y._keras_history == (lstm, 0, 0) and c._keras_history.tensor_index == 2
    assert lstm.output == [y, h, c] and lstm.input is inputs
    assert inputs._keras_history.layer._outbound_nodes == [node]
    dense = Dense(2)
    out = dense(h)
    assert dense.input is h and dense.output is out and out.shape == (None, 2)


def test_a_layer_called_twice_keeps_both_calls_and_answers_with_the_first():
    shared = Dense(3)
    a, b = Input(shape=(4,)), Input(shape=(4,))
    out_a, out_b = shared(a), shared(b)
    assert len(shared.inbound_nodes) == 2
    assert shared.output is out_a and shared.input is a
    assert out_b._keras_history.node_index == 1


def test_a_layer_never_called_symbolically_has_no_output():
    with pytest.raises(ValueError, match="never been called on symbolic tensors"):
        Dense(2).output


def test_symbolic_calls_check_shapes_at_the_line_that_builds_the_graph():
    with pytest.raises(ValueError, match="rank 3"):
        LSTM(3)(Input(shape=(5,)))
    with pytest.raises(ValueError, match="features must be known"):
        LSTM(3)(Input(shape=(None, None)))
    built = Dense(2)
    built(Input(shape=(4,)))
    with pytest.raises(ValueError, match="expects 4 features"):
        built(Input(shape=(5,)))


def test_mixing_symbolic_tensors_and_arrays_in_a_call_is_a_type_error():
    with pytest.raises(TypeError, match="mixed with ndarray"):
        Sum()([Input(shape=(3,)), np.zeros((2, 3))])
    with pytest.raises(TypeError, match="initial_state must be symbolic"):
        LSTM(3)(Input(shape=(4, 2)), initial_state=[np.zeros((1, 3)), np.zeros((1, 3))])
    with pytest.raises(TypeError, match="takes a list"):
        Sum()(Input(shape=(3,)))


def test_initial_state_of_the_wrong_count_or_size_fails_when_the_graph_is_built():
    x = Input(shape=(4, 2))
    h = Input(shape=(3,))
    with pytest.raises(ValueError, match=r"must be 2 tensor\(s\)"):
        LSTM(3)(x, initial_state=[h])
    with pytest.raises(ValueError, match=r"\[\(None, 3\)\]"):
        GRU(3)(x, initial_state=[Input(shape=(5,))])
    with pytest.raises(TypeError, match="takes no initial_state"):
        Dense(3)(x, initial_state=[h])


# ------------------------------------------------------------------------------------
# Building models from graphs.

def test_model_lists_inputs_outputs_and_layers_in_keras_order():
    model = seq2seq()
    assert [layer.name for layer in model.layers] == [
        "encoder_inputs", "decoder_inputs", "encoder", "decoder", "head"]
    assert [t.name for t in model.inputs] == ["encoder_inputs", "decoder_inputs"]
    assert model.input == model.inputs and len(model.outputs) == 1
    assert model.output is model.outputs[0] and model.output.shape == (None, None, 6)
    assert model.input_names == ["encoder_inputs", "decoder_inputs"]
    assert model.output_names == ["head"]
    assert model.get_layer("decoder") is model.layers[3]
    assert model.get_layer(index=-1).name == "head"
    assert isinstance(model, fastrnn.models.Functional) and model.name.startswith("functional")


def test_model_runs_its_graph_as_the_layers_run_one_after_another():
    model = seq2seq(dtype=F64)
    (x_enc, x_dec), _ = seq2seq_data()
    encoder, decoder, head = (model.get_layer(n) for n in ("encoder", "decoder", "head"))
    _, h, c = encoder(x_enc)
    expected = head(decoder(x_dec, initial_state=[h, c])[0])
    close(model.predict([x_enc, x_dec], verbose=0), expected)
    close(model([x_enc, x_dec]), expected)
    close(model.predict({"encoder_inputs": x_enc, "decoder_inputs": x_dec}, verbose=0), expected)
    close(model.predict([x_enc, x_dec], batch_size=5, verbose=0), expected)


def test_a_functional_chain_equals_the_sequential_model_of_its_layers():
    set_random_seed(3)
    sequential = Sequential([Embedding(9, 4, mask_zero=True, input_shape=(None,), dtype=F64),
                             Bidirectional(GRU(3, return_sequences=True, dtype=F64)),
                             LSTM(2, dtype=F64), Dense(1, dtype=F64)])
    inputs = Input(shape=(None,), dtype="int32")
    x = inputs
    for layer in sequential.layers:
        x = type(layer).from_config(layer.get_config())(x)
    functional = Model(inputs, x)
    functional.set_weights(sequential.get_weights())
    ids = np.array([[3, 1, 4, 1, 5], [2, 6, 0, 0, 0], [8, 0, 0, 0, 0]])
    close(functional.predict(ids, verbose=0), sequential.predict(ids, verbose=0))
    y = np.array([[0.5], [-1.0], [2.0]])
    for model in (sequential, functional):
        model.compile(optimizer="adam", loss="mse")
    for _ in range(3):
        close(functional.train_on_batch(ids, y), sequential.train_on_batch(ids, y))
    for a, b in zip(functional.get_weights(), sequential.get_weights()):
        close(a, b)


def test_a_sequential_model_is_the_graph_of_its_layers_once_built():
    model = Sequential([LSTM(3, input_shape=(5, 2)), Dense(1)])
    assert [layer.name for layer in model.layers] == [model.layers[0].name, model.layers[1].name]
    assert model.inputs[0].shape == (None, 5, 2) and model.outputs[0].shape == (None, 1)
    assert model.layers[1].input is model.layers[0].output


def test_graph_disconnected_names_the_missing_input():
    a, b = Input(shape=(3,), name="first"), Input(shape=(3,), name="second")
    out = Sum()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match="graph disconnected.*'second'"):
        Model(a, out)


def test_a_layer_called_with_tensors_of_two_models_cannot_make_a_model_of_one():
    left = seq2seq()
    right_input = Input(shape=(None, 6), name="other")
    joined = Sum()([left.output, Dense(6)(LSTM(6, return_sequences=True)(right_input))])
    with pytest.raises(ValueError, match="graph disconnected.*'other'"):
        Model(left.inputs, joined)
    assert Model(left.inputs + [right_input], joined).output.shape == (None, None, 6)


def test_an_input_given_twice_is_a_value_error_naming_it():
    a = Input(shape=(3,), name="twice")
    with pytest.raises(ValueError, match="'twice' is given twice"):
        Model([a, a], Dense(1)(a))


def test_model_inputs_must_come_from_input():
    a = Input(shape=(3,))
    hidden = Dense(2)(a)
    with pytest.raises(ValueError, match="must come from fastrnn.Input"):
        Model(hidden, Dense(1)(hidden))
    with pytest.raises(TypeError, match="symbolic tensors"):
        Model(np.zeros((2, 3)), Dense(1)(a))
    with pytest.raises(ValueError, match="both inputs and outputs"):
        Model(inputs=a)


def test_two_layers_of_one_name_in_a_model_are_refused():
    a = Input(shape=(3,))
    with pytest.raises(ValueError, match="'same' is used by 2 layers"):
        Model(a, Dense(1, name="same")(Dense(3, name="same")(a)))


def test_model_needs_inputs_and_outputs_or_a_subclass():
    with pytest.raises(TypeError, match="Sequential"):
        Model()


def test_an_input_no_output_uses_is_still_a_model_input():
    a, unused = Input(shape=(3,), name="a"), Input(shape=(2,), name="unused")
    model = Model([a, unused], Dense(1, name="out")(a))
    assert [layer.name for layer in model.layers] == ["a", "unused", "out"]
    x = np.ones((4, 3))
    assert model.predict([x, np.ones((4, 2))], verbose=0).shape == (4, 1)


# ------------------------------------------------------------------------------------
# Dtypes, masks and data.

def test_integer_ids_feed_an_embedding_and_an_lstm_casts_them():
    ids = Input(shape=(None,), dtype="int32")
    model = Model(ids, Dense(1)(LSTM(2)(Embedding(10, 3)(ids))))
    assert model.predict(np.array([[1, 2, 3]]), verbose=0).shape == (1, 1)
    assert model.predict(np.array([[1.0, 2.0, 3.0]]), verbose=0).shape == (1, 1)  # whole floats
    with pytest.raises(ValueError, match="non-integer"):
        model.predict(np.array([[1.5, 2.0, 3.0]]), verbose=0)
    with pytest.raises(ValueError, match="int32"):
        model.predict(np.array([[2**40, 1, 1]]), verbose=0)
    numbers = Input(shape=(4, 1), dtype="int64")
    lstm = LSTM(2, dtype=F64)
    model = Model(numbers, lstm(numbers))
    x = np.arange(8).reshape(2, 4, 1)
    close(model.predict(x, verbose=0), lstm(x.astype(F64)))


def test_a_float32_input_converts_float64_data_as_keras_does():
    inputs = Input(shape=(3,))
    dense = Dense(2, dtype=F64)
    model = Model(inputs, dense(inputs))
    x = np.random.default_rng(0).standard_normal((4, 3))
    close(model.predict(x, verbose=0), dense(x.astype(np.float32).astype(F64)))


def test_model_inputs_check_their_rank_and_add_or_drop_a_last_axis_of_one():
    inputs = Input(shape=(5, 1))
    model = Model(inputs, Dense(2)(LSTM(3)(inputs)))
    x = np.random.default_rng(0).standard_normal((4, 5, 1))
    np.testing.assert_array_equal(model.predict(x[..., 0], verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="rank 3"):
        model.predict(np.zeros((4, 5, 1, 2)), verbose=0)


def test_masks_travel_along_the_graph_as_through_a_sequential_model():
    set_random_seed(1)
    embedding = Embedding(8, 3, mask_zero=True, dtype=F64)
    recurrent = LSTM(4, return_sequences=True, dtype=F64)
    head = Dense(2, activation="softmax", dtype=F64)
    ids = Input(shape=(None,), dtype="int64")
    model = Model(ids, head(recurrent(embedding(ids))))
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    mask = x != 0
    expected = head(recurrent(embedding(x), mask=mask))
    y_pred, out_mask = model.forward(x)
    close(y_pred, expected)
    np.testing.assert_array_equal(out_mask, mask)
    # The masked loss counts real steps only, as Sequential's does.
    sequential = Sequential([embedding, recurrent, head])
    for m in (model, sequential):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    y = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 1]])
    close(model.evaluate(x, y, verbose=0), sequential.evaluate(x, y, verbose=0))


def test_a_mask_given_in_a_call_overrides_the_one_that_travels():
    x_in, m_in = Input(shape=(5, 2), name="x", dtype=F64), Input(shape=(5,), name="mask")
    layer = GRU(3, dtype=F64)
    model = Model([x_in, m_in], layer(x_in, mask=m_in))
    x = np.random.default_rng(0).standard_normal((2, 5, 2))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    close(model.predict([x, mask], verbose=0), layer(x, mask=mask))


def test_a_masking_layer_and_bidirectional_in_a_graph():
    inputs = Input(shape=(None, 2), dtype=F64)
    bi = Bidirectional(SimpleRNN(3, dtype=F64), dtype=F64)
    masking = Masking(dtype=F64)
    model = Model(inputs, bi(masking(inputs)))
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    x[1, 2:] = 0
    close(model.predict(x, verbose=0), bi(masking(x), mask=masking.compute_mask(x)))


def test_wrong_input_count_at_fit_and_predict_names_the_inputs():
    model = seq2seq()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    (x_enc, x_dec), y = seq2seq_data()
    with pytest.raises(ValueError, match=r"2 input\(s\) \['encoder_inputs', 'decoder_inputs'\], got 3"):
        model.predict([x_enc, x_dec, x_dec], verbose=0)
    with pytest.raises(ValueError, match="give x as a list of 2 arrays"):
        model.fit(x_enc, y, verbose=0)
    with pytest.raises(ValueError, match=r"without the input\(s\) \['decoder_inputs'\]"):
        model.predict({"encoder_inputs": x_enc}, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit([x_enc, x_dec[:5]], y, verbose=0)
    with pytest.raises(TypeError, match="must hold numbers"):
        model.predict([x_enc, x_dec.astype(str)], verbose=0)


def test_fit_with_validation_split_and_shuffling_on_several_inputs():
    set_random_seed(0)
    model = seq2seq()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = seq2seq_data(n=20)
    history = model.fit(x, y, batch_size=4, epochs=2, validation_split=0.25, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(np.isfinite(v).all() for v in history.history.values())
    val = model.evaluate([a[15:] for a in x], y[15:], verbose=0)
    close(val, [history.history["val_loss"][-1], history.history["val_accuracy"][-1]], rtol=1e-6)


# ------------------------------------------------------------------------------------
# Several outputs.

def test_compile_with_a_list_dict_or_single_loss_for_two_outputs():
    x, ya, yb = two_outputs_data()
    for kwargs in ({"loss": ["binary_crossentropy", "mse"]},
                   {"loss": {"a": "binary_crossentropy", "b": "mse"}},
                   {"loss": "mse"}):
        set_random_seed(0)
        model = two_outputs(dtype=F64)
        model.compile(optimizer="sgd", **kwargs)
        logs = model.evaluate(x, [ya, yb], verbose=0, return_dict=True)
        assert list(logs) == ["loss", "a_loss", "b_loss"]
        close(logs["loss"], logs["a_loss"] + logs["b_loss"])


def test_the_total_loss_is_the_weighted_sum_and_metrics_are_named_by_output():
    set_random_seed(0)
    model = two_outputs(dtype=F64)
    model.compile(optimizer="sgd", loss={"a": "binary_crossentropy", "b": "mse"},
                  loss_weights={"a": 0.5, "b": 2.0}, metrics={"a": "accuracy", "b": ["mae", "mse"]})
    x, ya, yb = two_outputs_data()
    logs = model.evaluate(x, {"a": ya, "b": yb}, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "a_loss", "b_loss", "a_accuracy", "b_mae", "b_mse"]
    close(logs["loss"], 0.5 * logs["a_loss"] + 2.0 * logs["b_loss"])
    pa, pb = model.predict(x, verbose=0)
    close(logs["b_mse"], np.mean((pb - yb) ** 2))
    close(logs["a_accuracy"], np.mean((pa > 0.5) == ya))
    assert model.evaluate(x, [ya, yb], verbose=0) == list(logs.values())


def test_an_output_without_a_loss_takes_no_targets_and_no_gradient():
    set_random_seed(0)
    model = two_outputs(dtype=F64)
    model.compile(optimizer="sgd", loss=[None, "mse"])
    x, ya, yb = two_outputs_data()
    head_a = model.get_layer("a")
    before = head_a.get_weights()
    logs = model.train_on_batch(x, [yb], return_dict=True)  # targets for the output with a loss only
    assert list(logs) == ["loss"]
    for w, b in zip(head_a.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    loss_b = model.test_on_batch(x, [ya, yb])  # targets for every output: those of 'a' unused
    close(loss_b, np.mean((model.predict(x, verbose=0)[1] - yb) ** 2))


@pytest.mark.parametrize("kwargs,match", [
    ({"loss": ["mse"]}, "loss has 1 entries"),
    ({"loss": {"a": "mse"}}, "keys of the loss dict"),
    ({"loss": "mse", "metrics": ["mae"]}, "one entry per output"),
    ({"loss": "mse", "loss_weights": 2.0}, "loss_weights for a model with 2 outputs"),
    ({"loss": "mse", "loss_weights": [1.0]}, "loss_weights has 1 entries"),
    ({"loss": "mse", "metrics": {"c": "mae"}}, "output names"),
    ({"loss": [None, None]}, "no output of the model has a loss"),
])
def test_losses_and_metrics_that_do_not_fit_the_outputs_fail_at_compile(kwargs, match):
    with pytest.raises(ValueError, match=match):
        two_outputs().compile(optimizer="sgd", **kwargs)


def test_targets_that_do_not_fit_the_outputs_are_value_errors():
    model = two_outputs()
    model.compile(optimizer="sgd", loss="mse")
    x, ya, yb = two_outputs_data()
    with pytest.raises(ValueError, match=r"2 output\(s\) \['a', 'b'\], got 3"):
        model.fit(x, [ya, yb, yb], verbose=0)
    with pytest.raises(ValueError, match=r"without the output\(s\) \['b'\]"):
        model.fit(x, {"a": ya}, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, [ya, yb[:3]], verbose=0)


def test_predict_gives_the_outputs_in_the_structure_they_were_given():
    inputs = Input(shape=(3,))
    h = Dense(4)(inputs)
    outputs = {"first": Dense(1, name="first")(h), "second": Dense(2, name="second")(h)}
    model = Model(inputs, outputs)
    result = model.predict(np.ones((5, 3)), verbose=0)
    assert sorted(result) == ["first", "second"] and result["second"].shape == (5, 2)
    as_list = Model(inputs, [outputs["first"], outputs["second"]]).predict(np.ones((5, 3)), verbose=0)
    close(as_list[1], result["second"])


def test_returned_states_can_be_model_outputs_and_take_their_own_losses():
    inputs = Input(shape=(4, 2), dtype=F64)
    seq, h, c = LSTM(3, return_sequences=True, return_state=True, dtype=F64)(inputs)
    model = Model(inputs, [seq, h, c])
    names = model.output_names
    assert len(set(names)) == 3 and names[0] == model.layers[1].name
    model.compile(optimizer="sgd", loss=["mse", "mse", None])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 2))
    logs = model.train_on_batch(x, [rng.standard_normal((5, 4, 3)), rng.standard_normal((5, 3))],
                                return_dict=True)
    assert list(logs) == ["loss", names[0] + "_loss", names[1] + "_loss"]


# ------------------------------------------------------------------------------------
# Shared layers, nested models, stateful layers.

def test_a_shared_layer_computes_each_call_with_the_same_weights():
    shared = GRU(3, name="shared", dtype=F64)
    a, b = Input(shape=(4, 2), name="a", dtype=F64), Input(shape=(4, 2), name="b", dtype=F64)
    out = Dense(1, dtype=F64)(Sum(dtype=F64)([shared(a), shared(b)]))
    model = Model([a, b], out)
    assert [layer.name for layer in model.layers][:3] == ["a", "b", "shared"]
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    close(model.predict([xa, xb], verbose=0), model.layers[-1](shared(xa) + shared(xb)))
    assert model.count_params() == shared.count_params() + 4


def test_a_layer_shared_at_two_depths_runs_in_dependency_order():
    shared = Dense(3, activation="tanh", dtype=F64)
    inputs = Input(shape=(3,), dtype=F64)
    middle = Dense(3, dtype=F64)
    model = Model(inputs, shared(middle(shared(inputs))))
    x = np.random.default_rng(0).standard_normal((2, 3))
    close(model.predict(x, verbose=0), shared(middle(shared(x))))


def test_a_sequential_model_inside_a_functional_model():
    inner = Sequential([LSTM(4, return_sequences=True, dtype=F64), Dense(3, dtype=F64)], name="inner")
    inputs = Input(shape=(5, 2), dtype=F64)
    head = Dense(1, dtype=F64)
    model = Model(inputs, head(GRU(2, dtype=F64)(inner(inputs))))
    assert inner.built and [layer.name for layer in model.layers][1] == "inner"
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    close(model.predict(x, verbose=0), head(model.layers[2](inner.predict(x, verbose=0))))
    assert len(model.get_weights()) == len(inner.get_weights()) + 5
    assert model.count_params() == inner.count_params() + model.layers[2].count_params() + 3


def test_a_functional_model_called_on_a_tensor_of_another_graph():
    encoder_input = Input(shape=(4, 2), dtype=F64)
    encoder = Model(encoder_input, LSTM(3, dtype=F64)(encoder_input), name="encoder")
    outer_input = Input(shape=(4, 2), dtype=F64)
    head = Dense(1, dtype=F64)
    model = Model(outer_input, head(encoder(outer_input)))
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    close(model.predict(x, verbose=0), head(encoder.predict(x, verbose=0)))
    assert model.summary(print_fn=lambda line: None) is None


def test_a_stateful_layer_in_a_functional_model_carries_its_state():
    inputs = Input(batch_shape=(1, None, 2), dtype=F64)
    gru = GRU(3, stateful=True, return_sequences=True, dtype=F64)
    model = Model(inputs, gru(inputs))
    x = np.random.default_rng(0).standard_normal((1, 6, 2))
    whole = model.predict(x, verbose=0)
    model.reset_states()
    pieces = [model.predict(x[:, t:t + 2], verbose=0) for t in range(0, 6, 2)]
    close(np.concatenate(pieces, axis=1), whole, rtol=1e-10)


# ------------------------------------------------------------------------------------
# summary and configs.

def summary_lines(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_summary_lists_layers_shapes_params_and_connections():
    text = "\n".join(summary_lines(seq2seq()))
    assert "encoder_inputs (InputLayer)" in text and "(None, None, 7)" in text
    assert "[(None, None, 5), (None, 5), (None, 5)]" in text
    assert "decoder_inputs[0][0], encoder[0][1], encoder[0][2]" in text
    assert f"Total params: {4 * (7 * 5 + 5 * 5 + 5) + 4 * (6 * 5 + 5 * 5 + 5) + 5 * 6 + 6:,}" in text


def test_config_round_trip_rebuilds_the_same_graph():
    set_random_seed(0)
    model = seq2seq()
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert [spec["name"] for spec in config["layers"]] == [layer.name for layer in model.layers]
    decoder = next(spec for spec in config["layers"] if spec["name"] == "decoder")
    states = decoder["inbound_nodes"][0]["kwargs"]["initial_state"]
    assert [s["config"]["keras_history"] for s in states] == [["encoder", 0, 1], ["encoder", 0, 2]]
    assert config["input_layers"] == [["encoder_inputs", 0, 0], ["decoder_inputs", 0, 0]]
    assert config["output_layers"] == ["head", 0, 0]
    # Layers named as in the config: a twin of the model is made from a fresh set of layers.
    twin = Model.from_config(json.loads(json.dumps(config).replace('"head"', '"head_twin"')))
    twin.set_weights(model.get_weights())
    x, _ = seq2seq_data()
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_config_of_a_shared_layer_names_each_of_its_calls():
    shared = Dense(2, name="shared")
    a = Input(shape=(2,), name="in")
    model = Model(a, shared(shared(a)))
    spec = next(s for s in model.get_config()["layers"] if s["name"] == "shared")
    assert [n["args"][0]["config"]["keras_history"] for n in spec["inbound_nodes"]] == [
        ["in", 0, 0], ["shared", 0, 0]]


def test_a_config_whose_calls_never_get_their_inputs_is_a_value_error():
    config = json.loads(json.dumps(two_outputs().get_config()))
    lstm = next(spec for spec in config["layers"] if spec["name"] == "lstm")
    lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["a", 0, 0]  # a cycle
    with pytest.raises(ValueError, match="cannot be made"):
        Model.from_config(config)
    lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["nowhere", 0, 0]
    with pytest.raises(ValueError, match="unknown layer 'nowhere'"):
        Model.from_config(config)
    for ref, match in ((["x", -1, 0], "must be"), (["x", 0, 3], "output 3")):
        lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ref
        with pytest.raises(ValueError, match=match):
            Model.from_config(config)
    lstm["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["x", 0, 0]
    config["output_layers"] = [["a", 0, 0], ["b", 5, 0]]
    with pytest.raises(ValueError, match="does not make"):
        Model.from_config(config)


# ------------------------------------------------------------------------------------
# Saving and loading.

def trained_seq2seq():
    set_random_seed(0)
    model = seq2seq()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = seq2seq_data()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    return model


def test_a_saved_functional_model_loads_and_resumes_training_exactly(tmp_path):
    model = trained_seq2seq()
    model.save(tmp_path / "s2s.npz")
    loaded = load_model(tmp_path / "s2s.npz")
    assert type(loaded) is type(model)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x, y = seq2seq_data(seed=5)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()
    runs = []
    for m in (model, loaded):
        set_random_seed(7)
        runs.append(m.fit(x, y, epochs=2, batch_size=4, verbose=0).history)
    assert runs[0] == runs[1]
    assert os.listdir(tmp_path) == ["s2s.npz"]


def test_the_keras_io_seq2seq_inference_models_from_a_loaded_model(tmp_path):
    model = trained_seq2seq()
    model.save(tmp_path / "s2s.npz")
    model = load_model(tmp_path / "s2s.npz")
    # As keras-io's lstm_seq2seq.py builds its sampling models:
    encoder_inputs = model.input[0]
    _, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = Model(encoder_inputs, [state_h_enc, state_c_enc])
    decoder_inputs = model.input[1]
    state_input_h, state_input_c = Input(shape=(5,)), Input(shape=(5,))
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=[state_input_h, state_input_c])
    decoder_outputs = model.layers[4](decoder_outputs)
    decoder_model = Model([decoder_inputs, state_input_h, state_input_c],
                          [decoder_outputs, state_h_dec, state_c_dec])
    (x_enc, x_dec), _ = seq2seq_data(n=3)
    states = encoder_model.predict(x_enc, verbose=0)
    assert isinstance(states, list) and [s.shape for s in states] == [(3, 5), (3, 5)]
    outputs, h, c = decoder_model.predict([x_dec] + states, verbose=0)
    np.testing.assert_allclose(outputs, model.predict([x_enc, x_dec], verbose=0), rtol=1e-6, atol=1e-7)


def test_a_two_output_model_keeps_its_losses_weights_and_metrics(tmp_path):
    set_random_seed(0)
    model = two_outputs()
    model.compile(optimizer="adam", loss={"a": "binary_crossentropy", "b": "mse"},
                  loss_weights=[0.5, 2.0], metrics=[["accuracy"], ["mae"]])
    x, ya, yb = two_outputs_data()
    model.fit(x, [ya, yb], epochs=1, batch_size=5, verbose=0)
    model.save(tmp_path / "two.npz")
    loaded = load_model(tmp_path / "two.npz")
    assert loaded.evaluate(x, [ya, yb], verbose=0, return_dict=True) == \
        model.evaluate(x, [ya, yb], verbose=0, return_dict=True)
    with np.load(tmp_path / "two.npz") as f:
        assert int(f["version"]) == 2


def test_a_sequential_model_file_keeps_version_1_for_older_readers(tmp_path):
    model = Sequential([LSTM(2, input_shape=(3, 1)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["version"]) == 1
        assert json.loads(str(f["architecture"]))["class_name"] == "Sequential"


def test_a_file_written_before_the_functional_api_loads_and_predicts_as_it_did():
    """tests/data/sequential_v1.npz was saved by fastrnn before models became graphs, with its
    inputs, predictions, loss and accuracy in its metadata."""
    path = os.path.join(os.path.dirname(__file__), "data", "sequential_v1.npz")
    model = load_model(path)
    meta = model.metadata
    x, y = np.array(meta["x"]), np.array(meta["y"])
    np.testing.assert_allclose(model.predict(x, verbose=0), meta["predicted"], rtol=1e-6, atol=1e-7)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(meta["loss"], rel=1e-6) and accuracy == meta["accuracy"]
    assert [type(layer).__name__ for layer in model.layers] == [
        "Embedding", "Bidirectional", "Dropout", "GRU", "Dense"]
    model.fit(x, y, epochs=1, verbose=0)  # the optimizer's state fits


def test_save_weights_and_load_weights_round_trip_and_refuse_a_misfit(tmp_path):
    model = trained_seq2seq()
    model.save_weights(tmp_path / "w.npz")
    twin = seq2seq()
    twin.load_weights(tmp_path / "w.npz")
    x, _ = seq2seq_data()
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    other = two_outputs()
    before = other.get_weights()
    with pytest.raises(ValueError, match="set_weights expects"):
        other.load_weights(tmp_path / "w.npz")
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "text.npz").write_text("not weights")
    with pytest.raises(ValueError, match="not a fastrnn weights file"):
        twin.load_weights(tmp_path / "text.npz")


# ------------------------------------------------------------------------------------
# Subclassed models.

class Classifier(Model):
    """An Embedding, a masked LSTM and a Dense head, with a dropout only in training."""

    def __init__(self, units=4, vocab=10, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.embed = Embedding(vocab, 3, mask_zero=True, dtype=F64)
        self.lstm = LSTM(units, dtype=F64)
        self.dropout = Dropout(0.5, dtype=F64)
        self.head = Dense(1, activation="sigmoid", dtype=F64)

    def call(self, inputs, training=False):
        return self.head(self.dropout(self.lstm(self.embed(inputs)), training=training))


def padded_ids(seed=0, n=8):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, n)
    ids = rng.integers(1, 10, (n, 5)) * (np.arange(5)[None, :] < lengths[:, None])
    return ids, (lengths > 3).astype(float)[:, None]


def test_a_subclassed_model_tracks_its_layers_and_runs_call():
    model = Classifier(units=3)
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "LSTM", "Dropout", "Dense"]
    assert model.name.startswith("classifier") and not model.built
    ids, _ = padded_ids()
    out = model.predict(ids, verbose=0)
    assert model.built
    # The mask of the Embedding travels to the LSTM inside call(), as in Keras.
    expected = model.head(model.lstm(model.embed(ids), mask=ids != 0))
    close(out, expected)
    assert model.count_params() == 10 * 3 + 4 * (3 * 3 + 3 * 3 + 3) + 3 + 1


def test_a_subclassed_model_trains_and_dropout_follows_the_training_flag():
    set_random_seed(0)
    model = Classifier()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    ids, y = padded_ids(n=16)
    history = model.fit(ids, y, epochs=3, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_array_equal(model.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_a_subclassed_model_sharing_a_layer_and_taking_several_inputs():
    class Siamese(Model):
        def __init__(self):
            super().__init__()
            self.encoder = GRU(3, dtype=F64)
            self.merge = Sum(dtype=F64)
            self.head = Dense(1, dtype=F64)

        def call(self, inputs):
            a, b = inputs
            return self.head(self.merge([self.encoder(a), self.encoder(b)]))

    model = Siamese()
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    close(model.predict([xa, xb], verbose=0), model.head(model.encoder(xa) + model.encoder(xb)))
    assert [type(layer).__name__ for layer in model.layers] == ["GRU", "Sum", "Dense"]


def test_a_view_of_a_layer_output_taken_in_call_is_refused_in_training_only():
    class Slicing(Model):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(3, return_sequences=True)
            self.head = Dense(1)

        def call(self, x):
            return self.head(self.lstm(x)[:, -1])  # NumPy slicing: not differentiated

    model = Slicing()
    x = np.random.default_rng(0).standard_normal((4, 5, 2))
    assert model.predict(x, verbose=0).shape == (4, 1)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="slice or view of another layer's output"):
        model.fit(x, np.zeros((4, 1)), verbose=0)


def test_a_subclassed_model_saves_with_its_constructor_arguments(tmp_path):
    set_random_seed(0)
    model = Classifier(units=5, name="clf")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    ids, y = padded_ids()
    model.fit(ids, y, epochs=1, verbose=0)
    assert model.get_config() == {"units": 5, "name": "clf", "trainable": True}
    model.save(tmp_path / "clf.npz")
    loaded = load_model(tmp_path / "clf.npz")
    assert type(loaded) is Classifier and loaded.units == 5 and loaded.name == "clf"
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations


def test_a_subclassed_model_with_its_own_get_config_and_from_config(tmp_path):
    class Tagger(Model):
        def __init__(self, layer_sizes):
            super().__init__()
            self.sizes = list(layer_sizes)
            self.stack = [GRU(n, return_sequences=True) for n in self.sizes]

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return x

        def get_config(self):
            return {"sizes": self.sizes}

        @classmethod
        def from_config(cls, config):
            return cls(config["sizes"])

    model = Tagger([3, 2])
    assert len(model.layers) == 2
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    model.predict(x, verbose=0)
    model.save(tmp_path / "t.npz")
    loaded = load_model(tmp_path / "t.npz", custom_objects={"Tagger": Tagger})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_subclassed_model_whose_arguments_cannot_be_saved_says_so_and_writes_nothing(tmp_path):
    class Wrapping(Model):
        def __init__(self, layer):
            super().__init__()
            self.inner = layer

        def call(self, x):
            return self.inner(x)

    model = Wrapping(Dense(2))
    x = np.ones((3, 4))
    model.predict(x, verbose=0)
    with pytest.raises(NotImplementedError, match="get_config"):
        model.save(tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []
    model.save_weights(tmp_path / "weights.npz")  # the weights alone can be kept
    twin = Wrapping(Dense(2))
    twin.build((None, 4))
    twin.load_weights(tmp_path / "weights.npz")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_subclassed_model_cannot_be_called_on_symbolic_tensors():
    with pytest.raises(TypeError, match="cannot be called on symbolic tensors"):
        Classifier()(Input(shape=(5,)))


def test_a_subclass_without_call_says_what_to_define():
    class Empty(Model):
        pass

    with pytest.raises(NotImplementedError, match="must define call"):
        Empty().predict(np.ones((2, 3)), verbose=0)


def test_a_graph_of_cells_bidirectional_states_and_attention_saves_and_loads(tmp_path):
    set_random_seed(0)
    encoder_in, decoder_in = Input(shape=(None, 3)), Input(shape=(None, 2))
    encoded, fh, bh = Bidirectional(GRU(2, return_sequences=True, return_state=True))(encoder_in)
    encoder = RNN([LSTMCell(3), GRUCell(4)], return_state=True)
    _, *cell_states = encoder(encoded)
    decoded = RNN([LSTMCell(3), GRUCell(4)], return_sequences=True)(decoder_in, initial_state=cell_states)
    context, scores = Attention()([decoded, Dense(4)(encoded)], return_attention_scores=True)
    model = Model([encoder_in, decoder_in], [Dense(1)(Concatenate()([decoded, context])), scores])
    model.compile(optimizer="adam", loss=["mse", None])
    rng = np.random.default_rng(0)
    x = [rng.random((4, 5, 3)), rng.random((4, 2, 2))]
    model.fit(x, [rng.random((4, 2, 1))], epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for a, b in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert [s.shape for s in flatten(encoder.output[1:])] == [(None, 3), (None, 3), (None, 4)]
    assert scores.shape == (None, None, None)
