"""``lrtune`` command: ``lrtune schedule``, ``lrtune train``, ``lrtune workloads``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..schedules import Schedule, from_spec
from ._data import add_data_commands, make_console
from ._train import (
    UsageError,
    add_train_commands,
    add_workload_option,
    check_out,
    json_object,
    name_flags,
    with_flags,
)

__all__ = ["main"]


def _load_spec(text: str) -> dict[str, Any]:
    """SPEC is a JSON object, or the path of a file holding one."""
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        text = path.read_text()
    try:
        return json_object(text, "SPEC")
    except UsageError as e:
        raise SystemExit(f"lrtune schedule: {e}") from None


def key_points(schedule: Schedule, steps: int) -> list[tuple[str, int, float]]:
    """(what, t, f(t)): the first update, the peak (first maximum), the schedule's end and the last update."""
    values = [schedule.at(t) for t in range(1, steps + 1)]
    peak = max(range(steps), key=values.__getitem__) + 1
    points = [("first update", 1, values[0]), ("peak (end of warm-up)", peak, values[peak - 1])]
    end = schedule.end
    if end is not None and 1 < end < steps and float(end).is_integer():
        points.append(("end of schedule", int(end), values[int(end) - 1]))
    points.append(("last update", steps, values[-1]))
    return points


def _schedule_command(args: argparse.Namespace) -> int:
    from rich.table import Table

    console = make_console()
    try:
        schedule = from_spec(_load_spec(args.spec))
    except (ValueError, TypeError) as e:
        console.print(f"[red]invalid schedule:[/red] {e}")
        return 2
    if not (math.isfinite(args.base_lr) and args.base_lr > 0):
        console.print(f"[red]--base-lr must be a finite number > 0, got {args.base_lr}[/red]")
        return 2
    steps = args.steps
    if steps is None:
        steps = int(schedule.end * 1.1) if schedule.end else 1000
    if steps < 1:
        console.print(f"[red]--steps must be >= 1, got {steps}[/red]")
        return 2
    unit = "LR" if schedule.absolute or args.base_lr != 1.0 else "multiplier"
    factor = 1.0 if schedule.absolute else args.base_lr
    table = Table(title=f"{schedule.display_name} over {steps} updates")
    table.add_column("point")
    table.add_column("update t", justify="right")
    table.add_column(unit, justify="right")
    for what, t, value in key_points(schedule, steps):
        table.add_row(what, str(t), f"{factor * value:.6g}")
    console.print(table)
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..schedules import plot

        ax = plot(schedule, steps, base_lr=args.base_lr)
        ax.figure.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ax.figure.savefig(args.out, dpi=120)
        plt.close(ax.figure)
        console.print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrtune", description="Learning-rate schedules and optimizers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"lrtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sched = sub.add_parser("schedule", help="print the key points of a schedule and draw it")
    sched.add_argument("spec", help='a JSON spec, e.g. \'{"name": "warmup_linear_decay", ...}\', or a JSON file')
    sched.add_argument("--steps", type=int, default=None, help="updates to show (default: 1.1 × the end)")
    sched.add_argument("--base-lr", type=float, default=1.0, help="multiply relative schedules by this LR")
    sched.add_argument("--out", type=Path, default=None, help="write a PNG plot here")
    sched.set_defaults(func=_schedule_command)
    add_train_commands(sub)
    add_data_commands(sub)
    report = sub.add_parser("report", help="write one self-contained HTML page about one or more run directories")
    report.add_argument("runs", nargs="+", type=Path, help="run directories (lrtune train --out ...)")
    report.add_argument("--out", type=Path, default=Path("report.html"))
    report.add_argument("--labels", nargs="+", default=None, help="a name per run (default: directory names)")
    report.set_defaults(func=_report_command)
    find = sub.add_parser("find-lr", help="LR range test: suggested peak LRs and the curve as PNG")
    find.add_argument(
        "--workload",
        default="digits",
        help="a built-in or registered workload name, or package.module:NAME (a Workload class, factory or instance)",
    )
    add_workload_option(find)
    find.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw", "radam"])
    find.add_argument("--start-lr", type=float, default=1e-7)
    find.add_argument("--end-lr", type=float, default=10.0)
    find.add_argument("--num-steps", type=int, default=100)
    find.add_argument("--mode", default="exp", choices=["exp", "linear"])
    find.add_argument("--batch-size", type=int, default=None, help="default: the workload's batch hint, else 64")
    find.add_argument("--seed", type=int, default=0)
    find.add_argument(
        "--out",
        default="lr_range_test.png",
        help="the PNG to write (.png is added when missing; a folder gets lr_range_test.png); the curve goes beside "
        "it as JSON",
    )
    find.set_defaults(func=_find_lr_command)
    sweep = sub.add_parser("sweep", help="an Optuna sweep over a search space (JSON) of lrtune.train runs")
    sweep.add_argument(
        "--workload",
        default="digits",
        help="a built-in or registered workload name, or package.module:NAME (a Workload class, factory or instance)",
    )
    sweep.add_argument("--space", type=Path, required=True, help="the search space, a JSON file")
    sweep.add_argument("--trials", type=int, required=True, help="trials to add to the study")
    sweep.add_argument("--sampler", default="tpe", choices=["tpe", "random", "qmc", "grid"])
    sweep.add_argument(
        "--pruner",
        default="median",
        choices=["median", "asha", "hyperband", "sh", "none"],
        help="sh: synchronous successive halving over this command's trials (all to the first rung, then the best "
        "1/η continue from checkpoints)",
    )
    sweep.add_argument("--reduction-factor", type=int, default=3, help="η of --pruner sh")
    sweep.add_argument("--storage", default=None, help="an Optuna storage URL (default sqlite:///OUT/lrtune.db)")
    sweep.add_argument("--study", default="lrtune", help="the study's name in the storage")
    sweep.add_argument("--steps", type=int, default=None, help="updates per trial when the space has no total_steps")
    sweep.add_argument(
        "--batch-size", type=int, default=None, help="when the space has no batch_size (default: the workload's hint)"
    )
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--heartbeat", type=float, default=10.0, help="seconds between a trial's heartbeats")
    sweep.add_argument("--evals-per-trial", type=int, default=4, help="evaluations per trial (pruning points)")
    sweep.add_argument(
        "--rungs",
        default="continue",
        choices=["continue", "restart"],
        help="prune on a trial's own evaluations (continue) or on shorter runs with compressed schedules (restart)",
    )
    add_workload_option(sweep)
    sweep.add_argument(
        "--enqueue",
        action="append",
        default=[],
        metavar="SETTING",
        help="run this setting first: a known-good name (noam, radam, untuned_warmup) or a JSON object, repeatable",
    )
    sweep.add_argument(
        "--lr-from-range-test",
        nargs="?",
        const="steepest",
        default=None,
        choices=["estimate", "valley", "steepest", "minimum_over_10"],
        help="centre each recipe's LR range on an LR range test's suggestion (default: steepest; estimate: the "
        "median of repeated range tests, read robustly)",
    )
    sweep.add_argument("--out", type=Path, default=Path("sweep"))
    sweep.set_defaults(func=_sweep_command)
    study = sub.add_parser("study", help="compare SGD+clip, Adam (± warm-up), RAdam (± warm-up), AlgoPerf's AdamW")
    study.add_argument(
        "--workload",
        default="translation-de-en",
        help="a built-in or registered workload name, or package.module:NAME (a Workload class, factory or instance)",
    )
    study.add_argument("--preset", default="quick", choices=["quick", "standard", "paper"])
    study.add_argument("--storage", default=None, help="an Optuna storage URL (default sqlite:///OUT/lrtune.db)")
    study.add_argument("--seeds", type=int, default=None, help="seeds per setting (default: the preset's)")
    study.add_argument(
        "--target-steps",
        type=int,
        default=None,
        help="the number of updates you will train for: the recommendation is for that many (default: the "
        "preset's; longer than its runs, its best settings are trained that long)",
    )
    study.add_argument(
        "--finalists",
        type=int,
        default=None,
        help="how many of the screening's settings are trained to the target (default: the preset's; more cost "
        "more and miss less)",
    )
    study.add_argument(
        "--beyond",
        type=int,
        default=None,
        help="when the best setting at the target has its recipe's largest (smallest) LR, train it with the LR a "
        "grid step further, while it stays best there, this many times at most (default: the preset's, 2; 0: "
        "only flag it)",
    )
    study.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the runs' batch (default: the preset's target tokens for translation, else the workload's hint)",
    )
    study.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once, torch's threads shared among them (default 1; for a model too small to keep "
        "every core busy: 2 on 2 cores trains the demo's runs about 1.3x as fast)",
    )
    add_workload_option(study)
    study.add_argument("--out", type=Path, default=Path("study"))
    study.set_defaults(func=_study_command)
    auto = sub.add_parser("auto", help="choose peak LR, warm-up and schedule for a budget without a grid")
    auto.add_argument(
        "--workload",
        default="translation-de-en",
        help="a built-in or registered workload name, or package.module:NAME (a Workload class, factory or instance)",
    )
    auto.add_argument("--steps", type=int, default=None, help="the budget in updates (default: the workload's hint)")
    auto.add_argument("--batch-size", type=int, default=None, help="default: the workload's batch hint, else 64")
    auto.add_argument("--optimizer", default="adam", choices=["adam", "radam"])
    auto.add_argument("--beta2", type=float, default=0.98)
    auto.add_argument(
        "--candidates",
        type=int,
        default=3,
        help="how many peak LRs to compare: the range tests' estimate and LRs --spacing decades apart above it, "
        "each trained on the real schedule and compared after a short cooldown; one that wins at the edge of those "
        "tried gets more beyond it, unless it leads its neighbour by under 1 %% (then the neighbour); default 3",
    )
    auto.add_argument("--spacing", type=float, default=0.3, help="decades between candidate LRs (default 0.3)")
    auto.add_argument(
        "--repeats", type=int, default=2, help="LR range tests (seeds) behind the LR estimate (default 2)"
    )
    auto.add_argument("--seed", type=int, default=0)
    add_workload_option(auto)
    auto.add_argument("--train", action="store_true", help="also train the chosen config for the whole budget")
    auto.add_argument("--out", type=Path, default=Path("auto"))
    auto.add_argument("--overwrite", action="store_true", help="replace a choice in --out made for other settings")
    auto.set_defaults(func=_auto_command)
    name_flags(parser)
    return parser


def _auto_command(args: argparse.Namespace) -> int:

    from ..study import auto
    from ._train import _workload_options

    console = make_console()
    try:
        check_out(args.out)
        with console.status(f"lrtune auto on {args.workload}: range test and candidate LRs"):
            result = auto(
                args.workload,
                steps=args.steps,
                batch_size=args.batch_size,
                optimizer=args.optimizer,
                beta2=args.beta2,
                candidates=args.candidates,
                spacing=args.spacing,
                repeats=args.repeats,
                seed=args.seed,
                workload_options=_workload_options(args.workload_option, args.workload),
                out=args.out,
                train_final=args.train,
                overwrite=args.overwrite,
            )
    except (ValueError, OSError) as e:
        console.print(f"[red]lrtune auto:[/red] {with_flags(e, args)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[red]lrtune auto:[/red] interrupted; the same command continues the candidate runs")
        return 130
    estimate = result.suggestions
    console.print(
        f"LR estimate {estimate['estimate']:.3g} from the range tests (repeats {estimate['spread_decades']:.2f} "
        "decades apart)"
    )
    for c in sorted(result.candidates, key=lambda c: c["lr"]):
        losses = ", ".join(f"{v:.4g}" for v in c["valid_loss"])
        console.print(f"  lr {c['lr']:.3g}: valid loss {losses} after a cooldown from update {c['rungs'][-1]}")
    config = result.config
    console.print(
        f"chosen: {config['optimizer']['name']} lr {config['optimizer']['lr']:.3g}, warm-up "
        f"{config['schedule']['warmup_steps']} of {config['steps']} updates, linear decay; {result.updates} updates "
        f"spent choosing; config in {args.out / 'auto.json'} (lrtune train --config {args.out / 'auto.json'})"
    )
    console.print(f"chosen by {result.choice}", soft_wrap=True)
    for reason in result.weak:
        console.print(f"[yellow]weak evidence:[/yellow] {reason}", soft_wrap=True)
    if result.final is not None:
        console.print(f"full run: {result.final['status']}, {result.final['metrics']}")
    return 0


def _study_command(args: argparse.Namespace) -> int:

    import matplotlib
    import optuna
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .._validate import check_steps
    from ..study import run_study, study_space
    from ..study._report import LABELS
    from ..study._study import _beyond_studies, _completed, _remaining, grid_size, resolve_preset, with_target
    from ..tune._samplers import make_sampler
    from ..workloads._resolve import _target
    from ._train import _workload_options

    matplotlib.use("Agg")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = make_console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"))
    total = 0
    done_in: dict[str, int] = {}
    try:
        options = _workload_options(args.workload_option, args.workload)
        name, preset = resolve_preset(args.preset, args.seeds)
        preset = with_target(preset, args.target_steps, args.finalists, args.beyond)
        check_steps("--jobs", args.jobs, minimum=1)  # bad arguments are refused before the progress bar is drawn
        if args.batch_size is not None:
            check_steps("--batch-size", args.batch_size, minimum=1)
        check_out(args.out)
        _target(args.workload)  # a name that is no workload, a module that does not import
        space = study_space(preset)
        screening = grid_size(space)
        grid = make_sampler("grid", 0, space)
        final = f"study-{name}-final-{preset.horizon}"
        each = 1 if preset.final_runs else len(preset.seeds)  # the runs of a setting beyond the grid's edge
        beyond = f"study-{name}-beyond-{preset.horizon}-"

        def count() -> None:
            """Every run the storage holds as done, and the total (a study run again; the end; Ctrl-C): a helper's
            last runs call no callback here."""
            nonlocal total
            done_in[f"study-{name}"] = screening - _remaining(args.storage, args.out, f"study-{name}", space)
            if preset.final_runs:
                done_in[final] = min(preset.final_runs, _completed(args.storage, args.out, final))
            begun = _beyond_studies(args.storage, args.out, name, preset.horizon)
            done_in.update({n: min(each, done) for n, done in begun.items()})
            total = screening + preset.final_runs + each * len(begun)

        count()
        with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
            what = f"study {args.preset} on {args.workload}, for {preset.horizon} updates"
            task = progress.add_task(what, total=total, completed=sum(done_in.values()), info="")

            def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                nonlocal total
                done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
                if study.study_name == f"study-{name}":
                    done_in[study.study_name] = screening - grid.remaining(study)
                elif study.study_name.startswith(beyond):  # a setting beyond the grid's edge: more than planned
                    total += each * (study.study_name not in done_in)
                    done_in[study.study_name] = min(each, done)
                else:  # the finalists, trained to the target
                    done_in[study.study_name] = min(preset.final_runs, done)
                progress.update(task, total=total, completed=sum(done_in.values()), info=_best_so_far(study))

            summary = run_study(
                args.workload,
                preset=args.preset,
                out=args.out,
                storage=args.storage,
                seeds=args.seeds,
                target_steps=args.target_steps,
                finalists=args.finalists,
                beyond=args.beyond,
                batch_size=args.batch_size,
                workload_options=options,
                callbacks=[advance],
                jobs=args.jobs,
            )
            count()
            progress.update(task, total=total, completed=sum(done_in.values()))
    except (ValueError, OSError) as e:
        console.print(f"[red]lrtune study:[/red] {with_flags(e, args)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        if total:
            count()
        left = total - sum(done_in.values()) if total else None
        console.print(
            f"[red]lrtune study:[/red] interrupted with {left} of {total} runs left; nothing finished is lost: run the "
            "same command again to continue",
            soft_wrap=True,
        )
        return 130
    console.print(_plain_summary(summary, LABELS))
    if summary.get("recommendation"):
        from ..study._report import beyond_note, horizon_note

        console.print(horizon_note(summary), soft_wrap=True)
        if note := beyond_note(summary):
            console.print(note, soft_wrap=True)
    if summary.get("missing"):
        console.print(f"{len(summary['missing'])} grid points have no finished run yet: {summary['missing']}")
    console.print(f"report: {args.out / 'report.html'}; numbers: {args.out / 'summary.json'}")
    return 0


def _plain_summary(summary: dict[str, Any], labels: dict[str, str]) -> Any:
    """The study's outcome: a table per horizon (recipes, best first; the screening, then the finalists trained
    to the target) with the recommendation as the last one's caption."""
    from rich.console import Group
    from rich.table import Table

    from ..study._report import branch_screening

    rec = summary.get("recommendation")
    if not rec:
        return "no recommendation: no setting finished with a finite validation loss"
    tables = []
    horizons = sorted(summary.get("by_horizon", {}), key=int)
    for h in horizons:
        part = summary["by_horizon"][h]
        runs = [r for r in summary["runs"] if r["steps"] == int(h)]
        last = h == horizons[-1]
        screening = branch_screening(summary, int(h))
        kind = (
            f"branches of {screening['of_steps']}-update runs at update {screening['at']} + {screening['cooldown']} "
            "updates of cooldown"
            if screening is not None
            else f"runs of {h} updates"
        )
        table = Table(
            title=f"{len(runs)} {kind}, {sum(r['updates'] for r in runs)} updates, "
            f"{sum(r['seconds'] for r in runs):.0f} s of training (summed over the runs), "
            f"{sum(r['status'] == 'diverged' for r in runs)} diverged" + ("" if last else " (screening)"),
            caption=f"recommendation for {rec['for_steps']} updates: {labels.get(rec['recipe'], rec['recipe'])}, "
            f"peak LR {rec['lr']:.3g}, warm-up {rec['warmup_steps']} updates, {rec['schedule']['name']} (valid loss "
            f"{rec['mean_valid_loss']:.5g})"
            if last
            else None,
        )
        for column in ("recipe", "best LR", "valid loss (seeds' mean)", "LRs within 2 %", "reach target", "diverged"):
            table.add_column(column, justify="left" if column == "recipe" else "right")
        for recipe in part["ranking"]:
            info = part["recipes"][recipe]
            table.add_row(
                labels.get(recipe, recipe),
                f"{info['best_lr']:.3g}" if info["best_lr"] is not None else "-",
                f"{info['best_mean_valid_loss']:.5g}",
                str(len(info["lrs_near_best"])),
                f"{info['runs_reaching_target']}/{info['runs']}",
                f"{info['diverged_runs']}/{info['runs']}",
            )
        tables.append(table)
    return Group(*tables)


def _best_so_far(study: Any) -> str:
    """The progress bars' note: the study's best finite valid loss so far."""
    values = [t.value for t in study.trials if t.value is not None and math.isfinite(t.value)]
    return f"best valid loss {min(values):.4g}" if values else ""


def _sweep_command(args: argparse.Namespace) -> int:
    import optuna

    from ..tune import run_sweep
    from ._train import _workload_options

    console = make_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[best]}"))
    try:
        check_out(args.out)
        options = _workload_options(args.workload_option, args.workload)
        enqueue = [json.loads(e) if e.lstrip().startswith("{") else e for e in args.enqueue]
        space = _space_file(args.space)
        for flag, value, least in (
            ("--steps", args.steps, 1),
            ("--batch-size", args.batch_size, 1),
            ("--trials", args.trials, 0),
        ):
            if value is not None and value < least:
                raise UsageError(f"{flag} must be >= {least}, got {value}")
        with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task(f"sweep on {args.workload}", total=args.trials, best="")

            def advance(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                progress.update(task, advance=1, best=_best_so_far(study))

            study = run_sweep(
                args.workload,
                space,
                trials=args.trials,
                out=args.out,
                sampler=args.sampler,
                pruner=args.pruner,
                storage=args.storage,
                study=args.study,
                seed=args.seed,
                steps=args.steps,
                batch_size=args.batch_size,
                heartbeat=args.heartbeat,
                callbacks=[advance],
                evals_per_trial=args.evals_per_trial,
                rungs=args.rungs,
                reduction_factor=args.reduction_factor,
                workload_options=options,
                enqueue=enqueue,
                lr_from_range_test=args.lr_from_range_test,
            )
    except (ValueError, OSError, json.JSONDecodeError) as e:
        console.print(f"[red]lrtune sweep:[/red] {with_flags(e, args)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print(
            f"[red]lrtune sweep:[/red] interrupted: finished trials are kept in {args.out}, the interrupted one is "
            "queued again; run the same command to continue",
            soft_wrap=True,
        )
        return 130
    states = [t.state.name for t in study.trials]
    console.print(
        f"{len(states)} trials in study {args.study!r}: "
        + ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    )
    finished = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if finished:
        best = min(finished, key=lambda t: t.value)
        console.print(
            f"best: trial {best.number}, valid loss {best.value:.4g}, {best.user_attrs['config']['recipe']}, "
            f"lr {best.user_attrs['config']['optimizer']['lr']:.3g}; config in {args.out / 'best.json'}"
        )
    return 0


def _space_file(path: Path) -> dict[str, Any]:
    """The search space in the JSON file ``--space``; :class:`UsageError` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--space {path}: {e.strerror or e}") from None
    return json_object(text, f"--space {path}")


def _find_lr_command(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .._json import write_json
    from ..tune import lr_range_test
    from ..workloads import batch_size_for, get_workload
    from ._train import _workload_options

    console = make_console()
    try:
        png = _png_path(args.out)
        try:  # before the test: a folder that cannot be made is refused before anything trains
            png.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            why = "a file is in the way" if isinstance(e, FileExistsError) else e.strerror or str(e)
            raise ValueError(f"--out {args.out}: cannot make the folder {png.parent} ({why})") from None
        workload = get_workload(args.workload, **_workload_options(args.workload_option, args.workload))
        with console.status(f"LR range test on {args.workload} ({args.num_steps} updates)"):
            result = lr_range_test(
                workload,
                optimizer={"name": args.optimizer},
                start_lr=args.start_lr,
                end_lr=args.end_lr,
                num_steps=args.num_steps,
                mode=args.mode,
                batch_size=batch_size_for(workload, args.batch_size),
                seed=args.seed,
            )
        suggestions = result.suggestions()
        stop = "diverged" if result.diverged else "reached end_lr"
        console.print(f"{len(result.lrs)} updates, LR {result.lrs[0]:.3g} → {result.lrs[-1]:.3g} ({stop})")
        for name, lr in suggestions.items():
            console.print(f"  {name:16s} {lr:.3g}")
        ax = result.plot()
        ax.set_title(f"{args.workload}, {args.optimizer}")
        ax.figure.savefig(png, dpi=90, bbox_inches="tight")
        curve = {**dataclasses.asdict(result), "suggestions": suggestions, "workload": args.workload}
        write_json(png.with_suffix(".json"), curve)
    except (ValueError, OSError) as e:
        console.print(f"[red]lrtune find-lr:[/red] {with_flags(e, args)}", soft_wrap=True)
        return 2
    console.print(f"wrote {png} and {png.with_suffix('.json')}")
    return 0


def _png_path(given: str | Path) -> Path:
    """Where ``find-lr --out`` writes its picture: a folder (existing, or written with a trailing slash) gets
    ``lr_range_test.png`` inside it; a name without a suffix gets ``.png``; anything but .png is refused."""
    out = Path(given)
    if out.is_dir() or str(given).endswith(("/", os.sep)):
        return out / "lr_range_test.png"
    if out.suffix == "":
        return out.with_name(out.name + ".png")
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the picture is a PNG (give a .png name or a folder)")
    return out


def _report_command(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..diagnostics import write_report

    console = make_console()
    try:
        path = write_report(args.runs, args.out, labels=args.labels)
    except (OSError, ValueError) as e:
        console.print(f"[red]lrtune report:[/red] {with_flags(e, args)}")
        return 2
    console.print(f"wrote {path}")
    return 0


#: Packages of the extras the commands use, and the extra that brings each.
EXTRAS = {
    "rich": "cli",
    "matplotlib": "cli",
    "optuna": "tune",
    "sqlalchemy": "tune",
    "sklearn": "workloads",
    "tokenizers": "workloads",
    "sacrebleu": "workloads",
}


def run(argv: Sequence[str] | None = None) -> int:
    """The command (see :func:`lrtune.cli.main`): a missing extra is one line naming the install command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        sys.stderr.write(
            f"lrtune {args.command}: needs {top}, which is not installed: pip install 'lrtune[all]' (or "
            f"'lrtune[{EXTRAS[top]}]')\n"
        )
        return 2


main = run  # (lrtune.cli.main adds Ctrl-C handling around the imports)
