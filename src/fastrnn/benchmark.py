"""The former home of ``fastrnn bench``, now the ``fastrnn.bench`` package.

``python -m fastrnn.benchmark`` still runs ``fastrnn bench``, and the names this module held
(``fastrnn.benchmark.make_case``, ``SHAPES``, ``run_benchmark``, ...) still resolve, each to
its new place in ``fastrnn.bench``'s modules.
"""
from __future__ import annotations

import importlib
import sys

from fastrnn.bench.cli import main

_MODULES = ("cases", "timing", "runners", "machine", "memory", "report", "grid", "cli")
_RENAMED = {"thread_count_argument": "fastrnn.argtypes.thread_count"}


def __getattr__(name: str):
    if name in _RENAMED:
        module, _, new_name = _RENAMED[name].rpartition(".")
        return getattr(importlib.import_module(module), new_name)
    for module in _MODULES:
        found = importlib.import_module(f"fastrnn.bench.{module}")
        if hasattr(found, name) and not name.startswith("__"):
            return getattr(found, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
