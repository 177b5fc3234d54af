"""A model used from several threads: ``predict`` while another thread fits runs between two
training steps and sees the weights of a step boundary; fit, evaluate, train_on_batch and
test_on_batch (which share the metrics and the optimizer), and any call on a model with
stateful layers, are a RuntimeError from a second thread while the first runs."""
from __future__ import annotations

import copy
import sys
import threading

import numpy as np
import pytest

from fastrnn import callbacks, layers, models

T, F = 6, 3


@pytest.fixture
def fast_switching():
    """Threads switch every microsecond, so that any unlocked window is hit."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, T, F)).astype(np.float32),
            rng.standard_normal((n, 1)).astype(np.float32))


class Subclassed(models.Model):
    def __init__(self):
        super().__init__()
        self.lstm = layers.LSTM(8)
        self.drop = layers.Dropout(0.2)
        self.dense = layers.Dense(1)

    def call(self, x, training=False):
        return self.dense(self.drop(self.lstm(x, training=training), training=training))


def make_model(kind, stateful=False):
    if kind == "sequential":
        batch = {"batch_size": 8} if stateful else {}
        model = models.Sequential([layers.Input(shape=(T, F), **batch),
                                   layers.LSTM(8, stateful=stateful), layers.Dropout(0.2),
                                   layers.Dense(1)])
    elif kind == "functional":
        inputs = layers.Input(shape=(T, F))
        h = layers.GRU(8, return_sequences=True)(inputs)
        h = layers.LSTM(8)(layers.Dropout(0.2)(h))
        model = models.Model(inputs, layers.Dense(1)(h))
    else:
        model = Subclassed()
    model.compile(optimizer="adam", loss="mse")
    return model


class Snapshots(callbacks.Callback):
    """The weights after each training step; at ``wait_at``, waits for ``event`` (so that the
    other thread has run at least once while the fit was under way)."""

    def __init__(self, event=None, wait_at=2):
        super().__init__()
        self.weights, self.event, self.wait_at = [], event, wait_at

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])
        if self.event is not None and batch == self.wait_at:
            assert self.event.wait(60), "the other thread never ran"


def fit_in_thread(model, x, y, callback, **kwargs):
    errors = []

    def run():
        try:
            model.fit(x, y, verbose=0, callbacks=[callback], **kwargs)
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_predicts_during_a_fit_equal_predicts_at_step_boundaries(kind, fast_switching):
    model = make_model(kind)
    x, y = data()
    probe = x[:5]
    model.predict(probe, verbose=0)  # builds a subclassed model
    initial = [w.copy() for w in model.get_weights()]
    one_done = threading.Event()
    snapshots = Snapshots(one_done)
    thread, errors = fit_in_thread(model, x, y, snapshots, epochs=2, batch_size=4)
    results = []
    while thread.is_alive():
        results.append(model.predict(probe, verbose=0, batch_size=2))
        one_done.set()
    thread.join()
    assert not errors, errors
    assert results

    # Each result is the prediction of some step boundary's weights, in order.
    boundaries = [initial] + snapshots.weights
    expected = []
    for weights in boundaries:
        model.set_weights(weights)
        expected.append(model.predict(probe, verbose=0, batch_size=2))
    k = 0
    for r in results:
        while k < len(expected) and not np.allclose(r, expected[k], rtol=1e-6, atol=1e-7):
            k += 1
        assert k < len(expected), "a predict saw weights of no step boundary"


def test_two_threads_predicting_at_once_get_what_each_gets_alone(fast_switching):
    model = make_model("functional")
    x, _ = data()
    alone = [model.predict(x[k::2], verbose=0, batch_size=3) for k in range(2)]
    got = [None, None]

    def run(k):
        got[k] = [model.predict(x[k::2], verbose=0, batch_size=3) for _ in range(5)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        for r in got[k]:
            np.testing.assert_allclose(r, alone[k], rtol=1e-6, atol=1e-7)


def call_from_another_thread(fn):
    """Run ``fn`` in a new thread and return what it raised (None when nothing)."""
    raised = []

    def run():
        try:
            fn()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


class DuringFit(callbacks.Callback):
    """Runs ``fn`` in another thread at the first batch's end and keeps what it raised."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.raised = fn, "not run"

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.raised = call_from_another_thread(self.fn)


@pytest.mark.parametrize("what", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_a_second_thread_training_or_evaluating_during_a_fit_is_a_runtime_error(what):
    model = make_model("sequential")
    x, y = data()
    calls = {"fit": lambda: model.fit(x, y, epochs=1, verbose=0),
             "evaluate": lambda: model.evaluate(x, y, verbose=0),
             "train_on_batch": lambda: model.train_on_batch(x[:4], y[:4]),
             "test_on_batch": lambda: model.test_on_batch(x[:4], y[:4])}
    during = DuringFit(calls[what])
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[during])
    assert isinstance(during.raised, RuntimeError)
    assert f"model {model.name!r} is running fit in another thread: {what} cannot run" \
        in str(during.raised)
    assert len(history.epoch) == 1  # the fit itself went on
    assert call_from_another_thread(calls[what]) is None  # and, once over, the model is free


def test_predict_on_a_stateful_model_during_a_fit_is_a_runtime_error():
    model = make_model("sequential", stateful=True)
    x, y = data()
    during = DuringFit(lambda: model.predict(x[:8], verbose=0, batch_size=8))
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[during])
    assert isinstance(during.raised, RuntimeError)
    assert "is running fit in another thread: predict cannot run" in str(during.raised)


def test_fit_on_a_stateful_model_during_its_predict_is_a_runtime_error():
    model = make_model("sequential", stateful=True)
    x, y = data()
    seen = []

    class FitDuringPredict(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            if batch == 0:
                seen.append(call_from_another_thread(
                    lambda: model.fit(x, y, epochs=1, batch_size=8, verbose=0)))

    model.predict(x, verbose=0, batch_size=8, callbacks=[FitDuringPredict()])
    assert isinstance(seen[0], RuntimeError)
    assert "is running predict in another thread: fit cannot run" in str(seen[0])


def test_the_fitting_thread_itself_may_evaluate_predict_and_save_from_a_callback(tmp_path):
    model = make_model("functional")
    x, y = data()
    done = []

    class Inside(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                done.append(model.evaluate(x[:8], y[:8], verbose=0))
                done.append(model.predict(x[:8], verbose=0))
                model.save(tmp_path / "m.npz")

    model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_split=0.25,
              callbacks=[Inside()])
    assert len(done) == 2
    assert (tmp_path / "m.npz").exists()


def test_a_fit_that_fails_frees_the_model_for_other_threads():
    model = make_model("sequential")
    x, y = data()
    with pytest.raises(ValueError):
        model.fit(x, y[:3], epochs=1, verbose=0)
    assert call_from_another_thread(lambda: model.fit(x, y, epochs=1, verbose=0)) is None


def test_a_deep_copy_has_a_lock_of_its_own_and_predicts_the_same():
    model = make_model("functional")
    x, _ = data()
    twin = copy.deepcopy(model)
    assert twin.step_lock is not model.step_lock
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    with model.step_lock:  # the twin does not wait for the original's lock
        assert call_from_another_thread(lambda: twin.predict(x, verbose=0)) is None
