"""Tests for fastrnn.callbacks, driven by a tiny fake model and hand-written logs.

``drive`` plays the part of ``Model.fit``: it calls the hooks in fit's order, sets the
fake model's weights to the epoch number at each epoch's start (so restored weights
show which epoch they came from), and stops when ``model.stop_training`` is set.
"""
import io
import math
import re
import sys

import numpy as np
import pytest

from fastrnn.callbacks import (
    Callback, CallbackList, EarlyStopping, History, LambdaCallback, LearningRateScheduler, ModelCheckpoint,
    ProgbarLogger, ReduceLROnPlateau, TerminateOnNaN,
)
from fastrnn.optimizers import SGD


class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.saved = []
        self.optimizer = SGD(learning_rate=0.1)
        self.history = None

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]

    def save(self, path):
        self.saved.append(path)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def drive(callbacks, epoch_logs, model=None, steps=2, verbose=0, batch_losses=None):
    """Run the fit-order hooks over the given per-epoch logs; return (model, epochs run)."""
    model = model or FakeModel()
    cbs = CallbackList(callbacks, model=model,
                       params={"epochs": len(epoch_logs), "steps": steps, "verbose": verbose},
                       add_progbar=verbose)
    cbs.on_train_begin()
    epochs_run = 0
    for epoch, logs in enumerate(epoch_logs):
        model.weights = [np.full(2, float(epoch))]
        cbs.on_epoch_begin(epoch)
        for batch in range(steps):
            cbs.on_train_batch_begin(batch)
            loss = batch_losses[batch] if batch_losses else logs.get("loss", 0.0)
            cbs.on_train_batch_end(batch, {"loss": loss})
            if model.stop_training:
                break
        cbs.on_epoch_end(epoch, dict(logs))
        epochs_run += 1
        if model.stop_training:
            break
    cbs.on_train_end()
    return model, epochs_run


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


# ---------------------------------------------------------------------- EarlyStopping
def test_early_stopping_waits_patience_epochs_without_improvement():
    stopper = EarlyStopping(patience=2)
    _, epochs = drive([stopper], val_losses(1.0, 0.9, 0.95, 0.96, 0.5))
    assert epochs == 4 and stopper.stopped_epoch == 3


def test_early_stopping_with_zero_patience_stops_at_the_first_setback():
    _, epochs = drive([EarlyStopping()], val_losses(1.0, 1.1, 0.5))
    assert epochs == 2


def test_early_stopping_does_not_stop_while_improving():
    model, epochs = drive([EarlyStopping(patience=0)], val_losses(5, 4, 3, 2, 1))
    assert epochs == 5 and not model.stop_training


def test_early_stopping_min_delta_ignores_small_improvements():
    _, with_delta = drive([EarlyStopping(patience=1, min_delta=0.1)], val_losses(1.0, 0.95, 0.92, 0.90))
    _, without = drive([EarlyStopping(patience=1)], val_losses(1.0, 0.95, 0.92, 0.90))
    assert with_delta == 2 and without == 4


def test_early_stopping_auto_mode_maximises_accuracy():
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.58)]
    _, auto = drive([EarlyStopping(monitor="val_accuracy", patience=1)], logs)
    _, as_min = drive([EarlyStopping(monitor="val_accuracy", patience=1, mode="min")], logs)
    assert auto == 3 and as_min == 2


def test_early_stopping_restores_the_best_weights_at_the_end():
    model, epochs = drive([EarlyStopping(patience=2, restore_best_weights=True)], val_losses(1.0, 0.5, 0.7, 0.8))
    assert epochs == 4
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])  # epoch 1 was best


def test_early_stopping_without_restore_keeps_the_last_weights():
    model, _ = drive([EarlyStopping(patience=2)], val_losses(1.0, 0.5, 0.7, 0.8))
    np.testing.assert_array_equal(model.weights[0], [3.0, 3.0])


def test_early_stopping_baseline_must_be_beaten_to_reset_patience():
    _, with_baseline = drive([EarlyStopping(patience=2, baseline=0.5)], val_losses(0.9, 0.95, 0.96, 0.97))
    _, without = drive([EarlyStopping(patience=2)], val_losses(0.9, 0.95, 0.96, 0.97))
    assert with_baseline == 2 and without == 3


def test_early_stopping_ignores_epochs_before_start_from_epoch():
    _, late = drive([EarlyStopping(start_from_epoch=2)], val_losses(1, 2, 3, 4, 5))
    _, early = drive([EarlyStopping()], val_losses(1, 2, 3, 4, 5))
    assert late == 4 and early == 2


def test_early_stopping_can_be_reused_across_fits():
    stopper = EarlyStopping(patience=1)
    drive([stopper], val_losses(1.0, 2.0, 3.0))
    _, epochs = drive([stopper], val_losses(5.0, 4.0, 3.0))
    assert epochs == 3


def test_early_stopping_warns_and_continues_when_the_monitor_is_missing():
    with pytest.warns(RuntimeWarning, match="val_loss"):
        model, epochs = drive([EarlyStopping()], [{"loss": 1.0}, {"loss": 2.0}])
    assert epochs == 2 and not model.stop_training


def test_early_stopping_auto_mode_needs_a_known_direction():
    with pytest.raises(ValueError, match="mode='min'"):
        drive([EarlyStopping(monitor="val_f1")], [{"val_f1": 0.3}])


def test_early_stopping_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_verbose_says_when_it_stopped_and_restored(capsys):
    drive([EarlyStopping(patience=1, verbose=1, restore_best_weights=True)], val_losses(1.0, 2.0, 3.0))
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "best epoch: 1." in out


# ---------------------------------------------------------------------- ModelCheckpoint
def test_checkpoint_fills_the_filename_from_epoch_and_logs(tmp_path):
    pattern = str(tmp_path / "model-{epoch:02d}-{val_loss:.3f}.keras")
    model, _ = drive([ModelCheckpoint(pattern)], val_losses(0.5, 0.25))
    assert model.saved == [str(tmp_path / "model-01-0.500.keras"), str(tmp_path / "model-02-0.250.keras")]


def test_checkpoint_save_best_only_saves_on_improvement_only(tmp_path):
    model, _ = drive([ModelCheckpoint(str(tmp_path / "{epoch}.keras"), save_best_only=True)],
                     val_losses(1.0, 1.2, 0.8, 0.9))
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["1.keras", "3.keras"]


def test_checkpoint_save_best_only_maximises_accuracy(tmp_path):
    logs = [{"val_accuracy": a} for a in (0.5, 0.4, 0.7)]
    model, _ = drive([ModelCheckpoint(str(tmp_path / "{epoch}"), monitor="val_accuracy", save_best_only=True)], logs)
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["1", "3"]


def test_checkpoint_initial_value_threshold_must_be_beaten(tmp_path):
    model, _ = drive([ModelCheckpoint(str(tmp_path / "{epoch}"), save_best_only=True, initial_value_threshold=0.9)],
                     val_losses(1.0, 0.8))
    assert [p.rsplit("/", 1)[-1] for p in model.saved] == ["2"]


def test_checkpoint_creates_missing_folders(tmp_path):
    drive([ModelCheckpoint(str(tmp_path / "runs" / "a" / "{epoch}.keras"))], val_losses(1.0))
    assert (tmp_path / "runs" / "a").is_dir()


def test_checkpoint_names_a_filename_field_missing_from_the_logs(tmp_path):
    with pytest.raises(KeyError, match="val_accuracy"):
        drive([ModelCheckpoint(str(tmp_path / "{val_accuracy:.2f}"))], val_losses(1.0))


def test_checkpoint_verbose_reports_each_decision(tmp_path, capsys):
    drive([ModelCheckpoint(str(tmp_path / "m"), save_best_only=True, verbose=1)], val_losses(1.0, 2.0))
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 1.00000, saving model to" in out
    assert "Epoch 2: val_loss did not improve from 1.00000" in out


# ---------------------------------------------------------------------- TerminateOnNaN
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_terminate_on_nan_stops_at_a_non_finite_batch_loss(bad, capsys):
    model, epochs = drive([TerminateOnNaN()], val_losses(1.0, 1.0, 1.0), steps=3, batch_losses=[0.5, bad, 0.5])
    assert model.stop_training and epochs == 1
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_lets_finite_losses_through():
    model, epochs = drive([TerminateOnNaN()], val_losses(1.0, 1.0), batch_losses=[1e30, 0.0])
    assert not model.stop_training and epochs == 2


# ---------------------------------------------------------------------- History and CallbackList
def test_history_records_every_epochs_logs():
    model, _ = drive([], [{"loss": 0.5, "val_loss": 0.6}, {"loss": 0.25, "val_loss": 0.4}])
    history = model.history
    assert isinstance(history, History)
    assert history.history == {"loss": [0.5, 0.25], "val_loss": [0.6, 0.4]}
    assert history.epoch == [0, 1]
    assert history.params == {"epochs": 2, "steps": 2, "verbose": 0}
    assert history.model is model


def test_history_plot_hands_itself_to_fastrnn_plot(monkeypatch, tmp_path):
    import fastrnn.plot

    calls = []
    monkeypatch.setattr(fastrnn.plot, "plot_history", lambda history, path: calls.append((history, path)))
    model, _ = drive([], val_losses(1.0))
    model.history.plot(tmp_path / "curves.png")
    assert calls == [(model.history, tmp_path / "curves.png")]


def test_callback_list_adds_one_history_and_one_progbar():
    cbs = CallbackList([], params={"verbose": 1}, add_progbar=1)
    assert [type(cb) for cb in cbs] == [History, ProgbarLogger]
    mine = History()
    cbs = CallbackList([mine, ProgbarLogger()], add_progbar=1)
    assert len(cbs) == 2 and cbs.history is mine


def test_callback_list_without_verbose_adds_no_progbar():
    assert [type(cb) for cb in CallbackList([], params={"verbose": 0}, add_progbar=0)] == [History]


def test_callback_list_gives_params_and_model_to_every_callback():
    class Probe(Callback):
        pass

    model, probe = FakeModel(), Probe()
    CallbackList([probe], model=model, params={"epochs": 3, "steps": 5, "verbose": 0})
    assert probe.model is model and probe.params == {"epochs": 3, "steps": 5, "verbose": 0}


def test_callback_list_turns_numpy_scalars_in_logs_into_floats():
    seen = []
    cbs = CallbackList([LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs))], model=FakeModel())
    cbs.on_epoch_end(0, {"loss": np.float32(0.5), "acc": np.array(0.25)})
    assert seen == [{"loss": 0.5, "acc": 0.25}]
    assert all(type(v) is float for v in seen[0].values())


def test_callback_list_rejects_non_callbacks():
    with pytest.raises(TypeError, match=r"callbacks\[0\]"):
        CallbackList([lambda: None])


class Recorder(Callback):
    """A user callback overriding every hook, recording (hook, index) pairs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None): self.calls.append(("train_begin",))
    def on_train_end(self, logs=None): self.calls.append(("train_end",))
    def on_epoch_begin(self, epoch, logs=None): self.calls.append(("epoch_begin", epoch))
    def on_epoch_end(self, epoch, logs=None): self.calls.append(("epoch_end", epoch))
    def on_train_batch_begin(self, batch, logs=None): self.calls.append(("batch_begin", batch))
    def on_train_batch_end(self, batch, logs=None): self.calls.append(("batch_end", batch))
    def on_test_begin(self, logs=None): self.calls.append(("test_begin",))
    def on_test_end(self, logs=None): self.calls.append(("test_end",))
    def on_test_batch_begin(self, batch, logs=None): self.calls.append(("test_batch_begin", batch))
    def on_test_batch_end(self, batch, logs=None): self.calls.append(("test_batch_end", batch))
    def on_predict_begin(self, logs=None): self.calls.append(("predict_begin",))
    def on_predict_end(self, logs=None): self.calls.append(("predict_end",))
    def on_predict_batch_begin(self, batch, logs=None): self.calls.append(("predict_batch_begin", batch))
    def on_predict_batch_end(self, batch, logs=None): self.calls.append(("predict_batch_end", batch))


def test_a_user_subclass_receives_every_hook_in_order():
    recorder = Recorder()
    cbs = CallbackList([recorder], model=FakeModel(), params={"epochs": 1, "steps": 2, "verbose": 0})
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for b in range(2):
        cbs.on_train_batch_begin(b)
        cbs.on_train_batch_end(b, {"loss": 1.0})
    cbs.on_test_begin()
    cbs.on_test_batch_begin(0)
    cbs.on_test_batch_end(0, {"loss": 1.0})
    cbs.on_test_end({"loss": 1.0})
    cbs.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    cbs.on_train_end()
    cbs.on_predict_begin()
    cbs.on_predict_batch_begin(0)
    cbs.on_predict_batch_end(0)
    cbs.on_predict_end()
    assert recorder.calls == [
        ("train_begin",), ("epoch_begin", 0),
        ("batch_begin", 0), ("batch_end", 0), ("batch_begin", 1), ("batch_end", 1),
        ("test_begin",), ("test_batch_begin", 0), ("test_batch_end", 0), ("test_end",),
        ("epoch_end", 0), ("train_end",),
        ("predict_begin",), ("predict_batch_begin", 0), ("predict_batch_end", 0), ("predict_end",),
    ]


def test_overriding_the_older_batch_hook_names_still_sees_training_batches():
    class OldStyle(Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_batch_end(self, batch, logs=None):
            self.ends.append(batch)

    old = OldStyle()
    drive([old], val_losses(1.0, 1.0), steps=3)
    assert old.ends == [0, 1, 2, 0, 1, 2]


def test_lambda_callback_calls_the_given_functions():
    epochs = []
    drive([LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append((epoch, logs["val_loss"])))],
          val_losses(0.3, 0.2))
    assert epochs == [(0, 0.3), (1, 0.2)]


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(ValueError, match="on_epoch_finish"):
        LambdaCallback(on_epoch_finish=print)


# ---------------------------------------------------------------------- learning-rate callbacks
def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    model, _ = drive([LearningRateScheduler(lambda epoch, lr: lr * 0.5)], val_losses(1, 1, 1))
    assert model.optimizer.learning_rate == pytest.approx(0.1 * 0.5 ** 3, rel=1e-15)
    assert model.history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125], rel=1e-15)


def test_learning_rate_scheduler_accepts_a_one_argument_schedule():
    model, _ = drive([LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))], val_losses(1, 1))
    assert model.optimizer.learning_rate == 0.5


def test_reduce_lr_on_plateau_reduces_after_patience_down_to_min_lr():
    reducer = ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    model, _ = drive([reducer], val_losses(*[1.0] * 7))
    assert model.history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_reduce_lr_on_plateau_cooldown_pauses_the_count():
    cooling, _ = drive([ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)], val_losses(*[1.0] * 6))
    eager, _ = drive([ReduceLROnPlateau(factor=0.5, patience=1)], val_losses(*[1.0] * 6))
    # Reduced at epoch 1; the cooldown counts down over epochs 2 and 3, and counting resumes in epoch 3.
    assert cooling.history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert eager.history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625])


def test_reduce_lr_on_plateau_rejects_a_factor_of_one_or_more():
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


# ---------------------------------------------------------------------- ProgbarLogger
LOGS = [{"loss": 0.3, "accuracy": 0.6, "val_loss": 0.2}] * 2
FINAL = r"3/3 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: 0\.3000 - accuracy: 0\.6000 - val_loss: 0\.2000"


def test_progbar_verbose_1_on_a_terminal_redraws_one_line_per_epoch():
    out = FakeTerminal()
    drive([ProgbarLogger(stream=out, interval=0)], LOGS, steps=3, verbose=1, batch_losses=[1.0, 0.5, 0.25])
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    for line in (lines[1], lines[3]):
        frames = line.split("\r")[1:]
        assert len(frames) == 4  # three batches, then the finished line
        assert frames[0].startswith("1/3 [=========>....................] - ETA: ")
        assert frames[0].rstrip().endswith("loss: 1.0000")
        assert re.fullmatch(FINAL + r" *", frames[-1])


def test_progbar_verbose_1_off_a_terminal_prints_only_finished_lines():
    out = io.StringIO()
    drive([ProgbarLogger(stream=out, interval=0)], LOGS, steps=3, verbose=1)
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(FINAL, lines[1]) and re.fullmatch(FINAL, lines[3])


def test_progbar_verbose_2_prints_one_line_per_epoch():
    out = FakeTerminal()
    drive([ProgbarLogger(stream=out, interval=0)], LOGS, steps=3, verbose=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    for epoch, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"Epoch {epoch}/2 - 3/3 - \d+s - \d+(us|ms|s)/step - loss: 0\.3000 - "
                            r"accuracy: 0\.6000 - val_loss: 0\.2000", line)


def test_progbar_writes_to_stdout_by_default(capsys):
    drive([], LOGS[:1], steps=3, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n") and re.search(FINAL, out)


def test_progbar_small_values_use_scientific_notation(capsys):
    drive([], [{"loss": 2.5e-5}], steps=1, verbose=2)
    assert "loss: 2.5000e-05" in capsys.readouterr().out


def test_progbar_with_unknown_steps_counts_batches():
    out = FakeTerminal()
    logger = ProgbarLogger(stream=out, interval=0)
    cbs = CallbackList([logger], model=FakeModel(), params={"epochs": 1, "steps": None, "verbose": 1})
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    for b in range(2):
        cbs.on_train_batch_end(b, {"loss": 0.5})
    cbs.on_epoch_end(0, {"loss": 0.5})
    text = out.getvalue()
    assert "\r2/Unknown - loss: 0.5000" in text
    assert re.search(r"2/2 \[={30}\] - \d+s", text)


def test_progbar_shows_evaluate_progress_outside_fit():
    out = io.StringIO()
    logger = ProgbarLogger(stream=out, interval=0)
    cbs = CallbackList([logger], model=FakeModel(), params={"steps": 2, "verbose": 1}, add_history=False)
    cbs.on_test_begin()
    for b in range(2):
        cbs.on_test_batch_end(b, {"loss": 0.5})
    cbs.on_test_end({"loss": 0.5})
    assert re.fullmatch(r"2/2 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: 0\.5000\n", out.getvalue())


def test_messages_during_a_live_bar_start_on_a_new_line(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    drive([TerminateOnNaN()], [{"loss": 1.0}], steps=2, verbose=1, batch_losses=[1.0, math.nan])
    text = terminal.getvalue()
    assert "loss: 1.0000\nBatch 1: Invalid loss, terminating training\n" in text
