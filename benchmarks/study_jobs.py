"""Runs at once on one machine (``lrtune study --jobs N``): updates per second of N processes at T/N threads each
against one process at T threads, on the demo's run (translation-de-en ``tiny``, 800 target tokens per update,
Adam + warm-up, the quick preset's branch length).

Each round trains ``--steps`` updates in one process with all ``--threads`` threads, then ``--jobs`` processes
at once (spawned, ``--threads // --jobs`` threads each) training the same run with different seeds; a process's
time is its ``lrtune.train`` call (the import and the workload's loading excluded, as in a study, where a worker
loads them once). Rounds alternate; the report gives the median throughput (updates per second, all processes
together) of each way and their ratio. Run it alone: another busy process changes both.

Usage: python benchmarks/study_jobs.py [--rounds 2] [--steps 60] [--jobs 2] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RUN = {"lr": 3e-3, "warmup": 0.1, "batch_tokens": 800}


def _train(args: tuple[int, int, int, Any]) -> float:
    """Seconds of one lrtune.train run of ``steps`` updates at ``threads`` threads (seed ``seed``), started when
    every process of the round is ready."""
    steps, threads, seed, barrier = args
    import torch

    import lrtune

    torch.set_num_threads(threads)
    task = lrtune.workloads.resolve_workload("translation-de-en", {})
    schedule = {"name": "warmup_linear_decay", "warmup_steps": round(RUN["warmup"] * steps), "total_steps": steps}
    barrier.wait()
    began = time.perf_counter()
    lrtune.train(
        task,
        optimizer={"name": "adam", "lr": RUN["lr"], "betas": (0.9, 0.98)},
        schedule=schedule,
        steps=steps,
        batch_size=RUN["batch_tokens"],
        seed=seed,
        final_metrics=False,
    )
    return time.perf_counter() - began


def _round(processes: int, threads: int, steps: int) -> float:
    """Updates per second of ``processes`` runs at once, all together."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(processes)
    with context.Pool(processes) as pool:
        seconds = pool.map(_train, [(steps, threads, seed, barrier) for seed in range(processes)])
    return processes * steps / max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "study_jobs.json")
    args = parser.parse_args()
    one, many = [], []
    load = os.getloadavg()[0]
    for r in range(args.rounds):
        one.append(_round(1, args.threads, args.steps))
        many.append(_round(args.jobs, max(1, args.threads // args.jobs), args.steps))
        print(f"round {r + 1}: 1 process × {args.threads} threads {one[-1]:.2f} updates/s, {args.jobs} × "
              f"{max(1, args.threads // args.jobs)} {many[-1]:.2f} updates/s")  # fmt: skip
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": load,
        "run": {**RUN, "steps": args.steps, "workload": "translation-de-en (tiny)"},
        "one_process": {"threads": args.threads, "updates_per_second": one},
        "jobs": {"processes": args.jobs, "threads_each": max(1, args.threads // args.jobs), "updates_per_second": many},
        "speedup": statistics.median(many) / statistics.median(one),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.jobs} processes at once: {result['speedup']:.2f}× the updates per second of one; {args.out}")


if __name__ == "__main__":
    main()
