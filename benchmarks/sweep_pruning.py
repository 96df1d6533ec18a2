"""Pruning and sweep overhead: the same sweep on ``translation-de-en`` (tiny) unpruned and with pruners.

One search space — the recipes SGD + momentum + clipping, Adam, Adam + warm-up (10 % of the run, then linear
decay) and RAdam, each at five LRs spaced half a decade apart and centred on the recipe's LR range test
suggestion (``steepest``) — swept on the grid sampler (the same trials in the same order whatever is pruned),
``--steps`` updates per trial of ``--batch-tokens`` target tokens, ``--evals`` validation-loss evaluations per
trial (the pruning points; BLEU on the final one). Each pruner runs its own study from the same seed: ``asha``,
``median`` and ``hyperband`` are Optuna's (asynchronous) pruners, ``sh`` is synchronous successive halving (every
trial to the first rung, then the best third continue from their checkpoints); ``NAME:restart``
prunes on shorter runs whose whole schedule is compressed to the rung's length (``rungs="restart"``) instead of
on a trial's own evaluations in the middle of its schedule.

Reported per pruner: the best trial (recipe, LR, valid loss), the training compute (optimizer updates summed over
trials, and seconds), the compute ratio to the unpruned sweep, and the sweep machinery's overhead per trial: the
sweep's wall time, less the range tests, the trials' training time (inside ``lrtune.train``) and the final
write-out of results and plots, divided by the trials — as a share of a trial's mean training time.

Usage: python benchmarks/sweep_pruning.py [--steps 300] [--batch-tokens 1000] [--evals 8] [--json out.json]
       [--pruners none asha ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from lrtune.tune import run_sweep, write_results

RECIPES = ["sgd_clip", "adam", "adam_warmup", "radam"]
RELATIVE_LRS = [10**e for e in (-1.0, -0.5, 0.0, 0.5, 1.0)]  # × the range test's suggestion (centre 1)


def sweep(variant: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    pruner, _, rungs = variant.partition(":")
    space = {"optimizer": RECIPES, "lr": RELATIVE_LRS}
    began = time.perf_counter()
    study = run_sweep(
        "translation-de-en",
        space,
        trials=len(RECIPES) * len(RELATIVE_LRS),
        out=out,
        sampler="grid",
        pruner=pruner,
        seed=0,
        steps=args.steps,
        batch_size=args.batch_tokens,
        evals_per_trial=args.evals,
        workload_options={"bleu_pairs": 100},
        lr_from_range_test="steepest",
        range_test_steps=100,
        rungs=rungs or "continue",
    )
    wall = time.perf_counter() - began
    loaded = optuna.load_study(study_name="lrtune", storage=f"sqlite:///{out / 'lrtune.db'}")
    began = time.perf_counter()
    write_results(loaded, out)
    write_seconds = time.perf_counter() - began
    range_seconds = float(study.user_attrs["range_test"]["seconds"])
    trials = study.trials
    train = [float(t.user_attrs["train_seconds"]) for t in trials]
    finished = [t for t in trials if t.value is not None and math.isfinite(t.value)]
    best = min(finished, key=lambda t: t.value)
    overhead = (wall - range_seconds - sum(train) - write_seconds) / len(trials)
    return {
        "pruner": variant,
        "trials": len(trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "updates": sum(int(t.user_attrs["updates"]) for t in trials),
        "train_seconds": sum(train),
        "wall_seconds": wall,
        "range_test_seconds": range_seconds,
        "write_results_seconds": write_seconds,
        "overhead_per_trial_seconds": overhead,
        "overhead_percent_of_trial": 100 * overhead / (sum(train) / len(trials)),
        "best": {
            "recipe": best.user_attrs["config"]["recipe"],
            "lr": best.user_attrs["config"]["optimizer"]["lr"],
            "valid_loss": best.value,
            "bleu": best.user_attrs["final_metrics"].get("bleu"),
            "trial": best.number,
        },
        "suggestions": study.user_attrs["range_test"]["lr"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-tokens", type=int, default=1000)
    parser.add_argument("--evals", type=int, default=8)
    parser.add_argument(
        "--pruners",
        nargs="+",
        default=["none", "sh", "asha", "median"],
        help="pruners, NAME or NAME:restart (rungs are shorter runs with their schedule compressed)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep each sweep's study and results under DIR/NAME")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        for pruner in args.pruners:
            rows.append(sweep(pruner, args, root / pruner.replace(":", "-")))
            print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["pruner"] == "none"), None)
    print(
        f"\ntranslation-de-en tiny, {args.steps} updates × {args.batch_tokens} tokens per trial, grid of "
        f"{len(RECIPES)} recipes × {len(RELATIVE_LRS)} LRs, {args.evals} evaluations per trial"
    )
    print("| pruner | pruned | updates | less compute | train s | best (recipe, lr, valid loss) | overhead/trial |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{base['updates'] / r['updates']:.2f}×" if base else "-"
        b = r["best"]
        print(
            f"| {r['pruner']} | {r['pruned']}/{r['trials']} | {r['updates']} | {ratio} | {r['train_seconds']:.0f} | "
            f"{b['recipe']}, {b['lr']:.3g}, {b['valid_loss']:.4f} | {r['overhead_per_trial_seconds']:.3f} s "
            f"({r['overhead_percent_of_trial']:.2f} %) |"
        )
    if args.json is not None:
        machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
        result = {"settings": vars(args) | {"json": str(args.json)}, "machine": machine, "rows": rows}
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
