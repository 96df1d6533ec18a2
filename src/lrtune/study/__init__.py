"""The study (which recipe, LR, warm-up and schedule?) and ``auto`` (settings without a grid)."""

from ._auto import AutoResult, auto
from ._study import LR_CENTRES, PRESETS, Preset, analyse, run_study, study_space

__all__ = ["LR_CENTRES", "PRESETS", "AutoResult", "Preset", "analyse", "auto", "run_study", "study_space"]
