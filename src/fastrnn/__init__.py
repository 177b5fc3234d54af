"""fastrnn: recurrent networks (RNN, LSTM, GRU) with C++/Eigen kernels and a NumPy API.

- ``fastrnn.ops``: the functional API over the C++ kernels (``rnn_forward``, ``rnn_backward``).
- ``fastrnn.reference``: the same two functions in plain NumPy, the ground truth.
- ``fastrnn.layers``, ``fastrnn.Input``, ``fastrnn.Model``, ``fastrnn.Sequential``: a Keras-style
  model API on top of ``ops`` (functional, sequential and subclassed models), so that
  ``import fastrnn as keras`` runs Keras 3 recurrent-model code.
- ``fastrnn.modes``: the equations, gate orders and weight layouts.
"""
from importlib import import_module

# Heavier parts load on first use, so `import fastrnn` stays quick.
_LAZY = {
    "Sequential": "fastrnn.models",
    "Model": "fastrnn.models",
    "load_model": "fastrnn.models",
    "Input": "fastrnn.layers",
    "Layer": "fastrnn.layers",
    "KerasTensor": "fastrnn.keras_tensor",
    "set_num_threads": "fastrnn.ops",
    "get_num_threads": "fastrnn.ops",
}
_SUBMODULES = {
    "ops", "reference", "modes", "layers", "models", "optimizers", "losses", "metrics",
    "callbacks", "utils", "text", "timeseries", "sequence", "plot", "regularizers", "constraints",
    "interop", "saving",
}


def __getattr__(name):
    if name == "__version__":  # pyproject.toml holds the version; the installed metadata tells it
        from importlib.metadata import version
        return version("fastrnn")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return import_module(f"fastrnn.{name}")
    raise AttributeError(f"module 'fastrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES | {"__version__"})
