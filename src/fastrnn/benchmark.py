"""``fastrnn bench``: time fastrnn's kernels beside PyTorch, ONNX Runtime and the NumPy reference.

What is measured, for each cell mode, shape (T, B, I, H) and task:

- ``train``: ``fastrnn.ops.rnn_forward(..., training=True)`` then ``rnn_backward`` with a given
  ``dy``: the gradients of x, the initial state and every weight. PyTorch does the same with
  ``torch.nn.LSTM/GRU/RNN`` (forward, then backward of ``(y * dy).sum()``).
- ``infer``: ``rnn_forward(..., training=False)``; PyTorch under ``torch.inference_mode()``;
  ONNX Runtime running the same torch module exported to ONNX.

The NumPy reference (``fastrnn.reference``) is timed too, as the floor, except where a rough
estimate says one call would take longer than ``--reference-limit`` seconds. All
implementations get the same inputs and weights (PyTorch's layout is the kernels' layout) and
the same thread count, and their outputs are checked against fastrnn's, so a timing is never
of a different computation. Square n x n products (the fastest of ``numpy.matmul``,
``fastrnn.ops.matmul`` and ``torch.matmul``) give the machine's ceiling in GFLOP/s.

Timing: one warm-up call each, then repeated calls until each implementation has spent the
per-case budget (at least 3 calls, or fewer when a single call takes more than 3 budgets); the
median is reported. The implementations of a case take turns, a fifth of the budget at a time,
so that a machine whose speed drifts during a case slows them all alike; each turn starts after
a pause (the previous implementation's threads go on spinning for a while) and one untimed call.

FLOP counts (only the GEMMs, which dominate; the element-wise gate math is left out):

- forward: ``2*T*B*G*H*(I+H)``, the input product ``(T*B, I) x (I, G*H)`` and the
  recurrent product ``(B, H) x (H, G*H)`` at each of the T steps;
- train: 3x forward, the forward plus the two backward GEMMs per product (one for the
  gradient of the product's input, one for the weight gradient).

GFLOP/s = FLOPs / median time. The ratio column is fastrnn's time over the fastest other
implementation's: below 1 means fastrnn is faster.

Peak memory (``train`` only) is measured in a fresh subprocess: the growth of the resident
set during one forward+backward call, read from Linux's ``VmHWM`` after resetting it through
``/proc/self/clear_refs`` (elsewhere: ``ru_maxrss``, an upper bound). It counts every
allocation, C++ and NumPy alike, including the outputs and gradients the call returns, and
is shown beside the workspace BPTT cannot do without, ``T*B*G*H`` values.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from fastrnn._args import MAX_THREADS
from fastrnn.argtypes import positive_float, positive_int
from fastrnn.modes import GATES

# ----------------------------------------------------------------------------------------
# The grid.

#: Benchmark shapes, (T, B, I, H).
SHAPES = {
    "small": (50, 32, 32, 64),
    "medium": (100, 64, 128, 256),
    "large": (200, 128, 256, 512),
    "long": (1000, 16, 64, 128),
    "single": (100, 1, 128, 256),
}
ALL_MODES = ("rnn_tanh", "rnn_relu", "lstm", "gru")
DEFAULT_MODES = ("rnn_tanh", "lstm", "gru")
TASKS = ("train", "infer")
IMPLS = ("fastrnn", "torch", "onnxruntime", "reference")

QUICK_SHAPES = ("small", "single")
GEMM_SIZES = (1024, 2048)
QUICK_GEMM_SIZES = (1024,)
BUDGET_S = 1.0  # timing budget per implementation and case
ROUNDS = 5  # turns the implementations of a case take in rotation, each a fifth of the budget
# Pause before each turn: the thread pools of the implementation that ran last keep spinning on
# the cores for a while after their last call (OpenBLAS for about 2**28 cycles, 0.1 s here) and
# would slow whatever runs next by as much as 2x on a 2-core machine.
SETTLE_S = 0.12
QUICK_BUDGET_S = 0.25
REFERENCE_LIMIT_S = 10.0

#: The scaling study: T grows at fixed B, then B grows at fixed T; I = H = 128.
SCALING_T = (100, 1000, 10000)
SCALING_B = (16, 64, 256)
SCALING_FIXED_B = 16
SCALING_FIXED_T = 100
SCALING_IH = 128


def forward_flops(mode: str, T: int, B: int, I: int, H: int) -> int:  # noqa: E741
    """GEMM FLOPs of one forward pass: ``2*T*B*G*H*(I+H)`` (see the module docstring)."""
    return 2 * T * B * GATES[mode] * H * (I + H)


def task_flops(mode: str, task: str, T: int, B: int, I: int, H: int) -> int:  # noqa: E741
    """GEMM FLOPs of a task: the forward's for ``infer``, three times it for ``train``."""
    return forward_flops(mode, T, B, I, H) * (3 if task == "train" else 1)


# ----------------------------------------------------------------------------------------
# Cases: the inputs and weights every implementation gets.


@dataclass
class Case:
    """One benchmark problem in the kernel layout of ``fastrnn.modes``."""

    mode: str
    dtype: np.dtype
    T: int
    B: int
    I: int  # noqa: E741
    H: int
    x: np.ndarray  # (T, B, I)
    h0: np.ndarray  # (B, H)
    c0: np.ndarray | None  # (B, H), LSTM only
    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)
    dy: np.ndarray  # (T, B, H), the output gradient of the train task


def make_case(mode: str, shape: tuple, dtype, seed: int = 0) -> Case:
    """Random inputs and weights for ``shape = (T, B, I, H)`` in ``dtype``.

    Weights are uniform in [-1/sqrt(H), 1/sqrt(H)] (PyTorch's initialisation), x, the states
    and dy standard normal. Each array is drawn directly in ``dtype`` so that making a case
    allocates nothing beyond the arrays themselves (the memory probe relies on this).
    """
    T, B, I, H = shape  # noqa: E741
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    G = GATES[mode]
    k = dtype.type(1 / np.sqrt(H))

    def uniform(*size):
        a = rng.random(size, dtype=dtype)  # in [0, 1)
        a *= 2 * k
        a -= k
        return a

    def normal(*size):
        return rng.standard_normal(size, dtype=dtype)

    return Case(mode=mode, dtype=dtype, T=T, B=B, I=I, H=H,
                x=normal(T, B, I), h0=normal(B, H), c0=normal(B, H) if mode == "lstm" else None,
                w_ih=uniform(G * H, I), w_hh=uniform(G * H, H), b_ih=uniform(G * H),
                b_hh=uniform(G * H), dy=normal(T, B, H))


def functional_runner(module, case: Case, task: str):
    """A function of no arguments running ``module.rnn_forward``/``rnn_backward`` on the case.

    module: ``fastrnn.ops`` or ``fastrnn.reference``. The function returns ``(y, dx)``:
    y (T, B, H) and, for ``train``, dx (T, B, I) (None for ``infer``).
    """
    weights = (case.w_ih, case.w_hh, case.b_ih, case.b_hh)

    def train():
        y, _, _, cache = module.rnn_forward(case.mode, case.x, case.h0, *weights, c0=case.c0, training=True)
        grads = module.rnn_backward(cache, case.dy)
        return y, grads["x"]

    def infer():
        y, _, _, _ = module.rnn_forward(case.mode, case.x, case.h0, *weights, c0=case.c0, training=False)
        return y, None

    return train if task == "train" else infer


# ----------------------------------------------------------------------------------------
# Timing.


@dataclass
class Timing:
    """Seconds per call: the median of ``repeats`` timed calls after one warm-up call."""

    median: float
    low: float
    high: float
    repeats: int
    warmup: float

    def as_dict(self) -> dict:
        return {"median_ms": self.median * 1e3, "min_ms": self.low * 1e3, "max_ms": self.high * 1e3,
                "repeats": self.repeats, "warmup_ms": self.warmup * 1e3}


def measure(run, budget_s: float, max_repeats: int = 1000):
    """Time ``run()``: one warm-up call, then calls until ``budget_s`` seconds are spent.

    At least 3 timed calls, unless they would take more than 3 budgets (then at least 1).
    The garbage collector is off while timing, as in ``timeit``.
    Returns ``(Timing, result of the warm-up call)``.
    """
    return measure_side_by_side({"run": run}, budget_s, max_repeats=max_repeats)["run"]


def measure_side_by_side(runners: dict, budget_s: float, rounds: int = ROUNDS, max_repeats: int = 1000,
                         settle_s: float = SETTLE_S) -> dict:
    """Time several implementations of one case in turns: ``{name: (Timing, warm-up result)}``.

    Each runner gets one warm-up call; then the runners take turns of about ``budget_s / rounds``
    seconds (at least one timed call each) until every one has spent its budget under the rule
    of ``measure``. A machine whose speed drifts over the seconds a case takes (a shared or
    virtual machine does) then slows every implementation alike, and their ratios hold. With
    more than one runner, each turn starts with a pause of ``settle_s`` and one untimed call, so
    that no implementation is timed while the previous one's threads still hold the cores.
    """
    gc.collect()
    first, warmup = {}, {}
    for name, run in runners.items():  # the first call pays one-time costs: allocation, thread start-up
        start = time.perf_counter()
        first[name] = run()
        warmup[name] = time.perf_counter() - start
    times = {name: [] for name in runners}

    def done(name) -> bool:
        spent, count = sum(times[name]), len(times[name])
        return count >= max_repeats or (spent >= budget_s and (count >= 3 or spent >= 3 * budget_s))

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        while not all(done(name) for name in runners):
            for name, run in runners.items():
                if done(name):
                    continue
                if len(runners) > 1:
                    time.sleep(settle_s)
                    run()
                turn = 0.0
                while not done(name) and (turn == 0.0 or turn < budget_s / rounds):
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
                    turn += times[name][-1]
    finally:
        if was_enabled:
            gc.enable()
    return {name: (Timing(statistics.median(t), min(t), max(t), len(t), warmup[name]), first[name])
            for name, t in times.items()}


def gemm_probe(n: int, dtype, budget_s: float, with_torch: bool = False) -> dict:
    """Square n x n products in ``dtype``: the machine's GEMM rate, in GFLOP/s.

    The rate is the best of the libraries here, timed in turns: ``numpy.matmul`` (NumPy's
    BLAS), ``fastrnn.ops.matmul`` (the kernels' Eigen GEMM) and, with ``with_torch`` and torch
    installed, ``torch.matmul``. No one library is fastest on every CPU (OpenBLAS has no
    AVX-512 kernel for some CPUs that Eigen's AVX-512 build runs at full width), and a
    ceiling set by a slow BLAS would flatter the kernels.
    """
    from fastrnn import _baselines, ops

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.dtype(dtype))  # (n, n)
    b = rng.standard_normal((n, n), dtype=np.dtype(dtype))  # (n, n)
    out = np.empty((n, n), dtype=np.dtype(dtype))  # (n, n)
    runners = {"numpy": lambda: np.matmul(a, b, out=out), "fastrnn": lambda: ops.matmul(a, b)}
    if with_torch:
        try:
            torch = _baselines._import("torch")
            ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
            runners["torch"] = lambda: torch.matmul(ta, tb, out=tout)
        except _baselines.Unavailable:
            pass
    timings = measure_side_by_side(runners, budget_s)
    rates = {name: 2 * n**3 / timing.median / 1e9 for name, (timing, _) in timings.items()}
    best = max(rates, key=rates.get)
    return {"n": n, "median_ms": timings[best][0].median * 1e3, "gflops": rates[best],
            "library": best, "by_library": rates}


def estimate_reference_seconds(mode: str, task: str, shape: tuple, gemm_flops_per_s: float) -> float:
    """A deliberately rough guess of one reference call's time, to skip hopeless cases.

    Its GEMMs at a quarter of the GEMM probe's rate, plus the Python overhead of each time
    step (about 50 us forward, 150 us forward and backward).
    """
    T = shape[0]
    per_step = 150e-6 if task == "train" else 50e-6
    return task_flops(mode, task, *shape) / (0.25 * gemm_flops_per_s) + T * per_step


# ----------------------------------------------------------------------------------------
# Threads.


@contextlib.contextmanager
def thread_count(threads: int, with_torch: bool):
    """Give fastrnn, torch and (if threadpoolctl is installed) numpy's BLAS ``threads`` threads.

    Yields notes on what could not be set; the previous counts come back on exit.
    """
    from fastrnn import _baselines, ops

    notes = []
    previous = ops.get_num_threads()
    ops.set_num_threads(threads)
    torch_previous = None
    if with_torch:
        try:
            torch_previous = _baselines.get_torch_threads()
            _baselines.set_torch_threads(threads)
        except _baselines.Unavailable:
            pass
    with contextlib.ExitStack() as stack:
        try:
            import threadpoolctl
            stack.enter_context(threadpoolctl.threadpool_limits(threads))
        except ImportError:
            if threads != _usable_cores():
                notes.append(f"numpy's BLAS (GEMM probe, reference) uses its own thread count, not {threads}: "
                             "install threadpoolctl to make it follow --threads")
        try:
            yield notes
        finally:
            ops.set_num_threads(previous)
            if torch_previous is not None:
                _baselines.set_torch_threads(torch_previous)


# ----------------------------------------------------------------------------------------
# One case of the grid.


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


def _make_runner(impl: str, case: Case, task: str, settings: Settings, gemm_rate: float):
    """The runner of one implementation, or raise ``Unavailable`` with the reason it is skipped."""
    from fastrnn import _baselines

    if impl == "fastrnn":
        from fastrnn import ops
        return functional_runner(ops, case, task)
    if impl == "reference":
        estimate = estimate_reference_seconds(case.mode, task, (case.T, case.B, case.I, case.H), gemm_rate)
        if estimate > settings.reference_limit_s:
            raise _baselines.Unavailable(
                f"estimated {estimate:.3g} s per call > --reference-limit {settings.reference_limit_s:g} s")
        from fastrnn import reference
        return functional_runner(reference, case, task)
    if impl == "torch":
        make = _baselines.torch_train_runner if task == "train" else _baselines.torch_infer_runner
        return make(case)
    if impl == "onnxruntime":
        return _baselines.onnxruntime_runner(case, settings.threads)
    raise ValueError(f"unknown implementation {impl!r}")


def agreement_error(result, anchor) -> float:
    """Largest difference of y (and dx) from the anchor's, relative to the anchor's largest value."""
    errors = []
    for got, want in zip(result, anchor):
        if got is None or want is None or want.size == 0:
            continue
        scale = max(float(np.max(np.abs(want))), 1e-30)
        errors.append(float(np.max(np.abs(got.astype(np.float64) - want))) / scale)
    return float(np.max(errors)) if errors else 0.0  # np.max, unlike max, lets a NaN through


def bench_case(mode: str, shape_name: str, task: str, settings: Settings, gemm_rate: float) -> dict:
    """Time every implementation on one (mode, shape, task); returns the row for the table/JSON."""
    from fastrnn import _baselines

    shape = settings.shapes[shape_name]
    case = make_case(mode, shape, settings.dtype)
    flops = task_flops(mode, task, *shape)
    tolerance = 1e-3 if settings.dtype == np.float32 else 1e-9
    row = {"mode": mode, "shape": shape_name, "T": shape[0], "B": shape[1], "I": shape[2], "H": shape[3],
           "task": task, "flops": flops, "times": {}, "skipped": {}, "mismatch": {}}
    runners = {}
    for impl in settings.impls:
        if impl == "onnxruntime" and task == "train":
            continue  # ONNX Runtime is an inference engine
        try:
            runners[impl] = _make_runner(impl, case, task, settings, gemm_rate)
        except _baselines.Unavailable as exc:
            row["skipped"][impl] = str(exc)
    measured = measure_side_by_side(runners, settings.budget_s)
    anchor = None  # fastrnn's result (or the first implementation's) that the others must agree with
    for impl, (timing, result) in measured.items():
        row["times"][impl] = timing.as_dict()
        row["times"][impl]["gflops"] = flops / timing.median / 1e9
        if anchor is None:
            anchor = result
        else:
            error = agreement_error(result, anchor)
            if not error <= tolerance:  # also catches NaN
                row["mismatch"][impl] = error
    del runners, measured
    _add_ratio(row, gemm_rate)
    return row


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
# Peak memory of a training call, in a fresh subprocess.


def memory_probe(mode: str, shape: tuple, dtype, threads: int, timeout_s: float = 600) -> dict:
    """Peak resident-memory growth of one ``train`` call of ``fastrnn.ops``, measured in a subprocess.

    Returns the measurement with the theoretical workspace (``T*B*G*H`` values) and the size
    of the outputs and gradients the call must return anyway, all in bytes.
    """
    T, B, I, H = shape  # noqa: E741
    G = GATES[mode]
    itemsize = np.dtype(dtype).itemsize
    row = {"mode": mode, "T": T, "B": B, "I": I, "H": H,
           "workspace_bytes": T * B * G * H * itemsize,
           "outputs_bytes": _train_outputs_values(mode, shape) * itemsize}
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    code = ("import json, sys; from fastrnn.benchmark import _memory_child; "
            "print(json.dumps(_memory_child(*json.loads(sys.argv[1]))))")
    argument = json.dumps([mode, list(shape), np.dtype(dtype).name, threads])
    try:
        done = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True,
                              env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        row["error"] = f"timed out after {timeout_s:g} s"
        return row
    if done.returncode != 0:
        lines = (done.stderr.strip() or "no output").splitlines()
        row["error"] = f"subprocess failed: {lines[-1]}"
        return row
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


def _train_outputs_values(mode: str, shape: tuple) -> int:
    """Values a train call returns: y (T, B, H), h_n, c_n and the gradients of x, states and weights."""
    T, B, I, H = shape  # noqa: E741
    G = GATES[mode]
    states = 2 if mode == "lstm" else 1
    return (T * B * H  # y
            + states * B * H  # h_n (and c_n)
            + T * B * I  # dx
            + states * B * H  # dh0 (and dc0)
            + G * H * (I + H)  # dw_ih, dw_hh
            + 2 * G * H)  # db_ih, db_hh


def call_bytes(mode: str, shape: tuple, dtype, task: str) -> int:
    """A lower bound on the memory one call of the case holds: the case's arrays, what the call
    returns and, for ``train``, the workspace."""
    T, B, I, H = shape  # noqa: E741
    G = GATES[mode]
    states = (2 if mode == "lstm" else 1) * B * H  # h0 (and c0), or h_n (and c_n)
    case = T * B * I + G * H * (I + H + 2) + states  # x, weights, biases, initial states
    if task == "infer":
        return np.dtype(dtype).itemsize * (case + T * B * H + states)  # y, final states
    case += T * B * H  # dy
    return np.dtype(dtype).itemsize * (case + T * B * G * H + _train_outputs_values(mode, shape))


def physical_memory_bytes() -> int | None:
    """This machine's memory, where the OS tells."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def too_big_for_memory(shapes: dict, modes, dtype, tasks) -> str | None:
    """Names the first of ``shapes`` (name -> (T, B, I, H)) whose calls cannot fit in this
    machine's memory, or None. Checked before a run so that it fails at once, not hours in."""
    memory = physical_memory_bytes()
    if memory is None:
        return None
    for name, shape in shapes.items():
        need = max(call_bytes(mode, shape, dtype, task) for mode in modes for task in tasks)
        if need > memory:
            written = "x".join(map(str, shape))
            label = written if name == written else f"{name} = {written}"
            return (f"shape {label} needs at least {need / 2**30:.3g} GiB "
                    f"for one call, more than this machine's {memory / 2**30:.3g} GiB")
    return None


def _read_status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset Linux's peak resident set (VmHWM) to the current one; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return _read_status_kb("VmHWM") is not None
    except OSError:
        return False


def _memory_child(mode: str, shape: list, dtype: str, threads: int) -> dict:
    """Runs in the probe's subprocess: resident-set growth of one train call, in bytes."""
    import resource

    from fastrnn import ops

    ops.set_num_threads(threads)
    case = make_case(mode, tuple(shape), dtype)
    # A tiny call first, so one-time costs (thread pool, code pages) are not counted.
    functional_runner(ops, make_case(mode, (2, 2, 2, 2), dtype), "train")()
    gc.collect()
    run = functional_runner(ops, case, "train")
    if _reset_peak_rss():
        before = _read_status_kb("VmRSS")
        run()
        peak = _read_status_kb("VmHWM")
        method = "VmHWM after clear_refs (peak resident set during the call)"
    else:
        # ru_maxrss is the peak since the process started, so the delta is the call's own growth
        # only if nothing before it peaked higher: make_case draws its arrays without temporaries.
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            before, peak = before // 1024, peak // 1024  # macOS reports bytes
        method = "ru_maxrss delta"
    return {"peak_bytes": max(peak - before, 0) * 1024, "method": method}


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
    series = {"T": [(T, SCALING_FIXED_B, SCALING_IH, SCALING_IH) for T in SCALING_T],
              "B": [(SCALING_FIXED_T, B, SCALING_IH, SCALING_IH) for B in SCALING_B]}
    for mode in settings.modes:
        for task in settings.tasks:
            for grows, shapes in series.items():
                runners = {shape: functional_runner(ops, make_case(mode, shape, settings.dtype), task)
                           for shape in shapes}
                timings = measure_side_by_side(runners, settings.budget_s)
                del runners
                first = None
                for shape in shapes:
                    timing = timings[shape][0]
                    unit = timing.median / (shape[0] * shape[1])  # seconds per step per sequence
                    first = first or unit
                    rows.append({"mode": mode, "task": task, "grows": grows, "T": shape[0], "B": shape[1],
                                 "I": shape[2], "H": shape[3], "median_ms": timing.median * 1e3,
                                 "per_step_sample": unit / first})
                    progress(f"scaling {mode} {task} T={shape[0]} B={shape[1]}: {timing.median * 1e3:.1f} ms")
    return rows


# ----------------------------------------------------------------------------------------
# Machine facts.


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


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _blas_name() -> str | None:
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        return None


def machine_info(settings: Settings) -> dict:
    """The facts a reader needs to compare this run with another."""
    import fastrnn
    from fastrnn import _baselines, ops

    cpu = _cpuinfo()
    info = {
        "cpu_model": cpu["model"],
        "logical_cores": os.cpu_count(),
        "physical_cores": cpu["physical_cores"],
        "usable_cores": _usable_cores(),
        "cpu_flags": cpu["flags"],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": _blas_name(),
        "torch": _baselines.torch_version(),
        "onnxruntime": _baselines.onnxruntime_version(),
        "fastrnn": fastrnn.__version__,
        "fastrnn_ops_is_reference": _ops_is_reference(),
        "threads": settings.threads,
        "dtype": settings.dtype.name,
    }
    build_info = getattr(ops, "build_info", None)
    if callable(build_info):
        try:
            info["fastrnn_build"] = dict(build_info())
        except Exception as exc:  # a broken build_info must not spoil the benchmark
            info["fastrnn_build"] = {"error": f"{type(exc).__name__}: {exc}"}
    return info


def _cpu_seconds() -> tuple[float, float] | None:
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
    """The share of the machine's CPU time other processes used between two ``_cpu_seconds()``."""
    if start is None or end is None or elapsed_s <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(others, 0.0) / (elapsed_s * (os.cpu_count() or 1))


def _ops_is_reference() -> bool:
    from fastrnn import ops, reference
    return ops.rnn_forward is reference.rnn_forward


# ----------------------------------------------------------------------------------------
# Output: text tables, JSON, plot.

_COLUMNS = {"fastrnn": "fastrnn ms", "torch": "torch ms", "onnxruntime": "onnxrt ms", "reference": "numpy ms"}


def _ms(value) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _render(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table, the first column left-aligned and the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for k, cells in enumerate([header] + rows):
        parts = [str(cell).ljust(w) if i == 0 else str(cell).rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_results(rows: list[dict], impls: tuple) -> str:
    """The main table: median ms per implementation, fastrnn's GFLOP/s, % of GEMM and ratio."""
    header = ["cell  shape  task"] + [_COLUMNS[i] for i in impls] + ["GFLOP/s", "% GEMM", "ratio"]
    body = []
    for row in rows:
        cells = [f"{row['mode']:<8} {row['shape']:<7} {row['task']}"]
        for impl in impls:
            time_ms = row["times"].get(impl, {}).get("median_ms")
            mark = "!" if impl in row["mismatch"] else ("*" if impl in row["skipped"] else "")
            cells.append(_ms(time_ms) + mark)
        cells.append("-" if row["gflops"] is None else f"{row['gflops']:.1f}")
        cells.append("-" if row["pct_gemm"] is None else f"{row['pct_gemm']:.0f}")
        cells.append("-" if row["ratio"] is None else f"{row['ratio']:.2f}")
        body.append(cells)
    return _render(header, body)


def format_memory(rows: list[dict]) -> str:
    header = ["cell     T x B x I x H", "peak MB", "T*B*G*H MB", "outputs MB", "peak / (ws + outputs)"]
    body = []
    for row in rows:
        name = f"{row['mode']:<8} {row['T']}x{row['B']}x{row['I']}x{row['H']}"
        if "error" in row:
            body.append([name, "-", f"{row['workspace_bytes'] / 2**20:.1f}", "-", row["error"]])
            continue
        floor = row["workspace_bytes"] + row["outputs_bytes"]
        body.append([name, f"{row['peak_bytes'] / 2**20:.1f}", f"{row['workspace_bytes'] / 2**20:.1f}",
                     f"{row['outputs_bytes'] / 2**20:.1f}", f"{row['peak_bytes'] / floor:.2f}"])
    return _render(header, body)


def format_scaling(rows: list[dict]) -> str:
    header = ["cell     task   grows", "T", "B", "ms", "per step x sequence (1 = linear)"]
    body = [[f"{r['mode']:<8} {r['task']:<6} {r['grows']}", str(r["T"]), str(r["B"]), _ms(r["median_ms"]),
             f"{r['per_step_sample']:.2f}"] for r in rows]
    return _render(header, body)


def format_report(report: dict) -> str:
    """Everything ``fastrnn bench`` prints, from the report it also writes as JSON."""
    settings, machine = report["settings"], report["machine"]
    lines = [f"fastrnn bench: {machine['cpu_model']}, {settings['threads']} thread(s), {settings['dtype']}, "
             f"median of repeated runs (budget {settings['budget_s']:g} s per case)", ""]
    if report["results"]:
        lines += [format_results(report["results"], tuple(settings["impls"])), ""]
        lines.append("ratio = fastrnn / fastest other implementation (< 1: fastrnn is faster); "
                     "GFLOP/s and % GEMM are fastrnn's.")
        lines.append("* skipped (see notes)   ! output differs from fastrnn's")
        lines.append("")
    lines.append(f"GEMM ceiling (square {settings['dtype']} products, GFLOP/s; the best library sets it):")
    for g in report["gemm"]:
        rates = ", ".join(f"{name} {rate:.1f}" for name, rate in g["by_library"].items())
        lines.append(f"  n={g['n']}: {rates}")
    lines.append(f"  ceiling {report['gemm_ceiling_gflops']:.1f}")
    best = [r["pct_gemm"] for r in report["results"] if r["pct_gemm"] is not None]
    if best:
        lines.append(f"fastrnn reaches at most {max(best):.0f} % of it")
    if report["memory"]:
        lines += ["", "Peak memory of one train call (fastrnn.ops, fresh process, resident-set growth):",
                  format_memory(report["memory"])]
    if report["scaling"]:
        lines += ["", f"Scaling (fastrnn.ops, I = H = {SCALING_IH}):", format_scaling(report["scaling"])]
    if report["notes"]:
        lines += ["", "Notes:"] + [f"- {note}" for note in report["notes"]]
    lines.append(f"\n{report['elapsed_s']:.0f} s in all")
    return "\n".join(lines)


def _collect_notes(rows: list[dict], machine: dict, start_notes: list[str]) -> list[str]:
    notes = list(start_notes)
    if machine["fastrnn_ops_is_reference"]:
        notes.append("fastrnn.ops is the NumPy reference here (no C++ kernels): its times are the reference's")
    load = machine.get("load_average")
    if load and load[0] > 0.5:
        notes.append(f"the machine was busy when the run started (load average {load[0]:.1f})")
    others = machine.get("other_processes_cpu_share")
    if others is not None and others > 0.05:
        notes.append(f"other processes used {100 * others:.0f} % of the machine's CPU time during the run: "
                     "times are slower and noisier than on an idle machine")
    reasons = {}
    for row in rows:
        for impl, reason in row["skipped"].items():
            reasons.setdefault((impl, reason), []).append(f"{row['mode']} {row['shape']} {row['task']}")
        for impl, error in row["mismatch"].items():
            notes.append(f"{impl} differs from fastrnn on {row['mode']} {row['shape']} {row['task']}: "
                         f"relative error {error:.1e}")
    for (impl, reason), where in reasons.items():
        notes.append(f"{impl} skipped ({reason}): {', '.join(where)}")
    return notes


def write_json(report: dict, path: str) -> None:
    """Write ``report`` to ``path`` whole or not at all (see ``fastrnn.saving.write_atomically``)."""
    from fastrnn.saving import write_atomically

    write_atomically(path, lambda f: f.write(json.dumps(report, indent=1).encode()))


def write_plot(report: dict, path: str) -> None:
    """A bar chart per task: median time per implementation for each (cell, shape), log scale.
    Written whole or not at all, as ``fastrnn.plot``'s plots are; PNG, or the format that the
    path's suffix names (``.svg``, ``.pdf``)."""
    from fastrnn import plot

    tasks = [t for t in report["settings"]["tasks"] if any(r["task"] == t for r in report["results"])]
    impls = report["settings"]["impls"]
    fig = plot._figure(12, 4.5 * len(tasks))
    axes = fig.subplots(len(tasks), 1, squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        rows = [r for r in report["results"] if r["task"] == task]
        width = 0.8 / len(impls)
        for k, impl in enumerate(impls):
            xs = [i + (k - (len(impls) - 1) / 2) * width for i, r in enumerate(rows) if impl in r["times"]]
            ys = [r["times"][impl]["median_ms"] for r in rows if impl in r["times"]]
            if xs:
                ax.bar(xs, ys, width, label=impl)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{r['mode']}\n{r['shape']}" for r in rows], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median ms (log)")
        ax.set_title(f"{task}: {report['settings']['threads']} thread(s), {report['settings']['dtype']}")
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    plot._save(fig, path, format=None)


# ----------------------------------------------------------------------------------------
# The whole run.


def run_benchmark(settings: Settings, progress=lambda message: None) -> dict:
    """Run the GEMM probe, the grid, the memory probes and (optionally) the scaling study.

    Returns the report: ``settings``, ``machine``, ``gemm``, ``gemm_ceiling_gflops``,
    ``results`` (one row per case), ``memory``, ``scaling``, ``notes``, ``elapsed_s``.
    """
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    machine = machine_info(settings)  # first, so the load average is the one before the run
    with_torch = "torch" in settings.impls or "onnxruntime" in settings.impls
    with thread_count(settings.threads, with_torch) as notes:
        report = _run(settings, progress, machine, notes)
    report["elapsed_s"] = time.perf_counter() - start
    machine["other_processes_cpu_share"] = other_load(cpu_start, _cpu_seconds(), report["elapsed_s"])
    report["notes"] = _collect_notes(report["results"], machine, notes)
    return report


def _run(settings: Settings, progress, machine: dict, notes: list) -> dict:
    gemm = [gemm_probe(n, settings.dtype, settings.budget_s, with_torch="torch" in settings.impls)
            for n in settings.gemm_sizes]
    ceiling = max(g["gflops"] for g in gemm)
    progress(f"GEMM ceiling {ceiling:.1f} GFLOP/s")
    rows = []
    for mode in settings.modes:
        for shape_name in settings.shapes:
            for task in settings.tasks:
                row = bench_case(mode, shape_name, task, settings, ceiling * 1e9)
                rows.append(row)
                times = ", ".join(f"{impl} {t['median_ms']:.2f} ms" for impl, t in row["times"].items())
                progress(f"{mode} {shape_name} {task}: {times}")
    memory = []
    if settings.memory and "fastrnn" in settings.impls and "train" in settings.tasks:
        for mode in settings.modes:
            for shape_name, shape in settings.shapes.items():
                memory.append(memory_probe(mode, shape, settings.dtype, settings.threads))
                progress(f"memory {mode} {shape_name} done")
    scaling = scaling_study(settings, progress) if settings.scaling else []
    return {
        "settings": _settings_dict(settings),
        "machine": machine,
        "gemm": gemm,
        "gemm_ceiling_gflops": ceiling,
        "results": rows,
        "memory": memory,
        "scaling": scaling,
        "flops": {"forward": "2*T*B*G*H*(I+H)", "train": "3 * forward"},
    }


def _settings_dict(settings: Settings) -> dict:
    return {"modes": list(settings.modes), "shapes": {k: list(v) for k, v in settings.shapes.items()},
            "tasks": list(settings.tasks), "impls": list(settings.impls), "dtype": settings.dtype.name,
            "threads": settings.threads, "budget_s": settings.budget_s,
            "reference_limit_s": settings.reference_limit_s, "gemm_sizes": list(settings.gemm_sizes),
            "memory": settings.memory, "scaling": settings.scaling}


# ----------------------------------------------------------------------------------------
# Command line.


def shape_argument(text: str) -> tuple:
    """argparse type: (name, (T, B, I, H)) from a name in SHAPES or from T x B x I x H written as
    e.g. '20x4x8x16'."""
    if text in SHAPES:
        return text, SHAPES[text]
    parts = text.lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither one of {', '.join(SHAPES)} nor T x B x I x H with positive sizes (e.g. 20x4x8x16)")
    return text, shape


def thread_count_argument(text: str) -> int:
    """argparse type: a thread count, from 1 to what OpenMP takes."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected a number <= {MAX_THREADS}, got {value}")
    return value


def writable_path(text: str) -> str:
    """argparse type: a file path in a folder that exists and takes new files, so that a run
    does not fail at its end, when it writes its results."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder")
    from fastrnn.saving import is_special_file

    if is_special_file(text):  # /dev/stdout, a pipe: written into, not replaced
        if not os.access(text, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write to {text}")
        return text
    # The file written first is beside the one a symbolic link points to (write_atomically).
    folder = os.path.dirname(os.path.realpath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such folder: {os.path.dirname(text) or '.'}")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write in {folder}: {e.strerror}") from None
    return text


DESCRIPTION = ("Time fastrnn's kernels beside PyTorch and ONNX Runtime (when installed) and the NumPy "
               "reference, on a grid of cells, shapes and tasks, with a GEMM probe as the machine's "
               "ceiling. Shapes (T, B, I, H): " + ", ".join(f"{k} {v}" for k, v in SHAPES.items()) + ".")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to the ``fastrnn`` command line."""
    parser = subparsers.add_parser(
        "bench", help="time fastrnn beside PyTorch, ONNX Runtime and the NumPy reference",
        description=DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"reduced grid (shapes {', '.join(QUICK_SHAPES)}, budget {QUICK_BUDGET_S:g} s): "
                             "under a minute")
    parser.add_argument("--modes", nargs="+", choices=ALL_MODES, metavar="MODE",
                        help=f"cells among {', '.join(ALL_MODES)} (default: {' '.join(DEFAULT_MODES)})")
    parser.add_argument("--shapes", nargs="+", type=shape_argument, metavar="SHAPE",
                        help=f"names ({', '.join(SHAPES)}) or TxBxIxH (default: all names)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, metavar="TASK",
                        help="train and/or infer (default: both)")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, metavar="IMPL",
                        help=f"implementations among {', '.join(IMPLS)} (default: all; "
                             "those not installed are skipped with a note)")
    parser.add_argument("--threads", type=thread_count_argument,
                        help="threads for fastrnn, torch and onnxruntime alike (default: fastrnn's)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--budget", type=positive_float, metavar="SECONDS",
                        help=f"timing budget per implementation and case (default {BUDGET_S:g}, "
                             f"--quick {QUICK_BUDGET_S:g})")
    parser.add_argument("--reference-limit", type=positive_float, default=REFERENCE_LIMIT_S, metavar="SECONDS",
                        help="skip the NumPy reference where one call would take longer (default %(default)s)")
    parser.add_argument("--scaling", action="store_true",
                        help=f"also time T = {SCALING_T} at B = {SCALING_FIXED_B} and B = {SCALING_B} at "
                             f"T = {SCALING_FIXED_T} (I = H = {SCALING_IH})")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--json", metavar="PATH", type=writable_path, help="write the full results and machine facts as JSON")
    parser.add_argument("--plot", metavar="PATH", type=writable_path, help="write a bar chart: PNG, or SVG or PDF by the suffix (needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def settings_from_args(args: argparse.Namespace) -> Settings:
    from fastrnn import ops

    shapes = dict(args.shapes) if args.shapes else {k: SHAPES[k] for k in (QUICK_SHAPES if args.quick else SHAPES)}
    budget = args.budget or (QUICK_BUDGET_S if args.quick else BUDGET_S)
    return Settings(
        modes=tuple(dict.fromkeys(args.modes or DEFAULT_MODES)),
        shapes=shapes,
        tasks=tuple(dict.fromkeys(args.tasks or TASKS)),
        impls=tuple(dict.fromkeys(args.impls or IMPLS)),
        dtype=np.dtype(args.dtype),
        threads=args.threads or int(ops.get_num_threads()),
        budget_s=budget,
        reference_limit_s=args.reference_limit,
        gemm_sizes=QUICK_GEMM_SIZES if args.quick else GEMM_SIZES,
        memory=not args.no_memory,
        scaling=args.scaling,
    )


def run(args: argparse.Namespace) -> int:
    """The ``bench`` sub-command: run, print the tables, write JSON/PNG if asked. Returns the exit code."""
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            print("fastrnn bench: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib, or leave out --plot)", file=sys.stderr)
            return 2
    try:
        importlib.import_module("fastrnn.ops")
    except ImportError as exc:
        print(f"fastrnn bench: cannot load fastrnn's kernels: {exc}", file=sys.stderr)
        return 1
    settings = settings_from_args(args)
    too_big = too_big_for_memory(settings.shapes, settings.modes, settings.dtype, settings.tasks)
    if too_big:
        print(f"fastrnn bench: error: {too_big}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr, flush=True)

    report = run_benchmark(settings, progress)
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0


def main(argv=None) -> int:
    """``python -m fastrnn.benchmark``: ``fastrnn bench``, through the command line's own entry
    point, so that its errors (out of memory, a closed pipe) read the same."""
    from fastrnn import cli

    return cli.main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
