"""Tests for fastrnn.metrics: which accuracy is picked, and how batches are accumulated."""
import json

import numpy as np
import pytest

from fastrnn import losses, metrics
from fastrnn.metrics import (
    BinaryAccuracy, CategoricalAccuracy, Mean, MeanAbsoluteError, MeanSquaredError, SparseCategoricalAccuracy,
)


# ---------------------------------------------------------------------- choosing the accuracy
@pytest.mark.parametrize("loss, expected", [
    (losses.BinaryCrossentropy(), BinaryAccuracy),
    (losses.CategoricalCrossentropy(), CategoricalAccuracy),
    (losses.SparseCategoricalCrossentropy(from_logits=True), SparseCategoricalAccuracy),
    ("binary_crossentropy", BinaryAccuracy),
])
def test_accuracy_is_chosen_by_a_crossentropy_loss(loss, expected):
    assert type(metrics.get("accuracy", loss=loss)) is expected


def test_the_loss_wins_over_the_shapes():
    # Shapes alone would say "binary" (last axis 1); a sparse loss says sparse.
    m = metrics.get("accuracy", loss="sparse_categorical_crossentropy",
                    y_true=np.zeros((4, 1)), y_pred=np.zeros((4, 1)))
    assert type(m) is SparseCategoricalAccuracy


@pytest.mark.parametrize("true_shape, pred_shape, expected", [
    ((8, 1), (8, 1), BinaryAccuracy),
    ((8,), (8, 1), BinaryAccuracy),
    ((8,), (8, 5), SparseCategoricalAccuracy),
    ((8, 1), (8, 5), SparseCategoricalAccuracy),
    ((8, 10), (8, 10, 5), SparseCategoricalAccuracy),
    ((8, 5), (8, 5), CategoricalAccuracy),
    ((8, 10, 5), (8, 10, 5), CategoricalAccuracy),
])
def test_without_a_crossentropy_the_accuracy_is_chosen_by_shapes(true_shape, pred_shape, expected):
    m = metrics.get("accuracy", loss=losses.MeanSquaredError(), y_true=np.zeros(true_shape),
                    y_pred=np.zeros(pred_shape))
    assert type(m) is expected


def test_accuracy_without_loss_or_data_is_a_value_error():
    with pytest.raises(ValueError, match="y_true and y_pred"):
        metrics.get("accuracy")


@pytest.mark.parametrize("name", ["accuracy", "acc", "mae", "mean_squared_error", "binary_accuracy"])
def test_the_metric_is_reported_under_the_name_the_user_gave(name):
    assert metrics.get(name, loss="binary_crossentropy").name == name


def test_binary_accuracy_for_a_logits_loss_thresholds_at_zero():
    m = metrics.get("accuracy", loss=losses.BinaryCrossentropy(from_logits=True))
    m.update([[1.0], [0.0], [1.0]], [[0.2], [-0.3], [-0.1]])  # logits: right, right, wrong
    assert m.result() == pytest.approx(2 / 3, rel=1e-15)


# ---------------------------------------------------------------------- per-sample scores
def test_binary_accuracy_compares_thresholded_predictions():
    m = BinaryAccuracy()
    m.update([[1], [1], [0], [0]], [[0.98], [0.4], [0.0], [0.6]])
    assert m.result() == 0.5


def test_binary_accuracy_threshold_is_configurable():
    m = BinaryAccuracy(threshold=0.9)
    m.update([[1], [0]], [[0.95], [0.85]])
    assert m.result() == 1.0


def test_categorical_accuracy_compares_argmaxes():
    m = CategoricalAccuracy()
    m.update([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0.0]])
    assert m.result() == 0.5


def test_sparse_categorical_accuracy_accepts_labels_with_a_trailing_axis():
    m = SparseCategoricalAccuracy()
    m.update([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]])
    assert m.result() == 0.5


def test_mean_absolute_and_squared_error_metrics():
    y_true, y_pred = np.array([[0.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 2.0]])
    mae, mse = MeanAbsoluteError(), MeanSquaredError()
    mae.update(y_true, y_pred)
    mse.update(y_true, y_pred)
    assert mae.result() == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert mse.result() == pytest.approx((1 + 0 + 4 + 0) / 4)


# ---------------------------------------------------------------------- accumulation
def test_unequal_batches_count_in_proportion_to_their_samples():
    m = SparseCategoricalAccuracy()
    m.update([0, 0], [[1.0, 0.0], [1.0, 0.0]])  # 2 of 2 right
    m.update([1, 1, 1, 1, 1, 1], [[1.0, 0.0]] * 6)  # 0 of 6 right
    assert m.result() == pytest.approx(2 / 8, rel=1e-15)  # not the mean of batch means (0.5)


def test_sample_weighted_accumulation_over_batches_of_unequal_size():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=11)
    scores = rng.normal(size=(11, 3))
    weights = rng.uniform(0.0, 2.0, size=11)
    correct = (np.argmax(scores, axis=1) == labels).astype(float)
    expected = np.sum(weights * correct) / np.sum(weights)

    m = SparseCategoricalAccuracy()
    for lo, hi in [(0, 3), (3, 4), (4, 11)]:
        m.update(labels[lo:hi], scores[lo:hi], sample_weight=weights[lo:hi])
    assert m.result() == pytest.approx(expected, rel=1e-14)


def test_sequence_scores_average_over_time_within_each_sample():
    # (B, T) scores: unweighted, every step counts once; weighted per sample, a sample's steps share its weight.
    y_true = np.array([[1, 1, 1, 1], [0, 0, 0, 0]])
    y_pred = np.zeros((2, 4, 2))
    y_pred[0, :3, 1] = 1.0  # sample 0: 3 of 4 steps right
    y_pred[1, :, 1] = 1.0   # sample 1: 0 of 4 steps right
    m = SparseCategoricalAccuracy()
    m.update(y_true, y_pred)
    assert m.result() == pytest.approx(3 / 8)
    m.reset()
    m.update(y_true, y_pred, sample_weight=[3.0, 1.0])
    assert m.result() == pytest.approx((3.0 * 0.75 + 1.0 * 0.0) / 4.0)


def test_per_step_sample_weights_weight_each_step():
    y_true = np.array([[1, 1], [0, 0]])
    y_pred = np.array([[[0, 1], [1, 0]], [[1, 0], [1, 0]]], dtype=float)  # right, wrong / right, right
    weights = np.array([[1.0, 3.0], [0.0, 0.0]])
    m = SparseCategoricalAccuracy()
    m.update(y_true, y_pred, sample_weight=weights)
    assert m.result() == pytest.approx(1.0 / 4.0)


def test_result_is_zero_before_any_update_and_after_reset():
    m = MeanAbsoluteError()
    assert m.result() == 0.0
    m.update([[1.0]], [[3.0]])
    assert m.result() == 2.0
    m.reset()
    assert m.result() == 0.0


def test_mean_weights_scalar_values_by_their_sample_weight():
    # How an epoch loss is tracked: each batch's loss weighted by the batch size.
    m = Mean(name="loss")
    m.update(1.0, sample_weight=32)
    m.update(4.0, sample_weight=8)
    assert m.result() == pytest.approx((32 * 1.0 + 8 * 4.0) / 40, rel=1e-15)


def test_keras_method_names_also_work():
    m = BinaryAccuracy()
    m.update_state([[1.0]], [[0.9]])
    assert m.result() == 1.0
    m.reset_state()
    assert m.result() == 0.0


def test_sample_weight_of_the_wrong_shape_is_a_value_error():
    with pytest.raises(ValueError, match="sample_weight"):
        MeanAbsoluteError().update(np.zeros((3, 1)), np.zeros((3, 1)), sample_weight=[1.0, 2.0])


# ---------------------------------------------------------------------- lookup
def test_get_wraps_a_user_function_under_its_name():
    def within_one(y_true, y_pred):
        return (np.abs(np.asarray(y_true) - np.asarray(y_pred)) <= 1).mean(axis=-1)

    m = metrics.get(within_one)
    m.update([[0.0], [0.0]], [[0.5], [3.0]])
    assert m.name == "within_one" and m.result() == 0.5


def test_get_returns_metric_instances_as_they_are():
    m = CategoricalAccuracy(name="cat")
    assert metrics.get(m) is m


def test_get_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="valid names"):
        metrics.get("f1")


def test_serialize_round_trips_through_json():
    m = BinaryAccuracy(name="acc", threshold=0.3)
    restored = metrics.deserialize(json.loads(json.dumps(metrics.serialize(m))))
    assert type(restored) is BinaryAccuracy and restored.name == "acc" and restored.threshold == 0.3


@pytest.mark.parametrize("cls", [Mean, metrics.Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                 SparseCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError])
def test_every_built_in_metric_saves_its_name_and_no_more_but_binary_accuracy_its_threshold(cls):
    m = cls(name="kept")
    extra = {"threshold": 0.5} if cls is BinaryAccuracy else {}
    assert m.get_config() == {"name": "kept", **extra}
    restored = metrics.deserialize(json.loads(json.dumps(metrics.serialize(m))))
    assert type(restored) is cls and restored.get_config() == m.get_config()


@pytest.mark.parametrize("name, direction", [
    ("loss", "down"), ("val_loss", "down"), ("accuracy", "up"), ("val_acc", "up"), ("mae", "down"),
    ("val_sparse_categorical_accuracy", "up"), ("val_mean_squared_error", "down"), ("learning_rate", None),
])
def test_direction_of_a_logged_quantity(name, direction):
    assert metrics.direction_of(name) == direction
