"""Checkpointed BPTT against full BPTT: the peak memory and the time of one training call.

A training call with ``return_sequences=False`` (the loss on the final state only): the forward
keeps either every step (``checkpoint_every=0``) or the state every k steps and one segment
(``checkpoint_every=k``, k about the square root of T by default), and the backward recomputes
each segment from its checkpoint. The targets: a peak, beyond the input and its gradient, under
100 MB for LSTM with T = 100,000, B = 16, I = 64, H = 128 (full BPTT keeps about 3.3 GB there),
and a time at most 1.35 times full BPTT's.

The peak is measured in a fresh subprocess per setting, as ``fastrnn bench`` measures its memory
(``fastrnn.bench.memory``): the growth of the resident set during the call. The times are taken
in turns (``measure_side_by_side``), so that a machine whose speed drifts slows both alike.

Run: ``python bench/checkpointed_bptt.py [--mode lstm] [--shape 100000x16x64x128] [--every K]
[--budget SECONDS] [--dtype float32]``
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np

from fastrnn import ops
from fastrnn.argtypes import positive_float
from fastrnn.bench import memory
from fastrnn.bench.cases import make_case
from fastrnn.bench.cli import shape_argument
from fastrnn.bench.timing import measure_side_by_side

MEMORY_TARGET = 100 * 2**20
TIME_TARGET = 1.35


def train_call(case, every):
    """One training call on the final state only: ``() -> the input's gradient``."""
    weights = (case.w_ih, case.w_hh, case.b_ih, case.b_hh)
    dh_n = np.ones((case.B, case.H), case.dtype)

    def run():
        _, _, _, cache = ops.rnn_forward(case.mode, case.x, case.h0, *weights, c0=case.c0,
                                         checkpoint_every=every, return_sequences=False)
        return ops.rnn_backward(cache, None, dh_n)["x"]

    return run


def _child(mode, shape, dtype, every) -> dict:
    """In the probe's subprocess: the call's resident-set growth beyond the input's gradient."""
    case = make_case(mode, tuple(shape), dtype)
    train_call(make_case(mode, (2, 2, 2, 2), dtype), 0)()  # one-time costs first
    if not memory._reset_peak_rss():
        raise SystemExit("needs Linux's /proc/self/clear_refs")
    before = memory._read_status_kb("VmRSS")
    dx = train_call(case, every)()
    peak = (memory._read_status_kb("VmHWM") - before) * 1024
    return {"peak_bytes": peak, "beyond_dx_bytes": peak - dx.nbytes}


def peak_memory(mode, shape, dtype, every) -> dict:
    code = ("import json, sys; sys.path.insert(0, 'bench'); from checkpointed_bptt import _child; "
            "print(json.dumps(_child(*json.loads(sys.argv[1]))))")
    argument = json.dumps([mode, list(shape), np.dtype(dtype).name, every])
    done = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True,
                          env=memory._child_environment(), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="lstm")
    parser.add_argument("--shape", type=shape_argument, default="100000x16x64x128", help="TxBxIxH")
    parser.add_argument("--every", type=int, default=None, help="checkpoint_every (default: ceil(sqrt(T)))")
    parser.add_argument("--budget", type=positive_float, default=30.0, help="seconds of timing per setting")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-timing", action="store_true", help="only the memory")
    args = parser.parse_args(argv)
    _, shape = args.shape
    T = shape[0]
    every = args.every or math.ceil(math.sqrt(T))
    settings = {"full": 0, f"every {every}": every}
    print(f"{args.mode} T, B, I, H = {shape}, {args.dtype}, return_sequences=False")
    for name, k in settings.items():
        row = peak_memory(args.mode, shape, args.dtype, k)
        print(f"  {name:>12}: peak {row['peak_bytes'] / 2**20:8.1f} MiB, "
              f"beyond dx {row['beyond_dx_bytes'] / 2**20:8.1f} MiB")
    failed = row["beyond_dx_bytes"] >= MEMORY_TARGET
    if not args.no_timing:
        case = make_case(args.mode, shape, args.dtype)
        runners = {name: train_call(case, k) for name, k in settings.items()}
        timings = measure_side_by_side(runners, args.budget)
        full, checkpointed = (timings[name][0].median for name in settings)
        ratio = checkpointed / full
        print(f"  time: full {full:.3f} s, checkpointed {checkpointed:.3f} s, ratio {ratio:.3f} "
              f"(target <= {TIME_TARGET})")
        failed |= ratio > TIME_TARGET
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
