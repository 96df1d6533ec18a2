"""Any schedule as a torch ``LRScheduler`` that follows the number of optimizer updates actually applied."""

from __future__ import annotations

import logging
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


class LRScheduler(TorchLRScheduler):
    """Sets each param group's LR to base_lr · f(t) (or f(t) for absolute schedules like ``noam``).

    t is the index of the **next optimizer update that will be applied**: 1 + the number of updates applied
    so far. The count comes from a post-step hook on the optimizer, so it does not depend on how often
    ``scheduler.step()`` is called: with gradient accumulation (calling it on every micro-batch), steps that
    AMP's ``GradScaler`` skips (it does not call ``optimizer.step()``) or that an lrtune optimizer skips with
    ``nonfinite="skip"``, the LR still follows f(number of applied updates). The standard loop
    ``optimizer.step(); scheduler.step()`` gives the t-th update the LR base_lr · f(t).

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
        self.allow_schedule_change = bool(allow_schedule_change)
        #: Optimizer updates applied since the schedule started.
        self.applied_updates = 0
        self._skipped_seen = int(getattr(optimizer, "skipped_steps", 0))
        self._hook = optimizer.register_step_post_hook(_count_update(weakref.ref(self)))
        super().__init__(optimizer)

    def get_lr(self) -> list[float | torch.Tensor]:
        f = self.schedule.at(self.applied_updates + 1)
        if self.schedule.absolute:
            return [f] * len(self.base_lrs)
        return [base * f for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedule", "_hook")}
        sd["schedule"] = self.schedule.to_spec()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sd = dict(state_dict)
        saved = from_spec(sd.pop("schedule"))
        applied = int(sd["applied_updates"])
        if saved != self.schedule:
            if not self.allow_schedule_change:
                self._check_compatible(saved, applied)
            logger.info("resuming with schedule %r instead of the saved %r", self.schedule, saved)
        sd.pop("allow_schedule_change", None)
        self.__dict__.update(sd)
        # Set the LR of the next update now: the optimizer may be restored before or after the scheduler.
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _check_compatible(self, saved: Schedule, applied: int) -> None:
        """Raise unless ``saved`` and this schedule agree on updates 1..applied+1 (no LR jump, same past)."""
        points = sorted({*range(1, applied + 2, max(1, (applied + 1) // _RESUME_CHECK_POINTS)), applied + 1})
        for t in points:
            old, new = saved.at(t), self.schedule.at(t)
            if abs(old - new) > 1e-12 * max(1.0, abs(old)):
                raise ValueError(
                    f"the saved schedule {saved.to_spec()} differs from this scheduler's {self.schedule.to_spec()} "
                    f"at update {t} (f = {old!r} vs {new!r}; {applied} updates applied so far); construct the "
                    "scheduler with the saved schedule, or pass allow_schedule_change=True to accept the change"
                )


def _count_update(ref: weakref.ReferenceType[LRScheduler]) -> Any:
    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        scheduler = ref()
        if scheduler is None:
            return
        skipped = int(getattr(optimizer, "skipped_steps", 0))
        if skipped == scheduler._skipped_seen:
            scheduler.applied_updates += 1
        else:  # the optimizer skipped this step (non-finite gradients)
            scheduler._skipped_seen = skipped

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
