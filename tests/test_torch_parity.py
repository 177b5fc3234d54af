"""Layers against PyTorch's ``nn.RNN``/``nn.LSTM``/``nn.GRU`` with the same weights (float64).

PyTorch's weights are turned into Keras's layout by hand here (not with
``fastrnn.modes``), set with ``set_weights``, and then outputs, final states and
gradients must agree to rtol 1e-9: single layers, stacks, bidirectional layers and
padded batches (PyTorch's packed sequences against fastrnn's masks).
Skipped when torch is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastrnn import Sequential
from fastrnn.layers import GRU, LSTM, Bidirectional, SimpleRNN

torch = pytest.importorskip("torch")
pack_padded_sequence = torch.nn.utils.rnn.pack_padded_sequence
pad_packed_sequence = torch.nn.utils.rnn.pad_packed_sequence

RTOL = 1e-9
ATOL = 1e-12
B, T, F, H = 4, 5, 3, 4
LENGTHS = [5, 3, 1, 4]

MODES = {
    "rnn_tanh": (lambda **kw: torch.nn.RNN(F, H, nonlinearity="tanh", **kw),
                 lambda **kw: SimpleRNN(H, dtype="float64", **kw)),
    "rnn_relu": (lambda **kw: torch.nn.RNN(F, H, nonlinearity="relu", **kw),
                 lambda **kw: SimpleRNN(H, activation="relu", dtype="float64", **kw)),
    "lstm": (lambda **kw: torch.nn.LSTM(F, H, **kw), lambda **kw: LSTM(H, dtype="float64", **kw)),
    "gru": (lambda **kw: torch.nn.GRU(F, H, **kw), lambda **kw: GRU(H, dtype="float64", **kw)),
}


def torch_layer(mode, **kwargs):
    torch.manual_seed(0)
    layer = MODES[mode][0](batch_first=True, **kwargs).double()
    with torch.no_grad():  # biases away from zero, so that they are really tested
        for name, p in layer.named_parameters():
            p.copy_(torch.empty_like(p).uniform_(-0.7, 0.7))
    return layer


def torch_to_keras(mode, torch_layer, suffix):
    """PyTorch's (layer, direction) weights -> Keras's [kernel, recurrent_kernel, bias]."""
    def get(name):
        return getattr(torch_layer, name + suffix).detach().numpy()

    w_ih, w_hh, b_ih, b_hh = get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")
    if mode != "gru":  # gate orders agree (LSTM: i, f, g/c, o); Keras has a single bias
        return [w_ih.T, w_hh.T, b_ih + b_hh]
    # PyTorch's GRU stacks r, z, n; Keras's z, r, h.
    order = lambda a: np.concatenate([a[H:2 * H], a[:H], a[2 * H:]])  # noqa: E731
    return [order(w_ih).T, order(w_hh).T, np.stack([order(b_ih), order(b_hh)])]


def torch_grads(mode, torch_layer, suffix):
    """PyTorch's gradients in the kernel layout fastrnn keeps internally (PyTorch's own)."""
    def grad(name):
        return getattr(torch_layer, name + suffix).grad.numpy()

    grads = [grad("weight_ih"), grad("weight_hh"), grad("bias_ih")]
    if mode == "gru":
        grads.append(grad("bias_hh"))
    return grads


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def fastrnn_layer(mode, torch_layer, suffix="_l0", **kwargs):
    layer = MODES[mode][1](**kwargs)
    layer.build((None, None, F))
    layer.set_weights(torch_to_keras(mode, torch_layer, suffix))
    return layer


@pytest.mark.parametrize("mode", list(MODES))
def test_single_layer_outputs_states_and_gradients_match_torch(mode):
    reference = torch_layer(mode)
    layer = fastrnn_layer(mode, reference, return_sequences=True, return_state=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, F))
    R, S, U = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    xt = torch.tensor(x, requires_grad=True)
    out_t, state_t = reference(xt)
    h_t, c_t = state_t if mode == "lstm" else (state_t, None)
    loss = (out_t * torch.tensor(R)).sum() + (h_t[0] * torch.tensor(S)).sum()
    if mode == "lstm":
        loss = loss + (c_t[0] * torch.tensor(U)).sum()
    loss.backward()

    result = layer(x, training=True)
    close(result[0], out_t.detach().numpy())
    close(result[1], h_t[0].detach().numpy())
    if mode == "lstm":
        close(result[2], c_t[0].detach().numpy())
    dx = layer.backward([R, S, U] if mode == "lstm" else [R, S])
    close(dx, xt.grad.numpy())
    for got, want in zip(layer.grads, torch_grads(mode, reference, "_l0")):
        close(got, want)


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_stacked_layers_match_a_two_layer_torch_module(mode):
    reference = torch_layer(mode, num_layers=2)
    model = Sequential([fastrnn_layer(mode, reference, "_l0", return_sequences=True),
                        MODES[mode][1](return_sequences=True)])
    model.build((None, None, F))
    model.layers[1].set_weights(torch_to_keras(mode, reference, "_l1"))
    rng = np.random.default_rng(2)
    x, R = rng.standard_normal((B, T, F)), rng.standard_normal((B, T, H))

    xt = torch.tensor(x)
    out_t, _ = reference(xt)
    (out_t * torch.tensor(R)).sum().backward()

    out, _ = model.forward(x, training=True)
    close(out, out_t.detach().numpy())
    model.backward(R)
    for k, layer in enumerate(model.layers):
        for got, want in zip(layer.grads, torch_grads(mode, reference, f"_l{k}")):
            close(got, want)


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_bidirectional_layer_matches_bidirectional_torch_module(mode):
    reference = torch_layer(mode, bidirectional=True)
    layer = Bidirectional(MODES[mode][1](return_sequences=True))
    layer.build((None, None, F))
    layer.set_weights(torch_to_keras(mode, reference, "_l0") + torch_to_keras(mode, reference, "_l0_reverse"))
    rng = np.random.default_rng(3)
    x, R = rng.standard_normal((B, T, F)), rng.standard_normal((B, T, 2 * H))

    xt = torch.tensor(x, requires_grad=True)
    out_t, _ = reference(xt)
    (out_t * torch.tensor(R)).sum().backward()

    close(layer(x, training=True), out_t.detach().numpy())
    close(layer.backward(R), xt.grad.numpy())
    expected = torch_grads(mode, reference, "_l0") + torch_grads(mode, reference, "_l0_reverse")
    for got, want in zip(layer.grads, expected):
        close(got, want)


def padding_mask():
    return np.arange(T)[None, :] < np.array(LENGTHS)[:, None]  # (B, T)


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm", "gru"])
def test_masked_layer_matches_torch_packed_sequences(mode):
    reference = torch_layer(mode)
    layer = fastrnn_layer(mode, reference, return_sequences=True, return_state=True)
    rng = np.random.default_rng(4)
    x, R, S = rng.standard_normal((B, T, F)), rng.standard_normal((B, T, H)), rng.standard_normal((B, H))
    mask = padding_mask()
    R = R * mask[..., None]  # compare the real steps; Keras and PyTorch differ at padded ones

    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    out_packed, state_t = reference(packed)
    out_t, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)
    h_t = state_t[0] if mode == "lstm" else state_t
    ((out_t * torch.tensor(R)).sum() + (h_t[0] * torch.tensor(S)).sum()).backward()

    result = layer(x, training=True, mask=mask)
    close(result[0] * mask[..., None], out_t.detach().numpy())
    close(result[1], h_t[0].detach().numpy())
    dy = [R, S] + ([None] if mode == "lstm" else [])
    close(layer.backward(dy), xt.grad.numpy())
    for got, want in zip(layer.grads, torch_grads(mode, reference, "_l0")):
        close(got, want)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_masked_bidirectional_layer_matches_torch_packed_sequences(mode):
    reference = torch_layer(mode, bidirectional=True)
    layer = Bidirectional(MODES[mode][1](return_sequences=True))
    layer.build((None, None, F))
    layer.set_weights(torch_to_keras(mode, reference, "_l0") + torch_to_keras(mode, reference, "_l0_reverse"))
    rng = np.random.default_rng(5)
    x, R = rng.standard_normal((B, T, F)), rng.standard_normal((B, T, 2 * H))

    xt = torch.tensor(x, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    out_packed, _ = reference(packed)
    out_t, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)
    (out_t * torch.tensor(R)).sum().backward()

    # Both give zeros at padded steps, so the whole output is compared.
    close(layer(x, training=True, mask=padding_mask()), out_t.detach().numpy())
    close(layer.backward(R), xt.grad.numpy())
    expected = torch_grads(mode, reference, "_l0") + torch_grads(mode, reference, "_l0_reverse")
    for got, want in zip(layer.grads, expected):
        close(got, want)
