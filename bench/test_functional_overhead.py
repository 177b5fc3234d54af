"""A functional model's ``fit`` against a ``Sequential`` model's, of the same layers.

Both are ``LSTM(256)`` on inputs of 100 steps x 128 features, then ``Dense(1)``, with the same
weights, trained with Adam on mean squared error for one epoch of 10 batches of 64: the
Sequential one as ``Sequential([...])``, the other as ``Model(Input(...), Dense(LSTM(Input)))``.
Each timed round of the functional epoch is preceded by an untimed (by pytest-benchmark) epoch
of the Sequential model timed by hand, so the two alternate and share the machine's state;
``extra_info["functional_over_sequential"]`` is the ratio of their median epoch times.

Skipped while ``fastrnn.models`` is not importable.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

B, T, F, H = 64, 100, 128, 256
BATCHES = 10
ROUNDS = 5


def test_functional_epoch_against_sequential(benchmark):
    models = pytest.importorskip("fastrnn.models")
    layers = pytest.importorskip("fastrnn.layers")
    utils = pytest.importorskip("fastrnn.utils")
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCHES * B, T, F), dtype=np.float32)  # (N, T, F)
    y = rng.standard_normal((BATCHES * B, 1), dtype=np.float32)  # (N, 1)
    sequential = models.Sequential([layers.LSTM(H, input_shape=(T, F)), layers.Dense(1)])
    inputs = layers.Input(shape=(T, F))
    functional = models.Model(inputs, layers.Dense(1)(layers.LSTM(H)(inputs)))
    functional.set_weights(sequential.get_weights())
    for model in (sequential, functional):
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False)  # warm-up
    sequential_seconds, functional_seconds = [], []

    def sequential_epoch():
        start = time.perf_counter()
        sequential.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False)
        sequential_seconds.append(time.perf_counter() - start)

    def functional_epoch():
        start = time.perf_counter()
        functional.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False)
        functional_seconds.append(time.perf_counter() - start)

    benchmark.pedantic(functional_epoch, setup=sequential_epoch, rounds=ROUNDS, iterations=1,
                       warmup_rounds=0)
    ratio = np.median(functional_seconds) / np.median(sequential_seconds)
    benchmark.group = f"functional vs Sequential LSTM epoch (B={B}, T={T}, F={F}, H={H}, {BATCHES} batches)"
    benchmark.extra_info["functional_over_sequential"] = ratio
    benchmark.extra_info["sequential_median_s"] = float(np.median(sequential_seconds))
    print(f"\nfunctional epoch {np.median(functional_seconds) * 1e3:.0f} ms, Sequential "
          f"{np.median(sequential_seconds) * 1e3:.0f} ms: ratio {ratio:.3f}")
    # Same weights, same data, no shuffling: the two models trained alike.
    for a, b in zip(sequential.get_weights(), functional.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
