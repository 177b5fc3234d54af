"""The cost of recurrent dropout: a training step (``ops.rnn_forward`` + ``rnn_backward``) with
per-gate masks on h (``recurrent_masks``, rate 0.2, as ``LSTM(recurrent_dropout=0.2)`` draws
them) over the same step without, for LSTM and GRU on the shapes of ``fastrnn bench``.

    python bench/recurrent_dropout.py [--shapes small medium ...] [--repeats 7] [--inputs]

``--inputs`` adds per-gate input masks too (``dropout`` with ``recurrent_dropout``). The two
variants run in turns, and each time is the median of its repeats after a warm-up. Timings mean
something only on an idle machine: the load average is printed first.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fastrnn import ops
from fastrnn.bench.cases import SHAPES
from fastrnn.modes import GATES


def case(mode, T, B, I, H, rng):  # noqa: E741
    G, k = GATES[mode], 1 / np.sqrt(H)
    return dict(x=rng.standard_normal((T, B, I), dtype=np.float32), h0=None,
                w_ih=rng.uniform(-k, k, (G * H, I)).astype(np.float32),
                w_hh=rng.uniform(-k, k, (G * H, H)).astype(np.float32),
                b_ih=np.zeros(G * H, np.float32), b_hh=np.zeros(G * H, np.float32))


def masks(shape, rate, rng):
    return ((rng.random(shape) >= rate) / np.float32(1 - rate)).astype(np.float32)


def step(mode, args, dy, **masked):
    _, _, _, cache = ops.rnn_forward(mode, **args, **masked)
    ops.rnn_backward(cache, dy)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--modes", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inputs", action="store_true", help="input masks per gate too")
    options = parser.parse_args()
    print(f"load average {os.getloadavg()}, {ops.get_num_threads()} kernel threads")
    print(f"{'mode':5} {'shape':7} {'(T, B, I, H)':22} {'plain ms':>9} {'masked ms':>9} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for mode in options.modes:
        for name in options.shapes:
            T, B, I, H = SHAPES[name]  # noqa: E741
            args = case(mode, T, B, I, H, rng)
            dy = rng.standard_normal((T, B, H), dtype=np.float32)
            G = GATES[mode]
            masked = {"recurrent_masks": masks((G, B, H), 0.2, rng)}
            if options.inputs:
                masked["input_masks"] = masks((G, B, I), 0.2, rng)
            times = {"plain": [], "masked": []}
            step(mode, args, dy)
            step(mode, args, dy, **masked)
            for _ in range(options.repeats):
                for variant, extra in (("plain", {}), ("masked", masked)):
                    start = time.perf_counter()
                    step(mode, args, dy, **extra)
                    times[variant].append(time.perf_counter() - start)
            plain, with_masks = (1e3 * float(np.median(times[v])) for v in ("plain", "masked"))
            print(f"{mode:5} {name:7} {str((T, B, I, H)):22} {plain:9.2f} {with_masks:9.2f} "
                  f"{with_masks / plain:6.2f}")


if __name__ == "__main__":
    main()
