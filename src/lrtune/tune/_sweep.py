"""Sweeps with Optuna: every trial is an :func:`lrtune.train` run of a workload, sampled from a space (data).

The study lives in an Optuna storage: by default ``sqlite:///OUT/lrtune.db`` (embedded, no server; one writer
process at a time — SQLite locks the whole file, so several workers on one SQLite study contend and can fail), or
a PostgreSQL URL that many workers on many machines share. Running the same command again continues the study.
Each trial reports its validation loss at every evaluation, so a pruner can stop it early — but only from the
first evaluation after the longest warm-up in the space (RAdam's rectification counting as a warm-up of
2/(1 − β2) updates), and at equal fractions of each trial's schedule, so that
long warm-ups are not stopped for being slow to start; a diverged run is a
recorded value (``inf``), not a crash. With ``pruner="sh"`` the sweep runs synchronous successive halving itself:
every trial of the call to that first rung, then the best 1/η (a third by default) on from their checkpoints,
rung after rung. After the trials, ``OUT/trials.csv`` lists every trial of the study and
``OUT/best.json`` is the best trial's run config, which ``lrtune train --config`` runs as it is.

Nothing is lost or trained twice: a continued sweep and concurrent workers draw new configurations (each trial
has its own seed, see :mod:`lrtune.tune._samplers`), never train a configuration the study already has finished
or running (see :mod:`lrtune.tune._trial`), a grid point whose trial failed (Ctrl-C, a killed worker) is run again,
an interrupted trial is queued again, and an output folder whose results the storage does not hold is refused
(see :mod:`lrtune.tune._storage`). The modules: ``_trial`` (one trial), ``_halving`` (synchronous successive
halving), ``_samplers`` (samplers, pruners, evaluation points), ``_storage`` (storage, workers, the results
guard), ``_results`` (``trials.csv``, plots, ``best.json``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._validate import check_steps
from ..schedules import UntunedWarmup
from ..workloads import Workload, batch_size_for, resolve_workload, workload_reference
from ..workloads import workload_options as options_of
from ._halving import Halving
from ._range_test import estimate_lr, lr_range_test
from ._results import write_results
from ._samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from ._space import RECIPES, fixed_params, load_space, lr_centre, setting
from ._storage import (
    Retry,
    check_results,
    default_storage,
    fail_dead_workers,
    open_storage,
    optuna,
    without_experimental_warnings,
    worker_identity,
)
from ._trial import Sweep, objective, rung_indices

__all__ = ["PRUNERS", "SAMPLERS", "default_storage", "max_warmup_fraction", "run_sweep", "write_results"]

logger = logging.getLogger(__name__)


def run_sweep(
    workload: str | Workload,
    space: dict[str, Any] | str | os.PathLike[str],
    *,
    trials: int | None,
    out: str | os.PathLike[str],
    sampler: str = "tpe",
    pruner: str = "median",
    storage: str | None = None,
    study: str = "lrtune",
    seed: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    evals_per_trial: int = 4,
    workload_options: dict[str, Any] | None = None,
    heartbeat: float = 10.0,
    callbacks: list[Any] | None = None,
    enqueue: list[dict[str, Any] | str] | None = None,
    lr_from_range_test: str | None = None,
    range_test_steps: int = 100,
    lr_centres: dict[str, float] | None = None,
    run_dirs: bool = False,
    diagnostics_for: Callable[[dict[str, Any]], bool] | None = None,
    rungs: str = "continue",
    reduction_factor: int = 3,
    grid: list[dict[str, Any]] | None = None,
    branch: tuple[int, int] | None = None,
    start_from: Callable[[dict[str, Any]], Path | None] | None = None,
    threads: Callable[[dict[str, Any]], int | None] | None = None,
    results: bool = True,
) -> Any:
    """Run ``trials`` more trials of the study (created or continued) and write ``trials.csv`` and ``best.json``.

    ``workload`` is a name, a ``package.module:NAME`` reference (built with ``workload_options``) or a workload
    object (see :func:`lrtune.workloads.resolve_workload`); the study records the reference and options, so
    workers on other machines and ``best.json`` build the same workload. Returns the Optuna study. With the grid
    sampler, ``trials=None`` runs every grid point not yet completed (and a larger ``trials`` is capped at that).
    ``steps`` and ``batch_size`` apply when the space does not search them (``batch_size`` defaults to the
    workload's ``batch_hint``, else 64). A running trial beats every ``heartbeat`` seconds; one whose worker
    process is gone is failed and tried again (once)
    by the next worker that starts on the study — at once on the same host, after 3 silent beats
    from another. ``callbacks`` are Optuna's ``(study, trial)`` callbacks, called after each trial (e.g. a
    progress bar). Ctrl-C finishes the current update, fails the trial and queues it again (the next command
    runs it first), writes the results and raises ``KeyboardInterrupt``.

    ``enqueue``: settings to run first (names of :data:`~lrtune.tune.KNOWN_GOOD` settings or dicts, see
    :func:`~lrtune.tune.fixed_params`), each once per study however often the command runs.
    ``lr_from_range_test`` (``"estimate"``: :func:`~lrtune.tune.estimate_lr`'s robust estimate, or a suggestion's name:
    ``"valley"``, ``"steepest"`` or ``"minimum_over_10"``): before the
    first trial, an LR range test of ``range_test_steps`` updates per distinct optimizer of the space's recipes,
    and each recipe's LRs are the space's LR range moved so that its geometric centre is that suggestion (the
    range's width is kept). The suggestions are stored in the study, so resumed and parallel workers use the same.
    ``lr_centres`` (recipe → LR) centres each recipe's LRs on a given LR instead (e.g. a per-family grid).
    Each trial records its training ``updates`` and ``train_seconds`` (the compute it used, pruned or not).
    With ``run_dirs``, trial N's run directory (config, per-update metrics, evaluations) is ``OUT/trials/N``;
    ``diagnostics_for(config)`` true records diagnostics there too (``config["grid_lr"]`` is the LR as the space
    gives it, before centring).

    Each trial is evaluated ``evals_per_trial`` times, evaluation k at update round(k·T/evals) of its T updates
    (the last at the end), and the pruner compares trials at equal evaluation indices from the first one after
    the longest warm-up in the space; when that is the last evaluation, nothing is pruned (the log says so).
    ``rungs="continue"`` (default): a trial is one run, compared with the others at its evaluations, i.e. in the
    middle of its schedule. ``rungs="restart"``: the pruner sees, at the rungs first, 4 × first, ... (in
    evaluation indices) and at the end, the final validation loss of a separate shorter run whose whole schedule
    (warm-up and decay) is compressed to that length, so trials are compared after their decay, not at a point
    where a larger LR is still ahead; a trial that survives every rung costs the sum of its rung runs.

    ``pruner="sh"``: synchronous successive halving over this call's ``trials`` (one bracket): every trial
    trains to the first rung (the first evaluation after the longest warm-up) and is checkpointed there, the best
    ⌊k/η⌋ of the k trials at a rung (η = ``reduction_factor``, at least one) continue from their checkpoints to
    the rung η times further (in evaluations), the others are pruned, and the last rung is the end of the run.
    Unlike the asynchronous pruners, no trial runs to the end before the others have been compared with it; a
    survivor's run is the same run it would have been unpruned (it resumes bit-identically). Checkpoints live
    under ``OUT/rungs`` (``OUT/trials/N`` with ``run_dirs``) until their trial is finished. Several workers on
    one study each run their own bracket.

    ``branch=(at, cooldown)`` compares runs after a decay without training each to its end: each trial trains
    its config's schedule (of ``steps`` updates) to update ``at``, checkpointed there in its run directory
    (``run_dirs`` is needed), then decays the LR linearly from its value there to 0 over ``cooldown`` updates
    (:func:`lrtune.schedules.cooldown`); the trial's value is that branch's final validation loss and its
    config records ``steps = at + cooldown`` and ``branch``. ``start_from(config)`` gives a checkpoint for a
    trial's run to continue from (e.g. such a branch point, with the same config but ``steps`` to the end) or
    None to train it from update 0; the trial's ``updates`` count only what it trains.

    ``grid`` (with the grid sampler): the points to run, a list of the space's grid points, taken in the order
    given (without it, every point of the space, drawn at random). ``threads(params)`` gives the torch thread
    count a trial trains at, from its Optuna parameters (None: the process's); a trial given more than the
    process's waits, before it trains, until the sweep's other trials that are not given more have ended in
    every live worker: it is meant to have the cores to itself. Each trial records its ``threads``.

    ``results=False`` leaves ``trials.csv``, the plots and ``best.json`` unwritten (a worker that shares the
    study with a process that writes them at the end).
    """
    if not (isinstance(heartbeat, (int, float)) and heartbeat > 0):
        raise ValueError(f"heartbeat must be > 0, got {heartbeat!r}")
    if trials is None and sampler != "grid":
        raise ValueError("trials=None (every remaining grid point) needs the grid sampler")
    if trials is not None:
        trials = check_steps("trials", trials, minimum=0)
    if steps is not None:
        steps = check_steps("steps", steps, minimum=1)
    if batch_size is not None:
        batch_size = check_steps("batch_size", batch_size, minimum=1)
    if evals_per_trial < 1:
        raise ValueError(f"evals_per_trial must be >= 1, got {evals_per_trial!r}")
    if lr_from_range_test is not None:
        range_test_steps = check_steps("range_test_steps", range_test_steps, minimum=3)  # 3 points to suggest
    if rungs not in ("continue", "restart"):
        raise ValueError(f"rungs must be 'continue' or 'restart', got {rungs!r}")
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {PRUNERS}, got {pruner!r}")
    if pruner == "sh" and rungs == "restart":
        raise ValueError("pruner 'sh' continues each trial's own run from its checkpoints: it has no rungs='restart'")
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
        raise ValueError(f"reduction_factor must be an integer >= 2, got {reduction_factor!r}")
    if branch is not None:
        if not (isinstance(branch, (tuple, list)) and len(branch) == 2):
            raise ValueError(f"branch must be (at, cooldown), two update counts, got {branch!r}")
        branch = (check_steps("branch at", branch[0], minimum=1), check_steps("branch cooldown", branch[1], minimum=1))
        if not run_dirs:
            raise ValueError("branch needs run_dirs=True: each trial's checkpoint at the branch point is kept there")
    if threads is not None and pruner == "sh":
        raise ValueError("threads sets a trial's threads for its run: pruner 'sh' trains its bracket in turns")
    if (branch is not None or start_from is not None) and (pruner == "sh" or (rungs == "restart" and pruner != "none")):
        raise ValueError(
            "branch and start_from train each trial as one run: use a pruner other than 'sh' and rungs='continue'"
        )
    checked = load_space(space)
    task = resolve_workload(workload, workload_options)
    reference, options = workload_reference(task) or (task.name, options_of(task))
    defaults = {"steps": steps if steps is not None else task.step_hint, "batch_size": batch_size_for(task, batch_size)}
    if branch is not None and "total_steps" not in checked and branch[0] >= defaults["steps"]:
        raise ValueError(f"branch at update {branch[0]} must come before the runs' end, update {defaults['steps']}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out {out_dir} is a file, not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out_dir)
    storage_obj = open_storage(url, heartbeat)
    check_results(out_dir, study, storage_obj, url)
    first_rung = _first_rung(checked, defaults["steps"], evals_per_trial)
    _log_pruning(pruner, first_rung, evals_per_trial, max_warmup_fraction(checked, defaults["steps"]))
    chosen_sampler = make_sampler(sampler, seed, checked, grid)
    the_study = optuna().create_study(
        study_name=study,
        storage=storage_obj,
        direction="minimize",
        sampler=chosen_sampler,
        pruner=make_pruner(pruner, first_rung, evals_per_trial),
        load_if_exists=True,
    )
    _check_same_workload(the_study, reference, options)
    factors = None
    if lr_centres is not None:
        if lr_from_range_test is not None:
            raise ValueError("give lr_centres or lr_from_range_test, not both")
        missing = set(checked.get("optimizer", ["adam"])) - set(lr_centres)
        if missing:
            raise ValueError(f"lr_centres has no LR for the space's recipes {sorted(missing)}")
        factors = {name: lr / lr_centre(checked) for name, lr in lr_centres.items()}
    if lr_from_range_test is not None:
        factors = _lr_factors(the_study, task, checked, lr_from_range_test, range_test_steps, defaults, seed)
    for entry in enqueue or []:
        params = fixed_params(entry, checked, defaults, factors)
        the_study.enqueue_trial(params, user_attrs={"fixed_lr": float(setting(entry)["lr"])}, skip_if_exists=True)
    fail_dead_workers(the_study, storage_obj)
    if sampler == "grid":
        left = chosen_sampler.remaining(the_study)
        trials = left if trials is None else min(trials, left)
    assert trials is not None
    sweep = Sweep(
        task=task,
        space=checked,
        defaults=defaults,
        factors=factors,
        seed=seed,
        out_dir=out_dir,
        evals=evals_per_trial,
        pruner=pruner,
        rungs=rungs,
        first_rung=first_rung,
        run_dirs=run_dirs,
        diagnostics_for=diagnostics_for,
        branch=branch,
        start_from=start_from,
        threads=threads,
    )
    after = [*(callbacks or []), sweep.interrupt.after_trial]
    if sampler == "grid" and pruner != "sh":  # workers sharing a grid stop when the rest is held by others
        after.append(chosen_sampler.stop_when_held)
    try:
        with sweep.interrupt:
            if trials and pruner == "sh":
                Halving(
                    sweep,
                    the_study,
                    storage_obj,
                    rungs=rung_indices(first_rung, evals_per_trial, reduction_factor),
                    reduction_factor=reduction_factor,
                    callbacks=after,
                )(trials, heartbeat)
            elif trials:
                with _quiet_interruptions():
                    the_study.optimize(functools.partial(objective, sweep), n_trials=trials, catch=(), callbacks=after)
    except KeyboardInterrupt:
        if pruner != "sh":  # (successive halving queues its bracket again itself)
            _queue_interrupted(the_study)
        if results:
            write_results(the_study, out_dir)
        raise
    if results:
        write_results(the_study, out_dir)
    return the_study


def _check_same_workload(study: Any, workload: str, options: dict[str, Any]) -> None:
    """Record the study's workload, or refuse to continue it on another one."""
    known = study.user_attrs.get("workload")
    if known is None:
        study.set_user_attr("workload", workload)
        study.set_user_attr("workload_options", options)
        return
    recorded = study.user_attrs.get("workload_options", {})
    if known != workload or json.dumps(recorded, sort_keys=True) != json.dumps(options, sort_keys=True):
        raise ValueError(
            f"study {study.study_name!r} tunes workload {known!r} with options {recorded}, not {workload!r} with "
            f"{options}: give another --study (or --out)"
        )


def _queue_interrupted(study: Any) -> None:
    """Queue again the trials this process was running when it was interrupted (failed by Optuna)."""
    me = worker_identity()
    retried_number = optuna().storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    trials = study.get_trials(deepcopy=False)
    with without_experimental_warnings():
        retried = {retried_number(t) for t in trials}
        for t in trials:
            worker = t.user_attrs.get("worker", {})
            mine = worker.get("pid") == me["pid"] and worker.get("host") == me["host"]
            if t.state == optuna().trial.TrialState.FAIL and mine and t.number not in retried:
                Retry(max_retry=None)(study, t)
                logger.warning(
                    "trial %d was interrupted: queued again; the next command on this study runs it", t.number
                )


class _NoInterruptTracebacks(logging.Filter):
    """Drops Optuna's "Trial N failed ... KeyboardInterrupt" warning with its traceback, and the "Trial N failed
    with value None" that follows it: an interruption is reported in one line by the sweep."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, KeyboardInterrupt) or "KeyboardInterrupt" in record.getMessage():
            self.interrupted = True
            return False
        return not (self.interrupted and "failed with value None" in record.getMessage())


@contextlib.contextmanager
def _quiet_interruptions() -> Iterator[None]:
    target = logging.getLogger("optuna.study._optimize")
    quiet = _NoInterruptTracebacks()
    target.addFilter(quiet)
    try:
        yield
    finally:
        target.removeFilter(quiet)


def _log_pruning(pruner: str, first_rung: int, evals: int, warmup: float) -> None:
    if pruner == "none":
        return
    if first_rung >= evals:
        logger.warning(
            "no pruning: the longest warm-up in the space (%.0f %% of a run) ends after the last evaluation before "
            "the end of a run (%d per run); every trial runs to the end",
            100 * warmup,
            evals,
        )
    else:
        logger.info(
            "%s pruning compares trials from evaluation %d of %d on (%.0f %% of a run), after the longest warm-up "
            "in the space (%.0f %%)",
            pruner,
            first_rung,
            evals,
            100 * first_rung / evals,
            100 * warmup,
        )


def _lr_factors(
    study: Any,
    task: Any,
    space: dict[str, Any],
    suggestion: str,
    num_steps: int,
    defaults: dict[str, Any],
    seed: int,
) -> dict[str, float]:
    """Per recipe, the factor that moves the space's LR centre onto the range test's suggestion (stored in the
    study: computed by the first worker, read by the others and on resume)."""
    names = ("estimate", "valley", "steepest", "minimum_over_10")
    if suggestion not in names:
        raise ValueError(f"lr_from_range_test must be one of {names}, got {suggestion!r}")
    stored = study.user_attrs.get("range_test")
    recipes = space.get("optimizer", ["adam"])
    if stored is not None and (stored["suggestion"] != suggestion or set(stored["lr"]) != set(recipes)):
        raise ValueError(
            f"study {study.study_name!r} centred its LRs on {stored['suggestion']!r} suggestions for "
            f"{sorted(stored['lr'])}; it cannot continue with {suggestion!r} for {sorted(recipes)}"
        )
    if stored is None:
        if study.trials:
            raise ValueError(f"study {study.study_name!r} already has trials run without a range test")
        by_optimizer: dict[str, float] = {}
        lrs: dict[str, float] = {}
        began = time.perf_counter()
        for name in recipes:
            recipe = RECIPES[name]
            spec = dict(recipe.optimizer, max_grad_norm=recipe.max_grad_norm)
            key = json.dumps(spec, sort_keys=True)
            if key not in by_optimizer:
                logger.info("LR range test for %s (%d updates)", spec, num_steps)
                if suggestion == "estimate":  # repeated range tests, read robustly (see estimate_lr)
                    found = estimate_lr(
                        task, optimizer=spec, num_steps=num_steps, batch_size=defaults["batch_size"], seed=seed
                    )
                    for reason in found.weak:
                        logger.warning("LR estimate for %s: weak evidence: %s", name, reason)
                    by_optimizer[key] = found.lr
                else:
                    result = lr_range_test(
                        task, optimizer=spec, num_steps=num_steps, batch_size=defaults["batch_size"], seed=seed
                    )
                    by_optimizer[key] = result.suggestions()[suggestion]
            lrs[name] = by_optimizer[key]
        stored = {"suggestion": suggestion, "lr": lrs, "seconds": time.perf_counter() - began}
        study.set_user_attr("range_test", stored)
    centre = lr_centre(space)
    return {name: lr / centre for name, lr in stored["lr"].items()}


def max_warmup_fraction(space: dict[str, Any], default_steps: int) -> float:
    """The longest warm-up in the space, as a fraction of its trial's total updates (0 without warm-ups).

    RAdam's rectification counts as a warm-up of 2/(1 − β2) updates (Ma & Yarats 2019: it acts like a linear
    warm-up of that length), so RAdam trials are not compared while their rectification still damps the LR.
    """
    recipes = space.get("optimizer", ["adam"])
    totals = space.get("total_steps", [default_steps])
    shortest = max(1, min(totals) if isinstance(totals, list) else totals["min"])
    explicit = 0.0
    if any(RECIPES[r].warmup for r in recipes):
        spec = space.get("warmup_steps")
        if spec is None:  # the recipes' defaults
            explicit = max(RECIPES[r].warmup_fraction for r in recipes if RECIPES[r].warmup)
        elif isinstance(spec, dict) and "fraction_of_total" in spec:
            explicit = float(spec["fraction_of_total"][1])
        else:
            explicit = (max(spec) if isinstance(spec, list) else spec["max"]) / shortest
    rectified = [RECIPES[r].optimizer for r in recipes if RECIPES[r].optimizer["name"] == "radam"]
    implicit = 0.0
    if rectified:
        beta2 = space.get("beta2")
        if beta2 is None:
            longest = max(o["betas"][1] for o in rectified)
        else:
            longest = max(beta2) if isinstance(beta2, list) else beta2["max"]
        implicit = UntunedWarmup(longest).period / shortest
    return min(1.0, max(explicit, implicit))


def _first_rung(space: dict[str, Any], default_steps: int, evals: int) -> int:
    """The first evaluation after every trial's warm-up (explicit, or RAdam's rectification): a pruner that
    compared trials inside their warm-up would systematically stop the long warm-ups (their loss is still high
    because their LR is still low) and favour the larger peak LRs (ahead only because their LR is larger so far)."""
    # (the tolerance: 2/(1 − 0.98) is 99.99999999999999 in floating point, and its end is still inside)
    return min(evals, math.floor(max_warmup_fraction(space, default_steps) * evals + 1e-9) + 1)
