"""A study's helper processes (``jobs`` > 1): torch's threads follow the work, and helpers stop with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    """A helper's work: record its thread count, then wait until it has ``total`` threads and record that."""
    path, total = spec
    Path(path).write_text(f"{torch.get_num_threads()}\n")
    if _until(lambda: torch.get_num_threads() == total):
        with open(path, "a") as f:
            f.write(f"{torch.get_num_threads()}\n")


def return_at_once(spec: object) -> None:
    pass


def test_a_done_worker_hands_its_threads_to_the_helpers(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        with helpers(1, wait_for_threads, (str(tmp_path / "threads"), 2), 2) as share:
            assert torch.get_num_threads() == 1  # two workers, two threads: one each
            assert _until(lambda: (tmp_path / "threads").is_file())
            share.done()  # this process is done: the helper gets both threads
        assert (tmp_path / "threads").read_text().split() == ["1", "2"]
    finally:
        torch.set_num_threads(before)


def test_a_helper_that_ends_hands_its_threads_back(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        with helpers(1, return_at_once, None, 2):
            assert torch.get_num_threads() == 1
            assert _until(lambda: torch.get_num_threads() == 2)  # SIGCHLD: the helper is gone
    finally:
        torch.set_num_threads(before)


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
