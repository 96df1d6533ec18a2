"""``lrtune study``: the comparison of the RAdam paper's recipes on a workload, run as a resumable sweep.

The recipes — SGD + momentum + gradient clipping, Adam without warm-up, Adam + linear warm-up, RAdam without
warm-up, RAdam + warm-up and AlgoPerf's baseline (AdamW, 5 % warm-up, cosine decay) — each run over a log-spaced
LR grid centred on a per-family LR (SGD's LRs are two orders of magnitude above Adam's), from several seeds, all
with a decay to 0 at the end of the run. The runs are the trials of one Optuna study on the grid sampler
(:func:`lrtune.tune.run_sweep`): running the command again continues it, and workers sharing a storage split it.

Two measures per run, as AlgoPerf: the final quality (validation loss, BLEU) and the updates (and seconds) taken
to reach a target validation loss set from the best runs (1.02 × the best mean final validation loss; a run that
never reaches it is infinitely slow). The analysis (:func:`analyse`) gives per recipe and LR the mean and spread
over seeds, the LR range within 2 % of the best (robustness), divergences, compute, and a recommendation: the
recipe and LR with the lowest mean final validation loss, with its warm-up and schedule.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import statistics
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._validate import check_steps
from ..diagnostics import load_run
from ..tune import RECIPES, run_sweep
from ..tune._samplers import make_sampler
from ..tune._space import lr_centre
from ..tune._storage import default_storage
from ..workloads import Translation, Workload, batch_size_for, resolve_workload, workload_reference
from ..workloads import workload_options as options_of
from ._transfer import compare_horizons

__all__ = ["LR_CENTRES", "PRESETS", "Preset", "analyse", "run_study", "study_space"]

logger = logging.getLogger(__name__)

#: The middle of each recipe's LR grid (peak LR): Adam-family LRs near those that train the translation
#: workload well with a warm-up, SGD's two orders of magnitude higher (its LR multiplies the raw gradient).
LR_CENTRES: dict[str, float] = {
    "sgd_clip": 0.3,
    "adam": 3e-3,
    "adam_warmup": 3e-3,
    "radam": 3e-3,
    "radam_warmup": 3e-3,
    "algoperf": 3e-3,
}
TARGET_FACTOR = 1.02  # target validation loss = this × the best mean final validation loss
ROBUST_FACTOR = TARGET_FACTOR  # an LR is "near the best" when its mean final validation loss reaches the target


@dataclass(frozen=True)
class Preset:
    """What a study runs: recipes × LR grid (factors of each recipe's centre) × seeds (× warm-ups, total updates
    and β2 when given), ``batch_tokens`` per update, ``evals`` validation evaluations per run, BLEU on
    ``bleu_pairs`` test sentences at the end of each run.

    ``target_steps``: the number of updates the recommendation is for (the user's training length; default the
    longest ``steps``). When it is longer than every screening run, ``finalists`` settings of the screening (its
    best and the best beside its peak LR, see :func:`choose_finalists`) are trained again with their whole schedule
    stretched to ``target_steps`` (first seed), and the best of them at the target is the recommendation:
    short-horizon bias can reorder settings (a peak LR ahead after 50 or 100 updates may stall by 400 or 800, or
    the reverse), so the answer is measured at the horizon it is for.

    ``beyond``: when the recommended setting has the largest (or smallest) peak LR its recipe tried, the study
    trains it with the next LR beyond (a grid step further, its whole schedule from update 0, for the horizon the
    recommendation is for: with the finalists' seed, or without finalists the screening's seeds), and again while
    the best is at that edge, ``beyond`` times at most: a recommendation is never an edge of the LRs tried unless
    the study says that it ran out of steps (see ``summary["beyond"]``).

    ``branch=(a, c)`` (fractions of ``target_steps``; needs a target beyond the screening) screens by branches
    instead of by whole short runs: each setting trains its target-length schedule (warm-up as long as there) to
    update round(a·target), checkpointed, then a branch of it decays the LR linearly to 0 over round(c·target)
    updates; the settings are ranked by the branches' final validation loss, and the best ``finalists`` of that
    ranking continue their runs from the checkpoint to the target. ``steps`` is then the branches' length,
    set from ``branch`` and the target."""

    recipes: tuple[str, ...]
    lr_factors: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: tuple[int, ...]
    batch_tokens: int
    evals: int
    bleu_pairs: int | None
    warmup_steps: tuple[int, ...] | None = None
    beta2: tuple[float, ...] | None = None
    diagnostics: bool = True
    target_steps: int | None = None
    finalists: int = 3
    branch: tuple[float, float] | None = None
    beyond: int = 2

    def __post_init__(self) -> None:
        if self.branch is not None:
            self._set_branch_steps()
        if not self.recipes or set(self.recipes) - set(RECIPES):
            raise ValueError(f"recipes must be a non-empty tuple of {', '.join(RECIPES)}; got {self.recipes!r}")
        if not self.lr_factors or not all(f > 0 for f in self.lr_factors):
            raise ValueError(f"lr_factors must be positive numbers, got {self.lr_factors!r}")
        if not self.seeds or not all(isinstance(x, int) for x in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of integers, got {self.seeds!r}")
        if not self.steps or not all(isinstance(n, int) and n >= 2 for n in self.steps):
            raise ValueError(f"steps must be integers >= 2, got {self.steps!r}")
        if self.batch_tokens < 1 or self.evals < 1:
            raise ValueError(f"batch_tokens and evals must be >= 1, got {self.batch_tokens!r}, {self.evals!r}")
        if self.warmup_steps is not None and max(self.warmup_steps) >= min(self.steps):
            raise ValueError(f"warmup_steps {self.warmup_steps!r} must be shorter than the runs {self.steps!r}")
        if self.target_steps is not None and (
            not isinstance(self.target_steps, int) or self.target_steps < max(self.steps)
        ):
            raise ValueError(
                f"target_steps must be an integer >= the longest steps {max(self.steps)}, got {self.target_steps!r}"
            )
        if not isinstance(self.finalists, int) or self.finalists < 1:
            raise ValueError(f"finalists must be an integer >= 1, got {self.finalists!r}")
        if not isinstance(self.beyond, int) or isinstance(self.beyond, bool) or self.beyond < 0:
            raise ValueError(f"beyond must be an integer >= 0, got {self.beyond!r}")

    def _set_branch_steps(self) -> None:
        branch = self.branch
        if not (
            isinstance(branch, (tuple, list))
            and len(branch) == 2
            and all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in branch)
            and sum(branch) < 1
        ):
            raise ValueError(f"branch must be two fractions of target_steps > 0 with a sum < 1, got {branch!r}")
        if not isinstance(self.target_steps, int) or isinstance(self.target_steps, bool) or self.target_steps < 1:
            raise ValueError(f"branch screening needs target_steps, an integer >= 1, got {self.target_steps!r}")
        at, length = self.branch_steps
        if at < 1 or at + length >= self.target_steps:
            shortest = next(
                t for t in itertools.count(2) if 1 <= round(branch[0] * t) < t - max(1, round(branch[1] * t))
            )
            raise ValueError(
                f"target_steps must be at least {shortest} for branches at {branch[0]:g} of it with {branch[1]:g} of "
                f"it to cool down, got {self.target_steps}"
            )
        object.__setattr__(self, "branch", (float(branch[0]), float(branch[1])))
        object.__setattr__(self, "steps", (at + length,))

    @property
    def branch_steps(self) -> tuple[int, int]:
        """The update at which the screening's branches leave their runs and the cooldown's length."""
        if self.branch is None or self.target_steps is None:
            raise ValueError("this preset does not screen by branches")
        return round(self.branch[0] * self.target_steps), max(1, round(self.branch[1] * self.target_steps))

    @property
    def horizon(self) -> int:
        """The number of updates the study's recommendation is for."""
        return self.target_steps if self.target_steps is not None else max(self.steps)

    @property
    def has_final(self) -> bool:
        """Whether the study trains finalists to a target beyond its screening runs."""
        return self.target_steps is not None and self.target_steps > max(self.steps)

    @property
    def final_runs(self) -> int:
        """How many finalists the study trains to the target: ``finalists``, at most one per setting of its grid
        (none without a target beyond the screening)."""
        return min(self.finalists, grid_size(study_space(self)) // len(self.seeds)) if self.has_final else 0


ALL = ("sgd_clip", "adam", "adam_warmup", "radam", "radam_warmup", "algoperf")
HALF_DECADES = tuple(10 ** (k / 2) for k in range(-2, 3))
PRESETS: dict[str, Preset] = {
    # 6 recipes × 3 LRs (half a decade apart), each trained on its 400-update schedule to update 48, then a
    # 12-update cooldown branch; the best 3 branches continue their runs to 400, the horizon the recommendation is
    # for (replayed on the benchmarks' cells: within 1 % of the best of the 18 at 400 on translation and the
    # character LM, where screening by whole 50-update runs missed by 8 % and 13 %: benchmarks/study_transfer.py)
    "quick": Preset(
        ALL, (10**-0.5, 1.0, 10**0.5), (0,), (60,), 800, 2, 50, target_steps=400, finalists=3, branch=(0.12, 0.03)
    ),
    # the full comparison: 5 LRs over two decades, warm-up length, run length and RAdam's β2 as axes
    "standard": Preset(ALL, HALF_DECADES, (0, 1), (400, 800), 1000, 8, 200, (20, 40, 80), (0.98, 0.999)),
    # the paper's scale on this workload (hours on CPUs; spread it over workers with a shared storage)
    "paper": Preset(
        ALL,
        tuple(10 ** (k / 2) for k in range(-3, 4)),
        (0, 1, 2),
        (3000,),
        2000,
        10,
        None,
        (150, 300, 600),
        (0.98, 0.999),
    ),
}


def study_space(preset: Preset) -> dict[str, Any]:
    """The sweep's search space (a grid) for a preset; LRs are factors of each recipe's centre."""
    space: dict[str, Any] = {
        "optimizer": list(preset.recipes),
        "lr": list(preset.lr_factors),
        "seed": list(preset.seeds),
    }
    if len(preset.steps) > 1:
        space["total_steps"] = list(preset.steps)
    if preset.warmup_steps is not None:
        space["warmup_steps"] = list(preset.warmup_steps)
    if preset.beta2 is not None:
        space["beta2"] = list(preset.beta2)
    return space


def grid_size(space: dict[str, Any]) -> int:
    return math.prod(len(v) for v in space.values())


def _diagnose(preset: Preset) -> Callable[[dict[str, Any]], bool]:
    """Diagnostics (the Figure-2 histograms) for Adam with and without warm-up and RAdam at the middle LR of each
    recipe's grid, first seed, first run length and β2."""
    centre = lr_centre({"lr": list(preset.lr_factors)})
    middle = min(preset.lr_factors, key=lambda f: abs(math.log(f / centre)))

    def wanted(config: dict[str, Any]) -> bool:
        recipe = config["recipe"]
        return (
            preset.diagnostics
            and recipe in ("adam", "adam_warmup", "radam")
            and math.isclose(config["grid_lr"], middle, rel_tol=1e-9)
            and config.get("seed", 0) == preset.seeds[0]
            and config["steps"] == preset.steps[0]
            and config["optimizer"]["betas"][1] == (preset.beta2 or (0.98,))[0]
        )

    return wanted


def resolve_preset(preset: str | Preset, seeds: int | None = None) -> tuple[str, Preset]:
    """The study's name part (the preset's name, ``"custom"`` for a :class:`Preset`) and its settings, with
    ``seeds`` seeds (0 … seeds − 1) instead of the preset's when given."""
    chosen = PRESETS[preset] if isinstance(preset, str) and preset in PRESETS else preset
    if not isinstance(chosen, Preset):
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or a Preset, got {preset!r}")
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds!r}")
        chosen = Preset(**{**asdict(chosen), "seeds": tuple(range(seeds))})
    return (preset if isinstance(preset, str) else "custom"), chosen


def with_target(
    preset: Preset, target_steps: int | None, finalists: int | None = None, beyond: int | None = None
) -> Preset:
    """``preset`` whose recommendation is for ``target_steps`` updates, choosing among ``finalists`` settings
    trained that long and up to ``beyond`` runs beyond the grid's edge (None: the preset's own)."""
    changes = {"target_steps": target_steps, "finalists": finalists, "beyond": beyond}
    changes = {k: v for k, v in changes.items() if v is not None}
    return Preset(**{**asdict(preset), **changes}) if changes else preset


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: strict JSON (``Infinity`` is not JSON, and
    JavaScript's ``JSON.parse`` rejects it). In summary.json, null marks a diverged run's loss, a mean over seeds
    that include one, and a target never reached."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_study(
    workload: str | Workload = "translation-de-en",
    *,
    preset: str | Preset = "quick",
    out: str | os.PathLike[str] = "study",
    storage: str | None = None,
    seeds: int | None = None,
    target_steps: int | None = None,
    finalists: int | None = None,
    batch_size: int | None = None,
    workload_options: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    report: bool = True,
    jobs: int = 1,
    beyond: int | None = None,
) -> dict[str, Any]:
    """Run (or continue) the study and write ``OUT/summary.json`` and ``OUT/report.html``; returns the summary
    (where a diverged run's loss is ``math.inf``; summary.json, strict JSON, has null there).

    ``seeds`` overrides the preset's number of seeds, ``target_steps`` the number of updates the recommendation
    is for (see :class:`Preset`: longer than the screening runs, the best ``finalists`` are trained that long,
    under ``OUT/final``); ``finalists`` overrides the preset's number of them (more cost more and miss less: a
    setting the screening ranked below the finalists is never trained to the target). When the recommended
    setting has its recipe's largest (smallest) LR, the study also trains it with the LR beyond, under
    ``OUT/beyond`` (``beyond`` times at most, default the preset's; see :class:`Preset`; ``summary["beyond"]``
    lists them). ``workload_options`` go to
    the workload (translation's ``bleu_pairs`` defaults to the preset's). ``callbacks`` are Optuna trial
    callbacks (e.g. a progress bar).

    ``jobs`` > 1 trains that many runs at once, in this process and ``jobs`` − 1 helper processes (spawned: the
    workload must be a name or a ``package.module:NAME`` reference they import again, and a script that calls
    this needs the ``if __name__ == "__main__":`` guard), torch's threads split among them: for a model too
    small to keep every core busy (see :mod:`lrtune.study._parallel`). The finalists are dealt out in rank order;
    those left over for the last turn (the third of three with two jobs) train at all the threads, shared among
    them, once the others have ended. The runs are the same as with one job, apart from the floating-point
    differences that another thread count brings (each run's ``threads`` is in the summary).
    """
    jobs = check_steps("jobs", jobs, minimum=1)
    name, chosen = resolve_preset(preset, seeds)
    chosen = with_target(chosen, target_steps, finalists, beyond)
    options = dict(workload_options or {})
    if workload == "translation-de-en" and chosen.bleu_pairs is not None:
        options.setdefault("bleu_pairs", chosen.bleu_pairs)
    task = resolve_workload(workload, options)
    named = workload_reference(task)
    if jobs > 1 and named is None:
        raise ValueError(
            f"jobs={jobs} needs a workload that helper processes can import again: a name or a package.module:NAME "
            f"reference, not {type(task).__name__} built in __main__"
        )
    reference, options = named or (task.name, options_of(task))
    batch = study_batch_size(task, chosen, batch_size)
    with _threads_for(jobs) as threads:
        plan = _Plan(reference, options, name, chosen, Path(out), storage, batch, jobs, threads)
        if jobs == 1:
            study, final = _in_turn(plan, task, callbacks)
        else:
            study, final = _with_helpers(plan, task, callbacks)
        sources: list[Source] = [(study, plan.out_dir, plan.space, None)]
        if final is not None:
            sources.append((final[0], plan.out_dir / "final", plan.final_space, final[1]))
        looked, summary = _look_beyond(plan, task, sources, callbacks)
    centres = plan.centring(task).get("lr_centres") or study.user_attrs["range_test"]["lr"]
    branch = plan.branch
    summary |= {
        "workload": reference,
        "workload_options": options,
        "batch_size": plan.batch,
        # each recipe's LR grid is centred here: measured on translation, else the workload's own LR estimate
        "lr_centres": {
            "source": "lrtune.study.LR_CENTRES" if isinstance(task, Translation) else "estimate_lr",
            "lr": centres,
        },
        "preset": name,
        "preset_settings": asdict(chosen),
        # the runs beyond an edge of the grid that the best setting at the target was at (see Preset.beyond)
        "beyond": looked,
        # how the screening compared the settings: whole runs of ``steps`` updates, or branches of the target's runs
        "screening": (
            {"kind": "branch", "at": branch[0], "cooldown": branch[1], "of_steps": chosen.horizon, "steps": sum(branch)}
            if branch
            else {"kind": "runs", "steps": chosen.steps[0]}
        ),
    }
    from ._report import edge_note

    edge = edge_note(summary)
    if edge:
        logger.warning("%s", edge)
    out_dir = plan.out_dir
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False), encoding="utf-8")
    tmp.replace(out_dir / "summary.json")
    if summary.get("recommendation"):
        (out_dir / "recommended.json").write_text(
            json.dumps(summary["recommendation"]["config"], indent=2), encoding="utf-8"
        )
    if report:
        from ._report import write_study_report

        write_study_report(summary, out_dir)
    return summary


@dataclass(frozen=True)
class _Plan:
    """What every worker of a study needs to run its phases (plain data: helper processes receive it)."""

    workload: str  # the reference resolve_workload builds the workload from
    options: dict[str, Any]
    name: str  # the preset's name (the studies' names derive from it)
    preset: Preset
    out_dir: Path
    storage: str | None
    batch: int
    jobs: int = 1  # the workers
    threads: int = 1  # torch's threads, shared among them

    @property
    def url(self) -> str:
        return self.storage or default_storage(self.out_dir)

    @property
    def space(self) -> dict[str, Any]:
        return study_space(self.preset)

    @property
    def branch(self) -> tuple[int, int] | None:
        return self.preset.branch_steps if self.preset.branch is not None else None

    @property
    def final_preset(self) -> Preset:
        chosen = self.preset
        return Preset(**{**asdict(chosen), "steps": (chosen.horizon,), "seeds": chosen.seeds[:1], "branch": None})

    @property
    def final_space(self) -> dict[str, Any]:
        return study_space(self.final_preset)

    def common(self, callbacks: list[Any] | None) -> dict[str, Any]:
        return {
            "sampler": "grid",
            "pruner": "none",
            "storage": self.url,
            "batch_size": self.batch,
            "callbacks": callbacks,
            "run_dirs": True,
        }

    def centring(self, task: Any) -> dict[str, Any]:
        # translation's grid is centred on LRs measured on it; any other workload's on its own LR range tests
        if isinstance(task, Translation):
            return {"lr_centres": {r: LR_CENTRES[r] for r in self.preset.recipes}}
        return {"lr_from_range_test": "estimate"}


def _screen(
    plan: _Plan, task: Any, callbacks: list[Any] | None, trials: int | None = None, results: bool = True
) -> Any:
    """The screening: every grid point (``trials`` of them at most) as a whole short run or a branch."""
    chosen, branch = plan.preset, plan.branch
    return run_sweep(
        task,
        plan.space,
        trials=trials,  # None: every grid point not yet completed
        out=plan.out_dir,
        study=f"study-{plan.name}",
        steps=chosen.horizon if branch else chosen.steps[0],  # branches leave the target's schedule
        diagnostics_for=_diagnose(chosen),
        branch=branch,
        evals_per_trial=1 if branch else chosen.evals,  # a branch is compared at its end only
        results=results,
        **plan.centring(task),
        **plan.common(callbacks),
    )


def _finish(
    plan: _Plan, task: Any, study: Any, callbacks: list[Any] | None, results: bool = True
) -> tuple[Any, list[dict[str, Any]]]:
    """The finalists (the screening's best settings) trained to the target; returns their study and points."""
    screened = analyse(study, plan.out_dir, space=plan.space)
    if screened["missing"]:
        raise ValueError(f"{len(screened['missing'])} screening runs are missing: run the study again")
    points = choose_finalists(screened, plan.preset)
    centres = plan.centring(task).get("lr_centres") or study.user_attrs["range_test"]["lr"]
    branch = plan.branch
    final = run_sweep(
        task,
        plan.final_space,
        trials=None,
        out=plan.out_dir / "final",
        study=f"study-{plan.name}-final-{plan.preset.horizon}",
        steps=plan.preset.horizon,
        grid=points,
        lr_centres=centres,  # the screening's: its grid points are the finalists'
        start_from=_branch_points(study, plan.out_dir, branch[0]) if branch else None,
        threads=_finalist_threads(plan, points),
        evals_per_trial=plan.preset.evals,
        results=results,
        **plan.common(callbacks),
    )
    return final, points


def _with_helpers(
    plan: _Plan, task: Any, callbacks: list[Any] | None
) -> tuple[Any, tuple[Any, list[dict[str, Any]]] | None]:
    """The study with ``jobs`` − 1 helper processes (see :mod:`lrtune.study._parallel`): every worker takes
    screening runs until none is left, waits for the screening to end, then takes finalists. This process
    writes the results, and after the helpers are gone trains whatever one that ended abnormally left."""
    import torch

    from ._parallel import helpers

    made = _screen(plan, task, None, trials=0, results=False)  # the study (and its LR range tests), before helpers
    if _nothing_left(plan, made):  # a complete study is only read again: no helper to start
        return _in_turn(plan, task, callbacks)
    each = _share(plan.threads, plan.jobs)
    torch.set_num_threads(each)
    with helpers(plan.jobs - 1, _helper, plan, each):
        _screen(plan, task, callbacks, results=False)
        _wait_for_screening(plan)
        study = _screen(plan, task, callbacks, results=False)  # (what a helper that ended abnormally left)
        if plan.preset.has_final:
            _finish(plan, task, study, callbacks, results=False)
    return _in_turn(plan, task, callbacks)


def beyond_point(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The next setting beyond the grid's edge for a study's analysis: None unless its recommended peak LR is the
    largest (smallest) its recipe tried; else the recommended setting's grid point (``params``, without a seed)
    with its LR a grid step further (the ratio to the LR tried beside it), and that ``lr``."""
    rec = summary.get("recommendation") or {}
    edge = rec.get("lr_at_edge")
    if edge not in ("largest", "smallest"):
        return None
    info = summary["recipes"][rec["recipe"]]
    tried = info["lrs_tried"]
    step = rec["lr"] / (tried[-2] if edge == "largest" else tried[1])
    cell = json.loads(info["cell"])
    params = {**cell, "lr": cell["lr"] * step}
    return {"recipe": rec["recipe"], "edge": edge, "of": rec["lr"], "lr": rec["lr"] * step, "params": params}


def _look_beyond(
    plan: _Plan, task: Any, sources: list[Source], callbacks: list[Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """While the recommended setting is at an edge of its recipe's LRs (``plan.preset.beyond`` times at most):
    train it with the LR a grid step beyond, for the horizon the recommendation is for, from update 0 (with the
    finalists' seed, or without finalists the screening's seeds), in a study of its own (named by the point, so a
    study run again finds it), at every thread of this process, after the helpers are gone. Appends each to
    ``sources``; returns what was tried and the analysis of them all (:func:`analyse_runs`)."""
    import hashlib

    preset, tried = plan.preset, []
    seeds = list(preset.seeds[:1] if preset.has_final else preset.seeds)
    summary = analyse_runs(sources, plan.out_dir)
    for _ in range(preset.beyond):
        point = beyond_point(summary)
        if point is None:
            break
        space = {k: [v] for k, v in point["params"].items()} | {"seed": seeds}
        key = hashlib.sha1(json.dumps(space, sort_keys=True).encode()).hexdigest()[:10]
        name, out = f"study-{plan.name}-beyond-{preset.horizon}-{key}", plan.out_dir / "beyond" / key
        logger.info(
            "the best setting for the target, %s at %.3g, is the %s LR its recipe tried: training %.3g too",
            point["recipe"], point["of"], point["edge"], point["lr"],
        )  # fmt: skip
        study = run_sweep(
            task,
            space,
            trials=None,
            out=out,
            study=name,
            steps=preset.horizon,
            lr_centres={point["recipe"]: point["lr"]},  # the space's one LR is this one
            threads=lambda params: plan.threads,
            evals_per_trial=preset.evals,
            results=False,
            **plan.common(callbacks),
        )
        sources.append((study, out, space, None))
        tried.append({k: point[k] for k in ("recipe", "edge", "of", "lr")} | {"study": name})
        summary = analyse_runs(sources, plan.out_dir)
        if sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) < len(seeds):
            break  # another worker sharing the storage holds a run of it: the next step depends on its outcome
    return tried, summary


def _share(threads: int, runs: int) -> int:
    """Each of ``runs`` runs' torch threads when they train at once."""
    return max(1, threads // runs)


def _finalist_threads(plan: _Plan, points: list[dict[str, Any]]) -> Callable[[dict[str, Any]], int | None] | None:
    """The finalists' threads with several workers. Dealt out in turns (in rank order), the last
    ``len(points) % jobs`` finalists train once the other workers have nothing left: those train at all the threads,
    shared among them, after the other finalists have ended, rather than at a worker's share beside idle cores
    (the third of three finalists with two jobs: at two threads, not one). Fixed by rank, a run's thread count —
    and so its last digits — does not depend on which worker ends first."""
    left = len(points) % plan.jobs  # (none with one job)
    if left == 0 or _share(plan.threads, left) <= _share(plan.threads, plan.jobs):
        return None
    share = _share(plan.threads, left)
    last = {json.dumps(p, sort_keys=True) for p in points[len(points) - left :]}

    def threads(params: dict[str, Any]) -> int | None:
        return share if json.dumps(params, sort_keys=True) in last else None

    return threads


def _in_turn(
    plan: _Plan, task: Any, callbacks: list[Any] | None
) -> tuple[Any, tuple[Any, list[dict[str, Any]]] | None]:
    """The screening, then the finalists, in this process (writing the results): the whole study with one job,
    or what is left of it (and its results) after the helpers."""
    study = _screen(plan, task, callbacks)
    return study, (_finish(plan, task, study, callbacks) if plan.preset.has_final else None)


def _nothing_left(plan: _Plan, study: Any) -> bool:
    """Whether every screening run and every finalist of the study has completed."""
    from ..tune._storage import optuna

    if make_sampler("grid", 0, plan.space).remaining(study):
        return False
    if not plan.preset.has_final:
        return True
    try:
        final = optuna().load_study(study_name=f"study-{plan.name}-final-{plan.preset.horizon}", storage=plan.url)
    except KeyError:  # not begun
        return False
    done = sum(t.state.name == "COMPLETE" for t in final.get_trials(deepcopy=False))
    return done >= plan.preset.final_runs


def _helper(plan: _Plan) -> None:
    """A helper process's share of the study (see :func:`_with_helpers`)."""
    task = resolve_workload(plan.workload, plan.options)
    _screen(plan, task, None, results=False)
    if not plan.preset.has_final:
        return
    _wait_for_screening(plan)
    study = _screen(plan, task, None, results=False)
    try:
        _finish(plan, task, study, None, results=False)
    except ValueError as e:  # a screening run is missing (a worker failed): the study's process trains it
        logger.warning("helper: %s", e)


def _wait_for_screening(plan: _Plan, poll: float = 1.0) -> None:
    """Wait while a screening run is training in another worker that is alive (its last runs): one on this host
    whose process is gone is not waited for, nor one elsewhere whose heartbeats stopped (Optuna fails it)."""
    import time

    from ..tune._storage import live_running_trials, open_storage, optuna

    storage = open_storage(plan.url, 10.0)  # run_sweep's heartbeat
    study = optuna().load_study(study_name=f"study-{plan.name}", storage=storage)
    while live_running_trials(study):
        time.sleep(poll)


@contextlib.contextmanager
def _threads_for(jobs: int) -> Iterator[int]:
    """torch's thread count (``jobs`` workers train at a ``jobs``-th of it each, see :mod:`lrtune.study._parallel`),
    restored when the study is done."""
    import torch

    before = torch.get_num_threads()
    if before < jobs:
        logger.warning("jobs=%d is more than torch's %d threads: the workers share cores", jobs, before)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


def _branch_points(study: Any, out_dir: Path, at: int) -> Callable[[dict[str, Any]], Path | None]:
    """For a finalist's run config, the checkpoint at update ``at`` of the screening run it continues (the same
    run up to its branch, so the finalist trains only the rest of it); None (and a warning) when the screening
    has none, and the finalist trains from update 0 — the same run, at more cost."""
    found: dict[str, Path] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or "config" not in t.user_attrs or "duplicate_of" in t.user_attrs:
            continue
        path = out_dir / "trials" / str(t.number) / "checkpoints" / f"step-{at:08d}.pt"
        if path.is_file():
            found[_run_key(t.user_attrs["config"])] = path

    def start_from(config: dict[str, Any]) -> Path | None:
        path = found.get(_run_key(config))
        if path is None:
            logger.warning("no screening checkpoint at update %d for %s: it trains from update 0", at, config)
        return path

    return start_from


def _run_key(config: dict[str, Any]) -> str:
    """What makes two configs the same run up to a branch point (not its length)."""
    keys = ("recipe", "optimizer", "schedule", "batch_size", "max_grad_norm", "seed")
    return json.dumps({k: config.get(k) for k in keys}, sort_keys=True)


def choose_finalists(screened: dict[str, Any], preset: Preset) -> list[dict[str, Any]]:
    """The grid points (Optuna parameters, first seed) of the ``preset.finalists`` settings of a screening trained
    to the target: its best setting (lowest mean final validation loss over seeds at its longest horizon), then the
    best setting at each neighbouring peak LR of the grid (the better of them first), then the next best settings,
    those at a peak LR not yet among the finalists first.

    Short-horizon bias mostly moves the best peak LR, in a direction that depends on the workload: on translation a
    short run favours the larger LR, which stalls in a long one; on the character LM the smaller. Finalists at the
    best screened LR and on both sides of it let the target horizon decide.

    A screening by branches (``preset.branch``) already compares each setting on its target schedule, so its
    finalists are simply the best of its ranking (replayed on the benchmarks' cells, its LR neighbours missed the
    best at the target more often: benchmarks/study_transfer.py)."""
    horizon = max(s["steps"] for s in screened["settings"])
    ranked = sorted(
        (s for s in screened["settings"] if s["steps"] == horizon),
        key=lambda s: (not math.isfinite(s["mean_valid_loss"]), s["mean_valid_loss"], s["cell"]),
    )
    if preset.branch is not None:
        return [{**json.loads(s["cell"]), "seed": preset.seeds[0]} for s in ranked[: preset.finalists]]

    def factor(setting: dict[str, Any]) -> float:
        return float(json.loads(setting["cell"])["lr"])

    factors = sorted({factor(s) for s in ranked})
    at = factors.index(factor(ranked[0]))
    beside = {factors[i] for i in (at - 1, at + 1) if 0 <= i < len(factors)}
    chosen = [ranked[0]]
    chosen += [next(s for s in ranked if factor(s) == f) for f in beside]
    chosen = chosen[:1] + sorted(chosen[1:], key=ranked.index)
    covered = {factor(s) for s in chosen}
    for s in ranked:
        if s not in chosen and factor(s) not in covered:
            chosen.append(s)
            covered.add(factor(s))
    chosen += [s for s in ranked if s not in chosen]
    return [{**json.loads(s["cell"]), "seed": preset.seeds[0]} for s in chosen[: preset.finalists]]


def study_batch_size(task: Any, preset: Preset, batch_size: int | None = None) -> int:
    """The batch of a study's runs: ``batch_size`` if given, else the preset's target tokens for a workload
    whose batches are counted in tokens (translation), else the workload's ``batch_hint``, else 64."""
    if batch_size is not None:
        return check_steps("batch_size", batch_size, minimum=1)
    if isinstance(task, Translation):
        return preset.batch_tokens
    return batch_size_for(task)


def _begun(storage: str | None, out_dir: Path) -> str | None:
    """The study's storage URL, or None when the default one (``OUT/lrtune.db``) does not exist yet."""
    if storage is None and not (out_dir / "lrtune.db").is_file():
        return None
    return storage or default_storage(out_dir)


def _remaining(storage: str | None, out_dir: Path, name: str, space: dict[str, Any]) -> int:
    """Grid points not yet completed in the study (all of them for a new study)."""
    import optuna

    grid = grid_size(space)
    if (url := _begun(storage, out_dir)) is None:
        return grid
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except Exception:  # no such study yet, or a storage that run_sweep will refuse with a clear message
        return grid
    return int(make_sampler("grid", 0, space).remaining(study))


def _completed(storage: str | None, out_dir: Path, name: str) -> int:
    """Trials completed in the study ``name`` (0 for one not begun)."""
    import optuna

    if (url := _begun(storage, out_dir)) is None:
        return 0
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except Exception:  # not begun, or a storage that run_sweep will refuse with a clear message
        return 0
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def _beyond_studies(storage: str | None, out_dir: Path, name: str, horizon: int) -> dict[str, int]:
    """The study's settings beyond its grid's edge so far (see :func:`_look_beyond`): study name → runs completed."""
    import optuna

    if (url := _begun(storage, out_dir)) is None:
        return {}
    try:
        names = [n for n in optuna.get_all_study_names(url) if n.startswith(f"study-{name}-beyond-{horizon}-")]
    except Exception:  # a storage that run_sweep will refuse with a clear message
        return {}
    return {n: _completed(storage, out_dir, n) for n in names}


def _table(settings: list[dict[str, Any]], runs: list[dict[str, Any]], horizon: int) -> dict[str, Any] | None:
    """Per recipe at one horizon: its best setting (mean over seeds), the LRs within 2 % of the best, the runs
    reaching the target (1.02 × the best mean) and how soon; None when nothing at that horizon is finite. Sets each
    run's ``steps_to_target`` and ``seconds_to_target`` at its own horizon."""
    at = [s for s in settings if s["steps"] == horizon]
    finite = [s for s in at if math.isfinite(s["mean_valid_loss"])]
    if not finite:
        return None
    best = min(finite, key=lambda s: s["mean_valid_loss"])
    target = TARGET_FACTOR * best["mean_valid_loss"]
    mine_runs = [r for r in runs if r["steps"] == horizon]
    for run in mine_runs:
        hit = next((e for e in run["evals"] if e["valid_loss"] is not None and e["valid_loss"] <= target), None)
        run["steps_to_target"] = hit["step"] if hit else None
        fraction = hit["step"] / run["steps"] if hit else None
        run["seconds_to_target"] = fraction * run["seconds"] if fraction is not None else None
    recipes: dict[str, Any] = {}
    for recipe in dict.fromkeys(s["recipe"] for s in at):
        mine = [s for s in at if s["recipe"] == recipe]
        good = [s for s in mine if s["mean_valid_loss"] <= ROBUST_FACTOR * best["mean_valid_loss"]]
        top = min(mine, key=lambda s: s["mean_valid_loss"])
        reach = [r["steps_to_target"] for r in mine_runs if r["recipe"] == recipe and r["steps_to_target"] is not None]
        tried = sorted({s["lr"] for s in settings if s["recipe"] == recipe})  # at any horizon: the recipe's grid
        edge = None
        if len(tried) > 1 and math.isfinite(top["mean_valid_loss"]):
            edge = "largest" if top["lr"] == tried[-1] else "smallest" if top["lr"] == tried[0] else None
        recipes[recipe] = {
            "best_lr": top["lr"] if math.isfinite(top["mean_valid_loss"]) else None,
            "best_mean_valid_loss": top["mean_valid_loss"],
            "best_spread": [top["min_valid_loss"], top["max_valid_loss"]],
            "best_mean_bleu": top["mean_bleu"],
            "lrs_near_best": sorted({s["lr"] for s in good}),
            "lr_width_decades": math.log10(max(s["lr"] for s in good) / min(s["lr"] for s in good)) if good else None,
            "diverged_runs": sum(s["diverged"] for s in mine),
            "runs": sum(s["seeds"] for s in mine),
            "cell": top["cell"],
            "runs_reaching_target": len(reach),
            "median_steps_to_target": statistics.median(reach) if reach else None,
            # the best LR is the largest or smallest of the recipe's grid: a better one may lie beyond it
            "best_lr_at_edge": edge,
            "lrs_tried": tried,
        }
    ranked = sorted(recipes, key=lambda r: recipes[r]["best_mean_valid_loss"])
    return {"best": best, "target": target, "recipes": recipes, "ranking": ranked}


def _transfer(settings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """With runs at several horizons: between every pair of them, over the settings run at both, the rank
    correlation, top-1 agreement and regret (see :mod:`lrtune.study._transfer`); ``stable`` when the pick at every
    shorter horizon is within 2 % of the best at the longest (the horizon the recommendation is for)."""
    horizons = sorted({s["steps"] for s in settings})
    if len(horizons) < 2:
        return None
    cells = {h: {s["cell"]: s["mean_valid_loss"] for s in settings if s["steps"] == h} for h in horizons}
    pairs = []
    for i, short in enumerate(horizons):
        for long in horizons[i + 1 :]:
            if len(set(cells[short]) & set(cells[long])) < 2:
                continue
            found = compare_horizons(cells[short], cells[long])
            found["pick"], found["best"] = json.loads(found["pick"]), json.loads(found["best"])
            pairs.append({"short": short, "long": long, **found})
    to_target = [p for p in pairs if p["long"] == horizons[-1]]
    stable = bool(to_target) and all(p["regret"] <= ROBUST_FACTOR - 1 for p in to_target)  # (NaN: not stable)
    return {"horizons": horizons, "pairs": pairs, "stable": stable}


def _missing(study: Any, space: dict[str, Any], points: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The grid points (of the space, or the given ones) without a completed (or pruned) trial."""
    grid = make_sampler("grid", 0, space, points)
    taken = grid.taken(study)
    return [p for i, p in enumerate(grid.points) if taken.get(i) not in ("COMPLETE", "PRUNED")]


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


#: A study to analyse: the Optuna study, its output folder, its grid space and the subset of its grid it runs.
Source = tuple[Any, Path, dict[str, Any] | None, list[dict[str, Any]] | None]


def _runs(study: Any, root: Path, out_dir: Path) -> list[dict[str, Any]]:
    """The finished runs of one study (duplicates and twins left out)."""
    runs = []
    for t in study.trials:
        skipped = "duplicate_of" in t.user_attrs or "twin_of" in t.user_attrs
        if t.state.name not in ("COMPLETE", "PRUNED") or skipped:
            continue
        config = t.user_attrs["config"]
        run_dir = root / "trials" / str(t.number)
        files = load_run(run_dir, diagnostics=False) if (run_dir / "config.json").is_file() else None
        outcome = files["run"] if files else {}
        metrics = t.user_attrs.get("final_metrics") or {}
        runs.append(
            {
                "trial": t.number,
                "study": study.study_name,
                "recipe": config["recipe"],
                "lr": config["optimizer"]["lr"],
                "beta2": (config["optimizer"].get("betas") or [None, None])[1],
                "warmup_steps": config["schedule"]["warmup_steps"],
                "steps": config["steps"],
                "seed": config.get("seed", 0),
                "status": t.user_attrs.get("status"),
                "valid_loss": t.value if _finite(t.value) else math.inf,
                "bleu": metrics.get("bleu"),
                "updates": t.user_attrs.get("updates", 0),
                "threads": t.user_attrs.get("threads"),  # torch's, which a run's last digits depend on
                "seconds": outcome.get("seconds", t.user_attrs.get("train_seconds", 0.0)),
                "evals": [{"step": e["step"], **e["eval"]} for e in files["evals"]] if files else [],
                "run_dir": str(run_dir.relative_to(out_dir)),
                "config": config,
                # the setting whatever its horizon and seed: what is compared across horizons
                "cell": json.dumps(
                    {k: v for k, v in t.params.items() if k not in ("seed", "total_steps")}, sort_keys=True
                ),
            }
        )
    return runs


def analyse(study: Any, out_dir: Path, *, space: dict[str, Any] | None = None) -> dict[str, Any]:
    """The numbers of one study (see :func:`analyse_runs`)."""
    return analyse_runs([(study, out_dir, space, None)], out_dir)


def analyse_runs(sources: list[Source], out_dir: Path) -> dict[str, Any]:
    """The study's numbers, from its studies (the screening and, with a target beyond it, the finalists'):
    runs, per recipe and setting the seeds' mean and spread, target, robustness, divergences, compute, the
    transfer between horizons and the recommendation for the longest (plain data, JSON-ready); with each study's
    grid (``space``, and its ``points`` when a subset), the grid points that have no completed run yet."""
    runs: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for study, root, space, points in sources:
        runs += _runs(study, root, out_dir)
        if space is not None:
            missing += _missing(study, space, points)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["cell"], run["steps"]), []).append(run)
    settings = []
    for (cell, steps), members in groups.items():
        losses = [r["valid_loss"] for r in members]
        finite = [x for x in losses if math.isfinite(x)]
        bleus = [r["bleu"] for r in members if r["bleu"] is not None]
        first = members[0]
        settings.append(
            {
                "recipe": first["recipe"],
                "lr": first["lr"],
                "beta2": first["beta2"],
                "warmup_steps": first["warmup_steps"],
                "steps": steps,
                "cell": cell,
                "seeds": len(members),
                "diverged": sum(r["status"] == "diverged" or not math.isfinite(r["valid_loss"]) for r in members),
                "mean_valid_loss": statistics.fmean(losses) if len(finite) == len(losses) else math.inf,
                "min_valid_loss": min(finite) if finite else math.inf,
                "max_valid_loss": max(finite) if finite else math.inf,
                "mean_bleu": statistics.fmean(bleus) if bleus else None,
                "trials": [r["trial"] for r in members],
            }
        )
    settings.sort(key=lambda s: (s["recipe"], s["lr"], s["steps"]))
    horizon = max((s["steps"] for s in settings), default=None)  # the recommendation is for the longest runs
    summary: dict[str, Any] = {
        "runs": runs,
        "missing": missing,
        "settings": settings,
        "horizon": horizon,
        "transfer": _transfer(settings),
        "compute": {"updates": sum(r["updates"] for r in runs), "seconds": sum(r["seconds"] for r in runs)},
        "diverged_runs": sum(r["status"] == "diverged" for r in runs),
    }
    tables = {h: _table(settings, runs, h) for h in sorted({s["steps"] for s in settings})}
    summary["by_horizon"] = {
        str(h): {"target_valid_loss": t["target"], "recipes": t["recipes"], "ranking": t["ranking"]}
        for h, t in tables.items()
        if t is not None
    }
    main = tables.get(horizon) if horizon is not None else None
    if main is None:
        summary["recommendation"] = None
        return summary
    best, target, recipes, ranked = main["best"], main["target"], main["recipes"], main["ranking"]
    winner = min((r for r in runs if r["trial"] in best["trials"]), key=lambda r: r["valid_loss"])
    config = {k: v for k, v in winner["config"].items() if k != "recipe"}
    summary |= {
        "target_valid_loss": target,
        "recipes": recipes,
        "ranking": ranked,
        "recommendation": {
            "recipe": best["recipe"],
            "lr": best["lr"],
            "beta2": best["beta2"],
            "warmup_steps": best["warmup_steps"],
            "steps": best["steps"],
            "schedule": winner["config"]["schedule"],
            "optimizer": winner["config"]["optimizer"],
            "max_grad_norm": winner["config"].get("max_grad_norm"),
            "mean_valid_loss": best["mean_valid_loss"],
            "spread": [best["min_valid_loss"], best["max_valid_loss"]],
            "mean_bleu": best["mean_bleu"],
            "for_steps": horizon,  # the horizon this recommendation is for
            "stable": summary["transfer"]["stable"] if summary["transfer"] else None,
            "runner_up": ranked[1] if len(ranked) > 1 else None,
            # the runner-up's best mean lies beyond the winner's worst seed: the ranking is not within the noise
            "clear": len(ranked) < 2 or recipes[ranked[1]]["best_mean_valid_loss"] > best["max_valid_loss"],
            # "largest"/"smallest": the recommended LR is at that edge of its recipe's grid, nothing beyond it tried
            "lr_at_edge": recipes[best["recipe"]]["best_lr_at_edge"],
            "config": {
                "workload": sources[0][0].user_attrs.get("workload"),
                "workload_options": sources[0][0].user_attrs.get("workload_options", {}),
                **config,
                "eval_every": None,
            },
        },
    }
    return summary
