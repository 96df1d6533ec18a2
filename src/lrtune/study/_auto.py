"""``lrtune auto``: settings for a budget without a grid, built to hold on models lrtune has never seen.

1. **A robust LR estimate** (:func:`lrtune.tune.estimate_lr`): ``repeats`` LR range tests from different seeds,
   each read on a lag-free smoothing for its steepest descent before the loss's minimum and for the minimum's
   LR / 10; the estimate e is the median of all of them (in log LR). Repeats that disagree by more than a decade,
   a loss that barely falls or a test cut short are recorded as weak evidence.
2. The warm-up is not tuned: Adam gets Ma & Yarats' untuned warm-up of 2/(1 − β2) updates (linear; at most half
   the budget), RAdam none (its rectification is the warm-up); the LR then decays linearly to 0 at the budget's
   end.
3. **Candidates** e · 10^(k·spacing), k = 0 … c − 1 (c = ``candidates``; by default 3, 0.3 decades apart: the
   range test's LR is a short-run quantity, and on the workloads measured the best peak LR for a full budget lay
   at or above it), each trained on the real schedule to the rung ``w + check_fraction · (T − w)`` (w the warm-up
   or the span of RAdam's rectification, T the budget; a fifth of the way after the warm-up by default) and
   checkpointed there.
4. **Compared after a cooldown**: from that checkpoint, a branch of each run decays its LR linearly to 0 over
   ``cooldown`` · T updates (8 % of the budget), and the branches' validation losses are compared. In the
   middle of a schedule a larger peak LR is behind only because its LR is still high — on three small workloads
   the lowest LR looked best there while the largest won at the end (regret 5–13 %); after a cooldown the
   ranking matched the end of the full runs (0–0.8 %). (Inside the warm-up, a larger LR is ahead only because its
   LR is larger so far: rungs are always after it.)
5. **Never an edge without a look beyond it**: while the best candidate is the smallest or the largest LR tried,
   it is either on a plateau — less than 1 % ahead of its neighbour, which is then chosen: it has tried LRs on
   both sides and loses at most that 1 %, and on a loss convex in log LR a step beyond gains no more than the
   lead (measured: the sequence classifier at batch 32, where looks beyond leads of 0.1–0.5 % took auto to 22 %
   of a grid's compute and gained at most 1.1 %) — or one more is tried beyond it (``spacing``, then twice,
   then four times that further, ``max_extensions`` times at most); if the best is still at an edge, the
   evidence is weak and says so. So is a comparison whose losses fall, rise by more than 2 % and fall again
   across the LRs tried (two local minima): differences of that size are then the runs' noise (measured: digits
   at batch 32, seed 1, a 13 % rise, where the choice lost 51 % to the best of a grid; a flat optimum's rises of
   0.2 % are not flagged).
6. With ``train_final``, the winner's run continues from its checkpoint to the end: the full run costs only the
   updates it still needs, and is bit for bit the run ``lrtune train --config auto.json`` gives.

The result is a run config that ``lrtune train --config`` runs, with the evidence under ``"evidence"`` (the
estimate, every candidate's validation losses, the compute used, and ``weak``: the reasons not to trust the
choice, empty when there are none; a warning is logged for each).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._json import write_json
from .._validate import check_choice, check_steps
from ..runner import train
from ..schedules import UntunedWarmup, from_spec
from ..schedules import cooldown as cooldown_of
from ..tune import estimate_lr
from ..workloads import Workload, batch_size_for, resolve_workload, workload_reference
from ..workloads import workload_options as options_of

__all__ = ["AutoResult", "auto"]

logger = logging.getLogger(__name__)
NOISE_TOLERANCE = 0.02  # a rise between two local minima of the candidates' losses larger than this is weak evidence
LOWEST = "the lowest validation loss after the cooldown"  # the choice when no other rule made it
REQUEST = "auto-request.json"  # in ``out``: the settings its choice (or the candidate runs under way) is for
PLATEAU = 0.01  # an edge winner less than this far ahead of its neighbour: the neighbour is chosen, no look beyond


@dataclass
class AutoResult:
    """The chosen run ``config`` (for :func:`lrtune.train` / ``lrtune train --config``) and the evidence."""

    config: dict[str, Any]
    suggestions: dict[str, float]  # the LR estimate and its parts
    candidates: list[dict[str, Any]]
    updates: int  # compute spent choosing: range tests + candidates' updates
    range_test_updates: int
    final: dict[str, Any] | None = field(default=None)  # the full run's outcome, with train_final=True
    weak: list[str] = field(default_factory=list)  # why the choice may not hold (empty: no reason known)
    choice: str = LOWEST  # how the winner was chosen among the candidates


def _untuned_warmup(beta2: float, steps: int) -> int:
    return min(round(UntunedWarmup(beta2).period), steps // 2)


def _rung(total: int, warmup: int, check_fraction: float) -> int:
    """The update at which candidates branch off for their cooldown: after the (explicit or implicit) warm-up,
    ``check_fraction`` of the way through the rest of the schedule."""
    return min(total - 1, warmup + max(1, math.ceil(check_fraction * (total - warmup))))


class _Candidates:
    """The candidate runs: each trained (or continued from its checkpoint) to a rung, in ``root/candidate-N``."""

    def __init__(self, task: Any, spec: dict[str, Any], schedule: dict[str, Any], batch: int, seed: int, root: Path):
        self.task, self.spec, self.schedule, self.batch, self.seed, self.root = task, spec, schedule, batch, seed, root
        self.pool: list[dict[str, Any]] = []
        self.reached: dict[int, int] = {}  # candidate -> the update its run reached (trained now or earlier)
        self.branch_updates = 0  # the cooldown branches' updates (trained now or earlier)

    @property
    def updates(self) -> int:
        """The compute of the choice: every candidate run to its furthest rung and every cooldown branch, whether
        this call trained them or found them from an earlier call with the same settings."""
        return sum(self.reached.values()) + self.branch_updates

    def add(self, lr: float) -> int:
        self.pool.append({"lr": lr, "valid_loss": [], "rungs": [], "status": "new"})
        return len(self.pool) - 1

    def probe(self, i: int, rung: int, cooldown: int) -> float:
        """Train candidate ``i`` on the real schedule to ``rung`` (checkpointed), then a branch of it whose LR
        decays linearly to 0 over ``cooldown`` updates; the branch's final validation loss (inf: diverged)."""
        candidate = self.pool[i]
        run_dir = self.root / f"candidate-{i}"
        optimizer = {**self.spec, "lr": candidate["lr"]}
        same = _same_run(run_dir, optimizer, self.schedule)
        before = _outcome(run_dir) if same else None
        if before is not None and before.get("status") == "diverged" and int(before.get("steps", rung)) <= rung:
            # an earlier auto with these settings saw it diverge before the rung: it would again (same seed)
            self.reached[i] = max(self.reached.get(i, 0), int(before.get("steps", rung)))
            return self._record(candidate, rung, "diverged", None)
        resume = same and any((run_dir / "checkpoints").glob("step-*.pt"))
        checkpoint = run_dir / "checkpoints" / f"step-{rung:08d}.pt"
        if resume and checkpoint.is_file():  # an earlier auto with these settings got there already
            self.reached[i] = max(self.reached.get(i, 0), rung)
        else:  # a candidate directory of another choice (other settings) is auto's own scratch: replaced
            record, _ = self._train(i, rung, checkpoint_every=rung, resume=resume, overwrite=not resume)
            self.reached[i] = max(self.reached.get(i, 0), record.steps)
            if record.status != "completed":
                return self._record(candidate, rung, record.status, None)
        branch = cooldown_of(from_spec(self.schedule), rung, cooldown).to_spec()
        branch_dir = self.root / f"candidate-{i}-cooldown"
        done = _outcome(branch_dir) if _same_run(branch_dir, optimizer, branch) else None
        if done is None:
            record, trained = self._train(
                i, rung + cooldown, schedule=branch, init_from=checkpoint, out_dir=branch_dir, overwrite=True
            )
            self.branch_updates += trained
            done = {"status": record.status, "final_metrics": record.final_metrics}
        else:  # read from an earlier call: its updates are still the choice's compute
            self.branch_updates += max(0, int(done.get("steps", rung + cooldown)) - rung)
        return self._record(candidate, rung, done["status"], done["final_metrics"].get("valid_loss"))

    def _train(self, i: int, steps: int, **extra: Any) -> tuple[Any, int]:
        """Candidate ``i``'s run (or a branch of it) to update ``steps``; the record and the updates trained."""
        trained = [0]

        def count(line: dict[str, Any]) -> None:
            trained[0] += "loss" in line

        extra.setdefault("schedule", self.schedule)
        extra.setdefault("out_dir", self.root / f"candidate-{i}")
        record = train(
            self.task,
            optimizer={**self.spec, "lr": self.pool[i]["lr"]},
            steps=steps,
            batch_size=self.batch,
            seed=self.seed,
            callback=count,
            **extra,
        )
        if record.status == "interrupted":  # Ctrl-C: auto stops; the same call continues from the checkpoint saved
            raise KeyboardInterrupt(f"{extra['out_dir']} interrupted at update {record.steps}")
        return record, trained[0]

    @staticmethod
    def _record(candidate: dict[str, Any], rung: int, status: str, loss: Any) -> float:
        finite = status == "completed" and isinstance(loss, (int, float)) and math.isfinite(loss)
        value = float(loss) if finite else math.inf
        candidate["valid_loss"].append(value)
        candidate["rungs"].append(rung)
        candidate["status"] = status
        return value

    def finish(self, i: int, total: int) -> dict[str, Any]:
        """Continue candidate ``i``'s run from its last checkpoint to update ``total``: the full run, whose updates
        are not counted in :attr:`updates` (the compute of the choice); its outcome."""
        record, _ = self._train(i, total, resume=True)
        return {
            "status": record.status,
            "metrics": record.final_metrics,
            "seconds": record.seconds,
            "updates": max(0, record.steps - self.reached.get(i, 0)),  # what the full run adds after the choice
            "run_dir": str(self.root / f"candidate-{i}"),
        }

    def last(self, i: int) -> float:
        return float(self.pool[i]["valid_loss"][-1])


def _bump(pool: list[dict[str, Any]]) -> float:
    """How far the candidates' compared losses rise between two local minima across LR (ordered by LR; a
    diverged candidate counts as infinitely bad), relative to the higher of the two minima: 0 for a curve with
    one minimum. A large bump means the comparison is within the runs' noise."""
    ordered = sorted(pool, key=lambda c: c["lr"])
    losses = [float(c["valid_loss"][-1]) if c["valid_loss"] else math.inf for c in ordered]
    minima = [
        i
        for i, x in enumerate(losses)
        if math.isfinite(x) and (i == 0 or x < losses[i - 1]) and (i == len(losses) - 1 or x < losses[i + 1])
    ]
    return max(
        (max(losses[i : j + 1]) / max(losses[i], losses[j]) - 1 for i, j in itertools.pairwise(minima)),
        default=0.0,
    )


def _outcome(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's ``run.json`` (None: not finished)."""
    if not (run_dir / "run.json").is_file():
        return None
    done: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return done if done.get("status") in ("completed", "diverged") else None


def _same_run(run_dir: Path, optimizer: dict[str, Any], schedule: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds a run of this candidate (then it continues, or is read)."""
    if not (run_dir / "config.json").is_file():
        return False
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    return bool(config.get("optimizer") == json.loads(json.dumps(optimizer)) and config.get("schedule") == schedule)


def _claim(out: Path, request: dict[str, Any], overwrite: bool) -> None:
    """Make ``out`` the folder of the choice ``request`` describes. A folder whose choice (or candidate runs under
    way) is for the same settings is continued; one for other settings, or for settings not recorded, is refused
    (``FileExistsError`` naming what differs) unless ``overwrite`` replaces auto's files in it: a choice is
    never lost unasked."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out must be a folder, got {out} (a file)")
    request = json.loads(json.dumps(request))
    held_file = out / REQUEST
    held = json.loads(held_file.read_text(encoding="utf-8")) if held_file.is_file() else None
    if held == request:
        return
    ours = [p for p in out.glob("candidate-*") if re.fullmatch(r"candidate-\d+(-cooldown)?", p.name)]
    present = ours + [p for p in (out / "auto.json",) if p.is_file()]
    if present and not overwrite:
        if held is None:
            what = "settings not recorded"
        else:
            changed = [f"{k} {held.get(k)!r} → {v!r}" for k, v in request.items() if held.get(k) != v]
            what = "other settings: " + ", ".join(changed)
        raise FileExistsError(
            f"{out} holds an auto choice for {what}; overwrite it (lrtune auto --overwrite) or choose another out"
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(held_file, request)


def auto(
    workload: str | Workload,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    optimizer: str = "adam",
    beta2: float = 0.98,
    candidates: int = 3,
    spacing: float = 0.3,
    check_fraction: float = 0.2,
    cooldown: float = 0.08,
    range_test_steps: int = 60,
    repeats: int = 2,
    max_extensions: int = 3,
    max_grad_norm: float | None = None,
    seed: int = 0,
    workload_options: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    train_final: bool = False,
    overwrite: bool = False,
) -> AutoResult:
    """Choose peak LR, warm-up and schedule for ``steps`` updates of ``workload`` (a name, a ``module:NAME``
    reference or a :class:`~lrtune.workloads.Workload`, e.g. your own model and data) without a grid; see the
    module doc.

    ``optimizer`` is ``"adam"`` (β = (0.9, ``beta2``), untuned warm-up) or ``"radam"`` (no warm-up).
    ``workload_options`` build a named workload. With ``train_final``, the chosen config is also trained for
    the whole budget, continuing the winner's candidate run (``final`` holds its outcome and the updates it
    added). Candidate runs are written under ``out`` (a temporary directory if not given); running it again with
    the same settings continues them, and an ``out`` holding a choice for other settings is refused
    (``FileExistsError``) unless ``overwrite`` replaces it. ``weak`` (and
    ``auto.json``'s ``evidence.weak``) lists the reasons the choice may not hold.
    """
    check_choice("optimizer", optimizer, ("adam", "radam"))
    if not 0.0 < beta2 < 1.0:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2!r}")
    candidates = check_steps("candidates", candidates, minimum=1)
    if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a positive number of decades, got {spacing!r}")
    range_test_steps = check_steps("range_test_steps", range_test_steps, minimum=8)
    repeats = check_steps("repeats", repeats, minimum=1)
    max_extensions = check_steps("max_extensions", max_extensions, minimum=0)
    if not 0.0 < check_fraction < 1.0:
        raise ValueError(f"check_fraction must be in (0, 1), got {check_fraction!r}")
    if not (isinstance(cooldown, (int, float)) and 0.0 < cooldown <= 1.0):
        raise ValueError(f"cooldown must be a fraction of the budget in (0, 1], got {cooldown!r}")
    task = resolve_workload(workload, workload_options)
    batch_size = check_steps("batch_size", batch_size_for(task, batch_size), minimum=1)
    total = check_steps("steps", task.step_hint if steps is None else steps, minimum=4)
    spec: dict[str, Any] = {"name": optimizer, "betas": [0.9, beta2]}
    if max_grad_norm is not None:
        spec["max_grad_norm"] = max_grad_norm
    named = workload_reference(task) or (task.name, options_of(task))
    if out is not None:
        settings = dict(steps=total, batch_size=batch_size, seed=seed, candidates=candidates, spacing=spacing)
        settings |= dict(check_fraction=check_fraction, cooldown=cooldown, range_test_steps=range_test_steps)
        settings |= dict(repeats=repeats, max_extensions=max_extensions)
        _claim(Path(out), {"workload": named[0], "workload_options": named[1], "optimizer": spec} | settings, overwrite)
    estimate = estimate_lr(
        task, optimizer=spec, batch_size=batch_size, seed=seed, repeats=repeats, num_steps=range_test_steps
    )
    weak = list(estimate.weak)
    horizon = _untuned_warmup(beta2, total)  # Adam's warm-up, or the span of RAdam's rectification
    warmup = horizon if optimizer == "adam" else 0
    schedule = {"name": "warmup_linear_decay", "warmup_steps": warmup, "total_steps": total}
    rung = _rung(total, horizon, check_fraction)
    decay = max(1, round(cooldown * total))
    offsets = range(candidates)
    with tempfile.TemporaryDirectory() as tmp:
        runs = _Candidates(task, spec, schedule, batch_size, seed, Path(out) if out is not None else Path(tmp))
        alive = [runs.add(estimate.lr * 10 ** (k * spacing)) for k in offsets]
        logger.info("auto: LR estimate %.3g; candidates %s", estimate.lr, [runs.pool[i]["lr"] for i in alive])
        for i in alive:
            runs.probe(i, rung, decay)
        choice = LOWEST
        for extension in range(max_extensions + 1):  # never an edge without a look beyond it (ends at a break)
            lrs = sorted(runs.pool[i]["lr"] for i in alive)
            best = min(alive, key=runs.last)
            edge = runs.pool[best]["lr"]
            if len(alive) < 2 or lrs[0] < edge < lrs[-1] or not math.isfinite(runs.last(best)):
                break
            inner = next(i for i in alive if runs.pool[i]["lr"] == (lrs[1] if edge == lrs[0] else lrs[-2]))
            if runs.last(inner) <= (1 + PLATEAU) * runs.last(best):  # a plateau: the neighbour, tried on both sides
                lead = runs.last(inner) / runs.last(best) - 1
                choice = (
                    f"a plateau: the best candidate, {edge:.3g}, is at the edge of those tried and only "
                    f"{100 * lead:.2f} % ahead of {runs.pool[inner]['lr']:.3g}, which is chosen (tried on both sides)"
                )
                best = inner
                break
            if extension == max_extensions:
                weak.append(
                    f"the best LR, {edge:.3g}, is the {'smallest' if edge == lrs[0] else 'largest'} of those tried "
                    f"after {max_extensions} steps beyond the edge: the best may lie further out"
                )
                break
            step = spacing * 2**extension * (1 if edge == lrs[-1] else -1)
            new = runs.add(edge * 10**step)
            logger.info("auto: the best candidate %.3g is at an edge: trying %.3g", edge, runs.pool[new]["lr"])
            runs.probe(new, rung, decay)
            alive.append(new)
        pool = runs.pool
        final = runs.finish(best, total) if train_final and math.isfinite(runs.last(best)) else None
    if not math.isfinite(runs.last(best)):
        raise ValueError(f"every candidate LR diverged ({[c['lr'] for c in pool]}): lower the range test's end")
    finite = sorted(runs.last(i) for i in range(len(pool)) if math.isfinite(runs.last(i)))
    if len(finite) == 1 and len(pool) > 1:
        weak.append("every candidate but one diverged")
    if (bump := _bump(pool)) > NOISE_TOLERANCE:
        weak.append(
            f"the candidates' losses fall, rise by {100 * bump:.0f} % and fall again across the LRs tried: "
            "differences of that size are run-to-run noise here, and another seed may choose differently"
        )
    for reason in weak:
        logger.warning("auto: weak evidence: %s", reason)
    suggestions = {"estimate": estimate.lr, "spread_decades": estimate.spread_decades}
    for r, reading in enumerate(estimate.per_repeat):
        suggestions |= {f"{name}_{r}": value for name, value in reading.items()}
    config: dict[str, Any] = {
        "workload": named[0],
        "workload_options": named[1],
        "optimizer": {**spec, "lr": pool[best]["lr"]},
        "schedule": schedule,
        "steps": total,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": None,
        "max_grad_norm": None,
    }
    outcome = AutoResult(
        config, suggestions, pool, estimate.updates + runs.updates, estimate.updates, weak=weak, choice=choice
    )
    if final is not None:
        final["run_dir"] = final["run_dir"] if out is not None else None
        outcome.final = final
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        evidence = {
            "suggestions": suggestions,
            "candidates": pool,
            "choice": choice,
            "updates": outcome.updates,
            "weak": weak,
        }
        write_json(Path(out) / "auto.json", {**config, "evidence": evidence})
    return outcome
