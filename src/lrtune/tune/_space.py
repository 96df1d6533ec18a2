"""Search spaces as data: what a sweep may vary, validated before any trial runs.

A space is a dict (or a JSON file)::

    {"optimizer": ["sgd_clip", "adam", "adam_warmup", "radam"],
     "lr": {"min": 1e-5, "max": 1e-1, "scaling": "log"},
     "warmup_steps": {"min": 0, "max": 8000, "scaling": "log1p"},     # or {"fraction_of_total": [0, 0.1]}
     "total_steps": [500, 1000],
     "batch_size": [32, 64, 128],
     "max_grad_norm": [0.5, 1.0]}

A list is a categorical choice; ``{"min", "max", "scaling"}`` a range (``linear``, ``log``, or ``log1p`` for
ranges that include 0; integers when both ends are integers). ``optimizer`` names a *recipe*: an optimizer plus
whether it warms up and clips (:data:`RECIPES`). The warm-up is sampled only for recipes that warm up
(conditional parameter), and ``sgd_clip`` clips at 1.0 unless ``max_grad_norm`` is searched. Every trial's LR
schedule is a linear warm-up (possibly of 0 updates) followed by linear decay to 0 at ``total_steps``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECIPES", "Recipe", "load_space", "suggest"]


@dataclass(frozen=True)
class Recipe:
    """An optimizer spec (without ``lr``), whether the recipe warms up, and its default gradient clipping."""

    optimizer: dict[str, Any]
    warmup: bool
    max_grad_norm: float | None = None


RECIPES: dict[str, Recipe] = {
    "sgd": Recipe({"name": "sgd", "momentum": 0.9}, warmup=False),
    "sgd_clip": Recipe({"name": "sgd", "momentum": 0.9}, warmup=False, max_grad_norm=1.0),
    "adam": Recipe({"name": "adam", "betas": [0.9, 0.98]}, warmup=False),
    "adam_warmup": Recipe({"name": "adam", "betas": [0.9, 0.98]}, warmup=True),
    "adamw_warmup": Recipe({"name": "adamw", "betas": [0.9, 0.98], "weight_decay": 0.01}, warmup=True),
    "radam": Recipe({"name": "radam", "betas": [0.9, 0.98]}, warmup=False),
    "radam_warmup": Recipe({"name": "radam", "betas": [0.9, 0.98]}, warmup=True),
}
KEYS = ("optimizer", "lr", "warmup_steps", "total_steps", "batch_size", "max_grad_norm")
SCALINGS = ("linear", "log", "log1p")


def _check_range(key: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - {"min", "max", "scaling"}
    if unknown or "min" not in spec or "max" not in spec:
        raise ValueError(f"space[{key!r}] must be a list or {{'min', 'max', 'scaling'}}, got {spec!r}")
    lo, hi, scaling = spec["min"], spec["max"], spec.get("scaling", "linear")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi:
        raise ValueError(f"space[{key!r}] needs numbers min < max, got min={lo!r}, max={hi!r}")
    if scaling not in SCALINGS:
        raise ValueError(f"space[{key!r}]['scaling'] must be one of {SCALINGS}, got {scaling!r}")
    if scaling == "log" and lo <= 0:
        raise ValueError(f"space[{key!r}] with log scaling needs min > 0, got {lo!r} (use 'log1p' to include 0)")
    if scaling == "log1p" and lo < 0:
        raise ValueError(f"space[{key!r}] with log1p scaling needs min >= 0, got {lo!r}")


def load_space(space: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A validated search space from a dict or a JSON file; errors name the key and the value."""
    if not isinstance(space, dict):
        space = json.loads(Path(space).read_text(encoding="utf-8"))
    if not isinstance(space, dict) or not space:
        raise ValueError(f"a search space must be a non-empty JSON object, got {space!r}")
    for key, spec in space.items():
        if key not in KEYS:
            raise ValueError(f"space has an unknown key {key!r}; keys: {', '.join(KEYS)}")
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"space[{key!r}] is an empty list")
        elif key == "warmup_steps" and isinstance(spec, dict) and "fraction_of_total" in spec:
            lo, hi = spec["fraction_of_total"]
            if not 0 <= lo <= hi < 1:
                raise ValueError(f"space['warmup_steps']['fraction_of_total'] needs 0 <= lo <= hi < 1, got {spec!r}")
        elif isinstance(spec, dict):
            _check_range(key, spec)
        else:
            raise ValueError(f"space[{key!r}] must be a list or a range, got {spec!r}")
    for name in space.get("optimizer", []):
        if name not in RECIPES:
            raise ValueError(f"space['optimizer'] has an unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    if "lr" not in space:
        raise ValueError("space needs 'lr'")
    return space


def _suggest_value(trial: Any, key: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    lo, hi, scaling = spec["min"], spec["max"], spec.get("scaling", "linear")
    integer = isinstance(lo, int) and isinstance(hi, int)
    if scaling == "log1p":
        value = math.expm1(trial.suggest_float(f"{key}_log1p", math.log1p(lo), math.log1p(hi)))
        return round(value) if integer else value
    if integer:
        return trial.suggest_int(key, lo, hi, log=scaling == "log")
    return trial.suggest_float(key, lo, hi, log=scaling == "log")


def suggest(trial: Any, space: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A run config (for :func:`lrtune.train`) sampled for an Optuna trial from a validated space."""
    recipe_name = _suggest_value(trial, "optimizer", space["optimizer"]) if "optimizer" in space else "adam"
    recipe = RECIPES[recipe_name]
    lr = _suggest_value(trial, "lr", space["lr"])
    total = (
        int(_suggest_value(trial, "total_steps", space["total_steps"])) if "total_steps" in space else defaults["steps"]
    )
    batch = (
        _suggest_value(trial, "batch_size", space["batch_size"]) if "batch_size" in space else defaults["batch_size"]
    )
    warmup = 0
    if recipe.warmup and "warmup_steps" in space:  # conditional: only recipes that warm up sample it
        spec = space["warmup_steps"]
        if isinstance(spec, dict) and "fraction_of_total" in spec:
            warmup = round(trial.suggest_float("warmup_fraction", *spec["fraction_of_total"]) * total)
        else:
            warmup = int(_suggest_value(trial, "warmup_steps", spec))
    elif recipe.warmup:
        warmup = max(1, total // 10)
    clip = _suggest_value(trial, "max_grad_norm", space["max_grad_norm"]) if "max_grad_norm" in space else None
    clip = recipe.max_grad_norm if clip is None else clip
    return {
        "recipe": recipe_name,
        "optimizer": {**recipe.optimizer, "lr": lr},
        "schedule": {"name": "warmup_linear_decay", "warmup_steps": min(warmup, total - 1), "total_steps": total},
        "steps": total,
        "batch_size": int(batch),
        "max_grad_norm": clip,
    }
