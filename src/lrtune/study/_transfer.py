"""Does a ranking made at one horizon hold at another? Rank correlation, top-1 agreement and regret.

Short-horizon bias (Wu et al. 2018, "Understanding Short-Horizon Bias in Stochastic Meta-Optimization"): the
setting that is best after a short run is often not the best after a long one, and the direction of the error
depends on the workload (a large peak LR is ahead early and may stall later, or the reverse). These measures say
how far a ranking moved between two horizons, over the same settings (cells):

* Spearman's ρ of the cells' final validation losses (a diverged cell ranks last);
* top-1 agreement: is the best cell at the short horizon the best at the long one;
* regret: the long horizon's loss of the short horizon's pick over the long horizon's best, minus 1.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

__all__ = ["compare_horizons", "spearman"]


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties (including infinities) sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (NaN when either is constant)."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs sequences of one length, got {len(a)} and {len(b)}")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else math.nan


def compare_horizons(short: Mapping[Hashable, float], long: Mapping[Hashable, float]) -> dict[str, Any]:
    """Rank correlation, top-1 agreement and regret between the losses of the same cells at two horizons (the
    cells both hold); ``pick`` and ``best`` are the cells chosen at the short and at the long horizon."""
    cells = [c for c in short if c in long]
    if len(cells) < 2:
        raise ValueError(f"comparing horizons needs at least 2 cells at both, got {len(cells)}")
    pick = min(cells, key=lambda c: short[c])
    best = min(cells, key=lambda c: long[c])
    finite = math.isfinite(long[best]) and long[best] > 0
    return {
        "cells": len(cells),
        "spearman": spearman([short[c] for c in cells], [long[c] for c in cells]),
        "top1": long[pick] == long[best],
        "pick": pick,
        "best": best,
        "regret": long[pick] / long[best] - 1 if finite else math.nan,
    }
