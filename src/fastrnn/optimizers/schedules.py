"""Learning-rate schedules, Keras 3's: the step size as a function of the optimizer's step.

A schedule is a callable ``schedule(step) -> float``; give one to an optimizer as its
``learning_rate`` and the optimizer evaluates it at its ``iterations`` before each update
(``schedule(0)`` for the first step), as Keras does::

    lr = ExponentialDecay(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.96)
    model.compile(optimizer=SGD(learning_rate=lr), loss="mse")

``optimizer.learning_rate`` then reads the current value, and setting it raises TypeError
(as in Keras, so ``ReduceLROnPlateau`` and ``LearningRateScheduler`` refuse such an
optimizer when they try to change its rate). ``get_config``/``serialize``/``deserialize``
save a schedule with its optimizer, so a saved model keeps it, and ``iterations`` with it.

The formulas are Keras's, computed here in float64 (Keras computes them in float32, so the
two agree to float32 rounding). ``step`` counts from 0.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]


def _real(cls_name: str, name: str, value, positive=False, allow_none=False):
    """A finite real hyperparameter (> 0 with ``positive``), an int if given one (so configs keep
    ``decay_steps: 1000``), else a float; TypeError/ValueError otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{cls_name}: {name} must be a real number, got {value!r}")
    value = int(value) if isinstance(value, Integral) else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{cls_name}: {name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{cls_name}: {name} must be > 0, got {value}")
    return value


def _step(cls_name: str, step) -> float:
    """The optimizer step as a float; TypeError/ValueError for anything but a number >= 0."""
    if isinstance(step, bool) or not isinstance(step, Real):
        try:
            step = float(step)  # a 0-d array
        except (TypeError, ValueError):
            raise TypeError(f"{cls_name}: step must be a number, got {step!r}") from None
    step = float(step)
    if not step >= 0 or math.isinf(step):
        raise ValueError(f"{cls_name}: step must be a finite number >= 0, got {step}")
    return step


class LearningRateSchedule:
    """Base class: implement ``__call__(step) -> float`` and ``get_config()``.

    ``from_config(config)`` calls the constructor with the config's entries.
    """

    def __call__(self, step) -> float:
        raise NotImplementedError(f"learning rate schedule {type(self).__name__} must implement "
                                  "__call__(self, step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"learning rate schedule {type(self).__name__} must implement "
                                  "get_config() to be saved")

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is floored, so the rate drops every ``decay_steps`` steps."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        who = type(self).__name__
        self.initial_learning_rate = _real(who, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(who, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _real(who, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(self.name, step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    boundaries: strictly increasing numbers (at least one); values: one more than boundaries.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        who = type(self).__name__
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(f"{who}: boundaries and values must be lists of numbers, got "
                            f"{type(boundaries).__name__} and {type(values).__name__}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"{who}: values must have one more entry than boundaries, got "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        if not boundaries:
            raise ValueError(f"{who}: boundaries must have at least one entry")
        self.boundaries = [_real(who, f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        self.values = [_real(who, f"values[{i}]", v) for i, v in enumerate(values)]
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{who}: boundaries must be strictly increasing, got {list(boundaries)}")
        self.name = name

    def __call__(self, step):
        step = _step(self.name, step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From ``initial_learning_rate`` to ``end_learning_rate`` over ``decay_steps``::

        (initial - end) * (1 - step / decay_steps) ** power + end      (step capped at decay_steps)

    With ``cycle`` the decay restarts: ``decay_steps`` becomes its first multiple at or above
    ``step`` (``decay_steps`` itself at step 0).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        who = type(self).__name__
        self.initial_learning_rate = _real(who, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(who, "decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _real(who, "end_learning_rate", end_learning_rate)
        self.power = _real(who, "power", power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        step = _step(self.name, step)
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power,
                "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase``
    ``step / decay_steps`` is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        who = type(self).__name__
        self.initial_learning_rate = _real(who, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(who, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _real(who, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _step(self.name, step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _cosine(fraction: float, alpha: float) -> float:
    """The cosine factor from 1 (fraction 0) down to alpha (fraction 1)."""
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    """Cosine decay, after an optional linear warmup.

    Without ``warmup_target``: ``initial_learning_rate * cosine(step / decay_steps)``, the
    factor going from 1 to ``alpha`` (step capped at ``decay_steps``). With it: a linear
    ramp from ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then the
    cosine decay of ``warmup_target`` over the next ``decay_steps``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        who = type(self).__name__
        self.initial_learning_rate = _real(who, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(who, "decay_steps", decay_steps, positive=True)
        self.alpha = _real(who, "alpha", alpha)
        self.name = name
        self.warmup_target = _real(who, "warmup_target", warmup_target, allow_none=True)
        self.warmup_steps = _real(who, "warmup_steps", warmup_steps)
        if self.warmup_steps < 0:
            raise ValueError(f"{who}: warmup_steps must be >= 0, got {warmup_steps}")

    def __call__(self, step):
        step = _step(self.name, step)
        if self.warmup_target is None:
            step = min(step, self.decay_steps)
            return self.initial_learning_rate * _cosine(step / self.decay_steps, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * fraction + self.initial_learning_rate
        fraction = (step - self.warmup_steps) / self.decay_steps
        return self.warmup_target * _cosine(fraction, self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): the factor goes from 1 to ``alpha`` over
    ``first_decay_steps``, then restarts; each period is ``t_mul`` times longer than the one
    before and starts ``m_mul`` times lower."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        who = type(self).__name__
        self.initial_learning_rate = _real(who, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _real(who, "first_decay_steps", first_decay_steps, positive=True)
        self.t_mul = _real(who, "t_mul", t_mul, positive=True)
        self.m_mul = _real(who, "m_mul", m_mul)
        self.alpha = _real(who, "alpha", alpha)
        self.name = name

    def _period(self, fraction: float) -> tuple[float, float]:
        """Steps counted in first periods -> (index of the current period, fraction of it done)."""
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            return restart, fraction - restart
        # Periods 1, t, t**2, ...: period i starts at (1 - t**i) / (1 - t).
        restart = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
        start = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
        return restart, (fraction - start) / self.t_mul ** restart

    def __call__(self, step):
        restart, fraction = self._period(_step(self.name, step) / self.first_decay_steps)
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {cls.__name__: cls for cls in (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay,
    CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"module", "class_name", "config"}``, JSON-serialisable; ``deserialize`` inverts it."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"expected a LearningRateSchedule, got {type(schedule).__name__}")
    return {"module": "fastrnn.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> LearningRateSchedule:
    """A schedule from ``serialize()``'s dict; custom_objects: name -> your schedule class."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a dict from schedules.serialize(), got {config!r}")
    classes = {**_CLASSES, **(custom_objects or {})}
    cls = classes.get(config["class_name"])
    if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise ValueError(f"unknown learning rate schedule {config['class_name']!r}; known: "
                         f"{sorted(_CLASSES)} (pass custom_objects for your own)")
    return cls.from_config(dict(config.get("config", {})))
