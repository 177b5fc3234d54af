"""What ``fastrnn bench`` runs: the grid of cells, shapes and tasks, the scaling series, the FLOP
count of a task, and the inputs and weights (a ``Case``) that every implementation gets.

FLOP counts (only the GEMMs, which dominate; the element-wise gate math is left out):

- forward: ``2*T*B*G*H*(I+H)``, the input product ``(T*B, I) x (I, G*H)`` and the
  recurrent product ``(B, H) x (H, G*H)`` at each of the T steps;
- train: 3x forward, the forward plus the two backward GEMMs per product (one for the
  gradient of the product's input, one for the weight gradient).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastrnn.modes import GATES

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

#: The scaling study: T grows at fixed B, then B grows at fixed T; I = H = 128.
SCALING_T = (100, 1000, 10000)
SCALING_B = (16, 64, 256)
SCALING_FIXED_B = 16
SCALING_FIXED_T = 100
SCALING_IH = 128


def scaling_series() -> dict:
    """The shapes (T, B, I, H) of the scaling study: ``{"T": [...], "B": [...]}``, by what grows."""
    return {"T": [(T, SCALING_FIXED_B, SCALING_IH, SCALING_IH) for T in SCALING_T],
            "B": [(SCALING_FIXED_T, B, SCALING_IH, SCALING_IH) for B in SCALING_B]}


def forward_flops(mode: str, T: int, B: int, I: int, H: int) -> int:  # noqa: E741
    """GEMM FLOPs of one forward pass: ``2*T*B*G*H*(I+H)`` (see the module docstring)."""
    return 2 * T * B * GATES[mode] * H * (I + H)


def task_flops(mode: str, task: str, T: int, B: int, I: int, H: int) -> int:  # noqa: E741
    """GEMM FLOPs of a task: the forward's for ``infer``, three times it for ``train``."""
    return forward_flops(mode, T, B, I, H) * (3 if task == "train" else 1)


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
