"""The RAdam paper's Figure 2 on ``translation-de-en``: gradient histograms over the first updates, measured.

Trains the post-LN ``tiny`` Transformer three times from the same initialisation on the same batches, at the same
peak LR and β = (0.9, 0.98): Adam with a constant LR (no warm-up), Adam with a linear warm-up over the first
``--warmup`` updates, and RAdam with a constant LR. Every update is recorded (``lrtune.diagnostics``) and the
distortion of the absolute-gradient histograms against update 1 is measured (``distortion``: the shift of the
median log10|g| in decades and the change of the share below 1e-8). Prints a table and writes the figure.

``--preset iwslt --lr 5e-4`` is the paper's setting (fairseq's ``transformer_iwslt_de_en`` shapes: 6 + 6 layers,
d = 512, 4 heads, feed-forward 1024; Adam β = (0.9, 0.98), lr 5e-4) on this corpus; ``--device cuda`` runs on a GPU.

Usage: python benchmarks/gradient_distortion.py [--preset tiny|small|iwslt] [--steps 100] [--lr 1e-3]
       [--warmup 100] [--device cpu] [--threads N] [--out figure.png] [--json results.json]
"""

from __future__ import annotations

import argparse
import json

import matplotlib
import torch

matplotlib.use("Agg")

import lrtune
from lrtune.diagnostics import distortion, plot_gradient_histograms
from lrtune.workloads import Translation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--batch-tokens", type=int, default=2000)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "iwslt"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default="gradient_distortion.png")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    workload = Translation(preset=args.preset, max_eval_pairs=100)
    betas = (0.9, 0.98)
    constant = {"name": "constant"}
    warmup = {"name": "warmup_linear_decay", "warmup_steps": args.warmup, "total_steps": 100 * args.warmup}
    recipes = {
        "Adam, no warm-up": ({"name": "adam", "lr": args.lr, "betas": betas}, constant),
        f"Adam, {args.warmup}-update warm-up": ({"name": "adam", "lr": args.lr, "betas": betas}, warmup),
        "RAdam, no warm-up": ({"name": "radam", "lr": args.lr, "betas": betas}, constant),
    }
    runs, results = [], {}
    for name, (optimizer, schedule) in recipes.items():
        record = lrtune.train(
            workload,
            optimizer=optimizer,
            schedule=schedule,
            steps=args.steps,
            batch_size=args.batch_tokens,
            eval_every=args.steps,
            diagnostics={"first": args.steps},
            device=args.device,
        )
        runs.append(record.diagnostics)
        measures = {m["step"]: m for m in distortion(record.diagnostics)}
        results[name] = {
            "status": record.status,
            "final": record.final_metrics,
            "seconds": record.seconds,
            "parameters": sum(p.numel() for p in workload.build_model(0).parameters()),
            "distortion": measures,
        }
        print(
            f"{name}: {record.status}, valid loss {record.final_metrics.get('valid_loss', float('nan')):.3f}",
            flush=True,
        )

    marks = [t for t in (5, 10, 20, 50, 100) if t <= args.steps]
    print(
        f"\n{args.preset} preset: median log10|g| shift since update 1 (decades) / change of the share of |g| < 1e-8, "
        f"lr {args.lr}"
    )
    print("| recipe | " + " | ".join(f"update {t}" for t in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for name, result in results.items():
        cells = [
            f"{result['distortion'][t]['median_shift']:+.2f} / {result['distortion'][t]['low_mass']:+.3f}"
            for t in marks
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    fig = plot_gradient_histograms(runs, labels=list(recipes), max_step=args.steps)
    fig.savefig(args.out, dpi=80)
    print(f"\nwrote {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
