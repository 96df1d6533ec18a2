"""``lrtune auto``: settings for a budget without a grid.

1. An LR range test (``range_test_steps`` updates) gives the steepest-descent LR s.
2. The warm-up is not tuned: Adam gets Ma & Yarats' untuned warm-up of 2/(1 − β2) updates (linear), RAdam none
   (its rectification is the warm-up); the LR then decays linearly to 0 at the budget's end.
3. Successive halving among ``candidates`` peak LRs s · 10^(−k·spacing), k = 0 … candidates − 1 (the range
   test's steepest point is often above the best peak LR for a full run; by default a quarter of a decade apart,
   since on short budgets the final loss is sharp in the LR: half a decade off costs several per cent), on the
   real schedule. Candidates are compared only after the warm-up — Adam's explicit one, or for RAdam the
   2/(1 − β2) updates over which its rectification acts as one (Ma & Yarats 2019): inside a warm-up the larger
   peak LR is ahead only because its LR is larger so far. Every candidate trains to
   ``w + check_fraction/2 · (T − w)`` (w the warm-up, T the budget), the better half continues (from its
   checkpoint) to ``w + check_fraction · (T − w)``, and the candidate with the lowest validation loss there wins.

The result is a run config that ``lrtune train --config`` runs, plus the evidence (the range test's
suggestions, each candidate's validation losses, the compute used in optimizer updates).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validate import check_choice, check_steps
from ..runner import train
from ..schedules import UntunedWarmup
from ..tune import lr_range_test
from ..workloads import Workload, batch_size_for, resolve_workload, workload_reference

__all__ = ["AutoResult", "auto"]

logger = logging.getLogger(__name__)


@dataclass
class AutoResult:
    """The chosen run ``config`` (for :func:`lrtune.train` / ``lrtune train --config``) and the evidence."""

    config: dict[str, Any]
    suggestions: dict[str, float]
    candidates: list[dict[str, Any]]
    updates: int  # compute spent choosing: range test + candidates' updates
    range_test_updates: int
    final: dict[str, Any] | None = field(default=None)  # the full run's outcome, with train_final=True


def _untuned_warmup(beta2: float, steps: int) -> int:
    return min(round(UntunedWarmup(beta2).period), steps // 2)


def _rungs(total: int, warmup: int, check_fraction: float, candidates: int) -> list[int]:
    """The updates at which candidates are compared: after the (explicit or implicit) warm-up ``warmup``."""
    after = total - warmup
    check = min(total, warmup + max(2, math.ceil(check_fraction * after)))
    first = min(check - 1, warmup + max(1, math.ceil(check_fraction / 2 * after)))
    return [first, check] if candidates > 2 else [check]


def auto(
    workload: str | Workload,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    optimizer: str = "adam",
    beta2: float = 0.98,
    candidates: int = 4,
    spacing: float = 0.25,
    check_fraction: float = 0.25,
    range_test_steps: int = 100,
    max_grad_norm: float | None = None,
    seed: int = 0,
    workload_options: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    train_final: bool = False,
) -> AutoResult:
    """Choose peak LR, warm-up and schedule for ``steps`` updates of ``workload`` (a name or a
    :class:`~lrtune.workloads.Workload`, e.g. your own model and data) without a grid; see the module doc.

    ``optimizer`` is ``"adam"`` (β = (0.9, ``beta2``), untuned warm-up) or ``"radam"`` (no warm-up).
    ``workload_options`` build a named workload. With ``train_final``, the chosen config is also trained for
    the whole budget (``final`` holds its outcome).
    Candidate runs are written under ``out`` (a temporary directory if not given).
    """
    check_choice("optimizer", optimizer, ("adam", "radam"))
    if not 0.0 < beta2 < 1.0:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2!r}")
    candidates = check_steps("candidates", candidates, minimum=1)
    if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a positive number of decades, got {spacing!r}")
    range_test_steps = check_steps("range_test_steps", range_test_steps, minimum=3)
    if not 0.0 < check_fraction < 1.0:
        raise ValueError(f"check_fraction must be in (0, 1), got {check_fraction!r}")
    task = resolve_workload(workload, workload_options)
    batch_size = check_steps("batch_size", batch_size_for(task, batch_size), minimum=1)
    total = check_steps("steps", task.step_hint if steps is None else steps, minimum=4)
    spec: dict[str, Any] = {"name": optimizer, "betas": [0.9, beta2]}
    if max_grad_norm is not None:
        spec["max_grad_norm"] = max_grad_norm
    result = lr_range_test(task, optimizer=spec, num_steps=range_test_steps, batch_size=batch_size, seed=seed)
    suggestions = result.suggestions()
    horizon = _untuned_warmup(beta2, total)  # Adam's warm-up, or the span of RAdam's rectification
    warmup = horizon if optimizer == "adam" else 0
    schedule = {"name": "warmup_linear_decay", "warmup_steps": warmup, "total_steps": total}
    updates = len(result.lrs)
    lrs = [suggestions["steepest"] * 10 ** (-k * spacing) for k in range(candidates)]
    logger.info("auto: range test suggests %s; candidates %s", suggestions, lrs)
    rungs = _rungs(total, horizon, check_fraction, candidates)
    pool: list[dict[str, Any]] = [{"lr": lr, "valid_loss": [], "status": "running"} for lr in lrs]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out) if out is not None else Path(tmp)
        alive = list(range(len(pool)))
        for r, rung in enumerate(rungs):
            for i in alive:
                record = train(
                    task,
                    optimizer={**spec, "lr": pool[i]["lr"]},
                    schedule=schedule,
                    steps=rung,
                    batch_size=batch_size,
                    seed=seed,
                    max_grad_norm=None,
                    out_dir=root / f"candidate-{i}",
                    checkpoint_every=rung,
                    resume=r > 0,
                )
                done = record.steps - (rungs[r - 1] if r > 0 else 0)
                updates += max(0, done)
                loss = record.final_metrics.get("valid_loss", math.inf)
                pool[i]["valid_loss"].append(loss if record.status == "completed" else math.inf)
                pool[i]["status"] = record.status
            if r < len(rungs) - 1:
                alive.sort(key=lambda i: pool[i]["valid_loss"][-1])
                alive = alive[: max(1, math.ceil(len(alive) / 2))]
        best = min(alive, key=lambda i: pool[i]["valid_loss"][-1])
    if not math.isfinite(pool[best]["valid_loss"][-1]):
        raise ValueError(f"every candidate LR diverged ({[c['lr'] for c in pool]}): lower the range test's end")
    config: dict[str, Any] = {
        "workload": (named := workload_reference(task) or (task.name, {}))[0],
        "workload_options": named[1],
        "optimizer": {**spec, "lr": pool[best]["lr"]},
        "schedule": schedule,
        "steps": total,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": None,
        "max_grad_norm": None,
    }
    outcome = AutoResult(config, suggestions, pool, updates, len(result.lrs))
    if train_final:
        record = train(
            task,
            optimizer=config["optimizer"],
            schedule=schedule,
            steps=total,
            batch_size=batch_size,
            seed=seed,
            out_dir=None if out is None else Path(out) / "final",
        )
        outcome.final = {"status": record.status, "metrics": record.final_metrics, "seconds": record.seconds}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "auto.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return outcome
