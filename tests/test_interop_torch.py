"""``fastrnn.interop`` against PyTorch: modules converted both ways, then checked output for
output and gradient for gradient against the original on the same data and weights.

Gradients are those of ``sum(output * R)`` for a random R: torch's autograd on one side,
the fastrnn layers' ``backward`` (``grads`` in the kernel layout, which is torch's) on the
other. Tolerances: float64 rtol 1e-10, float32 rtol 1e-5, and for entries near zero an atol
of a tenth of that times the array's largest magnitude (at least 1). Round trips are exact:
the same weights bit for bit, the same outputs.
Skipped when torch is not installed.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from fastrnn import Sequential, interop, load_model
from fastrnn.layers import (GRU, LSTM, Activation, Bidirectional, Dense, Dropout, Embedding,
                            Masking, SimpleRNN, TimeDistributed)

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-11)}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
B, T, F, H = 3, 6, 4, 5
RNN_KINDS = {
    "rnn_tanh": lambda **kw: nn.RNN(F, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: nn.RNN(F, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: nn.LSTM(F, H, **kw),
    "gru": lambda **kw: nn.GRU(F, H, **kw),
}
KERAS_KINDS = {
    "rnn_tanh": lambda **kw: SimpleRNN(H, **kw),
    "rnn_relu": lambda **kw: SimpleRNN(H, activation="relu", **kw),
    "lstm": lambda **kw: LSTM(H, **kw),
    "gru": lambda **kw: GRU(H, **kw),
}


def randomized(module, seed=0):
    """module with every parameter uniform in [-0.6, 0.6], so biases are far from zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 1.2 - 0.6)
    return module


def torch_rnn(kind, dtype, seed=0, **kwargs):
    return randomized(RNN_KINDS[kind](dtype=TORCH_DTYPE[dtype], **kwargs), seed)


def keras_weights(layer, seed=0):
    """Random weights in Keras's layout for a built fastrnn layer."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.6, 0.6, s) for s in layer.weight_shapes()])
    return layer


def data(dtype, shape=(B, T, F), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def close(actual, expected, dtype):
    """Equal to TOL[dtype]; atol scaled by the array's largest entry when that is over 1 (a
    gradient entry summed from large terms of both signs carries their rounding)."""
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    scale = max(1.0, float(np.abs(expected).max(initial=0)))
    tol = TOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def time_major(a):
    return np.ascontiguousarray(np.swapaxes(a, 0, 1))


def forward_backward(converted, x, R, **call):
    """A fastrnn layer or Sequential on x, then the backward pass of sum(output * R) ->
    (output, dx, [grads of every layer]). Layer by layer, so that dx is returned."""
    layers = converted.layers if isinstance(converted, Sequential) else [converted]
    out = x
    for k, layer in enumerate(layers):
        out = layer(out, training=True, **(call if k == 0 else {}))
    d = R
    for layer in reversed(layers):
        d = layer.backward(d)
    return out, d, [g for layer in layers for g in layer.grads]


def torch_rnn_params(module):
    """The parameters of a torch RNN in the order fastrnn keeps them: layer by layer,
    direction by direction, w_ih, w_hh, b_ih, b_hh."""
    names = []
    for k in range(module.num_layers):
        for suffix in ("", "_reverse")[:1 + module.bidirectional]:
            names += [f"weight_ih_l{k}{suffix}", f"weight_hh_l{k}{suffix}"]
            names += [f"bias_ih_l{k}{suffix}", f"bias_hh_l{k}{suffix}"] if module.bias else []
    return [getattr(module, n) for n in names]


def torch_output(module, x_batch_major, hx=None):
    """The module on batch-major data, in its own layout; output returned batch-major."""
    x = torch.tensor(x_batch_major if module.batch_first else time_major(x_batch_major),
                     requires_grad=True)
    out, state = module(x, hx)
    return (out if module.batch_first else out.transpose(0, 1)), state, x


def torch_dx(module, xt):
    dx = xt.grad.numpy()
    return dx if module.batch_first else time_major(dx)


# ------------------------------------------------------------------------------------------
# torch -> fastrnn

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", [dict(batch_first=False), dict(batch_first=True),
                                    dict(batch_first=False, bias=False)], ids=["tm", "bf", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(RNN_KINDS))
def test_from_torch_rnn_outputs_and_gradients(kind, num_layers, bidirectional, layout, dtype):
    module = torch_rnn(kind, dtype, num_layers=num_layers, bidirectional=bidirectional, **layout)
    converted = interop.from_torch(module)
    assert isinstance(converted, Sequential if num_layers > 1 else (Bidirectional if bidirectional
                                                                   else KERAS_KINDS[kind]().__class__))
    x = data(dtype)
    R = data(dtype, (B, T, (1 + bidirectional) * H), seed=2)

    out_t, _, xt = torch_output(module, x)
    (out_t * torch.tensor(R)).sum().backward()
    out, dx, grads = forward_backward(converted, x, R)

    assert out.dtype == np.dtype(dtype)
    close(out, out_t, dtype)
    close(dx, torch_dx(module, xt), dtype)
    params = torch_rnn_params(module)
    assert len(grads) == len(params)
    for got, p in zip(grads, params):
        close(got, p.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", list(RNN_KINDS))
def test_from_torch_initial_states_and_their_gradients(kind, dtype):
    module = torch_rnn(kind, dtype, batch_first=True)
    layer = interop.from_torch(module)
    x, R = data(dtype), data(dtype, (B, T, H), seed=2)
    states = [data(dtype, (B, H), seed=3 + k) for k in range(2 if kind == "lstm" else 1)]

    tensors = [torch.tensor(s[None], requires_grad=True) for s in states]  # (1, B, H)
    out_t, _, _ = torch_output(module, x, tuple(tensors) if kind == "lstm" else tensors[0])
    (out_t * torch.tensor(R)).sum().backward()
    out, _, _ = forward_backward(layer, x, R, initial_state=states)

    close(out, out_t, dtype)
    assert len(layer.initial_state_grads) == len(tensors)
    for got, t in zip(layer.initial_state_grads, tensors):
        close(got, t.grad[0], dtype)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_torch_forward_returns_torch_outputs_and_final_states(kind, batch_first):
    dtype = "float64"
    module = torch_rnn(kind, dtype, num_layers=2, bidirectional=True, batch_first=batch_first)
    converted = interop.from_torch(module)
    x = data(dtype, (B, T, F) if batch_first else (T, B, F))
    states = [data(dtype, (4, B, H), seed=5 + k) for k in range(2 if kind == "lstm" else 1)]
    hx = tuple(states) if kind == "lstm" else states[0]

    outputs = []
    for given in (None, hx):
        with torch.no_grad():
            out_t, state_t = module(torch.tensor(x), None if given is None else
                                    (tuple(map(torch.tensor, given)) if kind == "lstm"
                                     else torch.tensor(given)))
        out, state = interop.torch_forward(converted, x, given)
        close(out, out_t, dtype)
        outputs.append(out_t.numpy())
        if kind == "lstm":
            close(state[0], state_t[0], dtype)
            close(state[1], state_t[1], dtype)
        else:
            assert state.shape == (4, B, H)
            close(state, state_t, dtype)
    # torch tensors are taken as they are, and batch_first can be overridden
    out, _ = interop.torch_forward(converted, torch.tensor(time_major(x)), batch_first=not batch_first)
    close(out, time_major(outputs[0]), dtype)


def test_from_torch_dropout_becomes_dropout_layers_between_the_stacked_ones():
    module = torch_rnn("lstm", "float64", num_layers=3, dropout=0.25, batch_first=True)
    converted = interop.from_torch(module)
    kinds = [type(layer) for layer in converted.layers]
    assert kinds == [LSTM, Dropout, LSTM, Dropout, LSTM]
    assert all(layer.rate == 0.25 for layer in converted.layers if isinstance(layer, Dropout))
    x = data("float64")
    module.eval()
    with torch.no_grad():
        close(converted.predict(x, verbose=0), module(torch.tensor(x))[0], "float64")
    back = interop.to_torch(converted)
    assert type(back) is nn.LSTM and back.dropout == 0.25 and back.num_layers == 3


def test_one_torch_layer_with_dropout_has_no_dropout_layer():
    with pytest.warns(UserWarning):  # torch's own: dropout acts between layers only
        module = nn.LSTM(F, H, dropout=0.5)
    assert isinstance(interop.from_torch(module), LSTM)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False])
def test_from_torch_linear(bias, dtype):
    module = randomized(nn.Linear(F, 7, bias=bias, dtype=TORCH_DTYPE[dtype]))
    dense = interop.from_torch(module)
    x, R = data(dtype), data(dtype, (B, T, 7), seed=2)  # Dense and Linear act on the last axis
    xt = torch.tensor(x, requires_grad=True)
    out_t = module(xt)
    (out_t * torch.tensor(R)).sum().backward()
    out, dx, grads = forward_backward(dense, x, R)
    close(out, out_t, dtype)
    close(dx, xt.grad, dtype)
    close(grads[0], module.weight.grad.T, dtype)
    assert len(grads) == 1 + bias
    if bias:
        close(grads[1], module.bias.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_embedding(dtype):
    module = randomized(nn.Embedding(9, F, dtype=TORCH_DTYPE[dtype]))
    layer = interop.from_torch(module)
    ids = np.array([[1, 2, 2, 8], [0, 3, 1, 1]])
    R = data(dtype, (2, 4, F), seed=2)
    out_t = module(torch.tensor(ids))
    (out_t * torch.tensor(R)).sum().backward()
    out, dx, grads = forward_backward(layer, ids, R)
    assert dx is None
    close(out, out_t, dtype)
    close(grads[0], module.weight.grad, dtype)


def test_embedding_padding_idx_gives_the_same_outputs_and_a_trained_padding_row():
    module = randomized(nn.Embedding(6, F, padding_idx=0, dtype=torch.float64))
    layer = interop.from_torch(module)
    ids = np.array([[0, 2, 0, 5]])
    R = data("float64", (1, 4, F), seed=2)
    out_t = module(torch.tensor(ids))
    (out_t * torch.tensor(R)).sum().backward()
    out, _, grads = forward_backward(layer, ids, R)
    close(out, out_t, "float64")
    close(grads[0][1:], module.weight.grad[1:], "float64")
    assert not module.weight.grad[0].any()  # torch keeps the padding row fixed
    close(grads[0][0], R[0, 0] + R[0, 2], "float64")  # fastrnn's Embedding has no such row
    assert interop.to_torch(layer).padding_idx == 0


def test_from_torch_keeps_both_biases_and_keras_weights_hold_their_sum():
    module = torch_rnn("lstm", "float32")
    layer = interop.from_torch(module)
    np.testing.assert_array_equal(layer.b_ih, module.bias_ih_l0.detach().numpy())
    np.testing.assert_array_equal(layer.b_hh, module.bias_hh_l0.detach().numpy())
    assert layer.count_params() == sum(p.numel() for p in module.parameters())
    kernel, recurrent, bias = layer.get_weights()
    np.testing.assert_array_equal(bias, layer.b_ih + layer.b_hh)
    x = data("float32")
    before = layer(x)

    layer.set_weights(layer.get_weights())  # Keras's one bias: all of it in b_ih
    assert not layer.b_hh.any()
    np.testing.assert_array_equal(layer.b_ih, bias)
    close(layer(x), before, "float32")  # summed once more: the same to rounding


def test_a_converted_stack_saves_and_loads_with_the_summed_bias(tmp_path):
    module = torch_rnn("rnn_tanh", "float64", num_layers=2, batch_first=True)
    model = interop.from_torch(module)
    model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    assert loaded.layers[0].b_hh is None
    x = data("float64")
    close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), "float64")
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_frozen_modules_give_frozen_layers_and_back():
    module = torch_rnn("gru", "float32", num_layers=2)
    module.requires_grad_(False)
    model = interop.from_torch(module)
    assert not any(layer.trainable for layer in model.layers)
    assert not any(p.requires_grad for p in interop.to_torch(model).parameters())
    dense = Dense(3, trainable=False)
    dense.build((None, F))
    assert not interop.to_torch(dense).weight.requires_grad
    wrapped = _built(TimeDistributed(Dense(3), trainable=False), (None, T, F))
    assert not interop.to_torch(wrapped).weight.requires_grad


# ------------------------------------------------------------------------------------------
# round trips

ROUND_TRIPS = [
    ("lstm", dict()),
    ("lstm", dict(num_layers=3, bidirectional=True, batch_first=True, dropout=0.1)),
    ("gru", dict(num_layers=2, bias=False)),
    ("gru", dict(bidirectional=True, batch_first=True)),
    ("rnn_relu", dict(num_layers=2, batch_first=True)),
    ("rnn_tanh", dict(bidirectional=True, bias=False)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind, kwargs", ROUND_TRIPS)
def test_torch_to_fastrnn_to_torch_is_the_same_module(kind, kwargs, dtype):
    module = torch_rnn(kind, dtype, **kwargs)
    back = interop.to_torch(interop.from_torch(module))
    assert type(back) is type(module)
    assert repr(back) == repr(module)  # every constructor argument
    assert back.state_dict().keys() == module.state_dict().keys()
    for name, value in module.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    x = torch.tensor(data(dtype))
    module.eval()
    back.eval()
    with torch.no_grad():
        assert torch.equal(back(x)[0], module(x)[0])


@pytest.mark.parametrize("kind", list(KERAS_KINDS))
def test_fastrnn_to_torch_to_fastrnn_keeps_weights_and_outputs(kind):
    layer = KERAS_KINDS[kind](return_sequences=True, dtype="float64")
    layer.build((None, None, F))
    keras_weights(layer)
    module = interop.to_torch(layer)
    assert type(module) is {"lstm": nn.LSTM, "gru": nn.GRU}.get(kind, nn.RNN) and module.batch_first
    again = interop.from_torch(module)
    for name in ("w_ih", "w_hh", "b_ih"):
        np.testing.assert_array_equal(getattr(again, name), getattr(layer, name))
    if layer.b_hh is None:  # Keras's single bias: torch's second one is zero
        assert not again.b_hh.any()
    x = data("float64")
    np.testing.assert_array_equal(again(x), layer(x))
    for name, value in module.state_dict().items():
        assert torch.equal(interop.to_torch(again).state_dict()[name], value), name


def test_a_model_to_torch_and_back_is_the_same_model():
    dtype = "float64"
    model = Sequential([
        Embedding(11, F, dtype=dtype), LSTM(H, return_sequences=True, go_backwards=True, dtype=dtype),
        Dropout(0.2, dtype=dtype), Bidirectional(SimpleRNN(H, dtype=dtype), merge_mode="ave"),
        Dense(3, activation="tanh", dtype=dtype), Activation("softmax", dtype=dtype)])
    model.build((None, T))
    for k, layer in enumerate(model.layers):
        keras_weights(layer, seed=k)
    again = interop.from_torch(interop.to_torch(model))

    def unnamed(config):  # layer names are numbered as layers are made
        if isinstance(config, dict):
            return {k: unnamed(v) for k, v in config.items() if k != "name"}
        return config

    def configs(m):
        return [unnamed(layer.get_config()) for layer in m.layers]

    assert configs(again) == configs(model)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    ids = np.random.default_rng(3).integers(0, 11, (B, T))
    np.testing.assert_array_equal(again.predict(ids, verbose=0), model.predict(ids, verbose=0))


@pytest.mark.parametrize("options", [dict(return_sequences=False), dict(go_backwards=True),
                                     dict(return_state=True), dict(dropout=0.3)])
def test_a_recurrent_layer_to_torch_and_back_keeps_its_options(options):
    layer = keras_weights(_built(GRU(H, dtype="float64", **options), (None, None, F)))
    again = interop.from_torch(interop.to_torch(layer, batch_first=False))
    assert again.get_config() == {**layer.get_config(), "name": again.name}
    assert again.torch_options == {"batch_first": False}
    x = data("float64")
    for a, b in zip(*[out if isinstance(out, list) else [out] for out in (again(x), layer(x))]):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------
# fastrnn -> torch

def torch_grads_match(layer, module, dtype):
    """fastrnn's grads of a recurrent layer (or Bidirectional) against the torch RNN's."""
    rnn = module.rnn if isinstance(module, interop.torch.KerasRecurrent) else module
    subs = [layer.forward_layer, layer.backward_layer] if isinstance(layer, Bidirectional) else [layer]
    grads = list(layer.grads)
    for sub, suffix in zip(subs, ("", "_reverse")):
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if sub.use_bias else [])
        kept = [p for p in (sub.w_ih, sub.w_hh, sub.b_ih, sub.b_hh) if p is not None]
        mine, grads = grads[:len(kept)], grads[len(kept):]
        mine = mine + ([mine[2]] if sub.use_bias and sub.b_hh is None else [])  # d(b_ih + b_hh)
        for got, name in zip(mine, names):
            close(got, getattr(rnn, f"{name}_l0{suffix}").grad, dtype)
    assert not grads


def output_grad(out, seed=2):
    return [data(str(o.dtype), o.shape, seed + k) for k, o in enumerate(out)] \
        if isinstance(out, list) else data(str(out.dtype), out.shape, seed)


def torch_loss(out_t, R):
    if isinstance(out_t, (list, tuple)):
        return sum((o * torch.tensor(r)).sum() for o, r in zip(out_t, R))
    return (out_t * torch.tensor(R)).sum()


def check_against_torch(layer, module, x, dtype, **call):
    """layer (fastrnn) and module (torch) on x: outputs, dx and every gradient."""
    out = layer(x, **call)
    R = output_grad(out)
    xt = torch.tensor(x, requires_grad=True)
    out_t = module(xt)
    torch_loss(out_t, R).backward()
    got, dx, _ = forward_backward(layer, x, R)
    for a, b in zip(got if isinstance(got, list) else [got], out_t if isinstance(out_t, list) else [out_t]):
        close(a, b, dtype)
    close(dx, xt.grad, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind", list(KERAS_KINDS))
def test_to_torch_recurrent_layers(kind, return_sequences, go_backwards, dtype):
    layer = KERAS_KINDS[kind](return_sequences=return_sequences, go_backwards=go_backwards, dtype=dtype)
    layer.build((None, None, F))
    keras_weights(layer)
    module = interop.to_torch(layer)
    plain = return_sequences and not go_backwards
    assert isinstance(module, nn.RNNBase if plain else interop.torch.KerasRecurrent)
    if plain:  # the torch RNN itself: compare its output
        module = _FirstOutput(module)
    check_against_torch(layer, module, data(dtype), dtype)
    torch_grads_match(layer, module.module if plain else module, dtype)


class _FirstOutput(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)[0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_to_torch_return_state_and_initial_state(kind, dtype):
    layer = KERAS_KINDS[kind](return_state=True, dtype=dtype)
    layer.build((None, None, F))
    keras_weights(layer)
    module = interop.to_torch(layer)
    x = data(dtype)
    states = [data(dtype, (B, H), seed=7 + k) for k in range(layer.state_count)]
    out = layer(x, initial_state=states)
    out_t = module(torch.tensor(x), initial_state=[torch.tensor(s) for s in states])
    assert len(out_t) == len(out) == 1 + layer.state_count
    for a, b in zip(out, out_t):
        close(a, b, dtype)
    check_against_torch(layer, module, x, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_to_torch_bidirectional(merge_mode, return_sequences, dtype):
    layer = Bidirectional(GRU(H, return_sequences=return_sequences, dtype=dtype), merge_mode=merge_mode)
    layer.build((None, None, F))
    keras_weights(layer)
    module = interop.to_torch(layer)
    if merge_mode == "concat" and return_sequences:
        assert type(module) is nn.GRU and module.bidirectional
        module = _FirstOutput(module)
    check_against_torch(layer, module, data(dtype), dtype)
    torch_grads_match(layer, module.module if isinstance(module, _FirstOutput) else module, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_sequential_model(dtype):
    model = Sequential([
        Embedding(11, F, dtype=dtype), LSTM(H, return_sequences=True, dtype=dtype),
        Dropout(0.2, dtype=dtype), Bidirectional(SimpleRNN(H, dtype=dtype), merge_mode="sum"),
        Dense(3, activation="tanh", dtype=dtype), Activation("softmax", dtype=dtype)])
    model.build((None, T))
    for k, layer in enumerate(model.layers):
        keras_weights(layer, seed=k)
    module = interop.to_torch(model).eval()
    assert isinstance(module, nn.Sequential)
    assert [type(m).__name__ for m in module] == ["Embedding", "KerasRecurrent", "Dropout",
                                                 "KerasRecurrent", "Linear", "Tanh", "Softmax"]
    ids = np.random.default_rng(3).integers(0, 11, (B, T))
    out_t = module(torch.tensor(ids))
    close(model.predict(ids, verbose=0), out_t, dtype)

    model.layers[2].rate = 0.0  # so that the training pass is deterministic, for the gradients
    R = data(dtype, (B, 3), seed=4)
    torch_loss(module(torch.tensor(ids)), R).backward()
    forward_backward(model, ids, R)
    close(model.layers[0].grads[0], module[0].weight.grad, dtype)
    torch_grads_match(model.layers[1], module[1], dtype)
    torch_grads_match(model.layers[3], module[3], dtype)
    close(model.layers[4].grads[0], module[4].weight.grad.T, dtype)
    close(model.layers[4].grads[1], module[4].bias.grad, dtype)


def test_to_torch_dense_time_distributed_and_time_major_modules():
    layer = keras_weights(_built(TimeDistributed(Dense(6, activation="relu", dtype="float64")),
                                 (None, T, F)))
    module = interop.to_torch(layer)
    assert [type(m) for m in module] == [nn.Linear, nn.ReLU]
    check_against_torch(layer, module, data("float64"), "float64")

    layer = keras_weights(_built(LSTM(H, dtype="float64"), (None, None, F)))
    module = interop.to_torch(layer, batch_first=False)
    x = data("float64")
    with torch.no_grad():
        close(layer(x), module(torch.tensor(time_major(x))), "float64")


def _built(layer, shape):
    layer.build(shape)
    return layer


def test_to_torch_layer_dropout_is_one_mask_per_sequence_in_training_only():
    layer = keras_weights(_built(GRU(H, dropout=0.5), (None, None, F)))
    module = interop.to_torch(layer)
    x = torch.tensor(data("float32", (8, T, F)), requires_grad=True)
    module(x).sum().backward()
    dropped = x.grad == 0  # (B, T, F): a dropped feature is dropped at every step
    assert dropped.any() and (dropped.all(dim=1) == dropped.any(dim=1)).all()
    with torch.no_grad():
        close(layer(x.detach().numpy()), module.eval()(x), "float32")


# ------------------------------------------------------------------------------------------
# bad input

class _MyLSTM(nn.LSTM):
    pass


@pytest.mark.parametrize("module, error, words", [
    ("not a module", TypeError, "torch.nn.Module"),
    (nn.Conv1d(2, 3, 1), TypeError, "Conv1d"),
    (_MyLSTM(2, 3), TypeError, "_MyLSTM"),
    (nn.LSTM(2, 4, proj_size=2), ValueError, "proj_size"),
    (nn.GRU(2, 3).half(), TypeError, "float16"),
    (nn.Embedding(5, 2, max_norm=1.0), ValueError, "max_norm"),
    (nn.Embedding(5, 2, scale_grad_by_freq=True), ValueError, "scale_grad_by_freq"),
    (nn.Sequential(nn.Linear(2, 3), nn.Conv1d(3, 3, 1)), TypeError, "Conv1d"),
    (nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=0)), ValueError, "dim=-1"),
    (nn.Sequential(nn.Dropout(0.1)), ValueError, "input size"),
])
def test_from_torch_refuses_what_it_cannot_convert(module, error, words):
    with pytest.raises(error, match=words):
        interop.from_torch(module)


def test_to_torch_refuses_what_it_cannot_convert():
    with pytest.raises(TypeError, match="fastrnn layer"):
        interop.to_torch(nn.LSTM(2, 3))
    with pytest.raises(ValueError, match="not built"):
        interop.to_torch(LSTM(3))
    with pytest.raises(ValueError, match="stateful"):
        interop.to_torch(_built(LSTM(3, stateful=True), (None, None, 2)))
    with pytest.raises(ValueError, match="mask_zero"):
        interop.to_torch(_built(Embedding(5, 2, mask_zero=True), (None, None)))
    with pytest.raises(TypeError, match="Masking"):
        interop.to_torch(Sequential([Masking(input_shape=(T, F)), LSTM(3)]))
    with pytest.raises(ValueError, match="noise_shape"):
        interop.to_torch(_built(Dropout(0.1, noise_shape=(None, 1, F)), (None, T, F)))
    with pytest.raises(TypeError, match="batch_first"):
        interop.to_torch(_built(LSTM(3), (None, None, 2)), batch_first="yes")
    for wrapped in (Bidirectional(LSTM(3), merge_mode=None), Bidirectional(GRU(3, return_state=True))):
        with pytest.raises(ValueError, match="merge_mode=None or return_state"):
            interop.to_torch(_built(wrapped, (None, None, 2)))
    module = interop.to_torch(_built(LSTM(3), (None, None, 2)))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, F\)"):
        module(torch.zeros(T, 2))


def test_to_torch_linear_activation_is_the_identity():
    module = interop.to_torch(_built(Activation("linear"), (None, F)))
    assert type(module) is nn.Identity


def test_torch_forward_refuses_bad_arguments():
    lstm = interop.from_torch(torch_rnn("lstm", "float64"))
    x = data("float64", (T, B, F))
    with pytest.raises(ValueError, match="SimpleRNN/LSTM/GRU"):
        interop.torch_forward(_built(Dense(2), (None, F)), x)
    with pytest.raises(ValueError, match="input must have shape"):
        interop.torch_forward(lstm, x[..., :2])
    with pytest.raises(TypeError, match="input must hold numbers"):
        interop.torch_forward(lstm, np.full((T, B, F), "a"))
    with pytest.raises(ValueError, match="pair"):
        interop.torch_forward(lstm, x, np.zeros((1, B, H)))
    with pytest.raises(ValueError, match=r"\(L\*D, B, H\)"):
        interop.torch_forward(lstm, x, (np.zeros((2, B, H)), np.zeros((2, B, H))))
    with pytest.raises(ValueError, match="one kind and size"):
        interop.torch_forward(Sequential([LSTM(3, return_sequences=True, input_shape=(T, F)), GRU(3)]), x)


def test_interop_imports_torch_only_when_used():
    code = ("import sys, fastrnn, fastrnn.interop; assert 'torch' not in sys.modules; "
            "fastrnn.interop.from_torch; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_torch_without_torch_says_how_to_install_it():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from fastrnn import interop\nfrom fastrnn.layers import Dense\n"
            "d = Dense(2); d.build((None, 3))\n"
            "try:\n    interop.to_torch(d)\nexcept ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert 'pip install "fastrnn[torch]"' in result.stdout


@pytest.mark.parametrize("make", [lambda: LSTM(H, activation="relu", return_sequences=True),
                                  lambda: GRU(H, recurrent_activation="hard_sigmoid", return_sequences=True),
                                  lambda: SimpleRNN(H, activation="silu", return_sequences=True)])
def test_an_activation_torch_has_not_is_refused_naming_the_layer(make):
    layer = make()
    layer.build((None, None, F))
    with pytest.raises(ValueError, match="to_torch: .*has activations .*torch's RNN modules have only"):
        interop.to_torch(layer)
