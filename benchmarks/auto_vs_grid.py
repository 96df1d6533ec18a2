"""``lrtune auto`` against a grid, on workloads lrtune was tuned on and on two it never saw.

For every case — workload × two batch sizes × two seeds — the grid is auto's own recipe (Adam, β = (0.9, 0.98),
the untuned warm-up min(2/(1 − β2), T/2) updates, linear decay to 0 at the budget T) at peak LRs a quarter of a
decade apart over three decades (1e-4 … 1e-1, what a user would sweep; extended a step at a time while its best
LR is at an edge, the extra runs counted), one full run per LR. ``auto`` then chooses with its range tests and
candidate runs, and the chosen config is trained for the whole budget. A case holds when auto's final validation
loss is within 2 % of the grid's best (or within the grid's seed spread at that LR, where that is larger) at no
more than 20 % of the grid's compute (optimizer updates: range tests + candidates + the final run, against the
grid's runs).

Workloads: the built-in ``digits``, ``translation-de-en`` (tiny) and ``charlm-shakespeare`` (tiny), and the two
of ``benchmarks/_user_workloads.py`` written as a user would: an MLP regression (the Workload protocol by hand)
and a small Transformer classifier (``ModelWorkload``). Every run is a directory under ``--out``: a second
invocation continues where the first stopped; auto is run again each time (it continues its own candidate runs
when its choices are the same). ``--report`` prints the table from what is there.

The results file (``--json``) keeps each case's grid (its final validation loss per LR; null: diverged) beside
auto's estimate, candidates and choice. ``--grids FILE`` takes the grids from such a file instead of training them
(each row then names the file): the grid does not depend on auto, so a change to auto is measured again at the cost
of auto's runs alone. ``--auto-option NAME=VALUE`` runs auto with one of its keyword arguments changed (e.g.
``cooldown=0.05``; in another ``--out``), and the rows name them.

Usage:
    python benchmarks/auto_vs_grid.py [--cases digits mlp seq translation charlm] [--out out/auto_vs_grid]
    python benchmarks/auto_vs_grid.py --cases charlm --batches 16 --seeds 0 --threads 1   # one case per process
    python benchmarks/auto_vs_grid.py --cases charlm --batches 16 --seeds 0 --steps 400   # another budget
    python benchmarks/auto_vs_grid.py --grids benchmarks/results/auto_vs_grid.json --out out/again   # auto only
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import lrtune
from lrtune.study import auto
from lrtune.study._auto import _untuned_warmup
from lrtune.workloads import get_workload

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _user_workloads

logger = logging.getLogger("auto_vs_grid")
BETAS = [0.9, 0.98]
GRID = [10 ** (k / 4) for k in range(-16, -3)]  # 1e-4 … 1e-1, a quarter of a decade apart


@dataclass(frozen=True)
class Case:
    key: str
    workload: str
    options: dict[str, Any]
    steps: int
    batches: tuple[int, int]


CASES = {
    "digits": Case("digits", "digits", {}, 500, (32, 128)),
    "mlp": Case("mlp", "_user_workloads:MLPRegression", {}, 600, (32, 128)),
    "seq": Case("seq", "_user_workloads:sequence_classifier", {}, 600, (32, 128)),
    "translation": Case("translation", "translation-de-en", {"bleu_pairs": 50}, 300, (400, 1000)),
    "charlm": Case("charlm", "charlm-shakespeare", {}, 200, (16, 32)),
}


def grid_run(task: Any, case: Case, batch: int, seed: int, lr: float, root: Path) -> float:
    """One full run of the grid (or its saved outcome): final validation loss, inf when it diverged."""
    run_dir = root / f"lr{lr:.4g}"
    if (run_dir / "run.json").is_file():
        outcome = json.loads((run_dir / "run.json").read_text())
    else:
        warmup = _untuned_warmup(BETAS[1], case.steps)
        lrtune.train(
            task,
            optimizer={"name": "adam", "betas": BETAS, "lr": lr},
            schedule={"name": "warmup_linear_decay", "warmup_steps": warmup, "total_steps": case.steps},
            steps=case.steps,
            batch_size=batch,
            seed=seed,
            out_dir=run_dir,
            overwrite=True,
        )
        outcome = json.loads((run_dir / "run.json").read_text())
    loss = outcome.get("final_metrics", {}).get("valid_loss")
    return float(loss) if outcome["status"] == "completed" and loss is not None else math.inf


def recorded_grids(path: Path) -> dict[tuple[str, int, int, int], dict[float, float]]:
    """The grids of an earlier results file, by (case, steps, batch, seed): final validation loss per LR."""
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"--grids: cannot read grids from {path}: {error}") from None
    return {
        (r["case"], r["steps"], r["batch"], r["seed"]): {
            float(lr): math.inf if loss is None else float(loss) for lr, loss in r["grid"].items()
        }
        for r in rows
        if "grid" in r
    }


def run_case(
    case: Case,
    batch: int,
    seed: int,
    root: Path,
    report_only: bool,
    recorded: dict[float, float] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The case's grid (trained, or ``recorded``) and auto's choice on it (run with ``settings`` as auto's keyword
    arguments, or read with ``report_only``)."""
    task = get_workload(case.workload, **case.options)
    grid: dict[float, float] = dict(recorded or {})
    lrs = list(GRID) if recorded is None else list(grid)
    while True:  # the grid, extended while its best is at an edge
        for lr in lrs:
            if lr not in grid:
                if report_only and not (root / "grid" / f"lr{lr:.4g}" / "run.json").is_file():
                    return None
                grid[lr] = grid_run(task, case, batch, seed, lr, root / "grid")
        best = min(grid, key=grid.__getitem__)
        ordered = sorted(grid)
        if best == ordered[0]:
            lrs.append(ordered[0] / 10**0.25)
        elif best == ordered[-1] and not math.isinf(grid[best]):
            lrs.append(ordered[-1] * 10**0.25)
        else:
            break
    result_file = root / "auto.json"
    if report_only:
        if not result_file.is_file():
            return None
        found = json.loads(result_file.read_text())
    else:
        began = time.perf_counter()
        chosen = auto(
            task, steps=case.steps, batch_size=batch, seed=seed, out=root / "auto", train_final=True, **(settings or {})
        )
        assert chosen.final is not None
        found = {
            "lr": chosen.config["optimizer"]["lr"],
            "valid_loss": chosen.final["metrics"].get("valid_loss"),
            "updates": chosen.updates + chosen.final["updates"],  # the choice, then the rest of the full run
            "estimate": chosen.suggestions["estimate"],
            "candidates": len(chosen.candidates),
            "weak": chosen.weak,
            "seconds": time.perf_counter() - began,
            "threads": torch.get_num_threads(),  # the losses depend on it (the summation order)
        }
        result_file.write_text(json.dumps(found, indent=2))
    evidence = json.loads((root / "auto" / "auto.json").read_text())["evidence"]  # auto's own record of its choice
    found |= {"tried": [[c["lr"], c["valid_loss"][-1]] for c in evidence["candidates"]], "choice": evidence["choice"]}
    return {"grid": {f"{lr:.6g}": v for lr, v in sorted(grid.items())}, "grid_runs": len(grid), "auto": found}


def auto_settings(parser: argparse.ArgumentParser, options: list[str]) -> dict[str, Any]:
    """``--auto-option NAME=VALUE`` as auto's keyword arguments (VALUE read as JSON: a number, true, a string)."""
    allowed = set(inspect.signature(auto).parameters) - {"workload", "steps", "batch_size", "seed", "out"}
    allowed -= {"train_final", "overwrite", "workload_options"}
    settings: dict[str, Any] = {}
    for option in options:
        name, _, value = option.partition("=")
        if name not in allowed or not value:
            parser.error(f"--auto-option must be NAME=VALUE with NAME one of {sorted(allowed)}, got {option!r}")
        try:
            settings[name] = json.loads(value)
        except ValueError:
            settings[name] = value
    return settings


def add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that pick the cases and where their runs are (``auto_rungs.py`` takes the same)."""
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="only these of each case's two")
    parser.add_argument("--out", type=Path, default=Path("out/auto_vs_grid"))
    parser.add_argument("--threads", type=int, default=None, help="torch's threads (a run's losses depend on them)")
    parser.add_argument(
        "--steps", type=int, default=None, help="every case's budget (default: each case's own); its rows say so"
    )
    parser.add_argument("--json", type=Path, default=None)


def case_runs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Iterator[tuple[str, Case, int, int, Path]]:
    """Set up logging and torch's threads as the options say, then each case's key, case, batch, seed and folder."""
    if args.steps is not None and args.steps < 4:
        parser.error(f"--steps must be at least 4, got {args.steps}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("lrtune").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for key in args.cases:
        case = CASES[key] if args.steps is None else dataclasses.replace(CASES[key], steps=args.steps)
        budget = "" if args.steps is None else f"_T{args.steps}"  # a budget of its own: runs of their own
        for batch in [b for b in case.batches if args.batches is None or b in args.batches]:
            for seed in args.seeds:
                yield key, case, batch, seed, args.out / key / f"b{batch}_s{seed}{budget}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser)
    parser.add_argument("--report", action="store_true", help="only the table, from the runs already there")
    parser.add_argument("--grids", type=Path, default=None, help="take the grids from this results file")
    parser.add_argument(
        "--auto-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one of auto's keyword arguments other than its defaults, e.g. cooldown=0.05 (the rows name them)",
    )
    args = parser.parse_args()
    settings = auto_settings(parser, args.auto_option)
    grids = recorded_grids(args.grids) if args.grids is not None else {}
    results: dict[tuple[str, int, int], Any] = {}
    cases: dict[str, Case] = {}
    for key, case, batch, seed, root in case_runs(parser, args):
        recorded = grids.get((key, case.steps, batch, seed))
        if args.grids is not None and recorded is None:
            logger.warning("%s, batch %d, seed %d: no grid in %s; skipped", key, batch, seed, args.grids)
            continue
        logger.info("%s, batch %d, seed %d", key, batch, seed)
        try:
            results[(key, batch, seed)] = run_case(case, batch, seed, root, args.report, recorded, settings)
        except FileExistsError as error:  # auto's folder there holds a choice for other settings
            raise SystemExit(f"auto_vs_grid: {error} (another --out for other --auto-option values)") from None
        except ValueError as error:  # auto refused an --auto-option value, naming it, before any work
            if not any(str(error).startswith(name) for name in settings):
                raise
            parser.error(f"--auto-option: {error}")
        cases[key] = case
    rows = []
    for (key, batch, seed), found in results.items():
        if found is None:
            continue
        case = cases[key]
        grid = {float(k): v for k, v in found["grid"].items()}
        best_lr = min(grid, key=grid.__getitem__)
        others = [r for (k, b, s), r in results.items() if (k, b) == (key, batch) and s != seed and r is not None]
        spread = 0.0
        for other in others:  # the same LR's loss under the other seed
            value = {float(k): v for k, v in other["grid"].items()}.get(best_lr)
            if value is not None and math.isfinite(value):
                spread = max(spread, abs(value - grid[best_lr]) / grid[best_lr])
        a = found["auto"]
        gap = (a["valid_loss"] / grid[best_lr] - 1) if a["valid_loss"] is not None else math.inf
        compute = a["updates"] / (found["grid_runs"] * case.steps)
        rows.append(
            {
                "case": key,
                "steps": case.steps,
                "batch": batch,
                "seed": seed,
                "grid_best_lr": best_lr,
                "grid_best": grid[best_lr],
                "grid_runs": found["grid_runs"],
                "seed_spread": spread,
                "auto_lr": a["lr"],
                "auto_loss": a["valid_loss"],
                "gap": gap,
                "compute": compute,
                "holds": gap <= max(0.02, spread) and compute <= 0.20,
                "weak": a["weak"],
                "threads": a.get("threads"),
                "estimate": a.get("estimate"),
                "tried": [[lr, v if math.isfinite(v) else None] for lr, v in a["tried"]],
                "choice": a["choice"],
                "grid": {lr: (v if math.isfinite(v) else None) for lr, v in found["grid"].items()},
                "grid_from": str(args.grids) if args.grids is not None else None,
                "auto_options": settings,
            }
        )
    if settings:
        print("auto with " + ", ".join(f"{k}={v!r}" for k, v in settings.items()) + "\n")
    print(
        "| workload | batch | seed | grid best (LR) | auto (LR) | gap | seed spread | compute | holds | weak evidence |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|---|---|")
    for r in rows:
        name = r["case"] if args.steps is None else f"{r['case']}, {r['steps']} updates"
        print(
            f"| {name} | {r['batch']} | {r['seed']} | {r['grid_best']:.4f} ({r['grid_best_lr']:.2g}) | "
            f"{r['auto_loss']:.4f} ({r['auto_lr']:.2g}) | {100 * r['gap']:+.1f} % | {100 * r['seed_spread']:.1f} % | "
            f"{100 * r['compute']:.1f} % | {'yes' if r['holds'] else '**no**'} | {'; '.join(r['weak']) or '-'} |"
        )
    held = sum(r["holds"] for r in rows)
    print(f"\n{held} of {len(rows)} cases hold")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")  # each row has its threads


if __name__ == "__main__":
    main()
