"""``Sequential``: building, the Keras-style API around it, and its error messages."""
from __future__ import annotations

import numpy as np
import pytest

import fastrnn
from fastrnn import Sequential
from fastrnn.layers import (GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Input, SimpleRNN,
                            TimeDistributed)
from fastrnn.utils import set_random_seed


def small_model(**compile_args):
    set_random_seed(0)
    model = Sequential([SimpleRNN(4, input_shape=(6, 2)), Dense(1, activation="sigmoid")])
    if compile_args:
        model.compile(**compile_args)
    return model


def xy(n=10, T=6, F=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, F)).astype(np.float32), rng.integers(0, 2, (n, 1)).astype(np.float32)


# ------------------------------------------------------------------------------------
# Building and the model's own API.

def test_sequential_is_importable_from_package_and_models_module():
    from fastrnn.models import Sequential as FromModels
    from fastrnn.models import load_model

    assert fastrnn.Sequential is FromModels
    assert fastrnn.load_model is load_model


def test_add_and_list_constructor_build_the_same_model():
    a = Sequential()
    a.add(LSTM(3, input_shape=(5, 2)))
    a.add(Dense(1))
    b = Sequential([LSTM(3, input_shape=(5, 2)), Dense(1)])
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers] == [LSTM, Dense]
    assert a.built and b.built
    assert a.output_shape == b.output_shape == (None, 1)


def test_input_layer_declares_the_shape_and_is_not_listed():
    model = Sequential([Input(shape=(5, 2)), GRU(3, return_sequences=True), Dense(4)])
    assert [type(layer) for layer in model.layers] == [GRU, Dense]
    assert model.output_shape == (None, 5, 4)


def test_model_without_input_shape_builds_on_first_data():
    model = Sequential([LSTM(3), Dense(2)])
    assert not model.built
    out = model.predict(np.zeros((4, 5, 7)), verbose=0)
    assert out.shape == (4, 2)
    assert model.built and model.layers[0].input_shape == (None, 5, 7)


def test_count_params_matches_keras_formulas():
    model = Sequential([Embedding(20, 8, input_shape=(None,)), LSTM(16, return_sequences=True),
                        Bidirectional(GRU(4)), Dense(5)])
    lstm = 4 * (8 * 16 + 16 * 16 + 16)
    gru = 2 * (3 * (16 * 4 + 4 * 4) + 2 * 3 * 4)  # two directions, GRU has two bias rows
    assert model.count_params() == 20 * 8 + lstm + gru + (8 * 5 + 5)


def test_summary_lists_layers_shapes_and_totals():
    model = small_model()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "simple_rnn" in text and "(SimpleRNN)" in text and "(None, 4)" in text
    assert "(Dense)" in text and "(None, 1)" in text
    assert f"Total params: {4 * 2 + 16 + 4 + 4 + 1:,}" in text


def test_layers_get_unique_default_names():
    model = Sequential([Dense(2, input_shape=(3,)), Dense(2), Dense(1)])
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == 3 and all(n.startswith("dense") for n in names)


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="already has a layer named 'a'"):
        Sequential([Dense(2, name="a", input_shape=(3,)), Dense(2, name="a")])


def test_layer_with_return_state_is_refused():
    with pytest.raises(ValueError, match="return_state"):
        Sequential([LSTM(3, return_state=True)])


def test_non_layer_is_refused_with_type_error():
    with pytest.raises(TypeError, match="fastrnn layer"):
        Sequential(["lstm"])


def test_pop_removes_the_last_layer():
    model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(2), Dense(1)])
    model.pop()
    assert model.output_shape == (None, 2)


def test_model_base_class_cannot_be_used_directly():
    with pytest.raises(TypeError, match="Sequential"):
        fastrnn.Model()


def test_get_weights_set_weights_round_trip_changes_predictions_accordingly():
    model = small_model()
    x, _ = xy()
    weights = model.get_weights()
    before = model.predict(x, verbose=0)
    model.set_weights([w * 0.5 for w in weights])
    assert not np.allclose(model.predict(x, verbose=0), before)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


@pytest.mark.parametrize("bad", ["last-shape", "kernel-text", "complex"])
def test_set_weights_that_fail_leave_every_weight_as_it_was(bad):
    """Every array is checked before any is assigned: a bad one anywhere changes nothing."""
    model = small_model()
    before = model.get_weights()
    weights = [np.ones_like(w) for w in before]
    if bad == "last-shape":
        weights[-1] = np.ones(3)  # the Dense bias, after the recurrent layer's weights
    elif bad == "kernel-text":
        weights[2] = np.full(weights[2].shape, "x")  # the recurrent bias, after its kernels
    else:
        weights[1] = weights[1] + 1j
    with pytest.raises(ValueError, match="weight"):
        model.set_weights(weights)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    if bad != "last-shape":  # the same within one layer: its kernel stays as it was
        with pytest.raises(ValueError, match="weight"):
            model.layers[0].set_weights(weights[:3])
        np.testing.assert_array_equal(model.layers[0].get_weights()[0], before[0])


def test_an_unbuilt_model_has_no_weights_yet():
    assert Sequential([Embedding(5, 3), LSTM(4), Dense(1)]).get_weights() == []


def test_model_set_weights_with_wrong_count_names_expected_count():
    model = small_model()
    with pytest.raises(ValueError, match="expects 5 arrays"):
        model.set_weights(model.get_weights()[:-1])


def test_calling_the_model_is_one_forward_pass():
    model = small_model()
    x, _ = xy()
    np.testing.assert_array_equal(model(x), model.predict(x, verbose=0))
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, verbose=0))


def test_predict_in_batches_equals_one_batch():
    model = small_model()
    x, _ = xy(n=23)
    np.testing.assert_allclose(model.predict(x, batch_size=5, verbose=0),
                               model.predict(x, batch_size=23, verbose=0), rtol=1e-6)


def test_config_round_trip_builds_an_identical_architecture():
    model = Sequential([Embedding(9, 4, mask_zero=True, input_shape=(None,)),
                        Bidirectional(LSTM(3, return_sequences=True), merge_mode="sum"),
                        Dropout(0.2), GRU(2, go_backwards=True, return_sequences=True),
                        TimeDistributed(Dense(3, activation="softmax"))])
    twin = Sequential.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    np.testing.assert_array_equal(twin.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert twin.get_config() == model.get_config()


def test_stateful_model_predicting_step_by_step_equals_whole_sequence():
    model = Sequential([Embedding(6, 3, input_shape=(None,)), GRU(4, stateful=True, return_sequences=True),
                        Dense(6, activation="softmax")])
    ids = np.array([[1, 4, 2, 5, 3]])
    whole = model.predict(ids, verbose=0)
    model.reset_states()
    steps = [model.predict(ids[:, t:t + 1], verbose=0) for t in range(5)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------
# Input validation.

def test_fit_before_compile_raises_runtime_error():
    model = small_model()
    x, y = xy()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(x, y, verbose=0)


def test_x_and_y_of_different_lengths_raise_value_error():
    model = small_model(optimizer="adam", loss="binary_crossentropy")
    x, y = xy()
    with pytest.raises(ValueError, match="same number of samples, got 10 and 9"):
        model.fit(x, y[:9], verbose=0)


def test_wrong_feature_size_raises_value_error():
    model = small_model(optimizer="adam", loss="binary_crossentropy")
    x, y = xy(F=3)
    with pytest.raises(ValueError, match="expects 2 features"):
        model.fit(x, y, verbose=0)


def test_wrong_rank_raises_value_error():
    model = small_model(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match="rank 3"):
        model.predict(np.zeros((10, 6)), verbose=0)


def test_non_numeric_input_raises_type_error():
    model = small_model()
    with pytest.raises(TypeError, match="numbers"):
        model.predict(np.array([["a"] * 2] * 6), verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "adamm", "loss": "mse"}, "unknown optimizer 'adamm'"),
    ({"optimizer": "adam", "loss": "mean_squared_err"}, "unknown loss"),
    ({"optimizer": "adam", "loss": "mse", "metrics": ["acuracy"]}, "unknown metric"),
    ({"optimizer": "adam"}, "needs a loss"),
])
def test_unknown_names_in_compile_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_model().compile(**kwargs)


def test_bad_batch_size_and_validation_split_raise():
    model = small_model(optimizer="adam", loss="binary_crossentropy")
    x, y = xy()
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=(x, y, y, y), verbose=0)


@pytest.mark.parametrize("method", ["train_on_batch", "test_on_batch"])
def test_an_empty_batch_is_refused_before_any_step(method):
    model = small_model(optimizer="adam", loss="mse")
    x, y = xy()
    with pytest.raises(ValueError, match="at least one sample"):
        getattr(model, method)(x[:0], y[:0])
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("method", ["fit", "train_on_batch", "evaluate", "test_on_batch"])
def test_a_batch_that_fails_leaves_a_stateful_layer_carrying_the_state_it_had(method):
    model = Sequential([LSTM(4, stateful=True, batch_input_shape=(2, 5, 3)), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    model.predict(x, batch_size=2, verbose=0)  # now carrying a state
    carried = [s.copy() for s in model.layers[0].states]
    with pytest.raises(ValueError, match="shape"):
        kwargs = {"verbose": 0, "batch_size": 2} if method in ("fit", "evaluate") else {}
        getattr(model, method)(x, np.zeros((2, 7)), **kwargs)  # targets of the wrong shape
    for got, want in zip(model.layers[0].states, carried):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("order", ["float64-then-float32", "float32-then-float64"])
@pytest.mark.parametrize("wrap", [False, True])
def test_layers_of_different_dtypes_train_together(order, wrap):
    """Each layer runs in its own dtype; the model converts outputs forward and gradients back
    between them, as Keras's autocasting does."""
    first, second = ("float64", "float32") if order == "float64-then-float32" else ("float32", "float64")
    recurrent = LSTM(4, dtype=first)
    layer = Bidirectional(recurrent, input_shape=(5, 3)) if wrap else LSTM(4, dtype=first, input_shape=(5, 3))
    model = Sequential([layer, Dense(1, dtype=second)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = xy(8, 5, 3)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(w.dtype == np.dtype(first) for w in model.layers[0].get_weights())
    assert model.predict(x, verbose=0).dtype == np.dtype(second)


def test_a_bidirectional_wrapper_given_a_dtype_runs_both_directions_in_it():
    model = Sequential([Bidirectional(LSTM(4), dtype="float64", input_shape=(5, 3)), Dense(1)])
    x, _ = xy(4, 5, 3)
    assert model.layers[0].forward_layer.dtype == np.float64
    assert model.predict(x, verbose=0).shape == (4, 1)


def test_targets_not_matching_the_output_raise_value_error():
    model = small_model(optimizer="adam", loss="mse")
    x, _ = xy()
    with pytest.raises(ValueError, match="shape"):
        model.fit(x, np.zeros((10, 3)), verbose=0)
