"""Primitive schedules. Each is a frozen dataclass; ``schedule(t)`` is the multiplier for the t-th update.

All of them are constant after their ``end`` (no cosine rebound past the last step), continuous where pieces
meet, and validated at construction (``ValueError``/``TypeError`` naming the argument).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._rectification import rectification as _rectification
from .._rectification import rho_t
from .._validate import (
    check_choice,
    check_in_unit_interval,
    check_nonnegative,
    check_positive,
    check_real,
    check_steps,
)
from ._base import Schedule, register

__all__ = [
    "Constant",
    "Cosine",
    "Exponential",
    "InverseSqrt",
    "LinearDecay",
    "LinearWarmup",
    "Noam",
    "OneMinusSqrtDecay",
    "Rectification",
    "StepDecay",
    "UntunedWarmup",
]


def _check_final(final: float) -> None:
    check_in_unit_interval("final", final, closed=True)


def _check_gamma(gamma: float) -> None:
    """A decay factor: 0 < γ ≤ 1 (a growing γ^t overflows within a training run)."""
    if check_real("gamma", gamma) <= 0 or gamma > 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")


@register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    """f(t) = value."""

    value: float = 1.0

    def __post_init__(self) -> None:
        check_nonnegative("value", self.value)

    def at(self, t: float) -> float:
        return float(self.value)


@register("linear_warmup")
@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """Linear warm-up from ``start`` to 1 over ``warmup_steps`` updates, then 1.

    f(t) = start + (1 − start)·min(t, w)/w, so the first update uses start + (1 − start)/w (never LR 0).
    """

    warmup_steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        check_steps("warmup_steps", self.warmup_steps, minimum=1)
        check_in_unit_interval("start", self.start, closed=True)

    def at(self, t: float) -> float:
        if t >= self.warmup_steps:
            return 1.0  # exactly: start + (1 − start)·w/w can round above 1
        return self.start + (1.0 - self.start) * t / self.warmup_steps

    @property
    def end(self) -> float:
        return float(self.warmup_steps)


@dataclass(frozen=True)
class _Decay(Schedule):
    """A decay from 1 (t = 0) to ``final`` at t = ``decay_steps``, then ``final``: final + (1 − final)·shape(t/n)."""

    decay_steps: int
    final: float = 0.0

    def __post_init__(self) -> None:
        check_steps("decay_steps", self.decay_steps, minimum=1)
        _check_final(self.final)

    def shape(self, x: float) -> float:
        """The decay's shape on x = t/n ∈ [0, 1): from 1 at x = 0 towards 0 at x = 1."""
        raise NotImplementedError

    def at(self, t: float) -> float:
        if t >= self.decay_steps:
            return float(self.final)  # exactly, and flat from there on
        return self.final + (1.0 - self.final) * self.shape(t / self.decay_steps)

    @property
    def end(self) -> float:
        return float(self.decay_steps)


@register("linear_decay")
@dataclass(frozen=True)
class LinearDecay(_Decay):
    """Linear decay: 1 − (1 − final)·t/n until t = n, then ``final``."""

    def shape(self, x: float) -> float:
        return 1.0 - x


@register("cosine")
@dataclass(frozen=True)
class Cosine(_Decay):
    """Half-cosine decay: final + (1 − final)·(1 + cos(π·t/n))/2 until t = n, then ``final`` (no rebound)."""

    def shape(self, x: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * x))


@register("one_minus_sqrt")
@dataclass(frozen=True)
class OneMinusSqrtDecay(_Decay):
    """f(t) = final + (1 − final)·(1 − sqrt(t/n)) for t ≤ n (Hägele et al., 2024: WSD's "1-sqrt" cool-down)."""

    def shape(self, x: float) -> float:
        return 1.0 - math.sqrt(x)


@register("noam")
@dataclass(frozen=True)
class Noam(Schedule):
    """Vaswani et al. (2017): lr(t) = scale · d_model^−0.5 · min(t^−0.5, t · w^−1.5), an *absolute* LR.

    Peak at t = w: scale · (d_model · w)^−0.5. lr(0) = 0.
    """

    d_model: int
    warmup_steps: int
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_steps("d_model", self.d_model, minimum=1)
        check_steps("warmup_steps", self.warmup_steps, minimum=1)
        check_positive("scale", self.scale)

    @property
    def absolute(self) -> bool:
        return True

    def at(self, t: float) -> float:
        if t == 0:
            return 0.0
        return self.scale * self.d_model**-0.5 * min(t**-0.5, t * self.warmup_steps**-1.5)


@register("inverse_sqrt")
@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """fairseq's ``inverse_sqrt``: linear warm-up from ``warmup_init`` to 1 over w updates, then sqrt(w/t)."""

    warmup_steps: int
    warmup_init: float = 0.0

    def __post_init__(self) -> None:
        check_steps("warmup_steps", self.warmup_steps, minimum=1)
        check_in_unit_interval("warmup_init", self.warmup_init, closed=True)

    def at(self, t: float) -> float:
        w = self.warmup_steps
        if t < w:
            return self.warmup_init + (1.0 - self.warmup_init) * t / w
        return math.sqrt(w / t)  # exactly 1 at t = w


@register("step_decay")
@dataclass(frozen=True)
class StepDecay(Schedule):
    """γ^⌊(t − 1)/step_size⌋: the first ``step_size`` updates use 1, the next γ, ... (torch's ``StepLR``)."""

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_steps("step_size", self.step_size, minimum=1)
        _check_gamma(self.gamma)

    def at(self, t: float) -> float:
        return self.gamma ** (max(0, math.ceil(t) - 1) // self.step_size)


@register("exponential")
@dataclass(frozen=True)
class Exponential(Schedule):
    """γ^(t − 1) for t ≥ 1 (torch's ``ExponentialLR``: the first update uses 1)."""

    gamma: float

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)

    def at(self, t: float) -> float:
        return self.gamma ** max(0.0, t - 1)


@register("untuned_warmup")
@dataclass(frozen=True)
class UntunedWarmup(Schedule):
    """Ma & Yarats (2019): a warm-up chosen from β2 alone, over about 2/(1 − β2) updates.

    ``kind="linear"``: min(1, t·(1 − β2)/2); ``kind="exponential"``: 1 − exp(−(1 − β2)·t).
    """

    beta2: float
    kind: str = "linear"

    def __post_init__(self) -> None:
        b = check_real("beta2", self.beta2)
        if not 0 < b < 1:
            raise ValueError(f"beta2 must be in (0, 1), got {self.beta2!r}")
        check_choice("kind", self.kind, ("linear", "exponential"))

    @property
    def period(self) -> float:
        """2/(1 − β2): the length of the linear warm-up (e.g. 2000 updates for β2 = 0.999)."""
        return 2.0 / (1.0 - self.beta2)

    def at(self, t: float) -> float:
        if self.kind == "linear":
            if t >= math.ceil(self.period):
                return 1.0  # flat from its end on, whatever the rounding of t·(1 − β2)/2 there
            return min(1.0, t * (1.0 - self.beta2) / 2.0)
        return 1.0 - math.exp(-(1.0 - self.beta2) * t)

    @property
    def end(self) -> float | None:
        """For the linear kind, the first whole update at or after the period (exactly 1 from there on)."""
        return float(math.ceil(self.period)) if self.kind == "linear" else None


@register("rectification")
@dataclass(frozen=True)
class Rectification(Schedule):
    """RAdam's r_t as a schedule: r_t when ρ_t > ``threshold`` (the step is rectified), else 0.

    The factor by which RAdam scales Adam's step: RAdam is Adam with this built-in warm-up (for β2 = 0.999 it
    is 0.049 at t = 10 and 0.645 at t = 1000; for β2 = 0.98, 0.62 at t = 50).
    """

    beta2: float = 0.999
    threshold: float = 5.0

    def __post_init__(self) -> None:
        b = check_real("beta2", self.beta2)
        if not 0 < b < 1:
            raise ValueError(f"beta2 must be in (0, 1), got {self.beta2!r}")
        if check_real("threshold", self.threshold) < 4:
            raise ValueError(f"threshold must be >= 4, got {self.threshold!r}")

    def at(self, t: float) -> float:
        if t < 1 or rho_t(self.beta2, t) <= self.threshold:  # no update before t = 1
            return 0.0
        return _rectification(self.beta2, t)
