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
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._validate import check_steps
from ..runner import train
from ..schedules import UntunedWarmup
from ..workloads import get_workload
from ._range_test import lr_range_test
from ._space import RECIPES, fixed_params, load_space, lr_centre, setting, suggest

__all__ = ["PRUNERS", "SAMPLERS", "run_sweep"]

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("median", "asha", "hyperband", "sh", "none")


@contextlib.contextmanager
def _without_experimental_warnings() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and their retries are marked experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _optuna().exceptions.ExperimentalWarning)
        yield


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
    if name in ("none", "sh"):  # sh: successive halving is run synchronously by the sweep itself
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
    enqueue: list[dict[str, Any] | str] | None = None,
    lr_from_range_test: str | None = None,
    range_test_steps: int = 100,
    lr_centres: dict[str, float] | None = None,
    run_dirs: bool = False,
    diagnostics_for: Callable[[dict[str, Any]], bool] | None = None,
    rungs: str = "continue",
    reduction_factor: int = 3,
) -> Any:
    """Run ``trials`` more trials of the study (created or continued) and write ``trials.csv`` and ``best.json``.

    Returns the Optuna study. ``steps`` and ``batch_size`` apply when the space does not search them. A running
    trial beats every ``heartbeat`` seconds; one silent for 3 beats (its worker was killed) is marked failed by the
    next worker that starts on the study and tried again (once). ``callbacks`` are Optuna's ``(study, trial)``
    callbacks, called after each trial (e.g. a progress bar).

    ``enqueue``: settings to run first (names of :data:`~lrtune.tune.KNOWN_GOOD` settings or dicts, see
    :func:`~lrtune.tune.fixed_params`), each once per study however often the command runs.
    ``lr_from_range_test`` (a suggestion's name: ``"valley"``, ``"steepest"`` or ``"minimum_over_10"``): before the
    first trial, an LR range test of ``range_test_steps`` updates per distinct optimizer of the space's recipes,
    and each recipe's LRs are the space's LR range moved so that its geometric centre is that suggestion (the
    range's width is kept). The suggestions are stored in the study, so resumed and parallel workers use the same.
    ``lr_centres`` (recipe → LR) centres each recipe's LRs on a given LR instead (e.g. a per-family grid).
    Each trial records its training ``updates`` and ``train_seconds`` (the compute it used, pruned or not); a
    trial whose run config equals a completed trial's (a grid over parameters that its recipe does not use) is not
    trained again: it records ``duplicate_of`` and that trial's value.
    With ``run_dirs``, trial N's run directory (config, per-update metrics, evaluations) is ``OUT/trials/N``;
    ``diagnostics_for(config)`` true records diagnostics there too.

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
    """
    if not heartbeat > 0:
        raise ValueError(f"heartbeat must be > 0, got {heartbeat!r}")
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials!r}")
    if evals_per_trial < 1:
        raise ValueError(f"evals_per_trial must be >= 1, got {evals_per_trial!r}")
    if lr_from_range_test is not None:
        range_test_steps = check_steps("range_test_steps", range_test_steps, minimum=3)  # 3 points to suggest
    if rungs not in ("continue", "restart"):
        raise ValueError(f"rungs must be 'continue' or 'restart', got {rungs!r}")
    if pruner == "sh" and rungs == "restart":
        raise ValueError("pruner 'sh' continues each trial's own run from its checkpoints: it has no rungs='restart'")
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
        raise ValueError(f"reduction_factor must be an integer >= 2, got {reduction_factor!r}")
    optuna = _optuna()
    checked = load_space(space)
    options = workload_options or {}
    task = get_workload(workload, **options)
    defaults = {"steps": steps if steps is not None else task.step_hint, "batch_size": batch_size}
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out_dir)
    first_rung = _first_rung(checked, defaults["steps"], evals_per_trial)
    if pruner != "none":
        log = logger.warning if first_rung >= evals_per_trial else logger.info
        log(
            "%s pruning compares trials from evaluation %d of %d on, after the longest warm-up in the space "
            "(%.0f %% of a run)",
            pruner,
            first_rung,
            evals_per_trial,
            100 * max_warmup_fraction(checked, defaults["steps"]),
        )
    storage_obj = _storage(url, heartbeat)
    the_study = optuna.create_study(
        study_name=study,
        storage=storage_obj,
        direction="minimize",
        sampler=_sampler(sampler, seed, checked),
        pruner=_pruner(pruner, first_rung, evals_per_trial),
        load_if_exists=True,
    )
    the_study.set_user_attr("workload", workload)
    the_study.set_user_attr("workload_options", options)
    the_study.set_user_attr("seed", seed)
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

    def configure(trial: Any) -> dict[str, Any] | float:
        """The trial's run config, or the value of a completed trial with the same config (which it records)."""
        config = suggest(trial, checked, defaults, factors)
        trial.set_user_attr("config", config)
        # a grid over conditional parameters repeats runs (e.g. beta2 for SGD): a finished twin's result is reused
        for twin in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if twin.user_attrs.get("config") == config and "duplicate_of" not in twin.user_attrs:
                for key in ("status", "final_metrics"):
                    trial.set_user_attr(key, twin.user_attrs.get(key))
                trial.set_user_attr("duplicate_of", twin.number)
                trial.set_user_attr("updates", 0)
                trial.set_user_attr("train_seconds", 0.0)
                return float(twin.value)
        return config

    def run(config: dict[str, Any], schedule: dict[str, Any], steps: int, **extra: Any) -> Any:
        return train(
            task,
            optimizer=config["optimizer"],
            schedule=schedule,
            steps=steps,
            batch_size=config["batch_size"],
            seed=config.get("seed", seed),
            max_grad_norm=config["max_grad_norm"],
            **extra,
        )

    def objective(trial: Any) -> float:
        config = configure(trial)
        if not isinstance(config, dict):  # a finished twin's value
            return config
        total = config["steps"]

        reported: set[int] = set()
        updates = 0

        def report(line: dict[str, Any]) -> None:
            nonlocal updates
            if "loss" in line:
                updates = line["step"]
            if "eval" in line:
                index = _eval_index(line["step"], total, evals_per_trial)
                if index in reported:
                    return
                reported.add(index)
                trial.report(line["eval"]["valid_loss"], index)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at update {line['step']}")

        began = time.perf_counter()
        restarted = rungs == "restart" and pruner != "none"
        spent = 0  # updates of the restart rungs' shorter runs
        try:
            if restarted:
                for index in _rung_indices(first_rung, evals_per_trial)[:-1]:
                    n = max(2, round(total * index / evals_per_trial))
                    warm = min(round(config["schedule"]["warmup_steps"] * n / total), n - 1)
                    short = run(config, {**config["schedule"], "warmup_steps": warm, "total_steps": n}, n)
                    spent += short.steps
                    value = short.final_metrics.get("valid_loss", math.inf) if short.status == "completed" else math.inf
                    trial.report(value, index)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after a {n}-update rung run")
            record = run(
                config,
                config["schedule"],
                total,
                eval_every=total if restarted else max(1, total // evals_per_trial),  # restarted: the end only
                callback=report,
                out_dir=out_dir / "trials" / str(trial.number) if run_dirs else None,
                diagnostics=bool(diagnostics_for is not None and diagnostics_for(config)),
            )
        finally:
            trial.set_user_attr("updates", spent + updates)
            trial.set_user_attr("train_seconds", time.perf_counter() - began)
        trial.set_user_attr("status", record.status)
        trial.set_user_attr("final_metrics", record.final_metrics)
        if record.status == "diverged" or "valid_loss" not in record.final_metrics:
            return math.inf
        return float(record.final_metrics["valid_loss"])

    if trials and pruner == "sh":
        _Halving(
            the_study,
            storage_obj,
            configure,
            run,
            rungs=_rung_indices(first_rung, evals_per_trial, reduction_factor),
            evals=evals_per_trial,
            reduction_factor=reduction_factor,
            root=out_dir,
            run_dirs=run_dirs,
            callbacks=callbacks or [],
            diagnostics_for=diagnostics_for,
        )(trials, heartbeat)
    elif trials:
        the_study.optimize(objective, n_trials=trials, catch=(), callbacks=callbacks)
    write_results(the_study, out_dir)
    return the_study


def default_storage(out_dir: Path) -> str:
    """The embedded storage of a sweep written to ``out_dir``: ``sqlite:///OUT/lrtune.db``."""
    return f"sqlite:///{(Path(out_dir) / 'lrtune.db').resolve()}"


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
    names = ("valley", "steepest", "minimum_over_10")
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
                result = lr_range_test(
                    task, optimizer=spec, num_steps=num_steps, batch_size=defaults["batch_size"], seed=seed
                )
                by_optimizer[key] = result.suggestions()[suggestion]
            lrs[name] = by_optimizer[key]
        stored = {"suggestion": suggestion, "lr": lrs, "seconds": time.perf_counter() - began}
        study.set_user_attr("range_test", stored)
    centre = lr_centre(space)
    return {name: lr / centre for name, lr in stored["lr"].items()}


def _eval_index(update: int, total: int, evals: int) -> int:
    """The evaluation index (1 … ``evals``) of an evaluation at ``update`` of a ``total``-update run: trials are
    compared at equal fractions of their schedules (the final evaluation of a run whose length ``evals`` does not
    divide falls on the last index)."""
    return min(evals, max(1, round(update * evals / total)))


def _rung_indices(first: int, evals: int, factor: int = 4) -> list[int]:
    """Evaluation indices of the rungs: first, factor·first, factor²·first, ... below ``evals``, then ``evals``."""
    indices, index = [], first
    while index < evals:
        indices.append(index)
        index *= factor
    return [*indices, evals]


class _Heartbeats:
    """Records a heartbeat for each trial in ``alive`` every ``interval`` seconds, in a daemon thread: trials
    driven by ask-and-tell (which Optuna does not beat for) are then failed, and retried, when their worker dies."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.alive: dict[int, Any] = {}  # trial number -> trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lrtune-heartbeats", daemon=True)

    def _beat(self) -> None:
        while True:
            for trial in list(self.alive.values()):
                self.storage.record_heartbeat(trial._trial_id)  # Optuna has no public accessor for the id
            if self._stop.wait(self.interval):
                return

    def add(self, trial: Any) -> None:
        """Beat for ``trial`` from now on (the first beat at once: a worker killed sooner still leaves one)."""
        self.storage.record_heartbeat(trial._trial_id)
        self.alive[trial.number] = trial

    def __enter__(self) -> _Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _tell(study: Any, trial: Any, **kwargs: Any) -> Any:
    """``study.tell``, and the finished trial. The grid sampler calls ``study.stop()`` after the last point of
    its grid, which raises outside ``optimize`` (Optuna documents this for ask-and-tell); the trial's state and
    value are stored before that, and there is no loop here to stop."""
    try:
        return study.tell(trial, **kwargs)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
        return study.get_trials(deepcopy=False)[trial.number]


class _Halving:
    """Synchronous successive halving over one bracket of new trials: every trial trains to the first rung, the
    best ⌊k/η⌋ of the k at a rung (at least one) continue from their checkpoints to the next, the others are
    pruned; a diverged trial is a value (``inf``). Rung values are the trials' own evaluations, so they equal an
    unpruned run's at those updates. Trials of a worker that was killed are failed by the next worker (heartbeats)
    and retried in its bracket, continuing from the checkpoints they left; on an exception (Ctrl-C) the
    bracket's unfinished trials are failed and retried at once."""

    def __init__(
        self,
        study: Any,
        storage: Any,
        configure: Callable[[Any], dict[str, Any] | float],
        run: Callable[..., Any],
        *,
        rungs: list[int],
        evals: int,
        reduction_factor: int,
        root: Path,
        run_dirs: bool,
        callbacks: list[Any],
        diagnostics_for: Callable[[dict[str, Any]], bool] | None,
    ) -> None:
        self.study, self.storage, self.configure, self.run = study, storage, configure, run
        self.rungs, self.evals, self.eta = rungs, evals, reduction_factor
        self.root, self.run_dirs, self.callbacks, self.diagnostics_for = root, run_dirs, callbacks, diagnostics_for
        self.beats: _Heartbeats | None = None

    def __call__(self, n: int, heartbeat: float) -> None:
        optuna = _optuna()
        with _without_experimental_warnings():
            optuna.storages.fail_stale_trials(self.study)  # a killed worker's bracket, re-enqueued: asked first
        with _Heartbeats(self.storage, heartbeat) as self.beats:
            try:
                self._bracket(n)
            except BaseException:
                retry = self.storage.get_heartbeat_stale_trial_callback()
                for trial in list(self.beats.alive.values()):
                    frozen = self._tell(trial, state=optuna.trial.TrialState.FAIL)
                    if retry is not None:
                        retry(self.study, frozen)
                raise

    def _tell(self, trial: Any, **kwargs: Any) -> Any:
        assert self.beats is not None
        self.beats.alive.pop(trial.number, None)
        return _tell(self.study, trial, **kwargs)

    def _finish(self, member: dict[str, Any], **kwargs: Any) -> None:
        frozen = self._tell(member["trial"], **kwargs)
        if "dir" in member:
            shutil.rmtree(self._checkpoints(member), ignore_errors=True)
        for callback in self.callbacks:
            callback(self.study, frozen)

    def _checkpoints(self, member: dict[str, Any]) -> Path:
        return Path(member["dir"]) / "checkpoints" if self.run_dirs else Path(member["dir"])

    def _members(self, n: int) -> list[dict[str, Any]]:
        """Ask ``n`` trials; those whose config a completed trial already ran are finished with its value."""
        assert self.beats is not None
        retried_number = _optuna().storages.RetryFailedTrialCallback.retried_trial_number
        members = []
        for _ in range(n):
            with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(): _Heartbeats
                warnings.filterwarnings("ignore", "Heartbeat of storage")
                trial = self.study.ask()
            config = self.configure(trial)
            if not isinstance(config, dict):
                self._finish({"trial": trial}, values=config)
                continue
            first = trial.number  # the first of a chain of retries names the directory they resume from
            trials = self.study.get_trials(deepcopy=False)
            with _without_experimental_warnings():
                while (earlier := retried_number(trials[first])) is not None:
                    first = earlier
            member = {"trial": trial, "config": config, "updates": 0, "seconds": 0.0, "reported": set()}
            member["dir"] = (
                self.root / "trials" / str(first)
                if self.run_dirs
                else self.root / "rungs" / f"{self.study.study_name}-{first}"
            )
            if first == trial.number:  # a new trial: what an earlier study left in its directory is not its own
                shutil.rmtree(self._checkpoints(member), ignore_errors=True)
            members.append(member)
            self.beats.add(trial)
        return members

    def _train_to(self, member: dict[str, Any], index: int) -> None:
        """Train (or continue) the member's run to evaluation ``index``, checkpoint it there, record its value."""
        trial, config = member["trial"], member["config"]
        total, evals = config["steps"], self.evals
        target = total if index == evals else max(1, round(total * index / evals))

        def report(line: dict[str, Any]) -> None:
            if "loss" in line:  # one update (a resumed run logs only the updates it trains)
                member["updates"] += 1
            if "eval" in line:
                step = _eval_index(line["step"], total, evals)
                if step not in member["reported"]:
                    member["reported"].add(step)
                    trial.report(line["eval"]["valid_loss"], step)

        began = time.perf_counter()
        record = self.run(
            config,
            config["schedule"],
            target,
            eval_every=max(1, total // evals),
            callback=report,
            out_dir=member["dir"],
            checkpoint_every=target,
            resume=True,
            diagnostics=bool(self.diagnostics_for is not None and self.diagnostics_for(config)),
        )
        member["seconds"] += time.perf_counter() - began
        trial.set_user_attr("updates", member["updates"])
        trial.set_user_attr("train_seconds", member["seconds"])
        if record.status == "interrupted":
            raise KeyboardInterrupt(f"trial {trial.number} interrupted at update {record.steps}")
        at_rung = [e["valid_loss"] for e in record.evals if e["step"] == target]
        member["record"] = record
        member["value"] = float(at_rung[-1]) if record.status == "completed" and at_rung else math.inf
        if index not in member["reported"]:  # a diverged run, or one resumed past this rung
            member["reported"].add(index)
            trial.report(member["value"], index)

    def _bracket(self, n: int) -> None:
        alive = self._members(n)
        for r, index in enumerate(self.rungs):
            for member in alive:
                self._train_to(member, index)
            last = r == len(self.rungs) - 1
            keep = len(alive) if last else max(1, len(alive) // self.eta)
            ranked = sorted(alive, key=lambda m: m["value"])
            for position, member in enumerate(ranked):
                if last or not math.isfinite(member["value"]):  # finished, or diverged: a value
                    member["trial"].set_user_attr("status", member["record"].status)
                    member["trial"].set_user_attr("final_metrics", member["record"].final_metrics)
                    self._finish(member, values=member["value"])
                elif position >= keep:
                    self._finish(member, state=_optuna().trial.TrialState.PRUNED)
            alive = [m for m in ranked[:keep] if math.isfinite(m["value"])]
        with contextlib.suppress(OSError):  # the checkpoints' folder, once no trial has one there
            (self.root / "rungs").rmdir()


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


def _storage(url: str, heartbeat: float) -> Any:
    """An RDB storage with heartbeats; creating the tables is retried, since workers that start together race."""
    optuna = _optuna()
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            with _without_experimental_warnings():
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
                "beta2": (config.get("optimizer", {}).get("betas") or [None, None])[1],
                "seed": config.get("seed", study.user_attrs.get("seed", 0)),
                "updates": t.user_attrs.get("updates"),
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
        "seed": study.user_attrs.get("seed", 0),
        **config,
        "eval_every": None,
    }
    (out_dir / "best.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
