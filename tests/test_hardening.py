"""Damaged and crafted model files, and saves that are interrupted or run side by side.

A file that is not a readable fastrnn model raises ValueError naming it, before setting aside
more memory than the file itself holds; damage never loads wrong weights. A save killed half-way
leaves its temporary file behind, which the next save in that folder removes, but never one that
another thread or process is still writing. And what the commands rely on for bad input:
generated text that streams, and time-series statistics that do not overflow quietly.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import Sequential, files, load_model
from fastrnn.layers import GRU, LSTM, Dense, Embedding
from fastrnn.utils import set_random_seed

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# More examples with FASTRNN_HYPOTHESIS_PROFILE=thorough (see test_properties.py).
EXAMPLES = 400 if os.environ.get("FASTRNN_HYPOTHESIS_PROFILE") == "thorough" else 40

# A file's own size is a few KB; loading it must stay far below what its damage declares.
MEMORY_LIMIT = 8 * 2**20


def small_model(compiled=True):
    """Embedding -> GRU -> Dense, built, with the optimizer's state after one step."""
    set_random_seed(0)
    model = Sequential([Embedding(7, 4, input_shape=(6,)), GRU(3), Dense(2, activation="softmax")])
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        model.train_on_batch(rng.integers(0, 7, (4, 6)), rng.integers(0, 2, 4))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, bytes, weights) of a small saved model."""
    path = tmp_path_factory.mktemp("saved") / "m.npz"
    model = small_model()
    model.save(path)
    return path, path.read_bytes(), model.get_weights()


def entries_of(path) -> dict:
    """name (without .npy) -> the raw bytes of that entry."""
    with zipfile.ZipFile(path) as z:
        return {info.filename[:-4]: z.read(info) for info in z.infolist()}


def write_archive(path, entries: dict, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, raw in entries.items():
            z.writestr(name + ".npy", raw)
    return path


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def with_architecture(entries: dict, change) -> dict:
    architecture = json.loads(np.lib.format.read_array(io.BytesIO(entries["architecture"])).item())
    change(architecture["config"]["layers"])
    return {**entries, "architecture": npy_bytes(np.array(json.dumps(architecture)))}


def load_within_memory(path):
    """load_model(path) with Python's and NumPy's allocations traced; (raised error, peak bytes)."""
    tracemalloc.start()
    try:
        load_model(path)
        error = None
    except Exception as err:  # noqa: BLE001 (the type is what the tests check)
        error = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


# --------------------------------------------------------------------------- declared sizes

def test_an_array_header_declaring_2_to_the_40_elements_is_refused_before_allocating(saved, tmp_path):
    entries = entries_of(saved[0])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2**40,)})
    entries["weight_0000"] = header.getvalue() + bytes(64)
    path = write_archive(tmp_path / "m.npz", entries)
    error, peak = load_within_memory(path)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path} is not a readable fastrnn model file: ")
    assert "'weight_0000'" in str(error) and "(1099511627776,)" in str(error)
    assert peak < MEMORY_LIMIT


@pytest.mark.parametrize("layer, key, value", [(0, "input_dim", 10**7), (0, "output_dim", 10**7),
                                               (1, "units", 10**6), (2, "units", 10**9)],
                         ids=["embedding-input-dim", "embedding-output-dim", "gru-units", "dense-units"])
def test_a_config_declaring_sizes_its_weights_do_not_have_is_refused_before_building(
        saved, tmp_path, layer, key, value):
    def change(layers):
        layers[layer]["config"][key] = value

    path = write_archive(tmp_path / "m.npz", with_architecture(entries_of(saved[0]), change))
    error, peak = load_within_memory(path)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path}: the fastrnn model file is not consistent: ")
    assert "declares layers of at least" in str(error)
    assert peak < MEMORY_LIMIT


def test_a_config_declaring_huge_sizes_with_its_weights_removed_is_refused(saved, tmp_path):
    entries = {k: v for k, v in entries_of(saved[0]).items() if not k.startswith("weight_")}
    path = write_archive(tmp_path / "m.npz", with_architecture(
        entries, lambda layers: layers[1]["config"].update(units=10**6)))
    error, peak = load_within_memory(path)
    assert isinstance(error, ValueError) and "declares layers of at least" in str(error)
    assert peak < MEMORY_LIMIT


def test_an_unbuilt_model_declaring_large_sizes_still_loads(tmp_path):
    """Nothing is allocated until an unbuilt model sees data, so its sizes are not its file's."""
    Sequential([LSTM(10**6), Dense(10**6)]).save(tmp_path / "m.npz")
    model = load_model(tmp_path / "m.npz")
    assert not model.built and model.layers[0].units == 10**6


def test_a_model_that_cannot_be_built_in_memory_is_a_value_error(saved, tmp_path):
    """A Dense layer without bias has no weight its config alone fixes the size of: building it
    runs out of memory (far beyond any address space), which is reported as a ValueError."""
    def change(layers):
        layers[2]["config"].update(units=10**15, use_bias=False)

    path = write_archive(tmp_path / "m.npz", with_architecture(entries_of(saved[0]), change))
    with pytest.raises(ValueError, match="does not fit in memory") as raised:
        load_model(path)
    assert str(raised.value).startswith(f"{path}: ")


def deflated_zeros(path, entries: dict, name: str, nbytes: int) -> Path:
    """The archive with entry ``name`` replaced by a float32 array of zeros of ``nbytes``,
    deflated (about a thousandth of that on disk), streamed so the test never holds it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (nbytes // 4,)})
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, raw in entries.items():
            if key != name:
                z.writestr(key + ".npy", raw)
        with z.open(name + ".npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)
    return path


def test_a_small_archive_that_would_inflate_to_hundreds_of_megabytes_is_refused_without_inflating(
        saved, tmp_path):
    path = deflated_zeros(tmp_path / "bomb.npz", entries_of(saved[0]), "weight_0000", 256 * 2**20)
    assert path.stat().st_size < 2**20
    error, peak = load_within_memory(path)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path} is not a readable fastrnn model file: ")
    assert "compressed" in str(error)
    assert peak < MEMORY_LIMIT


def central_record(raw: bytes, name: bytes) -> int:
    """Where the central directory's record of entry ``name`` starts: a signature, then the
    sizes at +20 (compressed) and +24, the name's length at +28 and the name at +46."""
    record = raw.find(b"PK\x01\x02")
    while raw[record + 46:record + 46 + len(name)] != name:
        record = raw.find(b"PK\x01\x02", record + 4)
        assert record >= 0
    return record


def test_an_entry_declaring_more_bytes_than_the_file_holds_is_refused(saved, tmp_path):
    raw = bytearray(saved[1])
    record = central_record(raw, b"weight_0000.npy")
    for offset in (20, 24):
        raw[record + offset:record + offset + 4] = (2**31).to_bytes(4, "little")
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(raw))
    error, peak = load_within_memory(path)
    assert isinstance(error, ValueError)
    assert str(error).startswith(f"{path} is not a readable fastrnn model file: ")
    assert "'weight_0000' declares 2147483648 bytes" in str(error)
    assert peak < MEMORY_LIMIT


def test_a_missing_weight_number_is_named(saved, tmp_path):
    entries = {k: v for k, v in entries_of(saved[0]).items() if k != "weight_0001"}
    with pytest.raises(ValueError, match="weight_0001 is missing"):
        load_model(write_archive(tmp_path / "m.npz", entries))


def test_a_fortran_ordered_or_big_endian_weight_loads_as_the_same_numbers(saved, tmp_path):
    entries = entries_of(saved[0])
    weights = saved[2]
    entries["weight_0000"] = npy_bytes(np.asfortranarray(weights[0]))
    entries["weight_0001"] = npy_bytes(weights[1].astype(">f4"))
    model = load_model(write_archive(tmp_path / "m.npz", entries))
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**31), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**31), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 2**31), st.integers(0, 255)),
    st.tuples(st.just("zero"), st.integers(0, 2**31), st.integers(1, 64)),
)


def damaged(raw: bytes, damage) -> bytes:
    kind, where, value = damage
    if not raw:
        return raw
    where %= len(raw)
    if kind == "flip":
        return raw[:where] + bytes([raw[where] ^ value]) + raw[where + 1:]
    if kind == "truncate":
        return raw[:where]
    if kind == "insert":
        return raw[:where] + bytes([value]) + raw[where:]
    return raw[:where] + bytes(min(value, len(raw) - where)) + raw[where + value:]


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damages=st.lists(DAMAGE, min_size=1, max_size=3))
def test_a_damaged_file_raises_value_error_or_loads_the_very_weights_saved(saved, tmp_path, damages):
    """Whatever bytes change, load_model raises ValueError naming the file, or (when the damage
    hit bytes nothing reads, such as a local header's copy of a size) returns the saved weights."""
    raw = saved[1]
    for damage in damages:
        raw = damaged(raw, damage)
    path = tmp_path / "damaged.npz"
    path.write_bytes(raw)
    try:
        model = load_model(path)
    except ValueError as err:
        assert str(path) in str(err)
        assert "pickle" not in str(err)
        return
    loaded = model.get_weights()
    assert len(loaded) == len(saved[2])
    for got, want in zip(loaded, saved[2]):
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- interrupted saves

SRC = str(Path(fastrnn.__file__).parents[1])  # children import the fastrnn these tests import

# A writer that writes part of its file, says so, and then waits for a line on stdin before it
# finishes: the test kills it there, or lets it go on.
PAUSED_WRITER = textwrap.dedent("""
    import sys
    from fastrnn.files import write_atomically

    def write(f):
        f.write(b"child, ")
        f.flush()
        print("writing", flush=True)
        sys.stdin.readline()
        f.write(b"done")

    write_atomically(sys.argv[1], write)
""")


def paused_writer(path):
    """A child process half-way through write_atomically(path); returns it once it is there."""
    child = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, str(path)], cwd=SRC,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "writing\n"
    return child


def temporary_files(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(files.TEMPORARY_SUFFIX))


def write_bytes(path, data: bytes):
    files.write_atomically(str(path), lambda f: f.write(data))


def test_the_next_save_removes_what_a_killed_save_left(tmp_path):
    path = tmp_path / "m.npz"
    child = paused_writer(path)
    child.kill()
    child.wait(timeout=30)
    (leftover,) = temporary_files(tmp_path)
    assert leftover.startswith(".m.npz.")
    write_bytes(path, b"new")
    assert os.listdir(tmp_path) == ["m.npz"] and path.read_bytes() == b"new"


def test_a_save_removes_leftovers_of_other_files_in_its_folder_and_nothing_else(tmp_path):
    others = [".notes.txt.tmp", ".m.npz.abcdefgh.tmp", "plain.fastrnn.tmp", "x.npz"]
    for name in others:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / ".a.npz.k2j3h4g5.fastrnn.tmp").write_bytes(b"left by a killed save")
    (tmp_path / ".b.png.zzzzzzzz.fastrnn.tmp").mkdir()  # not a file: not one of ours
    write_bytes(tmp_path / "m.npz", b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(others + [".b.png.zzzzzzzz.fastrnn.tmp", "m.npz"])


def test_a_save_never_removes_the_file_another_process_is_writing(tmp_path):
    path = tmp_path / "m.npz"
    child = paused_writer(path)
    try:
        (writing,) = temporary_files(tmp_path)
        write_bytes(path, b"parent")  # same path, while the child is half-way
        assert temporary_files(tmp_path) == [writing]
        assert path.read_bytes() == b"parent"
    finally:
        child.communicate("go on\n", timeout=30)
    assert child.returncode == 0
    assert os.listdir(tmp_path) == ["m.npz"] and path.read_bytes() == b"child, done"


def test_a_save_never_removes_the_file_another_thread_is_writing(tmp_path):
    path = tmp_path / "m.npz"
    halfway, go_on, errors = threading.Event(), threading.Event(), []

    def slow_write(f):
        f.write(b"thread, ")
        halfway.set()
        go_on.wait(30)
        f.write(b"done")

    def run():
        try:
            files.write_atomically(str(path), slow_write)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert halfway.wait(30)
        (writing,) = temporary_files(tmp_path)
        write_bytes(path, b"main")
        assert temporary_files(tmp_path) == [writing]
    finally:
        go_on.set()
        thread.join(30)
    assert errors == []
    assert os.listdir(tmp_path) == ["m.npz"] and path.read_bytes() == b"thread, done"


def test_a_folder_that_cannot_be_locked_is_written_in_and_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "fcntl", None)
    leftover = tmp_path / ".m.npz.k2j3h4g5.fastrnn.tmp"
    leftover.write_bytes(b"left")
    write_bytes(tmp_path / "m.npz", b"new")
    assert sorted(os.listdir(tmp_path)) == [leftover.name, "m.npz"]


# Saves model k (k = 0, 1) to one path again and again; the weights tell which model it was.
SAVING_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    from fastrnn import Sequential
    from fastrnn.layers import Dense

    k, path, times = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    model = Sequential([Dense(3, input_shape=(2,))])
    model.set_weights([np.full((2, 3), k, np.float32), np.arange(3, dtype=np.float32) + k])
    for i in range(times):
        model.save(path, metadata={"model": k, "save": i})
        print(i, flush=True)
""")


def saving_loop(k, path, times):
    return subprocess.Popen([sys.executable, "-c", SAVING_LOOP, str(k), str(path), str(times)],
                            cwd=SRC, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_whole_model(path):
    """The file at path is one of the models SAVING_LOOP saves, complete."""
    model = load_model(path)
    k = model.metadata["model"]
    np.testing.assert_array_equal(model.get_weights()[0], np.full((2, 3), k, np.float32))


def test_two_processes_saving_to_the_same_path_both_succeed_and_leave_one_whole_file(tmp_path):
    path = tmp_path / "m.npz"
    children = [saving_loop(k, path, 25) for k in (0, 1)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert_whole_model(path)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_saves_killed_at_random_moments_never_leave_a_broken_model(tmp_path):
    path = tmp_path / "m.npz"
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = saving_loop(0, path, 10**6)
        child.stdout.readline()  # one save done
        threading.Event().wait(float(rng.uniform(0, 0.2)))
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
        assert_whole_model(path)
    write_bytes(tmp_path / "other.npz", b"x")
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "other.npz"]


# --------------------------------------------------------------------------- what the commands use

@pytest.fixture(scope="module")
def char_model():
    from fastrnn.text import CharVocab

    set_random_seed(0)
    vocab = CharVocab.from_text("abcd")
    model = Sequential([Embedding(vocab.size, 3, input_shape=(5,)), LSTM(4, return_sequences=True),
                        Dense(vocab.size, activation="softmax")])
    return model, vocab


def test_a_stream_gives_the_characters_generate_gives_one_at_a_time(char_model):
    from fastrnn.text import CharSampler

    sampler = CharSampler(*char_model)
    stream = sampler.stream("ab", 30, temperature=1.3, seed=4)
    first = next(stream)
    assert len(first) == 1
    assert first + "".join(stream) == sampler.generate("ab", 30, temperature=1.3, seed=4)


@pytest.mark.parametrize("kwargs, error", [({"length": -1}, ValueError), ({"temperature": "hot"}, TypeError),
                                           ({"prime": "xyz"}, ValueError), ({"top_k": 0}, ValueError)])
def test_a_stream_checks_its_arguments_before_the_first_character_is_asked_for(char_model, kwargs, error):
    from fastrnn.text import CharSampler

    args = {"prime": "ab", "length": 5, **kwargs}
    with pytest.raises(error):
        CharSampler(*char_model).stream(**args)


@pytest.mark.parametrize("values", [[1e308, 1e308], [1e308, -1e308, 1e308], [1e200, -1e200]])
def test_a_scaler_refuses_values_whose_statistics_overflow_without_warnings(values):
    from fastrnn.timeseries import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="overflows float64"):
            StandardScaler().fit(np.array(values))


def test_rmse_of_errors_whose_squares_overflow_is_finite():
    from fastrnn.timeseries import rmse

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rmse([3e200, 0.0], [0.0, 4e200]) == pytest.approx(np.sqrt(12.5) * 1e200, rel=1e-15)
    assert rmse([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert np.isnan(rmse([np.nan], [1.0]))
