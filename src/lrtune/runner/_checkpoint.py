"""Checkpoints: written atomically, read back with ``weights_only=True``, the newest good one wins."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["latest_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

_PATTERN = "step-*.pt"


def save_checkpoint(directory: Path, step: int, state: dict[str, Any], *, keep: int = 2) -> Path:
    """Write ``state`` as ``directory/step-XXXXXXXX.pt`` (temp file + rename) and keep the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{step:08d}.pt"
    tmp = directory / f".{path.name}.tmp{os.getpid()}"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    for old in sorted(directory.glob(_PATTERN))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads; corrupt or truncated ones are skipped with a warning."""
    for path in sorted(directory.glob(_PATTERN), reverse=True):
        try:
            state = torch.load(path, weights_only=True)
        except Exception as e:
            logger.warning("checkpoint %s is unreadable (%s: %s); trying an older one", path, type(e).__name__, e)
            continue
        if not isinstance(state, dict) or "step" not in state:
            logger.warning("checkpoint %s has no step; trying an older one", path)
            continue
        return path, state
    return None
