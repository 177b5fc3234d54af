"""Cell kinds, their equations, and the weight layouts: written down once, here.

The kernels (``src/cpp/cells.h``), ``fastrnn.ops`` and ``fastrnn.reference`` all use
PyTorch's layout and gate order, so a ``torch.nn.LSTM``'s ``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0`` and ``bias_hh_l0`` can be passed as they are.
The Keras-style layers (``fastrnn.layers``) speak Keras's layout in
``get_weights``/``set_weights`` and convert with the functions at the bottom.

Shapes: ``x: (T, B, I)`` time-major input, ``h: (B, H)`` state, ``G`` gates.

Kernel layout (PyTorch's), ``G*H`` rows stacked gate by gate::

    w_ih: (G*H, I)    w_hh: (G*H, H)    b_ih, b_hh: (G*H,) or None (zero)

``rnn_tanh`` / ``rnn_relu``, G = 1::

    h' = act(W_ih x + b_ih + W_hh h + b_hh)

``lstm``, G = 4, gates in the order i, f, g, o::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g =    tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g
    h' = o * tanh(c')

``lstm_peephole``, G = 4: the LSTM with peepholes (ONNX's LSTM with its ``P`` input), the
cell state feeding the gates through per-unit weights, the cell's parameter ``peephole``
``(3H,) = [p_i, p_f, p_o]``::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi + p_i * c)
    f = sigmoid(W_if x + b_if + W_hf h + b_hf + p_f * c)
    g =    tanh(W_ig x + b_ig + W_hg h + b_hg)
    c' = f * c + i * g
    o = sigmoid(W_io x + b_io + W_ho h + b_ho + p_o * c')
    h' = o * tanh(c')

``gru``, G = 3, gates in the order r, z, n, reset applied after the recurrent
product (PyTorch's GRU, Keras's ``reset_after=True``)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n =    tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

``gru_reset_before``, G = 3, gates r, z, n as ``gru``, reset applied to the state before the
recurrent product (Keras's ``reset_after=False``)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n =    tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    h' = (1 - z) * n + z * h

Zoneout, in every mode (haste's, ``zoneout=z``): the state h keeps its previous value unit by
unit with probability z, drawn afresh at every step; the cell state c is never zoned out. In
training, with ``keep = zoneout_keep(seed, t, b, j) < z`` per time t, row b and unit j::

    h' = h             where keep
    h' = cell's h'     elsewhere

and at inference its expectation, ``h' = z * h + (1 - z) * cell's h'``. The draws are a
counter-based hash of (seed, t, b, j) (``zoneout_uniform``), the same in the kernels and the
reference and on any number of threads, so that BPTT, and a checkpointed BPTT's recomputed
forward, draw them again instead of keeping them.

Padding and masks, in every mode. A step t of sequence b is real where ``mask[t, b]`` is
nonzero, or with ``lengths`` where ``t < lengths[b]`` (PyTorch's packed sequences); a mask may
have any pattern: padding before the real steps, after them, holes, rows with no real step.
At a masked step the kernels and the reference::

    h' = h,  c' = c          the state is carried
    y_t = 0                  the output is zero
                             and no gradient reaches x_t or the weights

With ``reverse`` the steps run T-1 .. 0 and the mask is read at each step's own position.
Keras's outputs at masked steps are the layers' work (``fastrnn.layers.recurrent``): the
last real output in reading order (zero before the first one), or zero with
``zero_output_for_mask``; the output of ``return_sequences=False`` is zero for a row with no
real step. A kernel output of zero is the one that serves both: repeating the carried state
instead would give the initial state before the first real step, where Keras gives zero.

Keras layout (``get_weights``), the transpose of the above with Keras's gate order::

    SimpleRNN: [kernel (F, H),  recurrent_kernel (H, H),  bias (H,)]
    LSTM:      [kernel (F, 4H), recurrent_kernel (H, 4H), bias (4H,)]      gates i, f, c, o
    GRU:       [kernel (F, 3H), recurrent_kernel (H, 3H), bias (2, 3H)]    gates z, r, h
               bias row 0 is added to the input product, row 1 to the recurrent one.
    GRU(reset_after=False):
               [kernel (F, 3H), recurrent_kernel (H, 3H), bias (3H,)]      gates z, r, h

Keras's LSTM order i, f, c, o is PyTorch's i, f, g, o; GRU's z, r, h becomes r, z, n.
A peephole LSTM's ``peephole`` weight is ``(3, H)``, rows p_i, p_f, p_o: the kernels'
``(3H,)`` vector reshaped (ONNX's ``P`` orders them p_i, p_o, p_f).

Cell parameters: a cell may have per-unit parameter vectors of its own beside the weights
(``PARAMS``), each ``(width*H,)``; ``rnn_forward`` takes them as ``params={name: array}`` and
``rnn_backward`` returns their gradients under the same names.

Each mode is a row of ``MODES``: the kernels' cell kind that runs it (``src/cpp/cells.h``),
its activation, and how its weights map to Keras's. The number of gates ``G`` and the states a
mode carries come from that cell's own declaration (``GATES``, ``STATES``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastrnn import _core


@dataclass(frozen=True)
class Mode:
    """One row of ``MODES``."""

    cell: str  # the kernels' cell kind (src/cpp/cells.h)
    activation: str  # the activation of h (rnn) or of the candidate and output (lstm, gru)
    keras_blocks: tuple  # kernel gate block k is Keras's block keras_blocks[k]
    keras_bias: str  # "single": one (G*H,) bias, b_ih + b_hh; "double": (2, G*H), b_ih then b_hh


MODES = {
    "rnn_tanh": Mode("rnn", "tanh", (0,), "single"),
    "rnn_relu": Mode("rnn", "relu", (0,), "single"),
    "lstm": Mode("lstm", "tanh", (0, 1, 2, 3), "single"),
    "lstm_peephole": Mode("lstm_peephole", "tanh", (0, 1, 2, 3), "single"),
    "gru": Mode("gru", "tanh", (1, 0, 2), "double"),
    "gru_reset_before": Mode("gru_reset_before", "tanh", (1, 0, 2), "single"),
}

_layouts = {name: _core.Cell(row.cell) for name, row in MODES.items()}

#: The element-wise activations a cell takes as ``activation`` / ``recurrent_activation``:
#: Keras 3's names, with its default constants (``leaky_relu`` 0.2, ``elu`` and ``celu`` 1,
#: ``gelu`` exact, ``soft_shrink``/``hard_shrink`` 0.5, ``squareplus`` b = 4).
ACTIVATIONS = tuple(_core.activations())

#: Other names Keras accepts for some of them.
ACTIVATION_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

#: The recurrent activation (of LSTM's i, f, o and GRU's r, z) when none is given.
RECURRENT_ACTIVATION = "sigmoid"

#: Number of gates G for each mode.
GATES = {name: cell.gates for name, cell in _layouts.items()}

#: The states each mode carries from step to step: ("h",), or ("h", "c") with a cell state.
STATES = {name: tuple(cell.states) for name, cell in _layouts.items()}

#: The parameter vectors of a mode's cell beyond the weights: ((name, width in blocks of H), ...),
#: e.g. (("peephole", 3),) for ``lstm_peephole``; () for most.
PARAMS = {name: tuple(cell.params) for name, cell in _layouts.items()}


def _permute_blocks(a: np.ndarray, mode: str, axis: int) -> np.ndarray:
    """Reorder the G blocks of ``a`` along ``axis``; the permutation is its own inverse."""
    blocks = np.split(a, GATES[mode], axis=axis)
    return np.concatenate([blocks[k] for k in MODES[mode].keras_blocks], axis=axis)


def keras_to_kernel(mode: str, kernel: np.ndarray, recurrent_kernel: np.ndarray,
                    bias: np.ndarray | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Keras weights -> ``(w_ih, w_hh, b_ih, b_hh)`` in the kernel layout.

    kernel: (F, G*H), recurrent_kernel: (H, G*H), bias: (G*H,) or, for a mode with Keras's
    double bias (``gru``), (2, G*H). Returns contiguous arrays; ``b_hh`` is None with a single bias.
    """
    w_ih = np.ascontiguousarray(_permute_blocks(kernel, mode, axis=1).T)
    w_hh = np.ascontiguousarray(_permute_blocks(recurrent_kernel, mode, axis=1).T)
    if bias is None:
        return w_ih, w_hh, None, None
    bias = np.asarray(bias)
    if MODES[mode].keras_bias == "double":
        b_ih = np.ascontiguousarray(_permute_blocks(bias[0], mode, axis=0))
        b_hh = np.ascontiguousarray(_permute_blocks(bias[1], mode, axis=0))
        return w_ih, w_hh, b_ih, b_hh
    return w_ih, w_hh, np.ascontiguousarray(_permute_blocks(bias, mode, axis=0)), None


def kernel_to_keras(mode: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                    b_hh: np.ndarray | None = None) -> list[np.ndarray]:
    """Kernel layout -> Keras's ``[kernel, recurrent_kernel, bias]`` (bias omitted if both are None).

    Where Keras has a single bias (all but ``gru``), ``b_ih + b_hh`` is returned.
    """
    kernel = _permute_blocks(np.asarray(w_ih).T, mode, axis=1).copy()
    recurrent = _permute_blocks(np.asarray(w_hh).T, mode, axis=1).copy()
    if b_ih is None and b_hh is None:
        return [kernel, recurrent]
    rows = np.asarray(w_hh).shape[0]
    zero = np.zeros(rows, dtype=kernel.dtype)
    b_ih = zero if b_ih is None else np.asarray(b_ih)
    b_hh = zero if b_hh is None else np.asarray(b_hh)
    if MODES[mode].keras_bias == "double":
        bias = np.stack([_permute_blocks(b_ih, mode, 0), _permute_blocks(b_hh, mode, 0)])
    else:
        bias = _permute_blocks(b_ih + b_hh, mode, 0)
    return [kernel, recurrent, bias]


# ----------------------------------------------------------------------------------------
# Zoneout's draws: splitmix64 (Steele, Lea and Flood 2014) of a counter, as in src/cpp/random.h.

_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(z):
    """z: uint64 values, mixed; arithmetic modulo 2**64."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def zoneout_uniform(seed: int, t: int, B: int, H: int) -> np.ndarray:
    """The draws of time t: (B, H) float64 in [0, 1), of ``splitmix64(splitmix64(seed) + n)``
    for n = (t*B + b)*H + j, top 53 bits."""
    base = _splitmix64(int(seed))
    n = (np.uint64(t) * np.uint64(B) + np.arange(B, dtype=np.uint64)[:, None]) * np.uint64(H) \
        + np.arange(H, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = _splitmix64(base + n)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
