"""Search spaces as data: what a sweep may vary, validated before any trial runs.

A space is a dict (or a JSON file)::

    {"optimizer": ["sgd_clip", "adam", "adam_warmup", "radam"],
     "lr": {"min": 1e-5, "max": 1e-1, "scaling": "log"},
     "warmup_steps": {"min": 0, "max": 8000, "scaling": "log1p"},     # or {"fraction_of_total": [0, 0.1]}
     "total_steps": [500, 1000],
     "batch_size": [32, 64, 128],
     "max_grad_norm": [0.5, 1.0],
     "beta2": [0.98, 0.999],                                           # Adam-family recipes only
     "seed": [0, 1]}                                                   # repeats, for the spread

A list is a categorical choice; ``{"min", "max", "scaling"}`` a range (``linear``, ``log``, or ``log1p`` for
ranges that include 0; integers when both ends are integers). ``optimizer`` names a *recipe*: an optimizer plus
whether it warms up and clips (:data:`RECIPES`). The warm-up is sampled only for recipes that warm up
(conditional parameter), and ``sgd_clip`` clips at 1.0 unless ``max_grad_norm`` is searched. Every trial's LR
schedule is a linear warm-up (possibly of 0 updates) followed by the recipe's decay to 0 at ``total_steps``
(linear; cosine for ``algoperf``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KNOWN_GOOD", "RECIPES", "Recipe", "fixed_params", "load_space", "lr_centre", "setting", "suggest"]


@dataclass(frozen=True)
class Recipe:
    """An optimizer spec (without ``lr``), whether the recipe warms up (and by what share of the run when the
    space does not search the warm-up), its default gradient clipping and its schedule's shape after warm-up."""

    optimizer: dict[str, Any]
    warmup: bool
    max_grad_norm: float | None = None
    schedule: str = "warmup_linear_decay"
    warmup_fraction: float = 0.1


RECIPES: dict[str, Recipe] = {
    "sgd": Recipe({"name": "sgd", "momentum": 0.9}, warmup=False),
    "sgd_clip": Recipe({"name": "sgd", "momentum": 0.9}, warmup=False, max_grad_norm=1.0),
    "adam": Recipe({"name": "adam", "betas": [0.9, 0.98]}, warmup=False),
    "adam_warmup": Recipe({"name": "adam", "betas": [0.9, 0.98]}, warmup=True),
    "adamw_warmup": Recipe({"name": "adamw", "betas": [0.9, 0.98], "weight_decay": 0.01}, warmup=True),
    "radam": Recipe({"name": "radam", "betas": [0.9, 0.98]}, warmup=False),
    "radam_warmup": Recipe({"name": "radam", "betas": [0.9, 0.98]}, warmup=True),
    # AlgoPerf's baseline shape: AdamW, linear warm-up over 5 % of the run, cosine decay to 0
    "algoperf": Recipe(
        {"name": "adamw", "betas": [0.9, 0.999], "weight_decay": 0.01},
        warmup=True,
        schedule="warmup_cosine",
        warmup_fraction=0.05,
    ),
}
#: Known-good settings that a sweep can try first (``enqueue``): the literature's defaults, as run configs.
#: ``noam``: the Transformer's Adam (β = (0.9, 0.98)) with Vaswani et al.'s peak LR d^-0.5 · 4000^-0.5 = 7.0e-4
#: for d = 512, its 4000 warm-up updates of a 100k-update run taken as 4 % of the run, then linear decay;
#: ``radam``: RAdam at Adam's default LR 1e-3 without warm-up; ``untuned_warmup``: Adam at 1e-3 with Ma &
#: Yarats' untuned warm-up of 2/(1 − β2) = 100 updates for β2 = 0.98.
KNOWN_GOOD: dict[str, dict[str, Any]] = {
    "noam": {"optimizer": "adam_warmup", "lr": 7.0e-4, "warmup_fraction": 0.04},
    "radam": {"optimizer": "radam", "lr": 1e-3},
    "untuned_warmup": {"optimizer": "adam_warmup", "lr": 1e-3, "warmup_steps": 100},
}
KEYS = ("optimizer", "lr", "warmup_steps", "total_steps", "batch_size", "max_grad_norm", "beta2", "seed")
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
    for key, lo, hi in (("beta2", 0.0, 1.0),):
        values = space.get(key, [])
        values = values if isinstance(values, list) else [values["min"], values["max"]]
        if not all(isinstance(v, (int, float)) and lo <= v < hi for v in values):
            raise ValueError(f"space[{key!r}] values must be in [{lo}, {hi}), got {space[key]!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in space.get("seed", [])):
        raise ValueError(f"space['seed'] must be a list of integers, got {space['seed']!r}")
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


def lr_centre(space: dict[str, Any]) -> float:
    """The geometric centre of the space's LR values (its range's or its list's)."""
    spec = space["lr"]
    lo, hi = (min(spec), max(spec)) if isinstance(spec, list) else (spec["min"], spec["max"])
    if lo <= 0:
        raise ValueError(f"centring the LR on a range test needs LRs > 0 in the space, got space['lr']={spec!r}")
    return math.sqrt(lo * hi)


def suggest(
    trial: Any, space: dict[str, Any], defaults: dict[str, Any], lr_factors: dict[str, float] | None = None
) -> dict[str, Any]:
    """A run config (for :func:`lrtune.train`) sampled for an Optuna trial from a validated space.

    With ``lr_factors`` (recipe → factor), the sampled ``lr`` is multiplied by its recipe's factor: the space's
    LR range, centred per recipe (e.g. on an LR range test's suggestion).
    """
    recipe_name = _suggest_value(trial, "optimizer", space["optimizer"]) if "optimizer" in space else "adam"
    recipe = RECIPES[recipe_name]
    lr = _suggest_value(trial, "lr", space["lr"])
    if lr_factors is not None:
        lr *= lr_factors[recipe_name]
    lr = trial.user_attrs.get("fixed_lr", lr)  # an enqueued setting's exact LR
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
        warmup = max(1, round(recipe.warmup_fraction * total))
    clip = _suggest_value(trial, "max_grad_norm", space["max_grad_norm"]) if "max_grad_norm" in space else None
    clip = recipe.max_grad_norm if clip is None else clip
    optimizer = {**recipe.optimizer, "lr": lr}
    if "beta2" in space and "betas" in optimizer:  # conditional: only recipes with Adam's moments sample it
        optimizer["betas"] = [optimizer["betas"][0], _suggest_value(trial, "beta2", space["beta2"])]
    config = {
        "recipe": recipe_name,
        "optimizer": optimizer,
        "schedule": {"name": recipe.schedule, "warmup_steps": min(warmup, total - 1), "total_steps": total},
        "steps": total,
        "batch_size": int(batch),
        "max_grad_norm": clip,
    }
    if "seed" in space:
        config["seed"] = int(_suggest_value(trial, "seed", space["seed"]))
    return config


def _in_spec(key: str, spec: Any, value: Any) -> None:
    ok = value in spec if isinstance(spec, list) else spec["min"] <= value <= spec["max"]
    if not ok:
        raise ValueError(f"enqueued {key}={value!r} is outside the space's {key} {spec!r}")


def setting(entry: dict[str, Any] | str) -> dict[str, Any]:
    """A setting to enqueue: the dict itself, or the :data:`KNOWN_GOOD` setting of that name."""
    if isinstance(entry, str):
        if entry not in KNOWN_GOOD:
            raise ValueError(f"unknown known-good setting {entry!r}; known: {', '.join(KNOWN_GOOD)}")
        return KNOWN_GOOD[entry]
    return entry


def fixed_params(
    entry: dict[str, Any] | str,
    space: dict[str, Any],
    defaults: dict[str, Any],
    lr_factors: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Optuna parameters that make :func:`suggest` return a given setting, to enqueue as a trial (with the user
    attribute ``fixed_lr`` = the setting's ``lr``, which a list of LRs may not hold exactly).

    ``entry`` is the name of a :data:`KNOWN_GOOD` setting or a dict with ``optimizer`` (a recipe), ``lr`` (the
    LR to run, after any centring), and optionally ``warmup_steps`` or ``warmup_fraction``, ``total_steps``,
    ``batch_size``, ``max_grad_norm``; what it leaves out is sampled as usual. Every value must lie in
    the space (errors name it).
    """
    entry = setting(entry)
    allowed = {"optimizer", "lr", "warmup_steps", "warmup_fraction", "total_steps", "batch_size", "max_grad_norm"}
    if unknown := set(entry) - allowed:
        raise ValueError(f"an enqueued setting has unknown keys {sorted(unknown)}; keys: {', '.join(sorted(allowed))}")
    if "lr" not in entry:
        raise ValueError(f"an enqueued setting needs 'lr', got {entry!r}")
    recipe = entry.get("optimizer", "adam")
    params: dict[str, Any] = {}
    if "optimizer" in space:
        _in_spec("optimizer", space["optimizer"], recipe)
        params["optimizer"] = recipe
    elif recipe != "adam":
        raise ValueError(f"enqueued optimizer={recipe!r}, but the space has no 'optimizer' (every trial is adam)")
    lr = float(entry["lr"]) / (lr_factors[recipe] if lr_factors is not None else 1.0)
    spec = space["lr"]
    lo, hi = (min(spec), max(spec)) if isinstance(spec, list) else (spec["min"], spec["max"])
    if not lo <= lr <= hi:
        what = f"lr={entry['lr']!r}" + (f" (÷ {lr_factors[recipe]:.3g} from the range test)" if lr_factors else "")
        raise ValueError(f"enqueued {what} is outside the space's lr {spec!r}")
    # a list of LRs holds the nearest value; the trial runs the LR asked for (see suggest: fixed_lr)
    params["lr"] = min(spec, key=lambda v: abs(math.log(v / lr))) if isinstance(spec, list) else lr
    total = entry.get("total_steps", defaults["steps"])
    for key in ("total_steps", "batch_size", "max_grad_norm"):
        if key in entry:
            if key not in space:
                raise ValueError(f"enqueued {key}={entry[key]!r}, but the space does not search {key}")
            _in_spec(key, space[key], entry[key])
            params[key] = entry[key]
    warmup_keys = {"warmup_steps", "warmup_fraction"} & set(entry)
    if len(warmup_keys) > 1:
        raise ValueError(f"an enqueued setting gives both warmup_steps and warmup_fraction: {entry!r}")
    if warmup_keys:
        if not RECIPES[recipe].warmup:
            raise ValueError(f"enqueued recipe {recipe!r} does not warm up, but the setting gives a warm-up")
        if "warmup_steps" not in space:
            raise ValueError("an enqueued warm-up needs 'warmup_steps' in the space")
        spec = space["warmup_steps"]
        steps = entry["warmup_steps"] if "warmup_steps" in entry else round(entry["warmup_fraction"] * total)
        if isinstance(spec, dict) and "fraction_of_total" in spec:
            fraction = entry["warmup_fraction"] if "warmup_fraction" in entry else steps / total
            lo, hi = spec["fraction_of_total"]
            if not lo <= fraction <= hi:
                raise ValueError(f"enqueued warm-up fraction {fraction!r} is outside the space's {spec!r}")
            params["warmup_fraction"] = fraction
        elif isinstance(spec, dict) and spec.get("scaling") == "log1p":
            _in_spec("warmup_steps", spec, steps)
            params["warmup_steps_log1p"] = math.log1p(steps)
        else:
            _in_spec("warmup_steps", spec, steps)
            params["warmup_steps"] = steps
    return params
