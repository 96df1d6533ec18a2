"""lrtune: learning-rate warm-up, schedules and optimizers for training Transformers without trial and error."""

from .optim import SGD, Adam, AdamW, AdaptiveOptimizer, RAdam

__all__ = ["SGD", "Adam", "AdamW", "AdaptiveOptimizer", "RAdam", "__version__"]

__version__ = "0.1.0"
