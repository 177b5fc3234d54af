"""Keras 3's weights file (``model.weights.h5`` in a ``.keras`` archive, or a ``.weights.h5``):
where each layer's variables sit, and the optimizer's, read and written with h5py.

Keras walks a model's object graph and gives every layer a group, ``<path>/vars``, holding its
own variables as datasets ``0``, ``1``, ... in ``get_weights`` order, and a ``name`` attribute.
The paths, for the layers fastrnn has:

- a model: ``vars`` (empty), then ``layers/<name>`` for each of its layers (a functional
  model's InputLayers included, Sequential's not), ``<name>`` being the Keras class in snake
  case, numbered in order when it repeats (``dense``, ``dense_1``, ...); a nested model's
  layers under its own path;
- ``SimpleRNN``, ``LSTM``, ``GRU``: the variables are their cell's, at ``<path>/cell/vars``
  (kernel, recurrent kernel, bias);
- ``Bidirectional``: ``<path>/forward_layer/...`` and ``<path>/backward_layer/...``;
  ``TimeDistributed``: ``<path>/layer/...``; ``RNN``: ``<path>/cell/vars``, or for
  ``StackedRNNCells`` ``<path>/cell/cells/<snake class>/vars`` for each cell;
- the optimizer: ``optimizer/vars``: ``iterations``, the learning rate (unless a schedule gives
  it), then the slots over the model's trainable variables in Keras's order (``_SLOT_LAYOUT``).

A layer reached twice (shared) is written once, where it is first met, as Keras does.

Reading trusts nothing in the file: groups and datasets must be plain ones (no soft or
external links, no external or virtual datasets), hold real numbers, and declare no more data
than they store; every count and shape is checked against the model before a weight is set.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from fastrnn.layers import variables
from fastrnn.layers.base import snake_case
from fastrnn.layers.recurrent import Recurrent
from fastrnn.layers.rnn import RNN, StackedRNNCells
from fastrnn.layers.wrappers import Bidirectional, TimeDistributed
from fastrnn.modes import kernel_to_keras

_CELL_NAMES = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}

# The optimizers' slots as Keras lays them out after iterations and the learning rate: each
# tuple is one run over the trainable variables, its slots interleaved variable by variable.
_SLOT_LAYOUT = {
    "SGD": (("momentum",),),
    "Adam": (("momentum", "velocity"), ("velocity_hat",)),
    "AdamW": (("momentum", "velocity"), ("velocity_hat",)),
    "RMSprop": (("velocity",), ("momentum",), ("average_gradient",)),
    "Adagrad": (("accumulator",),),
}

# A dataset may declare more than it stores only as far as compression can reach (deflate's
# limit is about 1032:1), beyond a small allowance for tiny arrays.
_MAX_EXPANSION = 1100
_SMALL = 1 << 16


class Entry(NamedTuple):
    """One Keras variables group: its path (the group holding ``vars``), the ``name`` attribute
    Keras gives it, and the fastrnn layer whose ``get_weights`` are its variables (None for a
    group without variables)."""

    path: str
    name: str
    owner: object


def keras_class(layer) -> str:
    """The Keras class name of a fastrnn layer or model."""
    from fastrnn.models import Sequential

    if getattr(layer, "is_model", False) and not isinstance(layer, Sequential):
        return "Functional"
    return type(layer).__name__


def entries(model) -> list[Entry]:
    """The groups of ``model``'s weights file, in Keras's order of visit."""
    out: list[Entry] = []
    _visit(model, "", out, set())
    return out


def _join(*parts) -> str:
    return "/".join(p for p in parts if p)


def _unique(name: str, used: dict) -> str:
    """Keras's numbering of repeated names in a list: name, name_1, name_2, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _visit(obj, path, out, seen) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if getattr(obj, "is_model", False):
        out.append(Entry(path, obj.name, None))
        used: dict = {}
        for layer in obj.layers:
            _visit(layer, _join(path, "layers", _unique(snake_case(keras_class(layer)), used)), out, seen)
    elif isinstance(obj, Recurrent):
        out.append(Entry(path, obj.name, None))
        out.append(Entry(_join(path, "cell"), _CELL_NAMES[type(obj).__name__], obj))
    elif isinstance(obj, Bidirectional):
        out.append(Entry(path, obj.name, None))
        _visit(obj.forward_layer, _join(path, "forward_layer"), out, seen)
        _visit(obj.backward_layer, _join(path, "backward_layer"), out, seen)
    elif isinstance(obj, TimeDistributed):
        out.append(Entry(path, obj.name, None))
        _visit(obj.layer, _join(path, "layer"), out, seen)
    elif isinstance(obj, RNN):
        out.append(Entry(path, obj.name, None))
        cell, cell_path = obj.cell, _join(path, "cell")
        if isinstance(cell, StackedRNNCells):
            out.append(Entry(cell_path, cell.name, None))
            used = {}
            for c in cell.cells:
                out.append(Entry(_join(cell_path, "cells", _unique(snake_case(type(c).__name__), used)),
                                 c.name, c.layer))
        else:
            out.append(Entry(cell_path, cell.name, cell.layer))
    else:
        out.append(Entry(path, obj.name, obj if owns_weights(obj) else None))


def owns_weights(layer) -> bool:
    """Whether the layer holds Keras variables itself (not through layers inside it)."""
    return bool(layer.params) and not layer.sublayers


def owners(layer, trainable_only=False) -> list:
    """The layers holding variables inside ``layer`` (itself included), in ``get_weights`` order."""
    return [sub for sub in variables.walk([layer], trainable_only) if owns_weights(sub)]


# -- reading, safely -----------------------------------------------------------------------------

def _child(parent, name: str, kind, where: str):
    """``parent[name]`` when it is a hard link to a ``kind`` (h5py.Group or Dataset); None when
    there is no such entry; ValueError for anything else."""
    import h5py

    if name not in parent:
        return None
    link = parent.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        kind_of_link = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
        raise ValueError(f"{where}: {parent.name.rstrip('/')}/{name} is {kind_of_link}; a "
                         "Keras weights file holds plain groups and datasets only")
    item = parent[name]
    if not isinstance(item, kind):
        raise ValueError(f"{where}: {item.name} is not a {kind.__name__}")
    return item


def _group(h5, path: str, where: str):
    """The group at ``path`` (parts joined by '/'), or None if any part is missing."""
    import h5py

    group = h5
    for part in path.split("/"):
        group = _child(group, part, h5py.Group, where)
        if group is None:
            return None
    return group


def _dataset(group, key: str, where: str) -> np.ndarray:
    import h5py

    ds = _child(group, key, h5py.Dataset, where)
    if ds is None:
        raise ValueError(f"{where}: {group.name}/{key} is missing")
    if ds.external or ds.is_virtual:
        raise ValueError(f"{where}: {ds.name} keeps its data outside the file")
    if ds.dtype.kind not in "fiu" or ds.dtype.itemsize > 8:
        raise ValueError(f"{where}: {ds.name} holds {ds.dtype}, not real numbers")
    declared = math.prod(ds.shape) * ds.dtype.itemsize
    if declared > _SMALL and declared > _MAX_EXPANSION * ds.id.get_storage_size():
        raise ValueError(f"{where}: {ds.name} declares {declared:,} bytes but stores "
                         f"{ds.id.get_storage_size():,}")
    return np.asarray(ds[()])


def _variables(group, count: int, where: str, who: str) -> list[np.ndarray]:
    """The datasets ``0`` .. ``count - 1`` of a ``vars`` group, which must hold those only."""
    keys = set(group.keys()) if group is not None else set()
    if keys != {str(i) for i in range(count)}:
        raise ValueError(f"{where}: {who} has {count} weight(s), but the file holds "
                         f"{len(keys)} for it (at {group.name if group is not None else 'a missing group'})")
    return [_dataset(group, str(i), where) for i in range(count)]


def read_weights(h5, model, where: str) -> list[np.ndarray]:
    """The model's weights from the file, in ``model.get_weights()`` order; ValueError naming
    ``where`` when the file does not hold them."""
    by_owner = {}
    for entry in entries(model):
        count = 0 if entry.owner is None else len(entry.owner.weight_shapes())
        group = _group(h5, _join(entry.path, "vars"), where)
        who = f"layer {entry.owner.name!r}" if entry.owner is not None else f"{entry.path or 'the model'}"
        if group is None and count == 0:
            continue
        arrays = _variables(group, count, where, who)
        if entry.owner is not None:
            by_owner[id(entry.owner)] = arrays
    return [w for leaf in model._leaf_layers() for owner in owners(leaf) for w in by_owner[id(owner)]]


# -- writing -------------------------------------------------------------------------------------

def write_weights(h5, model) -> None:
    for entry in entries(model):
        group = h5.create_group(_join(entry.path, "vars"))
        group.attrs["name"] = entry.name
        if entry.owner is not None:
            for k, w in enumerate(entry.owner.get_weights()):
                group.create_dataset(str(k), data=w)


# -- the optimizer -------------------------------------------------------------------------------

def _trainable_owners(model) -> list:
    return [o for leaf in model._trainable_leaves() for o in owners(leaf, trainable_only=True)]


def _keras_layout(owner, arrays) -> list[np.ndarray]:
    """Arrays shaped as ``owner.params`` -> the same in Keras's layout (``get_weights``)."""
    if isinstance(owner, Recurrent):
        w_ih, w_hh, *biases = arrays
        b_ih = biases[0] if biases else None
        b_hh = biases[1] if len(biases) > 1 else None
        return kernel_to_keras(owner.mode, w_ih, w_hh, b_ih, b_hh)
    return [np.array(a) for a in arrays]


def _layout(optimizer):
    """The runs of slot names Keras writes for this optimizer, or None for one Keras lacks."""
    runs = _SLOT_LAYOUT.get(type(optimizer).__name__)
    if runs is None:
        return None
    runs = [tuple(n for n in run if n in optimizer.slot_names) for run in runs]
    return [run for run in runs if run]


def _has_rate_variable(optimizer) -> bool:
    from fastrnn.optimizers.schedules import LearningRateSchedule

    return not isinstance(optimizer._learning_rate, LearningRateSchedule)


def write_optimizer(h5, model) -> None:
    """``optimizer/vars`` as Keras writes it; a fresh optimizer's slots are their initial values,
    as Keras builds them at load. Nothing is written (with a warning) for state Keras cannot
    hold: a layer with two recurrent biases (converted from PyTorch) has one in Keras."""
    optimizer = model.optimizer
    runs = _layout(optimizer)
    params = model._train_params if model._train_params is not None else model.trainable_params
    owners_ = _trainable_owners(model)
    position = {id(p): i for i, p in enumerate(params)}
    for owner in owners_:
        if isinstance(owner, Recurrent) and not owner.double_bias and owner.b_hh is not None:
            warnings.warn(f"layer {owner.name!r} has two biases (from PyTorch), Keras one: the "
                          "optimizer's state is not written, so training resumes from a fresh "
                          "optimizer", stacklevel=4)
            return
        if any(id(p) not in position for p in owner.params):
            raise ValueError(f"model {model.name!r}: the optimizer's variables do not follow the "
                             f"trainable layers (layer {owner.name!r})")
    state = optimizer.get_state()
    n = len(params)
    slots = {name: state[1 + k * n:1 + (k + 1) * n] for k, name in enumerate(optimizer.slot_names)}
    if len(state) == 1:  # not built yet: the values Keras starts from
        slots = {name: [np.full_like(p, optimizer.slot_initial_value(name)) for p in params]
                 for name in optimizer.slot_names}
    keras_slots = {name: [_keras_layout(o, [values[position[id(p)]] for p in o.params]) for o in owners_]
                   for name, values in slots.items()}
    values = [np.array(state[0], dtype=np.int64)]
    if _has_rate_variable(optimizer):
        values.append(np.array(optimizer.learning_rate, dtype=np.float32))
    for run in runs:
        for k in range(len(owners_)):
            for j in range(len(keras_slots[run[0]][k])):
                values.extend(keras_slots[name][k][j] for name in run)
    group = h5.create_group("optimizer/vars")
    group.attrs["name"] = optimizer.name
    for k, v in enumerate(values):
        group.create_dataset(str(k), data=v)


def read_optimizer(h5, model, where: str) -> None:
    """Set the compiled model's optimizer state from ``optimizer/vars``, if the file has one.

    A state of another size (another optimizer, or one Keras had not built) is skipped with a
    warning, as Keras skips it; a state that fits is checked and set whole."""
    group = _group(h5, "optimizer/vars", where)
    if group is None:
        return
    optimizer = model.optimizer
    runs = _layout(optimizer)
    owners_ = _trainable_owners(model)
    shapes = [o.weight_shapes() for o in owners_]
    n_vars = sum(len(s) for s in shapes)
    has_rate = _has_rate_variable(optimizer)
    expected = 1 + has_rate + n_vars * sum(len(run) for run in runs)
    full = len(group) != 1 + has_rate  # else saved before its first step: no slots yet
    if full and len(group) != expected:
        warnings.warn(f"{where}: the optimizer state holds {len(group)} variables, but "
                      f"{type(optimizer).__name__} over this model's {n_vars} trainable weights "
                      f"has {expected}; it is not loaded, and training starts a fresh optimizer",
                      stacklevel=4)
        return
    values = _variables(group, expected if full else 1 + has_rate, where, "the optimizer")
    iterations = values[0]
    if iterations.shape != () or iterations.dtype.kind not in "iu" or iterations < 0:
        raise ValueError(f"{where}: the optimizer's iterations is not a non-negative integer")
    k = 1
    rate = None
    if has_rate:
        rate = values[1]
        if rate.shape != () or not np.isfinite(rate) or rate < 0:
            raise ValueError(f"{where}: the optimizer's learning rate is {rate!r}")
        k = 2
    params = model.trainable_params
    if [id(p) for o in owners_ for p in o.params] != [id(p) for p in params]:
        raise ValueError(f"model {model.name!r}: its trainable weights do not follow its layers")
    keras_slots = {name: [[None] * len(s) for s in shapes] for run in runs for name in run}
    for run in runs if full else ():
        for o, owner_shapes in enumerate(shapes):
            for j, shape in enumerate(owner_shapes):
                for name in run:
                    if values[k].shape != tuple(shape):
                        raise ValueError(f"{where}: the optimizer's {name} of layer "
                                         f"{owners_[o].name!r} (weight {j}) has shape "
                                         f"{values[k].shape}, the weight {tuple(shape)}")
                    keras_slots[name][o][j] = values[k]
                    k += 1
    slots = []
    if full:
        slots = [s for name in optimizer.slot_names
                 for o, owner in enumerate(owners_) for s in owner.params_from_keras(keras_slots[name][o])]
    optimizer.set_state([np.array(int(iterations), dtype=np.int64)] + slots, params)
    if rate is not None:
        optimizer.learning_rate = float(rate)
