"""The Keras-style API's overhead: one training epoch of a one-layer LSTM model.

The model is ``LSTM(256)`` on inputs of 100 steps x 128 features, then ``Dense(1)``, trained
with Adam on mean squared error for one epoch of 10 batches of 64. Besides the epoch's time,
the bench records which share of it is spent inside ``fastrnn.ops.rnn_forward`` and
``rnn_backward`` (``extra_info["ops_share"]``): the rest is the Python model code (layout
transposes, the Dense layer, the loss, the optimizer, callbacks).

Skipped while ``fastrnn.models`` is not importable.
"""
from __future__ import annotations

import contextlib
import sys
import time

import numpy as np
import pytest

from fastrnn import ops

B, T, F, H = 64, 100, 128, 256
BATCHES = 10
ROUNDS = 3


@contextlib.contextmanager
def timed_ops():
    """Wrap ``ops.rnn_forward``/``rnn_backward`` with a timer; yields a dict of seconds spent.

    Every loaded fastrnn module that holds the original functions (``from fastrnn.ops import
    rnn_forward``) gets the wrapped ones too, and all are restored on exit.
    """
    spent = {"rnn_forward": 0.0, "rnn_backward": 0.0}
    originals = {name: getattr(ops, name) for name in spent}

    def wrap(name, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return timed

    wrapped = {name: wrap(name, function) for name, function in originals.items()}
    patched = []  # (module, attribute name, original)
    for module in [m for name, m in list(sys.modules.items()) if name.startswith("fastrnn") and m is not None]:
        for name, function in originals.items():
            if getattr(module, name, None) is function:
                setattr(module, name, wrapped[name])
                patched.append((module, name, function))
    try:
        yield spent
    finally:
        for module, name, function in patched:
            setattr(module, name, function)


def test_lstm_model_one_epoch(benchmark):
    models = pytest.importorskip("fastrnn.models")
    layers = pytest.importorskip("fastrnn.layers")
    utils = pytest.importorskip("fastrnn.utils")
    utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCHES * B, T, F), dtype=np.float32)  # (N, T, F)
    y = rng.standard_normal((BATCHES * B, 1), dtype=np.float32)  # (N, 1)
    model = models.Sequential([layers.LSTM(H, input_shape=(T, F)), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    epoch_seconds = []

    def one_epoch():
        start = time.perf_counter()
        model.fit(x, y, batch_size=B, epochs=1, verbose=0)
        epoch_seconds.append(time.perf_counter() - start)

    one_epoch()  # warm-up: builds the model and the optimizer's slots
    epoch_seconds.clear()
    with timed_ops() as spent:
        benchmark.pedantic(one_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    share = sum(spent.values()) / sum(epoch_seconds)
    benchmark.group = f"Keras-style LSTM epoch (B={B}, T={T}, F={F}, H={H}, {BATCHES} batches)"
    benchmark.extra_info["ops_share"] = share
    benchmark.extra_info["ops_forward_s_per_epoch"] = spent["rnn_forward"] / ROUNDS
    benchmark.extra_info["ops_backward_s_per_epoch"] = spent["rnn_backward"] / ROUNDS
    print(f"\nshare of the epoch inside fastrnn.ops: {100 * share:.1f} % "
          f"(forward {spent['rnn_forward'] / ROUNDS * 1e3:.0f} ms, "
          f"backward {spent['rnn_backward'] / ROUNDS * 1e3:.0f} ms, "
          f"epoch {np.median(epoch_seconds) * 1e3:.0f} ms)")
    assert spent["rnn_forward"] > 0 and spent["rnn_backward"] > 0, "the model never called fastrnn.ops"
