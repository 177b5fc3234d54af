"""``fastrnn check`` (also plain ``fastrnn``) and ``fastrnn info``: is this build right and fast here?

The check runs every mode through the C++ kernels and through the NumPy reference on one
medium-sized batch, forward and backward, and prints the largest difference between the two
(relative to the size of the values) and how many times faster the kernels are.
"""
from __future__ import annotations

import platform
import sys
import time

import numpy as np

from fastrnn import __version__, ops, reference
from fastrnn.argtypes import positive_int
from fastrnn.bench.cases import make_case
from fastrnn.bench.memory import too_big_for_memory
from fastrnn.modes import GATES

# float32 kernels against the float32 reference: both round, so allow a few float32 ulps per step.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


def add_parser(subparsers) -> None:
    check = subparsers.add_parser(
        "check", help="compare the kernels with the NumPy reference and time both (the default)",
        description=__doc__.split("\n\n")[1])
    check.add_argument("--shape", type=positive_int, nargs=4, metavar=("T", "B", "I", "H"),
                       default=[100, 32, 64, 128], help="sizes of the batch (default: 100 32 64 128)")
    check.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    check.add_argument("--repeats", type=positive_int, default=3, help="timed runs per implementation")
    check.set_defaults(func=run_check)
    info = subparsers.add_parser("info", help="print facts about this build of the kernels")
    info.set_defaults(func=run_info)


def build_facts() -> str:
    info = ops.build_info()
    return (f"fastrnn {__version__}, kernels: Eigen {info['eigen']}, ISA {info['isa']}, "
            f"SIMD {info['simd']}, "
            f"OpenMP {'on' if info['openmp'] else 'off'}, {ops.get_num_threads()} threads "
            f"({ops.threads_source()}); "
            f"numpy {np.__version__}, Python {platform.python_version()}")


def run_info(args) -> int:
    print(build_facts())
    for key, value in ops.build_info().items():
        print(f"  {key}: {value}")
    return 0


def train_step(module, case):
    """One forward and backward of a ``fastrnn.bench.cases.Case``; the outputs and gradients as a flat dict."""
    y, h_n, c_n, cache = module.rnn_forward(case.mode, case.x, None, case.w_ih, case.w_hh, case.b_ih, case.b_hh)
    grads = module.rnn_backward(cache, case.dy)
    out = {"y": y, "h_n": h_n, "c_n": c_n}
    out.update({f"d{k}": v for k, v in grads.items()})
    return out


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm up: first-touch pages, thread start-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def relative_difference(a: dict, b: dict) -> float:
    worst = 0.0
    for key, want in b.items():
        if want is None:
            continue
        scale = max(1.0, float(np.abs(want).max(initial=0)))
        worst = max(worst, float(np.abs(a[key] - want).max(initial=0)) / scale)
    return worst


def run_check(args) -> int:
    T, B, I, H = args.shape
    too_big = too_big_for_memory({f"{T}x{B}x{I}x{H}": (T, B, I, H)}, GATES, args.dtype, ["train"])
    if too_big:
        print(f"fastrnn check: error: {too_big}", file=sys.stderr)
        return 2
    print(build_facts())
    print(f"shape T={T} B={B} I={I} H={H}, {args.dtype}, forward + backward, "
          f"median of {args.repeats}")
    print(f"{'mode':<9} {'max rel. diff':>13} {'kernels':>10} {'reference':>10} {'speed-up':>9}")
    # The kernels are timed before the reference runs at all: NumPy's BLAS threads keep
    # spinning for a while after each call and would slow the kernels' threads down.
    cases = {mode: make_case(mode, (T, B, I, H), args.dtype) for mode in GATES}
    fast = {mode: median_seconds(lambda: train_step(ops, case), args.repeats) for mode, case in cases.items()}
    ok = True
    for mode, case in cases.items():
        diff = relative_difference(train_step(ops, case), train_step(reference, case))
        slow = median_seconds(lambda: train_step(reference, case), args.repeats)
        passed = diff <= TOLERANCE[args.dtype]
        ok &= passed
        print(f"{mode:<9} {diff:>13.2e} {fast[mode] * 1e3:>8.2f}ms {slow * 1e3:>8.2f}ms {slow / fast[mode]:>8.1f}x"
              f"{'' if passed else '  MISMATCH'}")
    print("all modes agree with the reference" if ok else "MISMATCH: the kernels disagree with the reference")
    return 0 if ok else 1
