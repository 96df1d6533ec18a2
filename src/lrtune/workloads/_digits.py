"""``digits``: an MLP on scikit-learn's bundled 8×8 digits — the quick non-Transformer case (accuracy)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

__all__ = ["Digits"]


def _load() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the digits workload needs scikit-learn: pip install 'lrtune[workloads]'") from e
    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target, dtype=torch.long)


@dataclass
class Digits:
    """1797 8×8 images, 10 classes; a fixed 70/15/15 train/valid/test split (seed 0); an MLP 64→hidden→10."""

    hidden: int = 128
    name: str = "digits"
    step_hint: int = 500
    batch_hint: ClassVar[int] = 64
    metric: str = "valid_accuracy"
    higher_is_better: bool = True
    _splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden!r}")
        x, y = _load()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        n_train, n_valid = int(0.7 * len(y)), int(0.15 * len(y))
        parts = {
            "train": order[:n_train],
            "valid": order[n_train : n_train + n_valid],
            "test": order[n_train + n_valid :],
        }
        self._splits = {k: (x[i], y[i]) for k, i in parts.items()}

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 10))

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self._splits["train"]
        if not 1 <= batch_size <= len(y):
            raise ValueError(f"batch_size must be in [1, {len(y)}], got {batch_size!r}")
        g = torch.Generator().manual_seed(seed)
        while True:  # epochs of a fresh permutation, dropping the ragged last batch
            order = torch.randperm(len(y), generator=g)
            for start in range(0, len(y) - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                yield x[idx], y[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        out: dict[str, float] = {}
        device = next(model.parameters()).device
        for split in ("valid", "test"):
            x, y = (t.to(device) for t in self._splits[split])
            logits = model(x)
            out[f"{split}_loss"] = nn.functional.cross_entropy(logits, y).item()
            out[f"{split}_accuracy"] = (logits.argmax(1) == y).float().mean().item()
        return out
