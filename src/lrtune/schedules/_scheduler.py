"""Any schedule as a torch ``LRScheduler`` that follows the number of optimizer updates actually applied."""

from __future__ import annotations

import logging
import math
import warnings
import weakref
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler as TorchLRScheduler

from ._base import Schedule, from_spec
from ._factories import warmup_linear_decay as _warmup_linear_decay

__all__ = ["LRScheduler", "warmup_linear_decay"]

logger = logging.getLogger(__name__)

# How many past steps are compared when a resumed schedule differs from the saved one.
_RESUME_CHECK_POINTS = 2000
# Attributes that are configuration or bookkeeping of this object, not the state to save.
_NOT_SAVED = (
    "optimizer",
    "schedule",
    "_schedules",
    "_shared",
    "_hooks",
    "_calls",
    "_unapplied_base",
    "_lr_update",
    "warned_staircase",
)


class LRScheduler(TorchLRScheduler):
    """Sets each param group's LR to base_lr · f(t) (or f(t) for absolute schedules like ``noam``).

    t is the index of the **next optimizer update that will be applied**: 1 + the number of updates applied
    so far. The count comes from step hooks on the optimizer, so it does not depend on how often
    ``scheduler.step()`` is called: with gradient accumulation (calling it on every micro-batch), steps that
    AMP's ``GradScaler`` skips (it does not call ``optimizer.step()``) or that an lrtune optimizer skips with
    ``nonfinite="skip"``, the LR still follows f(number of applied updates). The standard loop
    ``optimizer.step(); scheduler.step()`` gives the t-th update the LR base_lr · f(t).

    An lrtune optimizer checks gradients on the device and learns whether a step was skipped only at the next
    ``step()`` (no host synchronisation in the step itself; see :class:`lrtune.optim.AdaptiveOptimizer`). So
    ``scheduler.step()`` sets the next LR as if the last step was applied, and at the start of the next
    ``optimizer.step()`` (a pre-step hook, which reads the last step's check) the LR is set back to f(t) for the
    same t if that step turned out skipped: every applied update still gets base_lr · f(its index).

    **Stepped too rarely.** The schedule is indexed by updates, so calling ``scheduler.step()`` less often than
    the optimizer updates (e.g. once per epoch, Lightning's default ``interval="epoch"``) runs several updates on
    one LR: a staircase. The pre-step hook sees it (an update about to use the LR computed for an earlier
    update) and warns once (``UserWarning``). Gradient accumulation, skipped steps and resuming from a state
    dict do not trigger it: what is compared is updates applied, not calls.

    Schedules that read a parameter group's hyper-parameters (``untuned_warmup()`` and ``rectification()``
    without ``beta2`` take each group's ``betas[1]``) are bound to each group here. A schedule that gives a
    negative or non-finite learning rate raises ``ValueError`` at the ``step()`` that would set it.

    ``state_dict()`` holds the schedule's spec and the update count and loads with
    ``torch.load(weights_only=True)``. Loading a state whose spec differs from this scheduler's raises
    ``ValueError`` unless the two schedules agree on every update so far and on the next one (e.g. a WSD run
    extended by a longer stable phase), or ``allow_schedule_change=True``.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        schedule: a :class:`Schedule` or its spec dict.
        allow_schedule_change: accept any saved schedule on load (the LR may jump).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | dict[str, Any],
        *,
        allow_schedule_change: bool = False,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.schedule = from_spec(schedule)
        self._schedules = [self.schedule.bind(group) for group in optimizer.param_groups]
        self._shared = all(s is self.schedule for s in self._schedules)
        self.allow_schedule_change = bool(allow_schedule_change)
        self._calls = 0  # optimizer.step() calls that returned since the schedule started
        self._unapplied_base = _unapplied(optimizer)
        self._lr_update = 1  # the update the LRs were last set for
        #: Whether the "stepped less often than the optimizer updates" warning was given.
        self.warned_staircase = False
        ref = weakref.ref(self)
        self._hooks = (
            optimizer.register_step_pre_hook(_before_update(ref)),
            optimizer.register_step_post_hook(_after_update(ref)),
        )
        super().__init__(optimizer)

    @property
    def applied_updates(self) -> int:
        """Optimizer updates applied since the schedule started (a step whose check the host has not read yet
        counts as applied until it is read)."""
        return self._calls - (_unapplied(self.optimizer) - self._unapplied_base)

    def get_lr(self) -> list[float | torch.Tensor]:
        t = self.applied_updates + 1
        self._lr_update = t
        return self._lrs(t)

    def _lrs(self, t: int) -> list[float | torch.Tensor]:
        if self._shared:
            f = self.schedule.at(t)
            lrs = [f] * len(self.base_lrs) if self.schedule.absolute else [base * f for base in self.base_lrs]
        else:
            pairs = zip(self._schedules, self.base_lrs, strict=True)
            lrs = [s.at(t) if s.absolute else base * s.at(t) for s, base in pairs]
        for i, lr in enumerate(lrs):
            if not (lr >= 0 and math.isfinite(lr)):
                raise ValueError(
                    f"the schedule {self.schedule.to_spec()} gives param group {i} the learning rate {lr!r} at update "
                    f"{t}; a learning rate must be a finite number >= 0"
                )
        return list(lrs)

    def _set_lrs(self, t: int) -> None:
        for group, lr in zip(self.optimizer.param_groups, self._lrs(t), strict=True):
            group["lr"] = lr
        self._lr_update = t
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _before_update(self) -> None:
        """Pre-step hook: correct the LR after a skipped step, or warn about a staircase."""
        expected = self._calls - (_unapplied(self.optimizer, wait=True) - self._unapplied_base) + 1
        if self._lr_update > expected:  # the last step was skipped: this update is the one that step was to be
            self._set_lrs(expected)
        elif self._lr_update < expected and not self.warned_staircase:
            self.warned_staircase = True
            warnings.warn(
                f"lrtune LRScheduler: optimizer update {expected} is about to use the learning rate set for update "
                f"{self._lr_update} — scheduler.step() was not called after every optimizer.step(), so the "
                "schedule, indexed by updates, runs as a staircase; call scheduler.step() after each "
                "optimizer.step() (with Lightning: interval='step' in configure_optimizers). Warned once.",
                UserWarning,
                stacklevel=2,
            )

    def state_dict(self) -> dict[str, Any]:
        applied = self._calls - (_unapplied(self.optimizer, wait=True) - self._unapplied_base)
        sd = {k: v for k, v in self.__dict__.items() if k not in _NOT_SAVED}
        sd["applied_updates"] = applied
        sd["schedule"] = self.schedule.to_spec()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sd = dict(state_dict)
        saved = from_spec(sd.pop("schedule"))
        applied = int(sd.pop("applied_updates"))
        if saved != self.schedule:
            if not self.allow_schedule_change:
                self._check_compatible(saved, applied)
            logger.info("resuming with schedule %r instead of the saved %r", self.schedule, saved)
        for key in ("allow_schedule_change", "_skipped_seen"):  # the latter: saved by earlier versions
            sd.pop(key, None)
        self.__dict__.update(sd)
        self._calls = applied
        self._unapplied_base = _unapplied(self.optimizer, wait=True)
        # Set the LR of the next update now: the optimizer may be restored before or after the scheduler.
        self._set_lrs(applied + 1)

    def _check_compatible(self, saved: Schedule, applied: int) -> None:
        """Raise unless ``saved`` and this schedule agree on updates 1..applied+1 (no LR jump, same past)."""
        points = sorted({*range(1, applied + 2, max(1, (applied + 1) // _RESUME_CHECK_POINTS)), applied + 1})
        pairs = {(saved.bind(g), s) for g, s in zip(self.optimizer.param_groups, self._schedules, strict=True)}
        for old_schedule, new_schedule in pairs:
            for t in points:
                old, new = old_schedule.at(t), new_schedule.at(t)
                if abs(old - new) > 1e-12 * max(1.0, abs(old)):
                    raise ValueError(
                        f"the saved schedule {saved.to_spec()} differs from this scheduler's "
                        f"{self.schedule.to_spec()} at update {t} (f = {old!r} vs {new!r}; {applied} updates applied "
                        "so far); construct the scheduler with the saved schedule, or pass allow_schedule_change=True "
                        "to accept the change"
                    )


def _unapplied(optimizer: torch.optim.Optimizer, *, wait: bool = False) -> int:
    """Steps the optimizer took without updating (lrtune's optimizers count them; others skip none we can see)."""
    count = getattr(optimizer, "unapplied_steps", None)
    return int(count(wait=wait)) if callable(count) else 0


def _before_update(ref: weakref.ReferenceType[LRScheduler]) -> Any:
    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        scheduler = ref()
        if scheduler is not None:
            scheduler._before_update()

    return hook


def _after_update(ref: weakref.ReferenceType[LRScheduler]) -> Any:
    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        scheduler = ref()
        if scheduler is not None:
            scheduler._calls += 1

    return hook


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, final: float = 0.0
) -> LRScheduler:
    """The seed's schedule as a scheduler: linear warm-up over ``warmup_steps``, linear decay to ``final``.

    Example:
        >>> opt = lrtune.Adam(model.parameters(), lr=5e-4)  # doctest: +SKIP
        >>> sched = lrtune.warmup_linear_decay(opt, warmup_steps=4000, total_steps=100_000)  # doctest: +SKIP
    """
    return LRScheduler(optimizer, _warmup_linear_decay(warmup_steps, total_steps, final))
