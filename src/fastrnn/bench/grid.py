"""A whole ``fastrnn bench`` run: its settings, the GEMM probe, every case of the grid with its
implementations side by side, the memory probes and the scaling study, gathered into the report
(a dict of plain values, which ``fastrnn.bench.report`` prints and writes as JSON).

All implementations of a case get the same inputs and weights (PyTorch's layout is the kernels'
layout) and the same thread count, and their outputs are checked against fastrnn's, so a timing
is never of a different computation. The NumPy reference is timed too, as the floor, except
where a rough estimate says one call would take longer than ``--reference-limit`` seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fastrnn.bench import baselines
from fastrnn.bench.cases import DEFAULT_MODES, SHAPES, TASKS, make_case, scaling_series, task_flops
from fastrnn.bench.load import CompetingLoad
from fastrnn.bench.machine import cpu_seconds, gemm_probe, machine_info, other_load, thread_count
from fastrnn.bench.memory import memory_probe
from fastrnn.bench.report import collect_notes
from fastrnn.bench.runners import IMPLS, REFERENCE_LIMIT_S, agreement_error, does, functional_runner, make_runner
from fastrnn.bench.timing import measure_side_by_side

BUDGET_S = 1.0  # timing budget per implementation and case
GEMM_SIZES = (1024, 2048)  # n of the GEMM probe's n x n products
#: ``--quick``: the reduced grid.
QUICK_SHAPES = ("small", "single")
QUICK_BUDGET_S = 0.25
QUICK_GEMM_SIZES = (1024,)


@dataclass
class Settings:
    """What to run and how; built from the command line."""

    modes: tuple = DEFAULT_MODES
    shapes: dict = field(default_factory=lambda: dict(SHAPES))
    tasks: tuple = TASKS
    impls: tuple = IMPLS
    dtype: np.dtype = np.dtype(np.float32)
    threads: int = 1
    budget_s: float = BUDGET_S
    reference_limit_s: float = REFERENCE_LIMIT_S
    gemm_sizes: tuple = GEMM_SIZES
    memory: bool = True
    scaling: bool = False
    load: int = 0  # competing processes to time each case beside too (fastrnn.bench.load)

    def as_dict(self) -> dict:
        """The settings as plain values, for the report."""
        return {"modes": list(self.modes), "shapes": {k: list(v) for k, v in self.shapes.items()},
                "tasks": list(self.tasks), "impls": list(self.impls), "dtype": self.dtype.name,
                "threads": self.threads, "budget_s": self.budget_s,
                "reference_limit_s": self.reference_limit_s, "gemm_sizes": list(self.gemm_sizes),
                "memory": self.memory, "scaling": self.scaling, "load": self.load}


# ----------------------------------------------------------------------------------------
# The whole run.


def run_benchmark(settings: Settings, progress=lambda message: None) -> dict:
    """Run the GEMM probe, the grid, the memory probes and (optionally) the scaling study.

    Returns the report: ``settings``, ``machine``, ``gemm``, ``gemm_ceiling_gflops``,
    ``results`` (one row per case), ``memory``, ``scaling``, ``notes``, ``elapsed_s``.
    """
    start, cpu_start = time.perf_counter(), cpu_seconds()
    machine = machine_info(settings.threads, settings.dtype)  # first: the load average before the run
    with_torch = "torch" in settings.impls or "onnxruntime" in settings.impls
    with thread_count(settings.threads, with_torch) as notes, CompetingLoad(settings.load) as load:
        report = _run(settings, progress, machine, load)
    report["elapsed_s"] = time.perf_counter() - start
    machine["other_processes_cpu_share"] = other_load(cpu_start, cpu_seconds(), report["elapsed_s"])
    report["notes"] = collect_notes(report["results"], machine, notes)
    return report


def _run(settings: Settings, progress, machine: dict, load: CompetingLoad) -> dict:
    gemm = [gemm_probe(n, settings.dtype, settings.budget_s, with_torch="torch" in settings.impls)
            for n in settings.gemm_sizes]
    ceiling = max(g["gflops"] for g in gemm)
    progress(f"GEMM ceiling {ceiling:.1f} GFLOP/s")
    return {
        "settings": settings.as_dict(),
        "machine": machine,
        "gemm": gemm,
        "gemm_ceiling_gflops": ceiling,
        "results": _grid(settings, progress, ceiling * 1e9, load),
        "memory": _memory(settings, progress),
        "scaling": scaling_study(settings, progress) if settings.scaling else [],
        "flops": {"forward": "2*T*B*G*H*(I+H)", "train": "3 * forward"},
    }


def _grid(settings: Settings, progress, gemm_rate: float, load: CompetingLoad | None = None) -> list[dict]:
    """A row for every (mode, shape, task), in that order."""
    rows = []
    for mode in settings.modes:
        for shape_name in settings.shapes:
            for task in settings.tasks:
                row = bench_case(mode, shape_name, task, settings, gemm_rate, load)
                rows.append(row)
                times = ", ".join(f"{impl} {t['median_ms']:.2f} ms" for impl, t in row["times"].items())
                if row.get("loaded"):
                    times += "; under load " + ", ".join(
                        f"{impl} {t['median_ms']:.2f} ms" for impl, t in row["loaded"]["times"].items())
                progress(f"{mode} {shape_name} {task}: {times}")
    return rows


def _memory(settings: Settings, progress) -> list[dict]:
    """The peak memory of fastrnn's train call for every (mode, shape), when asked for."""
    rows = []
    if settings.memory and "fastrnn" in settings.impls and "train" in settings.tasks:
        for mode in settings.modes:
            for shape_name, shape in settings.shapes.items():
                rows.append(memory_probe(mode, shape, settings.dtype, settings.threads))
                progress(f"memory {mode} {shape_name} done")
    return rows


# ----------------------------------------------------------------------------------------
# One case of the grid.


def bench_case(mode: str, shape_name: str, task: str, settings: Settings, gemm_rate: float,
               load: CompetingLoad | None = None) -> dict:
    """Time every implementation on one (mode, shape, task); returns the row for the table/JSON.

    With a load of processes (``settings.load``), the case is timed again beside it, with fastrnn
    on one kernel thread too: ``row["loaded"]``.
    """
    shape = settings.shapes[shape_name]
    case = make_case(mode, shape, settings.dtype)
    flops = task_flops(mode, task, *shape)
    row = {"mode": mode, "shape": shape_name, "T": shape[0], "B": shape[1], "I": shape[2], "H": shape[3],
           "task": task, "flops": flops, "times": {}, "skipped": {}, "mismatch": {}}
    runners = {}
    for impl in settings.impls:
        if not does(impl, task):
            continue
        try:
            runners[impl] = make_runner(impl, case, task, settings.threads, settings.reference_limit_s, gemm_rate)
        except baselines.Unavailable as exc:
            row["skipped"][impl] = str(exc)
    _add_timings(row, measure_side_by_side(runners, settings.budget_s), settings.dtype)
    if load is not None and load.n > 0:
        row["loaded"] = _loaded_timings(row, runners, settings, load)
    del runners
    _add_ratio(row, gemm_rate)
    return row


def _loaded_timings(row: dict, runners: dict, settings: Settings, load: CompetingLoad) -> dict:
    """The case's times beside the load, fastrnn's on one kernel thread among them, and fastrnn's
    time there over its idle time and over its time on one thread."""
    runners = {impl: run for impl, run in runners.items() if impl != "reference"}
    if "fastrnn" in runners and settings.threads > 1:
        runners["fastrnn, 1 thread"] = _on_one_thread(runners["fastrnn"])
    with load.active():
        measured = measure_side_by_side(runners, settings.budget_s)
    times = {impl: timing.as_dict() for impl, (timing, _) in measured.items()}
    loaded = {"processes": load.n, "times": times, "over_idle": None, "over_one_thread": None}
    if "fastrnn" in times:
        ms = times["fastrnn"]["median_ms"]
        loaded["over_idle"] = ms / row["times"]["fastrnn"]["median_ms"]
        one = times.get("fastrnn, 1 thread", times["fastrnn"])["median_ms"]
        loaded["over_one_thread"] = ms / one
    return loaded


def _on_one_thread(run):
    """``run`` with the kernels on one thread for the call."""
    from fastrnn import ops

    def call():
        before = ops.get_num_threads()
        ops.set_num_threads(1)
        try:
            return run()
        finally:
            ops.set_num_threads(before)

    return call


def _add_timings(row: dict, measured: dict, dtype) -> None:
    """Each implementation's time and GFLOP/s, and how far its result is from fastrnn's (or from
    the first implementation's) where that is beyond the dtype's tolerance."""
    tolerance = 1e-3 if dtype == np.float32 else 1e-9
    anchor = None
    for impl, (timing, result) in measured.items():
        row["times"][impl] = timing.as_dict()
        row["times"][impl]["gflops"] = row["flops"] / timing.median / 1e9
        if anchor is None:
            anchor = result
        else:
            error = agreement_error(result, anchor)
            if not error <= tolerance:  # also catches NaN
                row["mismatch"][impl] = error


def _add_ratio(row: dict, gemm_rate: float) -> None:
    """fastrnn's GFLOP/s, its share of the GEMM ceiling and its time over the best alternative's."""
    times = {impl: t["median_ms"] for impl, t in row["times"].items()}
    row["gflops"] = row["pct_gemm"] = row["ratio"] = row["best_alternative"] = None
    if "fastrnn" not in times:
        return
    row["gflops"] = row["times"]["fastrnn"]["gflops"]
    row["pct_gemm"] = 100 * row["gflops"] * 1e9 / gemm_rate
    others = {impl: ms for impl, ms in times.items() if impl != "fastrnn"}
    if others:
        best = min(others, key=others.get)
        row["best_alternative"] = best
        row["ratio"] = times["fastrnn"] / others[best]


# ----------------------------------------------------------------------------------------
# Scaling in T and B.


def scaling_study(settings: Settings, progress) -> list[dict]:
    """fastrnn's time as T grows (fixed B) and as B grows (fixed T), I = H = 128.

    ``per_step_sample`` is the time per (time step x sequence) relative to the first row of
    the same series: 1.0 all along means cost linear in T (or B). The sizes of a series take
    turns, as the implementations of a case do, so that a machine whose speed drifts does not
    pass for a cost that grows faster or slower than linear.
    """
    from fastrnn import ops

    rows = []
    for mode in settings.modes:
        for task in settings.tasks:
            for grows, shapes in scaling_series().items():
                runners = {shape: functional_runner(ops, make_case(mode, shape, settings.dtype), task)
                           for shape in shapes}
                timings = measure_side_by_side(runners, settings.budget_s)
                del runners
                rows += _scaling_rows(mode, task, grows, shapes, timings, progress)
    return rows


def _scaling_rows(mode: str, task: str, grows: str, shapes: list, timings: dict, progress) -> list[dict]:
    """One series' rows, each time per step and sequence relative to the series' first."""
    rows, first = [], None
    for shape in shapes:
        timing = timings[shape][0]
        unit = timing.median / (shape[0] * shape[1])  # seconds per step per sequence
        first = first or unit
        rows.append({"mode": mode, "task": task, "grows": grows, "T": shape[0], "B": shape[1],
                     "I": shape[2], "H": shape[3], "median_ms": timing.median * 1e3,
                     "per_step_sample": unit / first})
        progress(f"scaling {mode} {task} T={shape[0]} B={shape[1]}: {timing.median * 1e3:.1f} ms")
    return rows
