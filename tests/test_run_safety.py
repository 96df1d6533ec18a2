"""``lrtune.train`` and ``lrtune train`` never overwrite, mislabel or lose a run, and write strict JSON only."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import lrtune
from lrtune.cli import main
from lrtune.diagnostics import load_run
from lrtune.schedules import warmup_linear_decay
from lrtune.workloads import Digits


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits(hidden=32)


def _run(workload: Any, out: Path, steps: int = 40, **kw: Any) -> lrtune.RunRecord:
    kw.setdefault("optimizer", {"name": "adam", "lr": 3e-3})
    return lrtune.train(
        workload,
        schedule=warmup_linear_decay(5, 40),
        steps=steps,
        eval_every=10,
        checkpoint_every=10,
        out_dir=out,
        **kw,
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity (what strict readers do)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_an_existing_run_is_never_overwritten_unasked(digits: Digits, tmp_path: Path) -> None:
    _run(digits, tmp_path / "run")
    before = _snapshot(tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds a run"):
        _run(digits, tmp_path / "run", optimizer={"name": "sgd", "lr": 0.1})
    assert _snapshot(tmp_path / "run") == before
    replaced = _run(digits, tmp_path / "run", optimizer={"name": "sgd", "lr": 0.1}, overwrite=True)
    assert replaced.status == "completed"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["optimizer"] == {"name": "sgd", "lr": 0.1}
    checkpoints = torch_load_steps(tmp_path / "run")
    assert all(c["config"]["optimizer"]["name"] == "sgd" for c in checkpoints)  # none of the old run's left
    with pytest.raises(ValueError, match="pass one"):
        _run(digits, tmp_path / "run", resume=True, overwrite=True)


def torch_load_steps(run: Path) -> list[dict[str, Any]]:
    import torch

    return [torch.load(p, weights_only=True) for p in sorted((run / "checkpoints").glob("step-*.pt"))]


def test_resume_refuses_another_config_and_names_the_keys(digits: Digits, tmp_path: Path) -> None:
    _run(digits, tmp_path / "run", steps=20)
    with pytest.raises(ValueError, match=r"optimizer\.lr \(0\.003 → 0\.01\)"):
        _run(digits, tmp_path / "run", optimizer={"name": "adam", "lr": 1e-2}, resume=True)
    with pytest.raises(ValueError, match="batch_size"):
        _run(digits, tmp_path / "run", batch_size=32, resume=True)
    more = _run(digits, tmp_path / "run", steps=40, resume=True)  # a larger steps is allowed
    assert more.status == "completed" and more.steps == 40
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 40
    full = _run(digits, tmp_path / "full", steps=40)
    assert more.evals == full.evals


def test_resume_without_a_checkpoint(digits: Digits, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lrtune.train(digits, optimizer={"name": "adam"}, steps=10, out_dir=tmp_path / "done")
    with pytest.raises(FileExistsError, match="completed run and no checkpoint"):
        lrtune.train(digits, optimizer={"name": "adam"}, steps=10, out_dir=tmp_path / "done", resume=True)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        record = lrtune.train(digits, optimizer={"name": "adam"}, steps=10, out_dir=tmp_path / "partial", resume=True)
    assert record.status == "completed"
    assert "starts again from update 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # nothing there at all: it says so, and starts
        record = lrtune.train(digits, optimizer={"name": "adam"}, steps=10, out_dir=tmp_path / "new", resume=True)
    assert record.status == "completed"
    assert f"no run to resume in {tmp_path / 'new'}: the run starts from update 0" in caplog.text


def test_seconds_count_every_segment(tmp_path: Path) -> None:
    from test_trainer import _InterruptAt

    digits = Digits()  # the wrapper records no options: the resumed workload must have none either
    first = _run(_InterruptAt(digits, 17), tmp_path / "run")
    assert first.status == "interrupted" and first.steps == 17
    began = time.perf_counter()
    second = _run(digits, tmp_path / "run", resume=True)
    segment = time.perf_counter() - began
    assert first.seconds < second.seconds <= first.seconds + segment  # both segments: the first's and this one's
    assert json.loads((tmp_path / "run" / "run.json").read_text())["seconds"] == pytest.approx(second.seconds)


def test_every_file_is_strict_json_when_a_run_diverges(digits: Digits, tmp_path: Path) -> None:
    record = lrtune.train(
        digits, optimizer={"name": "adam", "lr": 1e30}, steps=5, eval_every=1, out_dir=tmp_path, diagnostics=True
    )
    assert record.status == "diverged"
    assert any(not math.isfinite(v) for e in record.evals for k, v in e.items() if k != "step")  # NaN in memory
    for name in ("config.json", "run.json"):
        strict_json((tmp_path / name).read_text())
    for name in ("metrics.jsonl", "diagnostics.jsonl"):
        for line in (tmp_path / name).read_text().splitlines():
            strict_json(line)
    evals = [strict_json(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[0]["eval"]["valid_loss"] is None  # NaN is written as null


def test_a_torn_metrics_line_is_dropped_on_resume_and_named_by_the_report(digits: Digits, tmp_path: Path) -> None:
    full = _run(digits, tmp_path / "full")
    _run(digits, tmp_path / "cut", steps=25)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 26, "loss": 2.3, "l')  # a crash mid-write
    load = load_run(tmp_path / "cut")
    assert "line 29 is torn" in load["notes"][0] and str(metrics) in load["notes"][0]
    page = lrtune.diagnostics.write_report([tmp_path / "cut"], tmp_path / "report.html")
    assert "line 29 is torn" in page.read_text()
    resumed = _run(digits, tmp_path / "cut", resume=True)
    assert resumed.evals == full.evals
    assert metrics.read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    metrics.write_text('{"step": 1, "lo\n' + metrics.read_text())  # torn in the middle: corrupt, refused by name
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 1 is not a JSON record"):
        _run(digits, tmp_path / "cut", resume=True, steps=45)


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "lrtune.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_cli_ctrl_c_without_checkpoints_saves_and_exits_130(tmp_path: Path) -> None:
    args = ["train", "--workload-option", "hidden=16", "--batch-size", "16", "--steps", "1500", "--eval-every", "500"]
    args += ["--out", "run"]
    proc = _cli(*args, cwd=tmp_path)
    _wait_for(tmp_path / "run" / "metrics.jsonl")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    outcome = json.loads((tmp_path / "run" / "run.json").read_text())
    assert outcome["status"] == "interrupted" and 0 < outcome["steps"] < 1500
    assert (tmp_path / "run" / "checkpoints" / f"step-{outcome['steps']:08d}.pt").is_file()
    assert "--resume" in out and "Traceback" not in out
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert main([*args[:-2], "--out", str(tmp_path / "full")]) == 0  # the same run, uninterrupted
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()


def test_cli_exit_codes_and_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "nosteps.json").write_text('{"workload": "digits", "optimizer": {"name": "adam"}}')
    cases = [
        (["--out", "afile"], "afile is a file"),
        (["--config", "list.json"], "must hold a JSON object"),
        (["--config", "nosteps.json"], "has no 'steps'"),
        (["--config", "none.json"], "no such file"),
        (["--workload-option", "hidden=abc"], "option hidden='abc': expected int"),
        (["--workload-option", "metric=bogus"], "has no option 'metric'"),
        (["--resume"], "need --out"),
        (["--lr", "nan"], "lr must not be NaN"),
    ]
    for args, message in cases:
        assert main(["train", "--steps", "5", *args]) == 2, args
        out = capsys.readouterr().out
        assert message in out.replace("\n", ""), (args, out)
        assert "Traceback" not in out
    assert main(["train", "--steps", "5", "--out", "run"]) == 0
    assert main(["train", "--steps", "5", "--out", "run"]) == 2
    assert "already holds a run" in capsys.readouterr().out
    assert main(["train", "--steps", "5", "--out", "run", "--resume", "--lr", "0.01"]) == 2
    assert main(["train", "--out", "run", "--overwrite", "--lr", "1e30", "--steps", "5", "--eval-every", "1"]) == 3
    assert main(["train", "--config", "run/config.json", "--lr", "0.01", "--out", "again"]) == 0
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["optimizer"]["lr"] == 0.01 and config["steps"] == 5  # the flag given overrides, the rest is kept
