"""Pictures of a sweep (matplotlib): the final loss against the peak LR per recipe — the seed's "performance as a
function of the learning rate", robustness at a glance —, warm-up × LR, and Optuna's history and importances."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

__all__ = ["plot_sweep"]

logger = logging.getLogger(__name__)


def _finished(study: Any) -> list[Any]:
    return [t for t in study.trials if t.value is not None and "config" in t.user_attrs]


def plot_sweep(study: Any, out_dir: Path) -> list[Path]:
    """Write ``loss_vs_lr.png``, ``warmup_lr.png`` (when warm-up varies), ``history.png`` and ``importances.png``
    (when Optuna can compute them) into ``out_dir``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = _finished(study)
    written: list[Path] = []
    if not trials:
        return written

    def save(fig: Any, name: str) -> None:
        fig.savefig(out_dir / name, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / name)

    finite = [t.value for t in trials if math.isfinite(t.value)]
    ceiling = max(finite) * 1.1 if finite else 1.0
    fig, ax = plt.subplots(figsize=(7, 4))
    for recipe in sorted({t.user_attrs["config"]["recipe"] for t in trials}):
        points = sorted(
            (t.user_attrs["config"]["optimizer"]["lr"], t.value)
            for t in trials
            if t.user_attrs["config"]["recipe"] == recipe
        )
        ok = [(lr, v) for lr, v in points if math.isfinite(v)]
        (line,) = ax.plot([p[0] for p in ok], [p[1] for p in ok], marker="o", label=recipe)
        diverged = [lr for lr, v in points if not math.isfinite(v)]
        if diverged:
            ax.scatter(diverged, [ceiling] * len(diverged), marker="x", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final valid loss (× at the top: diverged)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    save(fig, "loss_vs_lr.png")

    warm = [t for t in trials if t.user_attrs["config"]["schedule"]["warmup_steps"] > 0 and math.isfinite(t.value)]
    if len({t.user_attrs["config"]["schedule"]["warmup_steps"] for t in warm}) > 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        sc = ax.scatter(
            [t.user_attrs["config"]["optimizer"]["lr"] for t in warm],
            [t.user_attrs["config"]["schedule"]["warmup_steps"] for t in warm],
            c=[t.value for t in warm],
            cmap="viridis_r",
        )
        fig.colorbar(sc, label="final valid loss")
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel("warm-up updates")
        save(fig, "warmup_lr.png")

    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its plots log each diverged trial they leave out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # Optuna's plots warn when a panel has nothing to show
            try:
                save(optuna.visualization.matplotlib.plot_optimization_history(study).figure, "history.png")
            except (ValueError, RuntimeError) as e:
                logger.info("no optimization history plot: %s", e)
            try:
                save(optuna.visualization.matplotlib.plot_param_importances(study).figure, "importances.png")
            except (ValueError, RuntimeError, ZeroDivisionError) as e:
                logger.info("no parameter importances (too few or too uniform trials): %s", e)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return written
