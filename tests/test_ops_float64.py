"""The float64 logistic function and tanh of the kernels, in units in the last place, at every
instruction-set level this machine runs: one level runs an exp of its own, the others Eigen's
(src/cpp/activations.h).
"""
import numpy as np
import pytest

from fastrnn import _core, modes
from fastrnn.modes import GATES

# The float64 logistic function and tanh run on an exp of their own at one instruction-set level
# and on Eigen's at the others (src/cpp/cells.h), so their accuracy is checked at every level
# this machine runs; None is the one level of a single-level build.
LEVELS = [level for level, ok in _core.available_levels().items() if ok] or [None]


def forward_at(level, mode, x, w_ih, b):
    """One inference call of the kernels built for ``level``: (y, h_n, c_n), from zero states and
    with no recurrence (w_hh zero)."""
    kernels = _core.kernels if level is None else _core.kernels_at(level)
    H = w_ih.shape[0] // GATES[mode]
    cell = _core.Cell(modes.MODES[mode].cell, modes.MODES[mode].activation)
    y, final, _ = kernels.forward(cell, x, [None] * len(cell.states), w_ih, np.zeros((w_ih.shape[0], H)), b, None,
                                  None, False, False)
    return y, final[0], final[1] if len(final) > 1 else None


def kernel_tanh(x, level=None, bias=None):
    """tanh of a float64 vector as the rnn_tanh kernel computes it: one step with identity input
    weights and no recurrence, so the pre-activation is x exactly, 64 units wide for SIMD;
    ``bias`` (64,) brings in values that x would spoil (an inf times the identity's zeros)."""
    H, n = 64, len(x)
    x = np.concatenate([x, np.zeros(-n % H)])
    y, _, _ = forward_at(level, "rnn_tanh", x.reshape(1, -1, H), np.eye(H), bias)
    return y.ravel()[:n]


@pytest.mark.parametrize("level", LEVELS)
def test_float64_tanh_is_within_two_units_in_the_last_place(level):
    tiny = np.geomspace(1e-300, 1e-3, 2000)
    x = np.concatenate([np.linspace(-20, 20, 400_001), tiny, -tiny, 0.625 + np.arange(-50, 50) * 2.0**-53,
                        [0.625, np.nextafter(0.625, 0), 19.06, 354.0, 710.0, 1e308, np.finfo(float).tiny]])
    got, want = kernel_tanh(x, level), np.tanh(x)
    ulps = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulps.max() <= 2, f"{ulps.max():.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", LEVELS)
def test_float64_tanh_maps_inf_to_one_and_keeps_nan(level):
    bias = np.zeros(64)
    bias[:3] = [np.inf, -np.inf, np.nan]
    got = kernel_tanh(np.zeros(64), level, bias)[:3]
    np.testing.assert_array_equal(got[:2], [1.0, -1.0])
    assert np.isnan(got[2])


def kernel_sigmoid(x, level=None, bias=None):
    """The logistic function of a float64 vector as the LSTM kernel computes it: one step from
    c0 = 0 with the input gate's pre-activation x and a candidate g = tanh(40) = 1 exactly, so that
    c_n = i * g is the input gate itself. 64 units wide for SIMD; ``bias`` (64,), added to the
    input gate, brings in values that x would spoil (an inf times the identity's zeros)."""
    H, n = 64, len(x)
    x = np.concatenate([x, np.zeros(-n % H)])
    w_ih = np.zeros((4 * H, H))
    w_ih[:H] = np.eye(H)
    b = np.zeros(4 * H)
    b[2 * H:3 * H] = 40.0
    if bias is not None:
        b[:H] = bias
    _, _, c_n = forward_at(level, "lstm", x.reshape(1, -1, H), w_ih, b)
    return c_n.ravel()[:n]


@pytest.mark.parametrize("level", LEVELS)
def test_float64_sigmoid_is_within_two_and_a_half_units_in_the_last_place(level):
    """1 / (1 + e^-x) rounds e^-x, the sum and the quotient; where e^-x is just below a power of
    two its error counts double in units of the result. The bound is the worst found, not derived:
    a search of 50 million points found 2.4995 units, near x = -53 ln2 = -36.74; this grid's worst
    is 2.28. Down to where e^-x overflows (x = -709.78): below that it is 0, as Eigen's own
    logistic function gives too."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs a long double with more precision than a double for the exact values")
    x = np.concatenate([np.linspace(-40, 40, 400_001), np.linspace(-709, 40, 100_001),
                        -np.geomspace(1e-300, 1e-3, 2000), np.geomspace(1e-300, 1e-3, 2000),
                        [0.0, 36.04, 36.05, 37.5, 708.0, 709.78]])
    got = kernel_sigmoid(x, level)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))  # x86's 80-bit long double: 11 more bits
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float64))
    assert ulps.max() <= 2.5, f"{float(ulps.max()):.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", [level for level in LEVELS if level == "x86-64-v4"])
def test_float64_exp_of_our_own_rounds_nearly_as_well_as_the_c_library(level):
    """Below x = -40 the logistic function is 1 / e^-x rounded: its error is the exp's plus the
    division's. With the exp of our own (AVX-512) it stays within 1.55 units in the last place
    there; the worst on this grid is 1.47. With Eigen's exp, which the other levels use, it
    reaches 1.96."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs a long double with more precision than a double for the exact values")
    x = np.linspace(-709, -40, 400_001)
    exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))
    ulps = np.abs(kernel_sigmoid(x, level) - exact) / np.spacing(exact.astype(np.float64))
    assert ulps.max() <= 1.55, f"{float(ulps.max()):.2f} ulp at x = {x[ulps.argmax()]!r}"


@pytest.mark.parametrize("level", LEVELS)
def test_float64_sigmoid_at_the_ends_of_the_line_and_nan(level):
    bias = np.zeros(64)
    bias[:6] = [np.inf, -np.inf, np.nan, -709.79, -745.2, 1e308]
    got = kernel_sigmoid(np.zeros(64), level, bias)[:6]
    np.testing.assert_array_equal(got[[0, 1, 3, 4, 5]], [1.0, 0.0, 0.0, 0.0, 1.0])
    assert np.isnan(got[2])
