"""Synchronous successive halving (``pruner="sh"``): one bracket of a sweep's trials, rung by rung."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from ._samplers import eval_points
from ._storage import Heartbeats, optuna, without_experimental_warnings
from ._trial import Sweep, check_twins, configure

__all__ = ["Halving"]


class Halving:
    """Synchronous successive halving over one bracket of new trials: every trial trains to the first rung, the
    best ⌊k/η⌋ of the k at a rung (at least one) continue from their checkpoints to the next, the others are
    pruned; a diverged trial is a value (``inf``). Rung values are the trials' own evaluations, so they equal an
    unpruned run's at those updates. Trials of a worker that was killed are failed by the next worker (at once on
    the same host, after three heartbeats elsewhere) and retried in its bracket, continuing from the checkpoints
    they left; on an exception (Ctrl-C) the bracket's unfinished trials are failed and retried at once."""

    def __init__(
        self,
        sweep: Sweep,
        study: Any,
        storage: Any,
        *,
        rungs: list[int],
        reduction_factor: int,
        callbacks: list[Any],
    ) -> None:
        self.sweep, self.study, self.storage = sweep, study, storage
        self.rungs, self.eta, self.callbacks = rungs, reduction_factor, callbacks
        self.beats: Heartbeats | None = None

    def __call__(self, n: int, heartbeat: float) -> None:
        with without_experimental_warnings():
            optuna().storages.fail_stale_trials(self.study)  # a killed worker's bracket, re-enqueued: asked first
        with Heartbeats(self.storage, heartbeat) as self.beats:
            try:
                self._bracket(n)
            except BaseException:
                retry = self.storage.get_heartbeat_stale_trial_callback()
                for trial in list(self.beats.alive.values()):
                    frozen = self._tell(trial, state=optuna().trial.TrialState.FAIL)
                    if retry is not None:
                        retry(self.study, frozen)
                raise

    def _tell(self, trial: Any, **kwargs: Any) -> Any:
        assert self.beats is not None
        self.beats.alive.pop(trial.number, None)
        return self.study.tell(trial, **kwargs)

    def _finish(self, member: dict[str, Any], **kwargs: Any) -> None:
        frozen = self._tell(member["trial"], **kwargs)
        if "dir" in member:
            shutil.rmtree(self._checkpoints(member), ignore_errors=True)
        for callback in self.callbacks:
            callback(self.study, frozen)

    def _checkpoints(self, member: dict[str, Any]) -> Path:
        return Path(member["dir"]) / "checkpoints" if self.sweep.run_dirs else Path(member["dir"])

    def _members(self, n: int) -> list[dict[str, Any]]:
        """Ask ``n`` trials; those whose config a completed trial already ran are finished with its value, those
        whose config a running trial trains are pruned (see :func:`configure`)."""
        assert self.beats is not None
        retried_number = optuna().storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
        members = []
        for _ in range(n):
            with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(): Heartbeats
                warnings.filterwarnings("ignore", "Heartbeat of storage")
                trial = self.study.ask()
            self.beats.add(trial)
            try:
                config = configure(self.sweep, trial)
            except optuna().TrialPruned:
                self._finish({"trial": trial}, state=optuna().trial.TrialState.PRUNED)
                continue
            if not isinstance(config, dict):
                self._finish({"trial": trial}, values=config)
                continue
            first = trial.number  # the first of a chain of retries names the directory they resume from
            trials = self.study.get_trials(deepcopy=False)
            with without_experimental_warnings():
                while (earlier := retried_number(trials[first])) is not None:
                    first = earlier
            member = {"trial": trial, "config": config, "updates": 0, "seconds": 0.0, "reported": set()}
            root = self.sweep.out_dir
            member["dir"] = (
                root / "trials" / str(first)
                if self.sweep.run_dirs
                else root / "rungs" / f"{self.study.study_name}-{first}"
            )
            if first == trial.number:  # a new trial: what an earlier study left in its directory is not its own
                shutil.rmtree(member["dir"], ignore_errors=True)
            members.append(member)
        return members

    def _train_to(self, member: dict[str, Any], index: int) -> None:
        """Train (or continue) the member's run to evaluation ``index``, checkpoint it there, record its value."""
        trial, config = member["trial"], member["config"]
        total, evals = config["steps"], self.sweep.evals
        points = eval_points(total, evals)
        target = max(1, round(total * index / evals))

        def report(line: dict[str, Any]) -> None:
            if "loss" in line:  # one update (a resumed run logs only the updates it trains)
                member["updates"] += 1
            step = points.get(line["step"]) if "eval" in line else None
            if step is not None and step not in member["reported"]:
                member["reported"].add(step)
                loss = line["eval"].get("valid_loss")
                trial.report(float(loss) if loss is not None else math.inf, step)

        began = time.perf_counter()
        resume = any((Path(member["dir"]) / "checkpoints").glob("step-*.pt"))  # else (e.g. it diverged): afresh
        record = self.sweep.run(
            config,
            config["schedule"],
            target,
            eval_at=sorted(points),
            callback=report,
            out_dir=member["dir"],
            checkpoint_every=target,
            resume=resume,
            overwrite=not resume,
            diagnostics=self.sweep.diagnose(config),
        )
        member["seconds"] += time.perf_counter() - began
        trial.set_user_attr("updates", member["updates"])
        trial.set_user_attr("train_seconds", member["seconds"])
        if record.status == "interrupted":
            raise KeyboardInterrupt(f"trial {trial.number} interrupted at update {record.steps}")
        at_rung = [e.get("valid_loss") for e in record.evals if e["step"] == target]
        member["record"] = record
        value = at_rung[-1] if record.status == "completed" and at_rung else None
        member["value"] = float(value) if value is not None else math.inf
        if index not in member["reported"]:  # a diverged run, or one resumed past this rung
            member["reported"].add(index)
            trial.report(member["value"], index)

    def _twin_finished(self, member: dict[str, Any]) -> bool:
        """Look for the member's twins again before it trains another rung (another worker's bracket may have
        drawn the same config after this one looked, see :func:`check_twins`): finish it if one is found."""
        try:
            value = check_twins(member["trial"], member["config"])
        except optuna().TrialPruned:
            self._finish(member, state=optuna().trial.TrialState.PRUNED)
            return True
        if value is None:
            return False
        self._finish(member, values=value)
        return True

    def _bracket(self, n: int) -> None:
        alive = self._members(n)
        for r, index in enumerate(self.rungs):
            alive = [m for m in alive if not self._twin_finished(m)]
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
                    self._finish(member, state=optuna().trial.TrialState.PRUNED)
            alive = [m for m in ranked[:keep] if math.isfinite(m["value"])]
        with contextlib.suppress(OSError):  # the checkpoints' folder, once no trial has one there
            (self.sweep.out_dir / "rungs").rmdir()
