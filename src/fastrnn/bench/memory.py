"""Memory in ``fastrnn bench``: the peak memory of a training call, and the check, before a run,
that every call of the grid fits in this machine's memory.

Peak memory (``train`` only) is measured in a fresh subprocess: the growth of the resident
set during one forward+backward call, read from Linux's ``VmHWM`` after resetting it through
``/proc/self/clear_refs`` (elsewhere: ``ru_maxrss``, an upper bound). It counts every
allocation, C++ and NumPy alike, including the outputs and gradients the call returns, and
is shown beside the workspace BPTT cannot do without, ``T*B*G*H`` values.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import numpy as np

from fastrnn.bench.cases import make_case
from fastrnn.bench.runners import functional_runner
from fastrnn.modes import GATES

# ----------------------------------------------------------------------------------------
# What a call needs, and what the machine has.


def train_outputs_values(mode: str, shape: tuple) -> int:
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
    return np.dtype(dtype).itemsize * (case + T * B * G * H + train_outputs_values(mode, shape))


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


# ----------------------------------------------------------------------------------------
# The probe, in a fresh subprocess.


def memory_probe(mode: str, shape: tuple, dtype, threads: int, timeout_s: float = 600) -> dict:
    """Peak resident-memory growth of one ``train`` call of ``fastrnn.ops``, measured in a subprocess.

    Returns the measurement with the theoretical workspace (``T*B*G*H`` values) and the size
    of the outputs and gradients the call must return anyway, all in bytes.
    """
    T, B, I, H = shape  # noqa: E741
    itemsize = np.dtype(dtype).itemsize
    row = {"mode": mode, "T": T, "B": B, "I": I, "H": H,
           "workspace_bytes": T * B * GATES[mode] * H * itemsize,
           "outputs_bytes": train_outputs_values(mode, shape) * itemsize}
    code = ("import json, sys; from fastrnn.bench.memory import _memory_child; "
            "print(json.dumps(_memory_child(*json.loads(sys.argv[1]))))")
    argument = json.dumps([mode, list(shape), np.dtype(dtype).name, threads])
    try:
        done = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True,
                              env=_child_environment(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        row["error"] = f"timed out after {timeout_s:g} s"
        return row
    if done.returncode != 0:
        lines = (done.stderr.strip() or "no output").splitlines()
        row["error"] = f"subprocess failed: {lines[-1]}"
        return row
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


def _child_environment() -> dict:
    """This environment, with the folder that holds this fastrnn first on PYTHONPATH, so that the
    child imports the same one."""
    import fastrnn

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


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
