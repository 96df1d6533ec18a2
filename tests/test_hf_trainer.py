"""lrtune's optimizer and schedule inside Hugging Face's Trainer (examples/hf_trainer.py): the LR of every update,
gradient accumulation, and resume_from_checkpoint. Skipped when transformers (a dev dependency) is missing."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may download
pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")

from lrtune import schedules  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hf_trainer.py"
# 96 training sequences in micro-batches of 16: 6 micro-batches per epoch, so every run below crosses epochs.
TRAIN_BLOCKS, VALID_BLOCKS = 96, 32


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hf_trainer_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(example: ModuleType) -> dict[str, Any]:
    train, valid = example.text_splits()
    train.ids, valid.ids = train.ids[:TRAIN_BLOCKS], valid.ids[:VALID_BLOCKS]
    return {"train_data": train, "valid_data": valid}


class Recorder(transformers.TrainerCallback):  # type: ignore[misc]
    """The LR of every param group as each optimizer update is about to be applied, and the model's forwards."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.forwards = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        model.register_forward_pre_hook(lambda module, inputs: setattr(self, "forwards", self.forwards + 1))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        self.lrs.append([group["lr"] for group in optimizer.param_groups])


def _train(trainer: Any, **kwargs: Any) -> Recorder:
    recorder = Recorder()
    trainer.add_callback(recorder)
    trainer.train(**kwargs)
    return recorder


def _logged(trainer: Any, key: str) -> dict[int, float]:
    return {line["step"]: line[key] for line in trainer.state.log_history if key in line}


def test_every_update_uses_the_lrtune_schedule(example: ModuleType, data: dict[str, Any], tmp_path: Path) -> None:
    n, w, peak = 10, 4, example.PEAK_LR
    trainer = example.build_trainer(str(tmp_path / "lrtune"), steps=n, warmup=w, grad_accum=1, **data)
    used = _train(trainer).lrs
    schedule = schedules.warmup_linear_decay(w, n)
    assert used == [[peak * schedule(t)] * 2 for t in range(1, n + 1)]  # both param groups, bit for bit
    closed_form = [peak * (t / w if t <= w else (n - t) / (n - w)) for t in range(1, n + 1)]
    assert all(math.isclose(u[0], c, rel_tol=1e-12, abs_tol=1e-18) for u, c in zip(used, closed_form, strict=True))
    assert list(_logged(trainer, "learning_rate").values()) == [u[0] for u in used]  # what the Trainer logs

    # Hugging Face's own linear schedule gives update t the value λ(t − 1) (its first update has LR 0):
    # lrtune's sequence one update later, which lrtune's shift(s, 1) reproduces.
    hf_args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=n,
        per_device_train_batch_size=example.BATCH_SIZE,
        learning_rate=peak,
        lr_scheduler_type="linear",
        warmup_steps=w,
        save_strategy="no",
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    hf = transformers.Trainer(model=example.build_model(), args=hf_args, train_dataset=data["train_data"])
    hf_used = [lrs[0] for lrs in _train(hf).lrs]
    assert hf_used[0] == 0.0
    assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(hf_used[1:], closed_form[:-1], strict=True))
    shifted = schedules.shift(schedule, 1)
    assert all(math.isclose(a, peak * shifted(t), abs_tol=1e-15) for t, a in enumerate(hf_used, start=1))


def test_gradient_accumulation_moves_the_schedule_once_per_update(
    example: ModuleType, data: dict[str, Any], tmp_path: Path
) -> None:
    n, w, k, peak = 6, 2, 3, example.PEAK_LR
    trainer = example.build_trainer(str(tmp_path), steps=n, warmup=w, grad_accum=k, **data)
    recorder = _train(trainer)
    schedule = schedules.warmup_linear_decay(w, n)
    assert recorder.forwards == n * k  # n updates of k micro-batches each
    assert [lrs[0] for lrs in recorder.lrs] == [peak * schedule(t) for t in range(1, n + 1)]
    assert trainer.state.global_step == trainer.lr_scheduler.applied_updates == n
    assert all(state["step"] == n for state in trainer.optimizer.state.values())


def test_resume_from_checkpoint_gives_the_uninterrupted_run(
    example: ModuleType, data: dict[str, Any], tmp_path: Path
) -> None:
    """Dropout on, 2 micro-batches per update, 3 updates per epoch: resumed from update 4 (inside the second
    epoch), the losses, gradient norms, LRs and final weights equal the uninterrupted run's exactly."""
    settings: dict[str, Any] = {"steps": 10, "warmup": 3, "grad_accum": 2, "save_steps": 4, **data}
    full = example.build_trainer(str(tmp_path / "full"), **settings)
    _train(full)
    resumed = example.build_trainer(str(tmp_path / "resumed"), **settings)
    recorder = _train(resumed, resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert len(recorder.lrs) == 6 and resumed.lr_scheduler.applied_updates == 10
    for key in ("loss", "grad_norm", "learning_rate"):  # the resumed log also holds updates 1-4, from the checkpoint
        after = [{step: v for step, v in _logged(t, key).items() if step > 4} for t in (full, resumed)]
        assert list(after[1]) == [5, 6, 7, 8, 9, 10] and after[1] == after[0], key
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_example_runs(example: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(sys, "argv", ["hf_trainer.py", "--quick"])
    example.main()
    out = capsys.readouterr().out
    assert "12 updates, the schedule counted 12" in out
    before, after = (float(x) for x in out.split("validation loss ")[1].split(" nats")[0].split(" -> "))
    assert after < before
