"""The non-recurrent layers: ``Dense``, ``Activation``, ``Dropout``, ``Embedding``, ``Masking``,
and the start of a graph, ``InputLayer`` / ``Input``.

All follow Keras 3: ``Dense`` acts on the last axis (so on 3-D input it is applied at
every time step), ``Embedding(mask_zero=True)`` and ``Masking`` produce a ``(B, T)`` mask
for the recurrent layers after them, ``Dropout`` is active only with ``training=True``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fastrnn import constraints, ops, regularizers
from fastrnn._checks import check_int, check_real, shape_tuple
from fastrnn.layers import activations, initializers
from fastrnn.keras_tensor import KerasTensor, Node
from fastrnn.layers.base import Layer, float_dtype

if TYPE_CHECKING:
    from fastrnn.constraints import Constraint
    from fastrnn.regularizers import Regularizer


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis: x (..., F) -> y (..., units).

    Weights: kernel (F, units), bias (units,). Regularizers and constraints as in Keras
    (``fastrnn.regularizers``, ``fastrnn.constraints``).

    Args:
        units: the size of the output's last axis.
        activation: ``None`` (linear) or a name: ``"relu"``, ``"tanh"``, ``"sigmoid"``,
            ``"softmax"``, ``"linear"``.
        use_bias: whether the layer has a bias.
        kernel_initializer: the kernel's initializer: a Keras name or a callable
            ``f(shape, dtype) -> array``.
        bias_initializer: the bias's, likewise.
        kernel_regularizer: a ``fastrnn.regularizers`` penalty on the kernel (or its name).
        bias_regularizer: likewise on the bias.
        kernel_constraint: a ``fastrnn.constraints`` projection of the kernel after each
            step (or its name).
        bias_constraint: likewise of the bias.
        input_dim: Keras 2's way of giving ``input_shape=(input_dim,)``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 2

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 bias_initializer: str | Callable = "zeros",
                 kernel_regularizer: Regularizer | str | None = None,
                 bias_regularizer: Regularizer | str | None = None,
                 kernel_constraint: Constraint | str | None = None,
                 bias_constraint: Constraint | str | None = None,
                 input_dim: int | None = None, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if input_dim is not None and input_shape is None:
            input_shape = (check_int("Dense: input_dim", input_dim, low=0),)
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
            raise TypeError(f"{self.who}: units must be an int, got {units!r}")
        if units <= 0:
            raise ValueError(f"{self.who}: units must be positive, got {units}")
        self.units = int(units)
        self.activation = self.resolve("activation", activations.get, activation)
        self.use_bias = self.flag("use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.resolve("kernel_initializer", initializers.get, kernel_initializer)
        self.resolve("bias_initializer", initializers.get, bias_initializer)
        self.kernel_regularizer = self.resolve("kernel_regularizer", regularizers.get, kernel_regularizer)
        self.bias_regularizer = self.resolve("bias_regularizer", regularizers.get, bias_regularizer)
        self.kernel_constraint = self.resolve("kernel_constraint", constraints.get, kernel_constraint)
        self.bias_constraint = self.resolve("bias_constraint", constraints.get, bias_constraint)
        self.kernel = self.bias = None

    @property
    def params(self):
        return [p for p in (self.kernel, self.bias) if p is not None]

    def weight_regularizers(self):
        return [self.kernel_regularizer] + ([self.bias_regularizer] if self.use_bias else [])

    def weight_constraints(self):
        return [self.kernel_constraint] + ([self.bias_constraint] if self.use_bias else [])

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{self.who}: the size of the last input axis must be known to build")
        self.kernel = initializers.get(self.kernel_initializer)((features, self.units), self.dtype)
        if self.use_bias:
            self.bias = initializers.get(self.bias_initializer)((self.units,), self.dtype)
        super().build(input_shape)

    def call(self, x, training=False, mask=None):
        a = ops.matmul(x.reshape(-1, x.shape[-1]), self.kernel)  # (N, U), leading axes flattened
        a = a.reshape(*x.shape[:-1], self.units)  # (..., U)
        if self.bias is not None:
            a = a + self.bias  # (..., U)
        y = self.activation.forward(a)  # (..., U)
        self._cache = (x, y) if training else None
        return y

    def backward(self, dy):
        x, y = self._backward_cache()
        da = self.activation.backward(dy, y)  # (..., U)
        da2 = da.reshape(-1, self.units)  # (N, U), all leading axes flattened
        x2 = x.reshape(-1, x.shape[-1])  # (N, F)
        self.grads = [ops.matmul(x2.T, da2)]  # (F, U)
        if self.bias is not None:
            self.grads.append(da2.sum(axis=0))  # (U,)
        return ops.matmul(da2, self.kernel.T).reshape(x.shape)  # (..., F)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self.activation.name, use_bias=self.use_bias,
                      kernel_initializer=initializers.serialize(self.kernel_initializer, "glorot_uniform"),
                      bias_initializer=initializers.serialize(self.bias_initializer, "zeros"),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      kernel_constraint=constraints.serialize(self.kernel_constraint),
                      bias_constraint=constraints.serialize(self.bias_constraint))
        return config


class Activation(Layer):
    """Applies an activation ('relu', 'tanh', 'sigmoid', 'softmax', 'linear') element-wise
    (softmax over the last axis).

    Args:
        activation: the function's name.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    def __init__(self, activation: str, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        self.activation = self.resolve("activation", activations.get, activation)

    def call(self, x, training=False, mask=None):
        y = self.activation.forward(x)
        self._cache = y if training else None
        return y

    def backward(self, dy):
        y = self._backward_cache()
        self.grads = []
        return self.activation.backward(dy, y)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by 1/(1-rate).

    ``noise_shape`` (Keras's) lets the mask be shared along axes of size 1, e.g.
    ``(None, 1, F)`` drops the same features at every time step. No-op in inference.

    Args:
        rate: the fraction of inputs dropped, in [0, 1).
        noise_shape: the shape of the mask, broadcast against the input's (None for the
            input's size on that axis).

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    def __init__(self, rate: float, noise_shape: tuple | None = None, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        self.rate = check_real(f"{self.who}: rate", rate, low=0.0, high=1.0, high_open=True)
        self.noise_shape = None if noise_shape is None else shape_tuple(
            noise_shape, f"{self.who}: noise_shape")

    def call(self, x, training=False, mask=None):
        if not training or self.rate == 0:
            self._cache = 1 if training else None  # backward is then the identity
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise ValueError(f"{self.who}: noise_shape {self.noise_shape} must have the input's "
                                 f"rank, got input shape {x.shape}")
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        keep = self.rng.random(shape) >= self.rate  # broadcastable to x
        scale = keep.astype(self.dtype) / self.dtype.type(1 - self.rate)
        self._cache = scale
        return x * scale

    def backward(self, dy):
        scale = self._backward_cache()
        self.grads = []
        return dy * scale

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape))
        return config


class Embedding(Layer):
    """Integer ids (B, T) -> vectors (B, T, output_dim) by table look-up.

    Weights: embeddings (input_dim, output_dim). With ``mask_zero=True`` id 0 is padding:
    the layer outputs a mask (B, T) that is False there, for the recurrent layers after it.
    ``embeddings_regularizer`` and ``embeddings_constraint`` apply to the whole table, as in Keras.

    Args:
        input_dim: the size of the vocabulary: ids lie in [0, input_dim).
        output_dim: the size of each vector.
        embeddings_initializer: Keras's initializer name or a callable ``f(shape, dtype)``.
        embeddings_regularizer: a ``fastrnn.regularizers`` penalty on the table (or its name).
        embeddings_constraint: a ``fastrnn.constraints`` projection of the table after each
            step (or its name).
        mask_zero: treat id 0 as padding and output a mask.
        input_length: Keras 2's way of giving ``input_shape=(input_length,)``.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 1

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: str | Callable = "uniform",
                 embeddings_regularizer: Regularizer | str | None = None,
                 embeddings_constraint: Constraint | str | None = None,
                 mask_zero: bool = False, input_length: int | None = None, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        if input_length is not None and input_shape is None:
            input_shape = (check_int("Embedding: input_length", input_length, low=0),)  # Keras 2's
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{self.who}: {arg} must be a positive int, got {value!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.resolve("embeddings_initializer", initializers.get, embeddings_initializer)
        self.embeddings_regularizer = self.resolve("embeddings_regularizer", regularizers.get, embeddings_regularizer)
        self.embeddings_constraint = self.resolve("embeddings_constraint", constraints.get, embeddings_constraint)
        self.mask_zero = self.flag("mask_zero", mask_zero)
        self.embeddings = None

    @property
    def params(self):
        return [] if self.embeddings is None else [self.embeddings]

    def weight_regularizers(self):
        return [self.embeddings_regularizer]

    def weight_constraints(self):
        return [self.embeddings_constraint]

    def build(self, input_shape):
        init = initializers.get(self.embeddings_initializer)
        self.embeddings = init((self.input_dim, self.output_dim), self.dtype)
        super().build(input_shape)

    def convert_input(self, inputs):
        """ids -> int64 array; floats must hold whole numbers, and all ids must be in range."""
        ids = np.asarray(inputs)
        if ids.dtype.kind == "b" or ids.dtype.kind not in "iuf":
            raise TypeError(f"{self.who}: input must hold integer ids, got dtype {ids.dtype}")
        if ids.dtype.kind == "f":
            if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
                raise ValueError(f"{self.who}: input must hold integer ids, got non-integer values")
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):  # before int64 could wrap
            raise ValueError(f"{self.who}: ids must be in [0, input_dim) = [0, {self.input_dim}), "
                             f"got values from {ids.min()} to {ids.max()}")
        return ids.astype(np.int64)

    def check_input_shape(self, shape):
        if len(shape) < 1:
            raise ValueError(f"{self.who} expects input of rank >= 1, got shape {tuple(shape)}")

    def call(self, x, training=False, mask=None):
        self._cache = x if training else None
        return self.embeddings[x]  # (..., D)

    def backward(self, dy):
        ids = self._backward_cache()
        grad = np.zeros_like(self.embeddings)  # (V, D)
        np.add.at(grad, ids.reshape(-1), dy.reshape(-1, self.output_dim))  # repeated ids add up
        self.grads = [grad]
        return None  # ids are not differentiable

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0  # (B, T)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim, mask_zero=self.mask_zero,
                      embeddings_initializer=initializers.serialize(self.embeddings_initializer, "uniform"),
                      embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                      embeddings_constraint=constraints.serialize(self.embeddings_constraint))
        return config


class Masking(Layer):
    """Marks as padding every time step whose features all equal ``mask_value``.

    x (B, T, F) -> x with those steps zeroed (as Keras does), and a mask (B, T).

    Args:
        mask_value: the value that marks a padded step.

    Every layer also takes ``name``, ``dtype`` (``"float32"`` or ``"float64"``), ``trainable``,
    ``input_shape``, ``batch_size``, ``batch_input_shape``, ``seed`` and
    ``activity_regularizer``; see ``Layer``.
    """

    min_ndim = 2

    def __init__(self, mask_value: float = 0.0, *,
                 name: str | None = None, dtype: str | np.dtype = "float32",
                 trainable: bool = True, input_shape: tuple | None = None,
                 batch_size: int | None = None, batch_input_shape: tuple | None = None,
                 seed: int | None = None,
                 activity_regularizer: Regularizer | str | None = None):
        super().__init__(name=name, dtype=dtype, trainable=trainable, input_shape=input_shape,
                         batch_size=batch_size, batch_input_shape=batch_input_shape, seed=seed,
                         activity_regularizer=activity_regularizer)
        self.mask_value = check_real(f"{self.who}: mask_value", mask_value)

    def _step_mask(self, x):
        return np.any(x != self.mask_value, axis=-1)  # (B, T)

    def call(self, x, training=False, mask=None):
        keep = self._step_mask(x)[..., None].astype(self.dtype)  # (B, T, 1)
        self._cache = keep if training else None
        return x * keep

    def backward(self, dy):
        keep = self._backward_cache()
        self.grads = []
        return dy * keep

    def compute_mask(self, inputs, mask=None):
        return self._step_mask(np.asarray(inputs))

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


_INPUT_DTYPES = ("float32", "float64", "int32", "int64")


class InputLayer(Layer):
    """The start of a graph: ``Input(shape)`` makes one and returns its symbolic output.

    shape: the shape of one sample (no batch axis), None where it varies, e.g. ``(None, 8)``
    for sequences of any length; or batch_shape with the batch axis first. dtype: 'float32'
    (the default), 'float64', or 'int32'/'int64' for token ids. Arrays given to the model for
    this input are converted to that dtype, as Keras does: an integer input takes integers,
    or floats holding whole numbers (anything else is a ValueError).

    ``Sequential`` takes one first to declare its input shape, and does not list it in
    ``model.layers``, as in Keras 3; a functional model lists its InputLayers first.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None,
                 input_shape=None, batch_input_shape=None, **kwargs):
        batch_shape = batch_input_shape if batch_shape is None else batch_shape
        shape = input_shape if shape is None else shape
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer takes shape or batch_shape, not both")
        if shape is None and batch_shape is None:
            raise ValueError("InputLayer needs a shape, e.g. Input(shape=(timesteps, features))")
        if batch_shape is None:
            batch_shape = (batch_size, *shape_tuple(shape, "InputLayer shape"))
        batch_shape = shape_tuple(batch_shape, "InputLayer batch_shape")
        if not batch_shape:
            raise ValueError("InputLayer needs a batch axis: batch_shape must have at least one axis")
        dtype = _input_dtype(dtype)
        super().__init__(name=name, batch_input_shape=batch_shape, **kwargs)
        self.dtype = dtype
        self.converts = True  # Sequential's own input leaves the conversion to its first layer
        self.input_shape = batch_shape
        self.built = True
        tensor = KerasTensor(batch_shape, dtype.name, name=self.name)
        Node(self, outputs=[tensor])

    @property
    def batch_shape(self) -> tuple:
        return self.batch_input_shape

    def prepare(self, x, what: str) -> np.ndarray:
        """An array given to the model for this input: its rank checked, and converted (see the
        class docstring). A missing or extra last axis of size 1 is added or dropped, as Keras
        does. The other axes are the layers' to check: a time axis may differ from the shape's."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{what}: input {self.name!r} must hold numbers, got dtype {x.dtype}")
        shape = self.batch_shape
        if x.ndim == len(shape) + 1 and x.shape[-1] == 1:
            x = x[..., 0]
        elif x.ndim == len(shape) - 1 and shape[-1] == 1:
            x = x[..., None]
        if x.ndim != len(shape):
            raise ValueError(f"{what}: input {self.name!r} expects arrays of rank {len(shape)} "
                             f"(shape {shape}), got shape {x.shape}")
        if not self.converts or x.dtype == self.dtype:
            return x
        if self.dtype.kind == "i":
            return _to_integers(x, self.dtype, f"{what}: input {self.name!r}")
        return x.astype(self.dtype)

    def call(self, x, training=False, mask=None):
        return x

    def backward(self, dy):
        self.grads = []
        return dy

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name, "batch_shape": list(self.batch_shape)}


def _input_dtype(dtype) -> np.dtype:
    """Input's ``dtype``: a float one as a layer's (``float_dtype``), or int32/int64 for token ids."""
    if _integer_name(dtype) in ("int32", "int64"):
        return np.dtype(dtype)
    try:
        return float_dtype(dtype)
    except ValueError as error:
        if "not supported yet" in str(error):
            raise
        raise ValueError(f"Input dtype must be one of {_INPUT_DTYPES}, got {dtype!r}") from None


def _integer_name(dtype) -> str | None:
    """The NumPy name of ``dtype`` when it is a str, type or np.dtype NumPy knows; else None."""
    if not isinstance(dtype, (str, np.dtype, type)):
        return None
    try:
        return np.dtype(dtype).name
    except TypeError:
        return None


def _to_integers(x, dtype, who):
    """x -> integers of ``dtype``; ValueError for values that are not whole or do not fit."""
    if x.dtype.kind == "f" and x.size and (not np.all(np.isfinite(x)) or np.any(x != np.round(x))):
        raise ValueError(f"{who} takes integers ({dtype.name}), got non-integer values")
    info = np.iinfo(dtype)
    if x.size and x.dtype.kind != "b" and (x.min() < info.min or x.max() > info.max):
        raise ValueError(f"{who} takes {dtype.name} values, got values from {x.min()} to {x.max()}")
    return x.astype(dtype)


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):  # noqa: N802
    """Keras's ``Input``: the symbolic tensor a graph of layers starts from.

    ``fastrnn.Model(inputs, outputs)`` runs the layers called on it; ``Sequential`` also takes
    it first, to declare the input shape. See ``InputLayer`` for the arguments."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name).output
