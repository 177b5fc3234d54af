"""The public API's arguments: a wrong type is a TypeError, a wrong value a ValueError, and the
message names the argument and what it got; nothing else (AttributeError, IndexError, NumPy's
own errors) escapes. Layers' dtypes, declared shapes and ``fit``'s scalar arguments here."""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import fastrnn
from fastrnn import layers, models

BUILTIN_ERRORS = (AttributeError, IndexError, KeyError, ZeroDivisionError, OverflowError,
                  MemoryError, RecursionError, np.exceptions.AxisError)


def small_model(**lstm_kwargs):
    model = models.Sequential([layers.Input(shape=(5, 3)), layers.LSTM(4, **lstm_kwargs),
                               layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 3)).astype(np.float32), rng.standard_normal((n, 1)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# dtype


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.float64,
                                   np.dtype("float32"), np.dtype("float64")])
def test_a_layer_takes_the_float_dtypes_keras_names_and_numpys(dtype):
    assert layers.LSTM(2, dtype=dtype).dtype == np.dtype(dtype)


def test_dtype_none_is_the_default_float32_as_in_keras():
    """np.dtype(None) is float64; a layer's None is Keras's default policy instead."""
    assert layers.LSTM(2, dtype=None).dtype == np.float32
    assert layers.Dense(2, dtype=None).dtype == np.float32


@pytest.mark.parametrize("dtype", ["nonsense", "int32", "bool", "complex64", "object", 3, 2.5,
                                   [np.float32], {"name": "float32"}, np.int64])
@pytest.mark.parametrize("make", [layers.LSTM, layers.Dense, layers.GRU, layers.SimpleRNN])
def test_a_dtype_the_layers_do_not_compute_in_is_a_value_error_naming_dtype(make, dtype):
    with pytest.raises(ValueError, match="dtype") as error:
        make(2, dtype=dtype)
    assert "layer '" in str(error.value)  # which layer


@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "bfloat16", "float16", "mixed_float16"])
def test_keras_reduced_precision_policies_are_refused_as_not_supported_yet(dtype):
    with pytest.raises(ValueError, match=f"dtype '{dtype}' is not supported yet"):
        layers.LSTM(2, dtype=dtype)
    with pytest.raises(ValueError, match="not supported yet"):
        layers.Input(shape=(3,), dtype=dtype)


def test_the_issues_model_with_a_nonsense_dtype_fails_at_construction_not_in_training():
    with pytest.raises(ValueError, match="dtype"):
        models.Sequential([layers.Input(shape=(5, 3)), layers.LSTM(4, dtype="nonsense"),
                           layers.Dense(1, dtype="nonsense")])


def test_a_float64_model_trains_and_predicts_in_float64():
    model = models.Sequential([layers.Input(shape=(5, 3), dtype="float64"),
                               layers.LSTM(4, dtype="float64"), layers.Dense(1, dtype="float64")])
    model.compile(optimizer="adam", loss="mse")
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x, verbose=0).dtype == np.float64


# ----------------------------------------------------------------------------------------
# Declared input shapes


BAD_SHAPES = [((6, -3), ValueError, "negative dimensions are not allowed"),
              ((6, 2.5), ValueError, "2.5 is a float"),
              ((6, "3"), ValueError, "'3' is a str"),
              ((6, True), ValueError, "True is a bool"),
              ("ab", TypeError, "must be a tuple of ints"),
              (3.0, TypeError, "must be a tuple of ints"),
              ({"a": 1}, TypeError, "must be a tuple of ints")]


@pytest.mark.parametrize("shape, kind, fragment", BAD_SHAPES)
def test_a_bad_input_shape_is_an_error_naming_it(shape, kind, fragment):
    with pytest.raises(kind, match=r"layer 'lstm.*'.*input_shape.*" + re.escape(fragment)):
        layers.LSTM(2, input_shape=shape)
    with pytest.raises(kind, match=r"InputLayer shape.*" + re.escape(fragment)):
        layers.Input(shape=shape)


@pytest.mark.parametrize("shape, kind, fragment", BAD_SHAPES[:4])
def test_a_bad_batch_input_shape_is_an_error_naming_it(shape, kind, fragment):
    with pytest.raises(kind, match=r"batch_input_shape.*" + re.escape(fragment)):
        layers.Dense(2, batch_input_shape=(None, *shape))
    with pytest.raises(kind, match=r"InputLayer batch_shape.*" + re.escape(fragment)):
        layers.Input(batch_shape=(None, *shape))


@pytest.mark.parametrize("batch_size, kind", [(0, ValueError), (-2, ValueError), (2.0, TypeError),
                                              ("8", TypeError)])
def test_a_bad_batch_size_beside_input_shape_is_an_error_naming_it(batch_size, kind):
    with pytest.raises(kind, match="batch_size"):
        layers.LSTM(2, input_shape=(5, 3), batch_size=batch_size)


def test_good_shapes_are_kept_as_tuples_of_ints():
    layer = layers.LSTM(2, input_shape=[np.int64(5), 3], batch_size=np.int32(4))
    assert layer.batch_input_shape == (4, 5, 3)
    assert all(type(d) is int for d in layer.batch_input_shape)
    assert layers.Dense(2, input_shape=(None, 3)).batch_input_shape == (None, None, 3)
    assert layers.Dense(2, input_shape=7).batch_input_shape == (None, 7)


def test_keras_2s_input_dim_and_input_length_are_checked_naming_them():
    with pytest.raises(ValueError, match="LSTM: input_dim must be >= 0, got -1"):
        layers.LSTM(2, input_dim=-1)
    with pytest.raises(TypeError, match="GRU: input_length must be an int, got str"):
        layers.GRU(2, input_dim=3, input_length="5")
    with pytest.raises(TypeError, match="Dense: input_dim must be an int, got float"):
        layers.Dense(2, input_dim=3.0)
    assert layers.LSTM(2, input_dim=3, input_length=5).batch_input_shape == (None, 5, 3)


# ----------------------------------------------------------------------------------------
# fit's scalar arguments


FIT_ARGS = [
    ({"epochs": 2.5}, TypeError, "epochs must be an int, got float: 2.5"),
    ({"epochs": "2"}, TypeError, "epochs must be an int, got str"),
    ({"epochs": True}, TypeError, "epochs must be an int, got bool"),
    ({"epochs": -1}, ValueError, "epochs must be >= 0, got -1"),
    ({"initial_epoch": -1}, ValueError, "initial_epoch must be >= 0, got -1"),
    ({"initial_epoch": 0.5}, TypeError, "initial_epoch must be an int"),
    ({"validation_split": "0.1"}, TypeError, "validation_split must be a real number, got str"),
    ({"validation_split": None}, TypeError, "validation_split must be a real number, got NoneType"),
    ({"validation_split": 1.0}, ValueError, "validation_split must be in [0.0, 1.0), got 1.0"),
    ({"validation_split": -0.1}, ValueError, "validation_split must be in [0.0, 1.0), got -0.1"),
    ({"validation_split": float("nan")}, ValueError, "validation_split must be in [0.0, 1.0), got nan"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int, got float"),
    ({"verbose": "x"}, ValueError, "verbose must be 0, 1, 2 or 'auto', got 'x'"),
    ({"verbose": 3}, ValueError, "verbose must be 0, 1, 2 or 'auto', got 3"),
    ({"verbose": 1.0}, ValueError, "verbose must be 0, 1, 2 or 'auto', got 1.0"),
]


@pytest.mark.parametrize("kwargs, kind, message", FIT_ARGS, ids=[repr(a[0]) for a in FIT_ARGS])
def test_fit_refuses_a_bad_scalar_argument_before_training_naming_it(kwargs, kind, message):
    model = small_model()
    x, y = data()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(kind, match=re.escape(message)):
        model.fit(x, y, **{"epochs": 1, "verbose": 0, **kwargs})
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"epochs": 2, "initial_epoch": 2},
                                    {"epochs": 1, "initial_epoch": 3}])
def test_fit_with_no_epoch_to_run_trains_nothing_as_in_keras(kwargs):
    model = small_model()
    x, y = data()
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, verbose=0, **kwargs)
    assert history.epoch == []
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)


def test_fit_takes_numpy_scalars_for_its_scalar_arguments():
    model = small_model()
    x, y = data()
    history = model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(4), verbose=np.int64(0),
                        validation_split=np.float32(0.25), initial_epoch=np.int8(1))
    assert history.epoch == [1]
    assert "val_loss" in history.history


# ----------------------------------------------------------------------------------------
# Every constructor of the public API, every argument, a row of bad values


from fastrnn import callbacks, constraints, losses, metrics, optimizers, regularizers  # noqa: E402
from fastrnn.optimizers import schedules  # noqa: E402

BASES = {"Layer", "Recurrent", "Optimizer", "Loss", "Metric", "Callback", "Regularizer",
         "Constraint", "LearningRateSchedule", "CallbackList", "InputLayer"}
REQUIRED = {  # a valid value of each required argument
    "units": 3, "rate": 0.5, "activation": "relu", "input_dim": 10, "output_dim": 4,
    "target_shape": (2, 3), "dims": (2, 1), "n": 2, "axes": 1,
    "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9,
    "boundaries": [10, 20], "values": [0.1, 0.01, 0.001], "first_decay_steps": 10,
    "schedule": lambda epoch, lr: lr, "fn": lambda y_true, y_pred: y_pred,
}
WRAPPED = {"layer": lambda cls: layers.Dense(2) if cls is layers.TimeDistributed else layers.LSTM(2),
           "cell": lambda cls: layers.LSTMCell(2), "cells": lambda cls: [layers.LSTMCell(2)]}
BAD_VALUES = ["x", -1, 0, 2.5, float("nan"), float("inf"), None, [], {}, object(), True, 10**12,
              -0.5, (1, -1), 1j]


def public_classes():
    for module in (layers, optimizers, schedules, losses, metrics, callbacks, regularizers,
                   constraints):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and name not in BASES:
                yield pytest.param(obj, id=f"{module.__name__.split('.')[-1]}.{name}")


def valid_arguments(cls, tmp_path):
    kwargs = {}
    for p in inspect.signature(cls).parameters.values():
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            if p.name in WRAPPED:
                kwargs[p.name] = WRAPPED[p.name](cls)
            elif p.name == "filepath":
                kwargs[p.name] = str(tmp_path / "m.npz")
            else:
                kwargs[p.name] = REQUIRED[p.name]
    return kwargs


@pytest.mark.parametrize("cls", public_classes())
def test_every_constructor_argument_given_a_bad_value_is_taken_or_refused_naming_it(cls, tmp_path):
    """Each bad value either makes a working object (None for an optional argument, 0 for a
    rate...) or raises TypeError/ValueError whose message names the argument; never another
    exception."""
    cls(**valid_arguments(cls, tmp_path))  # the valid arguments are valid
    problems = []
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        for bad in BAD_VALUES:
            kwargs = {**valid_arguments(cls, tmp_path), p.name: bad}
            try:
                cls(**kwargs)
            except (TypeError, ValueError) as error:
                if p.name not in str(error):
                    problems.append(f"{p.name}={bad!r}: {type(error).__name__} not naming it: {error}")
            except Exception as error:  # noqa: BLE001 (what the test looks for)
                problems.append(f"{p.name}={bad!r}: {type(error).__name__}: {error}")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------------
# The model's methods


def _model_calls(model, x, y, tmp_path):
    """(call, exception, fragment of the message) for the model's methods' arguments."""
    return [
        (lambda: model.compile(optimizer="nope", loss="mse"), ValueError, "unknown optimizer 'nope'"),
        (lambda: model.compile(optimizer="adam", loss="nope"), ValueError, "unknown loss 'nope'"),
        (lambda: model.compile(optimizer="adam", loss="mse", metrics=["nope"]), ValueError,
         "unknown metric 'nope'"),
        (lambda: model.compile(optimizer="adam", loss="mse", metrics=3), TypeError,
         "compile: metrics must be a list, tuple or dict"),
        (lambda: model.compile(optimizer="adam", loss="mse", metrics=["mae", 3]), TypeError,
         "compile: each of metrics must be a name, a Metric or a function, got int: 3"),
        (lambda: model.compile(optimizer="adam", loss="mse", loss_weights="x"), TypeError,
         "compile: loss_weights: the weight of output"),
        (lambda: model.compile(optimizer="adam", loss="mse", loss_weights=float("nan")), ValueError,
         "compile: loss_weights: the weight of output"),
        (lambda: model.summary(print_fn=0), TypeError, "summary: print_fn must be callable"),
        (lambda: model.save(None), TypeError, "save: path must be a str or a path, got NoneType"),
        (lambda: model.save_weights(3), TypeError, "save_weights: path must be a str or a path"),
        (lambda: model.load_weights([]), TypeError, "load_weights: path must be a str or a path"),
        (lambda: model.export(None), TypeError, "export: filepath must be a str or a path"),
        (lambda: model.export(tmp_path / "m.onnx", verbose="yes"), TypeError,
         "export: verbose must be a bool"),
        (lambda: model.set_weights(3), TypeError, "set_weights: weights must be a list of arrays"),
        (lambda: model.get_layer(index="0"), TypeError, "get_layer: index must be an int"),
        (lambda: model.evaluate(x, y, verbose=0, return_dict="yes"), TypeError,
         "return_dict must be a bool"),
        (lambda: model.train_on_batch(x, y, return_dict="yes"), TypeError, "return_dict must be a bool"),
        (lambda: model.test_on_batch(x, y, return_dict=[]), TypeError, "return_dict must be a bool"),
        (lambda: model.fit(x, y, verbose=0, callbacks=3), TypeError,
         "callbacks must be a list of fastrnn.callbacks.Callback, got int"),
        (lambda: model.predict(x, verbose=0, callbacks=[3]), TypeError,
         "callbacks[0] must be a fastrnn.callbacks.Callback, got int"),
        (lambda: model.evaluate(x, y, verbose="loud"), ValueError, "verbose must be 0, 1, 2 or 'auto'"),
        (lambda: model.predict(x, batch_size=-4), ValueError, "batch_size must be >= 1, got -4"),
        (lambda: models.Sequential(layers=3), TypeError, "Sequential: layers must be a list of layers"),
    ]


def test_each_bad_argument_of_the_models_methods_is_refused_naming_it(tmp_path):
    model = small_model()
    x, y = data()
    before = [w.copy() for w in model.get_weights()]
    rows = _model_calls(model, x, y, tmp_path)
    for call, kind, fragment in rows:
        with pytest.raises(kind) as error:
            call()
        assert fragment in str(error.value), (fragment, str(error.value))
    for w, v in zip(before, model.get_weights()):  # no training step was taken by a refused call
        np.testing.assert_array_equal(w, v)
    assert not list(tmp_path.iterdir())  # and no file written


def test_a_failed_compile_leaves_the_model_compiled_as_it_was():
    model = small_model()
    optimizer = model.optimizer
    for bad in ({"loss": "nope"}, {"metrics": ["nope"]}, {"loss_weights": "x"}):
        with pytest.raises((TypeError, ValueError)):
            model.compile(**{"optimizer": "sgd", "loss": "mae", **bad})
        assert model.optimizer is optimizer
        assert model.loss.__class__.__name__ == "MeanSquaredError"
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)  # still trains with its first compile


def test_one_callback_alone_is_taken_as_a_list_of_one_as_in_keras():
    model = small_model()
    x, y = data()
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks.History())
    assert history.epoch == [0]
