"""The training loop every lrtune tool runs: a workload, an optimizer and a schedule, described by data."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import optim
from .._json import dumps, read_jsonl, write_json
from .._validate import check_positive, check_steps
from ..diagnostics import Diagnostics
from ..schedules import LRScheduler, Schedule, constant, from_spec
from ..workloads import Workload, workload_options, workload_reference
from ._checkpoint import latest_checkpoint, save_checkpoint
from ._distributed import Distributed, move_to

__all__ = ["OPTIMIZERS", "RUN_FILES", "RunRecord", "build_optimizer", "train"]

logger = logging.getLogger(__name__)

#: Optimizer names accepted in specs (``{"name": "radam", "lr": 5e-4, ...}``).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": optim.SGD,
    "adam": optim.Adam,
    "adamw": optim.AdamW,
    "radam": optim.RAdam,
}

OptimizerSpec = dict[str, Any] | Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


@dataclasses.dataclass
class RunRecord:
    """What a run did: its config, ``status`` ("completed", "diverged" or "interrupted"), updates and metrics."""

    config: dict[str, Any]
    status: str
    steps: int
    final_metrics: dict[str, float]
    evals: list[dict[str, Any]]
    seconds: float
    skipped_steps: int = 0
    diagnostics: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


def build_optimizer(
    spec: OptimizerSpec, params: Iterable[torch.nn.Parameter], *, max_grad_norm: float | None = None
) -> torch.optim.Optimizer:
    """An optimizer from a spec ``{"name": "adam", "lr": 1e-3, ...}`` or a factory ``params -> Optimizer``."""
    if callable(spec):
        if max_grad_norm is not None:
            raise ValueError("max_grad_norm needs an optimizer spec (a factory builds its own clipping)")
        return spec(params)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"optimizer must be a spec dict with a 'name' or a factory, got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    name = spec["name"]
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer name {name!r} is not one of {sorted(OPTIMIZERS)}")
    if max_grad_norm is not None:
        kwargs["max_grad_norm"] = max_grad_norm
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return OPTIMIZERS[name](params, **kwargs)


#: What a run directory holds (``lrtune train``'s ``out_dir``): what ``overwrite=True`` replaces.
RUN_FILES = ("config.json", "metrics.jsonl", "run.json", "diagnostics.jsonl", "checkpoints")


class _InterruptFlag:
    """Turns the first SIGINT into a flag checked between updates (main thread only); a second SIGINT interrupts
    at once, as the previous handler would (a run stuck in one update can still be stopped)."""

    def __init__(self) -> None:
        self.enabled = threading.current_thread() is threading.main_thread()
        self.raised = False
        self._previous: Any = None

    def install(self) -> None:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.raised:
            self.restore()
            raise KeyboardInterrupt
        self.raised = True

    def restore(self) -> None:
        if self.enabled and self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _holds_run(out: Path) -> list[str]:
    """The run files in ``out`` (an empty list: nothing a run wrote)."""
    return [name for name in RUN_FILES if (out / name).exists()]


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys (dotted) whose values differ between two configs."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif json.loads(dumps(a)) != json.loads(dumps(b)):  # tuples and lists compare equal
            keys.append(f"{prefix}{key}")
    return keys


def _describe(spec: Any) -> Any:
    if isinstance(spec, Schedule):
        return spec.to_spec()
    if isinstance(spec, dict):
        return spec
    return repr(spec)


def train(
    workload: Workload,
    *,
    optimizer: OptimizerSpec,
    schedule: Schedule | dict[str, Any] | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    eval_every: int | None = None,
    eval_at: Sequence[int] | None = None,
    max_grad_norm: float | None = None,
    diverge_factor: float = 10.0,
    out_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | os.PathLike[str] | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None,
    diagnostics: bool | dict[str, Any] = False,
    final_metrics: bool = True,
) -> RunRecord:
    """Train ``workload`` for ``steps`` optimizer updates and evaluate it; deterministic for a seed on CPU.

    The model is evaluated after every ``eval_every`` updates (default: only at the end), or after the updates
    listed in ``eval_at``, and always after the last. The run stops early with status ``"diverged"`` when the
    loss is NaN/Inf, exceeds ``diverge_factor`` times the first loss, or the optimizer raises on a non-finite
    gradient. With ``out_dir``, writes
    ``config.json``, ``metrics.jsonl`` (one line per update: loss, lr, grad_norm, skipped_steps and the
    batch's ``tokens`` (workloads with ``loss_weight``) or ``examples``; one line per evaluation) and, at the
    end, ``run.json`` (status, updates, seconds of training over every segment of the run, skipped steps,
    evaluations); all strict JSON (a non-finite number is ``null``). An ``out_dir`` that already holds a run is
    refused (``FileExistsError``) unless ``resume=True`` continues it or ``overwrite=True`` replaces it.

    With ``checkpoint_every``, writes ``out_dir/checkpoints/step-*.pt`` atomically (model, optimizer, scheduler,
    RNG state, data position, config); ``resume=True`` continues from the newest readable one (a truncated or
    corrupt file falls back to the previous checkpoint) and the run is bit-identical to an uninterrupted one. A
    resumed run keeps its config: any difference from the checkpoint's is refused (``ValueError`` naming the
    keys), except a larger ``steps`` (the schedule stays the checkpoint's) and another ``eval_every``. Without a
    checkpoint, ``resume=True`` starts from update 0 (a warning says so) unless ``out_dir`` holds a finished run,
    which is refused; a torn last line of ``metrics.jsonl`` (a crash while writing it) is dropped with a warning.

    ``init_from`` (a checkpoint file) starts from the state it holds — model, optimizer, the schedule's update
    count, RNG and data position — with this call's own schedule and ``steps``: a branch of that run (e.g. the
    same run with its LR decayed to 0 sooner), which agrees with it up to the checkpoint's update.

    ``final_metrics=False`` makes the last evaluation an ordinary one: a workload's costly end-of-run metrics
    (translation's BLEU) are skipped, for a run compared only by its validation loss (a study's screening).

    SIGINT (Ctrl-C) finishes the current update, saves a checkpoint (when there is an ``out_dir``) and returns
    with status ``"interrupted"``; a second SIGINT interrupts at once. ``callback`` receives every line written
    to ``metrics.jsonl`` (e.g. to drive a progress bar).

    ``diagnostics=True`` (or a dict of :class:`lrtune.diagnostics.Diagnostics` options) records gradient
    histograms, adaptive-LR statistics and update ratios into ``out_dir/diagnostics.jsonl`` (off by default).

    ``device`` (default CPU) is where the model trains; batches are moved there. Under ``torchrun
    --nproc_per_node=N`` the run is data-parallel (see :mod:`lrtune.runner._distributed`): ``batch_size`` stays
    the global batch, each process trains on a shard, rank 0 alone evaluates, writes files and calls
    ``callback``, and every rank returns the same record.
    """
    steps = check_steps("steps", workload.step_hint if steps is None else steps, minimum=1)
    batch_size = check_steps("batch_size", batch_size, minimum=1)
    eval_every = check_steps("eval_every", steps if eval_every is None else eval_every, minimum=1)
    if eval_at is not None:
        eval_at = sorted({check_steps("eval_at", t, minimum=1) for t in eval_at})
    check_positive("diverge_factor", diverge_factor)
    if checkpoint_every is not None:
        checkpoint_every = check_steps("checkpoint_every", checkpoint_every, minimum=1)
    if (checkpoint_every is not None or resume) and out_dir is None:
        raise ValueError("checkpoint_every and resume need an out_dir")
    if resume and overwrite:
        raise ValueError("resume=True continues the run in out_dir and overwrite=True replaces it: pass one")
    if init_from is not None and resume:
        raise ValueError("init_from starts a new run from another run's checkpoint: it cannot also resume")
    if init_from is not None and not Path(init_from).is_file():
        raise FileNotFoundError(f"init_from {init_from} is not a checkpoint file")
    schedule_obj = constant() if schedule is None else from_spec(schedule)
    config = {
        # how to build the workload again (a reference and its options); its name when it has none
        "workload": (named := workload_reference(workload) or (workload.name, workload_options(workload)))[0],
        "workload_options": named[1],
        "optimizer": _describe(optimizer),
        "schedule": dict(schedule) if isinstance(schedule, dict) else schedule_obj.to_spec(),  # as given
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "max_grad_norm": max_grad_norm,
    }
    if eval_at is not None:  # evaluation points of a sweep's trial (its pruning points)
        config["eval_at"] = eval_at
    if init_from is not None:  # a branch of another run
        config["init_from"] = str(init_from)
    if not final_metrics:  # (recorded only when off: earlier runs' configs stay as they were)
        config["final_metrics"] = False
    dist = Distributed(device)
    try:
        return _run(
            workload,
            config,
            optimizer,
            schedule_obj,
            dist,
            diverge_factor,
            out_dir,
            checkpoint_every,
            resume,
            overwrite,
            callback,
            diagnostics,
            None if init_from is None else Path(init_from),
        )
    finally:
        dist.close()


def _run(
    workload: Workload,
    config: dict[str, Any],
    optimizer: OptimizerSpec,
    schedule_obj: Schedule,
    dist: Distributed,
    diverge_factor: float,
    out_dir: str | os.PathLike[str] | None,
    checkpoint_every: int | None,
    resume: bool,
    overwrite: bool,
    callback: Callable[[dict[str, Any]], None] | None,
    diagnostics: bool | dict[str, Any],
    init_from: Path | None = None,
) -> RunRecord:
    steps, batch_size, seed, eval_every = config["steps"], config["batch_size"], config["seed"], config["eval_every"]
    evaluate_at = set(config["eval_at"]) if "eval_at" in config else set(range(eval_every, steps + 1, eval_every))
    out = Path(out_dir) if out_dir is not None else None
    problem = None
    if out is not None and dist.is_main:  # rank 0 owns the files; every rank learns what it found
        try:
            _prepare(out, config, resume=resume, overwrite=overwrite)
        except (OSError, ValueError) as e:
            problem = e
    problem = dist.broadcast(problem)
    if problem is not None:
        raise problem
    module = workload.build_model(seed)
    takes_final = "final" in inspect.signature(workload.evaluate).parameters
    if dist.rank > 0:  # rank 0 keeps the one-process random stream (dropout); the others get their own
        torch.manual_seed(seed + 1_000_003 * dist.rank)
    model = dist.wrap(module)
    opt = build_optimizer(optimizer, model.parameters(), max_grad_norm=config["max_grad_norm"])
    sched = LRScheduler(opt, schedule_obj, allow_schedule_change=init_from is not None)
    status, evals, first_loss, consumed, seconds_before = "completed", [], None, 0, 0.0
    kept_lines: list[dict[str, Any]] = []
    branch = init_from is not None
    found: tuple[Path, dict[str, Any]] | None = None
    if init_from is not None:
        found = (init_from, torch.load(init_from, weights_only=True))
    elif resume and out is not None:
        found = latest_checkpoint(out / "checkpoints")
    if found is not None:
        path, state = found
        if state["step"] > steps:
            raise ValueError(f"checkpoint {path} is at update {state['step']}, past steps={steps}")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rngs = state.get("rng_ranks", [state["rng"]])
        if len(rngs) != dist.world:
            raise ValueError(f"checkpoint {path} was written by {len(rngs)} processes, this run has {dist.world}")
        torch.set_rng_state(rngs[dist.rank])
        if "cuda_rng" in state and dist.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"][dist.rank], dist.device)
        evals, first_loss, consumed = state["evals"], state["first_loss"], state["consumed"]
        seconds_before = float(state.get("seconds", 0.0))
        if branch:  # a new run from there: its own records only
            evals, seconds_before = [], 0.0
        elif out is not None and (out / "metrics.jsonl").is_file():  # drop what was logged after the checkpoint
            lines, note = read_jsonl(out / "metrics.jsonl")
            if note:
                logger.warning("%s", note)
            kept_lines = [x for x in lines if x["step"] <= state["step"]]
        logger.info("resuming from %s (update %d)", path, state["step"])
    log = None
    if out is not None and dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config)
        log = open(out / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
        log.writelines(dumps(line) + "\n" for line in kept_lines)
        log.flush()

    def record(line: dict[str, Any]) -> None:
        if callback is not None and dist.is_main:
            callback(line)
        if log is not None:
            log.write(dumps(line) + "\n")
            log.flush()

    recorder = None
    if diagnostics and dist.is_main:  # off by default: no hook, no cost
        options = diagnostics if isinstance(diagnostics, dict) else {}
        diag_path = out / "diagnostics.jsonl" if out is not None else None
        if diag_path is not None and diag_path.is_file():  # a resumed run: drop what was recorded after the checkpoint
            records, note = read_jsonl(diag_path)
            if note:
                logger.warning("%s", note)
            kept = [dumps(x) + "\n" for x in records if x["step"] <= sched.applied_updates]
            diag_path.write_text("".join(kept), encoding="utf-8")
        recorder = Diagnostics(opt, module, path=diag_path, **options)
        recorder.step = sched.applied_updates
    start = time.perf_counter()
    interrupted = _InterruptFlag()
    batches = workload.train_batches(batch_size, seed)
    unit = "tokens" if hasattr(workload, "loss_weight") else "examples"  # what the loss averages over
    for _ in range(consumed):  # the data position of a resumed run
        next(batches)
    try:
        interrupted.install()
        model.train()
        where = f"the run in {out}" if out is not None else "the run"  # a warning names which run it is about
        while sched.applied_updates < steps:
            step = sched.applied_updates + 1
            batch, scale, items = dist.local(workload, next(batches))
            loss = workload.loss(model, move_to(batch, dist.device))
            if scale != 1.0:
                loss = loss * scale
            consumed += 1
            value = dist.global_loss(loss)
            first_loss = value if first_loss is None else first_loss
            if not math.isfinite(value) or value > diverge_factor * max(first_loss, 1e-12):
                lr_now = opt.param_groups[0]["lr"]
                logger.warning("%s diverged at update %d (loss %.4g, LR %.3g)", where, step, value, lr_now)
                status = "diverged"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            lr = opt.param_groups[0]["lr"]
            try:
                opt.step()
                # lrtune's optimizers check gradients on the device: reading these reads this step's check, so
                # a non-finite gradient raises here (nonfinite="raise") and the scheduler sees a skipped step.
                norm = getattr(opt, "last_grad_norm", None)
                skipped = getattr(opt, "skipped_steps", 0)
            except FloatingPointError as e:
                logger.warning("%s diverged at update %d (LR %.3g): %s", where, step, lr, e)
                status = "diverged"
                break
            sched.step()
            record(
                {
                    "step": step,
                    "loss": value,
                    "lr": lr,
                    "grad_norm": None if norm is None else norm.item(),
                    "skipped_steps": skipped,
                    unit: items,
                }
            )
            if sched.applied_updates in evaluate_at or sched.applied_updates == steps:
                metrics = None
                if dist.is_main:
                    module.eval()
                    final = config.get("final_metrics", True) and sched.applied_updates == steps
                    evaluate: Callable[..., dict[str, float]] = workload.evaluate  # ``final`` is optional
                    metrics = evaluate(module, final=final) if takes_final else evaluate(module)
                    module.train()
                metrics = dist.broadcast(metrics)
                evals.append({"step": sched.applied_updates, **metrics})
                record({"step": sched.applied_updates, "eval": metrics})
                logger.info("update %d: %s", sched.applied_updates, metrics)
            stop = dist.any(interrupted.raised)
            if stop:
                logger.warning("interrupted at update %d: saving a checkpoint and stopping", sched.applied_updates)
                status = "interrupted"
            due = checkpoint_every is not None and sched.applied_updates % checkpoint_every == 0
            if out is not None and (due or stop):
                rngs = dist.gather(torch.get_rng_state())
                state = {
                    "step": sched.applied_updates,
                    "model": module.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rngs[0],
                    "rng_ranks": rngs,
                    "evals": evals,
                    "first_loss": first_loss,
                    "consumed": consumed,
                    "seconds": seconds_before + time.perf_counter() - start,
                    "config": json.loads(dumps(config)),
                }
                if dist.device.type == "cuda":
                    state["cuda_rng"] = dist.gather(torch.cuda.get_rng_state(dist.device))
                if dist.is_main:
                    save_checkpoint(out / "checkpoints", sched.applied_updates, state)
                dist.barrier()  # nobody resumes from a checkpoint that is not there yet
            if stop:
                break
    finally:
        interrupted.restore()
        if recorder is not None:
            recorder.close()
        if log is not None:
            log.close()
    result = RunRecord(
        config=config,
        status=status,
        steps=sched.applied_updates,
        final_metrics={k: v for k, v in evals[-1].items() if k != "step"} if evals else {},
        evals=evals,
        seconds=seconds_before + time.perf_counter() - start,
        skipped_steps=getattr(opt, "skipped_steps", 0),
        diagnostics=recorder.records if recorder is not None else [],
    )
    if out is not None and dist.is_main:  # the outcome, for reports (config.json says what was asked)
        summary = {k: v for k, v in dataclasses.asdict(result).items() if k not in ("config", "diagnostics")}
        write_json(out / "run.json", summary)
    return result


def _prepare(out: Path, config: dict[str, Any], *, resume: bool, overwrite: bool) -> None:
    """Check ``out`` before a run writes to it: never overwrite a run unasked, never resume with another config."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} is a file, not a directory")
    present = _holds_run(out) if out.is_dir() else []
    if not resume:
        if present and not overwrite:
            raise FileExistsError(
                f"{out} already holds a run ({', '.join(present)}): resume it, overwrite it or choose another out_dir"
            )
        for name in present:  # overwrite=True: the old run goes entirely, checkpoints included
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return
    found = latest_checkpoint(out / "checkpoints")
    finished = None
    if (out / "run.json").is_file():
        try:
            finished = json.loads((out / "run.json").read_text(encoding="utf-8")).get("status")
        except ValueError:
            finished = None
    if found is None:
        if finished in ("completed", "diverged"):
            raise FileExistsError(
                f"{out} holds a {finished} run and no checkpoint to resume from: overwrite it or choose another out_dir"
            )
        if present:
            logger.warning("no checkpoint in %s: the run starts again from update 0", out / "checkpoints")
        else:  # (a command that always resumes, e.g. after a preemption, starts this way the first time)
            logger.warning("no run to resume in %s: the run starts from update 0", out)
        return
    path, state = found
    saved = state.get("config")
    if saved is None and (out / "config.json").is_file():
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if saved is not None:
        differ = [k for k in _differences(saved, config) if k not in ("steps", "eval_every", "eval_at")]
        if differ:
            shown = ", ".join(f"{k} ({_get(saved, k)!r} → {_get(config, k)!r})" for k in differ)
            raise ValueError(
                f"resume: this run's config differs from the checkpoint's ({path}) in {shown}; a resumed run keeps "
                "its config (only steps may grow, and eval_every change): drop resume to start a new run elsewhere"
            )


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
