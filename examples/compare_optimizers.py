"""Compare SGD + clipping, Adam, Adam + warm-up and RAdam on a small post-LN Transformer language model.

The data is real English text that ships with every CPython (``pydoc_data.topics``, ~465 KB), modelled at the
character level, so the example runs offline with nothing but torch installed. Every recipe trains the same
model from the same initialisation on the same batches; the table reports validation loss in bits per
character (lower is better) and whether the run diverged.

Run: python examples/compare_optimizers.py            (about 2.5 minutes on 2 CPU cores)
     python examples/compare_optimizers.py --steps 60 (a quick look)
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pydoc_data.topics import topics

import torch
from torch import nn

import lrtune
from lrtune import schedules

# -- config (flat, nanoGPT style) -------------------------------------------------------------------------
CONTEXT = 64  # characters per sequence
BATCH = 32  # sequences per step
D_MODEL, HEADS, LAYERS, FFN = 128, 4, 2, 512
WARMUP_FRACTION = 0.1  # Adam + warm-up: linear warm-up over the first 10 % of the steps, then linear decay
SEED = 0


def load_text() -> tuple[torch.Tensor, torch.Tensor, int]:
    text = "\n".join(topics[k] for k in sorted(topics))
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(vocab)


class CharTransformer(nn.Module):
    """A decoder-only Transformer with post-LayerNorm blocks (the original Transformer's placement)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, D_MODEL)
        self.pos = nn.Parameter(torch.randn(CONTEXT, D_MODEL) * 0.02)
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FFN, dropout=0.0, batch_first=True, norm_first=False)
        self.blocks = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(CONTEXT), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) * math.sqrt(D_MODEL) + self.pos
        return self.head(self.blocks(h, mask=self.mask, is_causal=True))


def batches(data: torch.Tensor, steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        start = torch.randint(0, len(data) - CONTEXT - 1, (BATCH,), generator=g)
        x = torch.stack([data[s : s + CONTEXT] for s in start])
        y = torch.stack([data[s + 1 : s + CONTEXT + 1] for s in start])
        out.append((x, y))
    return out


def adam(ps: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return lrtune.Adam(ps, lr, betas=(0.9, 0.98))


def radam(ps: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return lrtune.RAdam(ps, lr, betas=(0.9, 0.98))


def sgd_clip(ps: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return lrtune.SGD(ps, lr, momentum=0.9, max_grad_norm=1.0)


# (name, peak lr, optimizer, schedule): schedule "constant", "decay" (linear to 0) or "warmup+decay".
Recipe = tuple[str, float, Callable[[list[nn.Parameter], float], torch.optim.Optimizer], str]
RECIPES: list[Recipe] = [
    ("SGD + momentum + clip 1.0", 0.3, sgd_clip, "decay"),
    ("Adam, constant LR", 3e-3, adam, "constant"),
    ("Adam, constant LR", 1e-2, adam, "constant"),
    ("Adam + warm-up + linear decay", 3e-3, adam, "warmup+decay"),
    ("Adam + warm-up + linear decay", 1e-2, adam, "warmup+decay"),
    ("RAdam, linear decay (no warm-up)", 3e-3, radam, "decay"),
    ("RAdam, linear decay (no warm-up)", 1e-2, radam, "decay"),
]


@torch.no_grad()
def evaluate(model: nn.Module, valid: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    losses = [nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in valid]
    return sum(losses) / len(losses) / math.log(2)


def run(recipe: Recipe, vocab: int, train: list, valid: list, steps: int) -> tuple[float, bool, float]:
    _, lr, make, schedule = recipe
    torch.manual_seed(SEED)
    model = CharTransformer(vocab)
    opt = make(list(model.parameters()), lr)
    warmup = int(WARMUP_FRACTION * steps) if schedule == "warmup+decay" else 0
    shape = schedules.constant() if schedule == "constant" else schedules.warmup_linear_decay(warmup, steps)
    sched = schedules.LRScheduler(opt, shape)  # the t-th update uses lr · shape(t)
    start = time.perf_counter()
    for x, y in train:
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        if not torch.isfinite(loss):
            return float("nan"), True, time.perf_counter() - start
        opt.zero_grad(set_to_none=True)
        loss.backward()
        try:
            opt.step()
        except FloatingPointError:
            return float("nan"), True, time.perf_counter() - start
        sched.step()
    return evaluate(model, valid), False, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="optimizer updates per run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train_ids, valid_ids, vocab = load_text()
    train, valid = batches(train_ids, args.steps, SEED), batches(valid_ids, 20, SEED + 1)
    print(
        f"char LM on pydoc_data.topics: {len(train_ids):,} train / {len(valid_ids):,} valid characters, "
        f"vocab {vocab}; post-LN Transformer d={D_MODEL}, {LAYERS} layers; {args.steps} updates per run\n"
    )
    rows = []
    for recipe in RECIPES:
        bpc, diverged, seconds = run(recipe, vocab, train, valid, args.steps)
        rows.append((recipe[0], recipe[1], bpc, diverged, seconds))
        status = "diverged" if diverged else f"{bpc:.3f} bits/char"
        print(f"  {recipe[0]:<32} lr={recipe[1]:<7g} {status:>16}   ({seconds:.0f} s)", flush=True)
    best = min((r for r in rows if not r[3]), key=lambda r: r[2])
    print(f"\nbest: {best[0]} at lr={best[1]:g} with {best[2]:.3f} bits/char on the validation text")


if __name__ == "__main__":
    main()
