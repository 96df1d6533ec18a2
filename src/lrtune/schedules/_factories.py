"""The schedule API: lower-case factories for the primitives and the recipes built from them by ``join``.

Recipes (``warmup_linear_decay``, ``warmup_cosine``, ``warmup_polynomial_decay``, ``wsd``) are joins of
primitives, not classes; they are also registered by name so that a spec like ``{"name": "warmup_linear_decay",
"warmup_steps": 4000, "total_steps": 100000}`` builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._validate import check_choice, check_steps
from ._base import Schedule, register_recipe
from ._combinators import Join, Product, Scale, Shift
from ._primitives import (
    Constant,
    Cosine,
    CosineWarmup,
    Exponential,
    ExponentialWarmup,
    InverseSqrt,
    LinearDecay,
    LinearWarmup,
    Noam,
    OneMinusSqrtDecay,
    OneMinusSqrtWarmup,
    PolynomialDecay,
    Rectification,
    StepDecay,
    UntunedWarmup,
)

__all__ = [
    "constant",
    "cooldown",
    "cosine",
    "cosine_warmup",
    "exponential",
    "exponential_warmup",
    "inverse_sqrt",
    "join",
    "linear_decay",
    "linear_warmup",
    "noam",
    "one_minus_sqrt_warmup",
    "polynomial_decay",
    "product",
    "rectification",
    "scale",
    "shift",
    "step_decay",
    "untuned_warmup",
    "warmup_cosine",
    "warmup_linear_decay",
    "warmup_polynomial_decay",
    "wsd",
]


def constant(value: float = 1.0) -> Schedule:
    """f(t) = value."""
    return Constant(value)


def linear_warmup(warmup_steps: int, start: float = 0.0) -> Schedule:
    """start + (1 − start)·min(t, w)/w: the first update uses start + (1 − start)/w."""
    return LinearWarmup(warmup_steps, start)


def cosine_warmup(warmup_steps: int, start: float = 0.0) -> Schedule:
    """start + (1 − start)·(1 − cos(π·min(t, w)/w))/2: a cosine-shaped warm-up to 1."""
    return CosineWarmup(warmup_steps, start)


def one_minus_sqrt_warmup(warmup_steps: int, start: float = 0.0) -> Schedule:
    """start + (1 − start)·(1 − sqrt(1 − min(t, w)/w)): Hugging Face's "1-sqrt" warm-up."""
    return OneMinusSqrtWarmup(warmup_steps, start)


def exponential_warmup(period: float) -> Schedule:
    """1 − exp(−t/τ) (``pytorch_warmup.ExponentialWarmup``)."""
    return ExponentialWarmup(period)


def linear_decay(decay_steps: int, final: float = 0.0) -> Schedule:
    """1 − (1 − final)·t/n until t = n, then ``final`` (n = 0: no decay, 1)."""
    return LinearDecay(decay_steps, final)


def polynomial_decay(decay_steps: int, final: float = 0.0, power: float = 1.0) -> Schedule:
    """final + (1 − final)·(1 − t/n)^power until t = n, then ``final`` (n = 0: no decay, 1)."""
    return PolynomialDecay(decay_steps, final, power)


def cosine(decay_steps: int, final: float = 0.0, exponent: float = 1.0) -> Schedule:
    """final + (1 − final)·((1 + cos(π·t/n))/2)^exponent until t = n, then ``final``."""
    return Cosine(decay_steps, final, exponent)


def noam(d_model: int, warmup_steps: int, scale: float = 1.0) -> Schedule:
    """scale·d_model^−0.5·min(t^−0.5, t·w^−1.5): an absolute learning rate (Vaswani et al., 2017)."""
    return Noam(d_model, warmup_steps, scale)


def inverse_sqrt(warmup_steps: int, warmup_init: float = 0.0) -> Schedule:
    """fairseq's: linear warm-up to 1 over w updates, then sqrt(w/t)."""
    return InverseSqrt(warmup_steps, warmup_init)


def step_decay(step_size: int, gamma: float = 0.1) -> Schedule:
    """γ^⌊(t − 1)/step_size⌋ (torch's StepLR; γ > 1 grows)."""
    return StepDecay(step_size, gamma)


def exponential(gamma: float, steps: int = 1, staircase: bool = False, final: float | None = None) -> Schedule:
    """γ^((t − 1)/steps), floored exponent if ``staircase``, bounded by ``final`` (torch's ExponentialLR; optax's
    exponential_decay, see :class:`Exponential`)."""
    return Exponential(gamma, steps, staircase, final)


def untuned_warmup(beta2: float | None = None, kind: str = "linear", truncate: bool = False) -> Schedule:
    """Ma & Yarats (2019): min(1, t(1 − β2)/2) or 1 − exp(−(1 − β2)t); without ``beta2``, each param group's β2
    (through :class:`LRScheduler`); ``truncate=True``: pytorch_warmup's int() periods."""
    return UntunedWarmup(beta2, kind, truncate)


def rectification(beta2: float | None = 0.999, threshold: float = 5.0) -> Schedule:
    """RAdam's r_t (0 on un-rectified steps): Adam's built-in warm-up under RAdam (beta2=None: each group's)."""
    return Rectification(beta2, threshold)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Pieces one after another, each with its own local t (see :class:`Join`)."""
    return Join(tuple(schedules), tuple(boundaries))


def product(*schedules: Schedule) -> Schedule:
    """f(t) = Π f_i(t)."""
    return Product(tuple(schedules))


def scale(schedule: Schedule, factor: float) -> Schedule:
    """f(t) = factor·g(t)."""
    return Scale(schedule, factor)


def cooldown(schedule: Schedule, at: int, steps: int) -> Schedule:
    """``schedule`` up to update ``at``, then its multiplier there decayed linearly to 0 over ``steps`` updates:
    a branch of a run on ``schedule`` that ends at update ``at + steps`` (trained from the run's checkpoint at
    ``at``), to compare runs after a decay instead of in the middle of their schedules. ``schedule`` must not
    read its param group's hyper-parameters (e.g. an untuned warm-up without ``beta2``): its value at ``at``
    is fixed here."""
    at = check_steps("at", at, minimum=1)
    steps = check_steps("steps", steps, minimum=1)
    return join([schedule, scale(linear_decay(steps), schedule.at(at))], [at])


def shift(schedule: Schedule, offset: int) -> Schedule:
    """f(t) = g(max(0, t − offset)); ``shift(g, 1)`` is Hugging Face's convention; offsets may be negative."""
    return Shift(schedule, offset)


_WARMUPS: dict[str, Callable[[int, float], Schedule]] = {
    "linear": LinearWarmup,
    "cosine": CosineWarmup,
    "1-sqrt": OneMinusSqrtWarmup,
}


def _warmup_then(
    warmup_steps: int, total_steps: int, decay: Callable[[int], Schedule], label: str, start: float
) -> Schedule:
    w = check_steps("warmup_steps", warmup_steps, minimum=0)
    n = check_steps("total_steps", total_steps, minimum=1)
    if w >= n:
        raise ValueError(f"warmup_steps must be < total_steps ({n}), got {warmup_steps!r}")
    if w == 0:
        return decay(n)
    return Join((LinearWarmup(w, start), decay(n - w)), (w,), label)


@register_recipe("warmup_linear_decay")
def warmup_linear_decay(warmup_steps: int, total_steps: int, final: float = 0.0, start: float = 0.0) -> Schedule:
    """Linear warm-up from ``start`` over ``warmup_steps`` updates, then linear decay to ``final`` at ``total_steps``.

    f(t) equals Hugging Face's ``get_linear_schedule_with_warmup`` λ(t) (final = 0), but lrtune's t-th update
    uses f(t) where HF's uses λ(t − 1): ``shift(warmup_linear_decay(w, n), 1)`` is HF's behaviour.
    """
    return _warmup_then(warmup_steps, total_steps, lambda n: LinearDecay(n, final), "warmup_linear_decay", start)


@register_recipe("warmup_cosine")
def warmup_cosine(
    warmup_steps: int, total_steps: int, final: float = 0.0, start: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """Linear warm-up from ``start``, then half-cosine decay (raised to ``exponent``) to ``final`` at
    ``total_steps``: AlgoPerf's baseline shape; optax's ``warmup_cosine_decay_schedule`` with ``start`` =
    init_value/peak_value, ``final`` = end_value/peak_value and its ``exponent``."""
    return _warmup_then(warmup_steps, total_steps, lambda n: Cosine(n, final, exponent), "warmup_cosine", start)


@register_recipe("warmup_polynomial_decay")
def warmup_polynomial_decay(
    warmup_steps: int, total_steps: int, power: float = 1.0, final: float = 0.0, start: float = 0.0
) -> Schedule:
    """Linear warm-up, then polynomial decay final + (1 − final)·(1 − (t − w)/(n − w))^power to ``final`` at n.

    Hugging Face's ``get_polynomial_decay_schedule_with_warmup`` with ``final`` = lr_end / lr_init: f(t) equals
    its λ(t) (as :func:`warmup_linear_decay` equals its linear λ; ``shift(..., 1)`` is HF's behaviour).
    """
    return _warmup_then(
        warmup_steps, total_steps, lambda n: PolynomialDecay(n, final, power), "warmup_polynomial_decay", start
    )


_DECAYS: dict[str, Callable[[int, float], Schedule]] = {
    "linear": LinearDecay,
    "cosine": Cosine,
    "1-sqrt": OneMinusSqrtDecay,
}


@register_recipe("wsd")
def wsd(
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    decay: str = "linear",
    final: float = 0.0,
    start: float = 0.0,
    warmup: str = "linear",
) -> Schedule:
    """Warm-up, stable, decay: a warm-up from ``start``, constant 1 for ``stable_steps``, then a cool-down to
    ``final``.

    ``warmup`` and ``decay`` are ``"linear"``, ``"cosine"`` or ``"1-sqrt"``. Hugging Face's
    ``get_wsd_schedule(min_lr_ratio=m, warmup_type=..., decay_type=...)`` warms up from m and cools down to m:
    ``wsd(..., final=m, start=m)`` equals its λ(t) pointwise. The stable phase is open-ended in spirit: a run can be
    extended by raising ``stable_steps`` (the LR up to the current step does not change, so a resumed scheduler
    accepts it).
    """
    w = check_steps("warmup_steps", warmup_steps, minimum=0)
    s = check_steps("stable_steps", stable_steps, minimum=0)
    d = check_steps("decay_steps", decay_steps, minimum=1)
    check_choice("decay", decay, tuple(_DECAYS))
    check_choice("warmup", warmup, tuple(_WARMUPS))
    pieces: list[Schedule] = []
    bounds: list[int] = []
    if w:
        pieces.append(_WARMUPS[warmup](w, start))
        bounds.append(w)
    if s:
        pieces.append(Constant(1.0))
        bounds.append(w + s)
    pieces.append(_DECAYS[decay](d, final))
    return Join(tuple(pieces), tuple(bounds), f"wsd ({decay})")
