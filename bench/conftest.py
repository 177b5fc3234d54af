"""Shared pieces of the pytest-benchmark benches (``pytest bench/ --benchmark-only``).

These benches track fastrnn's speed over time; they are not tests of correctness and are
kept out of the default test run (the project's pytest config collects ``tests/`` only).
Cases come from ``fastrnn.bench.cases.make_case``: the same inputs ``fastrnn bench`` times.
"""
from __future__ import annotations

import time

import pytest

from fastrnn import ops
from fastrnn.bench import cases

#: Seconds of timed calls per bench, after one untimed warm-up call.
BUDGET_S = 1.0


def pytest_report_header(config):
    return f"fastrnn.ops threads: {ops.get_num_threads()}"


@pytest.fixture(scope="module")
def make_case():
    """``make_case(mode, shape)``: a float32 case, drawn once per module (large ones are costly)."""
    drawn = {}

    def get(mode, shape):
        if (mode, shape) not in drawn:
            drawn[(mode, shape)] = cases.make_case(mode, shape, "float32")
        return drawn[(mode, shape)]

    return get


@pytest.fixture
def run_bench(benchmark):
    """``run_bench(run)``: time ``run()`` with pytest-benchmark, rounds fitted to ~BUDGET_S.

    Two untimed calls come first: a warm-up (one-time costs), then one timed by hand to
    choose the number of rounds (3 to 200), so a seconds-long call is not repeated dozens of
    times and a sub-millisecond one is not timed only a handful of times.
    """
    def bench(run):
        run()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        rounds = max(3, min(200, int(BUDGET_S / max(seconds, 1e-9))))
        return benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)

    bench.benchmark = benchmark  # for group and extra_info
    return bench
