"""Saving and loading whole models: one ``.npz`` file, written atomically, read without pickle.

The file is a NumPy ``.npz`` archive (``np.savez``) holding only plain arrays:

- ``format``: the marker ``"fastrnn.model"``; ``version``: the format version (int);
- ``architecture``: JSON, the model's config (layer classes and their arguments);
- ``compile``: JSON, the optimizer, loss and metrics (``null`` if not compiled);
- ``metadata``: JSON, the user's dict (``null`` if none);
- ``weight_0000``, ``weight_0001``, ...: the weights in Keras's layout (``get_weights()``);
- ``optimizer_0000``, ...: the optimizer's state (``Optimizer.get_state()``).

Writing goes to a temporary file in the destination's folder, which is flushed, synced
and then renamed over the destination (``os.replace``), so a crash or error never leaves
a half-written model behind; the temporary file is removed on any failure.
Reading uses ``allow_pickle=False``; a file that is not such an archive, is truncated
or lacks the marker raises ValueError.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
import zipfile
import zlib

import numpy as np

FORMAT = "fastrnn.model"
VERSION = 1


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
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "architecture": np.array(json.dumps({"class_name": type(model).__name__,
                                             "config": model.get_config()})),
        "compile": np.array(json.dumps(_compile_config(model))),
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
    from fastrnn import losses, metrics, optimizers

    metric_specs = []
    for m in model.metric_ids:
        if isinstance(m, str):
            metric_specs.append(m)
        elif isinstance(m, metrics.Metric):
            metric_specs.append(metrics.serialize(m))
        else:
            raise ValueError(f"cannot save metric {m!r}: only names and Metric instances can be "
                             "saved; compile with a name or a fastrnn.metrics.Metric")
    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": losses.serialize(model.loss),
            "metrics": metric_specs}


def write_atomically(path: str, write) -> None:
    """Call ``write(f)`` on a new binary file beside ``path`` and rename it over ``path``: the
    file at ``path`` is then the whole of what ``write`` wrote, or as it was before. A symbolic
    link keeps pointing where it did, and the file it points to is the one replaced.

    A target that exists and is not a regular file (``/dev/null``, a pipe, a terminal) is written
    to directly: renaming over it would replace the device or pipe itself."""
    if is_special_file(path):
        with open(path, "wb") as f:
            write(f)
        return
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _sync_folder(folder)


def is_special_file(path) -> bool:
    """Whether ``path`` exists and is not a regular file (a device, a pipe, a terminal), which
    ``write_atomically`` writes into rather than replaces."""
    return os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode)


def _file_mode(path):
    """Keep an existing file's permissions; a new file gets what ``open`` would give it, rw for
    all less the process's umask (mkstemp's temporary file is rw for its owner only)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: from /proc where Linux shows it, else by setting it and back (which
    another thread creating a file in between would see)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder):
    """Make the rename itself durable (POSIX); not possible on every platform."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_model(path, custom_objects=None, compile=True):
    """Read a model saved by ``model.save(path)``.

    Returns the model with its weights, ``metadata`` set, and (with ``compile=True``)
    compiled with the saved loss, metrics and optimizer, whose state is restored so
    training goes on exactly as if the model had not been saved.
    custom_objects: name -> class, for user-defined losses, metrics or optimizers.
    Raises ValueError for a file that is not a fastrnn model (corrupt, truncated,
    foreign); FileNotFoundError if there is no file.
    """
    path = os.fspath(path)
    contents = _read_archive(path)
    try:
        model = _build_model(contents)
        if compile and contents["compile"] is not None:
            _compile(model, contents, custom_objects)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: the fastrnn model file is not consistent: {err!r}") from err
    model.metadata = contents["metadata"]
    return model


def _read_archive(path) -> dict:
    """The archive's entries, JSON decoded; ValueError for anything not a fastrnn model file."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with data:
            names = set(data.files)
            if "format" not in names or str(data["format"]) != FORMAT:
                raise ValueError(f"no {FORMAT!r} format marker")
            version = int(data["version"])
            if version > VERSION:
                raise ValueError(f"format version {version} is newer than this fastrnn "
                                 f"reads ({VERSION})")
            contents = {key: json.loads(str(data[key]))
                        for key in ("architecture", "compile", "metadata")}
            contents["weights"] = [data[k] for k in sorted(n for n in names if n.startswith("weight_"))]
            contents["optimizer"] = [data[k] for k in sorted(n for n in names if n.startswith("optimizer_"))]
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError,
            NotImplementedError, RuntimeError) as err:  # zipfile: unknown compression, encryption
        raise ValueError(f"{path} is not a readable fastrnn model file: {err}") from err
    return contents


def _build_model(contents):
    from fastrnn.models import Sequential

    architecture = contents["architecture"]
    if architecture.get("class_name") != "Sequential":
        raise ValueError(f"unknown model class {architecture.get('class_name')!r}")
    model = Sequential.from_config(architecture["config"])
    if contents["weights"]:
        model.set_weights(contents["weights"])
    return model


def _compile(model, contents, custom_objects):
    from fastrnn import losses, metrics, optimizers

    spec = contents["compile"]
    metric_ids = [m if isinstance(m, str) else metrics.deserialize(m, custom_objects)
                  for m in spec["metrics"]]
    model.compile(optimizer=optimizers.deserialize(spec["optimizer"], custom_objects),
                  loss=losses.deserialize(spec["loss"], custom_objects),
                  metrics=metric_ids)
    if contents["optimizer"]:
        model.optimizer.set_state(contents["optimizer"], model.trainable_params)
