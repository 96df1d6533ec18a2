"""The runner: one training loop for every lrtune tool (range test, sweep, study)."""

from ._trainer import OPTIMIZERS, RunRecord, build_optimizer, train

__all__ = ["OPTIMIZERS", "RunRecord", "build_optimizer", "train"]
