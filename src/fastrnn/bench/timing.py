"""How ``fastrnn bench`` times a call: a warm-up, then repeated calls within a budget, the
implementations of a case taking turns; the median is reported.

Timing: one warm-up call each, then repeated calls until each implementation has spent the
per-case budget (at least 3 calls, or fewer when a single call takes more than 3 budgets). The
implementations of a case take turns, a fifth of the budget at a time, so that a machine whose
speed drifts during a case slows them all alike; each turn starts after a pause (the previous
implementation's threads go on spinning for a while) and one untimed call.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass

ROUNDS = 5  # turns the implementations of a case take in rotation, each a fifth of the budget
# Pause before each turn: the thread pools of the implementation that ran last keep spinning on
# the cores for a while after their last call (OpenBLAS for about 2**28 cycles, 0.1 s here) and
# would slow whatever runs next by as much as 2x on a 2-core machine.
SETTLE_S = 0.12


@dataclass
class Timing:
    """Seconds per call: the median of ``repeats`` timed calls after one warm-up call."""

    median: float
    low: float
    high: float
    repeats: int
    warmup: float

    def as_dict(self) -> dict:
        return {"median_ms": self.median * 1e3, "min_ms": self.low * 1e3, "max_ms": self.high * 1e3,
                "repeats": self.repeats, "warmup_ms": self.warmup * 1e3}


def measure(run, budget_s: float, max_repeats: int = 1000):
    """Time ``run()``: one warm-up call, then calls until ``budget_s`` seconds are spent.

    At least 3 timed calls, unless they would take more than 3 budgets (then at least 1).
    The garbage collector is off while timing, as in ``timeit``.
    Returns ``(Timing, result of the warm-up call)``.
    """
    return measure_side_by_side({"run": run}, budget_s, max_repeats=max_repeats)["run"]


def measure_side_by_side(runners: dict, budget_s: float, rounds: int = ROUNDS, max_repeats: int = 1000,
                         settle_s: float = SETTLE_S) -> dict:
    """Time several implementations of one case in turns: ``{name: (Timing, warm-up result)}``.

    Each runner gets one warm-up call; then the runners take turns of about ``budget_s / rounds``
    seconds (at least one timed call each) until every one has spent its budget under the rule
    of ``measure``. A machine whose speed drifts over the seconds a case takes (a shared or
    virtual machine does) then slows every implementation alike, and their ratios hold. With
    more than one runner, each turn starts with a pause of ``settle_s`` and one untimed call, so
    that no implementation is timed while the previous one's threads still hold the cores.
    """
    gc.collect()
    first, warmup = _warm_up(runners)
    times = {name: [] for name in runners}

    def done(name) -> bool:
        spent, count = sum(times[name]), len(times[name])
        return count >= max_repeats or (spent >= budget_s and (count >= 3 or spent >= 3 * budget_s))

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        while not all(done(name) for name in runners):
            for name, run in runners.items():
                if done(name):
                    continue
                if len(runners) > 1:
                    time.sleep(settle_s)
                    run()
                turn = 0.0
                while not done(name) and (turn == 0.0 or turn < budget_s / rounds):
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
                    turn += times[name][-1]
    finally:
        if was_enabled:
            gc.enable()
    return {name: (Timing(statistics.median(t), min(t), max(t), len(t), warmup[name]), first[name])
            for name, t in times.items()}


def _warm_up(runners: dict) -> tuple[dict, dict]:
    """One call of each runner, which pays the one-time costs (allocation, thread start-up):
    ``({name: its result}, {name: its seconds})``."""
    first, warmup = {}, {}
    for name, run in runners.items():
        start = time.perf_counter()
        first[name] = run()
        warmup[name] = time.perf_counter() - start
    return first, warmup
