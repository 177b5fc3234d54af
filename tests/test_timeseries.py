"""Time-series helpers: forecasting windows, the naive baseline, the time split, the scaler, errors."""
import math

import numpy as np
import pytest

from fastrnn.timeseries import (
    StandardScaler, forecast_errors, mae, mape, naive_forecast, rmse, time_split, windows,
)


def slow_windows(series, window, horizon):
    """The obvious construction: one window at a time, copying."""
    xs, ys = [], []
    for k in range(len(series) - window - horizon + 1):
        xs.append(series[k:k + window])
        ys.append(series[k + window:k + window + horizon])
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("window, horizon", [(1, 1), (3, 1), (5, 4), (9, 1)])
def test_windows_of_a_1d_series_match_the_slow_construction(window, horizon):
    series = np.random.default_rng(0).standard_normal(10)
    x, y = windows(series, window, horizon)
    x_slow, y_slow = slow_windows(series, window, horizon)
    assert x.shape == (len(x_slow), window, 1)
    np.testing.assert_array_equal(x[:, :, 0], x_slow)
    np.testing.assert_array_equal(y, y_slow)


def test_windows_of_a_2d_series_keep_the_variable_axis_last():
    series = np.arange(24.0).reshape(12, 2)  # (N=12, F=2)
    x, y = windows(series, window=4, horizon=3)
    x_slow, y_slow = slow_windows(series, 4, 3)
    assert x.shape == (6, 4, 2) and y.shape == (6, 3, 2)
    np.testing.assert_array_equal(x, x_slow)
    np.testing.assert_array_equal(y, y_slow)


def test_windows_are_views_of_the_series_not_copies():
    series = np.arange(1000.0)
    x, y = windows(series, window=50, horizon=2)
    assert np.shares_memory(x, series) and np.shares_memory(y, series)
    assert not x.flags.writeable


def test_a_series_shorter_than_window_plus_horizon_is_a_value_error():
    with pytest.raises(ValueError, match="window=4 and horizon=2 need at least 6"):
        windows(np.zeros(5), window=4, horizon=2)


def test_window_sizes_must_be_positive_ints():
    with pytest.raises(ValueError, match="window must be >= 1"):
        windows(np.zeros(5), window=0)
    with pytest.raises(TypeError, match="horizon must be an int"):
        windows(np.zeros(5), window=2, horizon=1.5)


def test_a_3d_or_text_series_is_refused():
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, F\)"):
        windows(np.zeros((4, 2, 2)), window=1)
    with pytest.raises(TypeError, match="numbers"):
        windows(np.array(["a", "b", "c"]), window=1)


def test_naive_forecast_repeats_the_last_input_value_for_each_window():
    series = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    x, y = windows(series, window=2, horizon=2)
    naive = naive_forecast(series, window=2, horizon=2)
    expected = np.array([[x[k, -1, 0]] * 2 for k in range(len(x))])
    assert naive.shape == y.shape
    np.testing.assert_array_equal(naive, expected)
    np.testing.assert_array_equal(naive[:, 0], [1.0, 4.0, 1.0])


def test_naive_forecast_of_a_2d_series_has_the_targets_shape():
    series = np.arange(20.0).reshape(10, 2)
    naive = naive_forecast(series, window=3, horizon=2)
    assert naive.shape == windows(series, 3, 2)[1].shape
    np.testing.assert_array_equal(naive[0], [[4.0, 5.0], [4.0, 5.0]])


def test_time_split_keeps_time_order_and_puts_the_test_part_last():
    series = np.arange(10)
    train, test = time_split(series, test_size=0.3)
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, [7, 8, 9])


def test_time_split_context_prepends_the_end_of_the_training_part():
    series = np.arange(10)
    train, test = time_split(series, test_size=3, context=2)
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, [5, 6, 7, 8, 9])


def test_test_windows_after_a_context_split_have_targets_only_in_the_test_part():
    series = np.arange(100.0)
    train, test = time_split(series, test_size=20, context=5)
    _, y_test = windows(test, window=5, horizon=1)
    assert y_test.min() == 80.0 and y_test.shape == (20, 1)
    _, y_train = windows(train, window=5, horizon=1)
    assert y_train.max() == 79.0


def test_time_split_refuses_sizes_that_leave_nothing_on_one_side():
    with pytest.raises(ValueError, match="test_size"):
        time_split(np.arange(10), test_size=10)
    with pytest.raises(ValueError, match="fraction"):
        time_split(np.arange(10), test_size=1.0)
    with pytest.raises(ValueError, match="context"):
        time_split(np.arange(10), test_size=2, context=9)
    with pytest.raises(TypeError, match="test_size"):
        time_split(np.arange(10), test_size="20%")


def test_scaler_uses_the_statistics_of_the_data_it_was_fitted_on_only():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    test = np.array([100.0, 200.0])
    scaler = StandardScaler().fit(train)
    assert scaler.mean_ == pytest.approx(2.5, abs=1e-15)
    assert scaler.scale_ == pytest.approx(math.sqrt(1.25), abs=1e-15)
    np.testing.assert_allclose(scaler.transform(test), (test - 2.5) / math.sqrt(1.25), rtol=1e-15)


def test_scaled_training_data_has_zero_mean_and_unit_variance_per_variable():
    rng = np.random.default_rng(1)
    train = rng.normal([5.0, -3.0], [2.0, 0.5], size=(200, 2))
    z = StandardScaler().fit_transform(train)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)


def test_inverse_transform_undoes_transform():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(30, 3))
    scaler = StandardScaler().fit(a[:20])
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(a)), a, rtol=1e-13, atol=1e-13)


def test_a_constant_variable_is_centred_but_not_divided_by_zero():
    z = StandardScaler().fit_transform(np.full((5, 1), 7.0))
    np.testing.assert_array_equal(z, 0.0)


def test_scaler_round_trips_through_a_json_dict():
    import json

    scaler = StandardScaler().fit(np.array([[1.0, 10.0], [3.0, 30.0]]))
    back = StandardScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    a = np.array([[2.0, 5.0]])
    np.testing.assert_array_equal(back.transform(a), scaler.transform(a))


def test_scaler_refuses_use_before_fit_and_data_of_another_width():
    with pytest.raises(ValueError, match="not fitted"):
        StandardScaler().transform(np.zeros(3))
    scaler = StandardScaler().fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"fitted on \(N, 2\) data"):
        scaler.transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        StandardScaler().fit(np.array([1.0, np.nan]))


def test_error_metrics_match_hand_computed_values():
    t = np.array([2.0, 4.0, -5.0])
    p = np.array([1.0, 6.0, -5.0])
    assert mae(t, p) == pytest.approx(1.0, rel=1e-15)  # (1 + 2 + 0) / 3
    assert rmse(t, p) == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    assert mape(t, p) == pytest.approx(100 * (0.5 + 0.5 + 0) / 3, rel=1e-15)


def test_mape_is_undefined_when_a_true_value_is_zero():
    with pytest.raises(ValueError, match="zeros"):
        mape([0.0, 1.0], [1.0, 1.0])
    errors = forecast_errors([0.0, 1.0], [1.0, 1.0])
    assert math.isnan(errors["mape"]) and errors["mae"] == 0.5


def test_error_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        mae(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        forecast_errors(np.zeros(3), np.zeros((3, 1)))
