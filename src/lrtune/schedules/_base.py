"""The schedule protocol: an immutable, serialisable ``t -> multiplier`` for the t-th optimizer update.

Step convention: ``schedule(t)`` is the multiplier of the learning rate used by the **t-th optimizer update**,
t = 1, 2, ... (``schedule(0)`` is the value "before training", which some libraries use for their first update:
see :func:`lrtune.schedules.shift`). Schedules marked ``absolute`` (e.g. :func:`noam`) give the learning rate
itself rather than a multiplier of the optimizer's base LR.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["Schedule", "from_spec", "register", "register_recipe"]

_REGISTRY: dict[str, type[Schedule]] = {}
_RECIPES: dict[str, Callable[..., Schedule]] = {}


def register(name: str) -> Any:
    """Class decorator: make a schedule class serialisable under ``name``."""

    def wrap(cls: type[Schedule]) -> type[Schedule]:
        if name in _REGISTRY:
            raise ValueError(f"schedule name {name!r} is already registered")
        cls.spec_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


F = TypeVar("F", bound=Callable[..., "Schedule"])


def register_recipe(name: str) -> Callable[[F], F]:
    """Function decorator: let :func:`from_spec` build a recipe (a factory of joined primitives) by name."""

    def wrap(factory: F) -> F:
        if name in _REGISTRY or name in _RECIPES:
            raise ValueError(f"schedule name {name!r} is already registered")
        _RECIPES[name] = factory
        return factory

    return wrap


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Base class: a frozen dataclass whose fields are its whole configuration."""

    spec_name: ClassVar[str] = ""

    def at(self, t: float) -> float:
        """The multiplier at update t ≥ 0 (subclasses implement this)."""
        raise NotImplementedError

    def __call__(self, t: float) -> float:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
            raise ValueError(f"t must be a number >= 0 (the t-th optimizer update), got {t!r}")
        return self.at(t)

    @property
    def display_name(self) -> str:
        """A short name for legends and tables: the recipe's label or the spec name."""
        return str(getattr(self, "label", "") or self.spec_name)

    @property
    def absolute(self) -> bool:
        """True when the schedule gives the learning rate itself, not a multiplier of the base LR."""
        return False

    @property
    def end(self) -> float | None:
        """The update after which the schedule is constant (None: open-ended)."""
        return None

    def bind(self, group: Mapping[str, Any]) -> Schedule:
        """This schedule for one optimizer param group. Schedules that read a group's hyper-parameters (an untuned
        warm-up or a rectification without ``beta2`` reads the group's ``betas[1]``) return a copy with them
        filled in; the others return ``self``. :class:`LRScheduler` binds its schedule to each group."""
        del group
        return self

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`from_spec` turns back into an equal schedule."""
        spec: dict[str, Any] = {"name": self.spec_name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Schedule):
                v = v.to_spec()
            elif isinstance(v, tuple):
                v = [x.to_spec() if isinstance(x, Schedule) else x for x in v]
            spec[f.name] = v
        return spec


def from_spec(spec: dict[str, Any] | Schedule) -> Schedule:
    """Build a schedule from a dict such as ``{"name": "warmup_linear_decay", "warmup_steps": 4000, ...}``."""
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"spec must be a dict with a 'name' key, got {spec!r}")
    name = spec["name"]
    if name in _RECIPES:
        args = {k: v for k, v in spec.items() if k != "name"}
        try:
            return _RECIPES[name](**args)
        except TypeError as e:
            raise ValueError(f"bad arguments {sorted(args)} for schedule {name!r}: {e}") from None
    if name not in _REGISTRY:
        known = ", ".join(sorted({*_REGISTRY, *_RECIPES}))
        raise ValueError(f"spec name {name!r} is not a known schedule; known: {known}")
    cls = _REGISTRY[name]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(spec) - names - {"name"}
    if unknown:
        raise ValueError(f"unknown argument(s) {sorted(unknown)} for schedule {name!r}; it takes {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for k, v in spec.items():
        if k == "name":
            continue
        if isinstance(v, dict) and "name" in v:
            v = from_spec(v)
        elif isinstance(v, list):
            v = tuple(from_spec(x) if isinstance(x, dict) else x for x in v)
        kwargs[k] = v
    return cls(**kwargs)
