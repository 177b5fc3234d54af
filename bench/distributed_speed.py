"""Data-parallel ``fit`` over MPI against one process, on LSTM medium of ``fastrnn bench``.

    python bench/distributed_speed.py [--rounds 3] [--steps 20] [--ranks 2] [--cores 2]

The model: LSTM(256) on x (B, 100, 128), Dense(1), mean squared error, Adam, float32; global
batches of 64 rows. Two set-ups share the machine's ``--cores`` cores:

- one process with ``--cores`` kernel threads;
- ``mpiexec -n RANKS`` with ``cores / ranks`` threads each (``fastrnn.distributed``'s default).

Each run is a fresh launch that fits one epoch of ``--steps`` batches after a warm-up epoch of
two; it reports samples per second over the timed epoch and, for the ranks, the time rank 0
spent in the gradients' Allreduce and in the small Allreduce of the logs, per step (waiting for
the slower rank included), and the time of that Allreduce alone, all ranks ready. The rounds
alternate which set-up runs first; the table gives medians over the rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

T, B, I, H = 100, 64, 128, 256  # LSTM medium, as in fastrnn bench


def worker(steps: int) -> None:
    import fastrnn
    from fastrnn import distributed, layers

    distributed.init()
    fastrnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps * B, T, I)).astype(np.float32)
    y = rng.normal(size=(steps * B, 1)).astype(np.float32)
    inputs = fastrnn.Input(shape=(T, I), dtype="float32")
    model = fastrnn.Model(inputs, layers.Dense(1)(layers.LSTM(H)(inputs)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x[:2 * B], y[:2 * B], batch_size=B, epochs=1, verbose=0)  # warm-up
    before = distributed.stats()
    distributed.barrier()
    start = time.perf_counter()
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    after = distributed.stats()
    exchange = _allreduce_alone(model) if distributed.size() > 1 else 0.0
    if distributed.is_chief():
        grads = after["gradient_calls"] - before["gradient_calls"]
        print(json.dumps({
            "ranks": distributed.size(), "threads": fastrnn.get_num_threads(),
            "samples_per_s": steps * B / seconds,
            "gradient_ms_per_step": 1e3 * (after["gradient_seconds"] - before["gradient_seconds"]) / max(grads, 1),
            "logs_ms_per_step": 1e3 * (after["logs_seconds"] - before["logs_seconds"]) / max(grads, 1),
            "bytes_per_step": (after["gradient_bytes"] - before["gradient_bytes"]) // max(grads, 1),
            "params": sum(p.size for p in model.trainable_params),
            "allreduce_alone_ms": 1e3 * exchange,
        }), flush=True)


def _allreduce_alone(model, repeats: int = 15) -> float:
    """The median time of the gradients' Allreduce with every rank ready (after a barrier):
    the exchange itself, without the waiting for a slower rank that fit's figure includes."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buffer = np.zeros(sum(p.size for p in model.trainable_params), dtype=np.float32)
    times = []
    for _ in range(repeats):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def launch(ranks: int, cores: int, steps: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // ranks)),
               PYTHONWARNINGS="ignore::RuntimeWarning")
    command = [sys.executable, __file__, "--worker", "--steps", str(steps)]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable),
                                                                env.get("PATH", "")]))
        command = [mpiexec, "-n", str(ranks), *command]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps)
        return
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    runs = {1: [], args.ranks: []}
    for k in range(args.rounds):
        for ranks in ((1, args.ranks) if k % 2 == 0 else (args.ranks, 1)):
            result = launch(ranks, args.cores, args.steps)
            runs[ranks].append(result)
            print(json.dumps(result))
    print()
    print("| set-up | samples/s | gradient Allreduce ms/step | logs Allreduce ms/step | "
          "Allreduce alone ms | bytes/step |")
    print("|---|---|---|---|---|---|")
    for ranks, results in runs.items():
        threads = results[0]["threads"]
        med = {key: statistics.median(r[key] for r in results)
               for key in ("samples_per_s", "gradient_ms_per_step", "logs_ms_per_step",
                           "allreduce_alone_ms")}
        print(f"| {ranks} rank(s) x {threads} thread(s) | {med['samples_per_s']:.1f} | "
              f"{med['gradient_ms_per_step']:.3f} | {med['logs_ms_per_step']:.3f} | "
              f"{med['allreduce_alone_ms']:.3f} | {results[0]['bytes_per_step']:,} |")


if __name__ == "__main__":
    main()
