"""Walking a batch: tensors alone or nested in tuples (named ones too), lists and dicts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

__all__ = ["batch_rows", "map_tensors", "move_to", "tensors"]


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``batch`` with ``fn`` applied to every tensor in it; tuples (named ones too), lists and dicts are followed
    (a mapping comes back as a ``dict``), anything else is kept as it is."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple takes its fields positionally
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        return type(batch)(map_tensors(v, fn) for v in batch)  # type: ignore[call-arg]
    return batch


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor moved to ``device`` (tuples, named tuples, lists and dicts followed)."""
    return map_tensors(batch, lambda t: t.to(device, non_blocking=True))


def tensors(batch: Any) -> Iterator[torch.Tensor]:
    """The tensors in ``batch``, depth first, in the order :func:`map_tensors` visits them."""
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from tensors(value)
    elif isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        for value in batch:
            yield from tensors(value)


def batch_rows(batch: Any) -> int:
    """The number of rows of a batch: the first dimension of its first tensor (1 for a 0-dim tensor)."""
    for t in tensors(batch):
        return int(t.shape[0]) if t.ndim else 1
    raise ValueError(f"cannot count the rows of a batch of type {type(batch).__name__}: it holds no tensor")
