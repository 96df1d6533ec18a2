"""Step-time overhead of ``lrtune.train(diagnostics=True)`` on the ``translation-de-en`` tiny workload.

Trains the same model on the same pre-built batches with diagnostics off and on (default sampling: every update
up to 100, then every 10th), alternating the two for ``--rounds`` rounds, and reports the median wall time per
update of each and the overhead. The number of updates decides how much of the run is the densely sampled
start: with the default 300, a third of the updates are recorded.

Usage: python benchmarks/diagnostics_overhead.py [--steps 300] [--rounds 3] [--batch-tokens 2000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import tempfile
import time

import torch
from _replay import Replay  # benchmarks/ is on sys.path when a script here runs

import lrtune
from lrtune.workloads import Translation


def run(workload: Replay, steps: int, diagnostics: bool, out: str) -> tuple[float, int]:
    """Seconds per update (first update excluded) and the number of recorded updates."""
    stamps: list[float] = []
    record = lrtune.train(
        workload,
        optimizer={"name": "radam", "lr": 1e-3, "betas": (0.9, 0.98)},
        schedule={"name": "warmup_linear_decay", "warmup_steps": 0, "total_steps": steps},
        steps=steps,
        eval_every=steps,
        out_dir=out,
        diagnostics=diagnostics,
        callback=lambda line: stamps.append(time.perf_counter()) if "loss" in line else None,
    )
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), len(record.diagnostics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    inner = Translation(preset="tiny")
    workload = Replay(inner, list(itertools.islice(inner.train_batches(args.batch_tokens, 0), args.steps)))
    times: dict[str, list[float]] = {"off": [], "on": []}
    recorded = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in ("off", "on"):
                seconds, n = run(workload, args.steps, mode == "on", os.path.join(tmp, f"{mode}{r}"))
                times[mode].append(seconds)
                recorded = max(recorded, n)
                print(f"round {r + 1}, diagnostics {mode}: {1e3 * seconds:.1f} ms/update", flush=True)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"\nmachine: {machine}")
    print(
        f"{args.steps} updates of ~{args.batch_tokens} target tokens, {recorded} of them recorded, {args.rounds} rounds"
    )
    print(f"diagnostics off: {1e3 * off:.1f} ms/update, on: {1e3 * on:.1f} ms/update (medians)")
    print(f"overhead: {100 * (on / off - 1):+.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "times": times, "overhead": on / off - 1, "recorded": recorded}, f, indent=2)


if __name__ == "__main__":
    main()
