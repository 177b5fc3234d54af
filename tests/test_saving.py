"""``model.save`` / ``fastrnn.load_model``: round trips, atomic writes, and files that are not models."""
from __future__ import annotations

import json
import os
import stat
import threading
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn import Sequential, load_model, saving
from fastrnn.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding
from fastrnn.optimizers import Adam
from fastrnn.utils import set_random_seed


def trained_model():
    set_random_seed(0)
    model = Sequential([Embedding(7, 4, mask_zero=True, input_shape=(6,)),
                        Bidirectional(LSTM(5, return_sequences=True), merge_mode="ave"),
                        Dropout(0.2), GRU(3), Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(0.01, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return model


def data(seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, 24)
    x = rng.integers(1, 7, (24, 6)) * (np.arange(6)[None, :] < lengths[:, None])
    return x, (lengths > 3).astype(np.int64)


def files_in(folder):
    return sorted(os.listdir(folder))


def test_loaded_model_predicts_identically(tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    x, _ = data(seed=2)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_config() == model.get_config()


def test_loaded_model_resumes_training_exactly_like_a_model_never_saved(tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    x, y = data(seed=3)
    runs = []
    for m in (model, loaded):
        set_random_seed(42)  # same shuffling and dropout for both
        runs.append(m.fit(x, y, epochs=2, batch_size=8, verbose=0).history)
    assert runs[0] == runs[1]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loaded_model_keeps_loss_metrics_and_optimizer_settings(tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert type(loaded.loss) is type(model.loss)
    assert type(loaded.optimizer) is Adam and loaded.optimizer.clipnorm == 1.0
    x, y = data(seed=4)
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_metadata_is_stored_and_restored(tmp_path):
    model = trained_model()
    vocab = {"chars": ["a", "b", "\n"], "seq_len": 40}
    model.save(tmp_path / "m.npz", metadata=vocab)
    assert load_model(tmp_path / "m.npz").metadata == vocab


def test_model_saved_without_metadata_loads_with_none(tmp_path):
    trained_model().save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").metadata is None


def test_saving_a_loaded_model_again_keeps_its_metadata(tmp_path):
    trained_model().save(tmp_path / "a.npz", metadata={"vocab": "abc"})
    load_model(tmp_path / "a.npz").save(tmp_path / "b.npz")
    assert load_model(tmp_path / "b.npz").metadata == {"vocab": "abc"}


def test_metadata_that_is_not_json_raises_type_error_and_writes_nothing(tmp_path):
    model = trained_model()
    with pytest.raises(TypeError, match="JSON"):
        model.save(tmp_path / "m.npz", metadata={"array": np.zeros(3)})
    assert files_in(tmp_path) == []


def test_uncompiled_model_round_trips_without_optimizer(tmp_path):
    model = Sequential([GRU(3, input_shape=(4, 2)), Dense(1)])
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert not loaded.compiled
    x = np.random.default_rng(0).standard_normal((5, 4, 2))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_compile_false_loads_the_model_uncompiled(tmp_path):
    trained_model().save(tmp_path / "m.npz")
    assert not load_model(tmp_path / "m.npz", compile=False).compiled


def test_save_writes_exactly_the_given_path_and_leaves_no_temporary_file(tmp_path):
    trained_model().save(tmp_path / "model.fastrnn")
    assert files_in(tmp_path) == ["model.fastrnn"]


def test_saved_file_is_a_plain_npz_with_marker_and_json_architecture(tmp_path):
    trained_model().save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert str(f["format"]) == "fastrnn.model"
        assert int(f["version"]) == 1  # what readers before version 2 read: written so for them
        arch = json.loads(str(f["architecture"]))
    assert arch["class_name"] == "Sequential"
    assert [spec["class_name"] for spec in arch["config"]["layers"]] == [
        "Embedding", "Bidirectional", "Dropout", "GRU", "Dense"]


# ------------------------------------------------------------------------------------
# Atomic writes.

def test_failing_write_leaves_the_old_file_intact_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    old = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(saving.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        trained_model().save(path)
    assert path.read_bytes() == old
    assert files_in(tmp_path) == ["m.npz"]


def test_failing_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError("no")

    monkeypatch.setattr(saving.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        trained_model().save(tmp_path / "m.npz")
    assert files_in(tmp_path) == []


def test_saving_over_an_existing_model_replaces_it(tmp_path):
    path = tmp_path / "m.npz"
    Sequential([Dense(2, input_shape=(3,))]).save(path)
    model = trained_model()
    model.save(path)
    assert load_model(path).get_config() == model.get_config()


def test_saving_keeps_an_existing_files_permissions(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"")
    path.chmod(0o600)
    Sequential([Dense(2, input_shape=(3,))]).save(path)
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask-022", "umask-077", "umask-002"])
def test_a_new_file_gets_the_permissions_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        Sequential([Dense(2, input_shape=(3,))]).save(tmp_path / "new.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "new.npz").stat().st_mode & 0o777 == mode


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_saving_to_a_pipe_writes_through_it_and_leaves_the_pipe(tmp_path):
    """A target that is not a regular file (a pipe, /dev/stdout, /dev/null) is written to, not
    renamed over: that would put a plain file in place of the pipe or device."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    received = []
    reader = threading.Thread(target=lambda: received.append(path.read_bytes()), daemon=True)
    reader.start()
    model = trained_model()
    model.save(path)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(path.stat().st_mode)
    (tmp_path / "m.npz").write_bytes(received[0])
    assert load_model(tmp_path / "m.npz").get_config() == model.get_config()
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "pipe"]


def test_saving_through_a_symbolic_link_replaces_the_file_it_points_to(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "m.npz"
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    model = trained_model()
    model.save(link)
    assert link.is_symlink() and link.resolve() == target
    assert load_model(target).get_config() == model.get_config()
    assert files_in(tmp_path / "models") == ["m.npz"]


# ------------------------------------------------------------------------------------
# Files that are not fastrnn models.

def test_missing_file_raises_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing.npz")


def test_truncated_file_raises_value_error(tmp_path):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    data_bytes = path.read_bytes()
    path.write_bytes(data_bytes[:len(data_bytes) // 2])
    with pytest.raises(ValueError, match="not a readable fastrnn model file"):
        load_model(path)


def test_corrupted_bytes_raise_value_error(tmp_path):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    raw = bytearray(path.read_bytes())
    for k in range(200, len(raw) - 200, 97):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError):
        load_model(path)


@pytest.mark.parametrize("text", ["hello", "just some text\n", ""], ids=["5-bytes", "a-line", "empty"])
def test_text_file_is_said_not_to_be_a_model_file_without_mentioning_pickle(tmp_path, text):
    path = tmp_path / "notes.txt"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        load_model(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a fastrnn model file: ")
    assert "pickle" not in message


def test_foreign_npz_without_marker_raises_value_error(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(3))
    with pytest.raises(ValueError, match="format marker"):
        load_model(path)


def test_single_npy_array_raises_value_error(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(3))
    with pytest.raises(ValueError, match="is not a fastrnn model file: it holds a single NumPy array"):
        load_model(path)


def test_file_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, format=np.array("fastrnn.model"), version=np.array(1),
             architecture=np.array([{"class_name": "Sequential"}], dtype=object))
    with pytest.raises(ValueError, match="'architecture' holds Python objects") as raised:
        load_model(path)
    assert "allow_pickle" not in str(raised.value)


def test_newer_format_version_raises_value_error(tmp_path):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["version"] = np.array(saving.VERSION + 1)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="newer"):
        load_model(path)


def test_archive_with_inconsistent_weights_raises_value_error(tmp_path):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert "weight_0001.npy" in names
    arrays["weight_0001"] = np.zeros((2, 2))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="not consistent"):
        load_model(path)


def rewrite_archive(path, change):
    """Re-save the model file at path with change(arrays) applied to its entries."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("architecture", ["[1, 2]", '{"class_name": "Sequential", "config": 3}',
                                          '{"class_name": "Sequential", "config": {"layers": [7]}}',
                                          "[" * 100000 + "]" * 100000],
                         ids=["a-list", "config-not-a-dict", "layer-not-a-dict", "deeply-nested"])
def test_archive_with_a_malformed_architecture_raises_value_error(tmp_path, architecture):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    rewrite_archive(path, lambda a: a.update(architecture=np.array(architecture)))
    with pytest.raises(ValueError):
        load_model(path)


@pytest.mark.parametrize("slot", [np.zeros((7,)), np.array("text")], ids=["wrong-shape", "string"])
def test_optimizer_state_that_does_not_fit_the_weights_raises_value_error_on_load(tmp_path, slot):
    path = tmp_path / "m.npz"
    trained_model().save(path)
    rewrite_archive(path, lambda a: a.update(optimizer_0002=slot))
    with pytest.raises(ValueError, match="not consistent"):
        load_model(path)


@pytest.mark.parametrize("flag_bits, compress_type", [(0x1, None), (0, 99)], ids=["encrypted", "unknown-compression"])
def test_archive_entries_zip_cannot_read_raise_value_error(tmp_path, flag_bits, compress_type):
    """Entries marked encrypted, or packed by a method zipfile does not know, in the central
    directory (where a flipped bit or two can put them)."""
    path = tmp_path / "m.npz"
    trained_model().save(path)
    raw = bytearray(path.read_bytes())
    # The entry's record in the central directory: a signature, flags at +8, the compression
    # method at +10, the name's length at +28 and the name at +46.
    start = 0
    while True:
        record = raw.find(b"PK\x01\x02", start)
        assert record >= 0
        name_length = int.from_bytes(raw[record + 28:record + 30], "little")
        if raw[record + 46:record + 46 + name_length] == b"architecture.npy":
            break
        start = record + 4
    raw[record + 8] |= flag_bits
    if compress_type is not None:
        raw[record + 10:record + 12] = compress_type.to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a readable fastrnn model file"):
        load_model(path)


def test_load_model_is_available_from_the_package():
    assert fastrnn.load_model is load_model


@pytest.mark.parametrize("header, replacement", [(b"(3,)", b"())"), (b"(3,)", b"(3,"),
                                                  (b"'descr'", b"'descr ")])
def test_an_array_header_numpy_cannot_parse_is_a_damaged_file(tmp_path, header, replacement):
    """NumPy's header parser raises SyntaxError or tokenize.TokenError on some damage."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(3))
    raw = buf.getvalue().replace(header, replacement, 1)
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("format.npy", raw)
    with pytest.raises(ValueError, match="not a readable fastrnn model file"):
        fastrnn.load_model(path)
