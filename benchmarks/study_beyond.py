"""What the study's look beyond its grid's edge does: the same study without it, then with it.

When the recommended setting has its recipe's largest (or smallest) LR tried, ``lrtune study`` trains that
setting once more with the LR a grid step further, for the horizon the recommendation is for (``Preset.beyond``
times at most while the best stays at that edge; see :func:`lrtune.study.run_study`). For each case this benchmark
runs the study with ``beyond=0`` (the grid alone: the answer is only flagged when it is at an edge), then the same
study again with the preset's ``beyond``, which reuses every run of the first and trains only the settings beyond.
It reports both answers, the loss at the target of every setting tried beyond the grid, whether the answer changed,
by how much its loss at the target moved, and the updates the look beyond added (as a share of the study's).

Cases: ``digits`` (the quick preset, its target of 400 updates), ``digits-200`` (a target of 200 with one
finalist), ``mlp`` (the MLP regression of ``benchmarks/_user_workloads.py``, written as a user would: one seed,
batch 32, a target of 2000 updates) and ``charlm`` (``charlm-shakespeare``, the quick preset; about 15 minutes
with ``--jobs 2`` on 2 cores). The runs are under ``--out``; a second invocation continues (a study resumes).
Losses do not depend on how busy the machine is, but on torch's thread count (``--threads``; with ``--jobs``,
each run's threads are in the study's summary).

Usage:
    python benchmarks/study_beyond.py --cases digits digits-200 mlp --json benchmarks/results/study_beyond.json
    python benchmarks/study_beyond.py --cases charlm --jobs 2
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from lrtune.study import run_study

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))  # for _user_workloads, here and (through PYTHONPATH) in the study's helpers
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCHMARKS), os.environ.get("PYTHONPATH")) if p)

logger = logging.getLogger("study_beyond")


@dataclass(frozen=True)
class Case:
    workload: str
    options: dict[str, Any] = field(default_factory=dict)
    target_steps: int | None = None  # None: the preset's
    finalists: int | None = None
    seeds: int | None = None
    batch_size: int | None = None


CASES = {
    "digits": Case("digits"),
    "digits-200": Case("digits", target_steps=200, finalists=1),
    "mlp": Case("_user_workloads:MLPRegression", target_steps=2000, seeds=1, batch_size=32),
    "charlm": Case("charlm-shakespeare"),
}


def answer(summary: dict[str, Any]) -> dict[str, Any]:
    """The recommendation's recipe, LR, loss at its horizon and edge flag."""
    rec = summary["recommendation"]
    return {
        "recipe": rec["recipe"],
        "lr": rec["lr"],
        "valid_loss": rec["mean_valid_loss"],
        "for_steps": rec["for_steps"],
        "lr_at_edge": rec.get("lr_at_edge"),
    }


def run_case(key: str, case: Case, out: Path, jobs: int) -> dict[str, Any]:
    common = dict(
        preset="quick",
        out=out,
        seeds=case.seeds,
        target_steps=case.target_steps,
        finalists=case.finalists,
        batch_size=case.batch_size,
        workload_options=case.options,
        report=False,
        jobs=jobs,
    )
    grid = run_study(case.workload, beyond=0, **common)
    looked = run_study(case.workload, **common)  # the preset's beyond: the same runs, and those beyond
    before, after = answer(grid), answer(looked)
    names = {b["study"] for b in looked["beyond"]}
    tried = [
        {"recipe": r["recipe"], "lr": r["lr"], "seed": r["seed"], "valid_loss": r["valid_loss"], "status": r["status"]}
        for r in looked["runs"]
        if r["study"] in names
    ]
    added = looked["compute"]["updates"] - grid["compute"]["updates"]
    return {
        "case": key,
        "workload": case.workload,
        "grid": before,
        "beyond": tried,
        "after": after,
        "changed": (before["recipe"], before["lr"]) != (after["recipe"], after["lr"]),
        "loss_change": after["valid_loss"] / before["valid_loss"] - 1 if before["valid_loss"] else math.nan,
        "updates": grid["compute"]["updates"],
        "updates_added": added,
        "threads": sorted({r["threads"] for r in looked["runs"] if r.get("threads")}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["digits", "digits-200", "mlp"], choices=list(CASES))
    parser.add_argument("--out", type=Path, default=Path("out/study_beyond"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch's threads (a run's losses depend on them)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here (merged with the file's)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("lrtune").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not each trial's line
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = []
    for key in args.cases:
        logger.info("%s", key)
        rows.append(run_case(key, CASES[key], args.out / key, args.jobs))
    print("| case | the grid's answer (loss at T) | at an edge | tried beyond (loss) | answer | loss | updates added |")
    print("|---|---|---|---|---|---:|---:|")
    for r in rows:
        g, a = r["grid"], r["after"]
        beyond = ", ".join(f"{b['lr']:.3g} ({b['valid_loss']:.4g})" for b in r["beyond"]) or "–"
        print(
            f"| {r['case']} (T = {g['for_steps']}) | {g['recipe']} {g['lr']:.3g} ({g['valid_loss']:.4g}) | "
            f"{g['lr_at_edge'] or 'no'} | {beyond} | {'changed: ' if r['changed'] else 'stands: '}"
            f"{a['recipe']} {a['lr']:.3g} | {100 * r['loss_change']:+.1f} % | "
            f"{r['updates_added']} ({100 * r['updates_added'] / r['updates']:.1f} %) |"
        )
    if args.json:
        held = json.loads(args.json.read_text())["rows"] if args.json.is_file() else []
        merged = {r["case"]: r for r in held} | {r["case"]: r for r in rows}
        args.json.write_text(json.dumps({"rows": list(merged.values())}, indent=2) + "\n")


if __name__ == "__main__":
    main()
