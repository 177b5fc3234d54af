"""Optimizers: SGD, Adam, AdamW, RMSprop and Adagrad, with Keras 3's defaults and update rules.

An optimizer updates a list of NumPy parameter arrays in place from a list of
gradients of the same shapes::

    opt = Adam(learning_rate=1e-3)
    opt.apply_gradients(params, grads)   # params[i] -= ...; opt.iterations += 1

Per-parameter state ("slots", e.g. Adam's first and second moments) is created on
the first call, one array per slot name and parameter position, so the params must
come in the same order on every call. Each step does, as Keras 3 does:

1. cast each gradient to its parameter's dtype;
2. clip: ``clipvalue`` (elementwise), then ``clipnorm`` (each variable's L2 norm) or
   ``global_clipnorm`` (the L2 norm of all gradients together);
3. decay the weights if ``weight_decay`` is set: ``p -= lr * weight_decay * p``
   (decoupled, before the update; this is what makes AdamW);
4. the optimizer's own update (``update_step``), then ``iterations += 1``.

A variable is one parameter array, unless ``apply_gradients`` is told that several arrays
form one Keras variable (``groups``): a model passes GRU's bias, which Keras keeps as one
``(2, 3H)`` variable and the kernels as ``b_ih`` and ``b_hh``, so that ``clipnorm`` clips
the two together as Keras does.

``learning_rate`` is a float or a schedule (``fastrnn.optimizers.schedules``), evaluated
at ``iterations`` before each step as Keras does.

Keras 3 refuses to combine the clipping options; here ``clipvalue`` may be combined
with one of the two norm clippings, applied in the order above.

Non-finite gradients are applied as they come (NaNs propagate, nothing raises):
stopping a diverged run is the job of ``fastrnn.callbacks.TerminateOnNaN``.

``get_state``/``set_state`` save and restore ``iterations`` and the slots, so a
resumed run continues exactly; ``get_config``/``serialize``/``deserialize`` save the
hyperparameters.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from fastrnn._args import check_bool
from fastrnn.optimizers import schedules
from fastrnn.optimizers.schedules import LearningRateSchedule

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad",
    "get", "serialize", "deserialize", "schedules",
]


def _check_number(name: str, value, low=None, high=None, low_open=False, allow_none=False):
    """Validate a scalar hyperparameter; return it as a float (or None)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


class Optimizer:
    """Base class: clipping, weight decay, slot bookkeeping, state and config.

    A subclass sets ``slot_names`` (the per-parameter arrays it keeps, in saving
    order) and implements ``update_step(param, grad, slots, learning_rate)``, which
    updates ``param`` and the arrays of the dict ``slots`` in place.

    learning_rate: step size (float >= 0), which may be changed between steps; or a
        ``LearningRateSchedule`` (then the rate is ``schedule(iterations)`` and cannot be set),
        or a function of no arguments called before each step.
    weight_decay: decoupled decay factor, ``p -= learning_rate * weight_decay * p``.
    clipnorm: clip each gradient to this L2 norm.
    clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm: clip all gradients together to this L2 norm.
    name: a label for the optimizer.
    """

    slot_names: tuple = ()

    def __init__(self, learning_rate: float, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, name: str | None = None):
        self.learning_rate = learning_rate
        self.weight_decay = _check_number("weight_decay", weight_decay, low=0.0, allow_none=True)
        self.clipnorm = _check_number("clipnorm", clipnorm, low=0.0, low_open=True, allow_none=True)
        self.clipvalue = _check_number("clipvalue", clipvalue, low=0.0, low_open=True, allow_none=True)
        self.global_clipnorm = _check_number(
            "global_clipnorm", global_clipnorm, low=0.0, low_open=True, allow_none=True)
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError("set only one of clipnorm (per tensor) and global_clipnorm (all tensors), "
                             f"got clipnorm={clipnorm}, global_clipnorm={global_clipnorm}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        # slot name -> one array per parameter position; None until the first step.
        self._slots: dict[str, list[np.ndarray]] | None = None

    # ------------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float:
        """The current step size (a schedule's value at ``iterations``); callbacks such as
        ReduceLROnPlateau change it, unless it comes from a schedule."""
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return self._checked_rate(rate(self.iterations), f"{type(rate).__name__} at step {self.iterations}")
        if callable(rate):
            return self._checked_rate(rate(), "the learning_rate function")
        return rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, LearningRateSchedule) or callable(value):
            self._learning_rate = value
            return
        if isinstance(getattr(self, "_learning_rate", None), LearningRateSchedule):
            raise TypeError(f"{type(self).__name__} was created with a LearningRateSchedule as its "
                            "learning_rate, so its learning rate cannot be set; create the optimizer "
                            "with a float learning_rate to change it during training")
        self._learning_rate = _check_number("learning_rate", value, low=0.0)

    @staticmethod
    def _checked_rate(value, source: str) -> float:
        is_scalar_array = isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf"
        if isinstance(value, bool) or not (isinstance(value, Real) or is_scalar_array):
            raise TypeError(f"{source} must give a real number as the learning rate, got {value!r}")
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{source} gave the learning rate {value}; it must be finite and >= 0")
        return value

    # ------------------------------------------------------------------ the step
    def apply_gradients(self, params: list, grads: list, groups=None) -> None:
        """Update each ``params[i]`` in place from ``grads[i]`` (same shape); one step.

        params: list of float ndarrays, the same positions on every call.
        grads: list of arrays shaped like the params; a None entry leaves its param as is.
        groups: index tuples into params, each the arrays of one variable, which ``clipnorm``
            clips as one (see the module docstring); a param in no group is a variable alone.
        """
        params, grads = self._check_inputs(params, grads)
        groups = self._check_groups(groups, len(params))
        if not params:
            return  # nothing to train: not a step (as Keras)
        if self._slots is None:
            self._build(params)
        else:
            self._check_built_for(params)
        lr = self.learning_rate  # a schedule's value for this step, checked before any update
        clipped = self._clip(grads, groups)
        with np.errstate(all="ignore"):  # non-finite grads are applied, not raised
            for i, grad in enumerate(clipped):
                if grad is None:
                    continue
                param = params[i]
                if self.weight_decay:
                    param -= param * (lr * self.weight_decay)
                slots = {name: arrays[i] for name, arrays in self._slots.items()}
                self.update_step(param, grad, slots, lr)
        self.iterations += 1

    def update_step(self, param: np.ndarray, grad: np.ndarray, slots: dict, learning_rate: float) -> None:
        """Update ``param`` (and ``slots``) in place from ``grad``; subclasses implement it."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_step")

    def slot_initial_value(self, slot_name: str) -> float:
        """The value a slot starts at (zero unless a subclass says otherwise)."""
        return 0.0

    def _check_inputs(self, params, grads):
        if not isinstance(params, (list, tuple)) or not isinstance(grads, (list, tuple)):
            raise TypeError("params and grads must be lists of arrays, got "
                            f"{type(params).__name__} and {type(grads).__name__}")
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} params but {len(grads)} grads")
        checked = []
        for i, (param, grad) in enumerate(zip(params, grads)):
            if not isinstance(param, np.ndarray):
                raise TypeError(f"params[{i}] must be a numpy ndarray (updated in place), "
                                f"got {type(param).__name__}")
            if not np.issubdtype(param.dtype, np.floating):
                raise TypeError(f"params[{i}] must have a floating dtype, got {param.dtype}")
            if not param.flags.writeable:
                raise ValueError(f"params[{i}] is read-only; it is updated in place")
            if grad is None:
                checked.append(None)
                continue
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise ValueError(f"grads[{i}] has shape {grad.shape} but params[{i}] has shape {param.shape}")
            checked.append(grad.astype(param.dtype, copy=False))
        return params, checked

    @staticmethod
    def _check_groups(groups, n_params: int) -> list:
        """groups as a list of index tuples, each index in range and in one group at most."""
        if groups is None:
            return []
        if not isinstance(groups, (list, tuple)):
            raise TypeError(f"groups must be a list of index tuples, got {type(groups).__name__}")
        seen = set()
        checked = []
        for k, group in enumerate(groups):
            if not isinstance(group, (list, tuple)) or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in group):
                raise TypeError(f"groups[{k}] must be a tuple of param indices, got {group!r}")
            for i in group:
                if not 0 <= i < n_params:
                    raise ValueError(f"groups[{k}] has index {i}, out of range for {n_params} params")
                if i in seen:
                    raise ValueError(f"param {i} is in more than one group")
                seen.add(i)
            checked.append(tuple(int(i) for i in group))
        return checked

    def _build(self, params) -> None:
        """Create the slots: one array per slot name and parameter, shaped like it."""
        self._slots = {
            name: [np.full_like(p, self.slot_initial_value(name)) for p in params]
            for name in self.slot_names
        }

    def _check_built_for(self, params) -> None:
        self._check_slots_for(self._slots, params)

    @staticmethod
    def _check_slots_for(slots: dict, params) -> None:
        """ValueError unless slots (name -> one array per param) fit params; casts them to the
        params' dtypes."""
        n_built = len(next(iter(slots.values()))) if slots else None
        if n_built is not None and len(params) != n_built:
            raise ValueError(f"this optimizer was built for {n_built} params, got {len(params)}; "
                             "pass the same list on every call, or use a new optimizer")
        for name, arrays in slots.items():
            for i, (param, slot) in enumerate(zip(params, arrays)):
                if slot.shape != param.shape:
                    raise ValueError(f"params[{i}] has shape {param.shape} but the optimizer's "
                                     f"{name!r} slot for it has shape {slot.shape}")
                if slot.dtype != param.dtype:  # restored state: follow the params' dtype
                    arrays[i] = slot.astype(param.dtype)

    def _n_params(self):
        if not self._slots:
            return None
        return len(next(iter(self._slots.values())))

    # ------------------------------------------------------------------ clipping
    def _clip(self, grads: list, groups: list) -> list:
        """Apply clipvalue, then clipnorm (per variable: a group, or a param alone) or
        global_clipnorm, as Keras defines them. grads: None where a param has none."""
        grads = list(grads)
        live = [i for i, g in enumerate(grads) if g is not None]
        with np.errstate(all="ignore"):
            if self.clipvalue is not None:
                for i in live:
                    grads[i] = np.clip(grads[i], -self.clipvalue, self.clipvalue)
            if self.clipnorm is not None:
                grouped = {i for group in groups for i in group}
                variables = [[i for i in group if grads[i] is not None] for group in groups]
                variables += [[i] for i in live if i not in grouped]
                for variable in variables:
                    clipped = self._clip_by_norm([grads[i] for i in variable], self.clipnorm)
                    for i, g in zip(variable, clipped):
                        grads[i] = g
            elif self.global_clipnorm is not None:
                clipped = self._clip_by_global_norm([grads[i] for i in live], self.global_clipnorm)
                for i, g in zip(live, clipped):
                    grads[i] = g
        return grads

    @staticmethod
    def _clip_by_norm(gs: list, clip: float) -> list:
        """The arrays of one variable scaled together: g * clip / max(||g||, clip), unchanged
        when their joint L2 norm is at most clip."""
        norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gs))
        if math.isfinite(norm):
            return [g * (clip / max(norm, clip)) for g in gs]
        return [g * clip / norm for g in gs]

    @staticmethod
    def _clip_by_global_norm(grads: list, clip: float) -> list:
        total = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)
        norm = math.sqrt(total)
        if not math.isfinite(norm):
            return [g * np.nan for g in grads]  # as Keras: a non-finite norm poisons every grad
        scale = clip / max(norm, clip)
        return [g * scale for g in grads]

    # ------------------------------------------------------------------ state
    def get_state(self) -> list:
        """``[iterations, *slots]``: an int64 scalar then copies of the slot arrays.

        Slots are listed name by name (in ``slot_names`` order), each over the
        parameter positions. Empty slots before the first step.
        """
        state = [np.array(self.iterations, dtype=np.int64)]
        if self._slots:
            for name in self.slot_names:
                state.extend(a.copy() for a in self._slots[name])
        return state

    def set_state(self, state: list, params=None) -> None:
        """Restore what ``get_state`` returned; the next step continues from there.

        params: the list the next steps will update (e.g. ``model.trainable_params``), to check
        the slots against now rather than at the first step. A ValueError changes nothing.
        """
        if not isinstance(state, (list, tuple)) or len(state) == 0:
            raise ValueError("state must be a non-empty list [iterations, *slots] from get_state()")
        iterations = np.asarray(state[0])
        if iterations.shape != () or not np.issubdtype(iterations.dtype, np.integer) or iterations < 0:
            raise ValueError(f"state[0] must be a non-negative integer scalar (iterations), got {state[0]!r}")
        arrays = [np.array(a) for a in state[1:]]
        n_kinds = len(self.slot_names)
        if n_kinds == 0 and arrays:
            raise ValueError(f"{type(self).__name__} keeps no slots, but state has {len(arrays)} arrays")
        if n_kinds and len(arrays) % n_kinds:
            raise ValueError(f"state has {len(arrays)} slot arrays, not a multiple of the "
                             f"{n_kinds} slot kinds {self.slot_names}")
        n_params = len(arrays) // n_kinds if n_kinds else 0
        slots = {name: arrays[k * n_params:(k + 1) * n_params] for k, name in enumerate(self.slot_names)}
        if arrays and self._slots:
            if n_params != self._n_params():
                raise ValueError(f"state holds slots for {n_params} params, "
                                 f"this optimizer has {self._n_params()}")
            for name in self.slot_names:
                for i, (old, new) in enumerate(zip(self._slots[name], slots[name])):
                    if old.shape != new.shape:
                        raise ValueError(f"state slot {name!r}[{i}] has shape {new.shape}, expected {old.shape}")
                    slots[name][i] = new.astype(old.dtype)
        if arrays and params is not None:
            self._check_slots_for(slots, list(params))
        self.iterations = int(iterations)
        # With no slot arrays (a fresh optimizer's state) the slots are built on the next step.
        self._slots = slots if arrays else None

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """The hyperparameters as a JSON-serialisable dict, with ``class_name``; a schedule as
        ``schedules.serialize`` gives it (a plain function cannot be saved: ValueError)."""
        return {
            "class_name": type(self).__name__,
            "name": self.name,
            "learning_rate": self._learning_rate_config(),
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    def _learning_rate_config(self):
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return schedules.serialize(rate)
        if callable(rate):
            raise ValueError(f"{type(self).__name__}: a learning_rate given as a function cannot be "
                             "saved; use a fastrnn.optimizers.schedules.LearningRateSchedule")
        return rate

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> "Optimizer":
        """A new optimizer from ``get_config()``'s dict (``class_name`` is ignored).

        custom_objects: name -> class, for a user-defined learning rate schedule.
        """
        config = {k: v for k, v in config.items() if k != "class_name"}
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        rate = self._learning_rate
        shown = f"{rate:g}" if isinstance(rate, float) else repr(rate)
        return f"{type(self).__name__}(learning_rate={shown}, iterations={self.iterations})"


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum, as Keras 3 writes it::

        m = momentum * m - lr * g
        p += m                              (plain momentum)
        p += momentum * m - lr * g          (nesterov, with the new m)

    With ``momentum=0`` this is ``p -= lr * g`` and no slot is kept.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name: str = "SGD"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = _check_number("momentum", momentum, low=0.0, high=1.0)
        self.nesterov = check_bool("nesterov", nesterov)
        self.slot_names = ("momentum",) if self.momentum > 0 else ()

    def update_step(self, param, grad, slots, learning_rate):
        if not self.slot_names:
            param -= learning_rate * grad
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= learning_rate * grad
        if self.nesterov:
            param += self.momentum * m - learning_rate * grad
        else:
            param += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, with Keras's bias correction folded into the step size::

        t = iterations + 1
        m += (1 - beta_1) * (g - m)
        v += (1 - beta_2) * (g**2 - v)
        v_hat = max(v_hat, v)               (amsgrad only; then v_hat replaces v below)
        p -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)

    Note where epsilon sits: PyTorch adds it to ``sqrt(v / (1 - beta_2**t))``
    instead, so the two agree exactly only for ``epsilon=0``.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "adam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = _check_number("beta_1", beta_1, low=0.0, high=1.0)
        self.beta_2 = _check_number("beta_2", beta_2, low=0.0, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon, low=0.0)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.slot_names = ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def update_step(self, param, grad, slots, learning_rate):
        t = self.iterations + 1
        alpha = learning_rate * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * (1.0 - self.beta_1)
        v += (np.square(grad) - v) * (1.0 - self.beta_2)
        if self.amsgrad:
            v = np.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
        param -= (m * alpha) / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p -= lr * weight_decay * p`` before each Adam step.

    Keras's default ``weight_decay`` is 0.004 (PyTorch's AdamW uses 0.01).
    """

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "adamw"):
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay (a float >= 0), got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)


class RMSprop(Optimizer):
    """RMSprop as Keras 3 writes it (epsilon inside the square root)::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g                     (centered only)
        step = lr * g / sqrt(v - a**2 + epsilon)        (centered; else sqrt(v + epsilon))
        mom = momentum * mom + step;  p -= mom           (momentum > 0)
        p -= step                                       (momentum = 0)

    PyTorch adds epsilon outside the square root; the two agree for ``epsilon=0``.
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name: str = "rmsprop"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = _check_number("rho", rho, low=0.0, high=1.0)
        self.momentum = _check_number("momentum", momentum, low=0.0, high=1.0)
        self.epsilon = _check_number("epsilon", epsilon, low=0.0)
        self.centered = check_bool("centered", centered)
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        self.slot_names = tuple(names)

    def update_step(self, param, grad, slots, learning_rate):
        v = slots["velocity"]
        v *= self.rho
        v += (1.0 - self.rho) * np.square(grad)
        if self.centered:
            a = slots["average_gradient"]
            a *= self.rho
            a += (1.0 - self.rho) * grad
            denominator = v - np.square(a) + self.epsilon
        else:
            denominator = v + self.epsilon
        step = learning_rate * grad / np.sqrt(denominator)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom *= self.momentum
            mom += step
            param -= mom
        else:
            param -= step

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad as Keras 3 writes it (epsilon inside the square root)::

        acc += g**2                        (acc starts at initial_accumulator_value)
        p -= lr * g / sqrt(acc + epsilon)

    PyTorch adds epsilon outside the square root; the two agree for ``epsilon=0``.
    """

    slot_names = ("accumulator",)

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name: str = "adagrad"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = _check_number(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.epsilon = _check_number("epsilon", epsilon, low=0.0)

    def slot_initial_value(self, slot_name):
        return self.initial_accumulator_value

    def update_step(self, param, grad, slots, learning_rate):
        acc = slots["accumulator"]
        acc += np.square(grad)
        param -= learning_rate * grad / np.sqrt(acc + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


# ---------------------------------------------------------------------- lookup
_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)}
_BY_LOWER_NAME = {name.lower(): cls for name, cls in _CLASSES.items()}


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": {...}}``, JSON-serialisable; ``deserialize`` inverts it."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"expected an Optimizer, got {type(optimizer).__name__}")
    config = optimizer.get_config()
    return {"module": "fastrnn.optimizers", "class_name": config.pop("class_name"), "config": config}


def deserialize(config: dict, custom_objects: dict | None = None) -> Optimizer:
    """An optimizer from ``serialize()``'s dict or from a ``get_config()`` dict.

    custom_objects: name -> class, for user-defined optimizers and learning rate schedules.
    """
    if not isinstance(config, dict):
        raise TypeError(f"expected a dict from serialize(), got {type(config).__name__}")
    if "class_name" not in config:
        raise ValueError(f"optimizer config has no 'class_name': {config!r}")
    class_name = config["class_name"]
    params = dict(config["config"] if "config" in config else config)
    classes = {**_CLASSES, **(custom_objects or {})}
    if class_name not in classes:
        raise ValueError(f"unknown optimizer class {class_name!r}; known: {sorted(classes)}")
    if isinstance(params.get("learning_rate"), dict):  # here, so that from_config needs no custom_objects
        params["learning_rate"] = schedules.deserialize(params["learning_rate"], custom_objects)
    return classes[class_name].from_config(params)


def get(identifier) -> Optimizer:
    """An Optimizer from a name ('adam', case-insensitive), an instance (as is) or a config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_LOWER_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; valid names: {sorted(_BY_LOWER_NAME)}")
        return cls()
    raise TypeError("optimizer must be a name, an Optimizer or a config dict, "
                    f"got {type(identifier).__name__}: {identifier!r}")
