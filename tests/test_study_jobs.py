"""A study's helper processes (``jobs`` > 1): their threads, and they stop with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lrtune.study._parallel import helpers


def _until(predicate: object, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def wait_for_threads(spec: tuple[str, int]) -> None:
    """A helper's work: record its thread count, then wait (up to a minute) until it has ``total`` threads."""
    path, total = spec
    Path(path).write_text(f"{torch.get_num_threads()}\n")
    _until(lambda: torch.get_num_threads() == total)


def test_helpers_train_at_the_threads_given(tmp_path: Path) -> None:
    """Each worker keeps its thread count the whole study (a run's numbers depend on it)."""
    before = torch.get_num_threads()
    with helpers(2, wait_for_threads, (str(tmp_path / "threads"), 3), 3):
        pass
    assert (tmp_path / "threads").read_text().split() == ["3"]
    assert torch.get_num_threads() == before  # this process's own are the caller's to set


SCRIPT = """
import sys, time
from lrtune.study._parallel import helpers
from test_study_jobs import wait_for_threads

if __name__ == "__main__":
    with helpers(1, wait_for_threads, (sys.argv[1], 99), 2):
        time.sleep(600)
"""


def test_a_helper_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    (tmp_path / "parent.py").write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(tmp_path / "threads")], env=env)
    try:
        assert _until(lambda: (tmp_path / "threads").is_file())
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        helper = next(int(pid) for pid in children if "spawn_main" in _cmdline(int(pid)))  # not a resource tracker
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    def gone() -> bool:
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{helper}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

    assert _until(gone, timeout=30)  # it interrupted itself (its work raised KeyboardInterrupt) and exited


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return ""


STARTING = """
import os, sys
import pytest
import torch
from lrtune.study._parallel import _helper

def interrupted(threads):  # a Ctrl-C passed on by the study while the helper sets itself up
    raise KeyboardInterrupt

torch.set_num_threads = interrupted
_helper(print, "work", 1, os.getppid())
"""


def test_a_helper_interrupted_while_it_starts_exits_quietly(tmp_path: Path) -> None:
    """The study passes a Ctrl-C on to its helpers at once, also to one still importing torch (seconds): it ends
    as one interrupted in its work does (exit code 130), not with a traceback, and does no work."""
    (tmp_path / "helper.py").write_text(STARTING)
    done = subprocess.run([sys.executable, str(tmp_path / "helper.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and "Traceback" not in done.stderr and done.stdout == "", done.stderr


def log_from_helper(message: str) -> None:
    """A helper's work: log at INFO (below the study's level: not sent) and at WARNING."""
    import logging

    logging.getLogger("lrtune.study.test").info("not shown %s", message)
    logging.getLogger("lrtune.study.test").warning("from the helper: %s", message)


def test_a_helpers_log_records_are_handled_by_the_study_process(caplog: pytest.LogCaptureFixture) -> None:
    """A helper's warnings reach the study's own logging (its handlers and format: here pytest's), with their
    level and logger name, and its records below the study's level are not sent."""
    import logging

    with caplog.at_level(logging.WARNING, logger="lrtune"), helpers(1, log_from_helper, "x = 1", 1):
        pass
    mine = [r for r in caplog.records if r.name == "lrtune.study.test"]
    assert [(r.levelname, r.getMessage()) for r in mine] == [("WARNING", "from the helper: x = 1")]
