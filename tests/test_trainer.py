"""lrtune.train on the digits workload: learns, is deterministic, records divergence, writes its records."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from helpers import default_sigint

import lrtune
from lrtune.schedules import from_spec, warmup_linear_decay
from lrtune.workloads import Digits, Workload


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def test_digits_is_a_workload(digits: Digits) -> None:
    assert isinstance(digits, Workload)
    batch = next(digits.train_batches(32, seed=0))
    assert batch[0].shape == (32, 64) and batch[1].shape == (32,)
    metrics = digits.evaluate(digits.build_model(0))
    assert set(metrics) >= {"valid_loss", "valid_accuracy", "test_accuracy"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "adam", "lr": 3e-3},
        {"name": "radam", "lr": 1e-2},  # r_t ≈ 0.2–0.4 over these 300 updates (β2 = 0.999)
        {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
        {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    ],
    ids=lambda s: s["name"],
)
def test_learns(digits: Digits, optimizer: dict) -> None:
    before = digits.evaluate(digits.build_model(0))
    record = lrtune.train(digits, optimizer=optimizer, schedule=warmup_linear_decay(20, 300), steps=300)
    assert record.status == "completed" and record.steps == 300
    assert record.final_metrics["valid_loss"] < 0.5 * before["valid_loss"]
    assert record.final_metrics["valid_accuracy"] > 0.9


def test_deterministic_for_a_seed(digits: Digits, tmp_path: Path) -> None:
    runs = [
        lrtune.train(digits, optimizer={"name": "adam", "lr": 1e-3}, steps=60, eval_every=20, out_dir=tmp_path / n)
        for n in ("a", "b")
    ]
    assert runs[0].evals == runs[1].evals
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    other = lrtune.train(digits, optimizer={"name": "adam", "lr": 1e-3}, steps=60, eval_every=20, seed=1)
    assert other.evals != runs[0].evals


def test_records_written(digits: Digits, tmp_path: Path) -> None:
    lrtune.train(
        digits,
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
        schedule={"name": "warmup_linear_decay", "warmup_steps": 5, "total_steps": 30},
        steps=30,
        eval_every=10,
        max_grad_norm=1.0,
        out_dir=tmp_path,
    )
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optimizer"]["name"] == "sgd" and config["max_grad_norm"] == 1.0
    assert config["schedule"] == {"name": "warmup_linear_decay", "warmup_steps": 5, "total_steps": 30}  # as given
    assert from_spec(config["schedule"]) == warmup_linear_decay(5, 30)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    evals = [line for line in lines if "eval" in line]
    assert [s["step"] for s in steps] == list(range(1, 31))
    assert [e["step"] for e in evals] == [10, 20, 30]
    assert steps[0]["lr"] == pytest.approx(0.1 / 5)  # the first update uses f(1) of the warm-up
    assert all(s["grad_norm"] is not None and s["grad_norm"] >= 0 for s in steps)
    assert all(s["examples"] == 64 for s in steps)  # the batch's loss terms, for throughput


def test_divergence_is_recorded_not_raised(digits: Digits) -> None:
    record = lrtune.train(digits, optimizer={"name": "sgd", "lr": 50.0}, steps=100)
    assert record.status == "diverged" and record.diverged
    assert record.steps < 100


@dataclasses.dataclass
class _NaNGradientAt(Digits):
    """Digits whose loss has a finite value but a NaN gradient at its ``bad``-th evaluation; keeps its model."""

    bad: int = 0
    calls: int = 0
    model: torch.nn.Module | None = None

    def build_model(self, seed: int) -> torch.nn.Module:
        self.model = super().build_model(seed)
        return self.model

    def loss(self, model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(model, batch)
        if self.calls == self.bad:
            w = next(model.parameters())
            loss = loss + 0.0 * torch.sqrt(w - w).sum()  # adds 0; its gradient is 0·∞ = NaN
        return loss


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "adam", "lr": 3e-3}, {"name": "radam", "lr": 1e-2}, {"name": "sgd", "lr": 0.1, "momentum": 0.9}],
    ids=lambda o: o["name"],
)
def test_nonfinite_gradient_ends_the_run_diverged_without_the_bad_step(optimizer: dict) -> None:
    """The optimizer checks gradients on the device and raises when the trainer reads the step's norm: the run
    ends "diverged" at that update, and the model equals a run that stopped just before it, bit for bit."""
    bad = _NaNGradientAt(bad=9)
    record = lrtune.train(bad, optimizer=optimizer, steps=20, batch_size=32)
    assert record.status == "diverged" and record.steps == 8 and record.skipped_steps == 0
    clean = _NaNGradientAt()
    assert lrtune.train(clean, optimizer=optimizer, steps=8, batch_size=32).status == "completed"
    assert bad.model is not None and clean.model is not None
    for a, b in zip(bad.model.parameters(), clean.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_nonfinite_skip_in_the_trainer_skips_the_update_and_its_lr(tmp_path: Path) -> None:
    schedule = {"name": "warmup_linear_decay", "warmup_steps": 10, "total_steps": 20}
    optimizer = {"name": "adam", "lr": 3e-3, "nonfinite": "skip"}
    record = lrtune.train(_NaNGradientAt(bad=5), optimizer=optimizer, schedule=schedule, steps=20, out_dir=tmp_path)
    assert record.status == "completed" and record.steps == 20 and record.skipped_steps == 1
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 5, *range(6, 21)]  # update 5 was tried twice
    assert [s["skipped_steps"] for s in steps] == [0] * 4 + [1] * 17
    f = from_spec(schedule)
    assert [s["lr"] for s in steps] == pytest.approx([3e-3 * f(s["step"]) for s in steps], rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"optimizer": {"name": "lion", "lr": 1e-3}}, ValueError, "'lion'"),
        ({"optimizer": {"lr": 1e-3}}, ValueError, "'name'"),
        ({"optimizer": {"name": "adam", "lr": -1.0}}, ValueError, "lr"),
        ({"optimizer": {"name": "adam"}, "steps": 0}, ValueError, "steps"),
        ({"optimizer": {"name": "adam"}, "batch_size": 2.5}, ValueError, "batch_size"),
        ({"optimizer": {"name": "adam"}, "batch_size": 100_000}, ValueError, "batch_size"),
        ({"optimizer": lambda ps: torch.optim.Adam(ps), "max_grad_norm": 1.0}, ValueError, "max_grad_norm"),
    ],
)
def test_bad_arguments(digits: Digits, kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        lrtune.train(digits, **{"steps": 5, **kwargs})


def test_factory_optimizer(digits: Digits) -> None:
    record = lrtune.train(digits, optimizer=lambda ps: torch.optim.Adam(ps, lr=3e-3), steps=100)
    assert record.final_metrics["valid_accuracy"] > 0.8


def _run(digits: Digits, out: Path, steps: int, **kw: object) -> lrtune.RunRecord:
    return lrtune.train(
        digits,
        optimizer={"name": "radam", "lr": 1e-2, "weight_decay": 1e-4},
        schedule=warmup_linear_decay(10, 60),
        steps=steps,
        eval_every=10,
        checkpoint_every=10,
        out_dir=out,
        **kw,  # type: ignore[arg-type]
    )


def test_resume_is_bit_identical(digits: Digits, tmp_path: Path) -> None:
    full = _run(digits, tmp_path / "full", 60)
    _run(digits, tmp_path / "cut", 35)  # "interrupted" after update 35; last checkpoint at 30
    resumed = _run(digits, tmp_path / "cut", 60, resume=True)
    assert resumed.evals == full.evals
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == [
        "step-00000050.pt",
        "step-00000060.pt",
    ]


def test_corrupt_checkpoint_falls_back_to_the_previous_one(digits: Digits, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    full = _run(digits, tmp_path / "full", 60)
    _run(digits, tmp_path / "cut", 40)
    newest = tmp_path / "cut" / "checkpoints" / "step-00000040.pt"
    newest.write_bytes(newest.read_bytes()[:200])  # truncated, as by a crash mid-write
    resumed = _run(digits, tmp_path / "cut", 60, resume=True)
    assert "unreadable" in caplog.text
    assert resumed.evals == full.evals


def test_resume_without_checkpoint_starts_fresh(digits: Digits, tmp_path: Path) -> None:
    fresh = _run(digits, tmp_path / "a", 20)
    resumed = _run(digits, tmp_path / "b", 20, resume=True)
    assert resumed.evals == fresh.evals


def test_checkpointing_needs_out_dir(digits: Digits) -> None:
    with pytest.raises(ValueError, match="out_dir"):
        lrtune.train(digits, optimizer={"name": "adam"}, steps=5, checkpoint_every=2)


class _InterruptAt:
    """Digits, but the process receives SIGINT while computing the loss of update ``at``."""

    def __init__(self, inner: Digits, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0
        self.name, self.step_hint, self.metric, self.higher_is_better = "digits", 60, "valid_accuracy", True

    def build_model(self, seed: int) -> torch.nn.Module:
        return self.inner.build_model(seed)

    def train_batches(self, batch_size: int, seed: int):  # type: ignore[no-untyped-def]
        return self.inner.train_batches(batch_size, seed)

    def loss(self, model: torch.nn.Module, batch: object) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner.loss(model, batch)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return self.inner.evaluate(model)


def test_sigint_saves_and_stops_then_resumes_identically(digits: Digits, tmp_path: Path) -> None:
    full = _run(digits, tmp_path / "full", 60)
    with default_sigint():
        stopped = _run(_InterruptAt(digits, 23), tmp_path / "cut", 60)  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    assert stopped.status == "interrupted" and stopped.steps == 23
    assert (tmp_path / "cut" / "checkpoints" / "step-00000023.pt").is_file()
    resumed = _run(digits, tmp_path / "cut", 60, resume=True)
    assert resumed.status == "completed"
    assert resumed.evals == full.evals


def test_config_records_plain_workload_options_only(digits: Digits, tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Wrapped(Digits):
        model_factory: object = None  # not data: left out of config.json
        note: str = "x"

    record = lrtune.train(
        Wrapped(hidden=16, model_factory=object(), note="y"),
        optimizer={"name": "sgd", "lr": 0.1},
        steps=2,
        out_dir=tmp_path,
    )
    assert record.config["workload_options"] == {"hidden": 16, "note": "y"}
    assert json.loads((tmp_path / "config.json").read_text())["workload_options"] == {"hidden": 16, "note": "y"}


def test_a_branch_starts_from_a_checkpoint_with_its_own_schedule(digits: Digits, tmp_path: Path) -> None:
    """init_from: the same run up to the checkpoint, then the branch's own schedule (here: decayed to 0 sooner)."""
    main = warmup_linear_decay(5, 40)
    full = lrtune.train(
        digits,
        optimizer={"name": "adam", "lr": 1e-2},
        schedule=main,
        steps=40,
        checkpoint_every=20,
        out_dir=tmp_path / "a",
    )
    branch_schedule = lrtune.schedules.join(
        [main, lrtune.schedules.scale(lrtune.schedules.linear_decay(5), main.at(20))], [20]
    )
    branch = lrtune.train(
        digits,
        optimizer={"name": "adam", "lr": 1e-2},
        schedule=branch_schedule,
        steps=25,
        out_dir=tmp_path / "b",
        init_from=tmp_path / "a" / "checkpoints" / "step-00000020.pt",
    )
    assert branch.status == "completed" and branch.steps == 25 and full.status == "completed"
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    updates = [x for x in lines if "loss" in x]
    assert [x["step"] for x in updates] == list(range(21, 26))  # only the branch's own updates
    lrs = [x["lr"] for x in updates]
    assert lrs == pytest.approx([1e-2 * branch_schedule.at(t) for t in range(21, 26)])
    first = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert updates[0]["loss"] == first[20]["loss"]  # update 21 sees the same model and batch as the main run's
    assert json.loads((tmp_path / "b" / "config.json").read_text())["init_from"].endswith("step-00000020.pt")
    with pytest.raises(ValueError, match="cannot also resume"):
        lrtune.train(
            digits,
            optimizer={"name": "adam"},
            steps=25,
            out_dir=tmp_path / "c",
            resume=True,
            init_from=tmp_path / "a" / "checkpoints" / "step-00000020.pt",
        )
    with pytest.raises(FileNotFoundError, match="not a checkpoint file"):
        lrtune.train(digits, optimizer={"name": "adam"}, steps=25, init_from=tmp_path / "nothing.pt")
