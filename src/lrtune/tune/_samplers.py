"""Samplers and pruners of a sweep, made safe to continue and to share between workers.

Optuna's samplers take one seed per process, so every process that continues a study (or joins it as another
worker) repeats the first process's draws: the same configurations again. Here each trial gets its own seed,
derived from the sweep's seed and the trial's number (unique in the study): a single-process sweep is
reproduced by its seed, a continued sweep or a second worker draws new configurations.

The grid sampler is lrtune's own: a grid point is taken when a trial holds it that is finished (complete or
pruned), running or waiting; a *failed* trial (Ctrl-C, a killed worker) gives its point back, so every point is
completed exactly once however often the sweep is interrupted and continued. Workers pick among the free points
at random (per trial), so two that start together rarely pick the same; the sweep's twin check catches the rest.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ._storage import optuna

__all__ = ["PRUNERS", "SAMPLERS", "eval_points", "grid_points", "make_pruner", "make_sampler", "trial_seed"]

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("median", "asha", "hyperband", "sh", "none")
GRID_POINT = "lrtune:grid_point"  # the system attribute holding a trial's grid point (its index)


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number`` of a sweep seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def grid_points(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the space's values, in Optuna's grid order (parameter names sorted)."""
    names = sorted(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]


def _base() -> type:
    return optuna().samplers.BaseSampler


class _PerTrial:
    """A sampler made afresh for each trial, seeded with :func:`trial_seed` (TPE and random sampling)."""

    def __init__(self, factory: Callable[[int], Any], seed: int) -> None:
        self._factory, self._seed = factory, seed
        self._live: dict[int, Any] = {}  # trial id -> its sampler

    def _of(self, trial: Any) -> Any:
        if trial._trial_id not in self._live:
            self._live[trial._trial_id] = self._factory(trial_seed(self._seed, trial.number))
        return self._live[trial._trial_id]

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._of(trial).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._of(trial).after_trial(study, trial, state, values)
        self._live.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        pass  # seeds are per trial


class _Grid:
    """Every point of a grid of listed values (or of a given subset of them), each completed once; a failed
    trial's point is run again. Every point: a trial draws one of the free points at random (so that a sweep cut
    short covers the grid evenly); given points: the first free one, in the order given (the best first)."""

    def __init__(self, space: dict[str, list[Any]], seed: int, points: list[dict[str, Any]] | None = None) -> None:
        self.space, self.seed = space, seed
        everything = grid_points(space)
        if points is not None:
            keys = {json.dumps(p, sort_keys=True) for p in everything}
            outside = [p for p in points if json.dumps(p, sort_keys=True) not in keys]
            if outside:
                raise ValueError(f"grid points {outside[:2]} are not points of the space {space}")
        self.points = everything if points is None else [dict(p) for p in points]
        self._in_order = points is not None
        self._keys = [json.dumps(p, sort_keys=True) for p in self.points]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._chosen: dict[int, int] = {}  # trial id -> point

    def point_of(self, trial: Any) -> int | None:
        """The grid point a trial holds (None: none of this grid)."""
        attrs = trial.system_attrs
        if isinstance(attrs.get(GRID_POINT), int):
            return int(attrs[GRID_POINT])
        if "grid_id" in attrs and attrs.get("search_space") == {k: list(v) for k, v in sorted(self.space.items())}:
            return int(attrs["grid_id"])  # a trial of Optuna's own grid sampler (same order)
        given = attrs.get("fixed_params", trial.params)
        exact = self._index.get(json.dumps(given, sort_keys=True))
        if exact is not None:
            return exact
        consistent = [i for i, p in enumerate(self.points) if all(p.get(k) == v for k, v in given.items())]
        return consistent[0] if consistent and given else None

    def taken(self, study: Any, skip: int | None = None) -> dict[int, str]:
        """Point -> the state of a trial holding it (complete, pruned, running or waiting; failed ones free
        their point, and so do trials that only waited for a running twin)."""
        state = optuna().trial.TrialState
        holding = (state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING)
        out: dict[int, str] = {}
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if t._trial_id == skip or t.state not in holding or "twin_of" in t.user_attrs:
                continue
            point = self.point_of(t)
            if point is not None and out.get(point) != "COMPLETE":
                out[point] = t.state.name
        return out

    def before_trial(self, study: Any, trial: Any) -> None:
        fixed = trial.system_attrs.get("fixed_params", {})
        if GRID_POINT in trial.system_attrs:  # a retried trial keeps its point
            self._chosen[trial._trial_id] = int(trial.system_attrs[GRID_POINT])
            return
        taken = self.taken(study, skip=trial._trial_id)
        free = [i for i, p in enumerate(self.points) if i not in taken and all(p[k] == v for k, v in fixed.items())]
        if not free:  # every point is held: run a held, unfinished one (the twin check stops it from training)
            free = [i for i, s in taken.items() if s != "COMPLETE"] or list(range(len(self.points)))
        if self._in_order:
            point = int(free[0])
        else:
            point = int(free[np.random.default_rng(trial_seed(self.seed, trial.number)).integers(len(free))])
        study._storage.set_trial_system_attr(trial._trial_id, GRID_POINT, point)
        self._chosen[trial._trial_id] = point

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        point = self._chosen.get(trial._trial_id, trial.system_attrs.get(GRID_POINT))
        if point is None or param_name not in self.points[point]:
            raise ValueError(f"the grid has no value for {param_name!r}")
        return self.points[point][param_name]

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._chosen.pop(trial._trial_id, None)

    def reseed_rng(self) -> None:
        pass

    def remaining(self, study: Any) -> int:
        """Points without a complete (or pruned) trial."""
        done = [i for i, s in self.taken(study).items() if s in ("COMPLETE", "PRUNED")]
        return len(self.points) - len(done)

    def open(self, study: Any) -> int:
        """Points a worker could still take: held by no trial, or only by one waiting to run (a point that
        another worker is training is not open)."""
        held = [i for i, s in self.taken(study).items() if s != "WAITING"]
        return len(self.points) - len(held)

    def stop_when_held(self, study: Any, trial: Any) -> None:
        """An Optuna callback: stop this worker's loop once every point is finished or being trained, so that a
        worker sharing the grid with others does not draw points that are already held."""
        if self.open(study) == 0:
            study.stop()


def make_sampler(name: str, seed: int, space: dict[str, Any], points: list[dict[str, Any]] | None = None) -> Any:
    """The sweep's sampler: per-trial seeds for TPE and random sampling, lrtune's grid (over every point of the
    space, or the given ``points`` of it), Optuna's QMC (whose sequence index lives in the study, so continued
    sweeps and other workers continue the sequence)."""
    samplers = optuna().samplers
    if name == "grid":  # every combination of the listed values; ranges have no grid
        ranges = sorted(k for k, v in space.items() if not isinstance(v, list))
        if ranges:
            raise ValueError(f"the grid sampler needs lists of values, not ranges: {', '.join(ranges)}")
        return type("GridSampler", (_Grid, _base()), {})(space, seed, points)
    if points is not None:
        raise ValueError("grid points are for the grid sampler")
    if name == "tpe":
        return type("TPESampler", (_PerTrial, _base()), {})(lambda s: samplers.TPESampler(seed=s), seed)
    if name == "random":
        return type("RandomSampler", (_PerTrial, _base()), {})(lambda s: samplers.RandomSampler(seed=s), seed)
    if name == "qmc":
        return samplers.QMCSampler(seed=seed)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


def make_pruner(name: str, first_rung: int, evals: int) -> Any:
    """A pruner that compares trials only from evaluation ``first_rung`` on (1-based, of ``evals`` per trial);
    none when that is the last evaluation (the end of the run: nothing left to save)."""
    pruners = optuna().pruners
    if name not in PRUNERS:
        raise ValueError(f"pruner must be one of {PRUNERS}, got {name!r}")
    if name in ("none", "sh") or first_rung >= evals:  # sh: successive halving is run by the sweep itself
        return pruners.NopPruner()
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=first_rung)  # prunes from that step on
    if name == "asha":
        return pruners.SuccessiveHalvingPruner(min_resource=first_rung)
    return pruners.HyperbandPruner(min_resource=first_rung, max_resource=evals)


def eval_points(total: int, evals: int) -> dict[int, int]:
    """Update -> evaluation index (1 … ``evals``) of a ``total``-update trial: evaluation k at round(k·total/evals),
    so that trials are compared at equal fractions of their schedules and the last evaluation is the end of the
    run (a run shorter than ``evals`` updates has fewer evaluations; a shared update keeps the larger index)."""
    return {max(1, round(total * k / evals)): k for k in range(1, evals + 1)}
