"""Keras 3's ``config.json`` both ways: a Keras model's serialized form <-> fastrnn's configs.

A Keras object is written as ``{"module", "class_name", "config", "registered_name"}`` (layers in
a functional model add ``name`` and ``inbound_nodes``). fastrnn's layers take Keras's argument
names, so most of a layer's config passes as it is; what differs is translated here:

- dtype policies ``{"class_name": "DTypePolicy", "config": {"name": "float32"}}`` <-> "float32"
  (fastrnn computes in float32 or float64: a mixed or quantized policy is refused);
- initializers ``{"class_name": "GlorotUniform", ...}`` <-> "glorot_uniform"; one with other
  arguments than the name's defaults becomes a ``KerasInitializer``, which draws as Keras's does
  and is written back as it came;
- regularizers and constraints: the same classes and configs, under Keras's module;
- Keras options fastrnn does not have are dropped when they hold Keras's default (``sparse``,
  ``ragged``, ``quantization_config``, ...); any other value is a ValueError naming the layer and
  the option, as is a layer class fastrnn does not have;
- in a functional model, the masks Keras records as operations (``NotEqual``, ``Any``) are
  left to fastrnn's own mask propagation, and the ``training`` flags Keras records on calls
  (which the model's own flag overrides in Keras) are dropped;
- the compile config: optimizers (with schedules), losses and metrics by name, function or
  class, per output as lists or dicts.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from fastrnn.utils import get_rng

KERAS_LAYERS = "keras.layers"

# Keras options that fastrnn's layers do not take, and the value that changes nothing.
_DEFAULTS_DROPPED = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
                     "sparse": False, "ragged": False, "optional": False}

# Keras's layers that take a seed (for dropout); fastrnn's take one everywhere.
_TAKE_SEED = {"Dropout", "Attention", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell",
              "GRUCell"}

_MODELS = ("Sequential", "Functional", "Model")


def _supported_layers() -> dict:
    from fastrnn import layers

    return {name: getattr(layers, name) for name in layers.__all__
            if isinstance(getattr(layers, name), type) and name not in ("Layer", "Recurrent")}


def _who(spec) -> str:
    config = spec.get("config") if isinstance(spec, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return f"layer {name!r} ({spec.get('class_name')})" if name else f"a {spec.get('class_name')} layer"


def _check_keras_object(spec, what: str) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) \
            or not isinstance(spec.get("config", {}), (dict, str)):
        raise ValueError(f"{what} is not a serialized Keras object: {str(spec)[:120]}")
    module = spec.get("module")
    if module is not None and module != "builtins" and not str(module).startswith("keras"):
        raise ValueError(f"{what} is {spec['class_name']!r} from the module {module!r}, not one of "
                         "Keras's own: fastrnn reads Keras's built-in classes only")


# -- dtypes --------------------------------------------------------------------------------------

def dtype_from_keras(value, who: str) -> str:
    """A Keras dtype policy (or dtype name) -> 'float32' or 'float64'."""
    name = value
    if isinstance(value, dict):
        if value.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy"):
            raise ValueError(f"{who}: the dtype policy {value.get('class_name')!r} is not supported: "
                             "fastrnn computes in float32 or float64")
        name = (value.get("config") or {}).get("name")
    if name is None:
        return "float32"
    if name not in ("float32", "float64"):
        raise ValueError(f"{who}: the dtype policy {name!r} is not supported: fastrnn computes in "
                         "float32 or float64")
    return name


def dtype_to_keras(name: str) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


# -- initializers --------------------------------------------------------------------------------

# Keras class -> (fastrnn name, the arguments that name stands for).
_INITIALIZERS = {
    "Zeros": ("zeros", {}), "Ones": ("ones", {}),
    "RandomUniform": ("uniform", {"minval": -0.05, "maxval": 0.05}),
    "RandomNormal": ("normal", {"mean": 0.0, "stddev": 0.05}),
    "TruncatedNormal": ("truncated_normal", {"mean": 0.0, "stddev": 0.05}),
    "GlorotUniform": ("glorot_uniform", {}), "GlorotNormal": ("glorot_normal", {}),
    "HeUniform": ("he_uniform", {}), "HeNormal": ("he_normal", {}),
    "LecunUniform": ("lecun_uniform", {}), "LecunNormal": ("lecun_normal", {}),
    "Orthogonal": ("orthogonal", {"gain": 1.0}),
}
_INITIALIZER_CLASSES = {name: cls for cls, (name, _) in _INITIALIZERS.items()}
_INITIALIZER_CLASSES.update(random_uniform="RandomUniform", random_normal="RandomNormal")
# What VarianceScaling is for each of its named forms.
_SCALINGS = {"GlorotUniform": (1.0, "fan_avg", "uniform"), "GlorotNormal": (1.0, "fan_avg", "truncated_normal"),
             "HeUniform": (2.0, "fan_in", "uniform"), "HeNormal": (2.0, "fan_in", "truncated_normal"),
             "LecunUniform": (1.0, "fan_in", "uniform"), "LecunNormal": (1.0, "fan_in", "truncated_normal")}
_IGNORED_INITIALIZER_ARGS = ("seed",)  # the weights come from the file; fastrnn draws from its own generator


class KerasInitializer:
    """A Keras initializer with arguments fastrnn's names do not stand for (``Constant(0.5)``,
    ``RandomNormal(stddev=0.01)``, ``VarianceScaling(...)``, ``Orthogonal(gain=2)``,
    ``Identity``): ``init(shape, dtype) -> array`` draws as Keras's does, from fastrnn's
    generator; ``spec`` is the Keras object it came from, written back as it is."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.class_name = spec["class_name"]
        self.config = dict(spec.get("config") or {})

    def __repr__(self):
        return f"KerasInitializer({self.class_name}, {self.config})"

    def __call__(self, shape, dtype):
        c, rng = self.config, get_rng()
        shape = tuple(shape)
        if self.class_name == "Constant":
            out = np.full(shape, c.get("value", 0.0))
        elif self.class_name == "RandomUniform":
            out = rng.uniform(c.get("minval", -0.05), c.get("maxval", 0.05), size=shape)
        elif self.class_name == "RandomNormal":
            out = c.get("mean", 0.0) + c.get("stddev", 0.05) * rng.standard_normal(shape)
        elif self.class_name == "TruncatedNormal":
            out = c.get("mean", 0.0) + c.get("stddev", 0.05) * _truncated(rng, shape)
        elif self.class_name == "Orthogonal":
            from fastrnn.layers.initializers import orthogonal
            out = c.get("gain", 1.0) * orthogonal(shape, np.float64)
        elif self.class_name == "Identity":
            if len(shape) != 2:
                raise ValueError(f"the Identity initializer makes 2-D weights, not {shape}")
            out = c.get("gain", 1.0) * np.eye(*shape)
        else:  # VarianceScaling and its named forms
            scale, mode, distribution = _SCALINGS.get(self.class_name, (
                c.get("scale", 1.0), c.get("mode", "fan_in"), c.get("distribution", "truncated_normal")))
            out = _variance_scaling(rng, shape, scale, mode, distribution)
        return np.asarray(out, dtype=dtype)


def _truncated(rng, shape):
    """Standard normal draws, those beyond two standard deviations drawn again (Keras's)."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out


def _variance_scaling(rng, shape, scale, mode, distribution):
    if len(shape) < 2:
        fan_in = fan_out = shape[0] if shape else 1
    else:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)
    if distribution == "untruncated_normal":
        return math.sqrt(variance) * rng.standard_normal(shape)
    return math.sqrt(variance) / 0.87962566103423978 * _truncated(rng, shape)


_KERAS_ONLY_INITIALIZERS = ("Constant", "VarianceScaling", "Identity")
_VARIANCE_SCALING_ARGS = {"scale", "mode", "distribution"}


def initializer_from_keras(value, who: str, key: str):
    """A Keras initializer (serialized, or a name) -> a fastrnn name, or a KerasInitializer."""
    if isinstance(value, str):
        return value
    _check_keras_object(value, f"{who}: {key}")
    class_name = value["class_name"]
    config = {k: v for k, v in (value.get("config") or {}).items() if k not in _IGNORED_INITIALIZER_ARGS}
    if class_name in _INITIALIZERS:
        name, defaults = _INITIALIZERS[class_name]
        extra = {k: v for k, v in config.items() if v is not None and defaults.get(k, None) != v}
        if not extra:
            return name
        if set(extra) - set(defaults):  # input_axes, output_axes: not drawn here
            raise ValueError(f"{who}: {key}={class_name}({extra}) is not supported by fastrnn")
        return KerasInitializer(value)
    if class_name in _KERAS_ONLY_INITIALIZERS:
        if class_name == "VarianceScaling":
            unknown = {k for k, v in config.items() if v is not None} - _VARIANCE_SCALING_ARGS
            if unknown or config.get("mode", "fan_in") not in ("fan_in", "fan_out", "fan_avg") \
                    or config.get("distribution", "truncated_normal") not in (
                        "truncated_normal", "untruncated_normal", "uniform"):
                raise ValueError(f"{who}: {key}=VarianceScaling({config}) is not supported by fastrnn")
        return KerasInitializer(value)
    raise ValueError(f"{who}: the initializer {class_name!r} ({key}) is not one fastrnn has")


def initializer_to_keras(value):
    """A fastrnn initializer (a name, a KerasInitializer, or a callable saved as its default
    name) -> Keras's serialized form."""
    if isinstance(value, KerasInitializer):
        return value.spec
    from fastrnn.layers.initializers import _snake

    class_name = _INITIALIZER_CLASSES.get(_snake(value))
    if class_name is None:
        raise ValueError(f"the initializer {value!r} has no Keras class")
    config = dict(_INITIALIZERS[class_name][1])
    if class_name not in ("Zeros", "Ones"):
        config["seed"] = None
    return {"module": "keras.initializers", "class_name": class_name, "config": config,
            "registered_name": None}


# -- regularizers, constraints, activations ------------------------------------------------------

def _penalty_from_keras(value, who: str, key: str):
    """A Keras regularizer or constraint -> the dict (or name) fastrnn's ``get`` takes."""
    if value is None or isinstance(value, str):
        return value
    _check_keras_object(value, f"{who}: {key}")
    if value.get("registered_name") not in (None, value["class_name"]):
        raise ValueError(f"{who}: {key} is a custom {value['registered_name']!r}, not one fastrnn has")
    return {"class_name": value["class_name"], "config": dict(value.get("config") or {})}


def _penalty_to_keras(value, module: str):
    if value is None or isinstance(value, str):
        return value
    return {"module": module, "class_name": value["class_name"], "config": value.get("config", {}),
            "registered_name": None}


def _activation_from_keras(value, who: str, key: str):
    if isinstance(value, dict):  # a function, serialized
        _check_keras_object(value, f"{who}: {key}")
        if value.get("class_name") != "function" or not isinstance(value.get("config"), str):
            raise ValueError(f"{who}: {key} {value.get('class_name')!r} is not one fastrnn has")
        return value["config"]
    return value


# -- layers: Keras -> fastrnn ------------------------------------------------------------------------

def layer_from_keras(spec, custom_objects=None) -> dict:
    """A serialized Keras layer (or model) -> fastrnn's ``{"class_name", "config"}``, each option
    checked; ValueError naming the layer for one fastrnn does not have."""
    _check_keras_object(spec, "a layer")
    class_name = spec["class_name"]
    if class_name in _MODELS:
        return model_spec_from_keras(spec)
    who = _who(spec)
    if spec.get("registered_name") not in (None, class_name):
        raise ValueError(f"{who} is the custom layer {spec['registered_name']!r}: fastrnn reads "
                         "Keras's built-in layers only")
    classes = _supported_layers()
    if class_name not in classes:
        raise ValueError(f"{who}: Keras's {class_name} is not a layer fastrnn has; fastrnn's are "
                         f"{sorted(classes)}")
    cls = classes[class_name]
    config = _layer_config_from_keras(class_name, cls, dict(spec.get("config") or {}), who)
    out = {"class_name": class_name, "config": config}
    _try_to_make(out, who)
    return out


def _layer_config_from_keras(class_name, cls, config, who) -> dict:
    if class_name == "InputLayer":
        return _input_config_from_keras(config, who)
    out = {}
    for key, value in config.items():
        if key == "dtype":
            out[key] = dtype_from_keras(value, who)
        elif key.endswith("_initializer"):
            out[key] = initializer_from_keras(value, who, key)
        elif key.endswith("_regularizer") or key.endswith("_constraint"):
            out[key] = _penalty_from_keras(value, who, key)
        elif key in ("activation", "recurrent_activation"):
            out[key] = _activation_from_keras(value, who, key)
        elif key in ("layer", "backward_layer", "cell"):
            out[key] = None if value is None else layer_from_keras(value)
        elif key == "cells":
            out[key] = [layer_from_keras(c) for c in value]
        else:
            out[key] = value
    accepted = inspect.signature(cls.__init__).parameters
    for key in list(out):
        if key in accepted:
            continue
        if key in _DEFAULTS_DROPPED and out[key] == _DEFAULTS_DROPPED[key]:
            del out[key]
        else:
            raise ValueError(f"{who}: the Keras option {key}={out[key]!r} is not supported by fastrnn")
    return out


def _input_config_from_keras(config, who) -> dict:
    for key in ("sparse", "ragged", "optional"):
        if config.get(key, False):
            raise ValueError(f"{who}: {key}=True inputs are not supported by fastrnn")
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    dtype = config.get("dtype") or "float32"
    if isinstance(dtype, dict):
        dtype = dtype_from_keras(dtype, who)
    return {"name": config.get("name"), "dtype": dtype, "batch_shape": shape}


def _try_to_make(spec, who):
    """Make the layer once, so that an option fastrnn refuses is reported with the layer's name."""
    import fastrnn.models  # noqa: F401  (a wrapper may hold a model)
    from fastrnn.layers.base import deserialize

    try:
        deserialize(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{who}: {err}") from None


# -- models: Keras -> fastrnn ----------------------------------------------------------------------

def _is_operation(spec) -> bool:
    """A Keras operation recorded in a functional graph (``keras.ops``), not a layer."""
    return isinstance(spec, dict) and str(spec.get("module", "")).startswith(("keras.src.ops", "keras.ops"))


def _tensor_refs(value) -> list:
    """The keras_history of every tensor in a node's arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value.get("config", {}).get("keras_history")]
        return [r for v in value.values() for r in _tensor_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _tensor_refs(v)]
    return []


def _made_by(value, names) -> bool:
    return any(isinstance(ref, list) and ref and ref[0] in names for ref in _tensor_refs(value))


def model_spec_from_keras(spec) -> dict:
    """A serialized Keras Sequential or functional model -> fastrnn's spec of it."""
    _check_keras_object(spec, "the model")
    class_name, config = spec["class_name"], spec.get("config")
    if spec.get("registered_name") not in (None, class_name) or class_name not in _MODELS \
            or not isinstance(config, dict):
        raise ValueError(f"the model is a {spec.get('registered_name') or class_name!r}: fastrnn reads "
                         "Keras's Sequential and functional models (a subclassed model needs its "
                         "Python class; keep its weights in a .weights.h5 file instead)")
    if class_name == "Sequential":
        layers = [layer_from_keras(s) for s in config.get("layers", [])]
        out = {"name": config.get("name"), "layers": layers,
               "build_input_shape": config.get("build_input_shape")}
        if not layers or layers[0]["class_name"] != "InputLayer":
            shape = (spec.get("build_config") or {}).get("input_shape")
            out["build_input_shape"] = out["build_input_shape"] or shape
        return {"class_name": "Sequential", "config": out, "trainable": config.get("trainable", True)}
    if not all(k in config for k in ("layers", "input_layers", "output_layers")):
        raise ValueError(f"the {class_name} model is not a functional one (it has no graph of "
                         "layers): fastrnn reads Keras's Sequential and functional models")
    return {"class_name": "Functional", "config": _graph_from_keras(config),
            "trainable": config.get("trainable", True)}


def _graph_from_keras(config) -> dict:
    entries = config["layers"]
    if not isinstance(entries, list):
        raise ValueError("the functional model's layers are not a list")
    ops = {e.get("name") for e in entries if _is_operation(e)}
    for e in entries:
        for node in (e.get("inbound_nodes") or []) if isinstance(e, dict) else []:
            feeds = [node.get("args"), {k: v for k, v in (node.get("kwargs") or {}).items() if k != "mask"}]
            if not _is_operation(e) and _made_by(feeds, ops):
                op = next(r[0] for r in _tensor_refs(feeds) if r[0] in ops)
                raise ValueError(f"{_who(e)} takes the output of the operation {op!r}, which is not a "
                                 "layer: fastrnn runs graphs of layers only")
    if _made_by([config["input_layers"], config["output_layers"]], ops):
        raise ValueError("the functional model's outputs come from an operation, not a layer: "
                         "fastrnn runs graphs of layers only")
    layers = []
    for e in entries:
        if _is_operation(e):
            continue
        if not isinstance(e, dict) or "name" not in e:
            raise ValueError(f"a layer entry of the functional model has no name: {str(e)[:120]}")
        spec = layer_from_keras(e)
        spec["name"] = e["name"]
        spec["inbound_nodes"] = [_node_from_keras(node, ops) for node in e.get("inbound_nodes") or []]
        layers.append(spec)
    return {"name": config.get("name"), "trainable": config.get("trainable", True), "layers": layers,
            "input_layers": config["input_layers"], "output_layers": config["output_layers"]}


def _node_from_keras(node, ops) -> dict:
    """A call: Keras's ``training`` flag dropped (the model's decides, in Keras too), and a mask
    Keras computed with operations left to fastrnn's mask propagation."""
    if not isinstance(node, dict):
        raise ValueError(f"a layer call in the functional model is not a dict: {str(node)[:120]}")
    kwargs = {}
    for key, value in (node.get("kwargs") or {}).items():
        if key == "training" or (key == "mask" and (value is None or _made_by(value, ops))):
            continue
        kwargs[key] = value
    return {"args": node.get("args"), "kwargs": kwargs}


def model_from_keras(spec):
    """A fastrnn model made from the serialized Keras model (no weights set yet)."""
    import fastrnn.models  # noqa: F401  (registers the model classes)
    from fastrnn.layers.base import deserialize

    fastrnn_spec = model_spec_from_keras(spec)
    model = deserialize({"class_name": fastrnn_spec["class_name"], "config": fastrnn_spec["config"]})
    if not fastrnn_spec.get("trainable", True):
        model.trainable = False
    return model


# -- layers and models: fastrnn -> Keras -----------------------------------------------------------

def model_to_keras(model) -> dict:
    """The serialized Keras form of a fastrnn Sequential or functional model."""
    from fastrnn.models import Sequential

    if isinstance(model, Sequential):
        return _spec_to_keras({"class_name": "Sequential", "config": model.get_config()}, model)
    if getattr(model, "_graph", None) is None:
        raise ValueError(f"model {model.name!r} ({type(model).__name__}) is a subclassed model: a Keras "
                         "file describes Sequential and functional models only (Keras would need its "
                         "Python class); keep its weights with save_weights('….weights.h5')")
    return _spec_to_keras({"class_name": "Functional", "config": model.get_config()}, model)


def _spec_to_keras(spec, layer=None) -> dict:
    """fastrnn's ``{"class_name", "config"}`` of a layer or model -> Keras's serialized form;
    ``layer``, when at hand, is the live object (for initializers that configs reduce to names)."""
    class_name, config = spec["class_name"], dict(spec["config"])
    if class_name == "Sequential":
        return _sequential_to_keras(config, layer)
    if class_name in ("Functional", "Model") or "input_layers" in config:
        return _functional_to_keras(config, layer)
    return {"module": KERAS_LAYERS, "class_name": class_name,
            "config": _layer_config_to_keras(class_name, config, layer), "registered_name": None}


def _sequential_to_keras(config, model) -> dict:
    layers = [_spec_to_keras(s, live) for s, live in
              zip(config["layers"], model.layers if model is not None else [None] * len(config["layers"]))]
    shape = config.get("build_input_shape")
    if shape is not None:
        input_name = "input_layer"
        if model is not None and model._graph is not None:
            input_name = model._graph.input_layers[0].name
        input_config = {"batch_shape": list(shape), "dtype": config.get("input_dtype") or "float32",
                        "sparse": False, "ragged": False, "name": input_name}
        layers.insert(0, {"module": KERAS_LAYERS, "class_name": "InputLayer", "config": input_config,
                          "registered_name": None})
    out = {"name": config.get("name"), "trainable": model.trainable if model is not None else True,
           "dtype": dtype_to_keras("float32"), "layers": layers,
           "build_input_shape": None if shape is None else list(shape)}
    spec = {"module": "keras", "class_name": "Sequential", "config": out, "registered_name": None}
    if shape is not None:
        spec["build_config"] = {"input_shape": list(shape)}
    return spec


def _functional_to_keras(config, model) -> dict:
    live = model.layers if model is not None else [None] * len(config["layers"])
    layers = []
    for entry, layer in zip(config["layers"], live):
        spec = _spec_to_keras({"class_name": entry["class_name"], "config": entry["config"]}, layer)
        spec["name"] = entry["name"]
        spec["inbound_nodes"] = entry["inbound_nodes"]
        layers.append(spec)
    out = {"name": config.get("name"), "trainable": config.get("trainable", True), "layers": layers,
           "input_layers": config["input_layers"], "output_layers": config["output_layers"]}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": out,
            "registered_name": "Functional"}


def _initializer_owner(layer):
    """Where a layer's initializer arguments live: a cell's are its recurrent layer's."""
    inner = getattr(layer, "layer", None)
    from fastrnn.layers.rnn import _Cell

    return inner if isinstance(layer, _Cell) else layer


def _layer_config_to_keras(class_name, config, layer) -> dict:
    if class_name == "InputLayer":
        return {"batch_shape": config["batch_shape"], "dtype": config.get("dtype", "float32"),
                "sparse": False, "ragged": False, "name": config["name"]}
    owner = _initializer_owner(layer) if layer is not None else None
    out = {}
    for key, value in config.items():
        if key == "batch_input_shape" or (key == "seed" and class_name not in _TAKE_SEED):
            continue  # Keras 3 declares input shapes with an InputLayer
        if key == "dtype":
            out[key] = dtype_to_keras(value)
        elif key.endswith("_initializer"):
            live = getattr(owner, key, None)
            out[key] = initializer_to_keras(live if isinstance(live, KerasInitializer) else value)
        elif key.endswith("_regularizer"):
            out[key] = _penalty_to_keras(value, "keras.regularizers")
        elif key.endswith("_constraint"):
            out[key] = _penalty_to_keras(value, "keras.constraints")
        elif key in ("layer", "backward_layer", "cell"):
            out[key] = None if value is None else _spec_to_keras(value, _sublayer(layer, key))
        elif key == "cells":
            cells = getattr(layer, "cells", [None] * len(value))
            out[key] = [_spec_to_keras(s, c) for s, c in zip(value, cells)]
        else:
            out[key] = value
    return out


def _sublayer(layer, key):
    """The live layer a wrapper's nested spec describes, where it is the same object (an RNN's
    cell, TimeDistributed's layer); None for Bidirectional's, which are copies."""
    if layer is None:
        return None
    from fastrnn.layers.wrappers import Bidirectional

    if isinstance(layer, Bidirectional):
        return None
    return getattr(layer, key, None)


# -- the compile config ------------------------------------------------------------------------------

_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")
_OPTIMIZER_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                       "loss_scale_factor": None, "gradient_accumulation_steps": None}
_COMPILE_IGNORED = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")


def _is_object(value) -> bool:
    return isinstance(value, dict) and "class_name" in value


def _per_output(value, leaf):
    """Apply ``leaf`` to each loss or metric of a compile argument: lists stay lists, a dict by
    output name stays a dict, a serialized object is a leaf."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_per_output(v, leaf) for v in value]
    if isinstance(value, dict) and not _is_object(value):
        return {k: _per_output(v, leaf) for k, v in value.items()}
    return leaf(value)


def _function_name(spec, what):
    """A serialized Keras function (``{"class_name": "function", "config": name}``) -> its name."""
    if not isinstance(spec.get("config"), str):
        raise ValueError(f"the {what} {spec!r} is not a serialized function")
    return spec["config"]


def _loss_from_keras(spec):
    from fastrnn import losses

    if isinstance(spec, str):
        return losses.get(spec)
    _check_keras_object(spec, "the loss")
    if spec["class_name"] == "function":
        return losses.get(_function_name(spec, "loss"))
    config = dict(spec.get("config") or {})
    if config.pop("axis", -1) != -1:
        raise ValueError(f"the loss {spec['class_name']} with axis={spec['config']['axis']} is not "
                         "supported by fastrnn (only the last axis)")
    config.pop("dtype", None)
    return losses.deserialize({"class_name": spec["class_name"], "config": config})


def _metric_from_keras(spec):
    from fastrnn import metrics

    if isinstance(spec, str):
        return spec
    _check_keras_object(spec, "the metric")
    if spec["class_name"] == "function":
        return _function_name(spec, "metric")
    config = dict(spec.get("config") or {})
    config.pop("dtype", None)  # fastrnn's metrics accumulate in float64
    return metrics.deserialize({"class_name": spec["class_name"], "config": config})


def _optimizer_from_keras(spec, custom_objects):
    from fastrnn import optimizers
    from fastrnn.optimizers import schedules

    if isinstance(spec, str):
        return optimizers.get(spec)
    _check_keras_object(spec, "the optimizer")
    class_name = spec["class_name"]
    if class_name not in _OPTIMIZERS:
        raise ValueError(f"the optimizer {class_name!r} is not one fastrnn has ({', '.join(_OPTIMIZERS)})")
    config = dict(spec.get("config") or {})
    for key, default in _OPTIMIZER_DEFAULTS.items():
        value = config.pop(key, default)
        if key == "use_ema" and value or key in ("loss_scale_factor", "gradient_accumulation_steps") \
                and value is not None:
            raise ValueError(f"the optimizer {class_name} has {key}={value!r}, which fastrnn does not "
                             "support")
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        _check_keras_object(rate, "the learning rate schedule")
        config["learning_rate"] = schedules.deserialize(
            {"class_name": rate["class_name"], "config": rate.get("config") or {}}, custom_objects)
    return optimizers.deserialize({"class_name": class_name, "config": config}, custom_objects)


def compile_from_keras(config, custom_objects=None) -> dict:
    """Keras's ``compile_config`` -> the arguments of fastrnn's ``model.compile``."""
    if not isinstance(config, dict):
        raise ValueError(f"the compile config is not a dict: {str(config)[:120]}")
    unknown = set(config) - {"optimizer", "loss", "loss_weights", "metrics", "weighted_metrics",
                             *_COMPILE_IGNORED}
    if unknown:
        raise ValueError(f"the compile options {sorted(unknown)} are not supported by fastrnn")
    return {"optimizer": _optimizer_from_keras(config.get("optimizer", "rmsprop"), custom_objects),
            "loss": _per_output(config.get("loss"), _loss_from_keras),
            "metrics": _per_output(config.get("metrics"), _metric_from_keras),
            "loss_weights": config.get("loss_weights"),
            "weighted_metrics": _per_output(config.get("weighted_metrics"), _metric_from_keras)}


def _optimizer_to_keras(optimizer) -> dict:
    from fastrnn import optimizers

    spec = optimizers.serialize(optimizer)
    class_name = spec["class_name"]
    if class_name not in _OPTIMIZERS or type(optimizer) is not getattr(optimizers, class_name):
        raise ValueError(f"the optimizer {type(optimizer).__name__} has no Keras class: a Keras file "
                         f"can hold {', '.join(_OPTIMIZERS)}")
    config = dict(spec["config"])
    clipping = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if config.get(k) is not None]
    if len(clipping) > 1:
        raise ValueError(f"the optimizer clips with {' and '.join(clipping)}; Keras takes one of them "
                         "only, so this optimizer cannot be written to a Keras file")
    rate = config["learning_rate"]
    if isinstance(rate, dict):
        config["learning_rate"] = {"module": "keras.optimizers.schedules", "class_name": rate["class_name"],
                                   "config": rate.get("config", {}), "registered_name": None}
    config.update(_OPTIMIZER_DEFAULTS)
    return {"module": "keras.optimizers", "class_name": class_name, "config": config,
            "registered_name": None}


def _loss_to_keras(loss):
    from fastrnn import losses

    spec = losses.serialize(loss)
    return {"module": "keras.losses", "class_name": spec["class_name"], "config": spec["config"],
            "registered_name": None}


def _metric_to_keras(metric):
    from fastrnn import metrics

    if isinstance(metric, str):
        return metric
    if not isinstance(metric, metrics.Metric):
        raise ValueError(f"the metric {metric!r} cannot be written: only names and fastrnn's Metric "
                         "classes can")
    spec = metrics.serialize(metric)
    return {"module": "keras.metrics", "class_name": spec["class_name"], "config": spec["config"],
            "registered_name": None}


def compile_to_keras(model) -> dict:
    """The Keras ``compile_config`` of a compiled fastrnn model."""
    return {"optimizer": _optimizer_to_keras(model.optimizer),
            "loss": _per_output(model.loss, _loss_to_keras),
            "loss_weights": model.loss_weights,
            "metrics": _per_output(model.metric_ids or None, _metric_to_keras),
            "weighted_metrics": _per_output(getattr(model, "weighted_metric_ids", None),
                                            _metric_to_keras),
            "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}
