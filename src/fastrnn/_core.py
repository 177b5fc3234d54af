"""Load the compiled kernels built for the best instruction-set level this CPU runs.

The package ships the kernels once per x86-64 level, each in a module of its own
(``_kernels_x86_64``, ``_kernels_x86_64_v3`` with AVX2/FMA, ``_kernels_x86_64_v4`` with
AVX-512), and the Python bindings once, in ``_bindings``. The bindings tell which levels the CPU
and operating system support; the best of those is imported, wrapped as a ``_bindings.Kernels``
and its methods become this module's functions.

``FASTRNN_ISA`` (an environment variable, read at import) forces a level: ``x86-64``,
``x86-64-v3`` or ``x86-64-v4``. A build made for one machine only (``FASTRNN_ISA_LEVELS=native``)
or for a CPU other than x86-64 has a single module, which is used as it is; ``FASTRNN_ISA`` may
then name only that module's level (``native`` or ``generic``).
"""
from __future__ import annotations

import os
from importlib import import_module
from importlib.util import find_spec

from fastrnn import _bindings

#: Levels from best to baseline, with the module that holds each.
LEVELS = {"x86-64-v4": "_kernels_x86_64_v4", "x86-64-v3": "_kernels_x86_64_v3", "x86-64": "_kernels_x86_64"}
_SINGLE = ["_kernels_native", "_kernels_generic"]


def _exists(module_name) -> bool:
    # Only looked up, never imported: a module built for AVX-512 may not even load elsewhere.
    return find_spec(f"fastrnn.{module_name}") is not None


def _load(module_name):
    return import_module(f"fastrnn.{module_name}") if _exists(module_name) else None


def available_levels() -> dict:
    """{level: supported by this CPU} for every level this build has a module for."""
    if not _exists(LEVELS["x86-64"]):
        return {}
    supported = dict(_bindings.cpu_supports())
    return {level: bool(supported.get(level)) for level, name in LEVELS.items() if _exists(name)}


def _choose():
    forced = os.environ.get("FASTRNN_ISA", "").strip()
    levels = available_levels()
    if not levels:
        for name in _SINGLE:
            module = _load(name)
            if module is None:
                continue
            level = name.removeprefix("_kernels_")
            if forced and forced != level:
                raise ImportError(f"FASTRNN_ISA={forced!r}: this build has only the {level!r} kernels")
            return module
        raise ImportError("fastrnn: no compiled kernels found; reinstall with `pip install .`")
    if forced:
        if forced not in levels:
            raise ImportError(f"FASTRNN_ISA={forced!r}: this build has levels {sorted(levels)}")
        if not levels[forced]:
            raise ImportError(f"FASTRNN_ISA={forced!r}: this CPU does not support that level")
        return _load(LEVELS[forced])
    for level, ok in levels.items():  # best first
        if ok:
            return _load(LEVELS[level])
    raise ImportError("fastrnn: this CPU supports none of the built levels")


_at = {}


def _kernels(module):
    if module.__name__ not in _at:
        _at[module.__name__] = _bindings.Kernels(module.level)
    return _at[module.__name__]


def kernels_at(level: str):
    """The kernels of ``level`` (a key of ``available_levels()`` that this CPU supports), beside
    the ones in use: for comparing levels. Cells and workspaces are shared by every level."""
    if not available_levels().get(level):
        raise ValueError(f"level {level!r} is not built or not supported by this CPU")
    return _kernels(_load(LEVELS[level]))


kernels = _kernels(_choose())
_bindings.use(kernels)
Cell = _bindings.Cell
Workspace = _bindings.Workspace
cell_kinds = kernels.cell_kinds
activations = kernels.activations
forward = kernels.forward
backward = kernels.backward
set_num_threads = kernels.set_num_threads
get_num_threads = kernels.get_num_threads
build_info = kernels.build_info
plan = kernels.plan
matmul = kernels.matmul
cached_bytes = _bindings.cached_bytes
empty_cache = _bindings.empty_cache
set_cache_limit = _bindings.set_cache_limit
cache_limit = _bindings.cache_limit
