"""The implementations ``fastrnn bench`` times, each as a runner: a function of no arguments that
does one case's task once and returns ``(y, dx)``, y (T, B, H) and, for ``train``, dx (T, B, I)
(None for ``infer``). Also the check that an implementation computed what fastrnn computed.

- ``fastrnn``: ``fastrnn.ops``; ``reference``: ``fastrnn.reference``, both through
  ``rnn_forward`` (``training=True`` for ``train``) and ``rnn_backward`` with the case's dy;
- ``torch`` and ``onnxruntime``: ``fastrnn.bench.baselines``.
"""
from __future__ import annotations

import numpy as np

from fastrnn.bench import baselines
from fastrnn.bench.cases import Case, task_flops

IMPLS = ("fastrnn", "torch", "onnxruntime", "reference")
REFERENCE_LIMIT_S = 10.0


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


def estimate_reference_seconds(mode: str, task: str, shape: tuple, gemm_flops_per_s: float) -> float:
    """A deliberately rough guess of one reference call's time, to skip hopeless cases.

    Its GEMMs at a quarter of the GEMM probe's rate, plus the Python overhead of each time
    step (about 50 us forward, 150 us forward and backward).
    """
    T = shape[0]
    per_step = 150e-6 if task == "train" else 50e-6
    return task_flops(mode, task, *shape) / (0.25 * gemm_flops_per_s) + T * per_step


def does(impl: str, task: str) -> bool:
    """Whether implementation ``impl`` has the task at all: ONNX Runtime is an inference engine."""
    return not (impl == "onnxruntime" and task == "train")


def make_runner(impl: str, case: Case, task: str, threads: int, reference_limit_s: float, gemm_rate: float):
    """The runner of implementation ``impl`` (one of IMPLS), or raise ``baselines.Unavailable``
    with the reason it is skipped: the library is missing, or the reference would take longer
    than ``reference_limit_s`` per call at ``gemm_rate`` FLOP/s."""
    if impl == "fastrnn":
        from fastrnn import ops
        return functional_runner(ops, case, task)
    if impl == "reference":
        estimate = estimate_reference_seconds(case.mode, task, (case.T, case.B, case.I, case.H), gemm_rate)
        if estimate > reference_limit_s:
            raise baselines.Unavailable(
                f"estimated {estimate:.3g} s per call > --reference-limit {reference_limit_s:g} s")
        from fastrnn import reference
        return functional_runner(reference, case, task)
    if impl == "torch":
        make = baselines.torch_train_runner if task == "train" else baselines.torch_infer_runner
        return make(case)
    if impl == "onnxruntime":
        return baselines.onnxruntime_runner(case, threads)
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
