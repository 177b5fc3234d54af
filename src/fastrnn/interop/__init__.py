"""PyTorch modules in and out: ``from_torch(module)`` and ``to_torch(layer_or_model)``.

torch is optional (``pip install "fastrnn[torch]"``) and imported only when these functions
run; ``fastrnn.interop.torch`` holds the conversions and the small torch modules they build.

``from_torch(module)``, torch -> fastrnn:

- ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` -> ``SimpleRNN`` (``activation`` = the module's
  ``nonlinearity``) / ``LSTM`` / ``GRU`` (Keras's ``reset_after=True``, torch's GRU) with
  ``return_sequences=True``, inside ``Bidirectional(merge_mode='concat')`` when the module is
  ``bidirectional``. ``num_layers > 1`` gives a ``Sequential`` of one such layer per torch
  layer, with ``Dropout(dropout)`` between them when ``dropout > 0`` (as torch applies it).
  ``proj_size > 0`` raises ValueError: the kernels have no projection yet.
- ``nn.Linear`` -> ``Dense``; ``nn.Embedding`` -> ``Embedding``.
- The modules ``to_torch`` makes come back as the layers they were made from:
  ``KerasRecurrent`` -> its recurrent layer, ``nn.Sequential`` (of ``Linear``, ``Embedding``,
  ``KerasRecurrent``, ``Dropout``, ``ReLU``/``Tanh``/``Sigmoid``/``Softmax(dim=-1)``,
  ``Identity``) -> ``Sequential``, an activation after a ``Linear`` going into its ``Dense``.

fastrnn layers are batch-major, as Keras's are, whatever the module's ``batch_first``: the
result's call on ``x: (B, T, F)`` is the module's output on the same data, that is
``module(x)[0]`` for ``batch_first=True`` and ``module(x.transpose(0, 1))[0].transpose(0, 1)``
otherwise. ``torch_forward(converted, input, hx)`` runs it as the module is called instead,
in the module's layout, with initial states, returning ``(output, h_n)`` or
``(output, (h_n, c_n))`` with ``h_n: (num_layers * num_directions, B, H)``.

``to_torch(layer_or_model)``, fastrnn -> torch: a layer, or a ``Sequential`` whose layers all
are exactly what one ``nn.RNN``/``nn.LSTM``/``nn.GRU`` computes (the form ``from_torch``
makes: recurrent layers of one kind and size with ``return_sequences=True``, concat-merged
if bidirectional, and the same ``Dropout`` between every two or none), becomes that module,
whose call returns ``(output, h_n)`` as torch's does. Anything else becomes a module that
returns what the fastrnn layer or model returns: ``fastrnn.interop.torch.KerasRecurrent``
around a torch RNN (for ``return_sequences=False``, ``return_state``, ``go_backwards``, the
layer's input ``dropout``, a non-concat merge), ``nn.Linear`` (followed by the activation),
``nn.Embedding``, ``nn.Dropout``, and ``nn.Sequential`` for a ``Sequential``. Modules are
made in the layer's dtype and torch's default training mode: call ``.eval()`` for inference.
Masks have no torch counterpart: layers with ``mask_zero`` or ``Masking`` raise ValueError,
as does ``GRU(reset_after=False)`` (torch's GRU resets after the recurrent product only).

The torch layout: ``batch_first=None`` (the default of ``to_torch`` and ``torch_forward``)
means the module's the object was converted from (``from_torch`` records it in the result's
``torch_options``), and True for layers made in fastrnn, so that the module takes the same
data as the layer. So ``to_torch(from_torch(m))`` is ``m`` again: the same class and
arguments, the same weights bit for bit, the same outputs.

Biases: torch's RNN and LSTM have two biases, ``bias_ih`` and ``bias_hh``; Keras's SimpleRNN
and LSTM have one. A converted layer keeps both, unchanged, as ``b_ih`` and ``b_hh`` (the
kernels take both), so its outputs are torch's to rounding, not ``b_ih + b_hh`` rounded once
more. Its ``get_weights`` gives Keras's one bias, ``b_ih + b_hh``; ``set_weights`` and
``load_model`` put a bias in ``b_ih`` alone. ``count_params`` counts both, as torch does.

Frozen parameters: a module whose parameters all have ``requires_grad=False`` becomes a layer
with ``trainable=False``, and a non-trainable layer becomes a module with frozen parameters.

``nn.Embedding(padding_idx=...)``: the outputs are the same, and the index is kept for
``to_torch``, but fastrnn's ``Embedding`` has no padding row, so in training the row is
updated as any other (torch leaves it unchanged). ``max_norm`` and ``scale_grad_by_freq``
raise ValueError.
"""
from __future__ import annotations

import numpy as np

__all__ = ["from_torch", "to_torch", "torch_forward"]


def from_torch(module):
    """A torch module -> the equivalent fastrnn layer or ``Sequential`` (see the module docstring).

    module: ``torch.nn.RNN``, ``LSTM``, ``GRU``, ``Linear``, ``Embedding``, or a module that
    ``to_torch`` made, in float32 or float64. TypeError for anything else, ValueError for
    arguments fastrnn cannot compute.
    """
    from fastrnn.interop import torch as convert

    return convert.from_torch(module)


def to_torch(layer_or_model, batch_first=None):
    """A fastrnn layer or ``Sequential`` -> a torch module computing the same (see the module
    docstring). batch_first: None (from the torch module it came from, else True), True or False.
    """
    from fastrnn.interop import torch as convert

    return convert.to_torch(layer_or_model, batch_first=batch_first)


def torch_forward(converted, input, hx=None, batch_first=None):  # noqa: A002 (torch's name)
    """Run a recurrent layer or stack as the torch module it stands for is called (inference).

    converted: a ``SimpleRNN``/``LSTM``/``GRU``, a concat ``Bidirectional`` of one, or a
    ``Sequential`` of such layers of one kind and size (``Dropout`` between them is skipped);
    input: (T, B, F), or (B, T, F) when ``batch_first``; hx: None (zeros), h0 or for LSTM the
    pair (h0, c0), each (L*D, B, H) with L layers of D directions. batch_first: None takes
    the module's the layer came from (else False, torch's default).
    Returns NumPy arrays ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM, with
    output: (T, B, D*H) (or (B, T, D*H)), h_n, c_n: (L*D, B, H). Accepts arrays or CPU tensors.
    """
    layers = recurrent_stack(converted, "torch_forward")
    if batch_first is None:
        batch_first = torch_options(converted).get("batch_first", False)
    x = _numpy(input, "input")
    first = layers[0][0]
    if x.ndim != 3 or x.shape[-1] != first.input_shape[-1]:
        layout = "(B, T, F)" if batch_first else "(T, B, F)"
        raise ValueError(f"torch_forward: input must have shape {layout} with F = "
                         f"{first.input_shape[-1]}, got {x.shape}")
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2) if batch_first else x)  # (T, B, F)
    h0, c0 = _initial_states(hx, first, len(layers) * len(layers[0]), x_tm.shape[1])
    h_n, c_n = [], []
    for directions in layers:
        outputs = []
        for layer in directions:
            k = len(h_n)
            state = None if h0 is None else [h0[k]] + ([] if c0 is None else [c0[k]])
            y, h, c = layer.run(x_tm.astype(layer.dtype, copy=False), initial_state=state)
            outputs.append(y)  # (T, B, H), each output at its own time position
            h_n.append(h)
            c_n.append(c)
        x_tm = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D*H)
    output = np.ascontiguousarray(x_tm.transpose(1, 0, 2)) if batch_first else x_tm
    if first.mode == "lstm":
        return output, (np.stack(h_n), np.stack(c_n))
    return output, np.stack(h_n)


def torch_options(obj) -> dict:
    """What ``from_torch`` recorded of the module ``obj`` came from ({} for others)."""
    options = getattr(obj, "torch_options", None)
    return options if isinstance(options, dict) else {}


def recurrent_stack(obj, what, merges=("concat",)):
    """obj as torch's layers: a list with, per layer, [layer] or [forward, backward] Recurrent
    layers, all of one kind and size; ValueError (naming ``what``) when it is no such stack.
    obj: a Recurrent layer, a Bidirectional one merged by one of ``merges``, or a Sequential of
    those and Dropout layers (which are left out)."""
    from fastrnn.layers import Bidirectional, Dropout, Recurrent
    from fastrnn.models import Sequential

    items = obj.layers if isinstance(obj, Sequential) else [obj]
    layers = []
    for item in items:
        if isinstance(item, Dropout):
            continue
        if isinstance(item, Bidirectional) and item.merge_mode in merges:
            layers.append([item.forward_layer, item.backward_layer])
        elif isinstance(item, Recurrent):
            layers.append([item])
        else:
            raise ValueError(f"{what} runs SimpleRNN/LSTM/GRU layers, concat-merged Bidirectional "
                             f"ones and Dropout between them, got {item!r}")
    if not layers:
        raise ValueError(f"{what}: {obj!r} holds no recurrent layer")
    first = layers[0][0]
    for directions in layers:
        for k, layer in enumerate(directions):
            if not layer.built:
                raise ValueError(f"{what}: {layer.who} is not built")
            if layer.mode not in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
                raise ValueError(f"{what}: {layer.who} is an LSTM with peepholes, which torch's "
                                 "LSTM has not")
            if layer.zoneout > 0:
                raise ValueError(f"{what}: {layer.who} has zoneout={layer.zoneout}, which torch's "
                                 "RNN modules do not have")
            if layer.go_backwards != (k == 1) or layer.stateful:
                raise ValueError(f"{what}: {layer.who} reads backwards or is stateful, which a "
                                 "torch RNN does not")
            if (layer.mode, layer.units, layer.use_bias, layer.dtype, layer.activations()) != \
                    (first.mode, first.units, first.use_bias, first.dtype, first.activations()):
                raise ValueError(f"{what}: the layers of one torch RNN are of one kind and size; "
                                 f"{layer.who} differs from {first.who}")
        if len(directions) != len(layers[0]):
            raise ValueError(f"{what}: layers of one torch RNN are all bidirectional or none")
    return layers


def _numpy(a, name):
    """An array or a CPU torch tensor -> ndarray of numbers (TypeError otherwise)."""
    if hasattr(a, "detach") and hasattr(a, "numpy"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"torch_forward: {name} must hold numbers, got dtype {a.dtype}")
    return a


def _initial_states(hx, layer, count, batch):
    """hx -> (h0, c0), each (count, B, H) or None."""
    if hx is None:
        return None, None
    lstm = layer.mode == "lstm"
    if lstm != isinstance(hx, (tuple, list)) or (lstm and len(hx) != 2):
        want = "a pair (h0, c0)" if lstm else "one array h0"
        raise ValueError(f"torch_forward: hx must be {want} for {layer.who}, got {type(hx).__name__}")
    states = [_numpy(s, "hx") for s in (hx if lstm else [hx])]
    for s in states:
        if s.shape != (count, batch, layer.units):
            raise ValueError(f"torch_forward: each initial state must have shape (L*D, B, H) = "
                             f"{(count, batch, layer.units)}, got {s.shape}")
    return states[0], (states[1] if lstm else None)
