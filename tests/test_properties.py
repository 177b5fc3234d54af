"""Property tests (hypothesis): random calls of ``ops`` and of the recurrent layers.

Shapes are drawn small, zero sizes included, with either dtype, arrays in any memory layout
(C or Fortran order, strided or reversed views), lengths, masks, biases and states present or
not. The kernels must agree with the NumPy reference; a layer with a mask must agree with
the same layer run on each sequence alone; and any invalid call must raise TypeError or
ValueError (the same, with the same message, from both implementations), never anything else.

Each test draws a few dozen examples, so that the file runs in well under half a minute;
``FASTRNN_HYPOTHESIS_PROFILE=thorough`` draws ten times as many.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastrnn import ops, reference
from fastrnn.modes import GATES, STATES, keras_to_kernel

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

THOROUGH = os.environ.get("FASTRNN_HYPOTHESIS_PROFILE") == "thorough"


def examples(n: int):
    """Settings for a test drawing ``n`` examples (ten times as many when thorough); no deadline
    (the machine may be busy) and no example database written into the working tree."""
    return settings(max_examples=10 * n if THOROUGH else n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


MODES = list(GATES)
DTYPES = [np.float32, np.float64]
# float64 kernels against the float64 reference; float32 kernels against the float64 reference
# on the same (float32) inputs: a few float32 roundings per step, relative to the values' size.
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-10}
LAYOUTS = ["C", "F", "strided", "reversed"]


def laid_out(a: np.ndarray, layout: str) -> np.ndarray:
    """The same values as ``a`` in another memory layout: Fortran order, a view taking every
    other element of a larger array, or a view reading a reversed copy backwards."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed" and a.ndim:
        return np.ascontiguousarray(a[::-1])[::-1]
    return a


@st.composite
def cases(draw, max_size=5):
    """A valid rnn_forward call: (mode, args dict, output-gradient flags, layouts)."""
    mode = draw(st.sampled_from(MODES))
    dtype = draw(st.sampled_from(DTYPES))
    T, B, I, H = (draw(st.integers(0, max_size)) for _ in range(4))  # noqa: E741
    G = GATES[mode]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = 1 / np.sqrt(H) if H else 1.0

    def uniform(*shape):
        return rng.uniform(-k, k, shape).astype(dtype)

    def normal(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(dtype)

    args = {"x": normal(T, B, I), "w_ih": uniform(G * H, I), "w_hh": uniform(G * H, H)}
    for name, make in (("b_ih", lambda: uniform(G * H)), ("b_hh", lambda: uniform(G * H)),
                       ("h0", lambda: normal(B, H))):
        args[name] = make() if draw(st.booleans()) else None
    args["c0"] = normal(B, H) if "c" in STATES[mode] and draw(st.booleans()) else None
    for name in list(args):
        if args[name] is not None:
            args[name] = laid_out(args[name], draw(st.sampled_from(LAYOUTS)))
    if draw(st.booleans()):
        args["lengths"] = rng.integers(0, T + 1, B)
    args["reverse"] = draw(st.booleans())
    grads = {name: draw(st.booleans()) for name in ("dy", "dh_n", "dc_n")}
    return mode, args, grads, draw(st.integers(0, 2**32 - 1))


def run(module, mode, args, grads, seed):
    """Forward, then backward with random output gradients (those flagged); all the results."""
    y, h_n, c_n, cache = module.rnn_forward(mode, **args)
    rng = np.random.default_rng(seed)
    dtype = args["x"].dtype

    def gradient(shape, wanted):
        return rng.standard_normal(shape).astype(dtype) if wanted else None

    g = module.rnn_backward(cache, gradient(y.shape, grads["dy"]), gradient(h_n.shape, grads["dh_n"]),
                            gradient(h_n.shape, grads["dc_n"] and "c" in STATES[mode]))
    return {"y": y, "h_n": h_n, "c_n": c_n, **{f"d{key}": value for key, value in g.items()}}


def as_float64(args):
    return {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in args.items()}


@examples(150)
@given(case=cases())
def test_kernels_match_the_reference_on_random_calls(case):
    mode, args, grads, seed = case
    dtype = args["x"].dtype.type
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    got = run(ops, mode, args, grads, seed)
    want = run(reference, mode, as_float64(args), grads, seed)
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        if w is None:
            assert g is None, key
            continue
        assert g.dtype == dtype and g.shape == w.shape, key
        scale = max(1.0, float(np.abs(w).max(initial=0)))
        error = float(np.abs(g.astype(np.float64) - w).max(initial=0))
        assert error <= TOLERANCE[dtype] * scale, f"{key}: error {error:.3g}, scale {scale:.3g}"
    for k, v in before.items():  # inputs are never written to
        np.testing.assert_array_equal(args[k], v, err_msg=k)


# --------------------------------------------------------------------------- invalid calls

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=3),
    st.lists(st.floats(-2, 2), max_size=3), st.just(object()),
    st.tuples(st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_,
                               np.complex64, np.uint8, object, "U2"]),
              st.lists(st.integers(0, 4), max_size=4)).map(
        lambda spec: np.zeros(spec[1], dtype=spec[0])),
)
FORWARD_ARGS = ["mode", "x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "c0", "lengths", "reverse",
                "training"]


def outcome(call):
    """("ok", results) or (exception type, message)."""
    try:
        return "ok", call()
    except Exception as err:  # noqa: BLE001 (which exceptions is what is tested)
        return type(err), str(err)


def assert_refused_alike(call_ops, call_reference):
    """Both implementations succeed, or both raise the same TypeError or ValueError."""
    got, want = outcome(call_ops), outcome(call_reference)
    if got[0] == "ok" or want[0] == "ok":
        assert got[0] == want[0] == "ok", (got, want)
        return
    assert want[0] in (TypeError, ValueError), want
    assert got == want


@examples(150)
@given(case=cases(max_size=3), name=st.sampled_from(FORWARD_ARGS), junk=JUNK)
def test_a_bad_argument_to_rnn_forward_is_a_type_or_value_error_from_both(case, name, junk):
    mode, args, _, _ = case
    call = {"mode": mode, **args, name: junk}
    call.pop("mode")
    assert_refused_alike(lambda: ops.rnn_forward(junk if name == "mode" else mode, **call),
                         lambda: reference.rnn_forward(junk if name == "mode" else mode, **call))


def reshaped(shape: tuple, dtype, rng) -> np.ndarray:
    """Zeros of a shape other than ``shape``: an axis added or removed, or one axis one longer
    or shorter."""
    kind = int(rng.integers(3)) if shape else 0
    if kind == 0:
        return np.zeros((1, *shape), dtype)
    if kind == 1:
        return np.zeros(shape[1:], dtype)
    axis = int(rng.integers(len(shape)))
    step = -1 if shape[axis] > 0 and rng.integers(2) else 1
    return np.zeros(shape[:axis] + (shape[axis] + step,) + shape[axis + 1:], dtype)


@examples(150)
@given(case=cases(max_size=3), which=st.sampled_from(["h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh",
                                                      "lengths", "dy", "dh_n", "dc_n"]),
       seed=st.integers(0, 2**32 - 1))
def test_an_argument_of_the_wrong_shape_is_a_value_error_from_both(case, which, seed):
    mode, args, _, _ = case
    if which in ("c0", "dc_n") and "c" not in STATES[mode]:
        return
    rng = np.random.default_rng(seed)
    T, B, I = args["x"].shape  # noqa: E741
    H = args["w_hh"].shape[1]
    GH = GATES[mode] * H
    shapes = {"h0": (B, H), "c0": (B, H), "w_ih": (GH, I), "w_hh": (GH, H), "b_ih": (GH,),
              "b_hh": (GH,), "lengths": (B,), "dy": (T, B, H), "dh_n": (B, H), "dc_n": (B, H)}
    dtype = np.int64 if which == "lengths" else args["x"].dtype
    wrong = reshaped(shapes[which], dtype, rng)
    grads = {"dy": None}
    if which.startswith("d"):
        grads[which] = wrong
    else:
        args = {**args, which: wrong}

    def both(module):
        _, _, _, cache = module.rnn_forward(mode, **args)
        return module.rnn_backward(cache, **grads)

    got, want = outcome(lambda: both(ops)), outcome(lambda: both(reference))
    assert want[0] is ValueError and got == want, (which, wrong.shape, got, want)


# --------------------------------------------------------------------------- layers

LAYER_KINDS = {"SimpleRNN": "rnn_tanh", "LSTM": "lstm", "GRU": "gru"}


@st.composite
def layer_cases(draw):
    """(layer, x (B, T, F) float64, lengths (B,) or None, Keras-layout weights)."""
    from fastrnn import layers

    kind = draw(st.sampled_from(sorted(LAYER_KINDS)))
    B, T, F, H = (draw(st.integers(0, 4)) for _ in range(4))
    H = max(H, 1)
    layer = getattr(layers, kind)(H, dtype="float64", use_bias=draw(st.booleans()),
                                  return_sequences=draw(st.booleans()),
                                  go_backwards=draw(st.booleans()))
    layer.build((None, T, F))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weights = [0.6 * rng.standard_normal(w.shape) for w in layer.get_weights()]
    layer.set_weights(weights)
    x = rng.standard_normal((B, T, F))
    lengths = rng.integers(0, T + 1, B) if draw(st.booleans()) else None
    return layer, x, lengths, weights


def mask_of(lengths, T):
    return None if lengths is None else np.arange(T)[None, :] < lengths[:, None]  # (B, T)


@examples(100)
@given(case=layer_cases())
def test_a_recurrent_layer_is_the_reference_run_on_its_weights(case):
    """Unmasked: the layer's output is the reference's, on the weights in the kernel layout,
    reading backwards with go_backwards (and returning the sequence in reading order)."""
    layer, x, _, weights = case
    mode = LAYER_KINDS[type(layer).__name__]
    w_ih, w_hh, b_ih, b_hh = keras_to_kernel(mode, *weights)  # weights: no bias without use_bias
    y, h_n, _, _ = reference.rnn_forward(mode, np.ascontiguousarray(x.transpose(1, 0, 2)), None,
                                         w_ih, w_hh, b_ih, b_hh, reverse=layer.go_backwards,
                                         training=False)
    want = (y[::-1] if layer.go_backwards else y).transpose(1, 0, 2) if layer.return_sequences else h_n
    np.testing.assert_allclose(layer(x), want, rtol=1e-10, atol=1e-12)


@examples(100)
@given(case=layer_cases())
def test_a_masked_batch_gives_each_sequence_what_it_gives_alone(case):
    layer, x, lengths, _ = case
    if lengths is None:
        lengths = np.full(x.shape[0], x.shape[1])
    out = layer(x, mask=mask_of(lengths, x.shape[1]))
    for b, n in enumerate(lengths):
        alone = layer(x[b:b + 1, :n])[0]  # (n, H) or (H,)
        if not layer.return_sequences:
            np.testing.assert_allclose(out[b], alone, rtol=1e-10, atol=1e-12)
        elif layer.go_backwards:  # reading order: the real steps come last, after the padding
            np.testing.assert_allclose(out[b, x.shape[1] - n:], alone, rtol=1e-10, atol=1e-12)
        else:
            np.testing.assert_allclose(out[b, :n], alone, rtol=1e-10, atol=1e-12)


@examples(60)
@given(case=layer_cases(), seed=st.integers(0, 2**32 - 1))
def test_a_recurrent_layers_input_gradient_is_the_references(case, seed):
    layer, x, lengths, weights = case
    mode = LAYER_KINDS[type(layer).__name__]
    out = layer(x, training=True)
    dy = np.random.default_rng(seed).standard_normal(np.shape(out))
    dx = layer.backward(dy)
    kernel_weights = keras_to_kernel(mode, *weights)
    _, _, _, cache = reference.rnn_forward(mode, np.ascontiguousarray(x.transpose(1, 0, 2)), None,
                                           *kernel_weights, reverse=layer.go_backwards)
    if layer.return_sequences:
        dy_tm = dy.transpose(1, 0, 2)
        grads = reference.rnn_backward(cache, np.ascontiguousarray(dy_tm[::-1] if layer.go_backwards
                                                                   else dy_tm))
    else:
        grads = reference.rnn_backward(cache, None, dy)
    np.testing.assert_allclose(dx, grads["x"].transpose(1, 0, 2), rtol=1e-9, atol=1e-11)


LAYER_JUNK = st.one_of(
    JUNK,
    st.tuples(st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex128, object,
                               "U1"]),
              st.lists(st.integers(0, 3), min_size=0, max_size=4)).map(
        lambda spec: np.ones(spec[1], dtype=spec[0])),
    st.lists(st.lists(st.floats(-1, 1), max_size=3), max_size=3),  # ragged or not
)


@examples(150)
@given(case=layer_cases(), x=LAYER_JUNK, mask=st.one_of(st.none(), LAYER_JUNK))
def test_a_layer_called_on_anything_returns_or_raises_a_type_or_value_error(case, x, mask):
    layer = case[0]
    try:
        out = layer(x, mask=mask)
    except (TypeError, ValueError):
        return
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
