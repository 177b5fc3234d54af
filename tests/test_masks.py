"""Masks of every form the recurrent layers take: padding before the real steps (Keras's
``pad_sequences`` default), after them, holes, rows with no real step, nothing masked.

Each layer is checked against Keras's masked loop written out here one step at a time
(``keras_masked_run``: a masked step keeps the states; its output is the last output in
reading order, zero before the first real one, or zero with ``zero_output_for_mask``; the
last output is the last step read's), from Keras-layout weights, in float64 (rtol 1e-10);
gradients against central finite differences (rtol 1e-6). The comparison with Keras itself
is in ``test_keras_masks.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from layer_checks import check_gradients
from test_layers import KINDS, keras_step, make_layer, random_weights, random_x
from fastrnn.layers import RNN, Bidirectional, GRUCell, LSTMCell

RTOL, ATOL = 1e-10, 1e-12
B, T, F, H = 4, 5, 3, 4

MASKS = {
    "pre": [[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]],
    "post": [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]],
    "holes": [[1, 0, 1, 0, 1], [0, 1, 1, 0, 0], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0]],
    "empty_rows": [[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 1, 0]],
    "none_masked": [[1] * T] * B,
}
MASKS = {name: np.array(m, dtype=bool) for name, m in MASKS.items()}


def keras_masked_run(kind, x, weights, mask, go_backwards=False, zero_output=False, h0=None,
                     c0=None):
    """Keras's masked loop: x (B, T, F), mask (B, T) -> (outputs (B, T, H) in reading order,
    last output (B, H), h (B, H), c (B, H) or None)."""
    kernel, recurrent, bias = weights
    Hk = recurrent.shape[0]
    h = np.zeros((x.shape[0], Hk)) if h0 is None else h0.copy()
    c = ((np.zeros_like(h) if c0 is None else c0.copy()) if kind == "lstm" else None)
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    previous = np.zeros_like(h)
    outputs = []
    for t in steps:
        real = mask[:, t][:, None]  # (B, 1)
        h_new, c_new = keras_step(kind, x[:, t], h, c, kernel, recurrent, bias)
        out = np.where(real, h_new, 0 if zero_output else previous)
        h = np.where(real, h_new, h)
        if c is not None:
            c = np.where(real, c_new, c)
        outputs.append(out)
        previous = out
    return np.stack(outputs, axis=1), outputs[-1], h, c


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def initial_states(kind, seed=5):
    rng = np.random.default_rng(seed)
    h0 = rng.standard_normal((B, H))
    return [h0, rng.standard_normal((B, H))] if kind == "lstm" else [h0]


# ------------------------------------------------------------------------------------
# Outputs and states against Keras's loop


@pytest.mark.parametrize("form", list(MASKS))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
@pytest.mark.parametrize("zero_output", [False, True], ids=["repeat", "zero"])
def test_every_mask_form_gives_keras_s_outputs_and_states(form, kind, go_backwards, zero_output):
    x = random_x(B=B, T=T, F=F)
    states = initial_states(kind)
    mask = MASKS[form]
    outputs, last, h, c = keras_masked_run(kind, x, random_weights(kind, F, H), mask,
                                           go_backwards, zero_output, *states)
    for sequences in (True, False):
        layer, _ = make_layer(kind, F=F, H=H, return_sequences=sequences, return_state=True,
                              go_backwards=go_backwards, zero_output_for_mask=zero_output)
        got = layer(x, mask=mask, initial_state=states)
        close(got[0], outputs if sequences else last)
        close(got[1], h)
        if kind == "lstm":
            close(got[2], c)


def test_a_row_with_no_real_step_outputs_zero_and_keeps_its_initial_state():
    """Keras: the last output of a row with no real step is zero, whatever the state."""
    layer, _ = make_layer("gru", F=F, H=H, return_state=True)
    states = initial_states("gru")
    out, h = layer(random_x(B=B, T=T, F=F), mask=MASKS["empty_rows"], initial_state=states)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(h[0], states[0][0])


def test_zero_output_for_mask_gives_zero_when_the_last_step_read_is_masked():
    layer, _ = make_layer("lstm", F=F, H=H, zero_output_for_mask=True)
    out = layer(random_x(B=B, T=T, F=F), mask=MASKS["post"])
    assert np.all(out[[0, 1, 3]] == 0) and np.all(out[2] != 0)
    backwards, _ = make_layer("lstm", F=F, H=H, zero_output_for_mask=True, go_backwards=True)
    out = backwards(random_x(B=B, T=T, F=F), mask=MASKS["post"])  # reads step 0 last: real
    assert np.all(out != 0)


@pytest.mark.parametrize("kind", ["tanh", "lstm"])
def test_padding_before_or_after_gives_the_same_final_state(kind):
    """The same real steps, padded at either end: the state after them is the same."""
    x = random_x(B=B, T=T, F=F)
    lengths = MASKS["pre"].sum(axis=1)
    post = np.zeros_like(x)
    for b, n in enumerate(lengths):
        post[b, :n] = x[b, T - n:]
    layer, _ = make_layer(kind, F=F, H=H, return_state=True)
    a = layer(x, mask=MASKS["pre"])
    b = layer(post, mask=np.arange(T)[None, :] < lengths[:, None])
    for u, v in zip(a, b):
        close(u, v)


def test_stateful_layer_carries_the_state_after_the_last_real_step():
    x = random_x(B=B, T=T, F=F)
    layer, weights = make_layer("lstm", F=F, H=H, stateful=True, return_state=True)
    _, h1, c1 = layer(x, mask=MASKS["holes"])
    _, h2, c2 = layer(x, mask=MASKS["pre"])
    _, _, h, c = keras_masked_run("lstm", x, weights, MASKS["holes"])
    _, _, h, c = keras_masked_run("lstm", x, weights, MASKS["pre"], h0=h, c0=c)
    close(h2, h)
    close(c2, c)


@pytest.mark.parametrize("form", ["pre", "holes", "empty_rows"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("sequences", [True, False])
def test_bidirectional_with_every_mask_form_gives_keras_s_outputs(form, merge_mode, sequences):
    kind = "gru"
    x = random_x(B=B, T=T, F=F)
    fw, bw = random_weights(kind, F, H, seed=0), random_weights(kind, F, H, seed=1)
    layer = Bidirectional(KINDS[kind](H, return_sequences=sequences, return_state=True),
                          merge_mode=merge_mode)
    layer.build((None, None, F))
    layer.set_weights(fw + bw)
    mask = MASKS[form]
    # As Keras forces it: zero outputs at masked steps for sequences, the last real one else.
    f_out, f_last, f_h, _ = keras_masked_run(kind, x, fw, mask, zero_output=sequences)
    b_out, b_last, b_h, _ = keras_masked_run(kind, x, bw, mask, go_backwards=True,
                                             zero_output=sequences)
    a, b = (f_out, b_out[:, ::-1]) if sequences else (f_last, b_last)
    got = layer(x, mask=mask)
    merged = {"concat": lambda: np.concatenate([a, b], -1), "sum": lambda: a + b,
              "mul": lambda: a * b, "ave": lambda: (a + b) / 2}
    if merge_mode is None:
        close(got[0], a)
        close(got[1], b)
    else:
        close(got[0], merged[merge_mode]())
    close(got[-2], f_h)
    close(got[-1], b_h)


@pytest.mark.parametrize("form", ["pre", "holes"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backwards"])
def test_stacked_cells_with_a_mask_equal_the_cells_run_in_turn(form, go_backwards):
    x = random_x(B=B, T=T, F=F)
    mask = MASKS[form]
    layer = RNN([LSTMCell(H, dtype="float64"), GRUCell(H, dtype="float64")], dtype="float64", return_sequences=True, go_backwards=go_backwards)
    layer.build((None, None, F))
    w1, w2 = random_weights("lstm", F, H, seed=0), random_weights("gru", H, H, seed=1)
    layer.set_weights(w1 + w2)
    # Keras's stacked cells feed each step's first output to the second cell in reading order.
    seq1, _, _, _ = keras_masked_run("lstm", x, w1, mask, go_backwards, zero_output=True)
    own_order = seq1[:, ::-1] if go_backwards else seq1
    outputs, _, _, _ = keras_masked_run("gru", own_order, w2, mask, go_backwards)
    close(layer(x, mask=mask), outputs)


# ------------------------------------------------------------------------------------
# Gradients against finite differences (float64)


@pytest.mark.parametrize("form", ["pre", "holes", "empty_rows"])
@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
@pytest.mark.parametrize("options", [
    dict(return_sequences=True), dict(return_sequences=True, go_backwards=True),
    dict(return_sequences=True, zero_output_for_mask=True), dict(return_state=True),
    dict(zero_output_for_mask=True), dict(go_backwards=True, return_state=True)],
    ids=["seq", "seq_backwards", "seq_zero", "last_state", "last_zero", "last_backwards"])
def test_masked_layer_gradients_match_finite_differences(form, kind, options):
    layer, _ = make_layer(kind, F=F, H=H, **options)
    check_gradients(layer, random_x(B=B, T=T, F=F), mask=MASKS[form])


@pytest.mark.parametrize("form", ["pre", "holes"])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("merge_mode", ["concat", "mul"])
def test_masked_bidirectional_gradients_match_finite_differences(form, sequences, merge_mode):
    layer = Bidirectional(KINDS["lstm"](H, return_sequences=sequences), merge_mode=merge_mode)
    layer.build((None, None, F))
    layer.set_weights(random_weights("lstm", F, H, 0) + random_weights("lstm", F, H, 1))
    check_gradients(layer, random_x(B=B, T=T, F=F), mask=MASKS[form], atol=1e-8)


@pytest.mark.parametrize("form", ["pre", "holes"])
def test_masked_stacked_cells_gradients_match_finite_differences(form):
    layer = RNN([LSTMCell(H, dtype="float64"), GRUCell(H, dtype="float64")], dtype="float64", return_sequences=True)
    layer.build((None, None, F))
    layer.set_weights(random_weights("lstm", F, H, 0) + random_weights("gru", H, H, 1))
    check_gradients(layer, random_x(B=B, T=T, F=F), mask=MASKS[form], atol=1e-8)
