"""Runs one small training under ``torchrun`` (or alone) for tests/test_distributed.py.

Usage: python tests/ddp_driver.py WORKLOAD OUT_DIR — writes OUT_DIR/record-rank{R}.json on every rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

import lrtune
from lrtune.workloads import Digits, ModelWorkload, Translation


class Tokens(Dataset[dict[str, torch.Tensor]]):
    """Sequences of 5 positions, some masked out, with a random augmentation: a token-level loss."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 5, 6, generator=g)
        self.y, self.mask = (self.x[..., 0] > 0).long(), torch.rand(n, 5, generator=g) > 0.3

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i] + 0.1 * torch.randn(5, 6), "y": self.y[i], "mask": self.mask[i]}


def masked_ce(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = batch["mask"]
    return F.cross_entropy(model(batch["x"])[mask], batch["y"][mask])


def token_model() -> ModelWorkload:
    """Your own model: augmented data (every rank must draw the same), a masked loss weighted by its tokens."""
    return ModelWorkload(
        model=lambda: nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2)),
        train_data=Tokens(256, seed=0),
        loss=masked_ce,
        valid_data=Tokens(40, seed=1),
        eval_batch_size=16,
        loss_weight=lambda batch: int(batch["mask"].sum()),
    )


SETTINGS = {
    # workload, optimizer, global batch size, updates
    "digits": (lambda: Digits(), {"name": "adam", "lr": 3e-3}, 64, 30),
    "translation": (
        lambda: Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=16, dropout=0.0),
        {"name": "radam", "lr": 2e-3, "betas": (0.9, 0.98)},
        600,
        8,
    ),
    "model": (token_model, {"name": "adam", "lr": 1e-2}, 32, 20),
}


def run(name: str, out: Path) -> lrtune.RunRecord:
    make, optimizer, batch_size, steps = SETTINGS[name]
    return lrtune.train(
        make(),
        optimizer=optimizer,
        schedule={"name": "warmup_linear_decay", "warmup_steps": 2, "total_steps": steps},
        steps=steps,
        batch_size=batch_size,
        eval_every=steps,
        max_grad_norm=1.0,
        out_dir=out,
        checkpoint_every=steps // 2,
    )


if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    record = run(name, out)
    rank = os.environ.get("RANK", "0")
    (out.parent / f"{out.name}-record-rank{rank}.json").write_text(
        json.dumps({"status": record.status, "steps": record.steps, "final": record.final_metrics})
    )
