"""Test BLEU of the ``tiny`` translation-de-en preset after a CPU-sized run, with data-preparation times.

Trains the post-LN ``tiny`` Transformer with Adam (β = (0.9, 0.98)) and a linear warm-up + linear decay, then
translates the test split greedily and scores it with sacrebleu (and the same number of training sentences, to
show how well the model fits what it saw). Also times data preparation (parse the dictionary and train the BPE)
cold, in an empty cache, and again from the cache, and prints the corpus statistics that bound what a model can
learn from it: training size and out-of-vocabulary rates of the test sentences.

Usage: python benchmarks/translation_quality.py [--steps 2000] [--lr 3e-3] [--warmup 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time

import torch

import lrtune
from lrtune.workloads import Translation, bleu, load_ding


def corpus_statistics() -> dict[str, float]:
    """Sizes and test-set out-of-vocabulary rates (lower-cased words and punctuation)."""
    corpus = load_ding()
    words = re.compile(r"\w+|[^\w\s]")

    def tokens(texts: list[str]) -> list[str]:
        return [w for t in texts for w in words.findall(t.lower())]

    stats: dict[str, float] = {"train_pairs": len(corpus.train), "test_pairs": len(corpus.test)}
    for side in ("de", "en"):
        train = tokens([getattr(p, side) for p in corpus.train])
        test = tokens([getattr(p, side) for p in corpus.test])
        seen = set(train)
        stats[f"train_{side}_tokens"] = len(train)
        stats[f"test_{side}_oov_rate"] = sum(w not in seen for w in test) / len(test)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--batch-tokens", type=int, default=2000)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: what the data supports with more compute")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["LRTUNE_CACHE"] = cache
        start = time.perf_counter()
        Translation(preset=args.preset, max_eval_pairs=1000)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        workload = Translation(preset=args.preset, max_eval_pairs=1000)
        cached = time.perf_counter() - start
        print(f"data preparation: {cold:.1f} s cold (parse + BPE), {cached:.2f} s cached", flush=True)
        stats = corpus_statistics()
        print("corpus:", json.dumps({k: round(v, 4) for k, v in stats.items()}), flush=True)

        run_dir = os.path.join(cache, "run")
        start = time.perf_counter()
        record = lrtune.train(
            workload,
            optimizer={"name": "adam", "lr": args.lr, "betas": (0.9, 0.98)},
            schedule={"name": "warmup_linear_decay", "warmup_steps": args.warmup, "total_steps": args.steps},
            steps=args.steps,
            batch_size=args.batch_tokens,
            eval_every=args.steps // 2,
            callback=lambda line: print(json.dumps(line), flush=True) if "eval" in line else None,
            out_dir=run_dir,
            checkpoint_every=args.steps,
            device=args.device,
        )
        seconds = time.perf_counter() - start
        # how well the model fits sentences it trained on (the final checkpoint's weights)
        (checkpoint,) = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
        model = workload.build_model(0).to(args.device)
        model.load_state_dict(torch.load(os.path.join(run_dir, "checkpoints", checkpoint), weights_only=True)["model"])
        model.eval()
        n = len(workload.references("test"))
        train_bleu = bleu(workload.translate(model, "train", limit=n), workload.references("train", limit=n))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.device != "cpu" else ""),
        "preset": workload.preset,
        "vocab": workload.vocab,
        "parameters": sum(p.numel() for p in workload.build_model(0).parameters()),
        "steps": record.steps,
        "status": record.status,
        "seconds_train_and_eval": seconds,
        "data_prep_cold_s": cold,
        "data_prep_cached_s": cached,
        "evals": record.evals,
        **record.final_metrics,
        "bleu_on_training_sentences": train_bleu,
        "corpus": stats,
        "config": record.config,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
