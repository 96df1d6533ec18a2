"""See why warm-up matters: gradient histograms, adaptive-LR statistics, ρ_t and r_t, recorded by step hooks."""

from ._histogram import LogBins, abs_log_histogram
from ._recorder import KINDS, Diagnostics, parameter_kinds

__all__ = ["KINDS", "Diagnostics", "LogBins", "abs_log_histogram", "parameter_kinds"]
