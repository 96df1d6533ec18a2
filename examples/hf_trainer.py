"""lrtune's optimizer and LR schedule inside Hugging Face's ``Trainer``.

A tiny GPT-2, randomly initialised from a config, learns CPython's own documentation (``pydoc_data.topics``) byte
by byte: no tokenizer, no weights and no data set are downloaded. What lrtune adds to a ``Trainer`` run:

* ``Trainer(..., optimizers=(optimizer, scheduler))`` with any lrtune optimizer (RAdam needs no warm-up) and any
  lrtune schedule (warm-up + decay, WSD, cosine, noam ...) through ``lrtune.schedules.LRScheduler``;
* the t-th optimizer update uses ``peak_lr · schedule(t)``, counted in *applied* optimizer updates: with
  ``gradient_accumulation_steps`` the schedule moves once per update, never per micro-batch;
* ``resume_from_checkpoint`` restores the schedule's position with the optimizer (the scheduler's state dict
  loads with ``torch.load(weights_only=True)``, as the Trainer loads it): the resumed run's losses are the
  uninterrupted run's (``tests/test_hf_trainer.py`` checks all three).

Convention: lrtune's first update uses schedule(1) (a warm-up starts at peak/WARMUP); Hugging Face's own
schedulers give update t the value λ(t − 1), so their first update has LR 0. ``lrtune.schedules.shift(s, 1)``
reproduces theirs.

Run: pip install lrtune transformers accelerate
     python examples/hf_trainer.py            (300 updates, about a minute on 2 CPU cores)
     python examples/hf_trainer.py --quick    (a few seconds)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pydoc_data.topics import topics
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub: fail rather than download

import torch
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, PrinterCallback, Trainer, TrainingArguments

import lrtune
from lrtune import schedules

# -- config (flat, nanoGPT style) -------------------------------------------------------------------------
BLOCK = 64  # bytes per sequence
N_LAYER, N_HEAD, N_EMBD = 2, 2, 64  # ~0.1 M parameters: a model for a CPU and a minute
BATCH_SIZE = 16  # sequences per micro-batch
GRAD_ACCUM = 2  # micro-batches per optimizer update: 32 sequences (2,048 bytes) per update
STEPS = 300  # optimizer updates
OPTIMIZER = "adamw"  # "adamw" (with WARMUP) or "radam" (no warm-up: its rectification is one)
PEAK_LR = 3e-3  # the LR after the warm-up; lrtune auto or lrtune find-lr on your own model tell you yours
BETAS = (0.9, 0.98)  # β2 = 0.98, the Transformer default (Adam's untuned warm-up is then 2/(1 − β2) = 100)
WEIGHT_DECAY = 0.1  # on matrices and embeddings only, as nanoGPT does
WARMUP = 30  # linear warm-up updates (AdamW), then linear decay to 0 at STEPS
SEED = 0
QUICK = {"STEPS": 12, "WARMUP": 4}


# -- data: byte-level ids of text that ships with Python ----------------------------------------------------
class ByteBlocks(Dataset[dict[str, torch.Tensor]]):
    """Consecutive ``BLOCK``-byte pieces of ``data``; a causal LM's labels are its inputs (the model shifts them)."""

    def __init__(self, data: bytes, block: int = BLOCK) -> None:
        self.ids = torch.tensor(list(data[: len(data) // block * block]), dtype=torch.long).view(-1, block)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def text_splits(valid_fraction: float = 0.1) -> tuple[ByteBlocks, ByteBlocks]:
    data = "\n".join(topics[k] for k in sorted(topics)).encode("utf-8")
    cut = int(len(data) * (1 - valid_fraction))
    return ByteBlocks(data[:cut]), ByteBlocks(data[cut:])


# -- model, optimizer and schedule ---------------------------------------------------------------------------
def build_model(seed: int = SEED) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=256,  # bytes
        n_positions=BLOCK,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        bos_token_id=None,  # GPT-2's are ids of its own tokenizer (50256); bytes need none
        eos_token_id=None,
    )
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # what transformers would pick, said explicitly (else it warns)
    return model


def build_optimizer(
    model: torch.nn.Module, *, steps: int = STEPS, warmup: int = WARMUP, optimizer: str = OPTIMIZER
) -> tuple[torch.optim.Optimizer, schedules.LRScheduler]:
    """An lrtune optimizer and its schedule, for ``Trainer(optimizers=...)``."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},  # matrices, embeddings
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases, LayerNorm gains
    ]
    if optimizer == "adamw":
        opt: torch.optim.Optimizer = lrtune.AdamW(groups, lr=PEAK_LR, betas=BETAS)
        schedule = schedules.warmup_linear_decay(warmup, steps)
    elif optimizer == "radam":
        opt = lrtune.RAdam(groups, lr=PEAK_LR, betas=BETAS, decoupled_weight_decay=True)
        schedule = schedules.linear_decay(steps)
    else:
        raise ValueError(f"optimizer must be 'adamw' or 'radam', got {optimizer!r}")
    return opt, schedules.LRScheduler(opt, schedule)


def build_trainer(
    output_dir: str,
    *,
    steps: int = STEPS,
    warmup: int = WARMUP,
    grad_accum: int = GRAD_ACCUM,
    train_data: Dataset[Any] | None = None,
    valid_data: Dataset[Any] | None = None,
    save_steps: int | None = None,
    seed: int = SEED,
    **arguments: Any,
) -> Trainer:
    """A ``Trainer`` for the tiny GPT-2 with lrtune's optimizer and schedule (``trainer.optimizer``,
    ``trainer.lr_scheduler``); ``arguments`` are more ``TrainingArguments``."""
    if train_data is None or valid_data is None:
        train_split, valid_split = text_splits()
        train_data, valid_data = train_data or train_split, valid_data or valid_split
    model = build_model(seed)
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=steps,  # optimizer updates, as lrtune counts them
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=64,
        gradient_accumulation_steps=grad_accum,
        logging_steps=1,  # a log line (loss, LR, gradient norm) after every update
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        max_grad_norm=1.0,
        seed=seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        **arguments,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=valid_data,
        optimizers=build_optimizer(model, steps=steps, warmup=warmup),
    )
    trainer.remove_callback(PrinterCallback)  # logs stay in trainer.state.log_history
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few updates (a few seconds)")
    args = parser.parse_args()
    steps, warmup = (QUICK["STEPS"], QUICK["WARMUP"]) if args.quick else (STEPS, WARMUP)
    train_data, valid_data = text_splits()
    if args.quick:
        valid_data.ids = valid_data.ids[:64]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(tmp, steps=steps, warmup=warmup, train_data=train_data, valid_data=valid_data)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        print(f"GPT-2, {n_params / 1e6:.2f} M parameters; {len(train_data)} training sequences of {BLOCK} bytes")
        warm = f"warm-up {warmup}, " if OPTIMIZER == "adamw" else ""
        print(f"{OPTIMIZER}, peak LR {PEAK_LR}, {warm}linear decay to 0 at {steps}; {GRAD_ACCUM} micro-batches/update")
        before = trainer.evaluate()["eval_loss"]
        trainer.train()
        after = trainer.evaluate()["eval_loss"]
    logs = [line for line in trainer.state.log_history if "learning_rate" in line]
    for line in logs[:: max(1, len(logs) // 6)] + logs[-1:]:
        print(f"  update {line['step']:4d}: lr {line['learning_rate']:.2e}, loss {line['loss']:.3f}")
    applied = trainer.lr_scheduler.applied_updates
    print(f"{trainer.state.global_step} updates, the schedule counted {applied}")
    print(f"validation loss {before:.3f} -> {after:.3f} nats/byte ({after / torch.log(torch.tensor(2.0)):.2f} bits)")


if __name__ == "__main__":
    main()
