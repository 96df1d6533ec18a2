"""``lrtune auto`` against a grid on ``translation-de-en`` (tiny): final validation loss and compute.

The grid: the study's six recipes (SGD + momentum + clipping, Adam with and without warm-up, RAdam with and
without warm-up, AlgoPerf's AdamW + cosine) × ``--lrs`` peak LRs half a decade apart around each recipe's
centre LR, one seed, ``--steps`` updates of ``--batch-tokens`` target tokens each (a grid sweep through
:func:`lrtune.tune.run_sweep`). ``auto``: an LR range test (100 updates),
``--optimizer`` Adam with the untuned warm-up 2/(1 − β2) for β2 = 0.98 or RAdam without one, linear decay,
successive halving among 4 candidate LRs a quarter of a decade apart, compared after the (implicit) warm-up,
then the chosen config trained for the whole budget. Compute is optimizer updates summed over every run each
method needed (for auto: range test + candidates + the final run).

Usage: python benchmarks/auto_vs_grid.py [--steps 300] [--batch-tokens 1000] [--lrs 5] [--optimizer adam|radam]
       [--out DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import optuna
import torch

from lrtune.study import LR_CENTRES, auto
from lrtune.tune import run_sweep

RECIPES = ["sgd_clip", "adam", "adam_warmup", "radam", "radam_warmup", "algoperf"]
OPTIONS = {"bleu_pairs": 100}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-tokens", type=int, default=1000)
    parser.add_argument("--lrs", type=int, default=5, help="grid LRs per recipe, half a decade apart")
    parser.add_argument("--optimizer", choices=("adam", "radam"), default="adam", help="auto's optimizer")
    parser.add_argument("--out", type=Path, default=Path("auto_vs_grid"), help="the grid's study (resumable)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    factors = [10 ** ((k - (args.lrs - 1) / 2) / 2) for k in range(args.lrs)]
    space = {"optimizer": RECIPES, "lr": factors}
    began = time.perf_counter()
    study = run_sweep(
        "translation-de-en",
        space,
        trials=len(RECIPES) * len(factors),
        out=args.out,
        sampler="grid",
        pruner="none",
        steps=args.steps,
        batch_size=args.batch_tokens,
        evals_per_trial=4,
        workload_options=OPTIONS,
        lr_centres={r: LR_CENTRES[r] for r in RECIPES},
    )
    grid_seconds = time.perf_counter() - began
    finished = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    best = min(finished, key=lambda t: t.value)
    grid_updates = sum(int(t.user_attrs["updates"]) for t in study.trials)
    began = time.perf_counter()
    result = auto(
        "translation-de-en",
        steps=args.steps,
        batch_size=args.batch_tokens,
        optimizer=args.optimizer,
        workload_options=OPTIONS,
        train_final=True,
    )
    auto_seconds = time.perf_counter() - began
    assert result.final is not None
    auto_loss = result.final["metrics"]["valid_loss"]
    auto_updates = result.updates + args.steps
    row = {
        "grid": {
            "runs": sum("duplicate_of" not in t.user_attrs for t in study.trials),
            "updates": grid_updates,
            "seconds": grid_seconds,
            "best_valid_loss": best.value,
            "best_bleu": best.user_attrs["final_metrics"].get("bleu"),
            "best_recipe": best.user_attrs["config"]["recipe"],
            "best_lr": best.user_attrs["config"]["optimizer"]["lr"],
        },
        "auto": {
            "updates": auto_updates,
            "seconds": auto_seconds,
            "valid_loss": auto_loss,
            "bleu": result.final["metrics"].get("bleu"),
            "optimizer": args.optimizer,
            "lr": result.config["optimizer"]["lr"],
            "warmup_steps": result.config["schedule"]["warmup_steps"],
            "suggestions": result.suggestions,
            "candidates": result.candidates,
        },
        "valid_loss_gap_percent": 100 * (auto_loss - best.value) / best.value,
        "compute_ratio_percent": 100 * auto_updates / grid_updates,
    }
    print(json.dumps(row, indent=2, default=str))
    g, a = row["grid"], row["auto"]
    print("\n| | runs | updates | valid loss | BLEU | setting |\n|---|---|---|---|---|---|")
    print(
        f"| grid | {g['runs']} | {g['updates']} | {g['best_valid_loss']:.4f} | {g['best_bleu']:.2f} | "
        f"{g['best_recipe']}, lr {g['best_lr']:.3g} |"
    )
    print(
        f"| auto | range test + {len(a['candidates'])} candidates + final | {a['updates']} "
        f"({row['compute_ratio_percent']:.1f} %) | "
        f"{a['valid_loss']:.4f} "
        f"({row['valid_loss_gap_percent']:+.2f} %) | {a['bleu']:.2f} | {a['optimizer']}, lr {a['lr']:.3g}, warm-up "
        f"{a['warmup_steps']} |"
    )
    if args.json is not None:
        machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
        settings = vars(args) | {"json": str(args.json), "out": str(args.out)}
        args.json.write_text(json.dumps({"settings": settings, "machine": machine, **row}, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
