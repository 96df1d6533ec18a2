"""The ``lrtune`` command line."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lrtune`` with ``argv`` (default: the process's arguments); returns the exit status. Ctrl-C at any
    point ends it with one line and status 130 (while the libraries load, once they have loaded: an import cut in
    the middle would leave them broken)."""
    pressed: list[int] = []
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        from ._main import run  # torch and the rest of what every command needs
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    try:
        if pressed:
            raise KeyboardInterrupt
        return run(argv)
    except KeyboardInterrupt:
        sys.stderr.write("lrtune: interrupted\n")
        return 130
