"""Tests for fastrnn.losses: values against direct formulas, gradients against finite differences."""
import json
import math

import numpy as np
import pytest

from fastrnn import losses
from fastrnn.losses import (
    BinaryCrossentropy, CategoricalCrossentropy, Loss, MeanAbsoluteError, MeanSquaredError,
    SparseCategoricalCrossentropy,
)

VALUE_RTOL = 1e-12
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-9  # central differences, h = 1e-6, float64


def rng(seed=0):
    return np.random.default_rng(seed)


def probabilities(shape, seed=0):
    """Rows that sum to 1, comfortably inside the clipping range."""
    x = rng(seed).uniform(0.1, 1.0, size=shape)
    return x / x.sum(axis=-1, keepdims=True)


def one_hot(labels, n):
    return np.eye(n)[labels]


def numerical_gradient(f, x, h=1e-6):
    """Central differences of the scalar f at x, entry by entry."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f(x)
        x[idx] = old - h
        down = f(x)
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def assert_gradient_matches_finite_differences(loss, y_true, y_pred, **kwargs):
    y_pred = np.array(y_pred, dtype=np.float64)
    analytic = loss.gradient(y_true, y_pred, **kwargs)
    numeric = numerical_gradient(lambda p: loss(y_true, p, **kwargs), y_pred)
    assert analytic.shape == y_pred.shape
    np.testing.assert_allclose(analytic, numeric, rtol=GRAD_RTOL, atol=GRAD_ATOL)


# ---------------------------------------------------------------------- values
def test_mean_squared_error_value_is_the_mean_of_squares():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[1.5, 2.0], [2.0, 6.0]])
    assert MeanSquaredError()(y_true, y_pred) == pytest.approx((0.25 + 0 + 1 + 4) / 4, rel=VALUE_RTOL)


def test_mean_absolute_error_value_is_the_mean_of_absolute_differences():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.array([[1.5, 2.0], [2.0, 6.0]])
    assert MeanAbsoluteError()(y_true, y_pred) == pytest.approx((0.5 + 0 + 1 + 2) / 4, rel=VALUE_RTOL)


def test_binary_crossentropy_value_on_probabilities():
    y_true = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    y_pred = np.array([[0.9, 0.2, 0.6], [0.3, 0.1, 0.8]])
    terms = [-math.log(0.9), -math.log(0.8), -math.log(0.6), -math.log(0.7), -math.log(0.9), -math.log(0.8)]
    assert BinaryCrossentropy()(y_true, y_pred) == pytest.approx(sum(terms) / 6, rel=VALUE_RTOL)


def test_binary_crossentropy_from_logits_equals_it_on_sigmoid_probabilities():
    logits = rng(1).normal(size=(4, 3)) * 3
    y_true = rng(2).uniform(size=(4, 3))
    sigmoid = 1 / (1 + np.exp(-logits))
    direct = -np.mean(y_true * np.log(sigmoid) + (1 - y_true) * np.log(1 - sigmoid))
    assert BinaryCrossentropy(from_logits=True)(y_true, logits) == pytest.approx(direct, rel=1e-12)


def test_categorical_crossentropy_value_is_minus_log_of_the_true_class():
    y_pred = np.array([[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]])
    y_true = one_hot([2, 1], 3)
    expected = -(math.log(0.5) + math.log(0.8)) / 2
    assert CategoricalCrossentropy()(y_true, y_pred) == pytest.approx(expected, rel=VALUE_RTOL)


def test_categorical_crossentropy_rescales_probabilities_to_sum_to_one():
    y_pred = np.array([[0.4, 0.6, 1.0]])  # sums to 2, as Keras: divided by 2 first
    assert CategoricalCrossentropy()(one_hot([2], 3), y_pred) == pytest.approx(-math.log(0.5), rel=VALUE_RTOL)


def test_categorical_crossentropy_from_logits_is_log_softmax():
    logits = rng(3).normal(size=(5, 4))
    y_true = probabilities((5, 4), seed=4)  # soft targets
    log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    direct = -np.mean(np.sum(y_true * log_softmax, axis=-1))
    assert CategoricalCrossentropy(from_logits=True)(y_true, logits) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_equals_categorical_on_one_hot(from_logits):
    labels = np.array([0, 3, 1, 2])
    y_pred = rng(5).normal(size=(4, 4)) if from_logits else probabilities((4, 4), seed=5)
    sparse = SparseCategoricalCrossentropy(from_logits=from_logits)(labels, y_pred)
    dense = CategoricalCrossentropy(from_logits=from_logits)(one_hot(labels, 4), y_pred)
    assert sparse == pytest.approx(dense, rel=1e-14)


def test_sparse_labels_may_carry_a_trailing_axis_of_one():
    y_pred = probabilities((3, 4))
    loss = SparseCategoricalCrossentropy()
    assert loss([[1], [0], [3]], y_pred) == pytest.approx(loss([1, 0, 3], y_pred), rel=1e-15)


def test_sequence_inputs_average_over_batch_and_time():
    # (B, T, C): the loss is the mean over all B*T positions.
    y_pred = probabilities((2, 5, 3), seed=6)
    labels = rng(7).integers(0, 3, size=(2, 5))
    per_step = [-math.log(y_pred[b, t, labels[b, t]]) for b in range(2) for t in range(5)]
    assert SparseCategoricalCrossentropy()(labels, y_pred) == pytest.approx(np.mean(per_step), rel=1e-12)
    assert CategoricalCrossentropy()(one_hot(labels, 3), y_pred) == pytest.approx(np.mean(per_step), rel=1e-12)


def test_sequence_regression_mse_is_the_mean_over_all_entries():
    y_true, y_pred = rng(8).normal(size=(3, 4, 2)), rng(9).normal(size=(3, 4, 2))
    assert MeanSquaredError()(y_true, y_pred) == pytest.approx(np.mean((y_true - y_pred) ** 2), rel=1e-12)


def test_targets_without_the_trailing_axis_of_one_are_accepted():
    y_pred = np.array([[0.2], [0.7]])
    assert BinaryCrossentropy()([0.0, 1.0], y_pred) == pytest.approx(
        BinaryCrossentropy()([[0.0], [1.0]], y_pred), rel=1e-15)
    assert MeanSquaredError()([1.0, 2.0], y_pred) == pytest.approx((0.8 ** 2 + 1.3 ** 2) / 2, rel=1e-12)


def test_label_smoothing_moves_targets_towards_uniform():
    y_pred = np.array([[0.2, 0.3, 0.5]])
    smoothed = one_hot([2], 3) * 0.7 + 0.3 / 3
    expected = -np.sum(smoothed * np.log(y_pred))
    assert CategoricalCrossentropy(label_smoothing=0.3)(one_hot([2], 3), y_pred) == pytest.approx(expected)
    p = np.array([[0.8]])
    t = 1 * 0.8 + 0.5 * 0.2
    expected_binary = -(t * math.log(0.8) + (1 - t) * math.log(0.2))
    assert BinaryCrossentropy(label_smoothing=0.2)([[1.0]], p) == pytest.approx(expected_binary, rel=1e-12)


def test_module_functions_give_per_sample_values():
    y_true = one_hot([0, 1], 2)
    y_pred = np.array([[0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(losses.categorical_crossentropy(y_true, y_pred),
                               [-math.log(0.5), -math.log(0.75)], rtol=1e-14)
    np.testing.assert_allclose(losses.mse(y_true, y_pred), [0.25, 0.0625], rtol=1e-14)
    np.testing.assert_allclose(losses.mae(y_true, y_pred), [0.5, 0.25], rtol=1e-14)
    assert losses.sparse_categorical_crossentropy([0, 1], y_pred).shape == (2,)
    assert losses.binary_crossentropy(np.zeros((2, 3, 4)), np.full((2, 3, 4), 0.5)).shape == (2, 3)


def test_a_loss_value_is_a_python_float():
    assert type(MeanSquaredError()(np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32))) is float


# ---------------------------------------------------------------------- gradients
GRADIENT_CASES = [
    ("mse", MeanSquaredError(), lambda: rng(10).normal(size=(3, 4)), lambda: rng(11).normal(size=(3, 4))),
    ("mae", MeanAbsoluteError(), lambda: rng(12).normal(size=(3, 4)), lambda: rng(13).normal(size=(3, 4))),
    ("bce", BinaryCrossentropy(), lambda: rng(14).uniform(size=(3, 4)),
     lambda: rng(15).uniform(0.05, 0.95, size=(3, 4))),
    ("bce logits", BinaryCrossentropy(from_logits=True), lambda: rng(16).uniform(size=(3, 4)),
     lambda: rng(17).normal(size=(3, 4)) * 3),
    ("bce smoothing", BinaryCrossentropy(label_smoothing=0.1), lambda: (rng(18).uniform(size=(3, 2)) > 0.5) * 1.0,
     lambda: rng(19).uniform(0.05, 0.95, size=(3, 2))),
    ("cce", CategoricalCrossentropy(), lambda: probabilities((3, 4), seed=20),
     lambda: rng(21).uniform(0.1, 1.0, size=(3, 4))),  # not normalised: the rescaling is differentiated too
    ("cce logits", CategoricalCrossentropy(from_logits=True), lambda: probabilities((3, 4), seed=22),
     lambda: rng(23).normal(size=(3, 4)) * 3),
    ("cce smoothing logits", CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
     lambda: one_hot([0, 2, 1], 3), lambda: rng(24).normal(size=(3, 3))),
    ("scce", SparseCategoricalCrossentropy(), lambda: np.array([0, 3, 2]), lambda: probabilities((3, 4), seed=25)),
    ("scce logits", SparseCategoricalCrossentropy(from_logits=True), lambda: np.array([1, 0, 3]),
     lambda: rng(26).normal(size=(3, 4))),
    ("scce sequence", SparseCategoricalCrossentropy(from_logits=True), lambda: rng(27).integers(0, 3, (2, 4)),
     lambda: rng(28).normal(size=(2, 4, 3))),
    ("bce sequence", BinaryCrossentropy(from_logits=True), lambda: rng(29).uniform(size=(2, 4, 1)),
     lambda: rng(30).normal(size=(2, 4, 1))),
    ("mse sequence", MeanSquaredError(), lambda: rng(31).normal(size=(2, 3, 2)),
     lambda: rng(32).normal(size=(2, 3, 2))),
]


@pytest.mark.parametrize("label, loss, make_true, make_pred", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_gradient_matches_central_finite_differences(label, loss, make_true, make_pred):
    assert_gradient_matches_finite_differences(loss, make_true(), make_pred())


@pytest.mark.parametrize("label, loss, make_true, make_pred", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_gradient_with_sample_weights_matches_finite_differences(label, loss, make_true, make_pred):
    y_pred = make_pred()
    weights = rng(33).uniform(0.0, 2.0, size=y_pred.shape[0])
    assert_gradient_matches_finite_differences(loss, make_true(), y_pred, sample_weight=weights)


@pytest.mark.parametrize("reduction", ["sum", "mean_with_sample_weight"])
def test_gradient_under_other_reductions_matches_finite_differences(reduction):
    loss = CategoricalCrossentropy(from_logits=True, reduction=reduction)
    y_true, y_pred = one_hot([0, 2, 1], 3), rng(34).normal(size=(3, 3))
    assert_gradient_matches_finite_differences(loss, y_true, y_pred, sample_weight=[0.5, 1.0, 2.0])


def test_gradient_with_a_sequence_mask_matches_finite_differences():
    loss = SparseCategoricalCrossentropy(from_logits=True)
    labels, y_pred = rng(35).integers(0, 3, (2, 4)), rng(36).normal(size=(2, 4, 3))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool)
    assert_gradient_matches_finite_differences(loss, labels, y_pred, mask=mask)


def test_gradient_has_the_dtype_of_y_pred():
    y_pred = np.full((2, 3), 0.25, dtype=np.float32)
    for loss in (MeanSquaredError(), BinaryCrossentropy(), CategoricalCrossentropy(from_logits=True)):
        assert loss.gradient(np.zeros((2, 3)), y_pred).dtype == np.float32


def test_clipped_probabilities_pass_no_gradient_as_in_keras():
    # p = 0 with target 1 sits below the clip: the value is -log(1e-7), the gradient 0.
    loss = BinaryCrossentropy()
    assert loss([[1.0]], [[0.0]]) == pytest.approx(-math.log(1e-7), rel=1e-12)
    assert loss.gradient([[1.0]], [[0.0]])[0, 0] == 0.0


# ---------------------------------------------------------------------- extreme logits
@pytest.mark.parametrize("loss", [BinaryCrossentropy(from_logits=True), CategoricalCrossentropy(from_logits=True)],
                         ids=["binary", "categorical"])
def test_extreme_logits_give_finite_values_and_gradients(loss):
    logits = np.array([[1e4, -1e4], [-1e4, 1e4], [1e4, 1e4]])
    y_true = one_hot([1, 1, 0], 2)
    value = loss(y_true, logits)
    grad = loss.gradient(y_true, logits)
    assert math.isfinite(value)
    assert np.all(np.isfinite(grad))


def test_extreme_logits_give_the_exact_limits():
    # Wrong by 1e4 in logit space costs 1e4 (binary) or 2e4 (categorical, margin 2e4).
    assert BinaryCrossentropy(from_logits=True)([[0.0]], [[1e4]]) == pytest.approx(1e4, rel=1e-12)
    assert BinaryCrossentropy(from_logits=True)([[1.0]], [[1e4]]) == 0.0
    cce = CategoricalCrossentropy(from_logits=True)
    assert cce(one_hot([1], 2), [[1e4, -1e4]]) == pytest.approx(2e4, rel=1e-12)
    np.testing.assert_allclose(cce.gradient(one_hot([1], 2), [[1e4, -1e4]]), [[1.0, -1.0]], atol=1e-15)


def test_extreme_logits_for_sparse_labels_stay_finite():
    loss = SparseCategoricalCrossentropy(from_logits=True)
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    assert loss([1, 2], logits) == pytest.approx((2e4 + 0.0) / 2, rel=1e-12)
    assert np.all(np.isfinite(loss.gradient([1, 2], logits)))


# ---------------------------------------------------------------------- weights, masks, reductions
def test_sample_weight_scales_each_sample_and_divides_by_the_batch_size():
    y_true, y_pred = np.zeros((3, 2)), np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    weights = np.array([1.0, 0.0, 2.0])
    assert MeanSquaredError()(y_true, y_pred, sample_weight=weights) == pytest.approx((1 + 0 + 2 * 9) / 3)


def test_sample_weight_per_sample_applies_to_every_time_step():
    y_true, y_pred = np.zeros((2, 3, 1)), np.ones((2, 3, 1)) * np.array([1.0, 2.0])[:, None, None]
    loss = MeanSquaredError()(y_true, y_pred, sample_weight=[1.0, 3.0])
    assert loss == pytest.approx((3 * 1 * 1 + 3 * 3 * 4) / 6)


def test_mask_makes_the_mean_run_over_unmasked_steps_only():
    y_true, y_pred = np.zeros((1, 4, 1)), np.arange(1.0, 5.0).reshape(1, 4, 1)
    loss = MeanSquaredError()(y_true, y_pred, mask=[[1, 1, 0, 0]])
    assert loss == pytest.approx((1 + 4) / 2)


def test_ignore_class_skips_those_labels_in_values_and_gradient():
    y_pred = probabilities((1, 3, 2), seed=37)
    loss = SparseCategoricalCrossentropy(ignore_class=-1)
    value = loss([[0, -1, 1]], y_pred)
    expected = -(math.log(y_pred[0, 0, 0]) + math.log(y_pred[0, 2, 1])) / 2
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(loss.gradient([[0, -1, 1]], y_pred)[0, 1], [0.0, 0.0])


def test_sum_reduction_adds_instead_of_averaging():
    y_true, y_pred = np.zeros((2, 1)), np.array([[1.0], [2.0]])
    assert MeanSquaredError(reduction="sum")(y_true, y_pred) == pytest.approx(5.0)


def test_none_reduction_returns_weighted_per_sample_values_and_has_no_gradient():
    loss = MeanSquaredError(reduction="none")
    np.testing.assert_allclose(loss(np.zeros((2, 1)), [[1.0], [2.0]], sample_weight=[2.0, 1.0]), [2.0, 4.0])
    with pytest.raises(ValueError, match="none"):
        loss.gradient(np.zeros((2, 1)), [[1.0], [2.0]])


def test_unknown_reduction_is_a_value_error():
    with pytest.raises(ValueError, match="reduction"):
        MeanSquaredError(reduction="median")


# ---------------------------------------------------------------------- bad input
def test_mismatched_shapes_are_a_value_error():
    with pytest.raises(ValueError, match="shape"):
        MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 4)))


def test_sparse_labels_out_of_range_are_a_value_error():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        SparseCategoricalCrossentropy()([0, 3], probabilities((2, 3)))


def test_sparse_labels_must_be_whole_numbers():
    with pytest.raises(ValueError, match="whole"):
        SparseCategoricalCrossentropy()([0.5, 1.0], probabilities((2, 3)))


def test_sample_weight_of_the_wrong_shape_is_a_value_error():
    with pytest.raises(ValueError, match="sample_weight"):
        MeanSquaredError()(np.zeros((3, 2)), np.ones((3, 2)), sample_weight=[1.0, 2.0])


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="y_true"):
        MeanSquaredError()(np.array([["a", "b"]]), np.zeros((1, 2)))


# ---------------------------------------------------------------------- lookup and saving
@pytest.mark.parametrize("name, cls", [
    ("mse", MeanSquaredError), ("mean_squared_error", MeanSquaredError), ("MeanSquaredError", MeanSquaredError),
    ("mae", MeanAbsoluteError), ("mean_absolute_error", MeanAbsoluteError),
    ("binary_crossentropy", BinaryCrossentropy), ("BinaryCrossentropy", BinaryCrossentropy),
    ("categorical_crossentropy", CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", SparseCategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", SparseCategoricalCrossentropy),
])
def test_get_accepts_keras_spellings(name, cls):
    assert type(losses.get(name)) is cls


def test_get_accepts_this_modules_functions_and_instances():
    assert type(losses.get(losses.binary_crossentropy)) is BinaryCrossentropy
    assert type(losses.get(losses.mse)) is MeanSquaredError
    instance = CategoricalCrossentropy(from_logits=True)
    assert losses.get(instance) is instance


def test_get_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="valid names"):
        losses.get("hinge")


def test_get_plain_function_is_a_value_error_pointing_to_loss_subclasses():
    with pytest.raises(ValueError, match="subclass"):
        losses.get(lambda y_true, y_pred: 0.0)


@pytest.mark.parametrize("loss", [
    MeanSquaredError(), BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    CategoricalCrossentropy(label_smoothing=0.2, reduction="sum"),
    SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
])
def test_serialize_round_trips_through_json(loss):
    restored = losses.deserialize(json.loads(json.dumps(losses.serialize(loss))))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()


# ---------------------------------------------------------------------- user-defined losses
class ScaledSquaredError(Loss):
    """A user loss: per-sample sum of 3 * (p - t)**2, with its per-sample derivative."""

    def call(self, y_true, y_pred):
        return 3.0 * np.sum((y_pred - y_true) ** 2, axis=-1)

    def call_gradient(self, y_true, y_pred):
        return 6.0 * (y_pred - y_true)


def test_a_user_loss_with_call_and_call_gradient_gets_reduction_and_weights():
    loss = ScaledSquaredError(name="scaled")
    y_true, y_pred = np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]])
    assert loss(y_true, y_pred) == pytest.approx((3 + 6) / 2)
    assert_gradient_matches_finite_differences(loss, y_true, y_pred, sample_weight=[2.0, 0.5])
    assert losses.get(loss) is loss


def test_a_user_loss_without_a_gradient_says_what_to_implement():
    class ValueOnly(Loss):
        def call(self, y_true, y_pred):
            return np.sum(y_pred, axis=-1)

    with pytest.raises(NotImplementedError, match="call_gradient"):
        ValueOnly().gradient(np.zeros((1, 1)), np.zeros((1, 1)))


def test_a_user_loss_deserializes_with_custom_objects():
    config = losses.serialize(ScaledSquaredError(name="scaled"))
    restored = losses.deserialize(config, custom_objects={"ScaledSquaredError": ScaledSquaredError})
    assert isinstance(restored, ScaledSquaredError) and restored.name == "scaled"
