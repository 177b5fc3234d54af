"""Learning-rate schedules (fastrnn.optimizers.schedules) and optimizers driven by them.

Each schedule's values over a range of steps are compared with Keras 3's (which computes them
in float32: rtol 1e-6), and the formulas are checked on their own at a few points written out
here. An optimizer with a schedule steps with ``schedule(iterations)`` and keeps the schedule
through get_config and model saving; callbacks that set the rate refuse it, as in Keras.
"""
import math
import os

import numpy as np
import pytest

from fastrnn import callbacks, optimizers
from fastrnn.layers import Dense
from fastrnn.models import Sequential, load_model
from fastrnn.optimizers import SGD, Adam, schedules
from fastrnn.optimizers.schedules import (CosineDecay, CosineDecayRestarts, ExponentialDecay,
                                          InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay)

RTOL_FLOAT32 = 1e-6  # Keras evaluates the schedules in float32
STEPS = [0, 1, 2, 3, 5, 7, 10, 13, 20, 31, 50, 77, 100, 150, 299, 1000]

CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[5, 20, 100], values=[1.0, 0.5, 0.1, 0.01])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=50)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01,
                             power=0.5, cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=6, decay_rate=2.0, staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=100, alpha=0.2)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=120, warmup_target=0.5, warmup_steps=30,
                         alpha=0.1)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=9)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=11, t_mul=1.0, m_mul=0.8,
                                 alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=6, t_mul=1.5, m_mul=0.9)),
]


# Keras turns torch tensors into arrays in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name, kwargs", CASES)
def test_schedule_values_match_keras_over_steps(keras, name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    expected = [float(theirs(step)) for step in STEPS]
    actual = [ours(step) for step in STEPS]
    # atol: float32 cancellation where a cosine nears its floor (1e-7 of the rates' scale)
    np.testing.assert_allclose(actual, expected, rtol=RTOL_FLOAT32, atol=1e-8)


@pytest.mark.parametrize("name, kwargs", CASES)
def test_config_round_trips_and_equals_keras_config(keras, name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    twin = schedules.deserialize(schedules.serialize(ours))
    assert type(twin) is type(ours) and twin.get_config() == ours.get_config()
    assert [twin(s) for s in STEPS] == [ours(s) for s in STEPS]


def test_formulas_at_a_few_points():
    assert ExponentialDecay(0.1, 10, 0.5)(20) == pytest.approx(0.025, rel=1e-15)
    assert ExponentialDecay(0.1, 10, 0.5, staircase=True)(19) == pytest.approx(0.05, rel=1e-15)
    piecewise = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in (0, 10, 11, 20, 21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    assert PolynomialDecay(0.1, 10, end_learning_rate=0.0)(5) == pytest.approx(0.05, rel=1e-15)
    assert PolynomialDecay(0.1, 10, end_learning_rate=0.0)(50) == 0.0
    # Cycling: at step 15 the period is 20 steps long, three quarters of it to go.
    assert PolynomialDecay(0.1, 10, end_learning_rate=0.0, cycle=True)(15) == pytest.approx(0.025, rel=1e-15)
    assert InverseTimeDecay(1.0, 1, 0.5)(2) == pytest.approx(0.5, rel=1e-15)
    assert CosineDecay(1.0, 10)(5) == pytest.approx(0.5, rel=1e-15)
    warm = CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)
    assert [warm(s) for s in (0, 2, 4)] == pytest.approx([0.0, 0.5, 1.0], rel=1e-15)
    assert warm(9) == pytest.approx(0.5, rel=1e-15) and warm(1000) == pytest.approx(0.0, abs=1e-15)
    # Periods 10, 20, 40: step 10 restarts at the top, step 20 is halfway through the second.
    restarts = CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert restarts(10) == pytest.approx(0.5, rel=1e-12)
    assert restarts(20) == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: ExponentialDecay(0.1, 0, 0.9), "decay_steps"),
    (lambda: PolynomialDecay(0.1, -1), "decay_steps"),
    (lambda: CosineDecayRestarts(0.1, 0), "first_decay_steps"),
    (lambda: PiecewiseConstantDecay([1, 2], [1.0, 0.5]), "one more"),
    (lambda: PiecewiseConstantDecay([2, 1], [1.0, 0.5, 0.1]), "strictly increasing"),
    (lambda: PiecewiseConstantDecay([], [1.0]), "at least one"),
    (lambda: CosineDecay(0.1, 10, warmup_target=1.0, warmup_steps=-1), "warmup_steps"),
    (lambda: ExponentialDecay(math.nan, 10, 0.9), "initial_learning_rate"),
])
def test_bad_arguments_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="decay_rate"):
        ExponentialDecay(0.1, 10, "fast")
    with pytest.raises(TypeError, match="step"):
        ExponentialDecay(0.1, 10, 0.9)("one")
    with pytest.raises(ValueError, match="step"):
        ExponentialDecay(0.1, 10, 0.9)(-1)
    with pytest.raises(ValueError, match="unknown learning rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


# ---------------------------------------------------------------------- optimizers with schedules
def test_optimizer_steps_with_the_schedule_at_each_iteration():
    schedule = PiecewiseConstantDecay([1, 2], [1.0, 0.5, 0.25])  # steps 0, 1: 1.0 and 1.0; then 0.5
    opt = SGD(learning_rate=schedule)
    p = np.zeros(1)
    seen = []
    for _ in range(4):
        seen.append(opt.learning_rate)
        opt.apply_gradients([p], [np.ones(1)])
    assert seen == [1.0, 1.0, 0.5, 0.25]
    assert p[0] == -(1.0 + 1.0 + 0.5 + 0.25)


def test_weight_decay_uses_the_scheduled_rate():
    opt = SGD(learning_rate=ExponentialDecay(0.5, 1, 0.5), weight_decay=0.1)
    p = np.ones(1)
    opt.apply_gradients([p], [np.zeros(1)])  # lr 0.5
    opt.apply_gradients([p], [np.zeros(1)])  # lr 0.25
    assert p[0] == pytest.approx((1 - 0.05) * (1 - 0.025), rel=1e-15)


def test_sgd_with_a_schedule_matches_keras_sgd_with_it(keras):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    grads = [rng.standard_normal((3, 2)).astype(np.float32) for _ in range(6)]
    kwargs = dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5)
    ours = SGD(learning_rate=ExponentialDecay(**kwargs), momentum=0.9)
    theirs = keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(**kwargs),
                                  momentum=0.9)
    p = w0.copy()
    v = keras.Variable(w0.copy())
    for g in grads:
        assert ours.learning_rate == pytest.approx(float(theirs.learning_rate), rel=RTOL_FLOAT32)
        ours.apply_gradients([p], [g])
        theirs.apply([keras.ops.convert_to_tensor(g)], [v])
    np.testing.assert_allclose(p, keras.ops.convert_to_numpy(v), rtol=1e-6, atol=1e-7)


def test_setting_the_rate_of_a_scheduled_optimizer_raises_type_error():
    opt = SGD(learning_rate=ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        opt.learning_rate = 0.01
    opt.learning_rate = CosineDecay(0.2, 10)  # a new schedule may replace it
    assert opt.learning_rate == pytest.approx(0.2)


def test_a_schedule_giving_a_bad_rate_stops_the_step_before_any_update():
    class Bad(schedules.LearningRateSchedule):
        def __call__(self, step):
            return -1.0

    opt = SGD(learning_rate=Bad())
    p = np.ones(2)
    with pytest.raises(ValueError, match="Bad at step 0"):
        opt.apply_gradients([p], [np.ones(2)])
    assert p.tolist() == [1.0, 1.0] and opt.iterations == 0


def test_a_function_of_no_arguments_is_a_learning_rate_but_cannot_be_saved():
    opt = SGD(learning_rate=lambda: 0.5)
    p = np.zeros(1)
    opt.apply_gradients([p], [np.ones(1)])
    assert p[0] == -0.5
    with pytest.raises(ValueError, match="cannot be saved"):
        opt.get_config()


def test_optimizer_config_holds_the_schedule_and_round_trips():
    opt = Adam(learning_rate=CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=10))
    config = optimizers.serialize(opt)
    assert config["config"]["learning_rate"]["class_name"] == "CosineDecay"
    twin = optimizers.deserialize(config)
    assert isinstance(twin._learning_rate, CosineDecay)
    assert twin._learning_rate.get_config() == opt._learning_rate.get_config()


def test_custom_schedules_load_through_custom_objects():
    class Halving(schedules.LearningRateSchedule):
        def __init__(self, start):
            self.start = start

        def __call__(self, step):
            return self.start / 2 ** step

        def get_config(self):
            return {"start": self.start}

    config = optimizers.serialize(SGD(learning_rate=Halving(1.0)))
    with pytest.raises(ValueError, match="custom_objects"):
        optimizers.deserialize(config)
    twin = optimizers.deserialize(config, custom_objects={"Halving": Halving})
    twin.iterations = 3
    assert twin.learning_rate == 0.125


def make_model(optimizer):
    model = Sequential([Dense(2, input_shape=(3,)), Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_a_saved_model_keeps_its_schedule_and_continues_where_it_stopped(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    model = make_model(SGD(learning_rate=ExponentialDecay(0.1, 2, 0.5)))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, shuffle=False)  # 8 steps
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert isinstance(loaded.optimizer._learning_rate, ExponentialDecay)
    assert loaded.optimizer.iterations == 8
    assert loaded.optimizer.learning_rate == pytest.approx(0.1 * 0.5 ** 4, rel=1e-15)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_logs_the_scheduled_rate_with_reduce_lr_on_plateau_until_it_would_reduce():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    model = make_model(SGD(learning_rate=ExponentialDecay(0.01, 1, 0.5)))
    # As in Keras: the rate is logged, and reducing it raises TypeError.
    watcher = callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9)
    with pytest.raises(TypeError, match="cannot be set"):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[watcher])


def test_learning_rate_scheduler_refuses_a_scheduled_optimizer_as_keras_does():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    model = make_model(SGD(learning_rate=ExponentialDecay(0.01, 1, 0.5)))
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr)
    with pytest.raises(TypeError, match="cannot be set"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[scheduler])


def test_keras_refuses_them_too(keras):
    opt = keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.01, 1, 0.5))
    with pytest.raises(TypeError):
        opt.learning_rate = 0.001
