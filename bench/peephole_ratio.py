"""The peephole LSTM's time (mode ``lstm_peephole``) over the plain LSTM's, on the shapes of ``fastrnn bench``.

The two calls of each case take turns (``measure_side_by_side``), so that a machine whose speed
drifts slows both alike. The target is a ratio of at most 1.2 for training: the peepholes add
element-wise work per step and a per-unit gradient sum, no GEMM.

Run: ``python bench/peephole_ratio.py [--budget SECONDS] [--shapes ...] [--tasks ...] [--dtype ...]``
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from fastrnn import ops
from fastrnn.argtypes import positive_float
from fastrnn.bench import cases
from fastrnn.bench.cli import shape_argument
from fastrnn.bench.timing import measure_side_by_side

TARGET = 1.2


def runner(mode, case, task, peephole):
    """A call of no arguments: one training step (forward and BPTT) or one inference forward."""
    weights = (case.w_ih, case.w_hh, case.b_ih, case.b_hh)
    params = {"params": {"peephole": peephole}} if mode == "lstm_peephole" else {}

    def run():
        y, _, _, cache = ops.rnn_forward(mode, case.x, case.h0, *weights, c0=case.c0, training=task == "train",
                                         **params)
        return y if cache is None else ops.rnn_backward(cache, case.dy)["x"]

    return run


def ratio_rows(shapes, tasks, dtype, budget_s):
    """Yield ``(shape_name, task, lstm s, lstm_peephole s)``, timed in turns."""
    for shape_name, shape in shapes:
        case = cases.make_case("lstm", shape, dtype)
        peephole = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * shape[3]).astype(dtype)
        for task in tasks:
            runners = {mode: runner(mode, case, task, peephole) for mode in ("lstm", "lstm_peephole")}
            timings = measure_side_by_side(runners, budget_s)
            yield shape_name, task, timings["lstm"][0].median, timings["lstm_peephole"][0].median


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=positive_float, default=2.0, metavar="SECONDS",
                        help="timing budget for each cell of a case (default 2)")
    parser.add_argument("--shapes", nargs="+", type=shape_argument, default=list(cases.SHAPES.items()),
                        metavar="SHAPE", help=f"names ({', '.join(cases.SHAPES)}) or TxBxIxH (default: all names)")
    parser.add_argument("--tasks", nargs="+", default=["train"], choices=cases.TASKS)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)

    width = max(len(name) for name, _ in args.shapes)
    print(f"{'shape':{width}} task   lstm ms  peephole ms  ratio")
    ratios = []
    for shape_name, task, plain, peep in ratio_rows(args.shapes, args.tasks, args.dtype, args.budget):
        ratios.append(peep / plain)
        print(f"{shape_name:{width}} {task:5} {plain * 1e3:8.3f} {peep * 1e3:12.3f}  {ratios[-1]:5.2f}", flush=True)
    print(f"ratio {min(ratios):.2f}-{max(ratios):.2f}; at most {TARGET} in {sum(r <= TARGET for r in ratios)} "
          f"of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
