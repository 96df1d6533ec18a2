"""Absolute-value histograms on log-spaced bins, computed on the tensors' device (the RAdam paper's Figure 2).

The bins of :class:`LogBins` cover ``|x|`` from ``10**low`` to ``10**high`` with ``per_decade`` bins per decade,
plus four special bins, so that every element is counted exactly once::

    index 0              exact zeros
    index 1              0 < |x| < 10**low           (underflow)
    index 2 .. n + 1     10**(low + i/per_decade) <= |x| < 10**(low + (i+1)/per_decade)
    index n + 2          |x| >= 10**high             (overflow)
    index n + 3          NaN or ±Inf

Counting is ``floor((log10|x| − low) · per_decade)`` then ``bincount``, per tensor, summed on the device: one
host transfer per histogram, none per tensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["DEFAULT_BINS", "LogBins", "abs_log_histogram"]


@dataclass(frozen=True)
class LogBins:
    """Log-spaced bins over ``|x|``: ``per_decade`` bins per decade from ``10**low`` to ``10**high``."""

    low: int = -12
    high: int = 2
    per_decade: int = 4

    def __post_init__(self) -> None:
        if self.high <= self.low:
            raise ValueError(f"high must be > low, got low={self.low!r}, high={self.high!r}")
        if self.per_decade < 1:
            raise ValueError(f"per_decade must be >= 1, got {self.per_decade!r}")

    @property
    def n(self) -> int:
        """Regular bins (without the four special ones)."""
        return (self.high - self.low) * self.per_decade

    @property
    def size(self) -> int:
        """All bins: zero, underflow, the ``n`` regular bins, overflow, non-finite."""
        return self.n + 4

    def log10_edges(self) -> list[float]:
        """The ``n + 1`` edges of the regular bins, as powers of ten."""
        return [self.low + i / self.per_decade for i in range(self.n + 1)]

    def labels(self) -> list[str]:
        """A short label per bin."""
        edges = self.log10_edges()
        middle = [f"[1e{a:g}, 1e{b:g})" for a, b in itertools.pairwise(edges)]
        return ["0", f"<1e{self.low}", *middle, f">=1e{self.high}", "nonfinite"]


DEFAULT_BINS = LogBins()


def abs_log_histogram(tensors: Sequence[Tensor], bins: LogBins = DEFAULT_BINS) -> Tensor:
    """Counts (int64, on the first tensor's device) of ``|x|`` over all elements of ``tensors`` in ``bins``.

    The counts sum to the total number of elements. Sparse tensors are not supported.
    """
    if not tensors:
        return torch.zeros(bins.size, dtype=torch.long)
    device = tensors[0].device
    counts = torch.zeros(bins.size, dtype=torch.long, device=device)
    for t in tensors:
        if t.is_sparse:
            raise TypeError("abs_log_histogram does not support sparse tensors")
        if t.numel() == 0:
            continue
        a = t.detach().abs().flatten()
        a = a if a.dtype == torch.float64 else a.float()
        # bin i + 2 holds low + i/k <= log10|x| < low + (i+1)/k: a floor, cheaper than a binary search
        position = torch.floor((torch.log10(a) - bins.low) * bins.per_decade)
        code = position.clamp_(-1, bins.n).nan_to_num_(nan=bins.n + 1).long() + 2  # 1 under, n + 2 over
        code = torch.where(a == 0, 0, code)
        code = torch.where(torch.isfinite(a), code, bins.n + 3)
        counts += torch.bincount(code, minlength=bins.size).to(device)
    return counts
