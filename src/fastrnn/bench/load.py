"""A reproducible competing load for ``fastrnn bench --load N``: N processes that alternate
bursts of computation of 1 to 8 ms with sleeps of 0.5 to 2 ms, as compilers and test runs do,
each drawing its lengths from a seed of its own.

The processes start once for a run and are kept stopped (SIGSTOP) except while a case asks for
the load (``CompetingLoad.active``), so that the idle timings of the same run see an idle
machine. They are this file run as a script by this Python, not ``multiprocessing`` children,
so that they never re-import the caller's main module, and start in a few milliseconds.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time

BURST_MS = (1.0, 8.0)
SLEEP_MS = (0.5, 2.0)


def _burn(seconds: float) -> None:
    """Computation, not waiting: integer work until ``seconds`` have passed."""
    end = time.perf_counter() + seconds
    x = 1
    while time.perf_counter() < end:
        for _ in range(200):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def worker(seed: int) -> None:
    """One competing process (this file run by ``CompetingLoad``): says it is ready on
    stdout, then bursts and sleeps until it is killed."""
    rng = random.Random(seed)
    print("ready", flush=True)
    while True:
        _burn(rng.uniform(*BURST_MS) / 1000)
        time.sleep(rng.uniform(*SLEEP_MS) / 1000)


class CompetingLoad:
    """``with CompetingLoad(n) as load: ... with load.active(): <timed under load>``.

    n = 0 starts nothing, and ``active`` then does nothing either. POSIX only (the processes
    are paused with signals).
    """

    def __init__(self, n: int, seed: int = 0):
        self.n = int(n)
        self.seed = seed
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> CompetingLoad:
        if self.n and not hasattr(signal, "SIGSTOP"):
            raise RuntimeError("a competing load needs POSIX signals (SIGSTOP, SIGCONT)")
        try:
            for k in range(self.n):
                self._processes.append(subprocess.Popen(
                    [sys.executable, "-S", os.path.abspath(__file__), str(self.seed + k)],
                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True))
            for p in self._processes:  # started up, then paused
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a competing load's process failed to start (exit code {p.poll()})")
                p.send_signal(signal.SIGSTOP)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for p in self._processes:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
        self._processes = []

    @contextlib.contextmanager
    def active(self):
        """The load runs inside the block."""
        self._signal(signal.SIGCONT if self._processes else None)
        try:
            yield
        finally:
            self._signal(signal.SIGSTOP if self._processes else None)

    def _signal(self, sig) -> None:
        if sig is None:
            return
        for p in self._processes:
            if p.poll() is None:
                p.send_signal(sig)



if __name__ == "__main__":  # a worker: this file run as a script imports nothing of fastrnn
    worker(int(sys.argv[1]))
