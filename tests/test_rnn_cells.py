"""layers.RNN(cell) with SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells.

Outputs and states are compared with Keras 3's from identical weights (float32: atol 1e-6),
with masks, go_backwards and initial states; a few training steps of a stacked model match
Keras's; gradients match central differences in float64; and RNN(cell) equals the recurrent
layer of the cell's kind.
"""
import os

import numpy as np
import pytest
from conftest import finite_difference

from fastrnn import layers, regularizers
from fastrnn.layers import GRU, LSTM, RNN, Dense, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, StackedRNNCells
from fastrnn.models import Sequential, load_model
from fastrnn.optimizers import SGD

# Keras turns torch tensors into arrays in a way NumPy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

ATOL = 1e-6
B, T, F = 3, 6, 2


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def data(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype(np.float32)


def flatten(outputs):
    """[output, h, [h, c], ...] -> the arrays in order, torch tensors as numpy."""
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    flat = []
    for o in outputs:
        if isinstance(o, (list, tuple)):
            flat.extend(flatten(o))
        else:
            flat.append(o.detach().numpy() if hasattr(o, "detach") else np.asarray(o))
    return flat


def both(keras, make, x, **call):
    """Build the layer made by ``make(layers_module)`` in fastrnn and Keras, give Keras
    fastrnn's weights, and return both outputs flattened."""
    ours, theirs = make(layers), make(keras.layers)
    out = ours(x, **call)
    theirs(x, **call)
    theirs.set_weights(ours.get_weights())
    return ours, theirs, flatten(out), flatten(theirs(x, **call))


def assert_all_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


CELLS = {"SimpleRNNCell": dict(units=4), "LSTMCell": dict(units=3), "GRUCell": dict(units=5)}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("flags", [dict(), dict(return_sequences=True), dict(return_state=True),
                                   dict(return_sequences=True, return_state=True, go_backwards=True)])
def test_one_cell_matches_keras(keras, cell, flags):
    def make(lib):
        return lib.RNN(getattr(lib, cell)(**CELLS[cell], bias_initializer="uniform"), **flags)

    _, _, ours, theirs = both(keras, make, data())
    assert_all_close(ours, theirs)


@pytest.mark.parametrize("flags", [dict(), dict(return_sequences=True, return_state=True),
                                   dict(return_sequences=True, go_backwards=True, return_state=True)])
def test_stacked_cells_match_keras_with_their_states(keras, flags):
    def make(lib):
        cells = [lib.SimpleRNNCell(4), lib.LSTMCell(3, bias_initializer="uniform"),
                 lib.GRUCell(2, bias_initializer="uniform")]
        return lib.RNN(lib.StackedRNNCells(cells), **flags)

    ours_layer, _, ours, theirs = both(keras, make, data(1))
    assert_all_close(ours, theirs)
    if flags.get("return_state"):
        out = ours_layer(data(1))
        assert [len(s) for s in out[1:]] == [1, 2, 1]  # one list of states per cell, as Keras


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_stacked_cells_match_keras(keras, zero_output_for_mask, go_backwards):
    x = data(2)
    mask = np.arange(T)[None, :] < np.array([T, 4, 1])[:, None]  # post-padded

    def make(lib):
        return lib.RNN([lib.LSTMCell(3), lib.GRUCell(4)], return_sequences=True, return_state=True,
                       go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)

    _, _, ours, theirs = both(keras, make, x * mask[..., None], mask=mask)
    assert_all_close(ours, theirs)


def test_initial_state_of_stacked_cells_matches_keras(keras):
    rng = np.random.default_rng(3)
    h1, h2, c2 = (rng.standard_normal((B, n)).astype(np.float32) for n in (4, 3, 3))

    def make(lib):
        return lib.RNN([lib.GRUCell(4), lib.LSTMCell(3)], return_state=True)

    _, _, ours, theirs = both(keras, make, data(3), initial_state=[[h1], [h2, c2]])
    assert_all_close(ours, theirs)


def test_a_single_step_of_a_cell_matches_keras(keras):
    x_t = data(4)[:, 0]
    rng = np.random.default_rng(4)
    states = [rng.standard_normal((B, 3)).astype(np.float32) for _ in range(2)]
    ours = LSTMCell(3)
    ours(x_t, states)
    theirs = keras.layers.LSTMCell(3)
    theirs(x_t, states)
    theirs.set_weights(ours.get_weights())
    h, new = ours(x_t, states)
    h_k, new_k = theirs(x_t, states)
    assert_all_close(flatten([h, new]), flatten([h_k, new_k]))


def test_weights_configs_and_state_sizes_are_keras(keras):
    ours = RNN([SimpleRNNCell(4), LSTMCell(3), GRUCell(2)])
    theirs = keras.layers.RNN([keras.layers.SimpleRNNCell(4), keras.layers.LSTMCell(3),
                               keras.layers.GRUCell(2)])
    ours.build((None, T, F))
    theirs.build((None, T, F))
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.cell.state_size == theirs.cell.state_size == [4, [3, 3], 2]
    assert ours.cell.output_size == theirs.cell.output_size == 2
    config, expected = ours.get_config(), theirs.get_config()
    for key in ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                "zero_output_for_mask"):
        assert config[key] == expected[key]
    assert config["cell"]["class_name"] == "StackedRNNCells"
    cells, keras_cells = config["cell"]["config"]["cells"], expected["cell"]["config"]["cells"]
    for cell, keras_cell in zip(cells, keras_cells):
        assert cell["class_name"] == keras_cell["class_name"]
        assert set(cell["config"]) - {"dtype"} <= set(keras_cell["config"])


@pytest.mark.parametrize("cell, layer", [(SimpleRNNCell, SimpleRNN), (LSTMCell, LSTM), (GRUCell, GRU)])
def test_rnn_of_a_cell_is_the_layer_of_its_kind(cell, layer):
    x = data(5)
    ours = RNN(cell(3), return_sequences=True, return_state=True)
    ours.build((None, T, F))
    twin = layer(3, return_sequences=True, return_state=True)
    twin.build((None, T, F))
    twin.set_weights(ours.get_weights())
    for a, b in zip(ours(x), twin(x)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("masked, go_backwards", [(False, False), (True, True), (True, False)])
def test_gradients_through_stacked_cells_match_finite_differences(masked, go_backwards):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, F))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool) if masked else None
    layer = RNN([LSTMCell(3, dtype="float64"), GRUCell(2, dtype="float64")], return_sequences=True,
                return_state=True, go_backwards=go_backwards)
    weights = [rng.standard_normal(a.shape) for a in (layer(x, mask=mask) and layer.get_weights())]
    layer.set_weights(weights)
    d_out = [rng.standard_normal((2, 4, 2)), [rng.standard_normal((2, 3)), None], [rng.standard_normal((2, 2))]]

    def loss():
        out = layer(x, mask=mask)
        return float(np.sum(out[0] * d_out[0]) + np.sum(out[1][0] * d_out[1][0]) + np.sum(out[2][0] * d_out[2][0]))

    layer(x, training=True, mask=mask)
    dx = layer.backward(d_out)
    np.testing.assert_allclose(dx, finite_difference(loss, x), rtol=1e-6, atol=1e-9)
    for p, g in zip(layer.params, layer.grads):
        np.testing.assert_allclose(g, finite_difference(loss, p), rtol=1e-6, atol=1e-9)


def test_training_a_stacked_cells_model_matches_keras(keras):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, T, F)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)

    def build(lib, model_cls, first):
        cells = [lib.layers.GRUCell(4, kernel_regularizer=lib.regularizers.L2(0.01)), lib.layers.LSTMCell(3)]
        return model_cls([*first, lib.layers.RNN(cells), lib.layers.Dense(1)])

    import fastrnn

    ours = build(fastrnn, Sequential, [])
    ours.build((None, T, F))
    theirs = build(keras, keras.Sequential, [keras.Input((T, F))])
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=SGD(0.1, clipnorm=0.05), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(0.1, clipnorm=0.05), loss="mse")
    for _ in range(3):
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_model_with_rnn_cells_saves_and_loads(tmp_path):
    model = Sequential([layers.Embedding(9, 3, mask_zero=True, input_shape=(T,)),
                        RNN(StackedRNNCells([LSTMCell(4, bias_regularizer=regularizers.L1(0.1)),
                                             GRUCell(2, dropout=0.2)]), return_sequences=True),
                        Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    ids = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 1]])
    model.train_on_batch(ids, np.zeros((2, T, 1)))
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    cells = loaded.layers[1].cell.cells
    assert cells[0].layer.bias_regularizer.get_config() == {"l1": 0.1} and cells[1].layer.dropout == 0.2


def test_stateful_rnn_carries_each_cells_state():
    x = data(8)
    layer = RNN([SimpleRNNCell(3), LSTMCell(2)], stateful=True, return_state=True)
    layer(x[:, :3])
    _, *second = layer(x[:, 3:])
    whole = RNN([SimpleRNNCell(3), LSTMCell(2)], return_state=True)
    whole.build((None, T, F))
    whole.set_weights(layer.get_weights())
    _, *expected = whole(x)
    assert_all_close(flatten(second), flatten(expected))
    layer.reset_states()
    assert layer.states is None


def test_dropout_of_cells_acts_in_training_only():
    x = data(9)
    layer = RNN([GRUCell(3, dropout=0.5, seed=1), LSTMCell(2, dropout=0.5, seed=2)])
    np.testing.assert_array_equal(layer(x), layer(x))
    assert not np.allclose(layer(x, training=True), layer(x))


def test_cell_regularizers_count_in_the_layers_losses():
    layer = RNN([GRUCell(3, kernel_regularizer=regularizers.L2(1.0)), LSTMCell(2)])
    layer.build((None, T, F))
    kernel = layer.get_weights()[0].astype(np.float64)
    assert layer.losses == [pytest.approx(float(np.sum(kernel ** 2)))]


def test_bad_cells_and_arguments_raise_clear_errors():
    class MyCell:
        state_size = 3

        def call(self, x, states):
            return x, states

    with pytest.raises(ValueError, match="user-defined cell is not supported"):
        RNN(MyCell())
    with pytest.raises(ValueError, match="user-defined cell is not supported"):
        StackedRNNCells([LSTMCell(2), MyCell()])
    with pytest.raises(ValueError, match="non-empty list"):
        StackedRNNCells([])
    with pytest.raises(TypeError, match="return_sequences"):
        LSTMCell(3, return_sequences=True)
    with pytest.raises(ValueError, match="dtype"):
        RNN([LSTMCell(2), GRUCell(2, dtype="float64")])
    cell = GRUCell(2)
    RNN(cell)
    with pytest.raises(ValueError, match="another RNN"):
        RNN(cell)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        LSTMCell(2, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match="initial_state"):
        RNN([LSTMCell(2), GRUCell(2)])(data(), initial_state=[np.zeros((B, 2))])
    with pytest.raises(RuntimeError, match="inside layers.RNN"):
        LSTMCell(2).backward(np.zeros((B, 2)))
