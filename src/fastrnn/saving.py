"""Saving and loading whole models: one ``.npz`` file, written atomically, read without pickle.

The file is a NumPy ``.npz`` archive (``np.savez``) holding only plain arrays:

- ``format``: the marker ``"fastrnn.model"``; ``version``: the format version (int): 1, or 2
  for what version 1 did not have (functional and subclassed models, losses and metrics per
  output), so that an older fastrnn says the file is newer than it reads;
- ``architecture``: JSON, ``{"class_name", "config"}``: the model's class and config (layer
  classes and their arguments; a functional model's graph in Keras's ``get_config`` form),
  and for a subclassed model ``build_input_shape``, the input shape(s) to build it for;
- ``compile``: JSON, the optimizer, loss(es), loss weights and metrics (``null`` if not
  compiled). Per-output losses or metrics are a list (one per output) or ``{"by_output":
  {name: ...}}``;
- ``metadata``: JSON, the user's dict (``null`` if none);
- ``weight_0000``, ``weight_0001``, ...: the weights in Keras's layout (``get_weights()``);
- ``optimizer_0000``, ...: the optimizer's state (``Optimizer.get_state()``).

Every array is stored uncompressed, as ``np.savez`` writes it.

Writing goes to a temporary file in the destination's folder, which is flushed, synced
and then renamed over the destination (``os.replace``), so a crash or error never leaves
a half-written model behind; the temporary file is removed on any failure, and one left by a
killed process is removed by the next save in that folder (``write_atomically``).

Reading never unpickles, and checks what each entry declares (its size in the archive, the
shape and dtype in its header) against the file before setting memory aside for it, and the
sizes the architecture declares against the weights stored before building the model. A file
that is not such an archive, is damaged or truncated, lacks the marker, or whose parts do not
fit together raises ValueError naming it.

``save_weights`` writes the weights alone (marker ``"fastrnn.weights"``), for models whose
architecture cannot be written as a config; ``load_weights`` reads them (or a model file's),
with the same checks.

A path ending in ``.keras`` (or, for weights, ``.weights.h5``) is Keras 3's own format
instead, read and written by ``fastrnn.keras_format`` (which needs h5py).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from fastrnn import keras_format
from fastrnn.files import NotThisKind, reading, write_atomically

FORMAT = "fastrnn.model"
WEIGHTS_FORMAT = "fastrnn.weights"
VERSION = 2


def save_model(model, path, metadata=None) -> None:
    """Write ``model`` to ``path`` atomically; see the module docstring for the contents.

    metadata: None or a JSON-serialisable dict (TypeError otherwise).
    """
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    try:
        metadata_json = json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from None
    if keras_format.is_keras_file(path):
        keras_format.save_model(model, path, metadata=metadata)
        return
    architecture = {"class_name": type(model).__name__, "config": model.get_config()}
    if getattr(model, "_graph", None) is None and type(model).__name__ != "Sequential" \
            and model._build_shapes is not None:
        architecture["build_input_shape"] = model._build_shapes
    compile_config = _compile_config(model)
    version = 1 if architecture["class_name"] == "Sequential" and _is_v1_compile(compile_config) else 2
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(version),
        "architecture": np.array(json.dumps(architecture)),
        "compile": np.array(json.dumps(compile_config)),
        "metadata": np.array(metadata_json),
    }
    if model.built:
        for k, w in enumerate(model.get_weights()):
            arrays[f"weight_{k:04d}"] = w
    if model.compiled:
        for k, s in enumerate(model.optimizer.get_state()):
            arrays[f"optimizer_{k:04d}"] = s
    write_atomically(os.fspath(path), lambda f: np.savez(f, **arrays))


def _compile_config(model):
    if not model.compiled:
        return None
    from fastrnn import optimizers

    config = {"optimizer": optimizers.serialize(model.optimizer),
              "loss": _per_output(model.loss, _loss_spec),
              "metrics": _per_output(model.metric_ids, _metric_spec)}
    if model.loss_weights is not None:
        config["loss_weights"] = model.loss_weights
    if getattr(model, "weighted_metric_ids", None) is not None:
        config["weighted_metrics"] = _per_output(model.weighted_metric_ids, _metric_spec)
    return config


def _is_v1_compile(config) -> bool:
    """Whether version 1 readers understand it: one loss, a flat list of metrics."""
    return config is None or (isinstance(config["loss"], dict) and "class_name" in config["loss"]
                              and isinstance(config["metrics"], list)
                              and not any(isinstance(m, list) for m in config["metrics"])
                              and "loss_weights" not in config and "weighted_metrics" not in config)


def _per_output(value, leaf):
    """A loss or metrics argument as JSON: lists stay lists, a dict by output becomes
    ``{"by_output": ...}``, and each leaf is written by ``leaf``."""
    if isinstance(value, (list, tuple)):
        return [_per_output(v, leaf) for v in value]
    if isinstance(value, dict):
        return {"by_output": {k: _per_output(v, leaf) for k, v in value.items()}}
    return None if value is None else leaf(value)


def _loss_spec(loss):
    from fastrnn import losses

    return losses.serialize(loss)


def _metric_spec(m):
    from fastrnn import metrics

    if isinstance(m, str):
        return m
    if isinstance(m, metrics.Metric):
        return metrics.serialize(m)
    raise ValueError(f"cannot save metric {m!r}: only names and Metric instances can be "
                     "saved; compile with a name or a fastrnn.metrics.Metric")


def _read_per_output(spec, leaf):
    if isinstance(spec, list):
        return [_read_per_output(v, leaf) for v in spec]
    if isinstance(spec, dict) and "by_output" in spec:
        return {k: _read_per_output(v, leaf) for k, v in spec["by_output"].items()}
    return None if spec is None else leaf(spec)


def load_model(path, custom_objects=None, compile=True):
    """Read a model saved by ``model.save(path)``.

    Returns the model with its weights, ``metadata`` set, and (with ``compile=True``)
    compiled with the saved loss, metrics and optimizer, whose state is restored so
    training goes on exactly as if the model had not been saved.
    custom_objects: name -> class, for user-defined losses, metrics, optimizers or model
    subclasses (a Model subclass defined before loading is found by its name).
    Raises ValueError naming the file for one that is not a fastrnn model (foreign, corrupt,
    truncated, or whose architecture does not match its weights); FileNotFoundError if there
    is no file.
    """
    path = os.fspath(path)
    if keras_format.is_keras_file(path) and not _is_own_archive(path):
        return keras_format.load_model(path, custom_objects=custom_objects, compile=compile)
    contents = _read_archive(path)
    try:
        _check_declared_sizes(contents)
        model = _build_model(contents, custom_objects)
        if compile and contents["compile"] is not None:
            _compile(model, contents, custom_objects)
    except MemoryError as err:
        raise ValueError(f"{path}: the model this fastrnn model file describes does not fit in "
                         f"memory{': ' if str(err) else ''}{err}") from None
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: the fastrnn model file is not consistent: {err!r}") from err
    model.metadata = contents["metadata"]
    return model


def _is_own_archive(path) -> bool:
    """Whether the file is fastrnn's own ``.npz`` (which a ``.keras`` name held before fastrnn
    wrote Keras's format there)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "format.npy" in zf.namelist() and "config.json" not in zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


# What a damaged archive can make zipfile, NumPy's header parser (its tokenizer and
# literal_eval included) or json raise.
_DAMAGE = (OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, KeyError, ValueError,
           TypeError, NotImplementedError, RuntimeError, OverflowError, SyntaxError,
           tokenize.TokenError)


def _read_archive(path) -> dict:
    """The archive's entries, JSON decoded; ValueError naming ``path`` for anything that is not
    a readable fastrnn model file."""
    with reading(path, "fastrnn model", _DAMAGE), open(path, "rb") as f:
        return _read_entries(f)


@contextlib.contextmanager
def _archive(f, markers=(FORMAT,)):
    """The open archive ``f`` as (entry names, read(name)), each entry checked against the file
    before any memory is set aside for it; NotThisKind unless its marker is one of ``markers``."""
    file_size = os.fstat(f.fileno()).st_size
    start = f.read(len(np.lib.format.MAGIC_PREFIX))
    f.seek(0)
    if start == np.lib.format.MAGIC_PREFIX:
        raise NotThisKind("it holds a single NumPy array (.npy), not the .npz archive model.save writes")
    if not start.startswith(b"PK\x03\x04"):  # how every zip archive with an entry begins
        raise NotThisKind("it is not an .npz (zip) archive, which is what model.save writes")
    with zipfile.ZipFile(f) as archive:
        entries = {info.filename[:-4]: info for info in archive.infolist()
                   if info.filename.endswith(".npy")}

        def read(name):
            if name not in entries:
                raise ValueError(f"the entry {name!r} is missing")
            return _read_array(archive, entries[name], name, file_size)

        if "format" not in entries or _text(read("format"), "format") not in markers:
            raise NotThisKind(f"it is an .npz archive without the {markers[0]!r} format marker")
        yield entries, read


def _read_entries(f) -> dict:
    """Read the entries of the open model archive ``f``."""
    with _archive(f) as (entries, read):
        version = read("version")
        if version.shape != () or version.dtype.kind not in "iu":
            raise ValueError("the format version is not an integer")
        if int(version) > VERSION:
            raise ValueError(f"format version {int(version)} is newer than this fastrnn "
                             f"reads ({VERSION})")
        contents = {key: json.loads(_text(read(key), key))
                    for key in ("architecture", "compile", "metadata")}
        contents["weights"] = [read(name) for name in _numbered(entries, "weight")]
        contents["optimizer"] = [read(name) for name in _numbered(entries, "optimizer")]
    return contents


def _numbered(entries: dict, prefix: str) -> list:
    """The names ``<prefix>_0000``, ``<prefix>_0001``, ... in the archive, in number order;
    ValueError when a number is missing."""
    numbers = {}
    for name in entries:
        head, _, number = name.rpartition("_")
        if head == prefix and number.isascii() and number.isdigit():
            numbers[int(number)] = name
    if sorted(numbers) != list(range(len(numbers))):
        missing = min(set(range(len(numbers))) - set(numbers))
        raise ValueError(f"the {prefix} entries are numbered from 0 without gaps, but "
                         f"{prefix}_{missing:04d} is missing")
    return [numbers[k] for k in range(len(numbers))]


def _read_array(archive, info, name: str, file_size: int) -> np.ndarray:
    """One ``.npy`` entry. Its header's shape and dtype are checked against the entry's size,
    and that against the file, before the array is allocated: a damaged or crafted header
    cannot make it set aside more memory than the file holds. Entries must be stored
    uncompressed, as ``np.savez`` writes them, so nothing inflates either."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"entry {name!r} is compressed; model.save stores every array "
                         "uncompressed")
    if info.flag_bits & 0x1:
        raise ValueError(f"entry {name!r} is encrypted")
    if info.file_size != info.compress_size or info.header_offset + info.compress_size > file_size:
        raise ValueError(f"entry {name!r} declares {info.file_size} bytes, more than the file "
                         "holds for it")
    with archive.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"entry {name!r} is a .npy array of version {version}, which "
                             "model.save does not write")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(fp)
        if dtype.hasobject:
            raise ValueError(f"entry {name!r} holds Python objects (pickled data); a fastrnn "
                             "model file holds plain arrays only, and fastrnn never unpickles")
        if any(n < 0 for n in shape):
            raise ValueError(f"entry {name!r} declares the shape {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if fp.tell() + nbytes != info.file_size:
            raise ValueError(f"entry {name!r} declares a {dtype} array of shape {shape} "
                             f"({nbytes} bytes), but holds {info.file_size - fp.tell()} bytes "
                             "of data")
        data = bytearray(nbytes)
        if fp.readinto(data) != nbytes or fp.read(1):  # reading to the end checks the CRC
            raise ValueError(f"entry {name!r} is shorter than its header says")
    if dtype.itemsize == 0:
        return np.zeros(shape, dtype)
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _text(array: np.ndarray, name: str) -> str:
    if array.shape != () or array.dtype.kind != "U":
        raise ValueError(f"entry {name!r} is not a text")
    return str(array)


def _check_declared_sizes(contents) -> None:
    """Before building: ValueError when the architecture declares layers that would hold more
    weights than the file stores. Building allocates and initialises every weight, so a
    damaged ``units`` or ``input_dim`` must be caught here, not by running out of memory."""
    stored = sum(math.prod(w.shape) for w in contents["weights"])
    if stored == 0 and not _would_build(contents["architecture"]):
        return  # an unbuilt model: nothing is allocated until it sees data
    needed = sum(_FEWEST_WEIGHTS[spec["class_name"]](spec["config"])
                 for spec in _layer_specs(contents["architecture"])
                 if spec["class_name"] in _FEWEST_WEIGHTS)
    if needed > stored:
        raise ValueError(f"the architecture declares layers of at least {needed:,} weights, "
                         f"but the file holds {stored:,}")


def _size(config: dict, key: str) -> int:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# The fewest weights a built layer of these classes holds, from its config alone: Dense's
# bias (units,), the recurrent kernels (H, G*H), Embedding's table (input_dim, output_dim).
_FEWEST_WEIGHTS = {
    "Dense": lambda c: _size(c, "units") if c.get("use_bias", True) else 0,
    "SimpleRNN": lambda c: _size(c, "units") ** 2,
    "LSTM": lambda c: 4 * _size(c, "units") ** 2,
    "GRU": lambda c: 3 * _size(c, "units") ** 2,
    "Embedding": lambda c: _size(c, "input_dim") * _size(c, "output_dim"),
}


def _layer_specs(architecture):
    """Every ``{"class_name": ..., "config": {...}}`` in the architecture, wrapped layers
    included (walked without recursion: the JSON may be deeply nested)."""
    pending = [architecture.get("config")]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                yield item
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _would_build(architecture) -> bool:
    """Whether loading builds the model, and so allocates its weights: a functional model (its
    Inputs have shapes) or a subclassed one saved with its input shapes always; a Sequential
    one when it was built, or its first layer declares an input shape."""
    config = architecture.get("config") if isinstance(architecture, dict) else None
    if not isinstance(config, dict):
        return False
    if "input_layers" in config or architecture.get("build_input_shape") is not None:
        return True
    if config.get("build_input_shape") is not None:
        return True
    layers = config.get("layers")
    first = layers[0] if isinstance(layers, list) and layers else None
    if not isinstance(first, dict) or not isinstance(first.get("config"), dict):
        return False
    return first.get("class_name") == "InputLayer" or any(
        first["config"].get(key) is not None for key in ("batch_input_shape", "input_shape", "shape"))


def _build_model(contents, custom_objects):
    architecture = contents["architecture"]
    cls = _model_class(architecture.get("class_name"), custom_objects)
    model = cls.from_config(architecture["config"])
    shapes = architecture.get("build_input_shape")
    if shapes is not None and not model.built:
        model.build(shapes)
    if contents["weights"]:
        model.set_weights(contents["weights"])
    return model


def _model_class(name, custom_objects):
    """The model class a file names: from custom_objects, fastrnn's, or a Model subclass defined
    in this process; ValueError otherwise."""
    from fastrnn.layers.base import _LAYER_CLASSES
    from fastrnn.models import Model

    cls = (custom_objects or {}).get(name) or _LAYER_CLASSES.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ValueError(f"unknown model class {name!r}: a subclassed model's class must be defined "
                         f"(imported) before loading, or given as custom_objects={{{name!r}: ...}}")
    return cls


def _compile(model, contents, custom_objects):
    from fastrnn import losses, metrics, optimizers

    spec = contents["compile"]
    metric_ids = _read_per_output(spec["metrics"], lambda m: m if isinstance(m, str)
                                  else metrics.deserialize(m, custom_objects))
    weighted = spec.get("weighted_metrics")
    if weighted is not None:
        weighted = _read_per_output(weighted, lambda m: m if isinstance(m, str)
                                    else metrics.deserialize(m, custom_objects))
    model.compile(optimizer=optimizers.deserialize(spec["optimizer"], custom_objects),
                  loss=_read_per_output(spec["loss"], lambda m: losses.deserialize(m, custom_objects)),
                  metrics=metric_ids, loss_weights=spec.get("loss_weights"),
                  weighted_metrics=weighted)
    if contents["optimizer"]:
        model.optimizer.set_state(contents["optimizer"], model.trainable_params)


def save_weights(model, path) -> None:
    """Write ``model.get_weights()`` to ``path`` atomically (marker ``"fastrnn.weights"``)."""
    if keras_format.is_keras_weights_file(path):
        keras_format.save_weights(model, path)
        return
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built, so it has no weights to save yet")
    arrays = {"format": np.array(WEIGHTS_FORMAT), "version": np.array(1)}
    for k, w in enumerate(model.get_weights()):
        arrays[f"weight_{k:04d}"] = w
    write_atomically(os.fspath(path), lambda f: np.savez(f, **arrays))


def load_weights(model, path) -> None:
    """Set ``model``'s weights from a ``save_weights`` (or ``save``) file; ValueError naming the
    file for one that is neither, and for weights that do not fit (no weight is changed then)."""
    path = os.fspath(path)
    if keras_format.is_keras_weights_file(path):
        keras_format.load_weights(model, path)
        return
    if keras_format.is_keras_file(path):
        raise ValueError(f"{path}: load_weights reads a .weights.h5 file (or fastrnn's own); for a "
                         ".keras archive use fastrnn.load_model")
    with reading(path, "fastrnn weights", _DAMAGE), open(path, "rb") as f:
        with _archive(f, (WEIGHTS_FORMAT, FORMAT)) as (entries, read):
            weights = [read(name) for name in _numbered(entries, "weight")]
    model.set_weights(weights)
