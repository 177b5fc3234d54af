"""Training: models really learn, and ``fit``/``evaluate``/``train_on_batch`` keep Keras's rules.

The learning tests are small, seeded tasks that a working RNN solves in a few seconds:
memorising a text character by character (SimpleRNN), the adding problem (LSTM), a
classification rule that needs memory (GRU), and counting over padded sequences of
different lengths (masked Bidirectional LSTM). Their thresholds are far from chance
but with a wide margin to what the seeded runs reach.
"""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from fastrnn import Sequential
from fastrnn import load_model
from fastrnn.callbacks import Callback, EarlyStopping, ModelCheckpoint
from fastrnn.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, SimpleRNN
from fastrnn.optimizers import SGD, Adam
from fastrnn.utils import set_random_seed

# ------------------------------------------------------------------------------------
# The models learn.

TEXT = "the quick brown fox jumps over the lazy dog. "


def char_windows(text, T):
    """One-hot windows of T characters (N, T, V) and the one-hot next character (N, V)."""
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text + text[:T]])  # wrap around the end
    x = np.stack([ids[i:i + T] for i in range(len(text))])  # (N, T)
    y = ids[T:T + len(text)]  # (N,)
    eye = np.eye(len(chars), dtype=np.float32)
    return eye[x], eye[y], chars


def test_simple_rnn_memorises_a_text_character_by_character():
    set_random_seed(0)
    x, y, chars = char_windows(TEXT, T=8)
    model = Sequential([SimpleRNN(50, input_shape=(8, len(chars))),
                        Dense(len(chars), activation="softmax")])
    model.compile(optimizer=Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy == 1.0  # every next character of the text (chance: 1/28)
    assert loss < 0.1


def adding_problem(n, T, rng):
    """Values in [0, 1) and a marker on two steps; the target is the sum of the marked values."""
    values = rng.random((n, T))
    marks = np.zeros((n, T))
    for row in marks:
        row[rng.choice(T, 2, replace=False)] = 1
    return np.stack([values, marks], axis=-1).astype(np.float32), (values * marks).sum(1, keepdims=True)


def test_lstm_learns_the_adding_problem():
    set_random_seed(1)
    rng = np.random.default_rng(1)
    x, y = adding_problem(768, 10, rng)
    x_test, y_test = adding_problem(256, 10, rng)
    model = Sequential([LSTM(16, input_shape=(10, 2)), Dense(1)])
    model.compile(optimizer=Adam(0.01), loss="mse")
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    # Predicting the mean scores the target variance, about 1/6; the seeded run reaches ~1e-3.
    assert model.evaluate(x_test, y_test, verbose=0) < 0.01


def test_gru_classifies_sequences_by_their_first_step():
    set_random_seed(2)
    rng = np.random.default_rng(2)
    x = (rng.choice([-1.0, 1.0], (640, 12, 1)) + 0.1 * rng.standard_normal((640, 12, 1))).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.float32)[:, None]  # the label is set 12 steps before the end
    model = Sequential([GRU(8, input_shape=(12, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=20, batch_size=32, validation_split=0.2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.95


def test_masked_bidirectional_lstm_counts_tokens_in_padded_sequences():
    set_random_seed(3)
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 11, 640)
    ids = rng.integers(1, 3, (640, 10)) * (np.arange(10)[None, :] < lengths[:, None])  # post-padded
    y = ((ids == 1).sum(1) > (ids == 2).sum(1)).astype(np.float32)[:, None]
    model = Sequential([Embedding(3, 4, mask_zero=True, input_shape=(10,)),
                        Bidirectional(LSTM(8)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(ids, y, epochs=20, batch_size=32, validation_split=0.2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.95


# ------------------------------------------------------------------------------------
# fit's bookkeeping.

def make_model(dropout=0.0, optimizer="adam"):
    set_random_seed(5)
    layers = [GRU(6, input_shape=(5, 3), return_sequences=bool(dropout))]
    if dropout:
        layers += [Dropout(dropout), SimpleRNN(4)]
    model = Sequential(layers + [Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def make_data(n=40, seed=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5, 3)).astype(np.float32)
    return x, (x[:, :, 0].sum(1) > 0).astype(np.float32)[:, None]


def test_history_holds_one_value_per_epoch_for_loss_metrics_and_validation():
    x, y = make_data()
    history = make_model().fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())


def test_validation_split_holds_out_the_last_samples():
    x, y = make_data()
    model = make_model()
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    # Validation runs after the epoch's last step, so it equals evaluating the last 10 samples.
    val_loss, val_acc = model.evaluate(x[30:], y[30:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_acc, rel=1e-12)


def test_validation_data_is_evaluated_after_each_epoch():
    x, y = make_data()
    xv, yv = make_data(n=12, seed=7)
    model = make_model()
    history = model.fit(x, y, epochs=2, validation_data=(xv, yv), verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(xv, yv, verbose=0)[0], rel=1e-12)


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    # With a zero learning rate the weights stay put, so the epoch's loss and accuracy
    # (batches of 8, 8, 8, 8, 3) must equal one evaluation over all 35 samples.
    x, y = make_data(n=35)
    model = make_model(optimizer=SGD(learning_rate=0.0))
    history = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=35, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-6)
    assert history.history["accuracy"][0] == pytest.approx(acc, rel=1e-12)


def test_fit_without_shuffle_equals_train_on_batch_over_the_same_batches():
    x, y = make_data(n=20)
    fitted, stepped = make_model(), make_model()
    fitted.fit(x, y, epochs=2, batch_size=6, shuffle=False, verbose=0)
    for _ in range(2):
        for start in range(0, 20, 6):
            stepped.train_on_batch(x[start:start + 6], y[start:start + 6])
    for a, b in zip(fitted.get_weights(), stepped.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_two_fits_continue_where_the_first_stopped():
    x, y = make_data()
    once, twice = make_model(), make_model()
    once.fit(x, y, epochs=4, batch_size=8, shuffle=False, verbose=0)
    twice.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    twice.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, shuffle=False, verbose=0)
    assert twice.optimizer.iterations == once.optimizer.iterations == 20
    for a, b in zip(once.get_weights(), twice.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_initial_epoch_numbers_the_epochs():
    x, y = make_data()
    history = make_model().fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3]


def test_same_seed_repeats_a_run_with_shuffling_and_dropout_exactly():
    x, y = make_data()
    runs = []
    for _ in range(2):
        model = make_model(dropout=0.3)  # seeds inside
        history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=0)
        runs.append((history.history, model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_shuffling_changes_the_batches():
    x, y = make_data()
    a, b = make_model(), make_model()
    a.fit(x, y, epochs=1, batch_size=8, shuffle=True, verbose=0)
    b.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert not np.allclose(a.get_weights()[0], b.get_weights()[0])


def test_evaluate_returns_the_loss_alone_without_metrics():
    x, y = make_data()
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss"}


def test_evaluate_loss_does_not_depend_on_batch_size():
    x, y = make_data(n=37)
    model = make_model()
    a = model.evaluate(x, y, batch_size=5, verbose=0)
    b = model.evaluate(x, y, batch_size=37, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_train_and_test_on_batch_report_that_batch():
    x, y = make_data()
    model = make_model()
    before = model.test_on_batch(x, y)
    model.train_on_batch(x, y)
    after = model.test_on_batch(x, y)
    assert len(before) == 2 and after[0] != before[0]
    assert model.optimizer.iterations == 1


def test_loss_of_masked_sequence_outputs_averages_over_real_steps_only():
    set_random_seed(8)
    model = Sequential([Embedding(5, 3, mask_zero=True, input_shape=(4,)),
                        LSTM(4, return_sequences=True), Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.array([[1, 2, 3, 0], [4, 0, 0, 0]])
    targets = np.array([[2, 3, 4, 1], [1, 3, 2, 0]])
    probs = model.predict(ids, verbose=0)  # (2, 4, 5)
    real = ids != 0
    picked = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]  # (2, 4)
    expected = -np.log(picked[real]).mean()
    assert model.evaluate(ids, targets, verbose=0) == pytest.approx(expected, rel=1e-5)
    # Targets at padded steps do not matter.
    targets[~real] = 0
    assert model.evaluate(ids, targets, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_metrics_of_masked_sequence_outputs_count_real_steps_only():
    def label_probability(y_true, y_pred):  # (B, T) the probability given to each step's label
        return np.take_along_axis(y_pred, np.asarray(y_true)[..., None], axis=-1)[..., 0]

    set_random_seed(3)
    model = Sequential([Embedding(7, 4, mask_zero=True, input_shape=(6,)),
                        LSTM(8, return_sequences=True), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", label_probability])
    ids = np.array([[1, 2, 3, 4, 5, 6], [2, 3, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0]])
    probs = model.predict(ids, verbose=0)  # (3, 6, 3)
    guess = probs.argmax(-1)
    real = ids != 0
    # Every padded step's target is the model's guess, every real step's target is not, but
    # the first: counted, padded steps would lift the accuracy from 1/9 to 5/9.
    targets = np.where(real, (guess + 1) % 3, guess)
    targets[0, 0] = guess[0, 0]
    expected = {"accuracy": 1 / 9, "label_probability": label_probability(targets, probs)[real].mean()}

    logs = model.evaluate(ids, targets, verbose=0, return_dict=True)
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, rel=1e-6), name
    # Training reports the metrics of the batch it was given, before its update (no dropout).
    logs = model.train_on_batch(ids, targets, return_dict=True)
    for name, value in expected.items():
        assert logs[name] == pytest.approx(value, rel=1e-6), name


# ------------------------------------------------------------------------------------
# Callbacks, stopping, Ctrl-C, output.

class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch_end {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def test_user_callback_hooks_run_in_keras_order_with_logs():
    x, y = make_data(n=16)
    recorder = Recorder()
    make_model().fit(x, y, epochs=2, batch_size=8, validation_split=0.5, callbacks=[recorder], verbose=0)
    logs = "['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    assert recorder.calls == ["train_begin",
                              "epoch_begin 0", "batch_end 0", f"epoch_end 0 {logs}",
                              "epoch_begin 1", "batch_end 0", f"epoch_end 1 {logs}",
                              "train_end"]


class StopAfter(Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batches:
            self.model.stop_training = True


def test_stop_training_set_by_a_callback_stops_after_that_batch():
    x, y = make_data()
    model = make_model()
    history = model.fit(x, y, epochs=5, batch_size=8, callbacks=[StopAfter(7)], verbose=0)
    assert model.optimizer.iterations == 7
    assert history.epoch == [0, 1]  # the second epoch ends early but is still logged, as in Keras


def test_early_stopping_ends_training_when_the_loss_stops_improving():
    x, y = make_data()
    model = make_model(optimizer=SGD(learning_rate=0.0))  # the loss never improves
    # unshuffled, so that each epoch sums the same batches in the same order to the same loss
    history = model.fit(x, y, epochs=10, shuffle=False, callbacks=[EarlyStopping(monitor="loss", patience=1)],
                        verbose=0)
    assert len(history.epoch) == 2


def test_model_checkpoint_saves_loadable_models_each_epoch(tmp_path):
    x, y = make_data()
    model = make_model()
    model.fit(x, y, epochs=2, validation_split=0.25, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "model-{epoch:02d}.npz"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-01.npz", "model-02.npz"]
    last = load_model(tmp_path / "model-02.npz")
    np.testing.assert_array_equal(last.predict(x, verbose=0), model.predict(x, verbose=0))


class CtrlCAt(Callback):
    """Sends SIGINT to this process after a given batch of a given epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_between_batches_and_leaves_a_usable_model(capsys):
    x, y = make_data(n=40)
    model, twin = make_model(), make_model()
    handler_before = signal.getsignal(signal.SIGINT)
    history = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, callbacks=[CtrlCAt(1, 2)], verbose=0)
    assert signal.getsignal(signal.SIGINT) is handler_before  # restored
    assert history.epoch == [0]  # the interrupted epoch is not logged
    assert "interrupted" in capsys.readouterr().err
    # Exactly the steps up to the interrupt were taken: 5 of epoch 0 and 3 of epoch 1.
    assert model.optimizer.iterations == 8
    for step in range(8):
        start = (step % 5) * 8
        twin.train_on_batch(x[start:start + 8], y[start:start + 8])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, epochs=1, verbose=0)  # and training can go on


def test_fit_in_a_worker_thread_leaves_signal_handling_alone():
    # Signal handlers can only be set from the main thread; fit must still work elsewhere.
    x, y = make_data()
    model = make_model()
    handler_before = signal.getsignal(signal.SIGINT)
    errors = []

    def train():
        try:
            model.fit(x, y, epochs=1, verbose=0)
        except Exception as err:  # reported below, in the main thread
            errors.append(err)

    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    assert errors == [] and model.optimizer.iterations == 2
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_verbose_zero_prints_nothing_and_verbose_two_prints_one_line_per_epoch(capsys):
    x, y = make_data()
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "loss" in lines[0]
