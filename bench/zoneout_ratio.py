"""A training step with zoneout over one without, for LSTM and GRU, on the shapes of ``fastrnn bench``.

The two calls of each case take turns (``measure_side_by_side``), so that a machine whose speed
drifts slows both alike. The target is a ratio of at most 1.2: zoneout adds a hash and a select
per unit and step, forward and backward, and no product.

Run: ``python bench/zoneout_ratio.py [--budget SECONDS] [--shapes ...] [--modes lstm gru] [--rate 0.1]``
"""
from __future__ import annotations

import argparse
import sys

from fastrnn import ops
from fastrnn.argtypes import positive_float
from fastrnn.bench import cases
from fastrnn.bench.cli import shape_argument
from fastrnn.bench.timing import measure_side_by_side

TARGET = 1.2


def train_step(case, rate):
    """One forward and BPTT, with zoneout at ``rate`` (0: none)."""
    weights = (case.w_ih, case.w_hh, case.b_ih, case.b_hh)

    def run():
        _, _, _, cache = ops.rnn_forward(case.mode, case.x, case.h0, *weights, c0=case.c0, zoneout=rate,
                                         zoneout_seed=3)
        return ops.rnn_backward(cache, case.dy)["x"]

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=positive_float, default=2.0, metavar="SECONDS")
    parser.add_argument("--shapes", nargs="+", type=shape_argument, default=list(cases.SHAPES.items()),
                        metavar="SHAPE", help=f"names ({', '.join(cases.SHAPES)}) or TxBxIxH (default: all names)")
    parser.add_argument("--modes", nargs="+", default=["lstm", "gru"], choices=["rnn_tanh", "lstm", "gru"])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    print("cell  shape    plain ms  zoneout ms  ratio")
    ratios = []
    for mode in args.modes:
        for shape_name, shape in args.shapes:
            case = cases.make_case(mode, shape, args.dtype)
            timings = measure_side_by_side({"plain": train_step(case, 0.0), "zoneout": train_step(case, args.rate)},
                                           args.budget)
            plain, zoned = timings["plain"][0].median, timings["zoneout"][0].median
            ratios.append(zoned / plain)
            print(f"{mode:5} {shape_name:7} {plain * 1e3:9.3f} {zoned * 1e3:11.3f}  {ratios[-1]:5.2f}", flush=True)
    print(f"ratio {min(ratios):.2f}-{max(ratios):.2f}; at most {TARGET} in {sum(r <= TARGET for r in ratios)} "
          f"of {len(ratios)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
