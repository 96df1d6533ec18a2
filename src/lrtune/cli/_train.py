"""``lrtune train``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_train_commands"]

RECIPES_WITH_WARMUP = ("warmup_linear_decay", "warmup_cosine")


def _schedule_spec(args: argparse.Namespace, steps: int) -> dict[str, Any]:
    if args.schedule.lstrip().startswith("{"):
        spec: dict[str, Any] = json.loads(args.schedule)
        return spec
    if args.schedule == "constant":
        return {"name": "constant"}
    if args.schedule in RECIPES_WITH_WARMUP:
        return {"name": args.schedule, "warmup_steps": args.warmup_steps, "total_steps": steps, "final": args.final}
    raise SystemExit(
        f"lrtune train: --schedule must be one of constant, {', '.join(RECIPES_WITH_WARMUP)} or a JSON spec; "
        f"got {args.schedule!r}"
    )


def _workload_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON (numbers, true/false, null, lists) is taken as such."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--workload-option must be KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    if args.config is not None:
        config: dict[str, Any] = json.loads(Path(args.config).read_text())
        return config
    from ..workloads import get_workload

    options = _workload_options(args.workload_option)
    steps = args.steps if args.steps is not None else get_workload(args.workload, **options).step_hint
    optimizer: dict[str, Any] = {"name": args.optimizer, "lr": args.lr}
    if args.weight_decay:
        optimizer["weight_decay"] = args.weight_decay
    return {
        "workload": args.workload,
        "workload_options": options,
        "optimizer": optimizer,
        "schedule": _schedule_spec(args, steps),
        "steps": steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "eval_every": args.eval_every,
        "max_grad_norm": args.max_grad_norm,
    }


def _train_command(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..runner import train
    from ..workloads import get_workload

    console = Console()
    try:
        config = _run_config(args)
        workload = get_workload(config.pop("workload"), **config.pop("workload_options", {}))
    except (ValueError, OSError, json.JSONDecodeError) as e:
        console.print(f"[red]lrtune train:[/red] {e}")
        return 2
    steps = int(config["steps"])
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(workload.name, total=steps, info="")

        seen = {"items": 0, "start": time.perf_counter()}

        def show(line: dict[str, Any]) -> None:
            if "loss" in line:
                unit = "tok" if "tokens" in line else "ex"
                seen["items"] += line.get("tokens", line.get("examples", 0))
                rate = seen["items"] / max(time.perf_counter() - seen["start"], 1e-9)
                info = f"loss {line['loss']:.4f}  lr {line['lr']:.3g}  {rate:,.0f} {unit}/s"
                progress.update(task, completed=line["step"], info=info)
            else:
                progress.console.print(
                    f"update {line['step']}: " + ", ".join(f"{k} {v:.4g}" for k, v in line["eval"].items())
                )

        try:
            record = train(
                workload,
                out_dir=args.out,
                checkpoint_every=args.checkpoint_every,
                resume=args.resume,
                callback=show,
                **config,
            )
        except (ValueError, TypeError) as e:
            console.print(f"[red]lrtune train:[/red] {e}")
            return 2
    console.print(f"{record.status} after {record.steps} updates in {record.seconds:.1f} s: {record.final_metrics}")
    return 0 if record.status != "interrupted" else 130


def add_workload_option(parser: Any) -> None:
    """``--workload-option KEY=VALUE`` (repeatable), read with :func:`_workload_options`."""
    parser.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload option, repeatable (e.g. preset=small, corpus=data/iwslt14)",
    )


def add_train_commands(sub: Any) -> None:
    train = sub.add_parser("train", help="train a workload with an optimizer and a schedule")
    train.add_argument("--workload", default="digits")
    add_workload_option(train)
    train.add_argument("--config", type=Path, help="a run config (e.g. a run's config.json); overrides the flags")
    train.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw", "radam"])
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--schedule", default="warmup_linear_decay", help="constant, a warm-up recipe, or JSON")
    train.add_argument("--warmup-steps", type=int, default=0)
    train.add_argument("--final", type=float, default=0.0, help="final LR multiplier of the decay")
    train.add_argument("--steps", type=int, default=None, help="optimizer updates (default: the workload's hint)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-every", type=int, default=None)
    train.add_argument("--max-grad-norm", type=float, default=None)
    train.add_argument("--out", type=Path, default=None, help="run directory (config.json, metrics.jsonl)")
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--resume", action="store_true")
    train.set_defaults(func=_train_command)
