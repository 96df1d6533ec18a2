"""One trial of a sweep: its run config, the twin check, the training run and what the pruner sees.

Every trial records which process runs it (``worker``), its ``config``, the torch ``threads`` it trains at and,
when it is done, its ``status``, ``final_metrics``, ``updates`` and ``train_seconds``. A trial whose run config a
*completed* trial already ran is not trained again: it records ``duplicate_of`` and that trial's value (a grid
over parameters that its recipe does not use, or a continued sweep that draws a configuration again). A trial
whose config a *running* trial with a smaller number is training (two workers that picked the same point) is not
trained either: it records ``twin_of`` and ends pruned, and the point stays the running trial's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..runner import RunRecord, train
from ..runner._trainer import _InterruptFlag
from ..schedules import cooldown, from_spec
from ._samplers import eval_points
from ._space import suggest
from ._storage import mark_worker, optuna

__all__ = ["HeldInterrupt", "Sweep", "configure", "objective", "run_schedule", "rung_indices"]

logger = logging.getLogger(__name__)


class HeldInterrupt:
    """Holds a Ctrl-C that arrives between training runs — while Optuna writes a trial's state to its storage or
    samples the next one — until that write is done: an interrupted commit leaves a trial half-recorded and Optuna
    fails with an unrelated error. The held press stops the sweep before the next run starts (:meth:`check`) or
    right after the trial in hand is recorded (:meth:`after_trial`, an Optuna callback). During a run the trainer's
    own handler finishes the update and returns ``"interrupted"``. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self._flag = _InterruptFlag()  # the trainer's: first press a flag, a second one KeyboardInterrupt

    def __enter__(self) -> HeldInterrupt:
        self._flag.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self._flag.restore()

    @property
    def pressed(self) -> bool:
        return self._flag.raised

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt("interrupted between trials")

    def after_trial(self, study: Any, trial: Any) -> None:
        self.check()


@dataclass(frozen=True)
class Sweep:
    """What every trial of a sweep shares: the workload, the space and its defaults, the LR centring, where runs
    go, and how trials are compared (evaluations per trial, pruner, rungs)."""

    task: Any
    space: dict[str, Any]
    defaults: dict[str, Any]  # steps and batch_size where the space does not search them
    factors: dict[str, float] | None  # recipe -> LR factor (centring), or None
    seed: int
    out_dir: Path
    evals: int
    pruner: str
    rungs: str  # "continue" or "restart"
    first_rung: int
    run_dirs: bool = False
    diagnostics_for: Callable[[dict[str, Any]], bool] | None = None
    branch: tuple[int, int] | None = None  # (at, cooldown): each trial is its run's cooldown branch, see run_sweep
    start_from: Callable[[dict[str, Any]], Path | None] | None = None  # a config's checkpoint to continue from
    threads: Callable[[dict[str, Any]], int | None] | None = None  # a trial's torch threads, from its parameters
    interrupt: HeldInterrupt = field(default_factory=HeldInterrupt)

    def run(self, config: dict[str, Any], schedule: dict[str, Any], steps: int, **extra: Any) -> RunRecord:
        """Train the trial's config for ``steps`` updates with ``schedule`` (not when Ctrl-C was held)."""
        self.interrupt.check()
        return train(
            self.task,
            optimizer=config["optimizer"],
            schedule=schedule,
            steps=steps,
            batch_size=config["batch_size"],
            seed=config.get("seed", self.seed),
            max_grad_norm=config["max_grad_norm"],
            **extra,
        )

    def run_dir(self, number: int) -> Path | None:
        return self.out_dir / "trials" / str(number) if self.run_dirs else None

    def diagnose(self, config: dict[str, Any]) -> bool:
        """Whether ``diagnostics_for`` wants diagnostics for this config (given with ``grid_lr``: its LR in the
        space's own terms, before any centring factor)."""
        if self.diagnostics_for is None:
            return False
        lr = config["optimizer"]["lr"]
        grid_lr = lr / self.factors[config["recipe"]] if self.factors else lr
        return bool(self.diagnostics_for({**config, "grid_lr": grid_lr}))


def configure(sweep: Sweep, trial: Any) -> dict[str, Any] | float:
    """The trial's run config, or the value of a completed trial with the same config (which it records); raises
    ``TrialPruned`` when a running trial with a smaller number trains the same config."""
    mark_worker(trial)
    config = suggest(trial, sweep.space, sweep.defaults, sweep.factors)
    if sweep.branch is not None:
        at, length = sweep.branch
        if at >= config["steps"]:
            raise ValueError(f"branch at update {at} must come before the run's end, update {config['steps']}")
        config = {**config, "steps": at + length, "branch": {"at": at, "cooldown": length}}
    trial.set_user_attr("config", config)
    try:
        value = check_twins(trial, config)
    except optuna().TrialPruned:
        trial.set_user_attr("updates", 0)
        raise
    if value is None:
        return config
    trial.set_user_attr("updates", 0)
    trial.set_user_attr("train_seconds", 0.0)
    return value


def check_twins(trial: Any, config: dict[str, Any]) -> float | None:
    """The value of a completed trial with the same config (recorded as ``duplicate_of``), or None; raises
    ``TrialPruned`` (recording ``twin_of``) when a running trial with a smaller number trains the same config.

    Two workers that draw one config at once each record it, then look: the one that looks last sees the other.
    If that one has the smaller number it keeps training and the other only learns of it at its next look, so a
    training trial looks again at each evaluation and before it completes (:func:`objective`): of two twins only
    the one with the smaller number ever completes, and a twin that finds the config completed stops there."""
    state = optuna().trial.TrialState
    twins = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING))
        if t.number != trial.number
        and t.user_attrs.get("config") == config
        and "duplicate_of" not in t.user_attrs
        and "twin_of" not in t.user_attrs
    ]
    for twin in twins:
        if twin.state == state.COMPLETE:
            for key in ("status", "final_metrics"):
                trial.set_user_attr(key, twin.user_attrs.get(key))
            trial.set_user_attr("duplicate_of", twin.number)
            return float(twin.value)
    for twin in twins:
        if twin.number < trial.number:
            trial.set_user_attr("twin_of", twin.number)
            raise optuna().TrialPruned(f"trial {twin.number} is training the same configuration")
    return None


class _Duplicate(Exception):
    """Raised from a training run's callback: the config completed in another trial meanwhile (its value)."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


def rung_indices(first: int, evals: int, factor: int = 4) -> list[int]:
    """Evaluation indices of the rungs: first, factor·first, factor²·first, ... below ``evals``, then ``evals``."""
    indices, index = [], first
    while index < evals:
        indices.append(index)
        index *= factor
    return [*indices, evals]


def objective(sweep: Sweep, trial: Any) -> float:
    """Train the trial (reporting its evaluations to the pruner) and return its final validation loss (``inf`` for
    a diverged run). Ctrl-C during the run: the update finishes and ``KeyboardInterrupt`` is raised."""
    config = configure(sweep, trial)
    if not isinstance(config, dict):  # a finished twin's value
        return config
    total = config["steps"]
    points = eval_points(total, sweep.evals)
    reported: set[int] = set()
    updates = 0
    began_at: int | None = None  # the update before this call's first: 0, or a checkpoint's it continues from
    schedule, extra = run_schedule(sweep, config)

    def report(line: dict[str, Any]) -> None:
        nonlocal updates, began_at
        if "loss" in line:
            began_at = line["step"] - 1 if began_at is None else began_at
            updates = line["step"] - began_at
        index = points.get(line["step"]) if "eval" in line else None
        if index is None or index in reported:
            return
        reported.add(index)
        value = check_twins(trial, config)
        if value is not None:
            raise _Duplicate(value)
        trial.report(_value(line["eval"].get("valid_loss")), index)
        if trial.should_prune():
            raise optuna().TrialPruned(f"pruned at update {line['step']}")

    own = torch.get_num_threads()
    threads = sweep.threads(trial.params) if sweep.threads is not None else None
    if sweep.threads is not None and threads is not None and threads > own:
        _wait_alone(trial, sweep.threads, own, sweep.interrupt)
    trial.set_user_attr("threads", threads or own)
    if threads is not None:
        torch.set_num_threads(threads)
    began = time.perf_counter()
    restarted = sweep.rungs == "restart" and sweep.pruner != "none"
    spent = 0  # updates of the restart rungs' shorter runs
    try:
        if restarted:
            for index in rung_indices(sweep.first_rung, sweep.evals)[:-1]:
                n = max(2, round(total * index / sweep.evals))
                warm = min(round(config["schedule"]["warmup_steps"] * n / total), n - 1)
                short = sweep.run(config, {**config["schedule"], "warmup_steps": warm, "total_steps": n}, n)
                spent += short.steps
                _raise_if_interrupted(short, trial)
                trial.report(_final(short), index)
                if trial.should_prune():
                    raise optuna().TrialPruned(f"pruned after a {n}-update rung run")
        record = sweep.run(
            config,
            schedule,
            total,
            eval_at=[total] if restarted else sorted(points),  # restarted: the end only
            callback=report,
            out_dir=sweep.run_dir(trial.number),
            diagnostics=sweep.diagnose(config),
            **extra,
        )
    except _Duplicate as duplicate:
        return duplicate.value
    finally:
        if threads is not None:
            torch.set_num_threads(own)
        trial.set_user_attr("updates", spent + updates)  # what it trained, also when it stopped for a twin
        trial.set_user_attr("train_seconds", time.perf_counter() - began)
    _raise_if_interrupted(record, trial)
    value = check_twins(trial, config)  # last look before completing
    if value is not None:
        return value
    trial.set_user_attr("status", record.status)
    trial.set_user_attr("final_metrics", record.final_metrics)
    return _final(record)


def _wait_alone(
    trial: Any,
    threads: Callable[[dict[str, Any]], int | None],
    own: int,
    interrupt: HeldInterrupt,
    poll: float = 1.0,
) -> None:
    """Before a run given more torch threads than its worker's ``own`` (it is meant to have the cores to itself):
    wait while another trial of the sweep not given more trains in a live worker (one on this host whose process
    is gone is not waited for, nor one elsewhere whose heartbeats stopped). Ctrl-C stops the wait (and the trial
    is queued again)."""
    from ._storage import live_running_trials

    told = False
    while True:
        others = [
            t.number
            for t in live_running_trials(trial.study)
            if t.number != trial.number and (threads(t.params) or 0) <= own
        ]
        if not others:
            return
        if not told:
            logger.info("trial %d waits for trials %s to end: it trains at more threads", trial.number, others)
            told = True
        interrupt.check()
        time.sleep(poll)


def run_schedule(sweep: Sweep, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schedule a trial's run trains with and the training options beyond its config: a branch trial (config
    ``branch``) follows its run's schedule to update ``at``, where it is checkpointed, then decays linearly to 0
    over ``cooldown`` updates, skipping the workload's end-of-run metrics (BLEU: it is compared by its loss);
    with ``start_from``, a trial whose run a checkpoint holds continues from it."""
    schedule, extra = config["schedule"], {}
    branch = config.get("branch")
    if branch is not None:
        schedule = cooldown(from_spec(schedule), branch["at"], branch["cooldown"]).to_spec()
        extra["checkpoint_every"] = branch["at"]
        extra["final_metrics"] = False  # compared by its validation loss: no end-of-run BLEU
    start = sweep.start_from(config) if sweep.start_from is not None else None
    if start is not None:
        extra["init_from"] = start
    return schedule, extra


def _value(loss: Any) -> float:
    return float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


def _final(record: RunRecord) -> float:
    """A run's final validation loss; ``inf`` when it diverged or reported none."""
    if record.status == "diverged" or "valid_loss" not in record.final_metrics:
        return math.inf
    return _value(record.final_metrics["valid_loss"])


def _raise_if_interrupted(record: RunRecord, trial: Any) -> None:
    if record.status == "interrupted":
        raise KeyboardInterrupt(f"trial {trial.number} interrupted at update {record.steps}")
