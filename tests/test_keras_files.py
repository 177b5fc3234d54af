"""Keras 3's own files both ways: ``.keras`` archives and ``.weights.h5``, against real Keras 3.

- Keras saves a model, fastrnn loads it: the predictions agree to atol 1e-6 / rtol 1e-5 in
  float32 (observed: about 1e-7); fastrnn writes it back and Keras's ``load_model`` predicts
  the same. Models: a Sequential of LSTM, Bidirectional GRU, Dropout and Dense; a masked
  Embedding into Bidirectional LSTM and SimpleRNN; RNN of stacked cells, TimeDistributed and
  RNN of one cell; two inputs and two outputs through normalization, attention, a nested
  Sequential in TimeDistributed, a shared layer, returned states and ``initial_state``; the
  reshaping and pooling layers; Bidirectional's merge modes, ``backward_layer`` and states;
  the merging layers and attention scores; regularizers, constraints and initializers with
  arguments; models nested two deep, in float64.
- Models made in fastrnn, saved as ``.keras``: Keras predicts what fastrnn does.
- The compile config and the optimizer's state: a model trained a step and saved by one side
  takes its next ``train_on_batch`` step on the other side to the same weights (atol 1e-6)
  as the side that saved it, for SGD with momentum, Adam, AdamW, RMSprop and Adagrad (and with
  a frozen layer, a nested model and a regularizer); losses,
  loss weights, metrics and learning-rate schedules survive the trip.
- ``.weights.h5`` both ways; damaged or foreign files raise ValueError naming them; a Keras
  layer or option fastrnn lacks raises ValueError naming it.

Skipped when keras or h5py is not installed.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

import fastrnn  # noqa: E402
from fastrnn import layers as fl  # noqa: E402

# Keras's torch backend converts tensors with np.array(x), which NumPy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
kl = keras.layers
ATOL, RTOL = 1e-6, 1e-5
RNG = np.random.default_rng(0)


def floats(*shape):
    return RNG.random(shape).astype(np.float32)


def ids(*shape):
    return RNG.integers(1, 10, shape)  # no padding inside: post-padded batches only


def close(actual, desired, atol=ATOL):
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    desired = desired if isinstance(desired, (list, tuple)) else [desired]
    assert len(actual) == len(desired)
    for a, d in zip(actual, desired):
        np.testing.assert_allclose(np.asarray(a), np.asarray(d), rtol=RTOL, atol=atol)


# -- models made with Keras ----------------------------------------------------------------

def keras_sequential():
    model = keras.Sequential([keras.Input((5, 3)), kl.LSTM(4, return_sequences=True),
                              kl.Bidirectional(kl.GRU(2)), kl.Dropout(0.3), kl.Dense(1)])
    return model, floats(3, 5, 3)


def keras_masked():
    x = keras.Input((6,), dtype="int32")
    h = kl.Embedding(10, 3, mask_zero=True)(x)
    h = kl.Bidirectional(kl.LSTM(3, return_sequences=True), merge_mode="sum")(h)
    h = kl.SimpleRNN(2)(h)
    x_in = ids(3, 6)
    x_in[0, 4:] = 0
    return keras.Model(x, kl.Dense(2, activation="softmax")(h)), x_in


def keras_cells():
    x = keras.Input((5, 3))
    h = kl.RNN([kl.LSTMCell(4), kl.GRUCell(2)], return_sequences=True)(x)
    h = kl.TimeDistributed(kl.Dense(3, activation="tanh"))(h)
    h = kl.RNN(kl.SimpleRNNCell(2), go_backwards=True)(h)
    return keras.Model(x, kl.Dense(2)(h)), floats(3, 5, 3)


def keras_graph():
    a, b = keras.Input((5, 3), name="a"), keras.Input((4, 3), name="b")
    inner = keras.Sequential([keras.Input((3,)), kl.Dense(3), kl.Dense(3, use_bias=False)], name="inner")
    xa = kl.LayerNormalization()(a)
    xb = kl.LayerNormalization(center=False)(b)
    s = kl.Add()([kl.Attention(use_scale=True)([xa, xb]), kl.AdditiveAttention()([xa, xb])])
    s = kl.TimeDistributed(inner)(s)
    shared = kl.Dense(3, name="shared")
    c = kl.Concatenate()([shared(s), shared(xa)])
    o, h, _ = kl.LSTM(2, return_state=True)(c)
    o2 = kl.GRU(2)(c, initial_state=h)
    out = kl.Dense(1, name="out")(kl.Concatenate()([o, o2]))
    return keras.Model([a, b], [out, h]), [floats(3, 5, 3), floats(3, 4, 3)]


def keras_shapes():
    x = keras.Input((4, 3))
    h = kl.LSTM(3, return_sequences=True)(kl.Masking(0.0)(x))
    h = kl.Flatten()(kl.Permute((2, 1))(h))
    h = kl.GRU(3, return_sequences=True)(kl.RepeatVector(2)(kl.Activation("relu")(h)))
    h = kl.Multiply()([kl.GlobalMaxPooling1D()(h), kl.GlobalAveragePooling1D()(h)])
    h = kl.Reshape((3, 1))(h)
    return keras.Model(x, kl.Dense(1)(kl.Flatten()(h))), floats(3, 4, 3)


def keras_bidirectional():
    a = keras.Input((5, 3))
    outs = [kl.Bidirectional(kl.LSTM(2, return_sequences=True), merge_mode=mode)(a)
            for mode in ("concat", "sum", "mul", "ave")]
    outs += kl.Bidirectional(kl.GRU(2), merge_mode=None)(a)
    outs.append(kl.Bidirectional(kl.LSTM(2), backward_layer=kl.GRU(3, go_backwards=True))(a))
    o, h_forward, _, _, c_backward = kl.Bidirectional(kl.LSTM(2, return_state=True))(a)
    return keras.Model(a, outs + [o, h_forward, c_backward]), floats(3, 5, 3)


def keras_merging():
    a, b = keras.Input((5, 3)), keras.Input((5, 3))
    outs = [kl.Subtract()([a, b]), kl.Average()([a, b]), kl.Maximum()([a, b]), kl.Minimum()([a, b]),
            kl.Concatenate(axis=1)([a, b]), kl.Dot(axes=(2, 2))([a, b]), kl.Dot(axes=2, normalize=True)([a, b])]
    o, scores = kl.Attention(score_mode="concat", dropout=0.1)([a, b, b], return_attention_scores=True)
    return keras.Model([a, b], outs + [o, scores]), [floats(3, 5, 3), floats(3, 5, 3)]


def keras_options():
    lstm = kl.LSTM(3, return_sequences=True, go_backwards=True, unit_forget_bias=False,
                   kernel_regularizer=keras.regularizers.L2(0.01), recurrent_regularizer="l1",
                   bias_regularizer=keras.regularizers.L1L2(0.1, 0.2), activity_regularizer="l2",
                   kernel_constraint=keras.constraints.MaxNorm(2.0), recurrent_constraint="non_neg",
                   bias_constraint=keras.constraints.UnitNorm(),
                   kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                   recurrent_initializer=keras.initializers.Orthogonal(gain=2.0),
                   bias_initializer=keras.initializers.Constant(0.5))
    model = keras.Sequential([keras.Input((5, 3)), lstm, kl.GRU(3, use_bias=False, return_sequences=True),
                              kl.SimpleRNN(2, activation="relu", use_bias=False),
                              kl.Dense(2, kernel_constraint=keras.constraints.MinMaxNorm(0.1, 1.0),
                                       bias_initializer="ones")])
    return model, floats(3, 5, 3)


def keras_nested():
    inner = keras.Sequential([keras.Input((5, 3)), kl.LSTM(2, return_sequences=True)], name="encoder")
    a = keras.Input((5, 3))
    middle = keras.Model(a, kl.Dense(2)(inner(a)), name="middle")
    b = keras.Input((5, 3), dtype="float64")
    return keras.Model(b, kl.GRU(2, dtype="float64")(middle(b))), floats(3, 5, 3)


KERAS_MODELS = [keras_sequential, keras_masked, keras_cells, keras_graph, keras_shapes,
                keras_bidirectional, keras_merging, keras_options, keras_nested]


@pytest.mark.parametrize("make", KERAS_MODELS, ids=lambda f: f.__name__)
def test_keras_saves_fastrnn_loads_and_writes_back(make, tmp_path):
    keras.utils.set_random_seed(1)
    model, x = make()
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "k.keras")
    loaded = fastrnn.load_model(tmp_path / "k.keras")
    close(loaded.predict(x, verbose=0), want)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    loaded.save(tmp_path / "f.keras")
    close(keras.saving.load_model(tmp_path / "f.keras").predict(x, verbose=0), want)


# -- models made with fastrnn ----------------------------------------------------------------

def fastrnn_sequential():
    model = fastrnn.Sequential([fl.SimpleRNN(4, return_sequences=True), fl.LSTM(3, unit_forget_bias=False),
                                fl.Dense(2, activation="relu")])
    model.build((None, 5, 3))
    return model, floats(3, 5, 3)


def fastrnn_functional():
    x = fastrnn.Input((6,), dtype="int32")
    h = fl.Embedding(10, 4, mask_zero=True)(x)
    h = fl.Bidirectional(fl.GRU(3, return_sequences=True), merge_mode="concat")(h)
    h = fl.LSTM(2, kernel_initializer="he_normal", dropout=0.1)(h)
    x_in = ids(3, 6)
    x_in[1, 3:] = 0
    return fastrnn.Model(x, fl.Dense(1, activation="sigmoid")(h)), x_in


def fastrnn_graph():
    a, b = fastrnn.Input((5, 3)), fastrnn.Input((4, 3), name="other")
    n = fl.LayerNormalization(epsilon=1e-4)(a)
    att = fl.Attention(use_scale=True, score_mode="concat")([n, b])
    add = fl.AdditiveAttention()([n, b])
    s = fl.Concatenate()([att, add, fl.Multiply()([att, add]), fl.Maximum()([att, add])])
    r = fl.Bidirectional(fl.LSTM(2, return_sequences=True), merge_mode="ave")(fl.Masking(0.0)(s))
    p, q = fl.GlobalMaxPooling1D()(r), fl.GlobalAveragePooling1D()(r)
    t = fl.TimeDistributed(fl.Dense(2))(fl.Reshape((5, 2))(fl.Flatten()(fl.Permute((2, 1))(r))))
    cells = fl.RNN(fl.StackedRNNCells([fl.LSTMCell(3), fl.GRUCell(2)]), return_sequences=True)(t)
    o, h = fl.RNN(fl.SimpleRNNCell(2), return_state=True)(cells)
    g = fl.GRU(2)(cells, initial_state=h)
    outs = [fl.Dot(axes=1, normalize=True)([p, q]), fl.RepeatVector(2)(fl.Activation("tanh")(p)), o, g]
    return fastrnn.Model([a, b], outs), [floats(3, 5, 3), floats(3, 4, 3)]


@pytest.mark.parametrize("make", [fastrnn_sequential, fastrnn_functional, fastrnn_graph],
                         ids=lambda f: f.__name__)
def test_fastrnn_saves_keras_loads(make, tmp_path):
    fastrnn.utils.set_random_seed(2)
    model, x = make()
    model.save(tmp_path / "f.keras")
    with zipfile.ZipFile(tmp_path / "f.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    close(keras.saving.load_model(tmp_path / "f.keras").predict(x, verbose=0), model.predict(x, verbose=0))


def test_metadata_is_kept_beside_keras_s(tmp_path):
    model, _ = fastrnn_sequential()
    model.save(tmp_path / "m.keras", metadata={"vocabulary": ["a", "b"]})
    assert fastrnn.load_model(tmp_path / "m.keras").metadata == {"vocabulary": ["a", "b"]}
    keras_model, _ = keras_sequential()
    keras_model.save(tmp_path / "k.keras")
    assert fastrnn.load_model(tmp_path / "k.keras").metadata is None


# -- the compile config and the optimizer's state ----------------------------------------------

def small_keras(optimizer):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4, 2)), kl.GRU(3), kl.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


OPTIMIZERS = {
    "sgd": lambda m: m.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda m: m.optimizers.Adam(0.01),
    "adamw": lambda m: m.optimizers.AdamW(0.01, weight_decay=0.01, amsgrad=True),
    "rmsprop": lambda m: m.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda m: m.optimizers.Adagrad(0.05),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_training_resumes_across_the_file_both_ways(name, tmp_path):
    x, y = floats(6, 4, 2), floats(6, 1)
    model = small_keras(OPTIMIZERS[name](keras))
    model.train_on_batch(x, y)
    model.save(tmp_path / "k.keras")

    loaded = fastrnn.load_model(tmp_path / "k.keras")
    assert type(loaded.optimizer).__name__ == type(model.optimizer).__name__
    assert loaded.optimizer.iterations == 1
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    close(loaded.get_weights(), model.get_weights())

    loaded.save(tmp_path / "f.keras")  # two steps in: fastrnn's state, written for Keras
    again = keras.saving.load_model(tmp_path / "f.keras")
    assert int(again.optimizer.iterations) == 2
    again.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    close(again.get_weights(), loaded.get_weights())


def test_training_resumes_with_a_frozen_layer_a_nested_model_and_a_regularizer(tmp_path):
    keras.utils.set_random_seed(6)
    inner = keras.Sequential([keras.Input((4, 2)), kl.LSTM(3, return_sequences=True)], name="encoder")
    a = keras.Input((4, 2))
    h = kl.GRU(2, trainable=False, return_sequences=True)(inner(a))
    model = keras.Model(a, kl.Dense(1, kernel_regularizer="l2")(kl.SimpleRNN(2)(h)))
    model.compile(optimizer=keras.optimizers.RMSprop(0.01, momentum=0.5), loss="mse")
    x, y = floats(6, 4, 2), floats(6, 1)
    model.train_on_batch(x, y)
    model.save(tmp_path / "k.keras")
    loaded = fastrnn.load_model(tmp_path / "k.keras")
    assert loaded.train_on_batch(x, y) == pytest.approx(float(model.train_on_batch(x, y)), rel=1e-5)
    close(loaded.get_weights(), model.get_weights())
    loaded.save(tmp_path / "f.keras")
    again = keras.saving.load_model(tmp_path / "f.keras")
    assert float(again.train_on_batch(x, y)) == pytest.approx(loaded.train_on_batch(x, y), rel=1e-5)
    close(again.get_weights(), loaded.get_weights())


def test_a_model_saved_before_training_loads_a_fresh_optimizer(tmp_path):
    model = small_keras(keras.optimizers.Adam(0.01))
    model.save(tmp_path / "k.keras")
    loaded = fastrnn.load_model(tmp_path / "k.keras")
    assert loaded.optimizer.iterations == 0 and loaded.optimizer.learning_rate == pytest.approx(0.01)
    x, y = floats(6, 4, 2), floats(6, 1)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    close(loaded.get_weights(), model.get_weights())


def test_compile_config_round_trips_with_schedule_losses_and_metrics(tmp_path):
    a = keras.Input((4, 2))
    h = kl.LSTM(3)(a)
    model = keras.Model(a, [kl.Dense(1, name="o1")(h), kl.Dense(1, name="o2")(h)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss={"o1": "mse", "o2": keras.losses.BinaryCrossentropy(from_logits=True)},
                  loss_weights={"o1": 1.0, "o2": 0.5},
                  metrics={"o1": ["mae"], "o2": [keras.metrics.BinaryAccuracy()]})
    model.save(tmp_path / "k.keras")
    loaded = fastrnn.load_model(tmp_path / "k.keras")
    rate = loaded.optimizer.get_config()["learning_rate"]
    assert rate["class_name"] == "ExponentialDecay" and rate["config"]["decay_steps"] == 10
    assert loaded.loss_weights == {"o1": 1.0, "o2": 0.5}
    x, y = floats(6, 4, 2), [floats(6, 1), (floats(6, 1) > 0.5).astype(np.float32)]
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key

    loaded.save(tmp_path / "f.keras")
    again = keras.saving.load_model(tmp_path / "f.keras")
    assert isinstance(again.optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    for key, value in again.evaluate(x, y, verbose=0, return_dict=True).items():
        assert value == pytest.approx(want[key], rel=1e-5, abs=1e-6), key


SCHEDULES = {
    "ExponentialDecay": lambda s: s.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    "PiecewiseConstantDecay": lambda s: s.PiecewiseConstantDecay([5, 10], [0.1, 0.05, 0.01]),
    "InverseTimeDecay": lambda s: s.InverseTimeDecay(0.1, 10, 0.5),
    "PolynomialDecay": lambda s: s.PolynomialDecay(0.1, 20, 0.01, power=2.0, cycle=True),
    "CosineDecay": lambda s: s.CosineDecay(0.1, 20, alpha=0.1, warmup_target=0.2, warmup_steps=5),
    "CosineDecayRestarts": lambda s: s.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.01),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_learning_rate_schedules_both_ways(name, tmp_path):
    schedule = SCHEDULES[name](keras.optimizers.schedules)
    model = keras.Sequential([keras.Input((3,)), kl.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule, clipnorm=1.0), loss="mse")
    model.save(tmp_path / "k.keras")
    loaded = fastrnn.load_model(tmp_path / "k.keras")
    assert loaded.optimizer.clipnorm == 1.0
    steps = [0, 3, 7, 12, 25, 40]
    want = [float(schedule(step)) for step in steps]
    assert [loaded.optimizer._learning_rate(step) for step in steps] == pytest.approx(want, rel=1e-6)
    loaded.save(tmp_path / "f.keras")
    again = keras.saving.load_model(tmp_path / "f.keras").optimizer
    assert type(again._learning_rate).__name__ == name
    assert [float(again._learning_rate(step)) for step in steps] == pytest.approx(want, rel=1e-6)


def test_compile_false_leaves_the_model_uncompiled(tmp_path):
    small_keras("adam").save(tmp_path / "k.keras")
    assert not fastrnn.load_model(tmp_path / "k.keras", compile=False).compiled


# -- .weights.h5 ------------------------------------------------------------------------------

def test_weights_h5_both_ways(tmp_path):
    keras.utils.set_random_seed(4)
    model, x = keras_masked()
    model.save(tmp_path / "k.keras")
    model.save_weights(tmp_path / "k.weights.h5")
    twin = fastrnn.load_model(tmp_path / "k.keras")
    fastrnn.utils.set_random_seed(5)
    twin.set_weights([np.zeros_like(w) for w in twin.get_weights()])
    twin.load_weights(tmp_path / "k.weights.h5")
    close(twin.predict(x, verbose=0), model.predict(x, verbose=0))

    twin.set_weights([w + 0.25 for w in twin.get_weights()])
    twin.save_weights(tmp_path / "f.weights.h5")
    model.load_weights(tmp_path / "f.weights.h5")
    close(model.predict(x, verbose=0), twin.predict(x, verbose=0))


def test_weights_h5_of_a_compiled_model_carry_the_optimizer(tmp_path):
    x, y = floats(6, 4, 2), floats(6, 1)
    model = small_keras(keras.optimizers.Adam(0.01))
    model.train_on_batch(x, y)
    model.save_weights(tmp_path / "k.weights.h5")
    twin = fastrnn.Sequential([fastrnn.Input((4, 2)), fl.GRU(3), fl.Dense(1)])
    twin.compile(optimizer=fastrnn.optimizers.Adam(0.01), loss="mse")
    twin.load_weights(tmp_path / "k.weights.h5")
    assert twin.optimizer.iterations == 1
    model.train_on_batch(x, y)
    twin.train_on_batch(x, y)
    close(twin.get_weights(), model.get_weights())


# -- what fastrnn refuses -----------------------------------------------------------------------

def test_a_keras_layer_fastrnn_lacks_is_named(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), kl.Conv1D(2, 3, name="conv"), kl.LSTM(2)])
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"'conv' \(Conv1D\).*not a layer fastrnn has"):
        fastrnn.load_model(tmp_path / "k.keras")


def test_a_keras_option_fastrnn_lacks_is_named(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), kl.GRU(2, activation="softmax", name="gru")])
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"'gru' \(GRU\).*softmax"):
        fastrnn.load_model(tmp_path / "k.keras")


def test_a_mixed_precision_policy_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), kl.Dense(2, dtype="mixed_float16", name="half")])
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"'half'.*mixed_float16"):
        fastrnn.load_model(tmp_path / "k.keras")


def test_damaged_and_foreign_files_are_named(tmp_path):
    small_keras("adam").save(tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[:len(data) // 2])
    (tmp_path / "text.keras").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with zipfile.ZipFile(tmp_path / "bad_json.keras", "w") as zf:
        zf.writestr("config.json", "{not json")
        zf.writestr("model.weights.h5", b"")
    with zipfile.ZipFile(tmp_path / "bad_h5.keras", "w") as zf:
        zf.writestr("config.json", zipfile.ZipFile(tmp_path / "good.keras").read("config.json"))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for name in ("cut", "text", "other", "bad_json", "bad_h5"):
        path = tmp_path / f"{name}.keras"
        with pytest.raises(ValueError, match=str(path)):
            fastrnn.load_model(path)
    (tmp_path / "text.weights.h5").write_text("not hdf5")
    twin = fastrnn.load_model(tmp_path / "good.keras")
    with pytest.raises(ValueError, match="text.weights.h5"):
        twin.load_weights(tmp_path / "text.weights.h5")
    with pytest.raises(FileNotFoundError):
        fastrnn.load_model(tmp_path / "missing.keras")


def test_weights_of_another_model_are_refused_and_nothing_changes(tmp_path):
    keras_sequential()[0].save_weights(tmp_path / "other.weights.h5")
    small_keras("adam").save(tmp_path / "m.keras")
    model = fastrnn.load_model(tmp_path / "m.keras")
    before = model.get_weights()
    with pytest.raises(ValueError, match="other.weights.h5"):
        model.load_weights(tmp_path / "other.weights.h5")
    close(model.get_weights(), before, atol=0)


def test_a_subclassed_model_cannot_be_written_as_keras(tmp_path):
    class Tiny(fastrnn.Model):
        def __init__(self):
            super().__init__()
            self.dense = fl.Dense(1)

        def call(self, x, training=False):
            return self.dense(x)

    model = Tiny()
    model.build((None, 3))
    (tmp_path / "m.keras").write_text("old")
    with pytest.raises(ValueError, match="subclassed"):
        model.save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_text() == "old"
    model.save_weights(tmp_path / "m.weights.h5")
    twin = Tiny()
    twin.build((None, 3))
    twin.load_weights(tmp_path / "m.weights.h5")
    close(twin.get_weights(), model.get_weights(), atol=0)


def test_two_biases_from_pytorch_are_written_as_their_sum(tmp_path):
    torch = pytest.importorskip("torch")
    lstm = fastrnn.interop.from_torch(torch.nn.LSTM(3, 4, batch_first=True))
    x = fastrnn.Input((5, 3))
    model = fastrnn.Model(x, fl.Dense(1)(lstm(x)))
    model.compile(optimizer="adam", loss="mse")
    xs = floats(4, 5, 3)
    model.train_on_batch(xs, floats(4, 5, 1))
    with pytest.warns(UserWarning, match="two biases"):
        model.save(tmp_path / "f.keras")
    close(keras.saving.load_model(tmp_path / "f.keras", compile=False).predict(xs, verbose=0),
          model.predict(xs, verbose=0))


def test_fastrnn_s_own_file_under_a_keras_name_still_loads(tmp_path):
    model, x = fastrnn_sequential()
    model.save(tmp_path / "m.npz")
    os.replace(tmp_path / "m.npz", tmp_path / "m.keras")  # what model.save("m.keras") wrote before
    close(fastrnn.load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), atol=0)


def test_a_compile_config_fastrnn_lacks_is_named_and_compile_false_skips_it(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), kl.LSTM(2)])
    model.compile(optimizer="nadam", loss="mse")
    model.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"k\.keras: the model's compile config .*'Nadam'.*compile=False"):
        fastrnn.load_model(tmp_path / "k.keras")
    assert not fastrnn.load_model(tmp_path / "k.keras", compile=False).compiled


@pytest.mark.parametrize("damage", ["shape", "soft_link", "external_link", "strings", "missing", "extra"])
def test_a_tampered_weights_file_is_refused_and_nothing_changes(damage, tmp_path):
    import h5py

    model, x = fastrnn_sequential()
    model.save_weights(tmp_path / "m.weights.h5")
    before = model.get_weights()
    with h5py.File(tmp_path / "m.weights.h5", "r+") as h5:
        group = h5["layers/lstm/cell/vars"]
        if damage == "shape":
            del group["1"]
            group["1"] = np.zeros((2, 2), np.float32)
        elif damage == "soft_link":
            del group["1"]
            group["1"] = h5py.SoftLink("/layers/lstm/cell/vars/0")
        elif damage == "external_link":
            del group["1"]
            group["1"] = h5py.ExternalLink("/etc/passwd", "/")
        elif damage == "strings":
            del group["1"]
            group["1"] = np.array([b"a", b"b"])
        elif damage == "missing":
            del group["1"]
        else:
            group["3"] = np.zeros(3, np.float32)
    model.set_weights([w + 1 for w in before])
    changed = model.get_weights()
    with pytest.raises(ValueError, match="m.weights.h5"):
        model.load_weights(tmp_path / "m.weights.h5")
    close(model.get_weights(), changed, atol=0)


def test_keras_files_are_read_and_written_without_importing_keras(tmp_path):
    import subprocess
    import sys

    keras_sequential()[0].save(tmp_path / "k.keras")
    script = ("import sys, fastrnn\n"
              "m = fastrnn.load_model(sys.argv[1])\n"
              "m.save(sys.argv[2]); m.save_weights(sys.argv[3]); m.load_weights(sys.argv[3])\n"
              "assert not [n for n in sys.modules if n == 'keras' or n.startswith(('keras.', 'tensorflow'))]\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "k.keras"), str(tmp_path / "f.keras"),
                           str(tmp_path / "f.weights.h5")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    model, _ = fastrnn_sequential()
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"fastrnn\[keras\]"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
