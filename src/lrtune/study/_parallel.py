"""Helper worker processes that share a study phase with the process that runs the study (``jobs`` > 1).

A small model does not keep several cores busy: on 2 cores two runs of the tiny translation Transformer at one
thread each train about 1.3 times as many updates per second as one run at two threads. Each helper is a
spawned process (it imports the workload again from its reference) that works on the same study in the same
storage: screening runs until none is left, then (once the screening has ended) finalists. The grid sampler
gives each worker points that no other holds (see :mod:`lrtune.tune._samplers`), so nothing is trained twice.
The process that started the helpers writes the results and waits for them before it reads the last ones.
Every worker trains at ``threads // jobs`` of torch's threads, the whole study long: a run's numbers depend on its
thread count (the order of floating-point sums), so they must not depend on when another worker finished.

Interruptions: helpers leave their terminal's process group, so a Ctrl-C reaches the study's process only,
which passes each press on to the helpers (the first finishes their update and queues their trial again, as in
the study's own process). A helper whose parent is gone (``kill -9``) interrupts itself the same way, and one
that ends abnormally leaves its trial to the study's process, which trains what is left after joining them.

Logging: a helper's records (at the level of the study process's ``lrtune`` logger) are passed to the study's
process and handled there by the logger of their name, so they look like the study's own (its handlers, its
format) and go where the user sent the study's.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

_WATCH_SECONDS = 1.0
_sent: list[Any] = []  # in a helper: the queue its log records go to


@contextlib.contextmanager
def helpers(count: int, target: Callable[[Any], None], spec: Any, threads: int) -> Iterator[list[Any]]:
    """Run ``target(spec)`` in ``count`` spawned processes at ``threads`` torch threads each while the body runs;
    on leaving, wait for them. An exception in the body (Ctrl-C included) is passed on to the helpers as one
    SIGINT before waiting; each Ctrl-C while waiting is passed on too. Yields the processes."""
    context = multiprocessing.get_context("spawn")
    parent = os.getpid()
    records: Any = context.Queue()
    log = (records, logging.getLogger("lrtune").getEffectiveLevel())
    procs = [
        context.Process(target=_helper, args=(target, spec, threads, parent, log), name=f"lrtune-helper-{i + 1}")
        for i in range(count)
    ]
    listener = logging.handlers.QueueListener(records, _Dispatch())
    listener.start()
    try:
        for p in procs:
            p.start()
        try:
            yield procs
        except BaseException:
            _signal(procs)
            _join(procs, interrupted=True)
            raise
        _join(procs)
    finally:
        listener.stop()  # (the records the helpers sent before they ended are handled first)


class _Dispatch(logging.Handler):
    """Handles a helper's record in this process, by the logger of its name (its handlers, its format)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def _signal(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGINT)


def _join(procs: list[Any], interrupted: bool = False) -> None:
    """Wait for every helper; a Ctrl-C meanwhile goes on to them (a second one stops them at once) and is
    raised when they are gone. A helper that ended abnormally without being interrupted is logged."""
    pressed = False
    while any(p.is_alive() for p in procs):
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            pressed = True
            _signal(procs)
    for p in procs:
        if p.exitcode not in (0, None) and not (interrupted or pressed):
            logger.warning("helper %s ended with exit code %s; its trials are run again", p.name, p.exitcode)
    if pressed:
        raise KeyboardInterrupt


def _helper(
    target: Callable[[Any], None], spec: Any, threads: int, parent: int, log: tuple[Any, int] | None = None
) -> None:
    """A helper process's body: its own process group, its log records sent to the parent (``log``: a queue and
    the level), torch's threads, a watch on its parent, then the work."""
    os.setpgrp()
    if log is not None:
        records, level = log
        _sent.append(records)
        root = logging.getLogger()
        root.handlers[:] = [logging.handlers.QueueHandler(records)]
        root.setLevel(level)
    # a Ctrl-C passed on, or the watch below, must interrupt the work, also where SIGINT was ignored when the study
    # started (a background job of a shell without job control): the interrupt is how a helper stops cleanly
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # (an interrupt while torch is imported, seconds, ends the helper as quietly as one during the work)
        import torch

        torch.set_num_threads(threads)
        with contextlib.suppress(ImportError):
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
        target(spec)
    except KeyboardInterrupt:
        sys.exit(130)


def _watch(parent: int) -> None:
    """Interrupt this process (as a Ctrl-C would: the update in hand finishes, its trial is queued again) once
    its parent is gone."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    for records in _sent:  # nobody reads them any more: ending must not wait to send them
        records.cancel_join_thread()
    os.kill(os.getpid(), signal.SIGINT)
