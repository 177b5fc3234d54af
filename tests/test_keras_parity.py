"""Functional and subclassed models against real Keras 3 (torch backend), from identical weights.

Each model is built twice, once with ``keras`` and once with ``fastrnn``, with the same layer
names; fastrnn's weights are set from Keras's layer by layer. Then:

- ``predict`` agrees to rtol 1e-5 / atol 1e-6 in float32 (observed: about 3e-8), and to rtol
  1e-10 in float64 (for the recurrent layers: see the float64 test);
- three ``train_on_batch`` steps with Adam give the same logs (same names, values to rtol
  1e-5) and the same weights afterwards (atol 1e-6). The learning rate is 1e-3: Adam turns a
  gradient entry near zero into a step of about the learning rate whichever its sign, so
  float32 rounding grows by about 3x a step; at 1e-2 the losses of a few random starts in a
  hundred drifted 1e-5 apart by the third step;
- ``summary`` lists the same layer names, output shapes and parameter counts.

Models: keras-io's seq2seq encoder-decoder (initial_state from the encoder's states), one with
a Bidirectional encoder whose joined states start the decoder and whose outputs it attends to,
a two-output model with per-output losses, loss weights and metrics, a layer shared between
two branches joined by ``Add``, a masked Embedding into Bidirectional LSTMs, and a subclassed
model. Skipped when keras is not installed.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import fastrnn  # noqa: E402
from fastrnn import layers as fl  # noqa: E402

STEPS = 3
LEARNING_RATE = 1e-3


class Both:
    """The same model in keras (``k``) and fastrnn (``f``), fastrnn's weights set from Keras's."""

    def __init__(self, build, dtype="float32"):
        keras.utils.set_random_seed(0)  # the initial weights, so that a run repeats
        self.k = build(keras, keras.layers, dtype)
        self.f = build(fastrnn, fl, dtype)
        assert [layer.name for layer in self.f.layers] == [layer.name for layer in self.k.layers]
        for k_layer, f_layer in zip(self.k.layers, self.f.layers):
            f_layer.set_weights(k_layer.get_weights())

    def compile(self, **kwargs):
        self.k.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), **kwargs)
        self.f.compile(optimizer=fastrnn.optimizers.Adam(LEARNING_RATE), **kwargs)

    def check_predict(self, x, rtol=1e-5, atol=1e-6):
        expected, got = self.k.predict(x, verbose=0), self.f.predict(x, verbose=0)
        if not isinstance(expected, (list, tuple)):
            expected, got = [expected], [got]
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, np.asarray(e), rtol=rtol, atol=atol)

    def check_training(self, x, y):
        for _ in range(STEPS):
            expected = self.k.train_on_batch(x, y, return_dict=True)
            got = self.f.train_on_batch(x, y, return_dict=True)
            assert sorted(got) == sorted(expected)
            for name in expected:
                assert got[name] == pytest.approx(float(expected[name]), rel=1e-5, abs=1e-6), name
        for k_layer, f_layer in zip(self.k.layers, self.f.layers):
            for a, b in zip(f_layer.get_weights(), k_layer.get_weights()):
                np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)

    def check_summary(self):
        lines = []
        self.f.summary(print_fn=lines.append)
        rows = {line.split()[0]: line for line in lines if line and line.split()[0] in
                {layer.name for layer in self.f.layers}}
        for layer in self.k.layers:
            row = rows[layer.name]
            assert f"{layer.count_params()}" in row.split(), (layer.name, row)
            assert keras_shape_text(layer) in row, (layer.name, row)
            assert f"({type(layer).__name__})" in row
        assert f"Total params: {self.k.count_params():,}" in lines


def keras_shape_text(layer):
    output = layer.output
    if isinstance(output, (list, tuple)):
        return "[" + ", ".join(str(tuple(t.shape)) for t in output) + "]"
    return str(tuple(output.shape))


# ------------------------------------------------------------------------------------
# The models, written once for both libraries.

def seq2seq(lib, layers, dtype):
    encoder_inputs = lib.Input(shape=(None, 7), name="encoder_inputs", dtype=dtype)
    _, h, c = layers.LSTM(6, return_state=True, name="encoder", dtype=dtype)(encoder_inputs)
    decoder_inputs = lib.Input(shape=(None, 5), name="decoder_inputs", dtype=dtype)
    decoded, _, _ = layers.LSTM(6, return_sequences=True, return_state=True, name="decoder",
                                dtype=dtype)(decoder_inputs, initial_state=[h, c])
    outputs = layers.Dense(5, activation="softmax", name="head", dtype=dtype)(decoded)
    return lib.Model([encoder_inputs, decoder_inputs], outputs)


def attention_seq2seq(lib, layers, dtype):
    encoder_inputs = lib.Input(shape=(None, 7), name="encoder_inputs", dtype=dtype)
    encoded, fh, fc, bh, bc = layers.Bidirectional(
        layers.LSTM(4, return_sequences=True, return_state=True, dtype=dtype), name="encoder",
        dtype=dtype)(encoder_inputs)
    h = layers.Concatenate(name="join_h", dtype=dtype)([fh, bh])
    c = layers.Concatenate(name="join_c", dtype=dtype)([fc, bc])
    decoder_inputs = lib.Input(shape=(None, 5), name="decoder_inputs", dtype=dtype)
    decoded = layers.LSTM(8, return_sequences=True, name="decoder", dtype=dtype)(
        decoder_inputs, initial_state=[h, c])
    context = layers.Attention(name="attention", dtype=dtype)([decoded, encoded])
    joined = layers.Concatenate(name="join", dtype=dtype)([decoded, context])
    outputs = layers.Dense(5, activation="softmax", name="head", dtype=dtype)(joined)
    return lib.Model([encoder_inputs, decoder_inputs], outputs)


def two_outputs(lib, layers, dtype):
    inputs = lib.Input(shape=(6, 3), name="x", dtype=dtype)
    h = layers.GRU(5, name="gru", dtype=dtype)(inputs)
    a = layers.Dense(1, activation="sigmoid", name="a", dtype=dtype)(h)
    b = layers.Dense(2, name="b", dtype=dtype)(h)
    return lib.Model(inputs, [a, b])


def shared_layer(lib, layers, dtype):
    left = lib.Input(shape=(5, 3), name="left", dtype=dtype)
    right = lib.Input(shape=(5, 3), name="right", dtype=dtype)
    shared = layers.LSTM(4, name="shared", dtype=dtype)
    joined = layers.Add(name="join", dtype=dtype)([shared(left), shared(right)])
    dense = layers.Dense(4, activation="tanh", name="dense", dtype=dtype)
    twice = dense(dense(joined))  # a layer shared at two depths
    return lib.Model([left, right], layers.Dense(1, name="out", dtype=dtype)(twice))


def masked_bidirectional(lib, layers, dtype):
    inputs = lib.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(30, 8, mask_zero=True, name="embed", dtype=dtype)(inputs)
    x = layers.Bidirectional(layers.LSTM(5, return_sequences=True, dtype=dtype), name="bi1",
                             dtype=dtype)(x)
    x = layers.Bidirectional(layers.GRU(4, dtype=dtype), name="bi2", dtype=dtype)(x)
    return lib.Model(inputs, layers.Dense(1, activation="sigmoid", name="out", dtype=dtype)(x))


def one_hot(rng, shape, classes):
    return np.eye(classes, dtype=np.float32)[rng.integers(0, classes, shape)]


def seq2seq_data(rng, n=8):
    return [rng.random((n, 4, 7), dtype=np.float32), rng.random((n, 3, 5), dtype=np.float32)], \
        one_hot(rng, (n, 3), 5)


def padded_ids(rng, n=8, T=7):
    lengths = rng.integers(1, T + 1, n)
    ids = rng.integers(1, 30, (n, T)) * (np.arange(T)[None, :] < lengths[:, None])
    return ids.astype(np.int32), (lengths > T // 2).astype(np.float32)[:, None]


# ------------------------------------------------------------------------------------

def test_seq2seq_encoder_decoder_with_initial_state():
    both = Both(seq2seq)
    rng = np.random.default_rng(0)
    x, y = seq2seq_data(rng)
    both.check_predict(x)
    both.check_summary()
    both.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    both.check_training(x, y)
    both.check_predict(x)


def seq2seq_states(lib, layers, dtype):
    """The encoder-decoder without its Dense head: the decoder's sequence and final states."""
    encoder_inputs = lib.Input(shape=(None, 7), name="encoder_inputs", dtype=dtype)
    _, h, c = layers.LSTM(6, return_state=True, name="encoder", dtype=dtype)(encoder_inputs)
    decoder_inputs = lib.Input(shape=(None, 5), name="decoder_inputs", dtype=dtype)
    outputs = layers.LSTM(6, return_sequences=True, return_state=True, name="decoder",
                          dtype=dtype)(decoder_inputs, initial_state=[h, c])
    return lib.Model([encoder_inputs, decoder_inputs], outputs)


def test_seq2seq_in_float64_agrees_more_tightly():
    # Without a Dense layer: Keras's float64 Dense on the torch backend is float32-accurate only
    # (2e-7 from x @ W + b in NumPy, which fastrnn's Dense matches to the last bit).
    both = Both(seq2seq_states, dtype="float64")
    rng = np.random.default_rng(1)
    x, _ = seq2seq_data(rng)
    both.check_predict([a.astype(np.float64) for a in x], rtol=1e-10, atol=1e-12)


def test_a_bidirectional_encoder_whose_states_start_an_attending_decoder():
    both = Both(attention_seq2seq)
    rng = np.random.default_rng(7)
    x, y = seq2seq_data(rng)
    both.check_predict(x)
    both.check_summary()
    both.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    both.check_training(x, y)


def test_two_outputs_with_per_output_losses_weights_and_metrics():
    both = Both(two_outputs)
    rng = np.random.default_rng(2)
    x = rng.random((10, 6, 3), dtype=np.float32)
    y = [rng.integers(0, 2, (10, 1)).astype(np.float32), rng.random((10, 2), dtype=np.float32)]
    both.check_predict(x)
    both.check_summary()
    both.compile(loss={"a": "binary_crossentropy", "b": "mse"}, loss_weights=[0.5, 2.0],
                 metrics={"a": ["accuracy"], "b": ["mae", "mse"]})
    both.check_training(x, y)


@pytest.mark.parametrize("kwargs", [
    {"loss": ["binary_crossentropy", "mse"], "metrics": [["accuracy"], ["mae"]]},
    {"loss": "mse"},
    {"loss": ["binary_crossentropy", None]},
], ids=["list", "one-for-all", "one-output-without-loss"])
def test_two_outputs_fit_logs_the_names_keras_logs(kwargs):
    both = Both(two_outputs)
    rng = np.random.default_rng(3)
    x = rng.random((8, 6, 3), dtype=np.float32)
    y = [rng.integers(0, 2, (8, 1)).astype(np.float32), rng.random((8, 2), dtype=np.float32)]
    both.compile(**kwargs)
    expected = both.k.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    got = both.f.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    assert sorted(got) == sorted(expected)


def test_a_layer_shared_between_branches_and_at_two_depths():
    both = Both(shared_layer)
    rng = np.random.default_rng(4)
    x = [rng.random((6, 5, 3), dtype=np.float32), rng.random((6, 5, 3), dtype=np.float32)]
    y = rng.random((6, 1), dtype=np.float32)
    both.check_predict(x)
    both.check_summary()
    both.compile(loss="mse")
    both.check_training(x, y)


def test_a_masked_embedding_into_bidirectional_layers():
    both = Both(masked_bidirectional)
    rng = np.random.default_rng(5)
    ids, y = padded_ids(rng)
    both.check_predict(ids)
    both.check_summary()
    both.compile(loss="binary_crossentropy", metrics=["accuracy"])
    both.check_training(ids, y)


def make_subclassed(base, layers):
    class Tagger(base):
        def __init__(self):
            super().__init__()
            self.embed = layers.Embedding(30, 6, mask_zero=True)
            self.lstm = layers.LSTM(5, return_sequences=True)
            self.head = layers.Dense(3, activation="softmax")

        def call(self, inputs, training=False):
            return self.head(self.lstm(self.embed(inputs), training=training))

    return Tagger()


def test_a_subclassed_model():
    keras.utils.set_random_seed(0)
    k, f = make_subclassed(keras.Model, keras.layers), make_subclassed(fastrnn.Model, fl)
    rng = np.random.default_rng(6)
    ids, _ = padded_ids(rng)
    k.predict(ids, verbose=0)  # builds the layers
    f.predict(ids, verbose=0)
    for k_layer, f_layer in zip(k.layers, f.layers):
        f_layer.set_weights(k_layer.get_weights())
    np.testing.assert_allclose(f.predict(ids, verbose=0), k.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    targets = rng.integers(0, 3, ids.shape)
    k.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    f.compile(optimizer=fastrnn.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    for _ in range(STEPS):
        assert f.train_on_batch(ids, targets) == pytest.approx(float(k.train_on_batch(ids, targets)),
                                                               rel=1e-5)
    np.testing.assert_allclose(f.predict(ids, verbose=0), k.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
