"""lrtune: learning-rate warm-up, schedules and optimizers for training Transformers without trial and error.

The names below are imported when first used (``import lrtune`` alone does not import torch), so that the
``lrtune`` command starts, and answers Ctrl-C, at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import diagnostics, optim, runner, schedules, study, tune, workloads
    from .optim import SGD, Adam, AdamW, AdaptiveOptimizer, RAdam
    from .runner import RunRecord, train
    from .schedules import LRScheduler
    from .schedules._scheduler import warmup_linear_decay

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "AdaptiveOptimizer",
    "LRScheduler",
    "RAdam",
    "RunRecord",
    "__version__",
    "diagnostics",
    "optim",
    "runner",
    "schedules",
    "study",
    "train",
    "tune",
    "warmup_linear_decay",
    "workloads",
]

__version__ = "0.1.0"

_SUBMODULES = ("diagnostics", "optim", "runner", "schedules", "study", "tune", "workloads")
_NAMES = {
    "SGD": "optim",
    "Adam": "optim",
    "AdamW": "optim",
    "AdaptiveOptimizer": "optim",
    "RAdam": "optim",
    "RunRecord": "runner",
    "train": "runner",
    "LRScheduler": "schedules",
    "warmup_linear_decay": "schedules._scheduler",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lrtune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
