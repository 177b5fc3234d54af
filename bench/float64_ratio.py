"""fastrnn's float64 time over its float32 time, for the cells, shapes and tasks of ``fastrnn bench``.

The float32 and float64 calls of each case take turns, as ``fastrnn bench`` times
implementations, so that a machine whose speed drifts slows both alike. The target is a ratio
of at most 2.2: a float64 multiply-add takes as long as two float32 ones in the SIMD units, so
2 is the floor wherever the GEMMs dominate.

Run: ``python bench/float64_ratio.py [--budget SECONDS] [--modes ...] [--shapes ...] [--tasks ...]``
(the budget is for each dtype of a case).
"""
from __future__ import annotations

import argparse
import sys

from fastrnn import ops
from fastrnn.argtypes import positive_float
from fastrnn.bench import cases
from fastrnn.bench.cli import shape_argument
from fastrnn.bench.runners import functional_runner
from fastrnn.bench.timing import measure_side_by_side

TARGET = 2.2


def ratio_rows(modes, shapes, tasks, budget_s):
    """Yield ``(mode, shape_name, task, float32 s, float64 s)`` for every case, timed in turns.

    shapes: ``(name, (T, B, I, H))`` pairs; budget_s: seconds for each dtype of a case."""
    for mode in modes:
        for shape_name, shape in shapes:
            for task in tasks:
                runners = {dtype: functional_runner(ops, cases.make_case(mode, shape, dtype), task)
                           for dtype in ("float32", "float64")}
                timings = measure_side_by_side(runners, budget_s)
                yield mode, shape_name, task, timings["float32"][0].median, timings["float64"][0].median


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=positive_float, default=2.0, metavar="SECONDS",
                        help="timing budget for each dtype of a case (default 2)")
    parser.add_argument("--modes", nargs="+", default=list(cases.DEFAULT_MODES), choices=cases.ALL_MODES)
    parser.add_argument("--shapes", nargs="+", type=shape_argument, default=list(cases.SHAPES.items()),
                        metavar="SHAPE", help=f"names ({', '.join(cases.SHAPES)}) or TxBxIxH (default: all names)")
    parser.add_argument("--tasks", nargs="+", default=list(cases.TASKS), choices=cases.TASKS)
    args = parser.parse_args(argv)

    width = max(len(name) for name, _ in args.shapes)
    print(f"{'cell':9} {'shape':{width}} task   float32 ms  float64 ms  ratio")
    ratios = []
    for mode, shape_name, task, f32, f64 in ratio_rows(args.modes, args.shapes, args.tasks, args.budget):
        ratios.append(f64 / f32)
        print(f"{mode:9} {shape_name:{width}} {task:5} {f32 * 1e3:11.3f} {f64 * 1e3:11.3f}  {ratios[-1]:5.2f}",
              flush=True)
    print(f"ratio {min(ratios):.2f}-{max(ratios):.2f}; at most {TARGET} in {sum(r <= TARGET for r in ratios)} "
          f"of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
