"""Tests for fastrnn.optimizers (and fastrnn.utils's random seed).

Each optimizer is checked against its update rule written out here, step by step,
in plain NumPy; where PyTorch is installed, also against torch.optim on a quadratic
with hyperparameters for which the two libraries' formulas coincide.
"""
import json
import math
import warnings

import numpy as np
import pytest

from fastrnn import optimizers, utils
from fastrnn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

RTOL = 1e-12  # float64 trajectories of a few steps agree to rounding
N_STEPS = 6


def make_problem(seed=0):
    """Two float64 parameters of different shapes and N_STEPS gradients for each."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(N_STEPS)]
    return params, grads


def run_optimizer(opt, params, grads_per_step):
    params = [p.copy() for p in params]
    for grads in grads_per_step:
        opt.apply_gradients(params, grads)
    return params


# ---------------------------------------------------------------------- reference update rules
# Written per parameter, step by step, with every state variable spelled out.

def reference_sgd(p, gs, lr, momentum=0.0, nesterov=False):
    p, velocity = p.copy(), np.zeros_like(p)
    for g in gs:
        if momentum == 0:
            p = p - lr * g
            continue
        velocity = momentum * velocity - lr * g
        p = p + (momentum * velocity - lr * g if nesterov else velocity)
    return p


def reference_adam(p, gs, lr, beta_1, beta_2, epsilon, amsgrad=False, weight_decay=0.0):
    p, m, v, v_max = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for step, g in enumerate(gs, start=1):
        p = p - lr * weight_decay * p
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        v_max = np.maximum(v_max, v)
        v_used = v_max if amsgrad else v
        step_size = lr * math.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        p = p - step_size * m / (np.sqrt(v_used) + epsilon)
    return p


def reference_rmsprop(p, gs, lr, rho, momentum, epsilon, centered):
    p, v, mean_g, buf = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in gs:
        v = rho * v + (1 - rho) * g * g
        mean_g = rho * mean_g + (1 - rho) * g
        variance = v - mean_g ** 2 if centered else v
        increment = lr * g / np.sqrt(variance + epsilon)
        if momentum > 0:
            buf = momentum * buf + increment
            p = p - buf
        else:
            p = p - increment
    return p


def reference_adagrad(p, gs, lr, initial_accumulator_value, epsilon):
    p, acc = p.copy(), np.full_like(p, initial_accumulator_value)
    for g in gs:
        acc = acc + g * g
        p = p - lr * g / np.sqrt(acc + epsilon)
    return p


def reference_trajectory(rule, params, grads_per_step, **hyper):
    return [rule(p, [step[i] for step in grads_per_step], **hyper) for i, p in enumerate(params)]


CASES = [
    (lambda: SGD(learning_rate=0.1), reference_sgd, dict(lr=0.1)),
    (lambda: SGD(learning_rate=0.1, momentum=0.9), reference_sgd, dict(lr=0.1, momentum=0.9)),
    (lambda: SGD(learning_rate=0.1, momentum=0.8, nesterov=True), reference_sgd,
     dict(lr=0.1, momentum=0.8, nesterov=True)),
    (lambda: Adam(learning_rate=0.01), reference_adam, dict(lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    (lambda: Adam(learning_rate=0.02, beta_1=0.5, beta_2=0.7, epsilon=1e-3, amsgrad=True), reference_adam,
     dict(lr=0.02, beta_1=0.5, beta_2=0.7, epsilon=1e-3, amsgrad=True)),
    (lambda: AdamW(learning_rate=0.01, weight_decay=0.1), reference_adam,
     dict(lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.1)),
    (lambda: RMSprop(learning_rate=0.01), reference_rmsprop,
     dict(lr=0.01, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)),
    (lambda: RMSprop(learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=1e-4, centered=True), reference_rmsprop,
     dict(lr=0.01, rho=0.8, momentum=0.5, epsilon=1e-4, centered=True)),
    (lambda: Adagrad(learning_rate=0.05), reference_adagrad,
     dict(lr=0.05, initial_accumulator_value=0.1, epsilon=1e-7)),
    (lambda: Adagrad(learning_rate=0.05, initial_accumulator_value=0.5, epsilon=1e-3), reference_adagrad,
     dict(lr=0.05, initial_accumulator_value=0.5, epsilon=1e-3)),
]


@pytest.mark.parametrize("make, rule, hyper", CASES, ids=[f"{r.__name__}-{h}" for _, r, h in CASES])
def test_update_matches_the_written_out_rule_over_several_steps(make, rule, hyper):
    params, grads = make_problem()
    opt = make()
    got = run_optimizer(opt, params, grads)
    expected = reference_trajectory(rule, params, grads, **hyper)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=1e-14)
    assert opt.iterations == N_STEPS


def test_adam_first_step_moves_each_weight_by_about_the_learning_rate():
    # After one step m = (1-b1) g and v = (1-b2) g^2, so the step is lr * g / (|g| + eps / sqrt(1-b2)).
    p = np.array([1.0, 2.0, 3.0, 4.0])
    g = np.array([1.0, 6.0, -7.0, 2.0])
    Adam(learning_rate=0.5).apply_gradients([p], [g])
    expected = np.array([1.0, 2.0, 3.0, 4.0]) - 0.5 * g / (np.abs(g) + 1e-7 / math.sqrt(0.001))
    np.testing.assert_allclose(p, expected, rtol=1e-14)


def test_adamw_decays_weights_even_with_zero_gradient():
    p = np.array([2.0])
    AdamW(learning_rate=1.0, weight_decay=0.004).apply_gradients([p], [np.zeros(1)])
    np.testing.assert_allclose(p, [2.0 * (1 - 0.004)], rtol=1e-15)


def test_weight_decay_also_works_for_other_optimizers():
    p = np.array([3.0])
    SGD(learning_rate=0.5, weight_decay=0.1).apply_gradients([p], [np.array([1.0])])
    np.testing.assert_allclose(p, [3.0 - 0.5 * 0.1 * 3.0 - 0.5 * 1.0], rtol=1e-15)


# ---------------------------------------------------------------------- defaults
KERAS_DEFAULTS = {
    SGD: dict(learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD"),
    Adam: dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name="adam"),
    AdamW: dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                amsgrad=False, name="adamw"),
    RMSprop: dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name="rmsprop"),
    Adagrad: dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="adagrad"),
}


@pytest.mark.parametrize("cls", list(KERAS_DEFAULTS), ids=lambda c: c.__name__)
def test_defaults_are_keras_defaults(cls):
    opt = cls()
    for key, value in KERAS_DEFAULTS[cls].items():
        assert getattr(opt, key) == value, key
    assert opt.clipnorm is None and opt.clipvalue is None and opt.global_clipnorm is None
    assert opt.iterations == 0


# ---------------------------------------------------------------------- clipping
def sgd_step(grads, **clip):
    """With plain SGD and lr=1 the update is exactly minus the clipped gradient."""
    params = [np.zeros_like(np.asarray(g, dtype=float)) for g in grads]
    SGD(learning_rate=1.0, **clip).apply_gradients(params, [np.asarray(g, dtype=float) for g in grads])
    return [-p for p in params]


def test_clipvalue_clips_each_element():
    (clipped,) = sgd_step([[3.0, -0.2, -5.0]], clipvalue=1.0)
    np.testing.assert_array_equal(clipped, [1.0, -0.2, -1.0])


def test_clipnorm_rescales_each_tensor_to_the_norm():
    a, b = sgd_step([[3.0, 4.0], [0.3, 0.4]], clipnorm=1.0)
    np.testing.assert_allclose(a, [0.6, 0.8], rtol=1e-15)  # norm 5 -> 1
    np.testing.assert_allclose(b, [0.3, 0.4], rtol=1e-15)  # norm 0.5 stays


def test_global_clipnorm_rescales_all_tensors_together():
    a, b = sgd_step([[3.0, 0.0], [0.0, 4.0]], global_clipnorm=2.5)
    np.testing.assert_allclose(a, [1.5, 0.0], rtol=1e-15)  # global norm 5 -> 2.5: halved
    np.testing.assert_allclose(b, [0.0, 2.0], rtol=1e-15)


def test_global_clipnorm_leaves_small_gradients_alone():
    a, b = sgd_step([[0.3, 0.0], [0.0, 0.4]], global_clipnorm=1.0)
    np.testing.assert_array_equal(a, [0.3, 0.0])
    np.testing.assert_array_equal(b, [0.0, 0.4])


def test_clipvalue_is_applied_before_clipnorm():
    (clipped,) = sgd_step([[3.0, 4.0]], clipvalue=2.0, clipnorm=1.0)
    np.testing.assert_allclose(clipped, [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-15)


def test_clipnorm_and_global_clipnorm_together_are_rejected():
    with pytest.raises(ValueError, match="global_clipnorm"):
        SGD(clipnorm=1.0, global_clipnorm=1.0)


@pytest.mark.parametrize("key", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_non_positive_clip_thresholds_are_rejected(key):
    with pytest.raises(ValueError, match=key):
        Adam(**{key: 0.0})


# ---------------------------------------------------------------------- state
STATEFUL = [
    lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    lambda: Adam(learning_rate=0.01, amsgrad=True),
    lambda: AdamW(learning_rate=0.01, weight_decay=0.05),
    lambda: RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    lambda: Adagrad(learning_rate=0.1),
    lambda: SGD(learning_rate=0.1),
]


@pytest.mark.parametrize("make", STATEFUL, ids=lambda f: type(f()).__name__)
def test_set_state_round_trip_continues_identically(make):
    params, grads = make_problem(seed=1)
    first = make()
    params = run_optimizer(first, params, grads[:3])
    saved_state, saved_config = first.get_state(), json.loads(json.dumps(first.get_config()))
    continued = run_optimizer(first, params, grads[3:])

    resumed = optimizers.deserialize(saved_config)
    resumed.set_state(saved_state)
    assert resumed.iterations == 3
    for a, b in zip(run_optimizer(resumed, params, grads[3:]), continued):
        np.testing.assert_array_equal(a, b)


def test_get_state_starts_with_iterations_then_slots_by_kind():
    opt = Adam()
    params = [np.ones(2), np.ones((3, 1))]
    opt.apply_gradients(params, [np.ones(2), np.ones((3, 1))])
    state = opt.get_state()
    assert state[0].dtype == np.int64 and int(state[0]) == 1
    assert [s.shape for s in state[1:]] == [(2,), (3, 1), (2,), (3, 1)]  # momentums, then velocities


def test_get_state_returns_copies():
    opt = Adagrad()
    p = np.ones(2)
    opt.apply_gradients([p], [np.ones(2)])
    state = opt.get_state()
    state[1][:] = 123.0
    assert not np.any(opt.get_state()[1] == 123.0)


def test_set_state_rejects_wrong_shapes_and_counts():
    opt = Adam()
    opt.apply_gradients([np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match="shape"):
        opt.set_state([np.array(1), np.zeros(3), np.zeros(3)])
    with pytest.raises(ValueError, match="multiple"):
        opt.set_state([np.array(1), np.zeros(2)])
    with pytest.raises(ValueError, match="iterations"):
        opt.set_state([np.array(1.5), np.zeros(2), np.zeros(2)])


def test_set_state_on_a_fresh_optimizer_is_checked_at_the_first_step():
    opt = Adam()
    opt.set_state([np.array(4), np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([np.ones(3)], [np.ones(3)])


# ---------------------------------------------------------------------- config and lookup
@pytest.mark.parametrize("make", STATEFUL, ids=lambda f: type(f()).__name__)
def test_serialize_round_trips_through_json(make):
    opt = make()
    restored = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))
    assert type(restored) is type(opt)
    assert restored.get_config() == opt.get_config()


def test_get_config_names_the_class():
    assert RMSprop().get_config()["class_name"] == "RMSprop"


@pytest.mark.parametrize("name, cls", [("sgd", SGD), ("Adam", Adam), ("ADAMW", AdamW),
                                       ("rmsprop", RMSprop), ("adagrad", Adagrad)])
def test_get_by_name_is_case_insensitive_and_uses_defaults(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.get_config() == cls().get_config()


def test_get_returns_an_instance_as_is_and_builds_from_dicts():
    opt = Adam(learning_rate=0.3)
    assert optimizers.get(opt) is opt
    assert optimizers.get(optimizers.serialize(opt)).learning_rate == 0.3


def test_get_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="adagrad.*rmsprop|rmsprop.*adagrad"):
        optimizers.get("adadelta")


def test_get_rejects_other_types():
    with pytest.raises(TypeError):
        optimizers.get(3)


def test_deserialize_unknown_class_is_a_value_error():
    with pytest.raises(ValueError, match="Nadam"):
        optimizers.deserialize({"class_name": "Nadam", "config": {}})


# ---------------------------------------------------------------------- inputs and edge cases
def test_params_are_updated_in_place():
    p = np.ones(3)
    same = p
    SGD(learning_rate=0.5).apply_gradients([p], [np.ones(3)])
    assert same is p
    np.testing.assert_array_equal(p, [0.5, 0.5, 0.5])


def test_float32_params_stay_float32():
    p = np.ones((2, 2), dtype=np.float32)
    opt = Adam()
    opt.apply_gradients([p], [np.ones((2, 2))])
    assert p.dtype == np.float32
    assert all(s.dtype == np.float32 for s in opt.get_state()[1:])


def test_a_none_gradient_leaves_its_param_untouched():
    a, b = np.ones(2), np.ones(2)
    SGD(learning_rate=0.5).apply_gradients([a, b], [None, np.ones(2)])
    np.testing.assert_array_equal(a, [1.0, 1.0])
    np.testing.assert_array_equal(b, [0.5, 0.5])


def test_learning_rate_changes_take_effect_on_the_next_step():
    p = np.zeros(1)
    opt = SGD(learning_rate=1.0)
    opt.apply_gradients([p], [np.ones(1)])
    opt.learning_rate = 0.25
    opt.apply_gradients([p], [np.ones(1)])
    np.testing.assert_array_equal(p, [-1.25])


def test_non_finite_gradients_are_applied_without_errors_or_warnings():
    p = np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for opt in (Adam(global_clipnorm=1.0), RMSprop(clipnorm=1.0), Adagrad(), SGD(momentum=0.9)):
            opt.apply_gradients([p], [np.array([np.nan, np.inf, 1.0])])
    assert np.isnan(p[0])


def test_shape_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        Adam().apply_gradients([np.ones(3)], [np.ones(4)])


def test_a_different_number_of_params_after_building_is_a_value_error():
    opt = Adam()
    opt.apply_gradients([np.ones(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="built for 1"):
        opt.apply_gradients([np.ones(3), np.ones(3)], [np.ones(3), np.ones(3)])


def test_mismatched_list_lengths_are_a_value_error():
    with pytest.raises(ValueError, match="2 params but 1 grads"):
        Adam().apply_gradients([np.ones(1), np.ones(1)], [np.ones(1)])


def test_params_must_be_float_ndarrays():
    with pytest.raises(TypeError, match="ndarray"):
        SGD().apply_gradients([[1.0, 2.0]], [[1.0, 1.0]])
    with pytest.raises(TypeError, match="floating"):
        SGD().apply_gradients([np.ones(2, dtype=np.int64)], [np.ones(2)])


@pytest.mark.parametrize("kwargs", [dict(learning_rate=-1.0), dict(beta_1=1.5), dict(epsilon=-1e-7)])
def test_out_of_range_hyperparameters_are_value_errors(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        Adam(**kwargs)


def test_non_numeric_learning_rate_is_a_type_error():
    with pytest.raises(TypeError, match="learning_rate"):
        SGD(learning_rate="fast")


# ---------------------------------------------------------------------- against PyTorch
# Quadratic f(p) = 0.5 * sum(a * (p - c)**2), gradient a * (p - c). With epsilon = 0 the
# Keras and PyTorch Adam/RMSprop/Adagrad formulas are the same (they differ only in
# where epsilon is added); SGD momentum/nesterov agree at constant learning rate.
TORCH_CASES = [
    ("sgd momentum", lambda: SGD(learning_rate=0.05, momentum=0.9),
     lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd nesterov", lambda: SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
     lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", lambda: Adam(learning_rate=0.05, epsilon=0.0),
     lambda t, ps: t.optim.Adam(ps, lr=0.05, betas=(0.9, 0.999), eps=0.0)),
    ("adam amsgrad", lambda: Adam(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=0.0, amsgrad=True),
     lambda t, ps: t.optim.Adam(ps, lr=0.05, betas=(0.8, 0.9), eps=0.0, amsgrad=True)),
    ("adamw", lambda: AdamW(learning_rate=0.05, weight_decay=0.1, epsilon=0.0),
     lambda t, ps: t.optim.AdamW(ps, lr=0.05, betas=(0.9, 0.999), eps=0.0, weight_decay=0.1)),
    ("rmsprop", lambda: RMSprop(learning_rate=0.01, rho=0.9, epsilon=0.0),
     lambda t, ps: t.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0)),
    ("rmsprop momentum centered", lambda: RMSprop(learning_rate=0.01, rho=0.9, momentum=0.5, epsilon=0.0,
                                                  centered=True),
     lambda t, ps: t.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0, momentum=0.5, centered=True)),
    ("adagrad", lambda: Adagrad(learning_rate=0.1, initial_accumulator_value=0.1, epsilon=0.0),
     lambda t, ps: t.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.1, eps=0.0)),
]


@pytest.mark.parametrize("label, make_ours, make_torch", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_trajectory_matches_torch_optim_on_a_quadratic(label, make_ours, make_torch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    curvature = [rng.uniform(0.5, 2.0, size=(4, 3)), rng.uniform(0.5, 2.0, size=(6,))]
    centre = [rng.normal(size=(4, 3)), rng.normal(size=(6,))]
    start = [rng.normal(size=(4, 3)), rng.normal(size=(6,))]

    ours = [p.copy() for p in start]
    opt = make_ours()
    theirs = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in start]
    torch_opt = make_torch(torch, theirs)
    for _ in range(25):
        opt.apply_gradients(ours, [a * (p - c) for a, p, c in zip(curvature, ours, centre)])
        torch_opt.zero_grad()
        loss = sum(0.5 * (torch.tensor(a) * (p - torch.tensor(c)) ** 2).sum()
                   for a, p, c in zip(curvature, theirs, centre))
        loss.backward()
        torch_opt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- fastrnn.utils: the random seed
def test_set_random_seed_makes_draws_repeat():
    utils.set_random_seed(1234)
    first = utils.get_rng().normal(size=5)
    utils.set_random_seed(1234)
    np.testing.assert_array_equal(utils.get_rng().normal(size=5), first)


def test_different_seeds_give_different_draws():
    utils.set_random_seed(1)
    a = utils.get_rng().random(4)
    utils.set_random_seed(2)
    assert not np.array_equal(a, utils.get_rng().random(4))


def test_get_rng_is_one_generator_reseeded_in_place():
    kept = utils.get_rng()
    utils.set_random_seed(7)
    expected = np.random.Generator(np.random.PCG64(7)).random(3)
    assert utils.get_rng() is kept
    np.testing.assert_array_equal(kept.random(3), expected)


def test_set_random_seed_rejects_non_integers_and_negatives():
    with pytest.raises(TypeError):
        utils.set_random_seed(1.5)
    with pytest.raises(TypeError):
        utils.set_random_seed(True)
    with pytest.raises(ValueError):
        utils.set_random_seed(-1)


def test_an_empty_parameter_list_is_not_a_step():
    opt = Adam()
    opt.apply_gradients([], [])
    assert opt.iterations == 0
