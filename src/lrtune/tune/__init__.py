"""Tuning tools on top of the trainer: the LR range test and Optuna sweeps over search spaces given as data."""

from ._range_test import RangeTestResult, lr_range_test
from ._space import KNOWN_GOOD, RECIPES, Recipe, fixed_params, load_space, suggest
from ._sweep import PRUNERS, SAMPLERS, run_sweep, write_results

__all__ = [
    "KNOWN_GOOD",
    "PRUNERS",
    "RECIPES",
    "SAMPLERS",
    "RangeTestResult",
    "Recipe",
    "fixed_params",
    "load_space",
    "lr_range_test",
    "run_sweep",
    "suggest",
    "write_results",
]
