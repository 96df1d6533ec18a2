"""Does the study's recommendation hold at the horizon it is for? The quick preset with every setting a finalist.

The quick preset screens its 18 settings (6 recipes × 3 peak LRs) and trains its ``finalists`` to the target
(400 updates), recommending the best of them there. This
benchmark runs that same study — lrtune's own code, the grid centred as the study centres it (on translation its
measured LRs, on any other workload its range tests) — with *every* screened setting a finalist, so the best of all
18 settings at the target is known. From it, the study's answer with k finalists (the first k in the order
``lrtune.study._study.choose_finalists`` gives them) is replayed for k = 1 (no finalists: the screening's pick,
trained to the target) up to 6, with its regret: its loss at the target over the best of the 18 there, minus 1.

``--seed-spread K`` trains the K best settings at the target, and every replayed answer, once more with the next
seed, and reports each one's two-seed mean and spread: whether the best of the 18 and the answer's regret are more
than one seed's luck.

``--rung N`` measures successive halving with an intermediate rung, from the same results: every setting is
trained once more at N updates (its whole schedule compressed to N; the grid centred on the same LRs as the
study's, read from the results file), and the answer of "screen 18 at 50, keep the best m at N, train the best
k of those to the target" is replayed for each m and k, with its regret and its compute in updates.

``--branch R`` measures a screening built to transfer: every setting is trained on its *target* schedule (its
warm-up as long as at the target) to update R, and a branch of it decays its LR linearly to 0 over ``--cooldown``
updates (8 % of the target by default, as ``lrtune auto`` compares its candidates); the settings are ranked by the
branches' validation losses, and the answer of "train the first k of that ranking to the target" (as
``choose_finalists`` chooses after a screening by branches) is replayed for k = 1 … 6 from the results file's
cells at the target, with its regret and compute (the finalists continuing from their runs at R, as the study
does). Each branch is one run of R + C updates whose schedule is the target's up to R, then the cooldown.
``--branch-seed S`` trains the branches with seed S instead of 0 (is the branch ranking one seed's luck?); their
answers are judged on the same seed-0 cells at the target. Every branch record in the results file is replayed
again from its stored losses, so all follow today's rule. The quick preset screens this way at R = 48, C = 12
(12 % and 3 % of its target).

The results files' ``finalist_order`` and ``answers`` were measured with the quick preset as it was before it
screened by branches (whole 50-update runs, finalists its best and its best LR neighbours); its cells at the
target are the same runs the branch replay reads. Run without ``--branch`` today, the benchmark runs today's
quick preset (branches at 48 + 12) with every setting a finalist.

Resumable: the study is (run it again to continue; finished runs are not redone). Loss values do not depend on
how busy the machine is (only its seconds do), but they do depend on the thread count (the summation order):
``--threads`` fixes it. Results: ``benchmarks/results/study_transfer/WORKLOAD.json`` (``--results``).

Usage:
    python benchmarks/study_transfer.py --workload charlm-shakespeare --threads 2
    python benchmarks/study_transfer.py --workload digits
    python benchmarks/study_transfer.py --workload charlm-shakespeare --threads 2 --rung 200
    python benchmarks/study_transfer.py --workload charlm-shakespeare --threads 2 --seed-spread 3
    python benchmarks/study_transfer.py --workload charlm-shakespeare --threads 2 --branch 112
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lrtune import schedules
from lrtune._json import write_json
from lrtune.schedules import from_spec
from lrtune.study import LR_CENTRES, PRESETS, run_study
from lrtune.study._study import analyse, analyse_runs, choose_finalists

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for horizon_transfer's cells
from horizon_transfer import cell_config, loss_of, run_cell

logger = logging.getLogger("study_transfer")


def replay(summary: dict[str, Any], ks: range) -> dict[str, Any]:
    """The study's answer with k finalists, for each k, from a study in which every setting was a finalist."""
    settings = summary["settings"]
    screening = max(s["steps"] for s in settings if s["steps"] < summary["horizon"])
    target = summary["horizon"]
    at_target = {s["cell"]: s["mean_valid_loss"] for s in settings if s["steps"] == target}
    screened = [s for s in settings if s["steps"] == screening]
    if len(at_target) != len(screened):
        raise ValueError(f"{len(screened)} settings screened, {len(at_target)} at the target: run it again")
    preset = dataclasses.replace(PRESETS["quick"], finalists=len(screened))
    order = [json.dumps({k: v for k, v in p.items() if k != "seed"}, sort_keys=True) for p in choose_finalists(
        {"settings": screened}, preset
    )]  # fmt: skip
    cells = {json.dumps(json.loads(c), sort_keys=True): c for c in at_target}
    order = [cells[c] for c in order]
    best = min(at_target, key=lambda c: (not math.isfinite(at_target[c]), at_target[c]))
    screened_loss = {s["cell"]: s["mean_valid_loss"] for s in screened}
    rows = []
    for k in ks:
        pick = min(order[:k], key=lambda c: (not math.isfinite(at_target[c]), at_target[c]))
        rows.append(
            {
                "finalists": k,
                "pick": json.loads(pick),
                "loss_at_target": at_target[pick],
                "regret": at_target[pick] / at_target[best] - 1,
            }
        )
    return {
        "screening_steps": screening,
        "target_steps": target,
        "best_at_target": {"cell": json.loads(best), "loss": at_target[best]},
        "finalist_order": [
            {"cell": json.loads(c), "screening_loss": screened_loss[c], "loss_at_target": at_target[c]} for c in order
        ],
        "answers": rows,
    }


def from_horizon_transfer(path: Path, screening: int, target: int) -> dict[str, Any]:
    """A summary's ``settings`` built from ``horizon_transfer.py``'s cells (seed 0) of the quick preset's grid:
    the same runs when the benchmark centres the grid as the study does (translation's measured LRs)."""
    outcomes = json.loads(path.read_text())["outcomes"]
    settings = []
    for name, outcome in outcomes.items():
        recipe, rest = name.rsplit("_lr", 1)
        k, horizon, seed = rest.split("_")
        if int(k) not in (-1, 0, 1) or seed != "s0" or int(horizon[1:]) not in (screening, target):
            continue
        loss = outcome["final_metrics"].get("valid_loss")
        ok = outcome["status"] == "completed" and loss is not None and math.isfinite(loss)
        cell = json.dumps({"lr": 10 ** (int(k) / 2), "optimizer": recipe}, sort_keys=True)
        settings.append({"cell": cell, "steps": int(horizon[1:]), "mean_valid_loss": loss if ok else math.inf})
    return {"settings": settings, "horizon": target}


def _key(cell: dict[str, Any]) -> str:
    return json.dumps({"lr": cell["lr"], "optimizer": cell["optimizer"]}, sort_keys=True)


def replay_rung(result: dict[str, Any], rung: int, at_rung: dict[str, float]) -> list[dict[str, Any]]:
    """Successive halving replayed: the screening's best m settings (by its ranking, ``finalist_order``) trained
    to ``rung`` updates, the best k of those at the rung trained to the target, the best there recommended."""
    order = [_key(f["cell"]) for f in result["finalist_order"]]
    target = {_key(f["cell"]): f["loss_at_target"] for f in result["finalist_order"]}
    best = result["best_at_target"]["loss"]
    n = len(order)

    def lowest(cells: list[str], loss: dict[str, float]) -> list[str]:
        return sorted(cells, key=lambda c: (not math.isfinite(loss[c]), loss[c]))

    rows = []
    for m in range(2, n + 1):
        kept = lowest(order[:m], at_rung)
        for k in (1, 2, 3):
            if k > m:
                continue
            pick = lowest(kept[:k], target)[0]
            rows.append(
                {
                    "kept_at_rung": m,
                    "finalists": k,
                    "pick": json.loads(pick),
                    "loss_at_target": target[pick],
                    "regret": target[pick] / best - 1,
                    "updates": n * result["screening_steps"] + m * rung + k * result["target_steps"],
                }
            )
    return rows


def quick_sweep(
    workload: str, result: dict[str, Any], space: dict[str, Any], out: Path, study: str, steps: int, **kwargs: Any
) -> Any:
    """A grid sweep of the quick preset's settings, run as the study runs them: centred on the results file's LRs,
    with the preset's evaluations (and BLEU pairs on translation)."""
    from lrtune.tune import run_sweep

    quick = PRESETS["quick"]
    return run_sweep(
        workload,
        space,
        trials=None,
        out=out,
        sampler="grid",
        pruner="none",
        study=study,
        steps=steps,
        batch_size=result["batch_size"],
        evals_per_trial=quick.evals,
        lr_centres=result["lr_centres"]["lr"],
        run_dirs=True,
        workload_options={"bleu_pairs": quick.bleu_pairs} if workload == "translation-de-en" else None,
        **kwargs,
    )


def run_rung(args: argparse.Namespace, path: Path, rung: int) -> None:
    """Train every quick-preset setting at ``rung`` updates on the results file's LR centres; replay halving."""
    if not path.is_file():
        raise SystemExit(f"--rung needs the study's results file {path}: run this benchmark without --rung first")
    result = json.loads(path.read_text())
    if not result["screening_steps"] < rung < result["target_steps"]:
        raise SystemExit(
            f"--rung must lie between the screening ({result['screening_steps']}) and the target "
            f"({result['target_steps']}) updates, got {rung}"
        )
    quick = PRESETS["quick"]
    out = args.out / args.workload / f"rung-{rung}"
    space = {"optimizer": list(quick.recipes), "lr": list(quick.lr_factors), "seed": list(quick.seeds[:1])}
    study = quick_sweep(args.workload, result, space, out, f"rung-{rung}", rung)
    measured = analyse(study, out, space=space)
    at_rung = {_key(json.loads(s["cell"])): s["mean_valid_loss"] for s in measured["settings"]}
    if measured["missing"] or len(at_rung) != len(result["finalist_order"]):
        raise SystemExit(f"{len(at_rung)} of {len(result['finalist_order'])} settings at {rung}: run it again")
    rows = replay_rung(result, rung, at_rung)
    result.setdefault("rungs", {})[str(rung)] = {"loss": at_rung, "halving": rows}
    write_json(path, result)
    for row in rows:
        if row["finalists"] == 2 or row["kept_at_rung"] == len(at_rung):
            print(
                f"keep {row['kept_at_rung']:2d} at {rung}, {row['finalists']} to {result['target_steps']}: "
                f"{row['pick']} {row['loss_at_target']:.4f} regret {100 * row['regret']:+.1f} % "
                f"({row['updates']} updates)"
            )
    print(f"wrote {path}")


def branch_config(
    recipe: str, lr: float, target: int, rung: int, cooldown: int, batch: int, seed: int
) -> dict[str, Any]:
    """The run config of ``recipe``'s run to ``target`` updates (as the study builds it) up to update ``rung``,
    then a linear decay from its LR there to 0 over ``cooldown`` updates: ``rung + cooldown`` updates."""
    config = cell_config(recipe, lr, target, batch, seed)
    schedule = schedules.cooldown(from_spec(config["schedule"]), rung, cooldown).to_spec()
    return {**config, "schedule": schedule, "steps": rung + cooldown}


def replay_branch(
    result: dict[str, Any], at_branch: dict[str, float], rung: int, cooldown: int
) -> list[dict[str, Any]]:
    """The answer with k finalists when the screening ranks the settings by their branches' losses, the
    finalists chosen as the study chooses them after a screening by branches (``choose_finalists``)."""
    target = {_key(f["cell"]): f["loss_at_target"] for f in result["finalist_order"]}
    settings = [{"cell": c, "steps": rung + cooldown, "mean_valid_loss": v} for c, v in at_branch.items()]
    preset = dataclasses.replace(PRESETS["quick"], finalists=len(settings))  # the quick preset screens by branches
    order = [_key(p) for p in choose_finalists({"settings": settings}, preset)]
    best = result["best_at_target"]["loss"]
    rows = []
    for k in range(1, 7):
        pick = min(order[:k], key=lambda c: (not math.isfinite(target[c]), target[c]))
        rows.append(
            {
                "finalists": k,
                "pick": json.loads(pick),
                "loss_at_target": target[pick],
                "regret": target[pick] / best - 1,
                "updates": len(order) * (rung + cooldown) + k * (result["target_steps"] - rung),
            }
        )
    return rows


def run_branch(args: argparse.Namespace, path: Path, rung: int, cooldown: int | None) -> None:
    """Train every quick-preset setting on its target schedule to ``rung``, then a cooldown; replay the answer."""
    from lrtune.workloads import resolve_workload

    if not path.is_file():
        raise SystemExit(f"--branch needs the study's results file {path}: run this benchmark without it first")
    result = json.loads(path.read_text())
    total = result["target_steps"]
    cooldown = round(0.08 * total) if cooldown is None else cooldown
    if not 0 < rung < total or cooldown < 1:
        raise SystemExit(f"--branch must lie in (0, {total}) and --cooldown be >= 1, got {rung} and {cooldown}")
    quick = PRESETS["quick"]
    options = {"bleu_pairs": quick.bleu_pairs} if args.workload == "translation-de-en" else None
    task = resolve_workload(args.workload, options)
    centres = result["lr_centres"]["lr"]
    at_branch: dict[str, float] = {}
    suffix = f"-s{args.branch_seed}" if args.branch_seed else ""  # another seed's branches: their own folder and key
    for f in result["finalist_order"]:
        cell = f["cell"]
        lr = centres[cell["optimizer"]] * cell["lr"]
        config = branch_config(cell["optimizer"], lr, total, rung, cooldown, result["batch_size"], args.branch_seed)
        run_dir = (
            args.out / args.workload / f"branch-{rung}-{cooldown}{suffix}" / f"{cell['optimizer']}-x{cell['lr']:.4g}"
        )
        logger.info("%s at %.4g × its centre: %d + %d updates", cell["optimizer"], cell["lr"], rung, cooldown)
        try:
            at_branch[_key(cell)] = loss_of(run_cell(task, run_dir, config, "cpu", every=rung, evals=1))
        except KeyboardInterrupt:
            raise SystemExit("interrupted: run it again to continue") from None
    key = f"{rung}+{cooldown}{suffix}"
    result.setdefault("branches", {})[key] = {"loss": at_branch, "seed": args.branch_seed}
    for name, branch in result["branches"].items():  # every branch measured, replayed by today's rule
        at, length = map(int, name.split("-")[0].split("+"))
        branch["answers"] = replay_branch(result, branch["loss"], at, length)
    rows = result["branches"][key]["answers"]
    write_json(path, result)
    ranked = sorted(at_branch, key=at_branch.__getitem__)
    target = {_key(f["cell"]): f["loss_at_target"] for f in result["finalist_order"]}
    for i, c in enumerate(ranked):
        print(f"{i + 1:2d}. {c}: branch {at_branch[c]:.4f}, at {total} {target[c]:.4f}")
    for row in rows:
        print(
            f"{row['finalists']} finalist(s): {row['pick']} {row['loss_at_target']:.4f} "
            f"regret {100 * row['regret']:+.1f} % ({row['updates']} updates)"
        )
    print(f"wrote {path}")


def run_seed_spread(args: argparse.Namespace, path: Path, top: int) -> None:
    """Train the ``top`` best settings at the target, and the study's answers, once more with the next seed: is the
    best of the 18 (and the answer's regret against it) more than one seed's luck?"""

    if not path.is_file():
        raise SystemExit(f"--seed-spread needs the study's results file {path}: run this benchmark without it first")
    if top < 1:
        raise SystemExit(f"--seed-spread must be at least 1, got {top}")
    result = json.loads(path.read_text())
    quick = PRESETS["quick"]
    seed = max(quick.seeds[:1]) + 1
    ranked = sorted(result["finalist_order"], key=lambda f: f["loss_at_target"])
    cells = [_key(f["cell"]) for f in ranked[:top]]
    for answer in result["answers"]:
        if _key(answer["pick"]) not in cells:
            cells.append(_key(answer["pick"]))
    first = {_key(f["cell"]): f["loss_at_target"] for f in result["finalist_order"]}
    second: dict[str, float] = {}
    for cell in cells:
        c = json.loads(cell)
        name = f"{c['optimizer']}-x{c['lr']:.4g}-s{seed}"
        out = args.out / args.workload / "seed-spread" / name
        # the whole grid's space with the one point, as the study's finalists: run_sweep centres the space's LR
        # list (its geometric centre) on lr_centres, so a one-value list would run every cell at its centre
        space = {"optimizer": list(quick.recipes), "lr": list(quick.lr_factors), "seed": [seed]}
        point = {"optimizer": c["optimizer"], "lr": c["lr"], "seed": seed}
        study = quick_sweep(args.workload, result, space, out, name, result["target_steps"], grid=[point])
        measured = analyse_runs([(study, out, space, [point])], out)
        if measured["missing"] or len(measured["settings"]) != 1:
            raise SystemExit(f"{name} did not finish: run it again")
        second[cell] = measured["settings"][0]["mean_valid_loss"]
    mean = {c: (first[c] + second[c]) / 2 for c in cells}
    best = min(mean.values())
    rows = [
        {
            "cell": json.loads(c),
            "seeds": {"0": first[c], str(seed): second[c]},
            "mean": mean[c],
            "spread": abs(first[c] - second[c]) / mean[c],
            "regret_of_mean": mean[c] / best - 1,
        }
        for c in sorted(cells, key=mean.__getitem__)
    ]
    result["seed_spread"] = {"seed": seed, "target_steps": result["target_steps"], "cells": rows}
    write_json(path, result)
    for row in rows:
        print(
            f"{row['cell']}: seed 0 {row['seeds']['0']:.4f}, seed {seed} {row['seeds'][str(seed)]:.4f}, "
            f"mean {row['mean']:.4f} (spread {100 * row['spread']:.1f} %, {100 * row['regret_of_mean']:+.1f} % "
            "from the best mean)"
        )
    print(f"wrote {path}")


def start_training(args: argparse.Namespace) -> None:
    """Progress on stderr and ``--threads`` for every mode that trains."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--out", type=Path, default=Path("out/study_transfer"))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument(
        "--cells",
        type=Path,
        default=None,
        help="replay from horizon_transfer.py's results file (its 50- and 400-update cells) instead of training",
    )
    parser.add_argument(
        "--rung", type=int, default=None, help="train every setting at this many updates and replay halving through it"
    )
    parser.add_argument(
        "--branch",
        type=int,
        default=None,
        metavar="R",
        help="rank every setting by a cooldown branched off its target schedule at update R; replay the answer",
    )
    parser.add_argument("--cooldown", type=int, default=None, help="--branch's cooldown (default 8 %% of the target)")
    parser.add_argument(
        "--branch-seed",
        type=int,
        default=0,
        help="--branch's seed (another than the cells' 0: is the branch ranking one seed's luck? the answers are "
        "still judged on the seed-0 cells at the target)",
    )
    parser.add_argument(
        "--seed-spread",
        type=int,
        default=None,
        metavar="K",
        help="train the K best settings at the target and the study's answers once more with the next seed",
    )
    args = parser.parse_args()
    path = args.results or Path(__file__).resolve().parent / "results" / "study_transfer" / f"{args.workload}.json"
    if args.rung is not None:
        start_training(args)
        run_rung(args, path, args.rung)
        return
    if args.branch is not None:
        start_training(args)
        run_branch(args, path, args.branch, args.cooldown)
        return
    if args.seed_spread is not None:
        start_training(args)
        run_seed_spread(args, path, args.seed_spread)
        return
    if args.cells:
        replayed = replay(from_horizon_transfer(args.cells, 50, 400), range(1, 7))
        cells = json.loads(args.cells.read_text())
        if cells["workload"] != args.workload:
            raise SystemExit(f"--cells {args.cells} holds {cells['workload']}, not --workload {args.workload}")
        if args.workload == "translation-de-en":  # the grid is then the study's: centred on LR_CENTRES
            write_json(
                path,
                {
                    "workload": args.workload,
                    "preset": f"quick, replayed from {args.cells.name} (horizon_transfer.py's cells)",
                    "lr_centres": {"source": "lrtune.study.LR_CENTRES", "lr": dict(LR_CENTRES)},
                    "batch_size": cells["batch"],
                    **replayed,
                },
            )
            print(f"wrote {path}")
        for row in replayed["answers"]:
            print(f"{row['finalists']} finalist(s): {row['pick']} {row['loss_at_target']:.4f} "
                  f"regret {100 * row['regret']:+.1f} %")  # fmt: skip
        print(json.dumps(replayed["finalist_order"], indent=1))
        return
    start_training(args)
    quick = PRESETS["quick"]
    n = len(quick.recipes) * len(quick.lr_factors)
    preset = dataclasses.replace(quick, finalists=n)
    began = time.perf_counter()
    summary = run_study(args.workload, preset=preset, out=args.out / args.workload, report=False)
    result = {
        "workload": args.workload,
        "preset": "quick, every setting a finalist",
        "lr_centres": summary["lr_centres"],
        "batch_size": summary["batch_size"],
        **replay(summary, range(1, 7)),
        "compute": summary["compute"],
        "seconds_this_call": time.perf_counter() - began,
        "machine": {"threads": torch.get_num_threads(), "cpus": os.cpu_count()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    best = result["best_at_target"]
    print(f"best of {n} at {result['target_steps']}: {best['cell']} {best['loss']:.4f}")
    for row in result["answers"]:
        print(
            f"{row['finalists']} finalist(s): {row['pick']} {row['loss_at_target']:.4f} "
            f"regret {100 * row['regret']:+.1f} %"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
