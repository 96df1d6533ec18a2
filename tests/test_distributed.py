"""Data-parallel training: 2 CPU processes under torchrun (gloo) equal one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lrtune.runner._distributed import shard_batch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_driver import run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def _losses(run_dir: Path) -> list[float]:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [x["loss"] for x in lines if "loss" in x]


@pytest.mark.parametrize("name", ["digits", "translation", "model"])
def test_two_processes_equal_one(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path / "cache"))
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = run(name, tmp_path / "one")  # builds the cache the two processes then read
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += [str(Path(__file__).parent / "ddp_driver.py"), name, str(tmp_path / "two")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    records = [json.loads((tmp_path / f"two-record-rank{r}.json").read_text()) for r in (0, 1)]
    assert records[0] == records[1]  # every rank returns the same record
    assert records[0]["status"] == single.status == "completed" and records[0]["steps"] == single.steps
    for key, value in single.final_metrics.items():
        assert records[0]["final"][key] == pytest.approx(value, rel=1e-4, abs=1e-4), key
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-5)
    # rank 0 alone wrote the run directory, with the same files as the one-process run
    assert sorted(p.name for p in (tmp_path / "two").rglob("*")) == sorted(
        p.name for p in (tmp_path / "one").rglob("*")
    )
    one = torch.load(next((tmp_path / "one" / "checkpoints").glob("*.pt")), weights_only=True)["model"]
    two = torch.load(next((tmp_path / "two" / "checkpoints").glob("*.pt")), weights_only=True)["model"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)


def test_shard_batch_splits_rows_and_refuses_too_small_batches() -> None:
    x, y = torch.arange(10).reshape(5, 2), torch.arange(5)
    parts = [shard_batch((x, y), r, 2) for r in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    with pytest.raises(ValueError, match="cannot be split over 3 processes"):
        shard_batch({"x": torch.zeros(2, 4)}, 0, 3)
