"""fit / evaluate / predict on data that is not arrays, and the weights of samples.

- Every input form (a PyDataset, a generator with steps_per_epoch, an iterable, a torch
  DataLoader, dict inputs of a functional model) gives the weights that the same batches as
  arrays give (atol 1e-6; the batches are identical, so observed 0).
- sample_weight (B,) and (B, T), class_weight and compile's weighted_metrics against Keras 3
  (torch backend) from identical weights: losses, metrics and weights after three steps to
  rtol 1e-5 in float32.
- utils.to_categorical, normalize and timeseries_dataset_from_array against Keras's (the last
  needs tensorflow or grain, which Keras builds its datasets on; without them it is checked on
  the examples of Keras's documentation and on windows written out here).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastrnn
from fastrnn import layers as fl
from fastrnn.utils import PyDataset, set_random_seed

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

N, T, F, BATCH = 24, 5, 3, 8


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, T, F)).astype(np.float32)
    y = rng.normal(size=(N, 1)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, N).astype(np.float32)
    return x, y, w


def model(**compile_kwargs):
    set_random_seed(3)
    m = fastrnn.Sequential([fastrnn.Input((T, F)), fl.LSTM(4), fl.Dense(1)])
    m.compile(optimizer="adam", loss="mse", **compile_kwargs)
    return m


class Batches(PyDataset):
    """The rows of arrays in batches of BATCH, in order."""

    def __init__(self, *arrays, **kwargs):
        super().__init__(**kwargs)
        self.arrays = arrays
        self.ends = 0

    def __len__(self):
        return -(-len(self.arrays[0]) // BATCH)

    def __getitem__(self, i):
        return tuple(a[i * BATCH:(i + 1) * BATCH] for a in self.arrays)

    def on_epoch_end(self):
        self.ends += 1


def generator(*arrays):
    while True:
        for i in range(-(-N // BATCH)):
            yield tuple(a[i * BATCH:(i + 1) * BATCH] for a in arrays)


class Iterable:
    """Batches read again on every iteration, with a length (as a DataLoader has)."""

    def __init__(self, *arrays):
        self.arrays = arrays

    def __iter__(self):
        return iter(Batches(*self.arrays)[i] for i in range(len(self)))

    def __len__(self):
        return -(-N // BATCH)


def same_weights(a, b, atol=1e-6):
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=0, atol=atol)


def fit_arrays(**kwargs):
    x, y, w = data()
    m = model(metrics=["mae"])
    history = m.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, **kwargs)
    return m, history.history


@pytest.mark.parametrize("form", ["PyDataset", "generator", "iterable"])
def test_each_input_form_trains_as_the_same_batches_of_arrays(form):
    x, y, _ = data()
    reference, expected = fit_arrays()
    m = model(metrics=["mae"])
    source = {"PyDataset": Batches(x, y), "generator": generator(x, y), "iterable": Iterable(x, y)}[form]
    kwargs = {"steps_per_epoch": 3} if form == "generator" else {}
    got = m.fit(source, epochs=2, shuffle=False, verbose=0, **kwargs).history
    same_weights(m, reference)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)


def test_a_pydataset_is_told_each_epoch_end_and_keeps_keras_constructor_arguments():
    x, y, _ = data()
    ds = Batches(x, y, workers=2, use_multiprocessing=False, max_queue_size=4)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size, ds.num_batches) == (2, False, 4, 3)
    model().fit(ds, epochs=3, verbose=0)
    assert ds.ends == 3


def test_sample_weights_in_the_batches_train_as_sample_weight_of_arrays():
    x, y, w = data()
    reference, expected = fit_arrays(sample_weight=w)
    m = model(metrics=["mae"])
    got = m.fit(Batches(x, y, w), epochs=2, shuffle=False, verbose=0).history
    same_weights(m, reference)
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-6)


def test_a_torch_dataloader_trains_as_arrays():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x, y, w = data()
    reference, _ = fit_arrays(sample_weight=w)
    loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y), torch.tensor(w)),
                        batch_size=BATCH, shuffle=False)
    m = model(metrics=["mae"])
    m.fit(loader, epochs=2, verbose=0)
    same_weights(m, reference)
    np.testing.assert_allclose(m.predict(loader, verbose=0), m.predict(x, batch_size=BATCH, verbose=0),
                               rtol=0, atol=0)  # same batches, same sums
    assert m.evaluate(loader, verbose=0) == pytest.approx(m.evaluate(x, y, sample_weight=w, batch_size=BATCH,
                                                                     verbose=0),
                                                          rel=1e-6)


def two_input_model():
    set_random_seed(5)
    a, b = fastrnn.Input((T, F), name="a"), fastrnn.Input((2,), name="b")
    h = fl.Concatenate()([fl.GRU(3)(a), b])
    m = fastrnn.Model([a, b], [fl.Dense(1, name="out")(h), fl.Dense(2, name="aux")(h)])
    m.compile(optimizer="adam", loss="mse")
    return m


def test_dicts_of_inputs_and_outputs_in_a_pydataset_train_as_arrays():
    x, y, w = data()
    b = np.random.default_rng(1).normal(size=(N, 2)).astype(np.float32)
    xs, ys = {"a": x, "b": b}, {"out": y, "aux": b}
    reference = two_input_model()
    reference.fit(xs, ys, sample_weight=w, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)

    class Dicts(PyDataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            rows = slice(i * BATCH, (i + 1) * BATCH)
            return ({k: v[rows] for k, v in xs.items()}, {k: v[rows] for k, v in ys.items()},
                    w[rows])

    m = two_input_model()
    m.fit(Dicts(), epochs=2, shuffle=False, verbose=0)
    same_weights(m, reference)


def test_shuffle_draws_the_order_of_a_pydatasets_batches():
    x, y, _ = data()
    seen = []

    class Logged(Batches):
        def __getitem__(self, i):
            seen.append(i)
            return super().__getitem__(i)

    set_random_seed(0)
    m = model()
    m.fit(Logged(x, y), epochs=4, shuffle=True, verbose=0)
    epochs = [seen[k:k + 3] for k in range(0, 12, 3)]
    assert all(sorted(e) == [0, 1, 2] for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1


def test_steps_per_epoch_on_arrays_continues_into_the_next_pass():
    x, y, _ = data()
    m = model()
    m.fit(x, y, batch_size=BATCH, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    reference = model()
    reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)  # 6 steps as well
    same_weights(m, reference)


def test_a_finite_generator_runs_out_and_training_stops():
    x, y, _ = data()
    m = model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = m.fit((Batches(x, y)[i] for i in range(3)), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_validation_freq_steps_and_batch_size():
    x, y, _ = data()
    m = model()
    history = m.fit(x, y, batch_size=BATCH, epochs=4, verbose=0, validation_data=(x, y),
                    validation_freq=2)
    assert len(history.history["val_loss"]) == 2
    history = m.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_data=(x, y),
                    validation_freq=[1, 3], validation_batch_size=5, validation_steps=2)
    assert len(history.history["val_loss"]) == 2
    # two batches of 5 rows: the validation loss is the mean over the first 10 samples
    m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, validation_data=(x, y),
          validation_batch_size=5, validation_steps=2, callbacks=[Record := Recorder()])
    assert Record.val == pytest.approx(m.evaluate(x[:10], y[:10], verbose=0), rel=1e-6)


class Recorder(fastrnn.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.val = logs["val_loss"]


def test_validation_data_with_sample_weights_and_as_a_dataset():
    x, y, w = data()
    m = model()
    history = m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, validation_data=(x, y, w),
                    shuffle=False)
    assert history.history["val_loss"][0] == pytest.approx(
        m.evaluate(x, y, sample_weight=w, batch_size=BATCH, verbose=0), rel=1e-6)
    history = m.fit(x, y, epochs=1, verbose=0, validation_data=Batches(x, y, w))
    assert history.history["val_loss"][0] == pytest.approx(
        m.evaluate(x, y, sample_weight=w, batch_size=BATCH, verbose=0), rel=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y, w: m.fit(Batches(x, y), batch_size=8, verbose=0), "batch_size must not be given"),
    (lambda m, x, y, w: m.fit(Batches(x, y), y, verbose=0), "y must not be given"),
    (lambda m, x, y, w: m.fit(Batches(x, y), sample_weight=w, verbose=0), "sample_weight must not"),
    (lambda m, x, y, w: m.fit(Batches(x, y), validation_split=0.2, verbose=0), "validation_split"),
    (lambda m, x, y, w: m.fit(generator(x, y), class_weight={0: 1.0}, steps_per_epoch=1, verbose=0),
     "class_weight is not supported for Python generator"),
    (lambda m, x, y, w: m.fit(x, y, class_weight={0: 2.0}, sample_weight=w, verbose=0),
     "class_weight or sample_weight"),
    (lambda m, x, y, w: m.fit(x, y, sample_weight=w[:5], verbose=0), "one weight per sample"),
    (lambda m, x, y, w: m.fit(x, y, validation_freq=0, verbose=0), "validation_freq"),
    (lambda m, x, y, w: m.fit(x, y, validation_freq="2", verbose=0), "validation_freq"),
    (lambda m, x, y, w: m.fit(x, y, steps_per_epoch=0, verbose=0), "steps_per_epoch"),
    (lambda m, x, y, w: m.fit(x, y, validation_data=Batches(x, y), validation_batch_size=4,
                              verbose=0), "validation_batch_size"),
    (lambda m, x, y, w: m.fit(Batches(x), verbose=0), "fit needs targets y"),
    (lambda m, x, y, w: m.evaluate(Batches(x, y), batch_size=4, verbose=0), "batch_size"),
    (lambda m, x, y, w: m.fit(Batches(x, y, w, w), verbose=0), "a batch must be"),
    (lambda m, x, y, w: m.fit(x, y, class_weight=[1.0, 2.0], verbose=0), "class_weight must be a dict"),
])
def test_bad_data_arguments_raise_naming_them(call, match):
    x, y, w = data()
    m = model()
    before = [a.copy() for a in m.get_weights()] if m.built else None
    with pytest.raises((ValueError, TypeError), match=match):
        call(m, x, y, w)
    if before is not None:
        same_weights(m, type("W", (), {"get_weights": lambda self: before})(), atol=0)


def test_class_weight_with_several_outputs_raises():
    x, y, _ = data()
    b = np.zeros((N, 2), np.float32)
    with pytest.raises(ValueError, match="single output"):
        two_input_model().fit([x, b], [y, b], class_weight={0: 1.0}, verbose=0)


def test_class_weight_is_sample_weight_by_class():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(N, T, F)).astype(np.float32)
    labels = rng.integers(0, 3, N)
    y = np.eye(3, dtype=np.float32)[labels]
    weights = {0: 0.5, 1: 2.0}  # class 2 weighs 1

    def classifier():
        set_random_seed(7)
        m = fastrnn.Sequential([fastrnn.Input((T, F)), fl.LSTM(4), fl.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy")
        return m

    a, b = classifier(), classifier()
    a.fit(x, y, class_weight=weights, batch_size=BATCH, shuffle=False, verbose=0)
    b.fit(x, y, sample_weight=np.array([weights.get(c, 1.0) for c in labels]), batch_size=BATCH,
          shuffle=False, verbose=0)
    same_weights(a, b)


# ---------------------------------------------------------------------- against Keras 3

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def both(keras, build, compile_kwargs):
    keras.utils.set_random_seed(0)
    k = build(keras, keras.layers)
    f = build(fastrnn, fl)
    for k_layer, f_layer in zip(k.layers, f.layers):
        f_layer.set_weights(k_layer.get_weights())
    k.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
    f.compile(optimizer=fastrnn.optimizers.Adam(1e-3), **compile_kwargs)
    return k, f


def last_output(lib, layers):
    return lib.Sequential([lib.Input((T, F)), layers.LSTM(4), layers.Dense(3, activation="softmax")])


def sequence_output(lib, layers, masked=True):
    mask = [layers.Masking(0.0)] if masked else []
    return lib.Sequential([lib.Input((T, F)), *mask, layers.GRU(4, return_sequences=True),
                           layers.Dense(2)])


def check_same(got, expected, rtol=1e-5, atol=1e-6):
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == pytest.approx(float(expected[name]), rel=rtol, abs=atol), name


def check_weights(k, f):
    for k_layer, f_layer in zip(k.layers, f.layers):
        for a, b in zip(f_layer.get_weights(), k_layer.get_weights()):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weights", ["sample_weight", "class_weight"])
def test_weighted_loss_and_metrics_match_keras(keras, weights):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, T, F)).astype(np.float32)
    labels = rng.integers(0, 3, 10)
    y = np.eye(3, dtype=np.float32)[labels]
    given = ({"sample_weight": rng.uniform(0, 3, 10).astype(np.float32)} if weights == "sample_weight"
             else {"class_weight": {0: 0.25, 1: 3.0}})
    k, f = both(keras, last_output, {"loss": "categorical_crossentropy",
                                     "metrics": ["accuracy", "mae"],
                                     "weighted_metrics": ["accuracy", "mse"]})
    for _ in range(3):
        check_same(f.train_on_batch(x, y, return_dict=True, **given),
                   k.train_on_batch(x, y, return_dict=True, **given))
    check_weights(k, f)
    if weights == "sample_weight":
        check_same(f.evaluate(x, y, batch_size=4, return_dict=True, verbose=0, **given),
                   k.evaluate(x, y, batch_size=4, return_dict=True, verbose=0, **given))


@pytest.mark.parametrize("shape", ["(B, 1)", "(B, T)"])
def test_sample_weights_of_samples_and_steps_with_a_mask_match_keras(keras, shape):
    """Keras takes per-sample weights of a sequence output as (B, 1) (fastrnn takes (B,) too,
    checked below to be the same), and with a mask only per-step weights (B, T): the (B, 1)
    case runs without the Masking layer."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(6, T, F)).astype(np.float32)
    x[1, 3:] = 0.0  # masked steps
    x[4, :2] = 0.0
    y = rng.normal(size=(6, T, 2)).astype(np.float32)
    w = rng.uniform(0, 2, (6, 1) if shape == "(B, 1)" else (6, T)).astype(np.float32)
    build = (lambda lib, layers: sequence_output(lib, layers, masked=shape == "(B, T)"))
    k, f = both(keras, build, {"loss": "mse", "metrics": ["mae"],
                                         "weighted_metrics": ["mae"]})
    for _ in range(3):
        check_same(f.train_on_batch(x, y, sample_weight=w, return_dict=True),
                   k.train_on_batch(x, y, sample_weight=w, return_dict=True))
    check_weights(k, f)
    check_same(f.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0),
               k.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0))
    if shape == "(B, 1)":
        assert f.evaluate(x, y, sample_weight=w[:, 0], verbose=0) == f.evaluate(
            x, y, sample_weight=w, verbose=0)


def test_a_pydataset_with_weights_fits_as_keras_fits_its_own(keras):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(N, T, F)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, N)]
    w = rng.uniform(0, 2, N).astype(np.float32)

    def batches(base):
        class Weighted(base):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                rows = slice(i * BATCH, (i + 1) * BATCH)
                return x[rows], y[rows], w[rows]
        return Weighted()

    k, f = both(keras, last_output, {"loss": "categorical_crossentropy",
                                     "weighted_metrics": ["accuracy"]})
    expected = k.fit(batches(keras.utils.PyDataset), epochs=2, shuffle=False, verbose=0,
                     validation_data=batches(keras.utils.PyDataset)).history
    got = f.fit(batches(PyDataset), epochs=2, shuffle=False, verbose=0,
                validation_data=batches(PyDataset)).history
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
    check_weights(k, f)


def test_to_categorical_and_normalize_match_keras(keras):
    from fastrnn import utils

    for labels, classes in (([0, 2, 1, 2], None), (np.array([[1], [0], [3]]), 5),
                            (np.arange(6).reshape(2, 3), None)):
        expected = keras.utils.to_categorical(labels, classes)
        got = utils.to_categorical(labels, classes)
        assert got.dtype == np.asarray(expected).dtype
        np.testing.assert_array_equal(got, expected)
    a = np.random.default_rng(0).normal(size=(4, 3, 2))
    a[1, 2] = 0.0
    for axis, order in ((-1, 2), (1, 1), (2, np.inf)):
        np.testing.assert_allclose(utils.normalize(a, axis, order), keras.utils.normalize(a, axis, order),
                                   rtol=1e-15)


# ---------------------------------------------------------------------- timeseries windows

SERIES_CASES = [
    dict(sequence_length=4),
    dict(sequence_length=3, sequence_stride=2, batch_size=4),
    dict(sequence_length=3, sampling_rate=2, batch_size=5, start_index=3, end_index=40),
    dict(sequence_length=5, sequence_stride=3, sampling_rate=3, batch_size=2, end_index=30),
    dict(sequence_length=2, batch_size=None, start_index=10),
    dict(sequence_length=6, batch_size=7, shuffle=True, seed=4),
]


def series():
    data = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    targets = np.arange(50, dtype=np.float32) * 10
    return data, targets


def windows_written_out(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                        batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """The windows from the words of Keras's documentation, one by one."""
    start = start_index or 0
    end = len(data) if end_index is None else end_index
    xs, ys = [], []
    i = 0
    while start + i * sequence_stride + (sequence_length - 1) * sampling_rate < end:
        p = start + i * sequence_stride
        if p - start >= len(targets):
            break
        xs.append(data[p:p + sequence_length * sampling_rate:sampling_rate])
        ys.append(targets[p])
        i += 1
    order = np.arange(len(xs))
    if shuffle:
        np.random.RandomState(seed).shuffle(order)
    xs, ys = np.array(xs)[order], np.array(ys)[order]
    size = batch_size or 1
    out = [(xs[k:k + size], ys[k:k + size]) for k in range(0, len(xs), size)]
    return out if batch_size else [(a[0], b[0]) for a, b in out]


@pytest.mark.parametrize("kwargs", SERIES_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_timeseries_windows_are_the_windows_keras_describes(kwargs):
    from fastrnn.utils import timeseries_dataset_from_array

    data, targets = series()
    got = list(timeseries_dataset_from_array(data, targets, **kwargs))
    expected = windows_written_out(data, targets, **kwargs)
    assert len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


def keras_batches(keras, kwargs):
    """Keras's batches as arrays, or a skip when Keras cannot make them here."""
    try:
        ds = keras.utils.timeseries_dataset_from_array(*series(), **kwargs)
        return [tuple(np.asarray(part) for part in batch) for batch in ds]
    except (ImportError, ModuleNotFoundError) as err:
        pytest.skip(f"Keras's timeseries_dataset_from_array needs tensorflow or grain: {err}")


@pytest.mark.parametrize("kwargs", [k for k in SERIES_CASES if not k.get("shuffle")],
                         ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_timeseries_batches_match_keras(keras, kwargs):
    from fastrnn.utils import timeseries_dataset_from_array

    expected = keras_batches(keras, kwargs)
    got = list(timeseries_dataset_from_array(*series(), **kwargs))
    assert len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


def test_keras_documentation_examples():
    from fastrnn.utils import timeseries_dataset_from_array

    # "Consider indices [0, 1, ... 98]. With sequence_length=10, sampling_rate=2,
    # sequence_stride=3, shuffle=False, the dataset will yield batches of sequences
    # composed of the following indices: First sequence: [0 2 4 6 8 10 12 14 16 18] ..."
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10, sampling_rate=2,
                                       sequence_stride=3, batch_size=None)
    seqs = list(ds)
    np.testing.assert_array_equal(seqs[0], np.arange(0, 20, 2))
    np.testing.assert_array_equal(seqs[1], np.arange(3, 23, 2))
    np.testing.assert_array_equal(seqs[-1], np.arange(78, 98, 2))
    # Predicting the value 10 steps ahead from 10 steps: data[:-10], targets data[10:].
    data = np.arange(100)
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    x, y = ds[0]
    np.testing.assert_array_equal(x[0], np.arange(10))
    assert y[0] == 10


@pytest.mark.parametrize("kwargs, match", [
    (dict(sequence_length=3, start_index=-1), "start_index"),
    (dict(sequence_length=3, start_index=60), "start_index must be lower"),
    (dict(sequence_length=3, start_index=5, end_index=5), "end_index must be higher than start"),
    (dict(sequence_length=3, end_index=50), "end_index must be lower"),
    (dict(sequence_length=3, sampling_rate=0), "sampling_rate"),
    (dict(sequence_length=3, sequence_stride=0), "sequence_stride"),
    (dict(sequence_length=0), "sequence_length"),
    (dict(sequence_length=3, batch_size=0), "batch_size"),
    (dict(sequence_length=2.5), "sequence_length must be an int"),
])
def test_timeseries_bad_arguments_raise_naming_them(kwargs, match):
    from fastrnn.utils import timeseries_dataset_from_array

    with pytest.raises((ValueError, TypeError), match=match):
        timeseries_dataset_from_array(*series(), **kwargs)


def test_a_model_fits_timeseries_windows():
    from fastrnn.utils import timeseries_dataset_from_array

    rng = np.random.default_rng(0)
    signal = np.sin(np.arange(300) / 8.0)[:, None] + 0.05 * rng.normal(size=(300, 1))
    train = timeseries_dataset_from_array(signal[:-4], signal[4:, 0], sequence_length=12, batch_size=32)
    set_random_seed(0)
    m = fastrnn.Sequential([fastrnn.Input((12, 1)), fl.LSTM(8), fl.Dense(1)])
    m.compile(optimizer=fastrnn.optimizers.Adam(0.02), loss="mse")
    history = m.fit(train, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert m.predict(train, verbose=0).shape == (len(signal) - 4 - 11, 1)


@pytest.mark.parametrize("name", ["model.npz", "model.keras"])
def test_weighted_metrics_are_saved_with_the_compile_options(tmp_path, name):
    x, y, w = data()
    m = model(metrics=["mae"], weighted_metrics=["mae"])
    m.fit(x, y, sample_weight=w, verbose=0)
    m.save(tmp_path / name)
    loaded = fastrnn.load_model(tmp_path / name)
    assert loaded.weighted_metric_ids == ["mae"]
    assert loaded.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0) == \
        m.evaluate(x, y, sample_weight=w, return_dict=True, verbose=0)
