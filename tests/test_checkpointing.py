"""Checkpointed BPTT (``checkpoint_every``) and outputs left out (``return_sequences=False``).

- the gradients, outputs and final states with checkpoints equal full BPTT's bit for bit, in
  every mode, float32 and float64, with lengths, masks, reverse, dropout masks, batches whose
  steps make one or several units of rows, several segment lengths and thread counts (and so
  the reference's, which full BPTT is tested against);
- the workspace holds one segment and the checkpoints; pickled, it serves its backward;
- the automatic choice above ``set_bptt_memory_limit``;
- the layers' ``checkpoint_every`` and their calls without sequences;
- bad values are refused naming the argument.
"""
import copy
import pickle

import numpy as np
import pytest

from conftest import make_case
from fastrnn import ops, reference
from fastrnn.layers import GRU, LSTM, Bidirectional, SimpleRNN
from fastrnn.modes import GATES
from ops_checks import MODES, kernel_threads

ALL_MODES = MODES + ["lstm_peephole"]


def train(mode, case, every, *, seed=1, sequences=True, threads=None, **options):
    """One forward and backward with random output gradients -> (y, h_n, c_n, grads, workspace)."""
    if mode == "lstm_peephole":
        H = case["w_hh"].shape[1]
        options["params"] = {"peephole": np.linspace(-0.5, 0.5, 3 * H).astype(case["x"].dtype)}
    with kernel_threads(threads or ops.get_num_threads()):
        y, h_n, c_n, cache = ops.rnn_forward(mode, **case, checkpoint_every=every, return_sequences=sequences,
                                             **options)
        workspace = copy.deepcopy(cache.workspace)
        rng = np.random.default_rng(seed)
        dtype = case["x"].dtype
        dy = rng.standard_normal((len(case["x"]), *h_n.shape)).astype(dtype) if sequences else None
        dh = rng.standard_normal(h_n.shape).astype(dtype)
        dc = rng.standard_normal(h_n.shape).astype(dtype) if c_n is not None else None
        grads = ops.rnn_backward(cache, dy, dh, dc)
    return y, h_n, c_n, grads, workspace


def assert_identical(got, want):
    for a, b in zip(got[:3], want[:3]):
        if b is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, b)
    assert got[3].keys() == want[3].keys()
    for name, b in want[3].items():
        if b is None:
            assert got[3][name] is None, name
        else:
            np.testing.assert_array_equal(got[3][name], b, err_msg=name)


def dropout_masks(mode, B, I, H, dtype, seed=3):
    rng = np.random.default_rng(seed)
    G = GATES[mode]
    keep = 1 / 0.7
    return {"recurrent_masks": ((rng.random((G, B, H)) < 0.7) * keep).astype(dtype),
            "input_masks": ((rng.random((G, B, I)) < 0.7) * keep).astype(dtype)}


# B = 16 makes units of 16 steps, B = 3 of 96 steps, B = 1 of 256 steps (workspace.h).
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reverse", [False, True])
def test_checkpointed_gradients_equal_full_bptt_bit_for_bit(mode, dtype, reverse):
    case = make_case(mode, 70, 16, 5, 9, dtype, seed=2)
    want = train(mode, case, 0, reverse=reverse)
    for every in (1, 20, 33, 47):
        got = train(mode, case, every, reverse=reverse)
        assert got[4].checkpoint_every == every and got[4].steps < 70
        assert_identical(got, want)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("B, T", [(3, 300), (1, 600)])
def test_checkpointed_with_lengths_masks_and_dropout_equals_full_bptt(mode, B, T):
    case = make_case(mode, T, B, 4, 6, np.float32, seed=B)
    lengths = np.arange(B) * (T // 3) + T // 3 - 7
    mask = np.random.default_rng(0).random((T, B)) < 0.8
    masks = dropout_masks(mode, B, 4, 6, np.float32)
    for options in ({"lengths": lengths}, {"mask": mask, "reverse": True}, masks):
        want = train(mode, case, 0, **options)
        got = train(mode, case, 50, **options)
        assert got[4].steps < T
        assert_identical(got, want)


@pytest.mark.parametrize("mode", ["lstm", "gru_reset_before"])
def test_checkpointed_equals_full_bptt_on_every_thread_count(mode):
    # B = 40 and H = 48: the batch, the hidden units and the gate columns are all split.
    case = make_case(mode, 60, 40, 24, 48, np.float32, seed=4)
    for threads in (1, 2, 3, 4):
        want = train(mode, case, 0, threads=threads)
        assert_identical(train(mode, case, 7, threads=threads), want)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_without_sequences_the_final_state_and_gradients_are_those_with_them(mode):
    case = make_case(mode, 40, 16, 5, 7, np.float64, seed=5)
    y, h_n, c_n, cache = ops.rnn_forward(mode, **case)
    dh = np.random.default_rng(0).standard_normal(h_n.shape)
    want = ops.rnn_backward(cache, None, dh)
    for impl in (ops, reference):
        none, h, c, cache = impl.rnn_forward(mode, **case, return_sequences=False, checkpoint_every=16)
        assert none is None
        got = impl.rnn_backward(cache, None, dh)
        tolerance = 0 if impl is ops else 1e-12
        np.testing.assert_allclose(h, h_n, rtol=0, atol=tolerance)
        for name, g in want.items():
            if g is not None:
                np.testing.assert_allclose(got[name], g, rtol=0, atol=tolerance, err_msg=name)
    _, _, _, cache = ops.rnn_forward(mode, **case, training=False, return_sequences=False)
    assert cache is None


def test_the_workspace_holds_one_segment_and_the_checkpoints():
    T, B, H = 100, 16, 9
    case = make_case("lstm", T, B, 5, H, np.float32)
    full = train("lstm", case, 0)[4]
    assert full.steps == T and "h_checkpoints" not in full
    ws = train("lstm", case, 20)[4]
    assert ws.steps == 32  # rounded up to whole units of 16 steps for B = 16
    assert ws["gates"].shape == (32, B, 4 * H) and ws["c_prev"].shape == (32, B, H)
    segments = -(-T // 32)
    assert ws["h_checkpoints"].shape == ws["c_checkpoints"].shape == (segments, B, H)
    np.testing.assert_array_equal(ws["h_checkpoints"][0], case["h0"])
    assert ws.nbytes == sum(a.nbytes for a in ws.values()) < full.nbytes / 2
    # Checkpoints every T or more steps are no checkpoints.
    assert "h_checkpoints" not in train("lstm", case, T)[4]


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_checkpointed_cache_serves_its_backward(duplicate):
    case = make_case("gru", 90, 16, 5, 6, np.float64)
    _, h_n, _, cache = ops.rnn_forward("gru", **case, checkpoint_every=16)
    twin = duplicate(cache)
    assert twin.workspace.checkpoint_every == 16
    dh = np.ones_like(h_n)
    want = ops.rnn_backward(cache, None, dh)
    got = ops.rnn_backward(twin, None, dh)
    for name, g in want.items():
        if g is not None:
            np.testing.assert_array_equal(got[name], g, err_msg=name)


@pytest.fixture
def memory_limit():
    before = ops.get_bptt_memory_limit()
    yield ops.set_bptt_memory_limit
    ops.set_bptt_memory_limit(before)


def test_above_the_memory_limit_training_checkpoints_about_every_sqrt_t_steps(memory_limit):
    T, B, H = 300, 16, 8
    case = make_case("lstm", T, B, 5, H, np.float32)
    assert ops.checkpoint_steps("lstm", T, B, H) == 0
    want = train("lstm", case, None)
    assert want[4].checkpoint_every == 0
    full_bytes = want[4].nbytes
    memory_limit(full_bytes - 1)
    every = ops.checkpoint_steps("lstm", T, B, H)
    assert every == int(np.ceil(np.sqrt(T / 3)))  # LSTM keeps 6H per step, 2H per checkpoint
    got = train("lstm", case, None)
    assert got[4].checkpoint_every == every and got[4].nbytes < full_bytes / 3
    assert_identical(got, want)
    memory_limit(full_bytes)
    assert ops.checkpoint_steps("lstm", T, B, H) == 0
    assert ops.checkpoint_steps("gru", T, B, H, np.float64) > 0  # the bytes are float64's


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)])
def test_bad_checkpoint_every_is_refused_naming_it(bad, error):
    case = make_case("lstm", 5, 2, 3, 4, np.float32)
    for impl in (ops, reference):
        with pytest.raises(error, match="checkpoint_every"):
            impl.rnn_forward("lstm", **case, checkpoint_every=bad)
    with pytest.raises(error, match="checkpoint_every"):
        LSTM(4, checkpoint_every=bad)


def test_bad_return_sequences_and_memory_limits_are_refused():
    case = make_case("gru", 5, 2, 3, 4, np.float32)
    with pytest.raises(TypeError, match="return_sequences"):
        ops.rnn_forward("gru", **case, return_sequences=1)
    for impl in (ops, reference):
        _, _, _, cache = impl.rnn_forward("gru", **case, return_sequences=False)
        with pytest.raises(ValueError, match="dy must be None"):
            impl.rnn_backward(cache, np.zeros((5, 2, 4), np.float32))
    with pytest.raises(ValueError, match="nbytes"):
        ops.set_bptt_memory_limit(-1)
    with pytest.raises(TypeError, match="nbytes"):
        ops.set_bptt_memory_limit(1.0)


def layer_gradients(layer, x, dy):
    out = layer(x, training=True)
    dx = layer.backward(dy if dy is not None else np.ones_like(out))
    return out, dx, [g.copy() for g in layer.grads]


@pytest.mark.parametrize("make", [
    lambda **k: LSTM(6, **k), lambda **k: GRU(6, recurrent_dropout=0.3, dropout=0.2, seed=4, **k),
    lambda **k: SimpleRNN(6, return_sequences=True, go_backwards=True, **k),
    lambda **k: Bidirectional(LSTM(6, **k)),
], ids=["LSTM", "GRU-dropout", "SimpleRNN-sequences", "Bidirectional"])
def test_a_layer_with_checkpoints_trains_as_without(make):
    x = np.random.default_rng(0).standard_normal((16, 80, 3)).astype(np.float32)
    full, checkpointed = make(), make(checkpoint_every=16)
    full.build(x.shape)
    checkpointed.build(x.shape)
    checkpointed.set_weights(full.get_weights())
    want, got = layer_gradients(full, x, None), layer_gradients(checkpointed, x, None)
    for a, b in zip(got[:2], want[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got[2], want[2]):
        np.testing.assert_array_equal(a, b)


def test_a_layers_checkpoint_every_is_in_its_config_only_when_given():
    assert "checkpoint_every" not in LSTM(4).get_config()  # Keras's configs stay Keras's
    layer = GRU.from_config(GRU(4, checkpoint_every=32).get_config())
    assert layer.checkpoint_every == 32
    assert Bidirectional(LSTM(4, checkpoint_every=8)).forward_layer.checkpoint_every == 8

