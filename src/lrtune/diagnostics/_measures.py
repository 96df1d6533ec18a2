"""Numbers from recorded histograms: how far the gradient distribution moves over the first updates.

The RAdam paper shows (Figure 2) that without warm-up the absolute-gradient histograms of a Transformer are
distorted within the first ~10 updates: mass moves towards tiny values. :func:`distortion` puts a number on that
for each recorded step, relative to the first one:

* ``median_shift``: the median of log10|g| (over the non-zero, finite elements, interpolated inside its bin)
  minus the first record's, in decades (negative: gradients shrank);
* ``low_mass``: the share of elements below ``10**low`` (zeros and underflow included) minus the first record's.
"""

from __future__ import annotations

import math
from typing import Any

from ._histogram import DEFAULT_BINS, LogBins

__all__ = ["adaptive_lr_variance", "distortion", "histogram_median"]


def histogram_median(counts: list[int], bins: LogBins = DEFAULT_BINS) -> float | None:
    """The median of log10|x| over non-zero finite elements, linear inside the bin; None when there are none.

    Underflow and overflow count as sitting at the lowest and highest edge.
    """
    body = counts[1 : bins.n + 3]  # underflow, the regular bins, overflow
    total = sum(body)
    if total == 0:
        return None
    edges = bins.log10_edges()
    half, seen = total / 2, 0
    for i, c in enumerate(body):
        if c and seen + c >= half:
            if i == 0:
                return float(edges[0])
            if i == len(body) - 1:
                return float(edges[-1])
            lo, hi = edges[i - 1], edges[i]
            return lo + (hi - lo) * (half - seen) / c
        seen += c
    return float(edges[-1])  # pragma: no cover - unreachable: the loop reaches half


def distortion(
    records: list[dict[str, Any]], *, kind: str = "all", low: float = -8.0, bins: LogBins = DEFAULT_BINS
) -> list[dict[str, float | None]]:
    """Per recorded step: ``median_shift`` (decades) and ``low_mass`` (share below ``10**low``) against the
    first record (see the module docstring)."""
    if not records:
        raise ValueError("distortion needs at least one record")
    edges = bins.log10_edges()
    if low not in edges:
        raise ValueError(
            f"low must be one of the bins' edges {edges[0]}…{edges[-1]} step {1 / bins.per_decade}, got {low!r}"
        )
    cut = 2 + edges.index(low)  # bins below 10**low: zero, underflow and regular bins up to the edge

    def measure(counts: list[int]) -> tuple[float | None, float]:
        total = sum(counts)
        return histogram_median(counts, bins), (sum(counts[:cut]) / total if total else 0.0)

    first_median, first_low = measure(records[0]["hist"][kind])
    out: list[dict[str, float | None]] = []
    for r in records:
        median, low_share = measure(r["hist"][kind])
        shift = None if median is None or first_median is None else median - first_median
        out.append({"step": r["step"], "median_shift": shift, "low_mass": low_share - first_low})
    return out


def adaptive_lr_variance(runs: list[list[dict[str, Any]]], *, kind: str = "all") -> list[dict[str, float]]:
    """Estimates of Var[l_t] per recorded step from runs that differ only in their seed (one list of records each).

    For each step recorded in every run: ``within`` is the mean over runs of the variance of l_t over the
    parameters (each parameter's rate one sample of ψ(g_1..g_t)); ``across`` is the variance over runs of the
    mean l_t (the spread from the data order and initialisation alone, needs two runs or more); ``log_within``
    is the same as ``within`` for log10 l_t approximated from the recorded quantiles (a scale-free view:
    ((q99 − q01) / (2 · 2.326))², exact for a log-normal spread). The RAdam paper's argument is that ``within``
    is large in the first updates, when v_t rests on few gradients, and shrinks as t grows.
    """
    if not runs or any(not r for r in runs):
        raise ValueError("adaptive_lr_variance needs at least one run with records")
    by_step = [{r["step"]: r["adaptive_lr"][kind] for r in run if kind in r.get("adaptive_lr", {})} for run in runs]
    common = sorted(set.intersection(*(set(s) for s in by_step)))
    if not common:
        raise ValueError(f"no step has adaptive-rate statistics of kind {kind!r} in every run")
    out = []
    for step in common:
        stats = [s[step] for s in by_step]
        means = [x["mean"] for x in stats]
        centre = sum(means) / len(means)
        spread = [((math.log10(x["q99"]) - math.log10(x["q01"])) / (2 * 2.326)) ** 2 for x in stats]
        out.append(
            {
                "step": step,
                "within": sum(x["var"] for x in stats) / len(stats),
                "across": sum((m - centre) ** 2 for m in means) / (len(means) - 1) if len(means) > 1 else math.nan,
                "log_within": sum(spread) / len(spread),
            }
        )
    return out
