"""What a sweep leaves in its output folder: ``trials.csv``, the plots and ``best.json``."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from .._json import write_json

__all__ = ["write_results"]

logger = logging.getLogger(__name__)


def _outcome(trial: Any) -> str | None:
    """The run's status, or what the trial reused instead of training."""
    if "duplicate_of" in trial.user_attrs:
        return f"duplicate of {trial.user_attrs['duplicate_of']}"
    if "twin_of" in trial.user_attrs:
        return f"twin of {trial.user_attrs['twin_of']} (not trained)"
    return trial.user_attrs.get("status")


def write_results(study: Any, out_dir: Path) -> None:
    """``trials.csv`` (every trial: number, study, state, value, recipe, parameters, status), the plots of
    :func:`plot_sweep` and ``best.json`` (the best trial's run config, for ``lrtune train --config``), each
    replaced atomically."""
    rows = []
    for t in study.trials:
        config = t.user_attrs.get("config", {})
        rows.append(
            {
                "number": t.number,
                "study": study.study_name,
                "state": t.state.name,
                "value": t.value,
                "recipe": config.get("recipe"),
                "lr": config.get("optimizer", {}).get("lr"),
                "warmup_steps": config.get("schedule", {}).get("warmup_steps"),
                "total_steps": config.get("steps"),
                "batch_size": config.get("batch_size"),
                "max_grad_norm": config.get("max_grad_norm"),
                "beta2": (config.get("optimizer", {}).get("betas") or [None, None])[1],
                "seed": config.get("seed", study.user_attrs.get("seed", 0)),
                "updates": t.user_attrs.get("updates"),
                "status": _outcome(t),
                "params": json.dumps(t.params),
            }
        )
    tmp = out_dir / f".trials.csv.tmp{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number", "study"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out_dir / "trials.csv")
    try:
        from ._plots import plot_sweep

        plot_sweep(study, out_dir)
    except ImportError:  # pragma: no cover - matplotlib is an extra
        logger.warning("matplotlib is not installed: no sweep plots")
    finished = [t for t in study.trials if t.value is not None and math.isfinite(t.value) and "config" in t.user_attrs]
    if not finished:
        if study.trials:  # (a study with no trial yet has nothing to warn about)
            logger.warning("no finished trial with a finite value: no best.json")
        return
    best = min(finished, key=lambda t: t.value)
    config = dict(best.user_attrs["config"])
    config.pop("recipe")
    run = {
        "workload": study.user_attrs.get("workload"),
        "workload_options": study.user_attrs.get("workload_options", {}),
        "seed": study.user_attrs.get("seed", 0),
        **config,
        "eval_every": None,
    }
    write_json(out_dir / "best.json", run)
