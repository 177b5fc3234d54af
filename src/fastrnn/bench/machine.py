"""The machine ``fastrnn bench`` runs on: its GEMM rate (the ceiling the kernels are measured
against), the thread count every implementation gets, and the facts a reader needs to compare
one run with another (CPU, cores, libraries, how busy the machine was).

Square n x n products (the fastest of ``numpy.matmul``, ``fastrnn.ops.matmul`` and
``torch.matmul``) give the ceiling in GFLOP/s.
"""
from __future__ import annotations

import contextlib
import os
import platform

import numpy as np

from fastrnn.bench import baselines
from fastrnn.bench.timing import measure_side_by_side


# ----------------------------------------------------------------------------------------
# The GEMM ceiling.


def gemm_probe(n: int, dtype, budget_s: float, with_torch: bool = False) -> dict:
    """Square n x n products in ``dtype``: the machine's GEMM rate, in GFLOP/s.

    The rate is the best of the libraries here, timed in turns: ``numpy.matmul`` (NumPy's
    BLAS), ``fastrnn.ops.matmul`` (the kernels' Eigen GEMM) and, with ``with_torch`` and torch
    installed, ``torch.matmul``. No one library is fastest on every CPU (OpenBLAS has no
    AVX-512 kernel for some CPUs that Eigen's AVX-512 build runs at full width), and a
    ceiling set by a slow BLAS would flatter the kernels.
    """
    from fastrnn import ops

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.dtype(dtype))  # (n, n)
    b = rng.standard_normal((n, n), dtype=np.dtype(dtype))  # (n, n)
    out = np.empty((n, n), dtype=np.dtype(dtype))  # (n, n)
    runners = {"numpy": lambda: np.matmul(a, b, out=out), "fastrnn": lambda: ops.matmul(a, b)}
    if with_torch:
        try:
            torch = baselines.require("torch")
            ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
            runners["torch"] = lambda: torch.matmul(ta, tb, out=tout)
        except baselines.Unavailable:
            pass
    timings = measure_side_by_side(runners, budget_s)
    rates = {name: 2 * n**3 / timing.median / 1e9 for name, (timing, _) in timings.items()}
    best = max(rates, key=rates.get)
    return {"n": n, "median_ms": timings[best][0].median * 1e3, "gflops": rates[best],
            "library": best, "by_library": rates}


# ----------------------------------------------------------------------------------------
# Threads.


@contextlib.contextmanager
def thread_count(threads: int, with_torch: bool):
    """Give fastrnn, torch and (if threadpoolctl is installed) numpy's BLAS ``threads`` threads.

    Yields notes on what could not be set; the previous counts come back on exit.
    """
    from fastrnn import ops

    notes = []
    previous = ops.get_num_threads()
    ops.set_num_threads(threads)
    torch_previous = None
    if with_torch:
        try:
            torch_previous = baselines.get_torch_threads()
            baselines.set_torch_threads(threads)
        except baselines.Unavailable:
            pass
    with contextlib.ExitStack() as stack:
        try:
            import threadpoolctl
            stack.enter_context(threadpoolctl.threadpool_limits(threads))
        except ImportError:
            if threads != usable_cores():
                notes.append(f"numpy's BLAS (GEMM probe, reference) uses its own thread count, not {threads}: "
                             "install threadpoolctl to make it follow --threads")
        try:
            yield notes
        finally:
            ops.set_num_threads(previous)
            if torch_previous is not None:
                baselines.set_torch_threads(torch_previous)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------
# Facts.


def machine_info(threads: int, dtype) -> dict:
    """The facts a reader needs to compare this run (``threads`` threads, ``dtype``) with another."""
    import fastrnn

    cpu = _cpuinfo()
    info = {
        "cpu_model": cpu["model"],
        "logical_cores": os.cpu_count(),
        "physical_cores": cpu["physical_cores"],
        "usable_cores": usable_cores(),
        "cpu_flags": cpu["flags"],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _blas_name(),
        "torch": baselines.installed_version("torch"),
        "onnxruntime": baselines.installed_version("onnxruntime"),
        "fastrnn": fastrnn.__version__,
        "fastrnn_ops_is_reference": _ops_is_reference(),
        "threads": threads,
        "dtype": np.dtype(dtype).name,
    }
    build = _build_info()
    if build is not None:
        info["fastrnn_build"] = build
    return info


def _cpuinfo() -> dict:
    """Model name, physical cores and instruction-set flags from /proc/cpuinfo (Linux)."""
    info = {"model": platform.processor() or platform.machine(), "physical_cores": None, "flags": []}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            text = cpuinfo.read()
    except OSError:
        return info
    cores, physical_id, flags = set(), "0", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            info["model"] = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
        elif key == "flags":
            flags = set(value.split())
    info["physical_cores"] = len(cores) or None
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")
    info["flags"] = [f for f in wanted if f in flags]
    return info


def _blas_name() -> str | None:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        return None


def _build_info() -> dict | None:
    """The kernels' ``build_info()``, or None where ``fastrnn.ops`` has none (the reference)."""
    from fastrnn import ops

    build_info = getattr(ops, "build_info", None)
    if not callable(build_info):
        return None
    try:
        return dict(build_info())
    except Exception as exc:  # a broken build_info must not spoil the benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}


def _ops_is_reference() -> bool:
    from fastrnn import ops, reference
    return ops.rnn_forward is reference.rnn_forward


# ----------------------------------------------------------------------------------------
# How busy the machine was.


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, those of this process and its children), Linux only."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        with open("/proc/self/stat") as stat:
            own = stat.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    mine = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    return busy / ticks, mine / ticks


def other_load(start: tuple | None, end: tuple | None, elapsed_s: float) -> float | None:
    """The share of the machine's CPU time other processes used between two ``cpu_seconds()``."""
    if start is None or end is None or elapsed_s <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(others, 0.0) / (elapsed_s * (os.cpu_count() or 1))
