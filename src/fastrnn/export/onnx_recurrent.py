"""ONNX forms of the recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU``, ``Bidirectional`` and
``RNN(cell)`` (one cell, or ``StackedRNNCells`` as one operator per cell, each reading the
outputs of the one before).

Each layer is ONNX's own ``RNN``/``LSTM``/``GRU`` operator, time-major, with weights moved
from the kernel layout of ``fastrnn.modes`` (PyTorch's gate orders i, f, g, o and r, z, n)
to ONNX's (i, o, f, c and z, r, h; bias ``[Wb, Rb]``); GRU's reset-after form is
``linear_before_reset=1``, its reset-before form (``reset_after=False``) ``linear_before_reset=0``. A layer holding two biases (converted from PyTorch) keeps both.
An LSTM with peepholes gives the operator its ``P`` input: its peephole (3, H), rows p_i, p_f,
p_o, in ONNX's order p_i, p_o, p_f.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastrnn.export.onnx_builder import FLOAT, INT32, Builder, Tensor, emits
from fastrnn.keras_tensor import shape_leaves
from fastrnn.layers.recurrent import GRU, LSTM, SimpleRNN
from fastrnn.layers.rnn import RNN
from fastrnn.layers.wrappers import Bidirectional

_ONNX_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "lstm_peephole": "LSTM", "gru": "GRU",
            "gru_reset_before": "GRU"}
# For each ONNX gate block, the kernel block it is: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_ONNX_BLOCKS = {"rnn_tanh": [0], "rnn_relu": [0], "lstm": [0, 3, 1, 2], "lstm_peephole": [0, 3, 1, 2],
                "gru": [1, 0, 2], "gru_reset_before": [1, 0, 2]}
# For each row of ONNX's P (p_i, p_o, p_f), the row of the peephole weight (p_i, p_f, p_o) it is.
_ONNX_PEEPHOLES = [0, 2, 1]


# The Keras activations ONNX's recurrent operators take: (ONNX name, alpha, beta), where alpha
# and beta make ONNX's function Keras's (HardSigmoid's max(0, min(1, alpha x + beta)), ...).
_ONNX_ACTIVATIONS = {
    "tanh": ("Tanh",), "sigmoid": ("Sigmoid",), "relu": ("Relu",), "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5), "leaky_relu": ("LeakyRelu", 0.2),
    "elu": ("Elu", 1.0), "celu": ("Elu", 1.0), "softsign": ("Softsign",), "softplus": ("Softplus",),
}


def check_cell(layer) -> None:
    """ValueError naming the layer when its cell is not the one the ONNX operator here is
    given: a kernel cell of another kind, or an activation ONNX's operators do not have."""
    if layer.mode not in _ONNX_OP:
        raise ValueError(f"{layer.who}: its cell {layer.mode!r} has no ONNX form here")
    if getattr(layer, "zoneout", 0):
        raise ValueError(f"{layer.who}: zoneout={layer.zoneout} has no form in ONNX's recurrent "
                         "operators (at inference it mixes each step's state with the previous one)")
    for argument, name in layer.activations().items():
        if name not in _ONNX_ACTIVATIONS:
            raise ValueError(f"{layer.who}: {argument} {name!r} has no form in ONNX's recurrent "
                             f"operators, which take {', '.join(sorted(_ONNX_ACTIVATIONS))}")


def _activation_attributes(layer, directions: int) -> dict:
    """The operator's activations, activation_alpha and activation_beta for ``layer``'s cell:
    in ONNX's order, (f) for RNN, (f, g) for GRU, (f, g, h) for LSTM, once per direction."""
    names = layer.activations()
    act, rec = names["activation"], names.get("recurrent_activation")
    order = {"RNN": [act], "GRU": [rec, act], "LSTM": [rec, act, act]}[_ONNX_OP[layer.mode]]
    functions = [_ONNX_ACTIVATIONS[name] for name in order] * directions
    attrs = {"activations": [f[0] for f in functions]}
    alphas = [f[1] for f in functions if len(f) > 1]
    betas = [f[2] for f in functions if len(f) > 2]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def onnx_weights(layer):
    """A recurrent layer's weights in ONNX's layout: W (G*H, F), R (G*H, H), B (2*G*H,) or None."""
    blocks = _ONNX_BLOCKS[layer.mode]

    def reorder(a):
        parts = np.split(np.asarray(a, np.float32), len(blocks), axis=0)
        return np.concatenate([parts[k] for k in blocks], axis=0)

    W, R = reorder(layer.w_ih), reorder(layer.w_hh)
    if layer.b_ih is None and layer.b_hh is None:
        return W, R, None
    zero = np.zeros(W.shape[0], np.float32)
    b_ih = zero if layer.b_ih is None else reorder(layer.b_ih)
    b_hh = zero if layer.b_hh is None else reorder(layer.b_hh)
    return W, R, np.concatenate([b_ih, b_hh])


def onnx_peepholes(layer) -> np.ndarray:
    """An LSTM's peephole (3, H) as a row of ONNX's P: (3H,), p_i, p_o, p_f."""
    return np.asarray(layer.cell_params["peephole"], np.float32)[_ONNX_PEEPHOLES].reshape(-1)


@dataclass
class Run:
    """One recurrent layer run over a batch: y (T, B, H) the outputs of the steps read (at
    the compacted steps when there is a mask), last (B, H) the output after the last step
    (zero for an empty sequence), states the final [h, c] (B, H), the initial ones for an
    empty sequence."""

    y: str
    last: str
    states: list


def state_inputs(b: Builder, path: str, layer, x: Tensor) -> list:
    """Optional graph inputs ``<path>/initial_h`` (``_c``) of shape (batch, H), zeros when not
    fed, each expanded to the batch of x: (B, H) values."""
    H = layer.units
    batch_shape = b.op("Concat", b.dims(x.name, 0, 1), b.ints(H), axis=0)
    names = []
    for s in ("h", "c")[:layer.state_count]:
        name = b.add_input(f"{path}/initial_{s}", FLOAT, ["batch", H], default=np.zeros((1, H), np.float32))
        names.append(b.op("Expand", name, batch_shape, hint=f"initial_{s}"))
    return names


def state_outputs(b: Builder, path: str, layer, states: list) -> None:
    for s, value in zip(("h", "c"), states):
        b.add_output(f"{path}/final_{s}", value, FLOAT, ["batch", layer.units])


def _rnn_op(b: Builder, group: list, x_c: str, lengths: str, initial: list):
    """One ONNX RNN/LSTM/GRU node for ``group``: one layer, or two reading in opposite
    directions (forward-reading first) as a bidirectional node. Returns (Y, Y_h, Y_c or None)."""
    first = group[0]
    owners = tuple(group)
    weights = [onnx_weights(layer) for layer in group]
    W = b.weight(owners, "W", lambda: np.stack([w[0] for w in weights]))
    R = b.weight(owners, "R", lambda: np.stack([w[1] for w in weights]))
    B = ""
    if any(w[2] is not None for w in weights):
        zero = np.zeros(2 * weights[0][0].shape[0], np.float32)
        B = b.weight(owners, "B", lambda: np.stack([zero if w[2] is None else w[2] for w in weights]))
    if len(group) == 2:
        direction = "bidirectional"
    else:
        direction = "reverse" if first.go_backwards else "forward"
    stacked = []
    for k in range(first.state_count):
        per_layer = [b.unsqueeze(states[k], 0) for states in initial]  # (1, B, H) each
        stacked.append(per_layer[0] if len(group) == 1 else b.op("Concat", *per_layer, axis=0))
    attrs = {"hidden_size": first.units, "direction": direction}
    attrs.update(_activation_attributes(first, len(group)))
    if first.mode == "lstm_peephole":  # P follows initial_h and initial_c
        stacked.append(b.weight(owners, "P", lambda: np.stack([onnx_peepholes(layer) for layer in group])))
    op = _ONNX_OP[first.mode]
    if op == "GRU":  # the reset after the recurrent product (1) or before it (0)
        attrs["linear_before_reset"] = int(first.mode == "gru")
    outputs = b.op(op, x_c, W, R, B, lengths, *stacked, outputs=3 if op == "LSTM" else 2,
                   hint=op, **attrs)
    return outputs[0], outputs[1], outputs[2] if op == "LSTM" else None


def _same_cell(layers) -> bool:
    f, g = layers
    return (f.mode == g.mode and f.units == g.units and f.go_backwards != g.go_backwards
            and f.activations() == g.activations())


def _full_lengths(b: Builder, x_tm: str):
    """x_tm: (T, B, F) -> (sequence_lens (B,) int32, all T; (1,) bool: T > 0)."""
    steps = b.op("Cast", b.dims(x_tm, 0, 1), to=INT32)
    lengths = b.op("Expand", steps, b.dims(x_tm, 1, 2), hint="sequence_lens")
    return lengths, b.op("Greater", steps, b.const(np.int32(0)))


def run_recurrent(b: Builder, layers: list, paths: list, x: Tensor, initial=None, stacked=False) -> list:
    """Run recurrent layers over x: (B, T, F): one, the two of a Bidirectional (both read x),
    or with ``stacked`` a stack (each reads the outputs of the one before).

    paths name each layer's state inputs and outputs; initial: for each layer its initial
    states as (B, H) values, or None for optional graph inputs. Returns a ``Run`` per layer.
    """
    for layer in layers:
        check_cell(layer)
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    x_tm = b.transpose(x.name, 1, 0, 2)  # (T, B, F)
    x_c = steps.compact(x_tm) if steps else x_tm
    # Lengths even without a mask: ONNX Runtime's GRU aborts the process on zero steps without them.
    lengths, nonempty = (steps.lengths, steps.nonempty) if steps else _full_lengths(b, x_tm)
    initial = initial or [None] * len(layers)
    initial = [state_inputs(b, path, layer, x) if given is None else given
               for layer, path, given in zip(layers, paths, initial)]
    if not stacked and len(layers) == 2 and _same_cell(layers):
        groups = [sorted(range(2), key=lambda k: layers[k].go_backwards)]  # forward-reading first
    else:
        groups = [[k] for k in range(len(layers))]
    runs = [None] * len(layers)
    for group in groups:
        Y, Y_h, Y_c = _rnn_op(b, [layers[k] for k in group], x_c, lengths, [initial[k] for k in group])
        for d, k in enumerate(group):
            y = b.op("Gather", Y, b.const(np.int64(d)), axis=1, hint="y")  # (T, B, H)
            last = b.op("Gather", Y_h, b.const(np.int64(d)), axis=0, hint="h")  # (B, H)
            states = [last] if Y_c is None else [last, b.op("Gather", Y_c, b.const(np.int64(d)), axis=0, hint="c")]
            # ONNX Runtime zeroes the states of an empty sequence; Keras keeps them.
            states = [b.op("Where", nonempty, s, s0, hint="final") for s, s0 in zip(states, initial[k])]
            runs[k] = Run(y, last, states)
        if stacked:
            x_c = runs[group[0]].y  # the next cell reads these outputs, compacted as its input was
    return runs


def _output(b: Builder, layer, run: Run, x: Tensor) -> str:
    """The output of a recurrent layer (or RNN) from the run of its last cell: (B, T, H) with
    return_sequences, in reading order, masked steps filled as Keras fills them; else the
    output of the last step read, (B, H)."""
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    if layer.return_sequences:
        y = run.y
        if steps:
            fill = "zero" if layer.zero_output_for_mask else ("before" if layer.go_backwards else "after")
            y = steps.place(y, fill)
        if layer.go_backwards:
            y = b.reverse_time(y)  # reading order, as Keras returns it
        return b.transpose(y, 1, 0, 2)  # (B, T, H)
    output = run.last
    if steps and layer.zero_output_for_mask:
        output = b.op("Where", steps.last_read_is_real(layer.go_backwards), output, b.scalar(0))
    return output


def _given_states(initial_state, counts):
    """initial_state (Tensors, flattened) -> a list of names per layer, ``counts`` each."""
    if initial_state is None:
        return None
    names, out, k = [s.name for s in initial_state], [], 0
    for n in counts:
        out.append(names[k:k + n])
        k += n
    return out


def _states(layers, runs, x: Tensor) -> list:
    """The final states of each layer's run as Tensors (B, H), in order, without masks."""
    return [Tensor(s, (x.shape[0], layer.units)) for layer, run in zip(layers, runs) for s in run.states]


@emits(SimpleRNN, LSTM, GRU)
def _recurrent(b, layer, x, initial_state=None):
    path = b.call_path
    run = run_recurrent(b, [layer], [path], x, _given_states(initial_state, [layer.state_count]))[0]
    if initial_state is None:
        state_outputs(b, path, layer, run.states)
    shapes = shape_leaves(layer.compute_output_shape(x.shape))
    out = Tensor(_output(b, layer, run, x), shapes[0], FLOAT, x.mask if layer.return_sequences else None)
    return [out] + _states([layer], [run], x) if layer.return_state else out


@emits(RNN)
def _rnn(b, layer, x, initial_state=None):
    cells = layer.cell.cells if layer._stacked else [layer.cell]
    subs = [cell.layer for cell in cells]  # the recurrent layer each cell runs as
    path = b.call_path
    paths = [f"{path}/{cell.name}" for cell in cells] if layer._stacked else [path]
    given = _given_states(initial_state, [sub.state_count for sub in subs])
    runs = run_recurrent(b, subs, paths, x, given, stacked=True)
    if initial_state is None:
        for sub, sub_path, run in zip(subs, paths, runs):
            state_outputs(b, sub_path, sub, run.states)
    shapes = shape_leaves(layer.compute_output_shape(x.shape))
    out = Tensor(_output(b, layer, runs[-1], x), shapes[0], FLOAT, x.mask if layer.return_sequences else None)
    return [out] + _states(subs, runs, x) if layer.return_state else out


def _merge(b: Builder, mode: str, a: str, c: str) -> str:
    if mode == "concat":
        return b.op("Concat", a, c, axis=-1)
    if mode == "sum":
        return b.op("Add", a, c)
    if mode == "mul":
        return b.op("Mul", a, c)
    return b.op("Mul", b.op("Add", a, c), b.scalar(0.5))  # 'ave'


@emits(Bidirectional)
def _bidirectional(b, layer, x, initial_state=None):
    subs = [layer.forward_layer, layer.backward_layer]
    paths = [f"{b.call_path}/forward", f"{b.call_path}/backward"]
    runs = run_recurrent(b, subs, paths, x, _given_states(initial_state, [s.state_count for s in subs]))
    if initial_state is None:
        for sub, path, run in zip(subs, paths, runs):
            state_outputs(b, path, sub, run.states)
    steps = b.mask_steps(x.mask) if x.mask is not None else None
    if layer.return_sequences:
        parts = [steps.place(run.y, "zero") if steps else run.y for run in runs]  # time positions
    else:
        parts = [run.last for run in runs]
    if layer.merge_mode is not None:
        parts = [_merge(b, layer.merge_mode, *parts)]
    if layer.return_sequences:
        parts = [b.transpose(p, 1, 0, 2) for p in parts]  # (B, T, M)
    shapes = shape_leaves(layer.compute_output_shape(x.shape))
    mask = x.mask if layer.return_sequences else None
    outs = [Tensor(p, shape, FLOAT, mask) for p, shape in zip(parts, shapes)]
    if layer.return_state:
        return outs + _states(subs, runs, x)
    return outs[0] if layer.merge_mode is not None else outs
