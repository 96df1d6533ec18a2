"""Runs one small training under ``torchrun`` (or alone) for tests/test_distributed.py.

Usage: python tests/ddp_driver.py WORKLOAD OUT_DIR — writes OUT_DIR/record-rank{R}.json on every rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lrtune
from lrtune.workloads import Digits, Translation

SETTINGS = {
    # workload, optimizer, global batch size, updates
    "digits": (lambda: Digits(), {"name": "adam", "lr": 3e-3}, 64, 30),
    "translation": (
        lambda: Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=16, dropout=0.0),
        {"name": "radam", "lr": 2e-3, "betas": (0.9, 0.98)},
        600,
        8,
    ),
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
