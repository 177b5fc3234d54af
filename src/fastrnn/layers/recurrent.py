"""Keras's recurrent layers, ``SimpleRNN``, ``LSTM`` and ``GRU``, on the kernels of ``fastrnn.ops``.

The layer only arranges shapes: it turns the batch-major input ``(B, T, F)`` and mask
``(B, T)`` into the kernels' time-major ``(T, B, F)`` and ``(T, B)``, and the kernels'
outputs back into what Keras returns. Forward and backpropagation through time run in
``fastrnn.ops.rnn_forward`` / ``rnn_backward``.

Parameters are kept in the kernel layout (``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``; see
``fastrnn.modes``); ``get_weights``/``set_weights`` use Keras's layout. Keras's single
bias of SimpleRNN, LSTM and GRU(reset_after=False) is ``b_ih`` (``b_hh`` stays None); GRU
has both rows. A layer
converted from PyTorch (``fastrnn.interop.from_torch``) keeps PyTorch's two biases, ``b_hh``
too; its Keras bias is then ``b_ih + b_hh``, and ``set_weights`` puts it all in ``b_ih``.

Keras semantics kept here:

- ``go_backwards``: the sequence is read from its end; with ``return_sequences`` the
  outputs come in reading order (reversed), as in Keras.
- masks, of any pattern (padding before or after the real steps, holes, rows with no real
  step): a masked step leaves the state unchanged. In reading order (reversed with
  ``go_backwards``) its output is the last real output before it, zero before the first
  real step (Keras's default), or zero with ``zero_output_for_mask=True``. The output of
  ``return_sequences=False`` is the last step read's: the state after the last real step,
  zero for a row with no real step (whatever its initial state), and with
  ``zero_output_for_mask=True`` zero when the last step read is masked. The final states
  are the states after the last real step (the initial ones for a row with none).
- ``stateful``: the final state of a batch is the initial state of the next, until
  ``reset_states()``. No gradient flows into the carried state (truncated BPTT).
- ``dropout`` and ``recurrent_dropout``, training only, masks drawn once a call and the same at
  every step, scaled by ``1 / (1 - rate)``, as Keras's cells draw them: with
  ``recurrent_dropout`` 0, one mask per sequence on the input features. With
  ``recurrent_dropout`` > 0 (Keras's ``implementation=1``) SimpleRNN has one mask on h (and one
  on the inputs); LSTM and GRU have one mask on h per gate (and one on the inputs per gate),
  which the kernels apply to each gate's share of the products (``recurrent_masks``,
  ``input_masks`` of ``fastrnn.ops.rnn_forward``).
- regularizers and constraints (``kernel_*``, ``recurrent_*``, ``bias_*``) apply to Keras's
  weights: GRU's bias ``(2, 3H)`` is one weight made of ``b_ih`` and ``b_hh``, and a
  constraint's ``axis`` is that of the Keras layout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fastrnn import constraints, ops, regularizers
from fastrnn._args import check_activation
from fastrnn._checks import check_flag, check_int, check_real, resolve
from fastrnn.layers import initializers
from fastrnn.layers.base import Layer, check_state_shapes, time_major_mask
from fastrnn.modes import GATES, MODES, PARAMS, STATES, kernel_to_keras, keras_to_kernel

if TYPE_CHECKING:
    from fastrnn.constraints import Constraint
    from fastrnn.regularizers import Regularizer



def set_sequence_options(layer, return_sequences, return_state, go_backwards, stateful, unroll,
                         zero_output_for_mask) -> None:
    """The options of how a recurrent layer reads and returns a sequence, checked as flags."""
    for name, value in (("return_sequences", return_sequences), ("return_state", return_state),
                        ("go_backwards", go_backwards), ("stateful", stateful),
                        # unroll is accepted for Keras scripts; the kernels decide how to loop
                        ("unroll", unroll), ("zero_output_for_mask", zero_output_for_mask)):
        setattr(layer, name, layer.flag(name, value))


class Recurrent(Layer):
    """Shared machinery of SimpleRNN, LSTM and GRU; ``self.mode`` names the kernel cell."""

    input_ndim = 3
    mode = "rnn_tanh"

    def __init__(self, units: int, *, use_bias: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, zero_output_for_mask: bool = False,
                 checkpoint_every: int | None = None,
                 zoneout: float = 0.0,
                 input_dim: int | None = None, input_length: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if input_dim is not None and input_shape is None:  # Keras 2's spelling
            who = type(self).__name__
            input_shape = (check_int(f"{who}: input_length", input_length, low=0, allow_none=True),
                           check_int(f"{who}: input_dim", input_dim, low=0))
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
            raise TypeError(f"{self.who}: units must be an int, got {units!r}")
        if units <= 0:
            raise ValueError(f"{self.who}: units must be positive, got {units}")
        check_real(f"{self.who}: dropout", dropout, low=0.0, high=1.0, high_open=True)
        check_real(f"{self.who}: recurrent_dropout", recurrent_dropout, low=0.0, high=1.0, high_open=True)
        self.units = int(units)
        self.use_bias = self.flag("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        for arg, init in (("kernel_initializer", kernel_initializer),
                          ("recurrent_initializer", recurrent_initializer),
                          ("bias_initializer", bias_initializer)):
            self.resolve(arg, initializers.get, init)  # fail now on an unknown name, not at build
        self.kernel_regularizer = self.resolve("kernel_regularizer", regularizers.get, kernel_regularizer)
        self.recurrent_regularizer = self.resolve("recurrent_regularizer", regularizers.get, recurrent_regularizer)
        self.bias_regularizer = self.resolve("bias_regularizer", regularizers.get, bias_regularizer)
        self.kernel_constraint = self.resolve("kernel_constraint", constraints.get, kernel_constraint)
        self.recurrent_constraint = self.resolve("recurrent_constraint", constraints.get, recurrent_constraint)
        self.bias_constraint = self.resolve("bias_constraint", constraints.get, bias_constraint)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.checkpoint_every = check_int(f"{self.who}: checkpoint_every", checkpoint_every, low=0, allow_none=True)
        self.zoneout = check_real(f"{self.who}: zoneout", zoneout, low=0.0, high=1.0, high_open=True)
        set_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)
        self.states = None  # [h (B, H), c (B, H) for LSTM] carried by a stateful layer
        self.w_ih = self.w_hh = self.b_ih = self.b_hh = None
        self.cell_params = {}  # name -> (width, H): the cell's own vectors (modes.PARAMS), after the weights
        self.initial_state_grads = None  # gradients of an explicit initial_state

    # -- parameters ----------------------------------------------------------------------

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def double_bias(self) -> bool:
        """Keras's bias is (2, G*H), b_ih then b_hh (GRU with ``reset_after``), not (G*H,)."""
        return MODES[self.mode].keras_bias == "double"

    @property
    def params(self):
        return self._weight_params() + list(self.cell_params.values())

    def _weight_params(self):
        return [p for p in (self.w_ih, self.w_hh, self.b_ih, self.b_hh) if p is not None]

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self.who}: the number of input features must be known to build")
        H, G = self.units, self.gates
        kernel = initializers.get(self.kernel_initializer)((features, G * H), self.dtype)
        recurrent = initializers.get(self.recurrent_initializer)((H, G * H), self.dtype)
        bias = self.initial_bias() if self.use_bias else None
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = keras_to_kernel(self.mode, kernel, recurrent, bias)
        self.cell_params = {name: self.initial_cell_param(name, (width, H)) for name, width in PARAMS[self.mode]}
        super().build(input_shape)

    def initial_cell_param(self, name: str, shape: tuple) -> np.ndarray:
        """A cell parameter (modes.PARAMS) at build: (width, H), C-contiguous."""
        raise NotImplementedError(f"{self.who}: no initializer for the cell parameter {name!r}")

    def initial_bias(self) -> np.ndarray:
        """The Keras-layout bias at build: (G*H,) from bias_initializer."""
        return initializers.get(self.bias_initializer)((self.gates * self.units,), self.dtype)

    def weight_shapes(self):
        F, H, G = self.input_shape[-1], self.units, self.gates
        shapes = [(F, G * H), (H, G * H)]
        if self.use_bias:
            shapes.append((2, G * H) if self.double_bias else (G * H,))
        return shapes + [(width, H) for _, width in PARAMS[self.mode]]

    def get_weights(self):
        """[kernel (F, G*H), recurrent_kernel (H, G*H), bias] in Keras's layout and gate order;
        [] before the layer is built."""
        if not self.built:
            return []
        weights = kernel_to_keras(self.mode, self.w_ih, self.w_hh, self.b_ih, self.b_hh)
        return weights + [p.copy() for p in self.cell_params.values()]

    def assign_weights(self, weights):
        for p, w in zip(self.params, self.params_from_keras(weights)):
            p[...] = w

    # -- Keras's weights: which params make each, their regularizers and constraints ----------

    def weight_groups(self):
        groups = [(0,), (1,)]
        if self.use_bias:
            groups.append((2, 3) if self.double_bias else (2,))  # GRU: b_ih and b_hh
        first = len(self._weight_params())  # the cell's parameters follow, one weight each
        return groups + [(first + k,) for k in range(len(self.cell_params))]

    def weight_regularizers(self):
        regs = [self.kernel_regularizer, self.recurrent_regularizer]
        return regs + ([self.bias_regularizer] if self.use_bias else []) + [None] * len(PARAMS[self.mode])

    def weight_constraints(self):
        cons = [self.kernel_constraint, self.recurrent_constraint]
        return cons + ([self.bias_constraint] if self.use_bias else []) + [None] * len(PARAMS[self.mode])

    def params_from_keras(self, arrays):
        """[kernel, recurrent_kernel, bias, cell parameters...] (Keras's layout) ->
        [w_ih, w_hh, b_ih, (b_hh), cell parameters...]."""
        n = 3 if self.use_bias else 2
        bias = arrays[2] if self.use_bias else None
        w_ih, w_hh, b_ih, b_hh = keras_to_kernel(self.mode, arrays[0], arrays[1], bias)
        if b_hh is None and self.b_hh is not None:
            b_hh = np.zeros_like(self.b_hh)  # a second (PyTorch) bias: Keras's one goes to b_ih
        return [a for a in (w_ih, w_hh, b_ih, b_hh) if a is not None] + [np.asarray(a) for a in arrays[n:]]

    # -- states ----------------------------------------------------------------------------

    @property
    def state_count(self) -> int:
        return len(STATES[self.mode])

    def reset_states(self, states=None):
        """Forget the carried state (or set it: a list of (B, H) arrays, h then c for LSTM)."""
        if states is None:
            self.states = None
            return
        states = [np.array(s, dtype=self.dtype) for s in states]
        if len(states) != self.state_count or any(s.ndim != 2 or s.shape[1] != self.units for s in states):
            raise ValueError(f"{self.who}: states must be {self.state_count} arrays of shape "
                             f"(batch, {self.units}), got {[s.shape for s in states]}")
        self.states = states

    def carried_states(self):
        return self.states  # replaced, never changed in place, by each stateful call

    def restore_states(self, saved):
        self.states = saved

    def _initial_states(self, batch: int, initial_state):
        """-> (h0, c0), each (B, H) or None (zeros), from initial_state or the carried state."""
        if initial_state is None and self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise ValueError(f"{self.who} is stateful and carries a state for batch size "
                                 f"{self.states[0].shape[0]}, got a batch of {batch}; call "
                                 "reset_states() first or keep the batch size fixed")
            initial_state = self.states
        if initial_state is None:
            return None, None
        if isinstance(initial_state, np.ndarray) and initial_state.ndim == 2:
            initial_state = [initial_state]
        initial_state = [np.ascontiguousarray(s, dtype=self.dtype) for s in initial_state]
        if len(initial_state) != self.state_count:
            raise ValueError(f"{self.who}: initial_state must be a list of {self.state_count} "
                             f"array(s) of shape (batch, units), got {len(initial_state)}")
        for s in initial_state:
            if s.shape != (batch, self.units):
                raise ValueError(f"{self.who}: each initial state must have shape "
                                 f"(batch, units) = {(batch, self.units)}, got {s.shape}")
        return initial_state[0], (initial_state[1] if self.state_count == 2 else None)

    # -- the time-major core (also used by Bidirectional) ------------------------------------

    def run(self, x_tm, mask=None, training=False, initial_state=None, sequences=True):
        """Run the kernel over time-major input; ``Bidirectional`` calls this directly.

        x_tm: (T, B, F); mask: (T, B) bool, True at real steps, or None. The direction is
        ``go_backwards``. Returns y: (T, B, H) with every output at its own time position and
        zeros at masked steps (None without ``sequences``), h_n: (B, H), c_n: (B, H) or None.
        """
        T, B, F = x_tm.shape
        drop, recurrent = self.dropout_masks(B, F) if training else (None, None)
        input_masks = None
        if drop is not None and drop.ndim == 3:  # one per gate: each gate's product applies its own
            input_masks, drop = self.kernel_blocks(drop), None
        if drop is not None:
            x_tm = x_tm * drop  # (T, B, F), the same mask for every step and gate
        h0, c0 = self._initial_states(B, initial_state)
        y, h_n, c_n, cache = ops.rnn_forward(
            self.mode, x_tm, h0, self.w_ih, self.w_hh, self.b_ih, self.b_hh,
            c0=c0, mask=mask, reverse=self.go_backwards, training=training, **self.kernel_options(),
            recurrent_masks=None if recurrent is None else self.kernel_blocks(recurrent),
            input_masks=input_masks, checkpoint_every=self.checkpoint_every, return_sequences=sequences,
            zoneout=self.zoneout, zoneout_seed=self._zoneout_seed() if training else 0)
        if self.stateful:
            self.states = [h_n.copy()] + ([c_n.copy()] if c_n is not None else [])
        self._cache = (cache, drop, mask) if training else None
        return y, h_n, c_n

    def _zoneout_seed(self) -> int:
        """A fresh seed of zoneout's draws for a training call, from ``rng`` (none without zoneout,
        so that the dropout masks' draws stay Keras's)."""
        return int(self.rng.integers(0, 2**63)) if self.zoneout > 0 else 0

    def dropout_masks(self, B: int, F: int):
        """The dropout masks of one training call, drawn from ``rng`` as Keras's cells draw
        them, each scaled by 1 / (1 - rate) and the same at every step: ``(input, recurrent)``.

        input: None, (B, F) one mask for every gate, or (G, B, F) one per gate (with
        ``recurrent_dropout`` > 0, LSTM and GRU); recurrent: None or (G, B, H), G = 1 for
        SimpleRNN. Per gate in Keras's gate order (LSTM i, f, c, o; GRU z, r, h).
        """
        per_gate = self.recurrent_dropout > 0 and self.gates > 1  # Keras's implementation=1
        drop = recurrent = None
        if self.dropout > 0:
            drop = self._mask((self.gates, B, F) if per_gate else (B, F), self.dropout)
        if self.recurrent_dropout > 0:
            recurrent = self._mask((self.gates, B, self.units), self.recurrent_dropout)
        return drop, recurrent

    def _mask(self, shape, rate):
        keep = self.rng.random(shape) >= rate
        return keep.astype(self.dtype) / self.dtype.type(1 - rate)

    def kernel_blocks(self, masks):
        """masks: (G, B, K) in Keras's gate order -> the kernels' (fastrnn.modes), C-contiguous."""
        return np.ascontiguousarray(np.asarray(masks, dtype=self.dtype)[list(MODES[self.mode].keras_blocks)])

    def run_backward(self, dy_tm=None, dh_n=None, dc_n=None):
        """Gradients of ``run``'s outputs -> dx_tm: (T, B, F); sets ``grads``.

        dy_tm: (T, B, H) or None; dh_n, dc_n: (B, H) or None.
        """
        cache, drop, _ = self._backward_cache()
        # In the layer's dtype, whatever the layer after it runs in (as Keras autocasts).
        dy_tm, dh_n, dc_n = (None if d is None else np.asarray(d, dtype=self.dtype)
                             for d in (dy_tm, dh_n, dc_n))
        g = ops.rnn_backward(cache, dy_tm, dh_n, dc_n)
        self.grads = [g[k] for k in ("w_ih", "w_hh", "b_ih", "b_hh") if g[k] is not None]
        self.grads += [g[name].reshape(p.shape) for name, p in self.cell_params.items()]
        self.initial_state_grads = [g["h0"]] + ([g["c0"]] if "c0" in g else [])
        dx = g["x"]  # (T, B, F)
        return dx if drop is None else dx * drop

    # -- the Keras-facing call -----------------------------------------------------------------

    def call(self, x, training=False, mask=None, initial_state=None):
        """x: (B, T, F) -> output (B, T, H) with return_sequences, else (B, H);
        with return_state a list [output, h_n (B, H)] (+ c_n (B, H) for LSTM).
        """
        B, T, _ = x.shape
        mask_tm = time_major_mask(mask, B, T, self.who)  # (T, B) or None
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, F)
        y, h_n, c_n = self.run(x_tm, mask_tm, training, initial_state, sequences=self.return_sequences)
        output = self.keras_output(y, h_n, mask_tm)
        if self.return_state:
            return [output, h_n] + ([c_n] if c_n is not None else [])
        return output

    def backward(self, d_output):
        """Gradient of the output (a list matching ``call``'s with return_state, entries may
        be None) -> gradient of x: (B, T, F); sets ``grads`` and ``initial_state_grads``."""
        _, _, mask_tm = self._backward_cache()
        dh_n = dc_n = None
        if self.return_state:
            d_output, *d_states = list(d_output) + [None] * self.state_count
            dh_n, dc_n = d_states[0], (d_states[1] if self.state_count == 2 else None)
        dy_tm, dh_last = self.keras_output_grad(d_output, mask_tm)
        if dh_last is not None:
            dh_n = dh_last if dh_n is None else dh_n + dh_last  # (B, H)
        dx_tm = self.run_backward(dy_tm, dh_n, dc_n)  # (T, B, F)
        return np.ascontiguousarray(dx_tm.transpose(1, 0, 2))  # (B, T, F)

    # -- from the kernel's outputs to Keras's ---------------------------------------------------

    def _reading_order(self, a):
        """(T, ...) at their own time positions -> in the order the layer reads them."""
        return a[::-1] if self.go_backwards else a

    def keras_output(self, y, h_n, mask_tm, sequences=None):
        """The kernel's y: (T, B, H) (own time positions, zeros at masked steps) and
        h_n: (B, H) -> Keras's output: (B, T, H) in reading order with ``sequences``
        (by default ``return_sequences``), else the last step read's output (B, H).
        mask_tm: (T, B) bool or None."""
        if not (self.return_sequences if sequences is None else sequences):
            if mask_tm is None:
                return h_n.copy()
            return h_n * self.last_output_kept(mask_tm)[:, None]  # (B, H)
        y = self._reading_order(y)  # (T, B, H)
        if mask_tm is not None and not self.zero_output_for_mask:
            y = repeat_last_real(y, last_real_steps(self._reading_order(mask_tm)))
        return np.ascontiguousarray(y.transpose(1, 0, 2))  # (B, T, H)

    def keras_output_grad(self, d_output, mask_tm, sequences=None):
        """Backward of ``keras_output``: d_output (B, T, H) or (B, H) or None ->
        (dy_tm: (T, B, H) or None, dh_n: (B, H) or None)."""
        if d_output is None:
            return None, None
        d_output = np.asarray(d_output, dtype=self.dtype)
        if not (self.return_sequences if sequences is None else sequences):
            if mask_tm is None:
                return None, d_output
            return None, d_output * self.last_output_kept(mask_tm)[:, None].astype(self.dtype)
        dy = d_output.transpose(1, 0, 2)  # (T, B, H) in reading order
        if mask_tm is not None and not self.zero_output_for_mask:
            dy = repeat_last_real_grad(dy, last_real_steps(self._reading_order(mask_tm)))
        return np.ascontiguousarray(self._reading_order(dy)), None

    def last_output_kept(self, mask_tm) -> np.ndarray:
        """mask_tm: (T, B) -> (B,) 1 where the last output is h_n, 0 where Keras gives zero:
        a row with no real step, or with ``zero_output_for_mask`` a masked last step read."""
        if self.zero_output_for_mask:
            kept = self._reading_order(mask_tm)[-1] if len(mask_tm) else np.ones(mask_tm.shape[1], bool)
        else:
            kept = mask_tm.any(axis=0)
        return kept.astype(self.dtype)

    # -- shapes, masks, config ------------------------------------------------------------------

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        out = (B, T, self.units) if self.return_sequences else (B, self.units)
        if self.return_state:
            return [out] + [(B, self.units)] * self.state_count
        return out

    def activations(self) -> dict:
        """The activation names ``ops.rnn_forward`` takes for this layer's cell."""
        names = {"activation": self.activation}
        if GATES[self.mode] > 1:
            names["recurrent_activation"] = self.recurrent_activation
        return names

    def kernel_options(self) -> dict:
        """``activations()`` and, for a cell with parameters of its own, ``params`` (each (width*H,),
        a view of its (width, H) weight): what ``ops.rnn_forward`` takes beside the weights."""
        options = self.activations()
        if self.cell_params:
            options["params"] = {name: p.reshape(-1) for name, p in self.cell_params.items()}
        return options

    def compute_mask(self, inputs, mask=None):
        """The output's mask: the input's with return_sequences, else None; with return_state
        a list, None for the states (as Keras)."""
        out = mask if self.return_sequences else None
        return [out] + [None] * self.state_count if self.return_state else out

    def check_initial_state_shapes(self, shapes) -> None:
        """For a call on symbolic tensors: ValueError unless ``shapes`` are those of
        ``state_count`` arrays (batch, units)."""
        check_state_shapes(self.who, shapes, [self.units] * self.state_count, "h, then c for LSTM")

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer, "glorot_uniform"),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer, "orthogonal"),
            bias_initializer=initializers.serialize(self.bias_initializer, "zeros"),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            kernel_constraint=constraints.serialize(self.kernel_constraint),
            recurrent_constraint=constraints.serialize(self.recurrent_constraint),
            bias_constraint=constraints.serialize(self.bias_constraint),
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
            return_sequences=self.return_sequences,
            return_state=self.return_state, go_backwards=self.go_backwards,
            stateful=self.stateful, unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask)
        if self.checkpoint_every is not None:  # fastrnn's own: absent from Keras's configs
            config["checkpoint_every"] = self.checkpoint_every
        if self.zoneout:
            config["zoneout"] = self.zoneout
        return config


class SimpleRNN(Recurrent):
    """Fully connected recurrent layer, ``h' = act(x W + h U + b)``.

    x: (B, T, F) -> (B, T, H) with ``return_sequences``, else (B, H); with ``return_state``
    a list ``[output, h_n (B, H)]``. Weights (Keras layout): kernel (F, H),
    recurrent_kernel (H, H), bias (H,).

    Args:
        units: H, the size of the state and the output.
        activation: the name of an element-wise Keras activation (``fastrnn.modes.ACTIVATIONS``,
            with ``swish`` and ``hard_swish``); None is ``"linear"``.
        use_bias: whether the layer has a bias.
        kernel_initializer: the kernel's initializer: a Keras name or a callable
            ``f(shape, dtype) -> array``.
        recurrent_initializer: the recurrent kernel's, likewise.
        bias_initializer: the bias's, likewise.
        kernel_regularizer: a ``fastrnn.regularizers`` penalty on the kernel (or its name).
        recurrent_regularizer: likewise on the recurrent kernel.
        bias_regularizer: likewise on the bias (GRU's ``(2, 3H)`` bias is one weight).
        kernel_constraint: a ``fastrnn.constraints`` projection of the kernel after each
            step (or its name), along the axes of Keras's layout.
        recurrent_constraint: likewise of the recurrent kernel.
        bias_constraint: likewise of the bias.
        dropout: the fraction of input features dropped in training, one mask per sequence
            for all its steps, as Keras draws it (one per gate with ``recurrent_dropout``);
            in [0, 1).
        recurrent_dropout: the fraction of the state's units dropped in training from the
            recurrent products, masks drawn per sequence for all its steps, as Keras draws them
            (one per gate for LSTM and GRU); in [0, 1).
        return_sequences: return the output of every step, (B, T, H), instead of the last
            one, (B, H).
        return_state: also return the final state(s), each (B, H), after the output.
        go_backwards: read each sequence from its end; with ``return_sequences`` the outputs
            come in reading order, as in Keras.
        stateful: carry the final state of a batch over as the initial state of the next,
            until ``reset_states()`` (no gradient flows into the carried state).
        unroll: accepted for Keras scripts; the kernels choose how to loop.
        zero_output_for_mask: output zeros at masked steps instead of the last real output.
        checkpoint_every: how training keeps what backpropagation needs (fastrnn's own, not
            Keras's): 0 every step; n > 0 a checkpoint of the state every n steps, the rest
            recomputed in the backward pass (less memory, about one more forward's time, the
            same gradients); None (the default) checkpoints only beyond
            ``fastrnn.ops.get_bptt_memory_limit()`` bytes. See ``fastrnn.ops.rnn_forward``.
        input_dim: Keras 2's way of giving ``input_shape=(input_length, input_dim)``.
        input_length: see ``input_dim``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    def __init__(self, units: int, activation: str = "tanh", *,
                 use_bias: bool = True, kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, zero_output_for_mask: bool = False,
                 checkpoint_every: int | None = None,
                 input_dim: int | None = None, input_length: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        self.activation = activation_name("SimpleRNN: activation", activation)
        self.mode = "rnn_relu" if self.activation == "relu" else "rnn_tanh"
        super().__init__(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful,
                         unroll=unroll, zero_output_for_mask=zero_output_for_mask,
                         checkpoint_every=checkpoint_every,
                         input_dim=input_dim, input_length=input_length, name=name, dtype=dtype,
                         trainable=trainable, input_shape=input_shape, batch_size=batch_size,
                         batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class LSTM(Recurrent):
    """Long short-term memory, Keras's equations.

    x: (B, T, F) -> (B, T, H) with ``return_sequences``, else (B, H); with ``return_state``
    a list ``[output, h_n (B, H), c_n (B, H)]``. Weights (Keras layout): kernel (F, 4H),
    recurrent_kernel (H, 4H), bias (4H,), gates i, f, c, o; with ``use_peepholes`` a fourth,
    peephole (3, H), rows p_i, p_f, p_o (mode ``lstm_peephole`` of ``fastrnn.modes``).

    Args:
        units: H, the size of the state and the output.
        activation: of the candidate and of the cell state in ``h = o * act(c)``: the name of
            an element-wise Keras activation (``fastrnn.modes.ACTIVATIONS``, with ``swish``
            and ``hard_swish``); None is ``"linear"``. tanh and sigmoid, the defaults, run
            fused into the cell; any other pair costs a little more per step.
        recurrent_activation: of the gates, likewise.
        unit_forget_bias: start the forget gate's bias at 1 (and the rest from
            ``bias_initializer``), as Keras does by default.
        use_peepholes: fastrnn's extension (Keras has none): the cell state feeds the gates,
            ``i = rec(... + p_i * c)``, ``f = rec(... + p_f * c)``, ``o = rec(... + p_o * c')``,
            as ONNX's LSTM with its ``P`` input. Such a layer saves to ``.npz`` and exports to
            ONNX, but not to ``.keras`` (Keras could not load it) nor to torch (which has none).
        peephole_initializer: the peephole weight's initializer (zeros: the plain LSTM at first).
        use_bias: whether the layer has a bias.
        kernel_initializer: the kernel's initializer: a Keras name or a callable
            ``f(shape, dtype) -> array``.
        recurrent_initializer: the recurrent kernel's, likewise.
        bias_initializer: the bias's, likewise.
        kernel_regularizer: a ``fastrnn.regularizers`` penalty on the kernel (or its name).
        recurrent_regularizer: likewise on the recurrent kernel.
        bias_regularizer: likewise on the bias (GRU's ``(2, 3H)`` bias is one weight).
        kernel_constraint: a ``fastrnn.constraints`` projection of the kernel after each
            step (or its name), along the axes of Keras's layout.
        recurrent_constraint: likewise of the recurrent kernel.
        bias_constraint: likewise of the bias.
        dropout: the fraction of input features dropped in training, one mask per sequence
            for all its steps, as Keras draws it (one per gate with ``recurrent_dropout``);
            in [0, 1).
        recurrent_dropout: the fraction of the state's units dropped in training from the
            recurrent products, masks drawn per sequence for all its steps, as Keras draws them
            (one per gate for LSTM and GRU); in [0, 1).
        return_sequences: return the output of every step, (B, T, H), instead of the last
            one, (B, H).
        return_state: also return the final state(s), each (B, H), after the output.
        go_backwards: read each sequence from its end; with ``return_sequences`` the outputs
            come in reading order, as in Keras.
        stateful: carry the final state of a batch over as the initial state of the next,
            until ``reset_states()`` (no gradient flows into the carried state).
        unroll: accepted for Keras scripts; the kernels choose how to loop.
        zero_output_for_mask: output zeros at masked steps instead of the last real output.
        checkpoint_every: how training keeps what backpropagation needs (fastrnn's own, not
            Keras's): 0 every step; n > 0 a checkpoint of the state every n steps, the rest
            recomputed in the backward pass (less memory, about one more forward's time, the
            same gradients); None (the default) checkpoints only beyond
            ``fastrnn.ops.get_bptt_memory_limit()`` bytes. See ``fastrnn.ops.rnn_forward``.
        zoneout: haste's zoneout (fastrnn's own, not Keras's): in training each unit of h keeps
            its previous value with this probability, drawn afresh at every step; at inference
            h is its expectation. The cell state is never zoned out. In [0, 1).
        input_dim: Keras 2's way of giving ``input_shape=(input_length, input_dim)``.
        input_length: see ``input_dim``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    mode = "lstm"

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 unit_forget_bias: bool = True, *, use_peepholes: bool = False,
                 peephole_initializer: str | Callable = "zeros",
                 use_bias: bool = True, kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, zero_output_for_mask: bool = False,
                 checkpoint_every: int | None = None,
                 zoneout: float = 0.0,
                 input_dim: int | None = None, input_length: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        self.activation = activation_name("LSTM: activation", activation)
        self.recurrent_activation = activation_name("LSTM: recurrent_activation", recurrent_activation)
        self.unit_forget_bias = check_flag("LSTM: unit_forget_bias", unit_forget_bias)
        self.use_peepholes = check_flag("LSTM: use_peepholes", use_peepholes)
        if self.use_peepholes:
            self.mode = "lstm_peephole"
        self.peephole_initializer = peephole_initializer
        resolve("LSTM: peephole_initializer", initializers.get, peephole_initializer)  # now, not at build
        super().__init__(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful,
                         unroll=unroll, zero_output_for_mask=zero_output_for_mask,
                         checkpoint_every=checkpoint_every,
                         zoneout=zoneout,
                         input_dim=input_dim, input_length=input_length, name=name, dtype=dtype,
                         trainable=trainable, input_shape=input_shape, batch_size=batch_size,
                         batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)

    def initial_bias(self):
        bias = super().initial_bias()  # (4H,)
        if self.unit_forget_bias:
            H = self.units
            rest = initializers.get(self.bias_initializer)((2 * H,), self.dtype)
            bias = np.concatenate([bias[:H], np.ones(H, self.dtype), rest])  # gates i, f, c, o
        return bias

    def initial_cell_param(self, name, shape):
        return np.ascontiguousarray(initializers.get(self.peephole_initializer)(shape, self.dtype))

    def get_config(self):
        config = {**super().get_config(), "activation": self.activation,
                  "recurrent_activation": self.recurrent_activation,
                  "unit_forget_bias": self.unit_forget_bias}
        if self.use_peepholes:  # only then: a plain LSTM's config stays Keras's
            config.update(use_peepholes=True,
                          peephole_initializer=initializers.serialize(self.peephole_initializer, "zeros"))
        return config


class GRU(Recurrent):
    """Gated recurrent unit, Keras's equations: the reset gate applied after the recurrent
    product (``reset_after=True``, Keras's default and PyTorch's GRU) or to the state before
    it (``reset_after=False``).

    x: (B, T, F) -> (B, T, H) with ``return_sequences``, else (B, H); with ``return_state``
    a list ``[output, h_n (B, H)]``. Weights (Keras layout): kernel (F, 3H),
    recurrent_kernel (H, 3H), bias (2, 3H) with ``reset_after`` (row 0 goes with the input,
    row 1 with the recurrent product), else (3H,); gates z, r, h.

    Args:
        units: H, the size of the state and the output.
        activation: of the candidate and of the cell state in ``h = o * act(c)``: the name of
            an element-wise Keras activation (``fastrnn.modes.ACTIVATIONS``, with ``swish``
            and ``hard_swish``); None is ``"linear"``. tanh and sigmoid, the defaults, run
            fused into the cell; any other pair costs a little more per step.
        recurrent_activation: of the gates, likewise.
        reset_after: apply the reset gate after the recurrent product, ``r * (W_hn h + b_hn)``
            (kernel mode ``gru``), or with False before it, ``W_hn (r * h)`` (kernel mode
            ``gru_reset_before``); see ``fastrnn.modes``.
        use_bias: whether the layer has a bias.
        kernel_initializer: the kernel's initializer: a Keras name or a callable
            ``f(shape, dtype) -> array``.
        recurrent_initializer: the recurrent kernel's, likewise.
        bias_initializer: the bias's, likewise.
        kernel_regularizer: a ``fastrnn.regularizers`` penalty on the kernel (or its name).
        recurrent_regularizer: likewise on the recurrent kernel.
        bias_regularizer: likewise on the bias (GRU's ``(2, 3H)`` bias is one weight).
        kernel_constraint: a ``fastrnn.constraints`` projection of the kernel after each
            step (or its name), along the axes of Keras's layout.
        recurrent_constraint: likewise of the recurrent kernel.
        bias_constraint: likewise of the bias.
        dropout: the fraction of input features dropped in training, one mask per sequence
            for all its steps, as Keras draws it (one per gate with ``recurrent_dropout``);
            in [0, 1).
        recurrent_dropout: the fraction of the state's units dropped in training from the
            recurrent products, masks drawn per sequence for all its steps, as Keras draws them
            (one per gate for LSTM and GRU); in [0, 1).
        return_sequences: return the output of every step, (B, T, H), instead of the last
            one, (B, H).
        return_state: also return the final state(s), each (B, H), after the output.
        go_backwards: read each sequence from its end; with ``return_sequences`` the outputs
            come in reading order, as in Keras.
        stateful: carry the final state of a batch over as the initial state of the next,
            until ``reset_states()`` (no gradient flows into the carried state).
        unroll: accepted for Keras scripts; the kernels choose how to loop.
        zero_output_for_mask: output zeros at masked steps instead of the last real output.
        checkpoint_every: how training keeps what backpropagation needs (fastrnn's own, not
            Keras's): 0 every step; n > 0 a checkpoint of the state every n steps, the rest
            recomputed in the backward pass (less memory, about one more forward's time, the
            same gradients); None (the default) checkpoints only beyond
            ``fastrnn.ops.get_bptt_memory_limit()`` bytes. See ``fastrnn.ops.rnn_forward``.
        zoneout: haste's zoneout (fastrnn's own, not Keras's): in training each unit of h keeps
            its previous value with this probability, drawn afresh at every step; at inference
            h is its expectation. The cell state is never zoned out. In [0, 1).
        input_dim: Keras 2's way of giving ``input_shape=(input_length, input_dim)``.
        input_length: see ``input_dim``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    mode = "gru"

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 reset_after: bool = True, *,
                 use_bias: bool = True, kernel_initializer: str | Callable = "glorot_uniform",
                 recurrent_initializer: str | Callable = "orthogonal",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 recurrent_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 recurrent_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, zero_output_for_mask: bool = False,
                 checkpoint_every: int | None = None,
                 zoneout: float = 0.0,
                 input_dim: int | None = None, input_length: int | None = None,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        self.reset_after = check_flag("GRU: reset_after", reset_after)
        self.mode = "gru" if self.reset_after else "gru_reset_before"
        self.activation = activation_name("GRU: activation", activation)
        self.recurrent_activation = activation_name("GRU: recurrent_activation", recurrent_activation)
        super().__init__(units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences,
                         return_state=return_state, go_backwards=go_backwards, stateful=stateful,
                         unroll=unroll, zero_output_for_mask=zero_output_for_mask,
                         checkpoint_every=checkpoint_every,
                         zoneout=zoneout,
                         input_dim=input_dim, input_length=input_length, name=name, dtype=dtype,
                         trainable=trainable, input_shape=input_shape, batch_size=batch_size,
                         batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)

    def initial_bias(self):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return initializers.get(self.bias_initializer)(shape, self.dtype)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation,
                "recurrent_activation": self.recurrent_activation, "reset_after": self.reset_after}


def activation_name(name: str, value) -> str:
    """A recurrent layer's activation argument as the kernels spell it (None is "linear", as in
    Keras); TypeError or ValueError naming the argument ``name`` otherwise."""
    return check_activation(name, "linear" if value is None else value, None)


def last_real_steps(mask) -> np.ndarray:
    """mask: (T, B) bool in reading order -> (T, B) int64: the last real step at or before
    each step, -1 before a row's first real step."""
    steps = np.where(mask, np.arange(mask.shape[0])[:, None], -1)  # (T, B)
    return np.maximum.accumulate(steps, axis=0) if len(steps) else steps


def repeat_last_real(y, source) -> np.ndarray:
    """y: (T, B, H), source: (T, B) from ``last_real_steps`` -> y with each step replaced by
    the output of its source step, zero where there is none (Keras's masked outputs)."""
    rows = np.arange(y.shape[1])[None, :]  # (1, B)
    out = y[np.maximum(source, 0), rows]  # (T, B, H)
    out[source < 0] = 0
    return out


def repeat_last_real_grad(dy, source) -> np.ndarray:
    """Backward of ``repeat_last_real``: each step's gradient goes to its source step."""
    T, B, H = dy.shape
    grad = np.zeros((T * B, H), dtype=dy.dtype)
    real = source >= 0  # (T, B)
    flat = (source * B + np.arange(B)[None, :])[real]  # rows of the source steps
    np.add.at(grad, flat, dy[real])
    return grad.reshape(T, B, H)
