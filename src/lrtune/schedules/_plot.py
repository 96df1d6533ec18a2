"""Draw schedules (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Schedule

__all__ = ["plot"]


def plot(
    schedules: Schedule | Sequence[Schedule],
    steps: int,
    ax: Any = None,
    *,
    labels: Sequence[str] | None = None,
    base_lr: float = 1.0,
) -> Any:
    """Draw one or more schedules over updates 1..``steps`` on ``ax`` (a new figure if None); returns the axes.

    Multiplier schedules are drawn as base_lr · f(t); absolute ones (``noam``) as f(t). Each line is labelled
    with ``labels`` or the schedule's display name.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting schedules needs matplotlib: pip install 'lrtune[plot]'") from e
    items = [schedules] if isinstance(schedules, Schedule) else list(schedules)
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels must have one entry per schedule ({len(items)}), got {len(labels)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    t = list(range(1, steps + 1))
    for i, s in enumerate(items):
        factor = 1.0 if s.absolute else base_lr
        label = labels[i] if labels is not None else s.display_name
        ax.plot(t, [factor * s.at(k) for k in t], label=label)
    ax.set_xlabel("optimizer update t")
    ax.set_ylabel("learning rate" if base_lr != 1.0 or any(s.absolute for s in items) else "LR multiplier")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
