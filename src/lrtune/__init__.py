"""lrtune: learning-rate warm-up, schedules and optimizers for training Transformers without trial and error."""

from . import optim, schedules
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
    "optim",
    "schedules",
    "train",
    "warmup_linear_decay",
]

__version__ = "0.1.0"
