# Signatures of the compiled kernels (fastrnn._kernels_*), as re-exported by fastrnn._core.
# Arrays must be C-contiguous and all of x's dtype (float32 or float64); fastrnn.ops takes care
# of that and documents the arguments: x (T, B, I), h0, c0 (B, H), w_ih (G*H, I), w_hh (G*H, H),
# b_ih, b_hh (G*H,), lengths (B,) int64.
from types import ModuleType

import numpy as np

LEVELS: dict[str, str]
kernels: ModuleType

def available_levels() -> dict[str, bool]: ...
def forward(mode: str, x: np.ndarray, h0: np.ndarray | None, c0: np.ndarray | None, w_ih: np.ndarray,
            w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None, lengths: np.ndarray | None,
            reverse: bool, training: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None]: ...
def backward(mode: str, x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None,
             b_hh: np.ndarray | None, lengths: np.ndarray | None, reverse: bool,
             workspace: dict[str, np.ndarray], dy: np.ndarray | None, dh_n: np.ndarray | None,
             dc_n: np.ndarray | None) -> dict[str, np.ndarray | None]: ...
def matmul(a: np.ndarray, b: np.ndarray, transpose_a: bool, transpose_b: bool) -> np.ndarray: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> dict[str, object]: ...
