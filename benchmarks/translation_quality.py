"""Test BLEU of the ``tiny`` translation-de-en preset after a CPU-sized run, with data-preparation times.

Trains the post-LN ``tiny`` Transformer with Adam (β = (0.9, 0.98)) and a linear warm-up + linear decay, then
translates the whole test split greedily and scores it with sacrebleu. Also times data preparation (parse the
dictionary and train the BPE) cold, in an empty cache, and again from the cache.

Usage: python benchmarks/translation_quality.py [--steps 1800] [--lr 1e-3] [--warmup 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch

import lrtune
from lrtune.workloads import Translation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--batch-tokens", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["LRTUNE_CACHE"] = cache
        start = time.perf_counter()
        Translation(max_eval_pairs=1000)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        workload = Translation(max_eval_pairs=1000)
        cached = time.perf_counter() - start
        print(f"data preparation: {cold:.1f} s cold (parse + BPE), {cached:.2f} s cached", flush=True)

        start = time.perf_counter()
        record = lrtune.train(
            workload,
            optimizer={"name": "adam", "lr": args.lr, "betas": (0.9, 0.98)},
            schedule={"name": "warmup_linear_decay", "warmup_steps": args.warmup, "total_steps": args.steps},
            steps=args.steps,
            batch_size=args.batch_tokens,
            eval_every=args.steps,
        )
        seconds = time.perf_counter() - start
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "preset": workload.preset,
        "parameters": sum(p.numel() for p in workload.build_model(0).parameters()),
        "train_pairs": len(workload._data["train"]),
        "test_pairs": len(workload._refs["test"]),
        "steps": record.steps,
        "status": record.status,
        "seconds_train_and_eval": seconds,
        "data_prep_cold_s": cold,
        "data_prep_cached_s": cached,
        **record.final_metrics,
        "config": record.config,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
