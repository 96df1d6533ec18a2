"""Tuning tools on top of the trainer: the LR range test and Optuna sweeps over search spaces given as data."""

from ._range_test import LREstimate, RangeTestResult, estimate_lr, lr_range_test
from ._space import KNOWN_GOOD, RECIPES, Recipe, fixed_params, load_space, suggest
from ._sweep import PRUNERS, SAMPLERS, run_sweep, write_results

__all__ = [
    "KNOWN_GOOD",
    "PRUNERS",
    "RECIPES",
    "SAMPLERS",
    "LREstimate",
    "RangeTestResult",
    "Recipe",
    "estimate_lr",
    "fixed_params",
    "load_space",
    "lr_range_test",
    "run_sweep",
    "suggest",
    "write_results",
]
