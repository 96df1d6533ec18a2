"""Does a setting chosen from short runs stay the right one for longer training? (short-horizon bias)

For a workload, every cell of the study's grid — its six recipes (SGD + momentum + clipping, Adam without and
with warm-up, RAdam without and with warm-up, AlgoPerf's AdamW + cosine) × ``--lrs`` peak LRs half a decade apart
(five over two decades by default, centred on the study's per-family LR) — is trained to completion at each
horizon T (``--horizons``, a factor of 4 apart, plus ``--extra`` ones such as 8× the quick preset's 50): the
same config with its whole schedule (warm-up 10 % of T, 5 % for AlgoPerf; decay to 0 at T) compressed to T
updates, one seed (``--second-seed`` also runs the shortest horizon's quick-preset cells with seed 1, for the
seeds' spread). Then, for every pair of horizons (short a, long b):

* Spearman's rank correlation of the cells' final validation losses (a diverged run ranks last),
* top-1 agreement (is the best cell at a the best at b?),
* regret: the loss at b of the cell picked at a, over the best loss at b, minus 1,

over all cells and within each recipe (its best LR); and the same regret for the quick preset's screening pick
(the best of its 18 cells at the shortest horizon, seed 0, as the preset screens). What the study answers after
training its finalists to the target is measured by ``study_transfer.py`` (``--cells`` replays it from this
benchmark's results file). The grid is centred on ``lrtune.study.LR_CENTRES`` (what the study uses on
translation; on other workloads the study centres its grid by range tests, which ``study_transfer.py`` runs).

Every run also records its validation loss ``--evals`` times along its schedule (from the first horizons of
the benchmark's first version on, only at the end), so that rankings in the middle of a long schedule (what
successive halving sees) can be compared with its end.

Resumable: every cell is a run directory under ``--out`` with checkpoints; a second invocation with the same
arguments continues where the first stopped (a killed process loses at most ``--checkpoint-every`` updates),
and ``--report`` only prints the tables from what is there. Results go to ``OUT/WORKLOAD/results.json``.
Runs on ``--device cuda`` when a GPU is there. Loss values do not depend on how busy the machine is: it can run
beside other work (only its seconds do).

Usage:
    python benchmarks/horizon_transfer.py --workload translation-de-en --horizons 100 400 1600 --extra 800
    python benchmarks/horizon_transfer.py --workload charlm-shakespeare --horizons 100 400 1600 --extra 800
    python benchmarks/horizon_transfer.py --workload digits --horizons 50 200 800 --extra 400
    python benchmarks/horizon_transfer.py --workload translation-de-en --report
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

import lrtune
from lrtune._json import write_json
from lrtune.study import LR_CENTRES
from lrtune.study._transfer import compare_horizons
from lrtune.tune import RECIPES
from lrtune.workloads import get_workload

STUDY_RECIPES = ["sgd_clip", "adam", "adam_warmup", "radam", "radam_warmup", "algoperf"]
#: The batch each workload's study uses: target tokens for translation (the quick preset's), sequences or rows.
BATCH = {"translation-de-en": 800, "charlm-shakespeare": 32, "digits": 64}
OPTIONS: dict[str, dict[str, Any]] = {"translation-de-en": {"bleu_pairs": 200}}
QUICK_FACTORS = (-1, 0, 1)  # the quick preset's LRs, in half decades from the centre

logger = logging.getLogger("horizon_transfer")


def cell_name(recipe: str, k: int, horizon: int, seed: int) -> str:
    return f"{recipe}_lr{k:+d}_T{horizon}_s{seed}"


def cell_config(recipe_name: str, lr: float, horizon: int, batch: int, seed: int) -> dict[str, Any]:
    """The run config the study gives this recipe at this LR and horizon (see lrtune.tune.suggest)."""
    recipe = RECIPES[recipe_name]
    warmup = max(1, round(recipe.warmup_fraction * horizon)) if recipe.warmup else 0
    return {
        "optimizer": {**recipe.optimizer, "lr": lr},
        "schedule": {"name": recipe.schedule, "warmup_steps": min(warmup, horizon - 1), "total_steps": horizon},
        "steps": horizon,
        "batch_size": batch,
        "seed": seed,
        "max_grad_norm": recipe.max_grad_norm,
    }


def run_cell(task: Any, run_dir: Path, config: dict[str, Any], device: str, every: int, evals: int) -> dict[str, Any]:
    """Train (or continue, or just read) one cell; its outcome."""
    outcome = run_dir / "run.json"
    if outcome.is_file():
        done = json.loads(outcome.read_text())
        if done["status"] in ("completed", "diverged"):
            return done
    resume = any((run_dir / "checkpoints").glob("step-*.pt"))
    horizon = config["steps"]
    record = lrtune.train(
        task,
        **config,
        eval_at=sorted({max(1, round(horizon * k / evals)) for k in range(1, evals + 1)}),
        out_dir=run_dir,
        checkpoint_every=every,
        resume=resume,
        overwrite=not resume,
        device=device,
    )
    if record.status == "interrupted":
        raise KeyboardInterrupt
    return json.loads(outcome.read_text())


def loss_of(outcome: dict[str, Any]) -> float:
    value = outcome.get("final_metrics", {}).get("valid_loss")
    if outcome.get("status") != "completed" or value is None or not math.isfinite(value):
        return math.inf
    return float(value)


def compare(short: dict[Any, float], long: dict[Any, float]) -> dict[str, Any]:
    """lrtune's measures (rank correlation, top-1 agreement, regret), cells as lists for JSON."""
    out = compare_horizons(short, long)
    for key in ("pick", "best"):
        out[key] = list(out[key]) if isinstance(out[key], tuple) else out[key]
    return out


def analyse(
    losses: dict[tuple[str, int, int], float], horizons: list[int], quick: dict[tuple[str, int], float]
) -> dict[str, Any]:
    """Every pair of horizons: overall and per recipe; the quick preset's screening pick (at the shortest)."""
    out: dict[str, Any] = {"pairs": {}}
    for a, b in itertools.combinations(sorted(horizons), 2):
        at_a = {(r, k): v for (r, k, t), v in losses.items() if t == a}
        at_b = {(r, k): v for (r, k, t), v in losses.items() if t == b}
        if not at_a or set(at_a) != set(at_b):
            continue
        pair: dict[str, Any] = {"overall": compare(at_a, at_b), "recipes": {}}
        for recipe in sorted({r for r, _ in at_a}):
            mine_a = {k: v for (r, k), v in at_a.items() if r == recipe}
            mine_b = {k: v for (r, k), v in at_b.items() if r == recipe}
            pair["recipes"][recipe] = compare(mine_a, mine_b)
        if quick and a == min(horizons):
            pick = min(quick, key=quick.get)  # type: ignore[arg-type]
            best = min(at_b, key=at_b.get)  # type: ignore[arg-type]
            pair["quick_preset"] = {
                "pick": list(pick),
                "loss": at_b[pick],
                "best": list(best),
                "best_loss": at_b[best],
                "regret": at_b[pick] / at_b[best] - 1,
            }
        out["pairs"][f"{a}->{b}"] = pair
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True, choices=sorted(BATCH))
    parser.add_argument("--horizons", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--extra", type=int, nargs="*", default=[800], help="more horizons (e.g. 8× the shortest)")
    parser.add_argument("--lrs", type=int, default=5, help="peak LRs per recipe, half a decade apart")
    parser.add_argument("--recipes", nargs="+", default=STUDY_RECIPES, choices=STUDY_RECIPES)
    parser.add_argument("--out", type=Path, default=Path("out/horizon_transfer"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument(
        "--evals", type=int, default=16, help="validation losses per run (mid-schedule rankings are read from them)"
    )
    parser.add_argument(
        "--second-seed", action="store_true", help="also seed 1 for the quick preset's cells at the shortest horizon"
    )
    parser.add_argument("--report", action="store_true", help="only analyse the cells already there")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="a JSON file of finished cells (default benchmarks/results/horizon_transfer/WORKLOAD.json): read at "
        "the start (those cells are not trained again) and rewritten after every cell, so that the benchmark "
        "continues in another session or on another machine from the committed file",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("lrtune").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.out / args.workload
    root.mkdir(parents=True, exist_ok=True)
    horizons = sorted(set(args.horizons) | set(args.extra))
    half = (args.lrs - 1) / 2
    ks = [round(k - half) for k in range(args.lrs)] if args.lrs % 2 else [k - half for k in range(args.lrs)]
    ks = [int(k) for k in ks]
    batch = BATCH[args.workload]
    task = None if args.report else get_workload(args.workload, **OPTIONS.get(args.workload, {}))
    # cells: horizons in increasing order (short-horizon answers first), within each the quick preset's LRs first,
    # then (--second-seed) the quick preset's cells with seed 1 at the shortest horizon
    plan = [
        (r, k, t, 0)
        for t in horizons
        for quick in (True, False)
        for r in args.recipes
        for k in ks
        if (k in QUICK_FACTORS) == quick
    ]
    if args.second_seed:
        plan += [(r, k, min(horizons), 1) for r in args.recipes for k in QUICK_FACTORS if k in ks]
    results_file = (
        args.results or Path(__file__).resolve().parent / "results" / "horizon_transfer" / f"{args.workload}.json"
    )
    saved = json.loads(results_file.read_text())["outcomes"] if results_file.is_file() else {}
    outcomes: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    began = time.perf_counter()
    for i, (recipe, k, t, seed) in enumerate(plan, 1):
        run_dir = root / "cells" / cell_name(recipe, k, t, seed)
        lr = LR_CENTRES[recipe] * 10 ** (k / 2)
        if cell_name(recipe, k, t, seed) in saved:  # finished in an earlier session (the committed file)
            outcomes[(recipe, k, t, seed)] = saved[cell_name(recipe, k, t, seed)]
            continue
        if args.report:
            if (run_dir / "run.json").is_file():
                outcomes[(recipe, k, t, seed)] = json.loads((run_dir / "run.json").read_text())
            continue
        config = cell_config(recipe, lr, t, batch, seed)
        outcome = run_cell(task, run_dir, config, args.device, min(args.checkpoint_every, t), args.evals)
        outcomes[(recipe, k, t, seed)] = outcome
        saved[cell_name(recipe, k, t, seed)] = {
            key: outcome[key] for key in ("status", "steps", "final_metrics", "evals", "seconds")
        }
        results_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(results_file, {"workload": args.workload, "batch": batch, "outcomes": saved})
        logger.info(
            "[%d/%d] %s lr %.3g T %d seed %d: %s valid loss %.4f %s (%.0f s so far)",
            i,
            len(plan),
            recipe,
            lr,
            t,
            seed,
            outcome["status"],
            loss_of(outcome),
            {
                k2: round(v, 3)
                for k2, v in outcome["final_metrics"].items()
                if k2 in ("bleu", "valid_bpc", "valid_accuracy") and v is not None
            },
            time.perf_counter() - began,
        )
    losses = {(r, k, t): loss_of(o) for (r, k, t, s), o in outcomes.items() if s == 0}
    shortest = min(horizons)
    quick = {(r, k): loss for (r, k, t), loss in losses.items() if t == shortest and k in QUICK_FACTORS}
    report = {
        "workload": args.workload,
        "horizons": horizons,
        "batch": batch,
        "centres": {r: LR_CENTRES[r] for r in args.recipes},
        "lr_steps_half_decades": ks,
        "cells": [
            {
                "recipe": r,
                "lr": LR_CENTRES[r] * 10 ** (k / 2),
                "k": k,
                "steps": t,
                "seed": s,
                "status": o["status"],
                "valid_loss": loss_of(o) if math.isfinite(loss_of(o)) else None,
                "metrics": o["final_metrics"],
                "seconds": o["seconds"],
            }
            for (r, k, t, s), o in sorted(outcomes.items())
        ],
        **analyse(losses, horizons, quick),
        "machine": {"threads": torch.get_num_threads(), "device": args.device, "cpus": os.cpu_count()},
    }
    (root / "results.json").write_text(json.dumps(lrtune._json.strict(report), indent=2) + "\n")
    for name, pair in report["pairs"].items():
        o = pair["overall"]
        top1 = "yes" if o["top1"] else "no"
        line = f"{name}: spearman {o['spearman']:.2f}, top-1 {top1}, regret {100 * o['regret']:+.1f} %"
        if "quick_preset" in pair:
            q = pair["quick_preset"]
            line += f"; quick preset's pick {q['pick']}: regret {100 * q['regret']:+.1f} %"
        print(line)
    print(f"wrote {root / 'results.json'}")


if __name__ == "__main__":
    main()
