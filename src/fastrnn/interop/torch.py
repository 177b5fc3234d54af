"""The conversions of ``fastrnn.interop`` and the torch module they build where torch has no
single one, ``KerasRecurrent``. Importing this module imports torch.

Both sides keep recurrent weights in one layout (``fastrnn.modes``: torch's, gate by gate),
so the weights are copied as they are, layer by layer and direction by direction.
"""
from __future__ import annotations

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError("fastrnn.interop needs PyTorch: pip install \"fastrnn[torch]\" "
                      "(torch==2.13.0)") from err

from fastrnn.interop import recurrent_stack, torch_options
from fastrnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout, Embedding,
                            Layer, Recurrent, SimpleRNN, TimeDistributed, activations)
from fastrnn.models import Sequential
from fastrnn.modes import GATES, MODES, RECURRENT_ACTIVATION

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}
_RNN_CLASSES = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                "softmax": lambda: nn.Softmax(dim=-1)}
_ACTIVATION_NAMES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softmax: "softmax"}


# ------------------------------------------------------------------------------------------
# torch -> fastrnn

def from_torch(module):
    """See ``fastrnn.interop.from_torch``."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    kind = type(module)
    if kind in (nn.RNN, nn.LSTM, nn.GRU):
        return _from_rnn(module)
    if kind is nn.Linear:
        return _from_linear(module)
    if kind is nn.Embedding:
        return _from_embedding(module)
    if kind is KerasRecurrent:
        return _from_keras_recurrent(module)
    if kind is nn.Sequential:
        return _from_sequential(module)
    raise TypeError(f"from_torch converts torch.nn.RNN, LSTM, GRU, Linear and Embedding, and "
                    f"the KerasRecurrent and nn.Sequential modules to_torch makes (exactly those "
                    f"classes: a subclass may compute something else), got "
                    f"{kind.__module__}.{kind.__qualname__}")


def _dtype(module) -> str:
    """The fastrnn dtype of a module's parameters (TypeError unless all float32 or all float64)."""
    dtypes = {p.dtype for p in module.parameters()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise TypeError(f"from_torch: the parameters of {type(module).__name__} must all be "
                        f"float32 or all float64, got {sorted(map(str, dtypes))}")
    return _DTYPES[dtypes.pop()]


def _trainable(module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _array(p) -> np.ndarray:
    return p.detach().cpu().numpy()


def check_no_projection(module) -> None:
    """The one place that refuses LSTM projections; lift it once the kernels have ``proj_size``."""
    if getattr(module, "proj_size", 0) > 0:
        raise ValueError(f"from_torch: nn.LSTM with proj_size={module.proj_size} is not supported "
                         "yet (the kernels have no projection); use proj_size=0")


def _from_rnn(module):
    check_no_projection(module)
    dtype, trainable = _dtype(module), _trainable(module)
    L = module.num_layers
    directions = 2 if module.bidirectional else 1
    layers = []
    for k in range(L):
        if k > 0 and module.dropout > 0:
            layers.append(Dropout(module.dropout, dtype=dtype))
        layers.append(_recurrent_for(module, dtype, trainable))
    shape = (None, None, module.input_size)
    result = layers[0] if L == 1 else Sequential(layers)
    result.build(shape)
    recurrent = [layer for layer in layers if not isinstance(layer, Dropout)]
    for k, layer in enumerate(recurrent):
        subs = [layer.forward_layer, layer.backward_layer] if directions == 2 else [layer]
        for sub, suffix in zip(subs, ("", "_reverse")):
            _copy_into_layer(module, sub, f"_l{k}{suffix}")
    result.torch_options = {"batch_first": bool(module.batch_first)}
    return result


def _recurrent_for(module, dtype, trainable, merge_mode="concat", **options):
    """A new fastrnn layer for one torch layer of ``module`` (unbuilt, weights copied later);
    options: the Recurrent layer's (return_sequences=True unless given)."""
    kwargs = {"return_sequences": True, "use_bias": bool(module.bias), "dtype": dtype,
              "trainable": trainable, **options}
    if module.mode == "LSTM":
        layer = LSTM(module.hidden_size, **kwargs)
    elif module.mode == "GRU":
        layer = GRU(module.hidden_size, **kwargs)
    else:
        layer = SimpleRNN(module.hidden_size, activation=module.nonlinearity, **kwargs)
    if not module.bidirectional:
        return layer
    return Bidirectional(layer, merge_mode=merge_mode, dtype=dtype, trainable=trainable)


def _from_keras_recurrent(module):
    rnn = module.rnn
    check_no_projection(rnn)
    dtype = _dtype(rnn)
    layer = _recurrent_for(rnn, dtype, _trainable(rnn), merge_mode=module.merge_mode or "concat",
                           return_sequences=module.return_sequences,
                           return_state=module.return_state, go_backwards=module.go_backwards,
                           dropout=module.dropout)
    layer.build((None, None, rnn.input_size))
    subs = [layer.forward_layer, layer.backward_layer] if rnn.bidirectional else [layer]
    for sub, suffix in zip(subs, ("", "_reverse")):
        _copy_into_layer(rnn, sub, "_l0" + suffix)
    layer.torch_options = {"batch_first": bool(rnn.batch_first)}
    return layer


def _from_sequential(module):
    """nn.Sequential of Linear (with the activation after it), Embedding, KerasRecurrent,
    Dropout, ReLU/Tanh/Sigmoid/Softmax(dim=-1) and Identity modules -> Sequential."""
    if next(module.parameters(), None) is None:
        raise ValueError("from_torch: the nn.Sequential has no module with weights, so nothing "
                         "fixes its input size")
    dtype = _dtype(module)
    layers, layouts = [], set()
    for child in module:
        activation = _activation_name(child)
        if type(child) is nn.Identity:
            continue
        if activation is not None:
            if layers and isinstance(layers[-1], Dense) and layers[-1].activation.name == "linear":
                layers[-1].activation = activations.get(activation)  # Linear, then act: one Dense
            else:
                layers.append(Activation(activation, dtype=dtype))
        elif type(child) is nn.Dropout:
            layers.append(Dropout(child.p, dtype=dtype))
        elif type(child) in (nn.Linear, nn.Embedding, KerasRecurrent):
            layers.append(from_torch(child))
            layouts.add(torch_options(layers[-1]).get("batch_first"))
        else:
            raise TypeError(f"from_torch: nn.Sequential holds {type(child).__name__}, which has "
                            "no fastrnn layer here (a torch RNN in nn.Sequential returns a tuple: "
                            "to_torch wraps it in KerasRecurrent)")
    layouts.discard(None)
    if len(layouts) > 1:
        raise ValueError("from_torch: the KerasRecurrent modules of one nn.Sequential must all "
                         "be batch_first or none")
    model = Sequential(layers)
    model.build(_input_shape(layers))
    if layouts:
        model.torch_options = {"batch_first": layouts.pop()}
    return model


def _activation_name(child):
    """'relu', 'tanh', 'sigmoid' or 'softmax' for those torch modules, else None."""
    name = _ACTIVATION_NAMES.get(type(child))
    if name == "softmax" and child.dim != -1:
        raise ValueError(f"from_torch: nn.Softmax(dim={child.dim}): fastrnn's softmax is over "
                         "the last axis, dim=-1")
    return name


def _input_shape(layers):
    """The model's input shape: ids (None, None) for an Embedding first, else (None, None, F)
    with a recurrent layer in the model, (None, F) without."""
    recurrent = any(isinstance(layer, (Recurrent, Bidirectional)) for layer in layers)
    for layer in layers:
        if isinstance(layer, Embedding):
            return (None, None)
        if layer.built:
            F = layer.input_shape[-1]
            return (None, None, F) if recurrent else (None, F)
    raise ValueError("from_torch: the nn.Sequential has no module that fixes its input size")


def _copy_into_layer(module, layer, suffix):
    """Copy one torch (layer, direction) into a built Recurrent layer, both biases kept."""
    layer.w_ih[...] = _array(getattr(module, "weight_ih" + suffix))
    layer.w_hh[...] = _array(getattr(module, "weight_hh" + suffix))
    if module.bias:
        layer.b_ih[...] = _array(getattr(module, "bias_ih" + suffix))
        b_hh = _array(getattr(module, "bias_hh" + suffix))
        if layer.b_hh is None:  # SimpleRNN and LSTM: Keras has one bias, torch two
            layer.b_hh = np.array(b_hh, dtype=layer.dtype)
        else:
            layer.b_hh[...] = b_hh


def _from_linear(module):
    dense = Dense(module.out_features, use_bias=module.bias is not None, dtype=_dtype(module),
                  trainable=_trainable(module))
    dense.build((None, module.in_features))
    dense.kernel[...] = _array(module.weight).T  # (in, out)
    if module.bias is not None:
        dense.bias[...] = _array(module.bias)
    return dense


def _from_embedding(module):
    if module.max_norm is not None:
        raise ValueError("from_torch: nn.Embedding with max_norm is not supported (it rescales "
                         "rows as it looks them up); use max_norm=None")
    if module.scale_grad_by_freq:
        raise ValueError("from_torch: nn.Embedding with scale_grad_by_freq=True is not supported")
    layer = Embedding(module.num_embeddings, module.embedding_dim, dtype=_dtype(module),
                      trainable=_trainable(module))
    layer.build((None, None))
    layer.embeddings[...] = _array(module.weight)
    if module.padding_idx is not None:
        layer.torch_options = {"padding_idx": int(module.padding_idx)}
    return layer


# ------------------------------------------------------------------------------------------
# fastrnn -> torch

def to_torch(obj, batch_first=None):
    """See ``fastrnn.interop.to_torch``."""
    if batch_first is None:
        batch_first = torch_options(obj).get("batch_first", True)
    if not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"to_torch: batch_first must be None, True or False, got {batch_first!r}")
    if not isinstance(obj, (Layer, Sequential)):
        raise TypeError(f"to_torch expects a fastrnn layer or Sequential model, got "
                        f"{type(obj).__name__}")
    _check_built(obj)
    stack = _torch_rnn_stack(obj)
    if stack is not None:
        return _rnn_module(*stack, batch_first=bool(batch_first))
    if isinstance(obj, Sequential):
        modules = [m for layer in obj.layers for m in _modules_for(layer, bool(batch_first))]
        return nn.Sequential(*modules)
    modules = _modules_for(obj, bool(batch_first))
    if not modules:
        return nn.Identity()  # a linear Activation
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def _check_built(obj):
    layers = obj.layers if isinstance(obj, Sequential) else [obj]
    if not layers:
        raise ValueError(f"to_torch: model {obj.name!r} has no layers")
    for layer in layers:
        if not layer.built:
            raise ValueError(f"to_torch: {layer.who} is not built: call it on data or give it "
                             "an input_shape first")


def _torch_rnn_stack(obj):
    """(layers, dropout, trainable per layer) when ``obj`` is exactly what one torch RNN
    computes, else None."""
    try:
        layers = recurrent_stack(obj, "to_torch")
    except ValueError:
        return None
    items = obj.layers if isinstance(obj, Sequential) else [obj]
    if any(not _plain(layer) for directions in layers for layer in directions):
        return None
    dropouts = [item for item in items if isinstance(item, Dropout)]
    rates = {item.rate for item in dropouts}
    expected = [k % 2 == 1 for k in range(2 * len(layers) - 1)] if rates else [False] * len(layers)
    if ([isinstance(item, Dropout) for item in items] != expected or len(rates) > 1
            or any(item.noise_shape is not None for item in dropouts)):
        return None
    trainable = [item.trainable for item in items if not isinstance(item, Dropout)]
    return layers, (rates.pop() if rates else 0.0), trainable


def _plain(layer) -> bool:
    """Whether a recurrent layer computes what a torch RNN layer does, and returns it."""
    return (layer.return_sequences and not layer.return_state and layer.dropout == 0
            and not layer.stateful)


def _torch_activations(mode) -> dict:
    """The activations of torch's cell for ``mode``, as ``Recurrent.activations`` names them."""
    names = {"activation": MODES[mode].activation}
    if GATES[mode] > 1:
        names["recurrent_activation"] = RECURRENT_ACTIVATION
    return names


def _rnn_module(layers, dropout, trainable, batch_first):
    """A torch RNN holding the weights of ``layers`` (from ``recurrent_stack``); trainable:
    whether each layer's parameters require gradients."""
    first = layers[0][0]
    for directions in layers:
        for layer in directions:
            if layer.mode == "gru_reset_before":
                raise ValueError(f"to_torch: {layer.who} is GRU(reset_after=False), and torch's GRU "
                                 "applies the reset gate after the recurrent product only "
                                 "(reset_after=True)")
            if layer.mode not in _RNN_CLASSES:
                raise ValueError(f"to_torch: {layer.who} is an LSTM with peepholes, which torch's LSTM has not")
            if layer.activations() != _torch_activations(layer.mode):
                raise ValueError(f"to_torch: {layer.who} has activations {layer.activations()}, and "
                                 f"torch's RNN modules have only {_torch_activations(layer.mode)}")
            if layer.recurrent_dropout > 0:
                raise ValueError(f"to_torch: {layer.who} has recurrent_dropout="
                                 f"{layer.recurrent_dropout}, which torch's RNN modules do not have")
            if layer.zoneout > 0:
                raise ValueError(f"to_torch: {layer.who} has zoneout={layer.zoneout}, which torch's "
                                 "RNN modules do not have")
    kind = _RNN_CLASSES[first.mode]
    kwargs = dict(num_layers=len(layers), bias=first.use_bias, batch_first=batch_first,
                  dropout=float(dropout), bidirectional=len(layers[0]) == 2,
                  dtype=getattr(torch, first.dtype.name))
    if kind is nn.RNN:
        kwargs["nonlinearity"] = first.mode[4:]
    module = kind(first.input_shape[-1], first.units, **kwargs)
    with torch.no_grad():
        for k, directions in enumerate(layers):
            for layer, suffix in zip(directions, ("", "_reverse")):
                _copy_into_module(layer, module, f"_l{k}{suffix}", trainable[k])
    return module


def _copy_into_module(layer, module, suffix, trainable):
    for name, value in (("weight_ih", layer.w_ih), ("weight_hh", layer.w_hh),
                        ("bias_ih", layer.b_ih), ("bias_hh", layer.b_hh)):
        p = getattr(module, name + suffix, None)
        if p is None:  # bias=False
            continue
        if value is None:
            p.zero_()  # a Keras SimpleRNN or LSTM has no second bias
        else:
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        p.requires_grad_(trainable)


def _modules_for(layer, batch_first):
    """The torch modules, applied in order, that compute what ``layer`` returns."""
    if isinstance(layer, TimeDistributed):
        modules = _modules_for(layer.layer, batch_first)  # all these act on the last axes alone
        if not layer.trainable:  # the wrapper's flag is the one training reads
            for m in modules:
                m.requires_grad_(False)
        return modules
    if isinstance(layer, (Recurrent, Bidirectional)):
        return [KerasRecurrent.from_layer(layer, batch_first)]
    if isinstance(layer, Dense):
        return _dense_modules(layer)
    if isinstance(layer, Embedding):
        return [_embedding_module(layer)]
    if isinstance(layer, Dropout):
        if layer.noise_shape is not None:
            raise ValueError(f"to_torch: {layer.who} has a noise_shape, which nn.Dropout has not")
        return [nn.Dropout(layer.rate)]
    if isinstance(layer, Activation):
        return _activation_modules(layer.activation.name, layer)
    raise TypeError(f"to_torch: {layer.who} has no torch counterpart here (converted: SimpleRNN, "
                    "LSTM, GRU, Bidirectional, Dense, Embedding, Dropout, Activation, "
                    "TimeDistributed)")


def _activation_modules(name, layer):
    if name == "linear":
        return []
    if name not in _ACTIVATIONS:
        raise ValueError(f"to_torch: {layer.who}: activation {name!r} has no torch module here")
    return [_ACTIVATIONS[name]()]


def _dense_modules(layer):
    F = layer.kernel.shape[0]
    linear = nn.Linear(F, layer.units, bias=layer.use_bias, dtype=getattr(torch, layer.dtype.name))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.kernel.T)))  # (out, in)
        if layer.use_bias:
            linear.bias.copy_(torch.from_numpy(layer.bias))
    linear.requires_grad_(layer.trainable)
    return [linear] + _activation_modules(layer.activation.name, layer)


def _embedding_module(layer):
    if layer.mask_zero:
        raise ValueError(f"to_torch: {layer.who} has mask_zero=True, and torch modules take no "
                         "masks (pack the sequences instead); use mask_zero=False")
    padding_idx = torch_options(layer).get("padding_idx")
    embedding = nn.Embedding(layer.input_dim, layer.output_dim, padding_idx=padding_idx,
                             dtype=getattr(torch, layer.dtype.name))
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(layer.embeddings))
    embedding.requires_grad_(layer.trainable)
    return embedding


class KerasRecurrent(nn.Module):
    """A fastrnn (Keras) recurrent layer around a one-layer torch RNN: returns what the layer
    returns, where the torch RNN alone returns ``(output, h_n)``.

    x: (B, T, F) (or (T, B, F) when the RNN is not ``batch_first``) -> the output (B, T, M) with
    ``return_sequences``, else (B, M); with ``return_state`` the list [output, h (B, H)]
    (+ c (B, H) for LSTM). ``initial_state``: None or the list of (B, H) states (one direction).
    ``go_backwards`` reads the sequence from its end, outputs in reading order; ``dropout``
    drops input features with one mask per sequence, in training mode only. Bidirectional
    layers merge the directions by ``merge_mode``; their dropout draws one mask for both.
    """

    def __init__(self, rnn, return_sequences=False, return_state=False, go_backwards=False,
                 dropout=0.0, merge_mode=None):
        super().__init__()
        if rnn.num_layers != 1:
            raise ValueError("KerasRecurrent wraps a one-layer torch RNN")
        if (merge_mode is None) == rnn.bidirectional:
            raise ValueError("KerasRecurrent: give merge_mode for a bidirectional RNN, and only then")
        if return_state and rnn.bidirectional:
            raise ValueError("KerasRecurrent: return_state is for one direction")
        self.rnn = rnn
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.dropout = float(dropout)
        self.merge_mode = merge_mode

    @classmethod
    def from_layer(cls, layer, batch_first=True):
        """The module for a fastrnn Recurrent or Bidirectional layer, with its weights."""
        if isinstance(layer, Bidirectional):
            if layer.merge_mode is None or getattr(layer, "return_state", False):
                raise ValueError(f"to_torch: {layer.who}: a Bidirectional layer with "
                                 "merge_mode=None or return_state=True is not converted (its "
                                 "outputs come as a list)")
            stack = recurrent_stack(layer, "to_torch", merges=("concat", "sum", "mul", "ave"))
            if layer.forward_layer.dropout != layer.backward_layer.dropout:
                raise ValueError(f"to_torch: {layer.who}: its two directions have different "
                                 "dropout rates, which one torch RNN cannot draw")
            rnn = _rnn_module(stack, 0.0, [layer.trainable], batch_first)
            return cls(rnn, return_sequences=layer.return_sequences,
                       dropout=layer.forward_layer.dropout, merge_mode=layer.merge_mode)
        if layer.stateful:
            raise ValueError(f"to_torch: {layer.who} is stateful, and a torch module carries no "
                             "state from call to call")
        rnn = _rnn_module([[layer]], 0.0, [layer.trainable], batch_first)  # go_backwards: flips
        return cls(rnn, return_sequences=layer.return_sequences, return_state=layer.return_state,
                   go_backwards=layer.go_backwards, dropout=layer.dropout)

    def extra_repr(self):
        return (f"return_sequences={self.return_sequences}, return_state={self.return_state}, "
                f"go_backwards={self.go_backwards}, dropout={self.dropout}, "
                f"merge_mode={self.merge_mode!r}")

    def forward(self, x, initial_state=None):
        if x.dim() != 3:
            layout = "(B, T, F)" if self.rnn.batch_first else "(T, B, F)"
            raise ValueError(f"KerasRecurrent: x must have shape {layout}, got {tuple(x.shape)}")
        time = 1 if self.rnn.batch_first else 0
        if self.training and self.dropout > 0:
            shape = list(x.shape)
            shape[time] = 1  # the same features dropped at every step
            keep = torch.rand(shape, dtype=x.dtype, device=x.device) >= self.dropout
            x = x * keep.to(x.dtype) / (1 - self.dropout)
        if self.go_backwards:
            x = x.flip(time)
        hx = None
        if initial_state is not None:
            if self.merge_mode is not None:
                raise ValueError("KerasRecurrent: a bidirectional layer takes no initial_state here")
            states = [s.unsqueeze(0) for s in initial_state]  # (1, B, H) each
            hx = tuple(states) if isinstance(self.rnn, nn.LSTM) else states[0]
        y, state = self.rnn(x, hx)  # y: (B, T, D*H) or (T, B, D*H)
        h_n, c_n = state if isinstance(self.rnn, nn.LSTM) else (state, None)  # (D, B, H)
        if self.merge_mode is None:
            output = y if self.return_sequences else h_n[-1]
        elif self.return_sequences:
            H = self.rnn.hidden_size
            output = _merge(self.merge_mode, y[..., :H], y[..., H:])
        else:
            output = _merge(self.merge_mode, h_n[0], h_n[1])
        if self.return_state:
            return [output, h_n[0]] + ([] if c_n is None else [c_n[0]])
        return output


def _merge(mode, a, b):
    if mode == "concat":
        return torch.cat([a, b], dim=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    return (a + b) / 2  # 'ave'
