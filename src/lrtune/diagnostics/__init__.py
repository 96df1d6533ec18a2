"""See why warm-up matters: gradient histograms, adaptive-LR statistics, ρ_t and r_t, recorded by step hooks."""

from ._histogram import LogBins, abs_log_histogram
from ._measures import adaptive_lr_variance, distortion, histogram_median
from ._plot import load_records, plot_adaptive_lr, plot_gradient_histograms
from ._recorder import KINDS, Diagnostics, parameter_kinds
from ._report import load_run, write_report

__all__ = [
    "KINDS",
    "Diagnostics",
    "LogBins",
    "abs_log_histogram",
    "adaptive_lr_variance",
    "distortion",
    "histogram_median",
    "load_records",
    "load_run",
    "parameter_kinds",
    "plot_adaptive_lr",
    "plot_gradient_histograms",
    "write_report",
]
