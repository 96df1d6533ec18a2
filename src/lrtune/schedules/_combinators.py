"""Combinators: compound schedules are built from primitives, never written as new classes.

``join`` puts pieces one after another (each sees its own local t), ``product`` multiplies, ``scale``
multiplies by a constant and ``shift`` moves a schedule along the step axis.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._validate import check_finite, check_integer, check_steps
from ._base import Schedule, from_spec, register

__all__ = ["Join", "Product", "Scale", "Shift"]


def _schedules(name: str, items: object) -> tuple[Schedule, ...]:
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f"{name} must be a non-empty sequence of schedules, got {items!r}")
    out = tuple(from_spec(s) if isinstance(s, dict) else s for s in items)
    for s in out:
        if not isinstance(s, Schedule):
            raise TypeError(f"{name} must hold schedules, got {s!r}")
    return out


@register("join")
@dataclass(frozen=True)
class Join(Schedule):
    """Pieces one after another: piece i runs for b_{i−1} < t ≤ b_i with local time t − b_{i−1} (b_0 = 0).

    Example: linear warm-up then linear decay = ``join([LinearWarmup(w), LinearDecay(n − w)], [w])``.
    """

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]
    label: str = field(default="", compare=False)  # a recipe's name, for display only

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", _schedules("schedules", self.schedules))
        if not isinstance(self.boundaries, (list, tuple)):
            raise TypeError(f"boundaries must be a sequence of step counts, got {self.boundaries!r}")
        bounds = tuple(check_steps("boundaries", b, minimum=1) for b in self.boundaries)
        object.__setattr__(self, "boundaries", bounds)
        if len(bounds) != len(self.schedules) - 1:
            raise ValueError(
                f"boundaries must have one entry fewer than schedules ({len(self.schedules) - 1}), got {list(bounds)}"
            )
        if any(b >= c for b, c in itertools.pairwise(bounds)):
            raise ValueError(f"boundaries must be strictly increasing, got {list(bounds)}")
        if len({s.absolute for s in self.schedules}) > 1:
            raise ValueError("schedules must be all absolute or all relative (multipliers) to be joined")

    def at(self, t: float) -> float:
        start = 0
        for schedule, boundary in zip(self.schedules, self.boundaries, strict=False):
            if t <= boundary:
                return schedule.at(t - start)
            start = boundary
        return self.schedules[-1].at(t - start)

    @property
    def absolute(self) -> bool:
        return self.schedules[0].absolute

    @property
    def end(self) -> float | None:
        last = self.schedules[-1].end
        return None if last is None else (self.boundaries[-1] if self.boundaries else 0) + last

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return _bind_all(self, group)


@register("product")
@dataclass(frozen=True)
class Product(Schedule):
    """f(t) = Π f_i(t). At most one factor may be absolute (then the product is absolute)."""

    schedules: tuple[Schedule, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedules", _schedules("schedules", self.schedules))
        if sum(s.absolute for s in self.schedules) > 1:
            raise ValueError("at most one factor of a product may be an absolute schedule")

    def at(self, t: float) -> float:
        return math.prod(s.at(t) for s in self.schedules)

    @property
    def absolute(self) -> bool:
        return any(s.absolute for s in self.schedules)

    @property
    def end(self) -> float | None:
        ends = [s.end for s in self.schedules]
        return None if any(e is None for e in ends) else max(e for e in ends if e is not None)

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return _bind_all(self, group)


@register("scale")
@dataclass(frozen=True)
class Scale(Schedule):
    """f(t) = factor · g(t)."""

    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _schedules("schedule", [self.schedule])[0])
        check_finite("factor", self.factor)

    def at(self, t: float) -> float:
        return self.factor * self.schedule.at(t)

    @property
    def absolute(self) -> bool:
        return self.schedule.absolute

    @property
    def end(self) -> float | None:
        return self.schedule.end

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return _bind_one(self, group)


@register("shift")
@dataclass(frozen=True)
class Shift(Schedule):
    """f(t) = g(max(0, t − offset)): the schedule starts ``offset`` updates later (earlier, for a negative offset).

    ``shift(g, 1)`` reproduces libraries whose t-th update uses g(t − 1) (Hugging Face's schedulers, whose
    first update has the warm-up's LR 0). A negative offset starts g part-way: ``pytorch_warmup.RAdamWarmup``
    is RAdam's rectification shifted by −(δ − 1), and ``shift(g, -1)`` equals optax's g pointwise where optax's
    first update uses g(0) (its ``exponential_decay``).
    """

    schedule: Schedule
    offset: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _schedules("schedule", [self.schedule])[0])
        object.__setattr__(self, "offset", check_integer("offset", self.offset))

    def at(self, t: float) -> float:
        return self.schedule.at(max(0.0, t - self.offset))

    @property
    def absolute(self) -> bool:
        return self.schedule.absolute

    @property
    def end(self) -> float | None:
        end = self.schedule.end
        return None if end is None else max(0.0, end + self.offset)

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        return _bind_one(self, group)


def _bind_all(schedule: Join | Product, group: Mapping[str, Any]) -> Schedule:
    bound = tuple(s.bind(group) for s in schedule.schedules)
    if all(b is s for b, s in zip(bound, schedule.schedules, strict=True)):
        return schedule
    return dataclasses.replace(schedule, schedules=bound)


def _bind_one(schedule: Scale | Shift, group: Mapping[str, Any]) -> Schedule:
    bound = schedule.schedule.bind(group)
    return schedule if bound is schedule.schedule else dataclasses.replace(schedule, schedule=bound)
