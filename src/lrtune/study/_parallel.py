"""Helper worker processes that share a study phase with the process that runs the study (``jobs`` > 1).

A small model does not keep several cores busy: on 2 cores two runs of the tiny translation Transformer at one
thread each train about 1.3 times as many updates per second as one run at two threads. Each helper is a
spawned process (it imports the workload again from its reference) that works on the same study in the same
storage: screening runs until none is left, then (once the screening has ended) finalists. The grid sampler
gives each worker points that no other holds (see :mod:`lrtune.tune._samplers`), so nothing is trained twice.
The process that started the helpers writes the results and waits for them before it reads the last ones.
torch's threads are shared among the workers still training: one that is done hands its threads to the others.

Interruptions: helpers leave their terminal's process group, so a Ctrl-C reaches the study's process only,
which passes each press on to the helpers (the first finishes their update and queues their trial again, as in
the study's own process). A helper whose parent is gone (``kill -9``) interrupts itself the same way, and one
that ends abnormally leaves its trial to the study's process, which trains what is left after joining them.
"""

from __future__ import annotations

import contextlib
import logging
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


@contextlib.contextmanager
def helpers(count: int, target: Callable[[Any], None], spec: Any, total: int) -> Iterator[_Balance]:
    """Run ``target(spec)`` in ``count`` spawned processes while the body runs; on leaving, wait for them.
    torch's ``total`` threads are shared among the workers still training (this process and the helpers): each
    starts with ``total // (count + 1)``, and when one is done (a helper ends; this process says so with the
    yielded object's :meth:`~_Balance.done`, or waits in its :meth:`~_Balance.idle`) the others take its threads.
    An exception in the body (Ctrl-C included) is passed on to the helpers as one SIGINT before waiting; each
    Ctrl-C while waiting is passed on too."""
    context = multiprocessing.get_context("spawn")
    share = context.Value("i", max(1, total // (count + 1)), lock=False)
    ready = context.Array("b", count, lock=False)
    parent = os.getpid()
    procs = [
        context.Process(target=_helper, args=(target, spec, share, ready, i, parent), name=f"lrtune-helper-{i + 1}")
        for i in range(count)
    ]
    for p in procs:
        p.start()
    balance = _Balance(procs, share, ready, total)
    try:
        with balance:
            yield balance
    except BaseException:
        _signal(procs)
        _join(procs)
        raise
    _join(procs)


class _Balance:
    """Shares torch's threads among the workers that are still training (see :func:`helpers`); rebalances when a
    helper ends (SIGCHLD, handled in the main thread, where torch's thread count takes effect) and when this
    process is done. Without the main thread (signals need it) the workers keep their first share."""

    def __init__(self, procs: list[Any], share: Any, ready: Any, total: int) -> None:
        self.procs, self.share, self.ready, self.total = procs, share, ready, total
        self.busy = True
        self.enabled = threading.current_thread() is threading.main_thread()
        self._previous: Any = None

    def __enter__(self) -> _Balance:
        import torch

        torch.set_num_threads(self.share.value)
        if self.enabled:
            self._previous = signal.signal(signal.SIGCHLD, self._child_ended)
            signal.siginterrupt(signal.SIGCHLD, False)  # system calls in progress resume
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGCHLD, self._previous if self._previous is not None else signal.SIG_DFL)

    def done(self) -> None:
        """This process has nothing more to train: its threads go to the helpers."""
        self.busy = False
        self.rebalance()

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """This process waits (its threads go to the helpers meanwhile), then trains again."""
        self.done()
        try:
            yield
        finally:
            self.busy = True
            self.rebalance()

    def _child_ended(self, signum: int, frame: Any) -> None:
        self.rebalance()

    def rebalance(self) -> None:
        import torch

        alive = [(i, p) for i, p in enumerate(self.procs) if p.is_alive()]
        workers = len(alive) + self.busy
        each = max(1, self.total // max(1, workers))
        self.share.value = each
        if self.busy:
            torch.set_num_threads(each)
        if not self.enabled:
            return
        for i, p in alive:  # a helper not yet ready reads the new share itself when it is
            if self.ready[i] and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGUSR1)


def _signal(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGINT)


def _join(procs: list[Any]) -> None:
    """Wait for every helper; a Ctrl-C meanwhile goes on to them (a second one stops them at once) and is
    raised when they are gone."""
    interrupted = False
    while any(p.is_alive() for p in procs):
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            interrupted = True
            _signal(procs)
    for p in procs:
        if p.exitcode not in (0, None) and not interrupted:
            logger.warning("helper %s ended with exit code %s; its trials are run again", p.name, p.exitcode)
    if interrupted:
        raise KeyboardInterrupt


def _helper(target: Callable[[Any], None], spec: Any, share: Any, ready: Any, index: int, parent: int) -> None:
    """A helper process's body: its own process group, torch's threads (its share, updated on SIGUSR1), a watch
    on its parent, then the work."""
    os.setpgrp()
    import torch

    def take_share(signum: int = 0, frame: Any = None) -> None:
        torch.set_num_threads(share.value)

    signal.signal(signal.SIGUSR1, take_share)
    signal.siginterrupt(signal.SIGUSR1, False)
    ready[index] = 1
    take_share()
    with contextlib.suppress(ImportError):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    try:
        target(spec)
    except KeyboardInterrupt:
        sys.exit(130)


def _watch(parent: int) -> None:
    """Interrupt this process (as a Ctrl-C would: the update in hand finishes, its trial is queued again) once
    its parent is gone."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGINT)
