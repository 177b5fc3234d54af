"""The same recurrent computation in PyTorch and ONNX Runtime, for ``fastrnn bench`` to compare against.

Neither library is a dependency of fastrnn: each is imported on first use, and a missing
one raises :class:`Unavailable` with a note the benchmark prints instead of a timing.

A *case* is any object with the attributes of ``fastrnn.bench.cases.Case``::

    mode, dtype, T, B, I, H
    x: (T, B, I)   h0: (B, H)   c0: (B, H) or None (LSTM only)   dy: (T, B, H)
    w_ih: (G*H, I)   w_hh: (G*H, H)   b_ih, b_hh: (G*H,)

The weights are in the kernel layout of ``fastrnn.modes``, which is PyTorch's own, so they
are copied into ``torch.nn.RNN/LSTM/GRU`` unchanged. Every runner built here is a function
of no arguments that does the work once and returns ``(y, dx)``: y (T, B, H) and, for
training, dx (T, B, I), the gradient of x (None for inference). The benchmark compares these
with fastrnn's results, so a timing is never of a different computation.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np


class Unavailable(Exception):
    """A baseline cannot run here (library not installed, no kernel for this dtype, ...)."""


def require(name: str):
    """The module ``name``, imported; Unavailable when it is not installed."""
    try:
        return __import__(name)
    except ImportError as exc:
        raise Unavailable(f"{name} is not installed ({exc})") from None


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name`` (torch, onnxruntime), or None, without
    importing it."""
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


# ----------------------------------------------------------------------------------------
# PyTorch


def get_torch_threads() -> int:
    torch = require("torch")
    return torch.get_num_threads()


def set_torch_threads(threads: int) -> None:
    """Give torch's intra-op pool the same number of threads as fastrnn."""
    torch = require("torch")
    torch.set_num_threads(int(threads))


def torch_module(case):
    """A ``torch.nn.RNN/LSTM/GRU`` of one layer holding the case's weights (in the case's dtype)."""
    torch = require("torch")
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(case.dtype)]
    if case.mode == "lstm":
        module = torch.nn.LSTM(case.I, case.H, dtype=dtype)
    elif case.mode == "gru":
        module = torch.nn.GRU(case.I, case.H, dtype=dtype)
    elif case.mode in ("rnn_tanh", "rnn_relu"):
        module = torch.nn.RNN(case.I, case.H, nonlinearity=case.mode[4:], dtype=dtype)
    else:
        raise ValueError(f"mode must be one of 'rnn_tanh', 'rnn_relu', 'lstm', 'gru', got {case.mode!r}")
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(module, f"{_TORCH_NAMES[name]}_l0").copy_(torch.from_numpy(getattr(case, name)))
    return module


_TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


def _torch_state(torch, case, requires_grad: bool):
    """The initial state as torch wants it: (1, B, H), a pair of them for LSTM."""
    h0 = torch.from_numpy(case.h0[None]).requires_grad_(requires_grad)  # (1, B, H)
    if case.mode != "lstm":
        return h0, [h0]
    c0 = torch.from_numpy(case.c0[None]).requires_grad_(requires_grad)  # (1, B, H)
    return (h0, c0), [h0, c0]


def torch_infer_runner(case):
    """Forward only, under ``torch.inference_mode()``: returns a function giving ``(y, None)``."""
    torch = require("torch")
    module = torch_module(case)
    x = torch.from_numpy(case.x)  # (T, B, I), shares the case's memory
    state, _ = _torch_state(torch, case, requires_grad=False)

    def run():
        with torch.inference_mode():
            y, _ = module(x, state)  # (T, B, H)
        return y.numpy(), None

    return run


def torch_train_runner(case):
    """Forward, then backward of ``(y * dy).sum()``: returns a function giving ``(y, dx)``.

    Gradients are computed for x, the initial state and every weight, as fastrnn's
    ``rnn_backward`` computes them. ``y.backward(dy)`` is that loss's backward without
    materialising the product.
    """
    torch = require("torch")
    module = torch_module(case)
    x = torch.from_numpy(case.x).requires_grad_(True)  # (T, B, I)
    state, leaves = _torch_state(torch, case, requires_grad=True)
    dy = torch.from_numpy(case.dy)  # (T, B, H)
    leaves = leaves + [x] + list(module.parameters())

    def run():
        for leaf in leaves:
            leaf.grad = None  # fresh gradients each call, not accumulated ones
        y, _ = module(x, state)  # (T, B, H)
        y.backward(dy)
        return y.detach().numpy(), x.grad.numpy()

    return run


# ----------------------------------------------------------------------------------------
# ONNX Runtime


def export_onnx(case) -> bytes:
    """The case's torch module exported to ONNX, for its exact input shapes.

    The TorchScript-based exporter (``dynamo=False``) is tried first: it maps the module onto
    ONNX's own LSTM/GRU/RNN operators, which ONNX Runtime runs as fused kernels, and takes a
    fraction of a second. The dynamo exporter is the fallback for a torch without it.
    """
    torch = require("torch")
    require("onnx")
    module = torch_module(case).eval()
    x = torch.from_numpy(case.x)  # (T, B, I)
    state, _ = _torch_state(torch, case, requires_grad=False)
    errors = []
    for dynamo in (False, True):
        buffer = io.BytesIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (x, state), buffer, dynamo=dynamo)
            return buffer.getvalue()
        except Exception as exc:  # the exporters fail in many ways; keep the reasons
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {type(exc).__name__}: {exc}")
    raise Unavailable("ONNX export failed: " + "; ".join(errors))


def onnxruntime_runner(case, threads: int):
    """An ``InferenceSession`` on the exported module: returns a function giving ``(y, None)``.

    The session's intra-op pool has ``threads`` threads (fastrnn's count) and runs nodes
    one after another (no inter-op parallelism), with all graph optimisations on.
    """
    ort = require("onnxruntime")
    model = export_onnx(case)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # fatal only: a missing kernel is reported as Unavailable
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # e.g. no float64 kernel for the operator
        raise Unavailable(f"onnxruntime cannot load the exported {case.mode} model: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    names = [arg.name for arg in session.get_inputs()]
    arrays = [case.x, case.h0[None]] + ([case.c0[None]] if case.mode == "lstm" else [])
    if len(names) != len(arrays):
        raise Unavailable(f"exported model has inputs {names}, expected {len(arrays)}")
    feeds = dict(zip(names, arrays))

    def run():
        y = session.run(None, feeds)[0]
        return y.reshape(case.T, case.B, case.H), None  # (T, B, H); drops a directions axis if any

    try:
        run()
    except Exception as exc:
        raise Unavailable(f"onnxruntime cannot run the exported {case.mode} model: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    return run
