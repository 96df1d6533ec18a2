"""The workload protocol: data + model + loss + evaluation, separate from the runner (as AlgoPerf)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["Workload"]


@runtime_checkable
class Workload(Protocol):
    """What :func:`lrtune.train` needs from a task. Implement it to tune on your own model and data.

    Optional, for data-parallel runs (``torchrun``): ``loss_weight(batch) -> int``, the number of terms the
    loss averages over (e.g. target tokens; the batch's rows if absent), and ``shard(batch, rank, world)``, a
    rank's share of a global batch (contiguous rows if absent).

    Optional, ``batch_hint``: the training batch size tools use when given none (64 otherwise).

    Optional, for expensive metrics: an ``evaluate`` with a keyword ``final`` is told whether this is the run's
    last evaluation, and may compute costly metrics (e.g. BLEU of decoded translations) only then; intermediate
    evaluations must still give ``valid_loss``.

    Attributes:
        name: a short identifier (``"digits"``).
        step_hint: a sensible number of optimizer updates for a full run.
        metric: the evaluation metric to optimise (a key of :meth:`evaluate`'s result), and ``higher_is_better``.
    """

    name: str
    step_hint: int
    metric: str
    higher_is_better: bool

    def build_model(self, seed: int) -> torch.nn.Module:
        """A freshly initialised model (deterministic for a seed)."""
        ...

    def train_batches(self, batch_size: int, seed: int) -> Iterator[Any]:
        """An endless, seed-deterministic stream of training batches."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``model`` on ``batch``."""
        ...

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Held-out metrics (at least ``valid_loss`` and :attr:`metric`)."""
        ...
