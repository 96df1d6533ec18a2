"""Argument checks shared by the optimizers: each error names the argument and the bad value."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "check_choice",
    "check_finite",
    "check_in_unit_interval",
    "check_integer",
    "check_nonnegative",
    "check_positive",
    "check_real",
    "check_steps",
]


def check_real(name: str, value: Any) -> float:
    """``value`` as a float; TypeError naming ``name`` when it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    v = check_real(name, value)
    if v < 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_positive(name: str, value: Any) -> float:
    v = check_real(name, value)
    if v <= 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_in_unit_interval(name: str, value: Any, *, closed: bool = False) -> float:
    """0 <= value < 1 (or <= 1 when ``closed``)."""
    v = check_real(name, value)
    ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


def check_steps(name: str, value: Any, *, minimum: int = 0) -> int:
    """A whole number of optimizer updates >= ``minimum`` (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a whole number of steps, got {value!r} ({type(value).__name__})")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a whole number of steps, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_finite(name: str, value: Any) -> float:
    """A finite real number of any sign (a schedule's value: a multiplier may lie anywhere)."""
    v = check_real(name, value)
    if math.isinf(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def check_integer(name: str, value: Any) -> int:
    """A whole number of any sign (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(value)
