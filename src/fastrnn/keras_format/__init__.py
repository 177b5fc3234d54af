"""Keras 3's own files, read and written without Keras: ``.keras`` archives and ``.weights.h5``.

A ``.keras`` file is a zip archive (entries stored, not compressed) of

- ``metadata.json``: ``{"keras_version", "date_saved"}`` (fastrnn writes the Keras version
  whose format it follows, and ``"saved_by": "fastrnn <version>"``);
- ``config.json``: the model, serialized as Keras serializes objects (``config``), with its
  ``compile_config`` and ``build_config``; translated by ``keras_format.config``;
- ``model.weights.h5``: the variables of each layer and of the optimizer, in HDF5, laid out as
  ``keras_format.store`` describes.

A ``.weights.h5`` file is that HDF5 file alone. HDF5 is read and written with h5py (the
``fastrnn[keras]`` extra); Keras itself is never imported.

A model Keras saved loads with its weights and, with ``compile=True``, its compile config and
optimizer state (so training resumes); a Keras layer, option, optimizer or loss that fastrnn
lacks is a ValueError naming it. A file that is not such an archive, or whose parts do not fit
together, is a ValueError naming the file.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
import zlib

from fastrnn.files import NotThisKind, reading
from fastrnn.keras_format import config as _config
from fastrnn.keras_format import store as _store

KERAS_VERSION = "3.15.1"  # the Keras version whose file format is written
CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
_MAX_JSON = 64 << 20  # bytes: a config or metadata larger than this is not one Keras wrote

__all__ = ["is_keras_file", "is_keras_weights_file", "load_model", "save_model",
           "load_weights", "save_weights"]


def is_keras_file(path) -> bool:
    """Whether ``path`` names a Keras model archive (``….keras``)."""
    return os.fspath(path).endswith(".keras")


def is_keras_weights_file(path) -> bool:
    """Whether ``path`` names a Keras weights file (``….weights.h5``)."""
    return os.fspath(path).endswith(".weights.h5")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras files are HDF5 inside: reading and writing them needs h5py "
                          "(pip install 'fastrnn[keras]')") from None
    return h5py


# What a damaged archive or HDF5 file can make zipfile, h5py or json raise.
_DAMAGE = (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError,
           RuntimeError, OverflowError, NotImplementedError, UnicodeDecodeError)


# -- reading ---------------------------------------------------------------------------------------

def _read_member(zf, name, limit, where) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(f"{where}: {name} declares {info.file_size:,} bytes, more than a Keras "
                         f"file's {name} holds")
    data = zf.read(name)
    if len(data) != info.file_size:
        raise ValueError(f"{where}: {name} is truncated")
    return data


def _read_json(zf, name, where):
    try:
        return json.loads(_read_member(zf, name, _MAX_JSON, where).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: {name} is not JSON: {err}") from None


def _read_archive(path):
    """(config, metadata, weights bytes) of a ``.keras`` archive."""
    with open(path, "rb") as f:
        if not zipfile.is_zipfile(f):
            raise NotThisKind("it is not a zip archive, which a .keras file is")
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            names = set(zf.namelist())
            if CONFIG not in names:
                raise NotThisKind(f"it is a zip archive without the {CONFIG!r} of a Keras model")
            if WEIGHTS not in names:
                raise ValueError(f"the archive has no {WEIGHTS!r} (fastrnn reads Keras's HDF5 "
                                 "weights; an archive with model.weights.npz is not supported)")
            config = _read_json(zf, CONFIG, path)
            metadata = _read_json(zf, METADATA, path) if METADATA in names else {}
            info = zf.getinfo(WEIGHTS)
            # A weights file is never much smaller stored than it is (Keras stores it as it is).
            if info.compress_size and info.file_size > 1100 * info.compress_size + (1 << 16):
                raise ValueError(f"{WEIGHTS} declares {info.file_size:,} bytes from "
                                 f"{info.compress_size:,}")
            weights = _read_member(zf, WEIGHTS, info.file_size, path)
    return config, metadata, weights


def load_model(path, custom_objects=None, compile=True):
    """A fastrnn model from the Keras archive at ``path``: its architecture, weights and, with
    ``compile=True``, its compile config and optimizer state. ``metadata`` is set to the
    archive's ``metadata.json``."""
    path = os.fspath(path)
    h5py = _h5py()
    with reading(path, "Keras model", _DAMAGE):
        spec, metadata, weights = _read_archive(path)
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: {CONFIG} is not a serialized Keras model")
    model = _config.model_from_keras(spec)
    _build(model, spec, path)
    compile_config = spec.get("compile_config")
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            _set_weights(model, _store.read_weights(h5, model, path), path)
            if compile and compile_config:  # Keras writes {} for a model not compiled
                _compile(model, compile_config, custom_objects, path)
                _store.read_optimizer(h5, model, path)
    except _DAMAGE as err:
        if isinstance(err, ValueError) and str(err).startswith(path):
            raise
        raise ValueError(f"{path}: the Keras model's weights do not load: {err}") from err
    user = metadata.get("metadata") if isinstance(metadata, dict) else None
    model.metadata = user if isinstance(user, dict) else None
    return model


def _set_weights(model, weights, path) -> None:
    try:
        model.set_weights(weights)
    except ValueError as err:
        raise ValueError(f"{path}: the weights in the file do not fit model {model.name!r}: {err}") from None


def _compile(model, compile_config, custom_objects, path) -> None:
    try:
        model.compile(**_config.compile_from_keras(compile_config, custom_objects))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: the model's compile config is not one fastrnn can use: {err} "
                         "(load_model(..., compile=False) loads the model without it)") from None


def _build(model, spec, path) -> None:
    """Build a Sequential model that the config builds only by its ``build_config``."""
    if model.built:
        return
    shape = (spec.get("build_config") or {}).get("input_shape")
    if shape is None:
        raise ValueError(f"{path}: the Keras model was saved unbuilt, so the file holds no "
                         "weights to load")
    model.build(tuple(shape))


def load_weights(model, path) -> None:
    """Set ``model``'s weights (and, for a compiled model, its optimizer state when the file has
    one) from a Keras ``.weights.h5`` file; no weight changes when they do not fit."""
    path = os.fspath(path)
    h5py = _h5py()
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: build it (or call it on data) before "
                         f"loading the weights in {path}")
    with reading(path, "Keras weights", _DAMAGE):
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                raise NotThisKind("it is not an HDF5 file, which a .weights.h5 file is")
        with h5py.File(path, "r") as h5:
            _set_weights(model, _store.read_weights(h5, model, path), path)
            if model.compiled:
                _store.read_optimizer(h5, model, path)


# -- writing ---------------------------------------------------------------------------------------

def _check_keras_has(model) -> None:
    """ValueError naming the first layer Keras could not load: an LSTM with peepholes, a layer
    with zoneout."""
    from fastrnn.layers import variables
    from fastrnn.layers.recurrent import Recurrent
    from fastrnn.modes import PARAMS

    for layer in variables.walk([model]):
        if isinstance(layer, Recurrent) and PARAMS[layer.mode]:
            raise ValueError(f"{layer.who} has peepholes, which Keras's LSTM has not, so a Keras "
                             "file cannot hold it; save the model as .npz instead")
        if isinstance(layer, Recurrent) and layer.zoneout > 0:
            raise ValueError(f"{layer.who} has zoneout={layer.zoneout}, which Keras's layers have "
                             "not, so a Keras file cannot hold it; save the model as .npz instead")


def _weights_bytes(model) -> bytes:
    """The HDF5 weights file of ``model`` (and of its optimizer, if compiled)."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        _store.write_weights(h5, model)
        if model.compiled:
            _store.write_optimizer(h5, model)
    return buffer.getvalue()


def model_config(model) -> dict:
    """The ``config.json`` of ``model``: its serialized form, compile and build configs."""
    spec = _config.model_to_keras(model)
    spec["compile_config"] = _config.compile_to_keras(model) if model.compiled else {}
    if "build_config" not in spec:
        spec["build_config"] = _build_config(model)
    return spec


def _build_config(model):
    shapes = [list(layer.batch_shape) for layer in model._graph.input_layers] \
        if getattr(model, "_graph", None) is not None else None
    if not shapes:
        return None
    return {"input_shape": shapes[0] if len(shapes) == 1 else shapes}


def _metadata(metadata) -> dict:
    from fastrnn import __version__

    out = {"keras_version": KERAS_VERSION, "saved_by": f"fastrnn {__version__}",
           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    if metadata is not None:
        out["metadata"] = metadata
    return out


def save_model(model, path, metadata=None) -> None:
    """Write ``model`` to ``path`` as a Keras archive, atomically; ``metadata`` (a JSON dict)
    goes into ``metadata.json``, which Keras does not read."""
    from fastrnn.files import write_atomically

    if not model.built:
        raise ValueError(f"model {model.name!r} is not built, so it has no weights to save yet: a "
                         "Keras file holds a built model")
    _check_keras_has(model)
    config_json = json.dumps(model_config(model))
    metadata_json = json.dumps(_metadata(metadata))
    weights = _weights_bytes(model)

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(METADATA, metadata_json)
            zf.writestr(CONFIG, config_json)
            zf.writestr(WEIGHTS, weights)

    write_atomically(os.fspath(path), write)


def save_weights(model, path) -> None:
    """Write ``model``'s weights (and its optimizer's state, if compiled) as Keras's
    ``.weights.h5``, atomically."""
    from fastrnn.files import write_atomically

    if not model.built:
        raise ValueError(f"model {model.name!r} is not built, so it has no weights to save yet")
    _check_keras_has(model)
    weights = _weights_bytes(model)
    write_atomically(os.fspath(path), lambda f: f.write(weights))
