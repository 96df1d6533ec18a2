"""Training throughput: ``lrtune.train`` vs a minimal hand-written PyTorch loop, same model, batches and optimizer.

Both loops train the ``translation-de-en`` ``tiny`` Transformer (post-LN, dropout 0.1) with lrtune's Adam
(β = 0.9, 0.98) and a linear warm-up + decay, on the same pre-built list of batches of ~``--batch-tokens``
target tokens, from the same seed. The hand loop is what one would write without lrtune::

    for src, tgt in batches:
        loss = workload.loss(model, (src, tgt))
        optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step(); scheduler.step()

``lrtune.train`` adds its bookkeeping (loss read-back for the divergence check, gradient-norm read-back, a
metrics line per update, the scheduler's update counting). Each round times ``--steps`` updates after
``--warmup`` untimed ones (the trainer's time is taken from its per-update callback, so its final evaluation is
excluded); rounds alternate between the two loops, and the report gives each loop's median target tokens per
second and their ratio.

Usage: python benchmarks/trainer_throughput.py [--rounds 3] [--steps 40] [--warmup 5] [--batch-tokens 2000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from typing import Any

import torch
from _replay import Replay  # benchmarks/ is on sys.path when a script here runs

import lrtune
from lrtune import schedules as S
from lrtune.workloads import Translation

OPTIMIZER = {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.98)}
SEED = 0


def tokens(batches: list[Any]) -> int:
    return sum(Translation.loss_weight(b) for b in batches)


def hand_loop(workload: Replay, total: int, warmup: int) -> float:
    """Seconds for the updates after ``warmup``."""
    model = workload.build_model(SEED)
    optimizer = lrtune.Adam(model.parameters(), lr=OPTIMIZER["lr"], betas=OPTIMIZER["betas"])
    schedule = S.warmup_linear_decay(warmup_steps=total // 10, total_steps=total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: schedule(t + 1))
    model.train()
    start = 0.0
    for i, batch in enumerate(workload.batches):
        if i == warmup:
            start = time.perf_counter()
        loss = workload.loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return time.perf_counter() - start


def lrtune_loop(workload: Replay, total: int, warmup: int) -> float:
    """Seconds from the end of update ``warmup`` to the end of update ``total`` (per-update callback)."""
    stamps: dict[int, float] = {}

    def stamp(line: dict[str, Any]) -> None:
        if "loss" in line:
            stamps[line["step"]] = time.perf_counter()

    lrtune.train(
        workload,
        optimizer=OPTIMIZER,
        schedule={"name": "warmup_linear_decay", "warmup_steps": total // 10, "total_steps": total},
        steps=total,
        seed=SEED,
        eval_every=total,
        callback=stamp,
    )
    return stamps[total] - stamps[warmup]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="timed updates per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first")
    parser.add_argument("--batch-tokens", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    inner = Translation(preset="tiny")
    total = args.warmup + args.steps
    batches = list(itertools.islice(inner.train_batches(args.batch_tokens, SEED), total))
    workload = Replay(inner, batches)
    timed_tokens = tokens(batches[args.warmup :])
    rates: dict[str, list[float]] = {"hand-written loop": [], "lrtune.train": []}
    for r in range(args.rounds):
        for name, loop in (("hand-written loop", hand_loop), ("lrtune.train", lrtune_loop)):
            seconds = loop(workload, total, args.warmup)
            rates[name].append(timed_tokens / seconds)
            print(f"round {r + 1}: {name}: {timed_tokens / seconds:,.0f} tokens/s", flush=True)
    hand, ours = statistics.median(rates["hand-written loop"]), statistics.median(rates["lrtune.train"])
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"\nmachine: {machine}")
    print(
        f"{args.steps} timed updates of {timed_tokens / args.steps:,.0f} target tokens on average, {args.rounds} rounds"
    )
    print("| loop | target tokens/s (median) | rounds |")
    print("|---|---:|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
    print(f"\nlrtune.train / hand-written loop: {ours / hand:.3f}×")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rates": rates, "ratio": ours / hand, "steps": args.steps}, f, indent=2)


if __name__ == "__main__":
    main()
