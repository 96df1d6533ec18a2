"""Pictures of recorded diagnostics (matplotlib, the ``plot`` extra): the RAdam paper's Figure 2 and friends.

Every function takes *runs*: a list of records (``Diagnostics.records``, ``RunRecord.diagnostics``), a run
directory holding ``diagnostics.jsonl``, or that file; or a sequence of those to draw side by side / overlaid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._histogram import DEFAULT_BINS, LogBins

__all__ = ["load_records", "plot_adaptive_lr", "plot_gradient_histograms"]

Records = list[dict[str, Any]]
Run = Records | str | os.PathLike[str]


def load_records(run: Run) -> Records:
    """The records of a run: given as records, a run directory (``diagnostics.jsonl`` inside) or the file."""
    if isinstance(run, list):
        return run
    path = Path(run)
    if path.is_dir():
        path = path / "diagnostics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no diagnostics at {path}: train with diagnostics=True and an out_dir")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _runs(runs: Run | Sequence[Run]) -> list[Records]:
    """One run, or several: a list of records is one run; any other list or tuple holds runs."""
    if isinstance(runs, (str, os.PathLike)):
        return [load_records(runs)]
    items: list[Any] = list(runs)
    if not items or isinstance(items[0], dict):
        return [load_records(items)]
    return [load_records(r) for r in items]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting diagnostics needs matplotlib: pip install 'lrtune[plot]'") from e
    return plt


def _labels(labels: Sequence[str] | None, n: int) -> list[str]:
    if labels is None:
        return [f"run {i + 1}" for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per run ({n}), got {len(labels)}")
    return list(labels)


def plot_gradient_histograms(
    runs: Run | Sequence[Run],
    *,
    labels: Sequence[str] | None = None,
    kind: str = "all",
    max_step: int | None = 100,
    bins: LogBins = DEFAULT_BINS,
) -> Any:
    """Figure 2 of Liu et al. (2020) as heat maps: per recorded step (y), the share of gradient elements in each
    log10|g| bin (x, log scale), one panel per run side by side (e.g. with and without warm-up).

    Zeros, under/overflow and non-finite elements are left out of the picture (they are in the records).
    Returns the matplotlib figure.
    """
    plt = _pyplot()
    import numpy as np

    data = _runs(runs)
    names = _labels(labels, len(data))
    fig, axes = plt.subplots(1, len(data), figsize=(4.2 * len(data), 4.0), squeeze=False, sharey=True)
    edges = np.asarray(bins.log10_edges())
    image = None
    for ax, records, name in zip(axes[0], data, names, strict=True):
        rows = [r for r in records if (max_step is None or r["step"] <= max_step) and kind in r["hist"]]
        if not rows:
            raise ValueError(f"{name}: no recorded histogram of kind {kind!r} in the first {max_step} steps")
        counts = np.asarray([r["hist"][kind][2 : 2 + bins.n] for r in rows], dtype=float)
        totals = np.maximum(np.asarray([sum(r["hist"][kind]) for r in rows], dtype=float), 1.0)
        share = counts / totals[:, None]
        steps = np.asarray([r["step"] for r in rows], dtype=float)
        y = np.concatenate([steps - 0.5, [steps[-1] + 0.5]])
        image = ax.pcolormesh(edges, y, share, shading="flat", cmap="viridis")
        ax.set_title(name)
        ax.set_xlabel("log10 |gradient|")
    axes[0][0].set_ylabel("optimizer update")
    axes[0][0].invert_yaxis()
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="share of elements")
    return fig


def plot_adaptive_lr(runs: Run | Sequence[Run], *, labels: Sequence[str] | None = None, kind: str = "all") -> Any:
    """The adaptive rate l_t over updates: median with its 1–99 % band (log scale) and, below, its variance over
    the parameters; runs overlaid. Returns the matplotlib figure."""
    plt = _pyplot()
    data = _runs(runs)
    names = _labels(labels, len(data))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    drawn = False
    for records, name in zip(data, names, strict=True):
        rows = [r for r in records if kind in r.get("adaptive_lr", {})]
        if not rows:
            continue
        drawn = True
        steps = [r["step"] for r in rows]
        stats = [r["adaptive_lr"][kind] for r in rows]
        (line,) = top.plot(steps, [s["q50"] for s in stats], label=name)
        top.fill_between(steps, [s["q01"] for s in stats], [s["q99"] for s in stats], alpha=0.2, color=line.get_color())
        bottom.plot(steps, [s["var"] for s in stats], label=name, color=line.get_color())
    if not drawn:
        raise ValueError(f"no adaptive-rate statistics of kind {kind!r} (an Adam-family optimizer records them)")
    from matplotlib.ticker import NullFormatter

    top.set_yscale("log")
    top.set_ylabel("l_t: median, 1–99 %")
    bottom.set_yscale("log")
    bottom.yaxis.set_minor_formatter(NullFormatter())
    bottom.set_ylabel("Var[l_t]")
    bottom.set_xlabel("optimizer update")
    top.legend()
    fig.tight_layout()
    return fig
