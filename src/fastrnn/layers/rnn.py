"""Keras's ``RNN(cell)`` with the built-in cells, on the kernels.

``SimpleRNNCell``, ``LSTMCell`` and ``GRUCell`` take the arguments of Keras's cells; each
runs as the recurrent layer of its kind (``SimpleRNN``, ``LSTM``, ``GRU``), which it holds as
``cell.layer`` and which owns its weights. ``StackedRNNCells([...])`` (or a list given to
``RNN``) stacks cells: each reads the output sequence of the one before, as Keras's stacked
cells do step by step; here each cell's whole sequence runs in one kernel call.

``RNN(cell, return_sequences, return_state, go_backwards, stateful, unroll,
zero_output_for_mask)`` then behaves as the recurrent layer with those arguments (see
``fastrnn.layers.recurrent`` for masks, ``go_backwards`` and ``stateful``), with Keras's
weights, ``get_weights`` order (cell by cell: kernel, recurrent_kernel, bias), configs and
states: ``return_state`` gives ``[output, *states]``, the states of one cell being ``h`` (and
``c`` for an LSTM cell), and for stacked cells one list of states per cell. ``initial_state``
takes the same structure.

A cell can also be called on its own for one step, ``cell(x_t, states) -> (h, new_states)``
with ``x_t: (B, F)``, for inference (there is no backward for a single step).

Only these cells run on the kernels: a cell of your own (any other object with ``call`` and
``state_size``) raises ValueError.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fastrnn import ops
from fastrnn.layers.base import Layer, check_state_shapes, deserialize, serialize, time_major_mask
from fastrnn.layers.recurrent import GRU, LSTM, SimpleRNN, set_sequence_options

if TYPE_CHECKING:
    from fastrnn.constraints import Constraint
    from fastrnn.regularizers import Regularizer

_LAYER_ARGS = ("name", "dtype", "trainable", "seed")
_CELL_ARGS = ("activation", "use_bias", "kernel_initializer", "recurrent_initializer",
              "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
              "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
              "recurrent_dropout")


class _Cell(Layer):
    """A cell: the arguments of one step, run as a whole sequence by ``layer_class``."""

    layer_class = SimpleRNN
    extra_args: tuple = ()
    input_ndim = 2

    def __init__(self, units, **kwargs):
        allowed = set(_LAYER_ARGS + _CELL_ARGS + self.extra_args)
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}; "
                            f"it takes units and {sorted(allowed)}")
        base = {k: kwargs.pop(k) for k in _LAYER_ARGS if k in kwargs}
        super().__init__(**base)
        self.layer = self.layer_class(units, name=self.name, dtype=self.dtype.name,
                                      trainable=self.trainable, seed=self.seed,
                                      return_sequences=True, **kwargs)

    # -- what Keras's cells expose -----------------------------------------------------------

    @property
    def units(self) -> int:
        return self.layer.units

    @property
    def state_size(self):
        return [self.units, self.units] if self.layer.state_count == 2 else self.units

    @property
    def output_size(self) -> int:
        return self.units

    # -- weights: those of the layer it runs as -------------------------------------------------

    @property
    def sublayers(self):
        return [self.layer]

    @property
    def params(self):
        return self.layer.params

    def build(self, input_shape):
        """input_shape: (B, F), one step's input."""
        if not self.layer.built:
            self.layer.build((None, None, input_shape[-1]))
        super().build(input_shape)

    def weight_shapes(self):
        return self.layer.weight_shapes()

    def get_weights(self):
        return self.layer.get_weights()

    def assign_weights(self, weights):
        self.layer.assign_weights(weights)

    # -- one step on its own ------------------------------------------------------------------

    def __call__(self, inputs, states=None, training=False):
        """One step: inputs (B, F), states [h (B, H)] (+ [c (B, H)] for LSTM) or None for zeros
        -> (output h (B, H), new states in the same structure). Inference only."""
        x = self.convert_input(inputs)
        self.check_input_shape(x.shape)
        if not self.built:
            self.build((None, x.shape[-1]))
        layer = self.layer
        h0, c0 = (None, None) if states is None else layer._initial_states(x.shape[0], states)
        _, h, c, _ = ops.rnn_forward(layer.mode, x[None], h0, layer.w_ih, layer.w_hh, layer.b_ih,
                                     layer.b_hh, c0=c0, training=False, **layer.kernel_options())
        return h, [h] + ([c] if c is not None else [])

    def backward(self, dy):
        raise RuntimeError(f"{self.who}: a single step of a cell has no backward; train cells "
                           "inside layers.RNN")

    def get_config(self):
        config = super().get_config()
        inner = self.layer.get_config()
        config["units"] = self.units
        config.update({k: inner[k] for k in _CELL_ARGS + self.extra_args if k in inner})
        return config


class SimpleRNNCell(_Cell):
    """Keras's ``SimpleRNNCell``; runs as ``SimpleRNN``.

    The arguments are those of the layer it runs as (see its documentation): ``units``,
    the activations, ``use_bias``, the initializers, regularizers and constraints,
    ``dropout``, ``recurrent_dropout``, ``seed``, ``name``, ``dtype``, ``trainable``.
    """

    layer_class = SimpleRNN

    def __init__(self, units: int, *, activation: str = "tanh", use_bias: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, name=name, dtype=dtype,
                         trainable=trainable)


class LSTMCell(_Cell):
    """Keras's ``LSTMCell``; runs as ``LSTM``. States ``[h, c]``.

    The arguments are those of the layer it runs as (see its documentation): ``units``,
    the activations, ``unit_forget_bias``, ``use_peepholes`` and ``peephole_initializer``
    (fastrnn's extension), ``use_bias``, the initializers, regularizers and constraints,
    ``dropout``, ``recurrent_dropout``, ``seed``, ``name``, ``dtype``, ``trainable``.
    """

    layer_class = LSTM
    extra_args = ("recurrent_activation", "unit_forget_bias", "use_peepholes", "peephole_initializer")

    def __init__(self, units: int, *, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", unit_forget_bias: bool = True,
                 use_peepholes: bool = False, peephole_initializer: str | Callable = "zeros",
                 use_bias: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         unit_forget_bias=unit_forget_bias, use_peepholes=use_peepholes,
                         peephole_initializer=peephole_initializer, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, name=name, dtype=dtype,
                         trainable=trainable)


class GRUCell(_Cell):
    """Keras's ``GRUCell``; runs as ``GRU`` (with ``reset_after`` either way).

    The arguments are those of the layer it runs as (see its documentation): ``units``,
    the activations, ``reset_after``, ``use_bias``, the initializers, regularizers and constraints,
    ``dropout``, ``recurrent_dropout``, ``seed``, ``name``, ``dtype``, ``trainable``.
    """

    layer_class = GRU
    extra_args = ("recurrent_activation", "reset_after")

    def __init__(self, units: int, *, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", reset_after: bool = True,
                 use_bias: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0, seed: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         reset_after=reset_after, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, name=name, dtype=dtype,
                         trainable=trainable)


def _check_cell(cell, where: str) -> None:
    if not isinstance(cell, _Cell):
        raise ValueError(f"{where}: {cell!r} is not one of fastrnn's cells (SimpleRNNCell, "
                         "LSTMCell, GRUCell); a user-defined cell is not supported, as the cells "
                         "run on the kernels")


class _CellList(Layer):
    """What RNN and StackedRNNCells share: weights are the cells', in order."""

    def _cells(self) -> list:
        raise NotImplementedError

    @property
    def params(self):
        return [p for cell in self._cells() for p in cell.params]

    def weight_shapes(self):
        return [s for cell in self._cells() for s in cell.weight_shapes()]

    def get_weights(self):
        return [w for cell in self._cells() for w in cell.get_weights()] if self.built else []

    def assign_weights(self, weights):
        k = 0
        for cell in self._cells():
            n = len(cell.weight_shapes())
            cell.assign_weights(weights[k:k + n])
            k += n


class StackedRNNCells(_CellList):
    """Keras's ``StackedRNNCells(cells)``: cell i reads the outputs of cell i - 1."""

    def __init__(self, cells: list, *, name: str | None = None,
                 dtype: str | np.dtype = "float32", trainable: bool = True,
                 seed: int | None = None):
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells takes a non-empty list of cells, got {cells!r}")
        for cell in cells:
            _check_cell(cell, "StackedRNNCells")
        super().__init__(name=name, dtype=dtype, trainable=trainable, seed=seed)
        self.cells = list(cells)

    def _cells(self):
        return self.cells

    @property
    def sublayers(self):
        return list(self.cells)

    @property
    def state_size(self):
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self) -> int:
        return self.cells[-1].output_size

    def build(self, input_shape):
        """input_shape: (B, F), one step's input; each cell is built for the one before it."""
        features = input_shape[-1]
        for cell in self.cells:
            if not cell.built:
                cell.build((None, features))
            features = cell.units
        super().build(input_shape)

    def get_config(self):
        return {**super().get_config(), "cells": [serialize(cell) for cell in self.cells]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls([deserialize(spec) for spec in config.pop("cells")], **config)


class RNN(_CellList):
    """Keras's ``RNN(cell)``: a recurrent layer built from a cell or a stack of cells.

    x: (B, T, F) -> (B, T, H) with ``return_sequences``, else (B, H), H the last cell's units;
    with ``return_state`` a list ``[output, *states]`` (see the module docstring).

    Args:
        cell: a ``SimpleRNNCell``, ``LSTMCell`` or ``GRUCell``, a ``StackedRNNCells``, or a
            list of cells to stack.
        return_sequences: return the output of every step, (B, T, H), not the last one.
        return_state: also return the final states after the output.
        go_backwards: read each sequence from its end, as the recurrent layers do.
        stateful: carry the final states over to the next batch, until ``reset_states()``.
        unroll: accepted for Keras scripts; the kernels choose how to loop.
        zero_output_for_mask: output zeros at masked steps instead of the last real output.
        dtype: ``"float32"`` or ``"float64"``; None (the default) takes the cells'.

    Every layer also takes ``name``, ``trainable``, ``input_shape``, ``batch_size``,
    ``batch_input_shape``, ``seed`` and ``activity_regularizer``; see ``Layer``.
    """

    input_ndim = 3

    def __init__(self, cell: _Cell | StackedRNNCells | list, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, zero_output_for_mask: bool = False, *,
                 name: str | None = None, dtype: str | np.dtype | None = None,
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        if isinstance(cell, StackedRNNCells):
            cells = cell.cells
        else:
            _check_cell(cell, "RNN")
            cells = [cell]
        dtype = cells[0].dtype.name if dtype is None else dtype
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        for c in cells:
            if c.dtype != self.dtype:
                raise ValueError(f"{self.who} runs in {self.dtype.name}, but its cell {c.name!r} "
                                 f"in {c.dtype.name}; give them one dtype")
            if getattr(c.layer, "_rnn_owner", self) is not self:
                raise ValueError(f"{self.who}: cell {c.name!r} already belongs to another RNN layer")
        self.cell = cell
        set_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)
        for c in cells:  # the layers the cells run as read the sequence as this layer does
            c.layer._rnn_owner = self
            c.layer.go_backwards = self.go_backwards
            c.layer.stateful = self.stateful
            c.layer.zero_output_for_mask = self.zero_output_for_mask
        self.initial_state_grads = None

    def _cells(self):
        return self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]

    @property
    def _stacked(self) -> bool:
        return isinstance(self.cell, StackedRNNCells)

    @property
    def _layers(self):
        return [cell.layer for cell in self._cells()]

    @property
    def sublayers(self):
        return [self.cell]

    @property
    def units(self) -> int:
        return self._cells()[-1].units

    @property
    def state_size(self):
        return self.cell.state_size

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self.who}: the number of input features must be known to build")
        self.cell.build((None, features))
        super().build(input_shape)

    # -- states ----------------------------------------------------------------------------------

    @property
    def states(self):
        """The carried states of a stateful layer (one list per cell when stacked), or None."""
        carried = [layer.states for layer in self._layers]
        if all(s is None for s in carried):
            return None
        return carried if self._stacked else carried[0]

    def reset_states(self, states=None):
        """Forget the carried states (or set them, in ``initial_state``'s structure)."""
        per_cell = self._per_cell(states) if states is not None else [None] * len(self._layers)
        checked = []
        for layer, s in zip(self._layers, per_cell):  # all checked before any is set
            saved = layer.states
            layer.reset_states(s)
            checked.append(layer.states)
            layer.states = saved
        for layer, s in zip(self._layers, checked):
            layer.states = s

    def carried_states(self):
        return [layer.carried_states() for layer in self._layers]

    def restore_states(self, saved):
        for layer, s in zip(self._layers, saved):
            layer.restore_states(s)

    def _per_cell(self, initial_state):
        """initial_state in Keras's structure -> one list of states (or None) per cell."""
        if initial_state is None:
            return [None] * len(self._layers)
        if not self._stacked:
            return [initial_state]
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != len(self._layers):
            raise ValueError(f"{self.who}: initial_state must be a list with the states of each of "
                             f"its {len(self._layers)} cells, got {initial_state!r:.80}")
        return list(initial_state)

    def check_initial_state_shapes(self, shapes) -> None:
        """For a call on symbolic tensors: ValueError unless ``shapes`` (the states in order,
        flattened) are each cell's states, (batch, its units)."""
        units = [c.units for c in self._cells() for _ in range(c.layer.state_count)]
        check_state_shapes(self.who, shapes, units, "each cell's states in turn")

    # -- forward and backward ------------------------------------------------------------------------

    def call(self, x, training=False, mask=None, initial_state=None):
        """x: (B, T, F) -> output (B, T, H) or (B, H), with return_state [output, *states]."""
        B, T, _ = x.shape
        mask_tm = time_major_mask(mask, B, T, self.who)  # (T, B) or None
        per_cell = self._per_cell(initial_state)
        seq = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, F)
        states = []
        for i, (layer, init) in enumerate(zip(self._layers, per_cell)):
            sequences = self.return_sequences or i < len(self._layers) - 1  # the last's only if returned
            seq, h_n, c_n = layer.run(seq, mask_tm, training, init, sequences)  # seq: (T, B, H_i) or None
            states.append([h_n] + ([c_n] if c_n is not None else []))
        output = self._layers[-1].keras_output(seq, states[-1][0], mask_tm, self.return_sequences)
        self._cache = (mask_tm,) if training else None
        if not self.return_state:
            return output
        if self._stacked:
            return [output] + states
        return [output] + states[0]

    def backward(self, d_output):
        """Gradient of the output (a list like call's with return_state, entries may be None)
        -> gradient of x: (B, T, F); sets ``grads`` and ``initial_state_grads``."""
        (mask_tm,) = self._backward_cache()
        layers = self._layers
        d_states = [[None, None] for _ in layers]
        if self.return_state:
            d_output, *rest = list(d_output) + [None] * (len(layers) if self._stacked else 2)
            if self._stacked:
                for k, d in enumerate(rest[:len(layers)]):
                    if d is not None:
                        d_states[k] = (list(d) + [None, None])[:2]
            else:
                d_states[0] = (rest + [None, None])[:2]
        dy_tm, dh_last = layers[-1].keras_output_grad(d_output, mask_tm, self.return_sequences)
        if dh_last is not None:
            dh = d_states[-1][0]
            d_states[-1][0] = dh_last if dh is None else np.asarray(dh) + dh_last
        for layer, (dh_n, dc_n) in zip(reversed(layers), reversed(d_states)):
            dy_tm = layer.run_backward(dy_tm, dh_n, dc_n)  # the gradient of the input sequence
        for cell in self._cells():
            cell.grads = cell.layer.grads
        self.grads = [g for layer in layers for g in layer.grads]
        state_grads = [layer.initial_state_grads for layer in layers]
        self.initial_state_grads = state_grads if self._stacked else state_grads[0]
        return np.ascontiguousarray(dy_tm.transpose(1, 0, 2))  # (B, T, F)

    # -- shapes, masks, config -----------------------------------------------------------------

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        out = (B, T, self.units) if self.return_sequences else (B, self.units)
        if not self.return_state:
            return out
        per_cell = [[(B, c.units)] * c.layer.state_count for c in self._cells()]
        return [out] + (per_cell if self._stacked else per_cell[0])

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self):
        config = super().get_config()
        config.update(return_sequences=self.return_sequences, return_state=self.return_state,
                      go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
                      zero_output_for_mask=self.zero_output_for_mask, cell=serialize(self.cell))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(deserialize(config.pop("cell")), **config)
