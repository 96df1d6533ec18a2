"""Does auto's comparison of its candidates rank them as the end of the budget does, and from which rung on?

``auto`` compares its candidate LRs after a cooldown branched off at a rung a fifth of the way after the warm-up
(``check_fraction`` 0.2). This takes cases that ``auto_vs_grid.py`` has already run (same ``--out``, ``--cases``,
``--batches``, ``--seeds``, ``--steps``), copies auto's candidate runs into ``<case>/rungs`` and

1. continues each candidate on its real schedule to later rungs (``--fractions``, of the way after the warm-up) and
   branches a cooldown there of the same length as auto's (8 % of the budget, linear to 0);
2. trains each candidate to the end of the budget (the full run, continued from its last checkpoint).

Per case and rung it prints the candidates' losses after the cooldown, the rung's winner, its lead over the
runner-up, and the regret of choosing it: its full run's final validation loss over the best full run among the
candidates, and over the grid's best. The rungs' cost is also printed as a share of the grid's compute, for the
extra updates one more comparison at that rung would cost (the losers continued to it and one cooldown each).
A second invocation continues where the first stopped (the branches and full runs are kept per rung).

Usage:
    python benchmarks/auto_vs_grid.py --cases charlm --batches 16 --seeds 0 --steps 400   # first
    python benchmarks/auto_rungs.py --cases charlm --batches 16 --seeds 0 --steps 400 --fractions 0.4 0.6
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for auto_vs_grid and _user_workloads

from auto_vs_grid import BETAS, Case, add_case_arguments, case_runs

from lrtune.study._auto import _Candidates, _outcome, _rung, _untuned_warmup
from lrtune.workloads import get_workload

logger = logging.getLogger("auto_rungs")
COOLDOWN = 0.08  # auto's default, a share of the budget


def _loss(outcome: dict[str, Any] | None) -> float:
    if outcome is None or outcome.get("status") != "completed":
        return math.inf
    value = outcome.get("final_metrics", {}).get("valid_loss")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def probe_case(case: Case, batch: int, seed: int, root: Path, fractions: list[float]) -> dict[str, Any] | None:
    """The candidates' losses after a cooldown at auto's rung and at each later one, and their full runs' losses."""
    chosen = root / "auto" / "auto.json"
    if not chosen.is_file():
        logger.warning("%s: no auto choice there (run auto_vs_grid.py first)", root)
        return None
    work = root / "rungs"
    if not work.is_dir():  # auto's own folder is left as auto_vs_grid.py reads it
        shutil.copytree(root / "auto", work)
    evidence = json.loads(chosen.read_text())["evidence"]
    warmup = _untuned_warmup(BETAS[1], case.steps)
    schedule = {"name": "warmup_linear_decay", "warmup_steps": warmup, "total_steps": case.steps}
    task = get_workload(case.workload, **case.options)
    runs = _Candidates(task, {"name": "adam", "betas": BETAS}, schedule, batch, seed, work)
    pool = evidence["candidates"]
    for candidate in pool:
        runs.add(candidate["lr"])
    decay = max(1, round(COOLDOWN * case.steps))
    first = pool[0]["rungs"][0]
    rungs = [{"fraction": 0.2, "rung": first, "losses": [c["valid_loss"][0] for c in pool]}]
    for fraction in fractions:
        rung = _rung(case.steps, warmup, fraction)
        losses = []
        for i in range(len(pool)):
            kept = work / f"candidate-{i}-cooldown-at-{rung}"
            if _outcome(kept) is None:
                runs.probe(i, rung, decay)
                if kept.exists():
                    shutil.rmtree(kept)
                (work / f"candidate-{i}-cooldown").rename(kept)
            losses.append(_loss(_outcome(kept)))
        logger.info("rung %d: %s", rung, [f"{x:.4f}" for x in losses])
        rungs.append({"fraction": fraction, "rung": rung, "losses": losses})
    final = []
    for i in range(len(pool)):
        done = _outcome(work / f"candidate-{i}")
        if done is None or done.get("steps") != case.steps:
            runs.finish(i, case.steps)
            done = _outcome(work / f"candidate-{i}")
        final.append(_loss(done))
    grid = {}
    for run in (root / "grid").glob("lr*/run.json"):
        grid[float(run.parent.name[2:])] = _loss(json.loads(run.read_text()))
    return {"lrs": [c["lr"] for c in pool], "rungs": rungs, "final": final, "grid_best": min(grid.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(parser)  # as auto_vs_grid.py ran the cases (--threads too: the losses depend on it)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.4, 0.6])
    args = parser.parse_args()
    for fraction in args.fractions:
        if not 0.0 < fraction < 1.0:
            parser.error(f"--fractions must each be in (0, 1), got {fraction}")
    rows = []
    for key, case, batch, seed, root in case_runs(parser, args):
        found = probe_case(case, batch, seed, root, sorted(args.fractions))
        if found is not None:
            rows.append({"case": key, "steps": case.steps, "batch": batch, "seed": seed, **found})
    print(
        "| case | rung (share of T) | candidates' losses after the cooldown (LR) | winner | lead | "
        "its full run vs the best candidate's | vs the grid's best |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    for r in rows:
        best_final = min(r["final"])
        for rung in r["rungs"]:
            order = sorted(range(len(r["lrs"])), key=lambda i: rung["losses"][i])
            win, second = order[0], order[1]
            lead = rung["losses"][second] / rung["losses"][win] - 1
            cells = " / ".join(f"{x:.4f} ({lr:.2g})" for x, lr in zip(rung["losses"], r["lrs"], strict=True))
            print(
                f"| {r['case']} b{r['batch']} s{r['seed']}, T={r['steps']} | {rung['rung']} "
                f"({rung['rung'] / r['steps']:.0%}) | {cells} | {r['lrs'][win]:.2g} | {100 * lead:.2f} % | "
                f"{100 * (r['final'][win] / best_final - 1):+.1f} % | "
                f"{100 * (r['final'][win] / r['grid_best'] - 1):+.1f} % |"
            )
        ends = " / ".join(f"{x:.4f}" for x in r["final"])
        print(f"| {r['case']} b{r['batch']} s{r['seed']}, T={r['steps']} | end ({r['steps']}) | {ends} | | | | |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
