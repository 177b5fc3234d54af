"""Tests for fastrnn.layers.initializers: the variance-scaling family against Keras 3's definitions."""
import numpy as np
import pytest

from fastrnn import utils
from fastrnn.layers import initializers

SHAPE = (300, 500)  # (fan_in, fan_out): 150,000 draws, so a standard deviation is known to ~0.2 %
FAN_IN, FAN_OUT = SHAPE

# name: (Keras's scale, the fan it divides by, distribution)
VARIANCE_SCALING = {
    "glorot_uniform": (1.0, (FAN_IN + FAN_OUT) / 2, "uniform"),
    "glorot_normal": (1.0, (FAN_IN + FAN_OUT) / 2, "normal"),
    "he_uniform": (2.0, FAN_IN, "uniform"),
    "he_normal": (2.0, FAN_IN, "normal"),
    "lecun_uniform": (1.0, FAN_IN, "uniform"),
    "lecun_normal": (1.0, FAN_IN, "normal"),
}


@pytest.mark.parametrize("name", VARIANCE_SCALING)
def test_variance_scaling_draws_have_keras_variance_and_range(name):
    scale, fan, distribution = VARIANCE_SCALING[name]
    utils.set_random_seed(0)
    w = initializers.get(name)(SHAPE, "float64")
    assert w.shape == SHAPE and w.dtype == np.float64
    std = np.sqrt(scale / fan)
    assert np.std(w) == pytest.approx(std, rel=0.01)
    assert abs(np.mean(w)) < 0.01 * std
    if distribution == "uniform":
        limit = np.sqrt(3) * std
        assert np.max(np.abs(w)) <= limit and np.max(np.abs(w)) == pytest.approx(limit, rel=1e-3)
    else:  # truncated at two standard deviations of the normal before truncation
        assert np.max(np.abs(w)) <= 2 * std / initializers._TRUNCATION_STD


@pytest.mark.parametrize("name", VARIANCE_SCALING)
def test_variance_scaling_initializers_go_by_their_keras_names(name):
    init = initializers.get(name)
    assert init.__name__ == name and init is getattr(initializers, name)
    assert initializers.get("".join(part.title() for part in name.split("_"))) is init  # GlorotUniform
    assert init.__doc__


def test_the_same_seed_draws_the_same_weights():
    utils.set_random_seed(3)
    first = initializers.he_normal((4, 6), "float32")
    utils.set_random_seed(3)
    np.testing.assert_array_equal(initializers.he_normal((4, 6), "float32"), first)
    assert first.dtype == np.float32
