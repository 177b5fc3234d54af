"""Every element-wise activation of ``fastrnn.modes.ACTIVATIONS`` in every cell.

- the reference's derivative of each activation against finite differences of its function,
  and its gradients through whole sequences against finite differences of a loss (float64);
- the kernels against the reference, float32 and float64, forward and backward, with lengths,
  a mask with holes and reverse;
- the names: the kernels' list is the reference's, aliases resolve, bad names are refused.
Keras 3 parity of the layers is in ``tests/test_keras_activations.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import finite_difference, make_case
from fastrnn import ops, reference
from fastrnn.modes import ACTIVATIONS, GATES
from fastrnn.reference import _ACTIVATIONS

T, B, I, H = 4, 3, 3, 5  # noqa: E741
GATED = ["lstm", "gru"]
# Inputs spread over [-4, 4], so every piece of the piecewise activations is met, away from
# their kinks (where finite differences are not the derivative).
KINKS = np.array([-3, -1, -0.5, 0, 0.5, 1, 3, 6])


def tame(case, name):
    """exponential feeds on itself through LSTM's cell state: smaller inputs keep it finite."""
    if name == "exponential":
        for k, v in case.items():
            if v is not None:
                case[k] = v * v.dtype.type(0.3)
    return case


def spread(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4, 4, n)
    near = np.abs(x[:, None] - KINKS[None, :]).min(axis=1) < 1e-3
    return x[~near]


def test_the_kernels_and_the_reference_know_the_same_activations():
    assert set(ACTIVATIONS) == set(_ACTIVATIONS)
    assert len(ACTIVATIONS) == 25


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_each_derivative_matches_finite_differences_of_its_function(name):
    act = _ACTIVATIONS[name]
    x = spread(400)
    eps = 1e-6
    numeric = (act.f(x + eps) - act.f(x - eps)) / (2 * eps)
    np.testing.assert_allclose(act.df(x, act.f(x)), numeric, rtol=1e-6, atol=1e-8)


def run(module, mode, case, R, S, U, **options):
    y, h_n, c_n, cache = module.rnn_forward(mode, **case, **options)
    grads = module.rnn_backward(cache, R, S, U)
    return (y, h_n, c_n), grads


def loss_weights(mode, dtype, seed=1):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((T, B, H)).astype(dtype)
    S = rng.standard_normal((B, H)).astype(dtype)
    U = rng.standard_normal((B, H)).astype(dtype) if mode == "lstm" else None
    return R, S, U


def options_for(mode, name, which):
    """``activation=name`` or, for the gated cells, ``recurrent_activation=name``."""
    return {"activation": name} if which == "activation" else {"recurrent_activation": name}


CASES = [("rnn_tanh", "activation")] + [(m, w) for m in GATED for w in ("activation", "recurrent_activation")]


@pytest.mark.parametrize("mode, which", CASES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_reference_gradients_match_finite_differences(mode, which, name):
    case = tame(make_case(mode, T, B, I, H, np.float64, seed=3), name)
    R, S, U = loss_weights(mode, np.float64)
    options = dict(options_for(mode, name, which), lengths=[4, 2, 0])

    def loss():
        y, h_n, c_n, _ = reference.rnn_forward(mode, **case, training=False, **options)
        return np.sum(y * R) + np.sum(h_n * S) + (np.sum(c_n * U) if U is not None else 0)

    _, grads = run(reference, mode, case, R, S, U, **options)
    for key in ("x", "h0", "w_hh", "b_ih"):
        numeric = finite_difference(loss, case[key])
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-7, err_msg=key)


def masked_options():
    mask = np.ones((T, B), dtype=bool)
    mask[1, 0] = mask[0, 2] = mask[3, 1] = False  # holes, pre- and post-padding
    return [dict(), dict(lengths=[4, 1, 3], reverse=True), dict(mask=mask)]


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize("mode, which", CASES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_kernels_match_the_reference(mode, which, name, dtype, tol):
    case = make_case(mode, T, B, I, H, dtype, seed=5)
    for k in ("w_ih", "w_hh"):
        case[k] = case[k] * 3  # pre-activations over several units, into every piece
    tame(case, name)
    R, S, U = loss_weights(mode, dtype)
    for extra in masked_options():
        options = dict(options_for(mode, name, which), **extra)
        expected_out, expected = run(reference, mode, case, R, S, U, **options)
        out, grads = run(ops, mode, case, R, S, U, **options)
        # Differences relative to each array's largest entry: unbounded activations (linear
        # gates, selu) make entries of very different sizes, each summed over many terms.
        for key, a, e in [("y", *out[:1], *expected_out[:1]), ("h_n", out[1], expected_out[1]),
                          ("c_n", out[2], expected_out[2])] + [(k, grads[k], e) for k, e in expected.items()]:
            if e is not None:
                np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, np.abs(e).max()), err_msg=key)


def test_aliases_and_defaults():
    case = make_case("lstm", T, B, I, H, np.float32)
    plain = ops.rnn_forward("lstm", **case, training=False)[0]
    named = ops.rnn_forward("lstm", **case, training=False, activation="tanh",
                            recurrent_activation="sigmoid")[0]
    np.testing.assert_array_equal(plain, named)
    silu = ops.rnn_forward("gru", **make_case("gru", T, B, I, H, np.float32), training=False,
                           activation="silu")[0]
    swish = ops.rnn_forward("gru", **make_case("gru", T, B, I, H, np.float32), training=False,
                            activation="swish")[0]
    np.testing.assert_array_equal(silu, swish)


@pytest.mark.parametrize("module", [ops, reference])
def test_bad_activations_are_refused_by_name(module):
    case = make_case("lstm", T, B, I, H, np.float32)
    with pytest.raises(ValueError, match="activation must be an element-wise activation.*'softmax'"):
        module.rnn_forward("lstm", **case, activation="softmax")
    with pytest.raises(TypeError, match="recurrent_activation must be the name"):
        module.rnn_forward("lstm", **case, recurrent_activation=np.tanh)
    rnn_case = make_case("rnn_tanh", T, B, I, H, np.float32)
    with pytest.raises(ValueError, match="no gates, so no recurrent_activation"):
        module.rnn_forward("rnn_tanh", **rnn_case, recurrent_activation="sigmoid")
