"""Inference of a ``torch.nn.LSTM`` against the same module converted with
``fastrnn.interop.from_torch``, on the shapes of ``fastrnn bench``.

    python bench/interop_speed.py [--threads 2] [--rounds 7] [--shapes small medium ...]

Two ways of calling each, on the same float32 data and weights:

- batch-major: the module with ``batch_first=True`` on x (B, T, I) under
  ``torch.inference_mode()``, against the converted layer's call ``layer(x)`` (which turns the
  batch to time-major and back, as every Keras-style layer does);
- time-major: the module with ``batch_first=False`` on x (T, B, I), against
  ``fastrnn.interop.torch_forward(layer, x)`` (no transposes).

Both use ``--threads`` threads. After a warm-up call each, the rounds alternate which of the
two runs first; each round times one call of each, and the table gives the median time of
each and the median of the rounds' ratios (torch's time over fastrnn's: above 1, fastrnn is
faster). Outputs are checked to agree (rtol 1e-4) before timing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

SHAPES = {  # (T, B, I, H), as in fastrnn bench
    "small": (50, 32, 32, 64),
    "medium": (100, 64, 128, 256),
    "large": (200, 128, 256, 512),
    "long": (1000, 16, 64, 128),
    "single": (100, 1, 128, 256),
}


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def compare(run_torch, run_fastrnn, rounds):
    """-> (median torch seconds, median fastrnn seconds, median ratio torch/fastrnn)."""
    np.testing.assert_allclose(run_fastrnn(), run_torch(), rtol=1e-4, atol=1e-5)  # also warms up
    t_torch, t_fast, ratios = [], [], []
    for k in range(rounds):
        if k % 2 == 0:
            a, b = timed(run_torch), timed(run_fastrnn)
        else:
            b, a = timed(run_fastrnn), timed(run_torch)
        t_torch.append(a)
        t_fast.append(b)
        ratios.append(a / b)
    return statistics.median(t_torch), statistics.median(t_fast), statistics.median(ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    args = parser.parse_args()

    import torch

    import fastrnn
    from fastrnn import interop

    torch.set_num_threads(args.threads)
    fastrnn.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, fastrnn {fastrnn.__version__} "
          f"({fastrnn.ops.build_info()['isa']}), {args.threads} threads, "
          f"{args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'shape':<8} {'(T, B, I, H)':<20} {'layout':<13} {'torch ms':>9} {'fastrnn ms':>11} "
          f"{'speed-up':>9}")
    for name in args.shapes:
        T, B, I, H = SHAPES[name]  # noqa: E741
        torch.manual_seed(0)
        x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
        for batch_first in (True, False):
            module = torch.nn.LSTM(I, H, batch_first=batch_first).eval()
            layer = interop.from_torch(module)
            data = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
            xt = torch.from_numpy(data)

            def run_torch():
                with torch.inference_mode():
                    return module(xt)[0].numpy()

            if batch_first:
                def run_fastrnn():
                    return layer(data)
            else:
                def run_fastrnn():
                    return interop.torch_forward(layer, data)[0]

            t_torch, t_fast, ratio = compare(run_torch, run_fastrnn, args.rounds)
            layout = "batch-major" if batch_first else "time-major"
            print(f"{name:<8} {str((T, B, I, H)):<20} {layout:<13} {t_torch * 1e3:9.2f} "
                  f"{t_fast * 1e3:11.2f} {ratio:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
