"""Exporting models for other runtimes: ``model.export(filepath, format="onnx")``.

``fastrnn.export.onnx`` builds the ONNX graph (it needs the ``onnx`` package: ``pip install
"fastrnn[onnx]"``); ``fastrnn.export.graph`` is the description of a model's graph that
exporters walk.
"""
from __future__ import annotations

import os

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx", verbose=None, input_signature=None, *,
                 opset=None, opset_version=None) -> None:
    """Write ``model`` to ``filepath`` in ``format`` (Keras's ``Model.export``).

    opset (or Keras's name for it, opset_version): the ONNX opset, 17 (the default) or later.
    verbose: print where the file went (Keras's default, True). input_signature: not
    supported; the graph takes the model's input with free batch and time axes.
    The file is written atomically: a failed export leaves nothing behind.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if input_signature is not None:
        raise ValueError("input_signature is not supported: the exported graph takes the model's "
                         "input with free batch and time axes")
    if opset is not None and opset_version is not None and opset != opset_version:
        raise ValueError(f"opset={opset!r} and opset_version={opset_version!r} disagree; give one")
    opset = opset if opset is not None else opset_version
    path = _writable_path(filepath)
    try:
        from fastrnn.export import onnx as onnx_export
    except ImportError as err:
        raise ImportError(f"ONNX export needs the onnx package ({err}); install it with "
                          'pip install "fastrnn[onnx]"') from err
    onnx_export.save_onnx(model, path, onnx_export.DEFAULT_OPSET if opset is None else opset)
    if verbose is None or verbose:
        print(f"Saved artifact at '{path}'.")


def _writable_path(filepath) -> str:
    """filepath as a str, once it names a file that can be made (clear errors otherwise)."""
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath must be a str or os.PathLike, got {type(filepath).__name__}")
    path = os.fspath(filepath)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("filepath must not be empty")
    if os.path.isdir(path):
        raise IsADirectoryError(f"filepath {path!r} is a directory; give a file name, e.g. model.onnx")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    return path
