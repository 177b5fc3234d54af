"""Kernel benches: ``fastrnn.ops`` beside ``fastrnn.reference``, forward and forward+backward.

Every cell mode on the small, medium and large shapes of ``fastrnn bench`` and on one
character-model sequence at a time ("char", 25 steps of 65 one-hot inputs, 100 units, as
min-char-rnn trains); the reference on all but the large one (there a call takes seconds). Each
(mode, shape, task) is one pytest-benchmark group, so the implementations sit side by side.
"forward" is ``rnn_forward(..., training=False)``; "forward+backward" is
``rnn_forward(..., training=True)`` then ``rnn_backward`` with a given dy.

Run: ``pytest bench/ --benchmark-only`` (``--benchmark-autosave`` keeps a history).
"""
from __future__ import annotations

import pytest

from fastrnn import ops, reference
from fastrnn.bench import cases
from fastrnn.bench.runners import functional_runner

SHAPES = {**{name: cases.SHAPES[name] for name in ("small", "medium", "large")}, "char": (25, 1, 65, 100)}
NO_REFERENCE = {"large"}
IMPLEMENTATIONS = {"ops": ops, "reference": reference}
TASKS = {"forward": "infer", "forward+backward": "train"}


def _cases():
    for mode in cases.ALL_MODES:
        for shape_name in SHAPES:
            for task in TASKS:
                for impl in IMPLEMENTATIONS:
                    if impl == "reference" and shape_name in NO_REFERENCE:
                        continue
                    yield pytest.param(mode, shape_name, task, impl, id=f"{mode}-{shape_name}-{task}-{impl}")


@pytest.mark.parametrize("mode, shape_name, task, impl", list(_cases()))
def test_kernel(run_bench, make_case, mode, shape_name, task, impl):
    shape = SHAPES[shape_name]
    run = functional_runner(IMPLEMENTATIONS[impl], make_case(mode, shape), TASKS[task])
    run_bench.benchmark.group = f"{mode} {shape_name} {shape} {task}"
    run_bench.benchmark.extra_info["gflop_per_call"] = cases.task_flops(mode, TASKS[task], *shape) / 1e9
    run_bench(run)
