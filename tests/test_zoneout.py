"""Zoneout (haste's, ``zoneout=`` on ``ops``/``reference`` and on LSTM and GRU).

- the draws: uniform, and kept units at the rate asked for, in the kernels' outputs;
- the reference's gradients against finite differences (float64, draws fixed by the seed);
- the kernels against the reference, float32 and float64, every mode, with lengths, masks and
  reverse, in training (the draws) and at inference (the expectation);
- the same draws on any thread count and in a checkpointed BPTT's recomputed forward;
- the layers: seeded draws, the expectation at inference, the config; bad values refused.
"""
import numpy as np
import pytest

from conftest import finite_difference, make_case
from fastrnn import ops, reference
from fastrnn.layers import GRU, LSTM, Bidirectional, SimpleRNN
from fastrnn.modes import STATES, zoneout_uniform
from ops_checks import MODES, assert_close, kernel_threads

ALL_MODES = MODES + ["lstm_peephole"]
T, B, I, H = 7, 3, 4, 5  # noqa: E741


def params_for(mode, dtype):
    return {"params": {"peephole": np.linspace(-0.5, 0.5, 3 * H).astype(dtype)}} if mode == "lstm_peephole" else {}


def loss_weights(mode, dtype, seed=9):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((T, B, H)).astype(dtype)
    S = rng.standard_normal((B, H)).astype(dtype)
    U = rng.standard_normal((B, H)).astype(dtype) if "c" in STATES[mode] else None
    return R, S, U


def train(impl, mode, case, R, S, U, **options):
    y, h_n, c_n, cache = impl.rnn_forward(mode, **case, **options)
    return y, h_n, c_n, impl.rnn_backward(cache, R, S, U)


def test_the_draws_are_uniform_and_differ_by_seed_time_and_unit():
    u = zoneout_uniform(3, 0, 400, 500)
    assert u.shape == (400, 500) and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.003 and abs((u < 0.3).mean() - 0.3) < 0.003
    assert not np.array_equal(u, zoneout_uniform(4, 0, 400, 500))
    assert not np.array_equal(u, zoneout_uniform(3, 1, 400, 500))
    np.testing.assert_array_equal(u, zoneout_uniform(3, 0, 400, 500))
    assert zoneout_uniform(2**64 - 1, 10**9, 2, 3).shape == (2, 3)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_the_kernels_keep_units_at_the_rate_asked_for(rate):
    # With w_hh = 0 and fresh inputs, each step's cell output differs from the state: a unit
    # whose output equals the previous step's was kept.
    steps, batch, units = 200, 16, 32
    case = make_case("rnn_tanh", steps, batch, 8, units, np.float64, seed=1)
    case["w_hh"][:] = 0
    y, _, _, _ = ops.rnn_forward("rnn_tanh", **case, zoneout=rate, zoneout_seed=12)
    kept = y[1:] == y[:-1]
    assert abs(kept.mean() - rate) < 0.01
    np.testing.assert_array_equal(kept, np.stack([zoneout_uniform(12, t, batch, units) < rate
                                                  for t in range(1, steps)]))


@pytest.mark.parametrize("mode", ALL_MODES)
def test_reference_gradients_with_zoneout_match_finite_differences(mode):
    case = make_case(mode, T, B, I, H, np.float64, seed=3)
    R, S, U = loss_weights(mode, np.float64)
    options = dict(params_for(mode, np.float64), lengths=[7, 3, 0], reverse=True, zoneout=0.4, zoneout_seed=8)

    def loss():  # training=True: the draws, fixed by the seed
        y, h_n, c_n, _ = reference.rnn_forward(mode, **case, **options)
        return np.sum(y * R) + np.sum(h_n * S) + (np.sum(c_n * U) if U is not None else 0)

    grads = train(reference, mode, case, R, S, U, **options)[3]
    for key in ("x", "h0", "w_hh", "b_ih"):
        np.testing.assert_allclose(grads[key], finite_difference(loss, case[key]), rtol=1e-5, atol=1e-7,
                                   err_msg=key)


def holey_mask():
    mask = np.ones((T, B), dtype=bool)
    mask[1, 0] = mask[0, 2] = mask[5, 1] = False
    return mask


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"lengths": [7, 2, 0], "reverse": True}, {"mask": holey_mask()}],
                         ids=["plain", "lengths-reverse", "mask"])
def test_kernels_with_zoneout_match_the_reference(mode, dtype, options):
    case = make_case(mode, T, B, I, H, dtype, seed=5)
    case64 = {k: None if v is None else v.astype(np.float64) for k, v in case.items()}
    options = dict(options, zoneout=0.3, zoneout_seed=2**63 + 5)
    R, S, U = loss_weights(mode, dtype)
    got = train(ops, mode, case, R, S, U, **params_for(mode, dtype), **options)
    want = train(reference, mode, case64, *(None if a is None else a.astype(np.float64) for a in (R, S, U)),
                 **params_for(mode, np.float64), **options)
    for a, b, what in zip(got[:3], want[:3], ("y", "h_n", "c_n")):
        assert_close(a, b, dtype, what)
    for name, g in want[3].items():
        assert_close(got[3][name], g, dtype, name)
    inference = [impl.rnn_forward(mode, **c, training=False, **params_for(mode, c["x"].dtype), **options)
                 for impl, c in ((ops, case), (reference, case64))]
    for a, b, what in zip(inference[0][:3], inference[1][:3], ("y", "h_n", "c_n")):
        assert_close(a, b, dtype, "inference " + what)


def test_at_inference_h_is_the_expectation():
    case = make_case("gru", 1, B, I, H, np.float64, seed=6)
    plain = ops.rnn_forward("gru", **case, training=False)[1]
    zoned = ops.rnn_forward("gru", **case, training=False, zoneout=0.25)[1]
    np.testing.assert_allclose(zoned, 0.25 * case["h0"] + 0.75 * plain, rtol=0, atol=1e-15)


def test_the_cell_state_is_not_zoned_out():
    case = make_case("lstm", T, B, I, H, np.float64, seed=7)
    _, _, c_plain, _ = ops.rnn_forward("lstm", **dict(case, w_hh=np.zeros_like(case["w_hh"])), training=False)
    # With w_hh = 0 the cell state's path does not see h: zoneout of h leaves c alone.
    _, _, c_zoned, _ = ops.rnn_forward("lstm", **dict(case, w_hh=np.zeros_like(case["w_hh"])), zoneout=0.5)
    np.testing.assert_array_equal(c_zoned, c_plain)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_the_draws_are_the_same_on_any_thread_count_and_with_checkpoints(mode):
    case = make_case(mode, 100, 40, 24, 48, np.float32, seed=4)
    R = np.random.default_rng(0).standard_normal((100, 40, 48)).astype(np.float32)
    results = []
    for threads, every in ((1, 0), (2, 0), (2, 16), (3, 33)):
        with kernel_threads(threads):
            y, _, _, cache = ops.rnn_forward(mode, **case, zoneout=0.2, zoneout_seed=77, checkpoint_every=every)
            results.append((y, ops.rnn_backward(cache, R)))
    for y, grads in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])  # the same draws
        for name in ("x", "w_ih", "w_hh", "h0"):  # the bias sums' order follows the threads
            np.testing.assert_allclose(grads[name], results[0][1][name], rtol=1e-5, atol=1e-6, err_msg=name)
    for name, g in results[2][1].items():  # checkpointed against full, same threads: bit for bit
        if g is not None:
            np.testing.assert_array_equal(g, results[1][1][name], err_msg=name)


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (1.0, ValueError), (float("nan"), ValueError),
                                        ("0.1", TypeError), (True, TypeError)])
def test_a_bad_zoneout_is_refused_naming_it(bad, error):
    case = make_case("lstm", 3, 2, 3, 4, np.float32)
    for impl in (ops, reference):
        with pytest.raises(error, match="zoneout"):
            impl.rnn_forward("lstm", **case, zoneout=bad)
    with pytest.raises(error, match="zoneout"):
        LSTM(4, zoneout=bad)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError)])
def test_a_bad_zoneout_seed_is_refused_naming_it(bad, error):
    case = make_case("gru", 3, 2, 3, 4, np.float32)
    with pytest.raises(error, match="zoneout_seed"):
        ops.rnn_forward("gru", **case, zoneout=0.1, zoneout_seed=bad)


@pytest.mark.parametrize("layer_class", [LSTM, GRU])
def test_a_layer_zones_out_in_training_with_seeded_draws_and_averages_at_inference(layer_class):
    x = np.random.default_rng(0).standard_normal((4, 12, 3)).astype(np.float32)
    layers = [layer_class(5, zoneout=0.3, return_sequences=True, seed=11) for _ in range(2)]
    plain = layer_class(5, return_sequences=True, seed=11)
    for layer in layers + [plain]:
        layer.build(x.shape)
    for layer in layers[1:] + [plain]:
        layer.set_weights(layers[0].get_weights())
    first, second = (layer(x, training=True) for layer in layers)
    np.testing.assert_array_equal(first, second)  # the same seed, the same draws
    assert not np.array_equal(first, layers[0](x, training=True))  # each call draws afresh
    assert not np.array_equal(first, plain(x, training=True))
    dx = layers[0].backward(np.ones_like(first))
    assert dx.shape == x.shape and all(np.isfinite(g).all() for g in layers[0].grads)
    # Inference: the expectation, as ops computes it.
    w = layers[0]
    want = ops.rnn_forward(w.mode, np.ascontiguousarray(x.transpose(1, 0, 2)), None, w.w_ih, w.w_hh, w.b_ih,
                           w.b_hh, training=False, zoneout=0.3, **w.activations())[0]
    np.testing.assert_array_equal(w(x), want.transpose(1, 0, 2))


def test_zoneout_is_in_a_layers_config_only_when_given_and_only_on_lstm_and_gru():
    assert "zoneout" not in GRU(4).get_config()
    assert LSTM.from_config(LSTM(4, zoneout=0.2).get_config()).zoneout == 0.2
    assert Bidirectional(GRU(4, zoneout=0.1)).backward_layer.zoneout == 0.1
    with pytest.raises(TypeError):
        SimpleRNN(4, zoneout=0.1)


def zoneout_model():
    import fastrnn

    model = fastrnn.Sequential([fastrnn.layers.Input(shape=(6, 3)), GRU(4, zoneout=0.2, name="zone")])
    model.build((None, 6, 3))
    return model


def test_npz_round_trip_and_keras_files_refused_naming_the_layer(tmp_path):
    import fastrnn

    model = zoneout_model()
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    model.save(tmp_path / "m.npz")
    again = fastrnn.load_model(tmp_path / "m.npz")
    assert again.layers[-1].zoneout == 0.2
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    for name, save in (("m.keras", model.save), ("m.weights.h5", model.save_weights)):
        with pytest.raises(ValueError, match=r"layer 'zone' \(GRU\) has zoneout=0.2.*\.npz"):
            save(tmp_path / name)
        assert not (tmp_path / name).exists()


def test_onnx_export_and_to_torch_are_refused_naming_the_layer(tmp_path):
    pytest.importorskip("onnx")
    model = zoneout_model()
    with pytest.raises(ValueError, match=r"layer 'zone' \(GRU\): zoneout=0.2 has no form in ONNX"):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    pytest.importorskip("torch")
    from fastrnn.interop import to_torch

    with pytest.raises(ValueError, match=r"layer 'zone' \(GRU\) has zoneout=0.2"):
        to_torch(model.layers[-1])
