"""Shared test helpers.

``finite_difference(f, a, eps)``: the central-difference gradient every gradient test compares with.
``assert_same(actual, desired, name)``: two runs of one computation agree to the last few bits.
``steps_to_split_by_units(mode, B, H)``: a sequence long enough for the kernels to split a small
batch's hidden units between two threads, as the kernels say (``fastrnn._core.plan``).

``Sum``: a layer that adds its inputs (``multi_input``), to join two branches of a graph in
tests without depending on the merging layers.

``make_case(mode, T, B, I, H, dtype, bias=True, seed=0)`` returns random inputs and weights
in the kernel layout (``fastrnn.modes``) as a dict whose keys are ``rnn_forward``'s argument
names, so a case runs as ``rnn_forward(mode, **case)``. Use it from a test either through
the fixture of the same name or with ``from conftest import make_case``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastrnn import _core
from fastrnn.layers.base import Layer
from fastrnn.modes import GATES, MODES, STATES

# The tests set the cache limit themselves and check its default: a limit from the caller's
# environment would change what they see.
os.environ.pop("FASTRNN_CACHE_LIMIT", None)


def steps_to_split_by_units(mode, B, H):
    """The fewest steps T of a batch of B < 8 rows (too few to split by rows), with H >= 128 (64
    units a thread at least), for which the kernels on two threads split the hidden units between
    them (with more threads they split them too)."""
    cell = _core.Cell(MODES[mode].cell, MODES[mode].activation)
    before = _core.get_num_threads()
    _core.set_num_threads(2)
    try:
        def split(T):
            return _core.plan(cell, T, B, H) == (2, True)
        high = 1
        while not split(high):
            if high > 2**40:
                raise ValueError(f"the kernels never split {mode} B={B} H={H} by units")
            high *= 2
        low = high // 2  # not split at low (or low = 0); split at high
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if split(mid) else (mid, high)
        return high
    finally:
        _core.set_num_threads(before)


def make_case(mode, T, B, I, H, dtype, bias=True, seed=0):  # noqa: E741
    """Random x (T, B, I), h0 (B, H), c0 (B, H) or None (LSTM only), w_ih (G*H, I),
    w_hh (G*H, H), b_ih, b_hh (G*H,) or None (when ``bias`` is False), all of ``dtype``.

    Weights are uniform in [-1/sqrt(H), 1/sqrt(H)] (PyTorch's initialisation), inputs and
    states standard normal halved, so the gates stay away from saturation.
    """
    rng = np.random.default_rng(seed)
    G = GATES[mode]
    k = 1 / np.sqrt(H) if H else 1.0

    def uniform(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    def normal(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(dtype)

    return {
        "x": normal(T, B, I),
        "h0": normal(B, H),
        "c0": normal(B, H) if "c" in STATES[mode] else None,
        "w_ih": uniform(G * H, I),
        "w_hh": uniform(G * H, H),
        "b_ih": uniform(G * H) if bias else None,
        "b_hh": uniform(G * H) if bias else None,
    }


def finite_difference(f, a, eps=1e-6):
    """Central-difference gradient of the scalar f() with respect to every entry of the array a
    (changed in place, then restored)."""
    grad = np.zeros_like(a)
    for index in np.ndindex(a.shape):
        saved = a[index]
        a[index] = saved + eps
        up = f()
        a[index] = saved - eps
        down = f()
        a[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def randomize(model, seed=0):
    """``model`` with every weight, biases included, uniform in [-0.5, 0.5] in float32: nothing
    is tested at zero or at its initial value."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def assert_same(actual, desired, name=""):
    """Two runs of the same computation agree to the last few bits.

    Not bit for bit: NumPy's vectorised tanh/exp can round the last bit differently
    depending on an array's alignment in memory. None (an absent output) equals only None.
    """
    if desired is None:
        assert actual is None, name
        return
    np.testing.assert_allclose(actual, desired, rtol=1e-13, atol=1e-15, err_msg=name)


@pytest.fixture(name="make_case", scope="session")
def _make_case_fixture():
    """The ``make_case`` function, as a fixture."""
    return make_case


class Sum(Layer):
    """x: a list of arrays of one shape -> their sum; the mask of the first input passes on."""

    multi_input = True

    def check_input_shapes(self, shapes):
        if len({tuple(s[1:]) for s in shapes}) != 1:
            raise ValueError(f"{self.who}: the inputs must have one shape, got {shapes}")

    def call(self, x, training=False, mask=None):
        self._cache = len(x) if training else None
        return sum(x[1:], x[0])

    def backward(self, dy):
        self.grads = []
        return [dy] * self._backward_cache()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]
