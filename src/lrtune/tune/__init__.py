"""Tuning tools on top of the trainer: the LR range test (sweeps come next)."""

from ._range_test import RangeTestResult, lr_range_test

__all__ = ["RangeTestResult", "lr_range_test"]
