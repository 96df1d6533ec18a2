"""Sweeps with Optuna: every trial is an :func:`lrtune.train` run of a workload, sampled from a space (data).

The study lives in an Optuna storage: by default ``sqlite:///OUT/lrtune.db`` (embedded, no server; one writer
process at a time — SQLite locks the whole file, so several workers on one SQLite study contend and can fail), or
a PostgreSQL URL that many workers on many machines share. Running the same command again continues the study.
Each trial reports its validation loss at every evaluation, so a pruner can stop it early — but only from the
first evaluation after the longest warm-up in the space, and at equal fractions of each trial's schedule, so that
long warm-ups are not stopped for being slow to start; a diverged run is a
recorded value (``inf``), not a crash. After the trials, ``OUT/trials.csv`` lists every trial of the study and
``OUT/best.json`` is the best trial's run config, which ``lrtune train --config`` runs as it is.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from ..runner import train
from ..workloads import get_workload
from ._space import RECIPES, load_space, suggest

__all__ = ["PRUNERS", "SAMPLERS", "run_sweep"]

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("median", "asha", "hyperband", "none")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("sweeps need Optuna: pip install 'lrtune[tune]'") from e
    return optuna


def _sampler(name: str, seed: int, space: dict[str, Any]) -> Any:
    optuna = _optuna()
    if name == "grid":  # every combination of the listed values; ranges have no grid
        ranges = sorted(k for k, v in space.items() if not isinstance(v, list))
        if ranges:
            raise ValueError(f"the grid sampler needs lists of values, not ranges: {', '.join(ranges)}")
        return optuna.samplers.GridSampler(space, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


def _pruner(name: str, first_rung: int, evals: int) -> Any:
    """A pruner that compares trials only from evaluation ``first_rung`` on (1-based, of ``evals`` per trial)."""
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=first_rung)  # prunes from that step on
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first_rung, max_resource=evals)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {PRUNERS}, got {name!r}")


def run_sweep(
    workload: str,
    space: dict[str, Any] | str | os.PathLike[str],
    *,
    trials: int,
    out: str | os.PathLike[str],
    sampler: str = "tpe",
    pruner: str = "median",
    storage: str | None = None,
    study: str = "lrtune",
    seed: int = 0,
    steps: int | None = None,
    batch_size: int = 64,
    evals_per_trial: int = 4,
    workload_options: dict[str, Any] | None = None,
    heartbeat: float = 10.0,
    callbacks: list[Any] | None = None,
) -> Any:
    """Run ``trials`` more trials of the study (created or continued) and write ``trials.csv`` and ``best.json``.

    Returns the Optuna study. ``steps`` and ``batch_size`` apply when the space does not search them. A running
    trial beats every ``heartbeat`` seconds; one silent for 3 beats (its worker was killed) is marked failed by the
    next worker that starts on the study and tried again (once). ``callbacks`` are Optuna's ``(study, trial)``
    callbacks, called after each trial (e.g. a progress bar).
    """
    if not heartbeat > 0:
        raise ValueError(f"heartbeat must be > 0, got {heartbeat!r}")
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials!r}")
    if evals_per_trial < 1:
        raise ValueError(f"evals_per_trial must be >= 1, got {evals_per_trial!r}")
    optuna = _optuna()
    checked = load_space(space)
    options = workload_options or {}
    task = get_workload(workload, **options)
    defaults = {"steps": steps if steps is not None else task.step_hint, "batch_size": batch_size}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out_dir / 'lrtune.db').resolve()}"
    the_study = optuna.create_study(
        study_name=study,
        storage=_storage(url, heartbeat),
        direction="minimize",
        sampler=_sampler(sampler, seed, checked),
        pruner=_pruner(pruner, _first_rung(checked, defaults["steps"], evals_per_trial), evals_per_trial),
        load_if_exists=True,
    )
    the_study.set_user_attr("workload", workload)
    the_study.set_user_attr("workload_options", options)
    the_study.set_user_attr("seed", seed)

    def objective(trial: Any) -> float:
        config = suggest(trial, checked, defaults)
        trial.set_user_attr("config", config)
        total = config["steps"]

        reported: set[int] = set()

        def report(line: dict[str, Any]) -> None:
            if "eval" in line:
                # step = the evaluation's index: trials are compared at equal fractions of their schedules (the
                # final evaluation of a run whose length evals_per_trial does not divide falls on the last index)
                index = min(evals_per_trial, max(1, round(line["step"] * evals_per_trial / total)))
                if index in reported:
                    return
                reported.add(index)
                trial.report(line["eval"]["valid_loss"], index)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at update {line['step']}")

        record = train(
            task,
            optimizer=config["optimizer"],
            schedule=config["schedule"],
            steps=total,
            batch_size=config["batch_size"],
            seed=seed,
            eval_every=max(1, total // evals_per_trial),
            max_grad_norm=config["max_grad_norm"],
            callback=report,
        )
        trial.set_user_attr("status", record.status)
        trial.set_user_attr("final_metrics", record.final_metrics)
        if record.status == "diverged" or "valid_loss" not in record.final_metrics:
            return math.inf
        return float(record.final_metrics["valid_loss"])

    if trials:
        the_study.optimize(objective, n_trials=trials, catch=(), callbacks=callbacks)
    write_results(the_study, out_dir)
    return the_study


def max_warmup_fraction(space: dict[str, Any], default_steps: int) -> float:
    """The longest warm-up in the space, as a fraction of its trial's total updates (0 without warm-up recipes)."""
    recipes = space.get("optimizer", ["adam"])
    if not any(RECIPES[r].warmup for r in recipes):
        return 0.0
    spec = space.get("warmup_steps")
    totals = space.get("total_steps", [default_steps])
    shortest = min(totals) if isinstance(totals, list) else totals["min"]
    if spec is None:
        return 0.1  # the recipes' default: 10 % of the run
    if isinstance(spec, dict) and "fraction_of_total" in spec:
        return float(spec["fraction_of_total"][1])
    longest = max(spec) if isinstance(spec, list) else spec["max"]
    return min(1.0, longest / max(1, shortest))


def _first_rung(space: dict[str, Any], default_steps: int, evals: int) -> int:
    """The first evaluation after every trial's warm-up: a pruner that compared trials inside their warm-up would
    systematically stop the long warm-ups (their loss is still high because their LR is still low)."""
    return min(evals, math.floor(max_warmup_fraction(space, default_steps) * evals) + 1)


def _storage(url: str, heartbeat: float) -> Any:
    """An RDB storage with heartbeats; creating the tables is retried, since workers that start together race."""
    optuna = _optuna()
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=max(1, round(heartbeat)),
                    grace_period=max(2, round(3 * heartbeat)),
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except SQLAlchemyError:
            if attempt == 5:
                raise
            logger.info("storage %s busy (another worker creating it?): retrying", url)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def write_results(study: Any, out_dir: Path) -> None:
    """``trials.csv`` (every trial: number, state, value, recipe, parameters, status), the plots of
    :func:`plot_sweep` and ``best.json``."""
    rows = []
    for t in study.trials:
        config = t.user_attrs.get("config", {})
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "recipe": config.get("recipe"),
                "lr": config.get("optimizer", {}).get("lr"),
                "warmup_steps": config.get("schedule", {}).get("warmup_steps"),
                "total_steps": config.get("steps"),
                "batch_size": config.get("batch_size"),
                "max_grad_norm": config.get("max_grad_norm"),
                "status": t.user_attrs.get("status"),
                "params": json.dumps(t.params),
            }
        )
    tmp = out_dir / "trials.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out_dir / "trials.csv")
    try:
        from ._plots import plot_sweep

        plot_sweep(study, out_dir)
    except ImportError:  # pragma: no cover - matplotlib is an extra
        logger.warning("matplotlib is not installed: no sweep plots")
    finished = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if not finished:
        logger.warning("no finished trial with a finite value: no best.json")
        return
    best = min(finished, key=lambda t: t.value)
    config = dict(best.user_attrs["config"])
    config.pop("recipe")
    run = {
        "workload": study.user_attrs.get("workload"),
        "workload_options": study.user_attrs.get("workload_options", {}),
        **config,
        "seed": study.user_attrs.get("seed", 0),
        "eval_every": None,
    }
    (out_dir / "best.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
