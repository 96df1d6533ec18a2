"""Primitive schedules. Each is a frozen dataclass; ``schedule(t)`` is the multiplier for the t-th update.

All of them are constant after their ``end`` (no cosine rebound past the last step), continuous where pieces
meet, and validated at construction (``ValueError``/``TypeError`` naming the argument).

Values: a multiplier is any finite number. Warm-ups and decays run between 1 (the peak) and a ``start`` or
``final`` anywhere: above 1 is a warm-up from above the peak, or growth; below 0 a negative learning rate, which
:class:`~lrtune.schedules.LRScheduler` refuses to set (as optax, a schedule itself is just a function). With
arguments in [0, 1] (and γ ≤ 1) every multiplier schedule stays in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._rectification import rectification as _rectification
from .._rectification import rho_t
from .._validate import (
    check_choice,
    check_finite,
    check_positive,
    check_real,
    check_steps,
)
from ._base import Schedule, register

__all__ = [
    "Constant",
    "Cosine",
    "CosineWarmup",
    "Exponential",
    "ExponentialWarmup",
    "InverseSqrt",
    "LinearDecay",
    "LinearWarmup",
    "Noam",
    "OneMinusSqrtDecay",
    "OneMinusSqrtWarmup",
    "PolynomialDecay",
    "Rectification",
    "StepDecay",
    "UntunedWarmup",
]


def _check_gamma(gamma: float) -> None:
    """γ > 0: a decay (γ < 1) or growth (γ > 1) factor."""
    if check_real("gamma", gamma) <= 0 or math.isinf(gamma):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")


def _check_beta2(beta2: float | None) -> None:
    if beta2 is not None:
        b = check_real("beta2", beta2)
        if not 0 < b < 1:
            raise ValueError(f"beta2 must be in (0, 1), got {beta2!r}")


def _group_beta2(schedule: Schedule, group: Mapping[str, Any]) -> float:
    """β2 of an optimizer param group (``betas[1]``), for a schedule built without one."""
    betas = group.get("betas")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(
            f"{schedule.spec_name} without beta2 reads each param group's betas[1], but a group has betas={betas!r}; "
            "pass beta2 explicitly"
        )
    return float(betas[1])


def _unbound(schedule: Schedule) -> ValueError:
    return ValueError(
        f"{schedule.spec_name}(beta2=None) takes β2 from an optimizer param group: drive it with LRScheduler, which "
        "binds it to each group, or call .bind(group) (or pass beta2)"
    )


@register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    """f(t) = value."""

    value: float = 1.0

    def __post_init__(self) -> None:
        check_finite("value", self.value)

    def at(self, t: float) -> float:
        return float(self.value)


# -------------------------------------------------------------------------------------------------
# warm-ups: from ``start`` at t = 0 to exactly 1 at t = w, then 1


@dataclass(frozen=True)
class _Warmup(Schedule):
    """A warm-up from ``start`` (t = 0) to 1 at t = ``warmup_steps``, then 1: start + (1 − start)·shape(t/w).

    ``start`` may be any finite value: above 1 the "warm-up" comes down to the peak (optax's ``init_value`` above
    its ``peak_value``).
    """

    warmup_steps: int
    start: float = 0.0

    def __post_init__(self) -> None:
        check_steps("warmup_steps", self.warmup_steps, minimum=1)
        check_finite("start", self.start)

    def shape(self, x: float) -> float:
        """The warm-up's shape on x = t/w ∈ [0, 1): from 0 at x = 0 towards 1 at x = 1."""
        raise NotImplementedError

    def at(self, t: float) -> float:
        if t >= self.warmup_steps:
            return 1.0  # exactly: start + (1 − start)·shape(1) can round off 1
        return self.start + (1.0 - self.start) * self.shape(t / self.warmup_steps)

    @property
    def end(self) -> float:
        return float(self.warmup_steps)


@register("linear_warmup")
@dataclass(frozen=True)
class LinearWarmup(_Warmup):
    """Linear warm-up from ``start`` to 1 over ``warmup_steps`` updates, then 1.

    f(t) = start + (1 − start)·min(t, w)/w, so the first update uses start + (1 − start)/w (never LR 0).
    """

    def shape(self, x: float) -> float:
        return x

    def at(self, t: float) -> float:
        if t >= self.warmup_steps:
            return 1.0
        return self.start + (1.0 - self.start) * t / self.warmup_steps


@register("cosine_warmup")
@dataclass(frozen=True)
class CosineWarmup(_Warmup):
    """Cosine-shaped warm-up: start + (1 − start)·(1 − cos(π·t/w))/2 until t = w, then 1.

    The rising half of a cosine, flat at both ends: optax's ``cosine_onecycle_schedule`` warms up this way, and
    Hugging Face's ``get_wsd_schedule(warmup_type="cosine")``.
    """

    def shape(self, x: float) -> float:
        return 0.5 * (1.0 - math.cos(math.pi * x))


@register("one_minus_sqrt_warmup")
@dataclass(frozen=True)
class OneMinusSqrtWarmup(_Warmup):
    """start + (1 − start)·(1 − sqrt(1 − t/w)) until t = w, then 1: fast at first, flat into the peak (Hugging
    Face's ``get_wsd_schedule(warmup_type="1-sqrt")``, the mirror image of the "1-sqrt" cool-down)."""

    def shape(self, x: float) -> float:
        return 1.0 - math.sqrt(1.0 - x)


@register("exponential_warmup")
@dataclass(frozen=True)
class ExponentialWarmup(Schedule):
    """f(t) = 1 − exp(−t/τ): ``pytorch_warmup.ExponentialWarmup(warmup_period=τ)`` (its t-th update uses f(t)).

    Reaches 1 − 1/e at t = τ and 1 only in the limit (no end).
    """

    period: float

    def __post_init__(self) -> None:
        check_positive("period", self.period)

    def at(self, t: float) -> float:
        return 1.0 - math.exp(-t / self.period)


# -------------------------------------------------------------------------------------------------
# decays: from 1 at t = 0 to ``final`` at t = n, then ``final``


@dataclass(frozen=True)
class _Decay(Schedule):
    """A decay from 1 (t = 0) to ``final`` at t = ``decay_steps``, then ``final``: final + (1 − final)·shape(t/n).

    ``final`` may be any finite value (above 1: the schedule rises to it). ``decay_steps = 0`` is no decay at all:
    f = 1 for every t (optax's convention for ``transition_steps <= 0``; ``final`` is then never reached).
    """

    decay_steps: int
    final: float = 0.0

    def __post_init__(self) -> None:
        check_steps("decay_steps", self.decay_steps, minimum=0)
        check_finite("final", self.final)

    def shape(self, x: float) -> float:
        """The decay's shape on x = t/n ∈ [0, 1): from 1 at x = 0 towards 0 at x = 1."""
        raise NotImplementedError

    def at(self, t: float) -> float:
        if self.decay_steps == 0:
            return 1.0
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


@register("polynomial_decay")
@dataclass(frozen=True)
class PolynomialDecay(_Decay):
    """Polynomial decay: final + (1 − final)·(1 − t/n)^power until t = n, then ``final``.

    optax's ``polynomial_schedule`` (init → end, relative to init) and the decay of Hugging Face's
    ``get_polynomial_decay_schedule_with_warmup`` (``final`` = lr_end / lr_init); power 1 is linear.
    """

    power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("power", self.power)

    def shape(self, x: float) -> float:
        return (1.0 - x) ** self.power


@register("cosine")
@dataclass(frozen=True)
class Cosine(_Decay):
    """Half-cosine decay: final + (1 − final)·((1 + cos(π·t/n))/2)^exponent until t = n, then ``final`` (no
    rebound). ``exponent`` is optax's (``cosine_decay_schedule(exponent=...)``); 1 is the plain half-cosine."""

    exponent: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("exponent", self.exponent)

    def shape(self, x: float) -> float:
        half = 0.5 * (1.0 + math.cos(math.pi * x))
        return half if self.exponent == 1 else half**self.exponent


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
        check_finite("warmup_init", self.warmup_init)

    def at(self, t: float) -> float:
        w = self.warmup_steps
        if t < w:
            return self.warmup_init + (1.0 - self.warmup_init) * t / w
        return math.sqrt(w / t)  # exactly 1 at t = w


@register("step_decay")
@dataclass(frozen=True)
class StepDecay(Schedule):
    """γ^⌊(t − 1)/step_size⌋: the first ``step_size`` updates use 1, the next γ, ... (torch's ``StepLR``).

    γ > 1 grows (an overflowing power gives inf, which LRScheduler refuses to set).
    """

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_steps("step_size", self.step_size, minimum=1)
        _check_gamma(self.gamma)

    def at(self, t: float) -> float:
        return _power(self.gamma, max(0, math.ceil(t) - 1) // self.step_size)


@register("exponential")
@dataclass(frozen=True)
class Exponential(Schedule):
    """γ^((t − 1)/steps) for t ≥ 1 (torch's ``ExponentialLR`` with ``steps=1``: the first update uses 1).

    optax's ``exponential_decay`` in lrtune's terms: ``steps`` is its ``transition_steps`` (0: no decay, f = 1),
    ``staircase=True`` floors the exponent (γ^⌊(t − 1)/steps⌋), and ``final`` is its ``end_value``: a floor
    for a decay (γ < 1), a ceiling otherwise (γ ≥ 1, growth). Its first update uses 1 like optax's (optax's value
    at count c is f(c + 1): ``shift(exponential(...), -1)`` equals optax's function pointwise; its
    ``transition_begin`` b is ``shift(exponential(...), b - 1)``).
    """

    gamma: float
    steps: int = 1
    staircase: bool = False
    final: float | None = None

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)
        check_steps("steps", self.steps, minimum=0)
        if not isinstance(self.staircase, bool):
            raise TypeError(f"staircase must be a bool, got {self.staircase!r}")
        if self.final is not None:
            check_finite("final", self.final)

    def at(self, t: float) -> float:
        if self.steps == 0:
            return 1.0
        exponent = max(0.0, t - 1) / self.steps
        value = _power(self.gamma, math.floor(exponent) if self.staircase else exponent)
        if self.final is None:
            return value
        return max(value, self.final) if self.gamma < 1 else min(value, self.final)


def _power(gamma: float, exponent: float) -> float:
    """γ^e, with inf where it overflows (growth over a long run)."""
    try:
        return float(gamma**exponent)
    except OverflowError:
        return math.inf


# -------------------------------------------------------------------------------------------------
# warm-ups derived from β2


@register("untuned_warmup")
@dataclass(frozen=True)
class UntunedWarmup(Schedule):
    """Ma & Yarats (2019): a warm-up chosen from β2 alone, over about 2/(1 − β2) updates.

    ``kind="linear"``: min(1, t·(1 − β2)/2); ``kind="exponential"``: 1 − exp(−(1 − β2)·t).

    ``beta2=None`` takes β2 from each optimizer param group's ``betas[1]`` (:class:`LRScheduler` binds it), as
    ``pytorch_warmup``'s untuned warm-ups do. ``truncate=True`` computes the period as ``pytorch_warmup`` does,
    with ``int()``: min(1, t/⌊2/(1 − β2)⌋) and 1 − exp(−t/⌊1/(1 − β2)⌋). 1 − β2 is rarely exact in binary (1 − 0.999
    = 0.0010000000000000009), so ⌊2/(1 − β2)⌋ is one update short of 2/(1 − β2) for β2 = 0.999 (1999) and 0.98
    (99): the truncated warm-ups are a little larger early on, and equal the exact ones where the period is whole.
    """

    beta2: float | None = None
    kind: str = "linear"
    truncate: bool = False

    def __post_init__(self) -> None:
        _check_beta2(self.beta2)
        check_choice("kind", self.kind, ("linear", "exponential"))
        if not isinstance(self.truncate, bool):
            raise TypeError(f"truncate must be a bool, got {self.truncate!r}")

    @property
    def period(self) -> float:
        """2/(1 − β2): the length of the linear warm-up (e.g. 2000 updates for β2 = 0.999; 1999 truncated)."""
        if self.beta2 is None:
            raise _unbound(self)
        tau = 2.0 / (1.0 - self.beta2)
        return float(int(tau)) if self.truncate else tau

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return self if self.beta2 is not None else dataclasses.replace(self, beta2=_group_beta2(self, group))

    def at(self, t: float) -> float:
        if self.beta2 is None:
            raise _unbound(self)
        if self.truncate:
            if self.kind == "linear":
                return min(1.0, t / int(2.0 / (1.0 - self.beta2)))
            return 1.0 - math.exp(-t / int(1.0 / (1.0 - self.beta2)))
        if self.kind == "linear":
            if t >= math.ceil(self.period):
                return 1.0  # flat from its end on, whatever the rounding of t·(1 − β2)/2 there
            return min(1.0, t * (1.0 - self.beta2) / 2.0)
        return 1.0 - math.exp(-(1.0 - self.beta2) * t)

    @property
    def end(self) -> float | None:
        """For the linear kind, the first whole update at or after the period (exactly 1 from there on)."""
        if self.kind != "linear" or self.beta2 is None:
            return None
        return float(math.ceil(self.period))


@register("rectification")
@dataclass(frozen=True)
class Rectification(Schedule):
    """RAdam's r_t as a schedule: r_t when ρ_t > ``threshold`` (the step is rectified), else 0.

    The factor by which RAdam scales Adam's step: RAdam is Adam with this built-in warm-up (for β2 = 0.999 it
    is 0.049 at t = 10 and 0.645 at t = 1000; for β2 = 0.98, 0.62 at t = 50). ``beta2=None`` takes β2 from each
    param group (see :class:`UntunedWarmup`). ``pytorch_warmup.RAdamWarmup`` is this with ``threshold=4`` moved
    earlier by its offset: ``shift(rectification(β2, 4), -(δ - 1))``, δ the first t with ρ_t > 4.
    """

    beta2: float | None = 0.999
    threshold: float = 5.0

    def __post_init__(self) -> None:
        _check_beta2(self.beta2)
        if check_real("threshold", self.threshold) < 4:
            raise ValueError(f"threshold must be >= 4, got {self.threshold!r}")

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return self if self.beta2 is not None else dataclasses.replace(self, beta2=_group_beta2(self, group))

    def at(self, t: float) -> float:
        if self.beta2 is None:
            raise _unbound(self)
        if t < 1 or rho_t(self.beta2, t) <= self.threshold:  # no update before t = 1
            return 0.0
        return _rectification(self.beta2, t)
