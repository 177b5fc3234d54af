"""The peephole LSTM (mode ``lstm_peephole``) and cell parameters in ``fastrnn.ops``.

- the reference's gradients, the peephole's among them, against finite differences (float64);
- the kernels against the reference in float32 and float64 (tolerances of ``ops_checks``):
  lengths, a mask with holes, reverse, other activations, threads splitting the batch rows or
  the hidden units (where each slice sums its own share of the peephole's gradient);
- the parameters' arguments: defaults, bad names, shapes and dtypes refused by name.
The layer (``LSTM(use_peepholes=True)``) is tested in ``tests/test_layers_peephole.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import finite_difference, make_case, steps_to_split_by_units
from fastrnn import ops, reference
from ops_checks import TOLERANCE, as_float64, assert_close, holey_mask, kernel_threads

MODE = "lstm_peephole"


def peephole_case(T, B, I, H, dtype, seed=0):  # noqa: E741
    """make_case's LSTM arrays with c0 (B, H) and a peephole (3H,) of the weights' scale x 3, so
    that the peephole terms move the gates as much as the products do."""
    case = make_case("lstm", T, B, I, H, dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    case["c0"] = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    case["params"] = {"peephole": rng.uniform(-1.5, 1.5, 3 * H).astype(dtype)}
    return case


def as64(case):
    out = as_float64({k: v for k, v in case.items() if k != "params"})
    out["params"] = {k: v.astype(np.float64) for k, v in case["params"].items()}
    return out


def run(module, case, seed=1, **kw):
    """Forward and backward with random gradients of y, h_n and c_n: (y, h_n, c_n, grads)."""
    y, h_n, c_n, cache = module.rnn_forward(MODE, **case, **kw)
    rng = np.random.default_rng(seed)
    dt = case["x"].dtype
    g_y, g_h, g_c = (rng.standard_normal(a.shape).astype(dt) for a in (y, h_n, c_n))
    return y, h_n, c_n, module.rnn_backward(cache, g_y, g_h, g_c)


def assert_matches_reference(case, **kw):
    dtype = case["x"].dtype.type
    got, want = run(ops, case, **kw), run(reference, as64(case), **kw)
    for name, g, w in zip(("y", "h_n", "c_n"), got[:3], want[:3]):
        assert_close(g, w, dtype, name)
    assert got[3].keys() == want[3].keys()
    assert "peephole" in want[3]
    for key in want[3]:
        assert_close(got[3][key], want[3][key], dtype, f"d{key}")


@pytest.mark.parametrize("options", [dict(lengths=[4, 2, 0]), dict(reverse=True, mask=holey_mask(4, 3))],
                         ids=["lengths", "reverse-mask"])
def test_reference_gradients_match_finite_differences(options):
    case = peephole_case(4, 3, 3, 5, np.float64, seed=3)
    rng = np.random.default_rng(2)
    R, S, U = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))

    def loss():
        y, h_n, c_n, _ = reference.rnn_forward(MODE, **case, training=False, **options)
        return np.sum(y * R) + np.sum(h_n * S) + np.sum(c_n * U)

    _, _, _, cache = reference.rnn_forward(MODE, **case, **options)
    grads = reference.rnn_backward(cache, R, S, U)
    arrays = dict(case, peephole=case["params"]["peephole"])
    for key in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "peephole"):
        np.testing.assert_allclose(grads[key], finite_difference(loss, arrays[key]), rtol=1e-6, atol=1e-8,
                                   err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("options", [
    dict(), dict(lengths=[5, 2, 0, 7]), dict(mask=holey_mask(7, 4)), dict(reverse=True, lengths=[1, 7, 3, 0]),
    dict(reverse=True, mask=holey_mask(7, 4, seed=2)),
    dict(activation="relu", recurrent_activation="hard_sigmoid", mask=holey_mask(7, 4, seed=3)),
    dict(activation="gelu", recurrent_activation="softsign")],
    ids=["plain", "lengths", "mask", "reverse-lengths", "reverse-mask", "relu-hard_sigmoid", "gelu-softsign"])
def test_kernels_match_the_reference(dtype, options):
    assert_matches_reference(peephole_case(7, 4, 9, 17, dtype), **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernels_match_the_reference_on_threads_splitting_rows_and_units(dtype):
    with kernel_threads(2):
        assert_matches_reference(peephole_case(6, 16, 5, 33, dtype, seed=4), mask=holey_mask(6, 16))
        B, H = 3, 128
        T = steps_to_split_by_units(MODE, B, H)
        assert_matches_reference(peephole_case(T, B, 4, H, dtype, seed=5), lengths=[T, T // 2, 1], reverse=True)


def test_the_peephole_gradient_is_the_same_from_call_to_call():
    case = peephole_case(6, 16, 5, 33, np.float32, seed=6)
    with kernel_threads(2):
        first, second = (run(ops, case)[3]["peephole"] for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_inference_matches_and_zero_peepholes_are_the_plain_lstm():
    case = peephole_case(5, 3, 4, 6, np.float64)
    y, h_n, c_n, cache = ops.rnn_forward(MODE, **case, training=False)
    want = reference.rnn_forward(MODE, **case, training=False)
    assert cache is None
    for got, w, what in zip((y, h_n, c_n), want[:3], ("y", "h_n", "c_n")):
        assert_close(got, w, np.float64, what)
    plain = {k: v for k, v in case.items() if k != "params"}
    for params in (None, {"peephole": None}, {"peephole": np.zeros(18)}):
        got = ops.rnn_forward(MODE, **plain, params=params, training=False)
        np.testing.assert_array_equal(got[0], ops.rnn_forward("lstm", **plain, training=False)[0])


@pytest.mark.parametrize("module", [ops, reference])
def test_bad_params_are_refused_by_name(module):
    case = {k: v for k, v in peephole_case(3, 2, 3, 4, np.float64).items() if k != "params"}
    bad = [
        ({"peephole": np.zeros(4)}, ValueError, r"params\['peephole'\] must have shape \(3\*H,\) = \(12,\)"),
        ({"peephole": np.zeros((3, 4))}, ValueError, r"params\['peephole'\] must be 1-D"),
        ({"peephole": np.zeros(12, np.float32)}, TypeError, r"params\['peephole'\] has dtype float32"),
        ({"peephole": [0.0] * 12}, TypeError, r"params\['peephole'\] must be a numpy.ndarray"),
        ({"peep": np.zeros(12)}, ValueError, r"mode 'lstm_peephole' has only 'peephole', got 'peep'"),
        ([np.zeros(12)], TypeError, r"params must be a dict"),
    ]
    for params, error, message in bad:
        with pytest.raises(error, match=message):
            module.rnn_forward(MODE, **case, params=params)
    with pytest.raises(ValueError, match=r"mode 'lstm' has none, got 'peephole'"):
        module.rnn_forward("lstm", **case, params={"peephole": np.zeros(12)})
