"""``lrtune train``.

Exit codes of ``lrtune train`` (a script can rely on them): 0 the run completed, 2 bad input (one line says
which), 3 the run diverged, 130 it was interrupted (Ctrl-C: the update finishes, a checkpoint is saved when there
is an ``--out``, and ``--resume`` continues it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ._data import make_console

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_USAGE", "add_train_commands"]

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

RECIPES_WITH_WARMUP = ("warmup_linear_decay", "warmup_cosine")
#: The flags that describe a run, with their defaults. With ``--config`` (or ``--resume``), the flags given
#: explicitly override the config's values; the others leave it as it is.
RUN_FLAGS: dict[str, Any] = {
    "workload": "digits",
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "warmup_linear_decay",
    "warmup_steps": 0,
    "final": 0.0,
    "steps": None,  # the workload's step hint
    "batch_size": None,  # the workload's batch hint, else 64
    "seed": 0,
    "eval_every": None,
    "max_grad_norm": None,
}
#: The keys of a run config (``config.json``, ``best.json``, ``recommended.json``, ``auto.json``).
CONFIG_KEYS = (
    "workload",
    "workload_options",
    "optimizer",
    "schedule",
    "steps",
    "batch_size",
    "seed",
    "eval_every",
    "max_grad_norm",
)


class UsageError(ValueError):
    """Bad input on the command line: one line, exit code 2."""


def json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object; :class:`UsageError` naming ``what`` otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not a JSON object: {e}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, got {value!r}")
    return value


def _schedule_spec(name: str, warmup_steps: int, final: float, steps: int) -> dict[str, Any]:
    if name.lstrip().startswith("{"):
        return json_object(name, "--schedule")
    if name == "constant":
        return {"name": "constant"}
    if name in RECIPES_WITH_WARMUP:
        return {"name": name, "warmup_steps": warmup_steps, "total_steps": steps, "final": final}
    raise UsageError(
        f"--schedule must be one of constant, {', '.join(RECIPES_WITH_WARMUP)} or a JSON spec; got {name!r}"
    )


def _workload_options(items: list[str], workload: str | None = None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON (numbers, true/false, null, lists) is taken as such, except
    for an option of ``workload`` that takes text, which keeps VALUE as written (``corpus=2024``)."""
    from ..workloads._resolve import _accepts as accepts
    from ..workloads._resolve import _target, option_kinds

    kinds: dict[str, Any] = {}
    if items and workload is not None:
        kinds = option_kinds(_target(workload)[0]) or {}
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--workload-option must be KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key in kinds and not accepts(kinds[key], parsed) and accepts(kinds[key], value):
            parsed = value
        options[key] = parsed
    return options


def _read_config(path: Path) -> dict[str, Any]:
    """A run config file, checked: a JSON object with a workload, an optimizer and steps, and no unknown key."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: cannot read it ({e})") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"--config {path} is not JSON: {e}") from None
    if not isinstance(config, dict):
        raise UsageError(f"--config {path} must hold a JSON object (a run config), got a {type(config).__name__}")
    missing = [k for k in ("workload", "optimizer", "steps") if k not in config]
    if missing:
        raise UsageError(f"--config {path} has no {', '.join(map(repr, missing))}: it is not a run config")
    config.pop("evidence", None)  # what lrtune auto saw: not part of the run
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"--config {path} has unknown keys {unknown}; a run config has {', '.join(CONFIG_KEYS)}")
    if not isinstance(config["optimizer"], dict) or "name" not in config["optimizer"]:
        raise UsageError(f"--config {path}: 'optimizer' must be an object with a 'name', got {config['optimizer']!r}")
    return config


def _from_flags(flags: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A run config from the flags alone (defaults where not given)."""
    from ..workloads import batch_size_for, get_workload

    values = {k: (RUN_FLAGS[k] if v is None else v) for k, v in flags.items()}
    steps = values["steps"]
    if steps is None or values["batch_size"] is None:
        workload = get_workload(values["workload"], **options)
        steps = workload.step_hint if steps is None else steps
        values["batch_size"] = batch_size_for(workload, values["batch_size"])
    optimizer: dict[str, Any] = {"name": values["optimizer"], "lr": values["lr"]}
    if values["weight_decay"]:
        optimizer["weight_decay"] = values["weight_decay"]
    return {
        "workload": values["workload"],
        "workload_options": options,
        "optimizer": optimizer,
        "schedule": _schedule_spec(values["schedule"], values["warmup_steps"], values["final"], steps),
        "steps": steps,
        "batch_size": values["batch_size"],
        "seed": values["seed"],
        "eval_every": values["eval_every"],
        "max_grad_norm": values["max_grad_norm"],
    }


def _override(config: dict[str, Any], flags: dict[str, Any], options: list[str], *, resume: bool) -> dict[str, Any]:
    """``config`` with the explicitly given flags applied (see ``lrtune train --help``)."""
    config = json.loads(json.dumps(config))  # a deep copy
    given = {k: v for k, v in flags.items() if v is not None}
    if "workload" in given and given["workload"] != config["workload"]:
        config["workload"], config["workload_options"] = given["workload"], {}
    config["workload_options"] = {
        **config.get("workload_options", {}),
        **_workload_options(options, config["workload"]),
    }
    if "optimizer" in given:
        config["optimizer"] = {"name": given["optimizer"], "lr": config["optimizer"].get("lr", RUN_FLAGS["lr"])}
    for flag, key in (("lr", "lr"), ("weight_decay", "weight_decay")):
        if flag in given:
            config["optimizer"][key] = given[flag]
    old_steps = config["steps"]
    if "steps" in given:
        config["steps"] = given["steps"]
        schedule = config.get("schedule")
        # the schedule ends with the run unless it is resumed (a resumed run keeps its schedule)
        if not resume and isinstance(schedule, dict) and schedule.get("total_steps") == old_steps:
            schedule["total_steps"] = given["steps"]
    if "schedule" in given:
        warmup = given.get("warmup_steps", RUN_FLAGS["warmup_steps"])
        config["schedule"] = _schedule_spec(given["schedule"], warmup, given.get("final", 0.0), config["steps"])
    else:
        for flag in ("warmup_steps", "final"):
            if flag in given:
                schedule = config.get("schedule")
                if not isinstance(schedule, dict) or flag not in schedule:
                    raise UsageError(f"--{flag.replace('_', '-')}: the config's schedule {schedule!r} has no {flag}")
                schedule[flag] = given[flag]
    for key in ("batch_size", "seed", "eval_every", "max_grad_norm"):
        if key in given:
            config[key] = given[key]
    return config


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's config: ``--config``'s (or, with ``--resume``, the run's own ``config.json``) with the flags given
    explicitly on top, else the flags alone."""
    flags = {k: getattr(args, k) for k in RUN_FLAGS}
    base = None
    if args.config is not None:
        base = _read_config(args.config)
    elif args.resume and args.out is not None and (args.out / "config.json").is_file():
        base = _read_config(args.out / "config.json")
    if base is None:
        return _from_flags(flags, _workload_options(args.workload_option, flags["workload"] or RUN_FLAGS["workload"]))
    return _override(base, flags, args.workload_option, resume=args.resume)


# what the library's messages about an out_dir ask for, as flags (where the command has them)
_PHRASES = {
    "resume it": ("--resume", "resume it (--resume)"),
    "overwrite it": ("--overwrite", "overwrite it (--overwrite)"),
    "out_dir": ("--out", "--out"),
}


def with_flags(error: object, args: argparse.Namespace) -> str:
    """A message of the library in the command's terms: a leading parameter name that is one of the command's
    options becomes its flag (``seeds must be >= 1`` → ``--seeds must be >= 1``), and what it says to do with
    an out_dir names the flags that do it."""
    message, flags = str(error), getattr(args, "flags", {})
    name, space, rest = message.partition(" ")
    if space and name in flags:
        message = f"{flags[name]} {rest}"
    for said, (flag, instead) in _PHRASES.items():
        if flag in flags.values() and flag not in message:  # (a message that names the flag already is kept)
            message = message.replace(said, instead)
    return message


def check_out(path: Path) -> None:
    """Refuse an ``--out`` that cannot be a folder (a file, or a path under one) before any work: ``ValueError``
    naming it."""
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == path else f": {folder}"
                raise ValueError(f"--out {path}{where} is a file, not a directory")
            return


def name_flags(parser: argparse.ArgumentParser) -> None:
    """Record on each command of ``parser`` (``args.flags``) its options' flags by parameter name."""
    for action in parser._actions:  # (argparse keeps its subcommands there only)
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                flags = {a.dest: a.option_strings[-1] for a in command._actions if a.option_strings}
                command.set_defaults(flags=flags)


def _train_command(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..runner import train
    from ..workloads import get_workload

    console = make_console()
    try:
        if args.resume and args.overwrite:
            raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one")
        if (args.resume or args.overwrite or args.checkpoint_every is not None) and args.out is None:
            raise UsageError("--resume, --overwrite and --checkpoint-every need --out")
        if args.out is not None:
            check_out(args.out)
        config = _run_config(args)
        workload = get_workload(config.pop("workload"), **config.pop("workload_options", {}))
    except (ValueError, TypeError, OSError) as e:
        console.print(f"[red]lrtune train:[/red] {with_flags(e, args)}", soft_wrap=True)
        return EXIT_USAGE
    steps = int(config["steps"]) if isinstance(config["steps"], int) else 0
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    progress = Progress(*columns, console=console, transient=False)  # shown from the first update on
    task = progress.add_task(workload.name, total=steps, info="")
    seen = {"items": 0, "start": time.perf_counter()}

    def show(line: dict[str, Any]) -> None:
        if not progress.live.is_started:
            progress.start()
        if "loss" in line:
            unit = "tok" if "tokens" in line else "ex"
            seen["items"] += line.get("tokens", line.get("examples", 0))
            rate = seen["items"] / max(time.perf_counter() - seen["start"], 1e-9)
            info = f"loss {line['loss']:.4g}  lr {line['lr']:.3g}  {rate:,.0f} {unit}/s"
            progress.update(task, completed=line["step"], info=info)
        else:
            progress.console.print(f"update {line['step']}: {_metrics(line['eval'])}")

    try:
        record = train(
            workload,
            out_dir=args.out,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            overwrite=args.overwrite,
            diagnostics=args.diagnostics,
            callback=show,
            **config,
        )
    except (ValueError, TypeError, OSError) as e:
        _stop(progress)
        console.print(f"[red]lrtune train:[/red] {with_flags(e, args)}", soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _stop(progress)
        console.print("[red]lrtune train:[/red] interrupted inside an update: nothing saved since the last checkpoint")
        return EXIT_INTERRUPTED
    _stop(progress)
    console.print(
        f"{record.status} after {record.steps} updates in {record.seconds:.1f} s: {_metrics(record.final_metrics)}"
    )
    if record.status == "interrupted" and args.out is not None:
        console.print(f"saved: continue with the same command and --resume (out {args.out})")
    return {"completed": 0, "diverged": EXIT_DIVERGED, "interrupted": EXIT_INTERRUPTED}[record.status]


def _stop(progress: Any) -> None:
    if progress.live.is_started:
        progress.stop()


def _metrics(metrics: dict[str, Any]) -> str:
    if not metrics:
        return "no evaluation yet"
    return ", ".join(f"{k} {'n/a' if v is None else format(v, '.4g')}" for k, v in metrics.items())


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
    train = sub.add_parser(
        "train",
        help="train a workload with an optimizer and a schedule",
        description="Train a workload with an optimizer and a schedule. With --config FILE (a run config: a run's "
        "config.json, a sweep's best.json, a study's recommended.json, auto.json) the flags given explicitly "
        "override the file's values (--steps moves the end of a schedule that ended with the run; --optimizer "
        "replaces the optimizer, keeping its lr); with --resume the run's own config.json is the config and "
        "only --steps may change (the run is extended, its schedule kept). Exit codes: 0 completed, 2 bad input, "
        "3 diverged, 130 interrupted (Ctrl-C: a checkpoint is saved in --out; --resume continues).",
    )
    d = RUN_FLAGS
    train.add_argument(
        "--workload",
        default=None,
        help=f"a built-in or registered workload name, or package.module:NAME (default {d['workload']})",
    )
    add_workload_option(train)
    train.add_argument("--config", type=Path, help="a run config (JSON); explicit flags override its values")
    train.add_argument("--optimizer", default=None, choices=["sgd", "adam", "adamw", "radam"])
    train.add_argument("--lr", type=float, default=None, help=f"peak LR (default {d['lr']})")
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument(
        "--schedule", default=None, help="constant, warmup_linear_decay (default), warmup_cosine or JSON"
    )
    train.add_argument("--warmup-steps", type=int, default=None, help="updates of linear warm-up (default 0)")
    train.add_argument("--final", type=float, default=None, help="final LR multiplier of the decay (default 0)")
    train.add_argument("--steps", type=int, default=None, help="optimizer updates (default: the workload's hint)")
    train.add_argument("--batch-size", type=int, default=None, help="default: the workload's batch hint, else 64")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--eval-every", type=int, default=None, help="default: at the end only")
    train.add_argument("--max-grad-norm", type=float, default=None)
    train.add_argument("--out", type=Path, default=None, help="run directory (config.json, metrics.jsonl, run.json)")
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument(
        "--diagnostics",
        action="store_true",
        help="record gradient histograms, adaptive-LR statistics and update ratios (lrtune report shows them)",
    )
    train.set_defaults(func=_train_command)
