"""Where a sweep's study lives and who is working on it: the Optuna storage, heartbeats, dead workers, and the
guard that keeps a study's results from being overwritten by another study.

* :func:`open_storage`: an RDB storage with heartbeats (SQLite by default, PostgreSQL across machines). A file
  that is not a database is refused with one line naming it.
* :class:`Heartbeats`: beats for trials driven by ask-and-tell (Optuna beats only inside ``optimize``).
* :func:`mark_worker` / :func:`fail_dead_workers`: each trial records the host and process that runs it; a
  worker on the same host fails (and retries) at once the trials of a process that no longer exists, where
  heartbeats alone wait three beats (across hosts they are the only signal). A running trial in a SQLite
  storage that no worker marked within two minutes of its start is a process's that died between taking it
  and marking it (before any heartbeat): it is failed too, and retried if it had a setting to retry.
* :func:`check_results`: refuses to continue into an output folder whose results the storage does not hold (an
  emptied or replaced ``lrtune.db``), so that ``trials.csv`` and ``best.json`` are never overwritten by another
  study.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "Heartbeats",
    "Retry",
    "check_results",
    "default_storage",
    "fail_dead_workers",
    "live_running_trials",
    "mark_worker",
    "open_storage",
    "optuna",
    "without_experimental_warnings",
]

logger = logging.getLogger(__name__)


def optuna() -> Any:
    """The ``optuna`` module (an extra: ``pip install 'lrtune[tune]'``)."""
    try:
        import optuna as module
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("sweeps need Optuna: pip install 'lrtune[tune]'") from e
    return module


@contextlib.contextmanager
def without_experimental_warnings() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and their retries are marked experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna().exceptions.ExperimentalWarning)
        yield


def default_storage(out_dir: Path) -> str:
    """The embedded storage of a sweep written to ``out_dir``: ``sqlite:///OUT/lrtune.db``."""
    return f"sqlite:///{(Path(out_dir) / 'lrtune.db').resolve()}"


def open_storage(url: str, heartbeat: float) -> Any:
    """An RDB storage with heartbeats; creating the tables is retried (workers that start together race), a
    file that is not a database is refused at once (``ValueError`` naming it)."""
    from sqlalchemy.exc import DatabaseError, SQLAlchemyError

    # SQLite locks the whole file per write: wait for the other workers' writes rather than fail at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(6):
        try:
            with without_experimental_warnings():
                return optuna().storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=max(1, round(heartbeat)),
                    grace_period=max(2, round(3 * heartbeat)),
                    heartbeat_stale_trial_callback=Retry(max_retry=1),
                )
        except SQLAlchemyError as e:
            if isinstance(e, DatabaseError) and any(m in str(e) for m in _NOT_A_DATABASE):
                raise ValueError(
                    f"{url} is not a readable Optuna storage ({_reason(e)}): move it away, or point --out/--storage "
                    "elsewhere"
                ) from None
            if attempt == 5:  # (a race with another worker creating the tables does not last that long)
                raise ValueError(f"cannot open the storage {url} ({_reason(e)})") from None
        logger.info("storage %s busy (another worker creating it?): retrying", url)
        time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


_NOT_A_DATABASE = ("file is not a database", "malformed", "not a database")


def _reason(error: Exception) -> str:
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).splitlines()[0]


class Heartbeats:
    """Records a heartbeat for each trial in ``alive`` every ``interval`` seconds, in a daemon thread: trials
    driven by ask-and-tell (which Optuna does not beat for) are then failed, and retried, when their worker dies."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.alive: dict[int, Any] = {}  # trial number -> trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lrtune-heartbeats", daemon=True)

    def _beat(self) -> None:
        while True:
            for trial in list(self.alive.values()):
                self.storage.record_heartbeat(trial._trial_id)  # Optuna has no public accessor for the id
            if self._stop.wait(self.interval):
                return

    def add(self, trial: Any) -> None:
        """Beat for ``trial`` from now on (the first beat at once: a worker killed sooner still leaves one)."""
        self.storage.record_heartbeat(trial._trial_id)
        self.alive[trial.number] = trial

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------------------------
# who runs a trial


def _stat(pid: int) -> list[str] | None:
    """Process ``pid``'s /proc/PID/stat fields from the third (its state) on (Linux; None: no such file). They
    follow the command name, which may hold spaces."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot, from /proc), to tell a reused pid apart."""
    fields = _stat(pid)
    return fields[19] if fields else None  # field 22


def _exited(pid: int) -> bool:
    """Whether process ``pid`` has exited and only waits for its parent to reap it (a zombie: Linux, from /proc)."""
    fields = _stat(pid)
    return fields is not None and fields[0] in ("Z", "X")  # field 3, the state


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def worker_identity() -> dict[str, Any]:
    """This process: host, boot, pid and start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "started": _start_time(pid)}


def mark_worker(trial: Any) -> None:
    """Record on ``trial`` (a user attribute ``worker``) which process runs it."""
    trial.set_user_attr("worker", worker_identity())


# what a trial's run records about itself: a retry starts without them
_RUN_ATTRS = frozenset({"worker", "threads", "updates", "train_seconds", "status", "final_metrics"})


class Retry:
    """Optuna's retry of a failed trial (a ``RetryHeartbeatStaleTrialCallback``), queued without the user
    attributes that describe the failed run: which process ran it, at how many threads, what it trained. Copied,
    they would say that the retry, from the moment a worker takes it until the worker marks it, is the failed
    run's (a gone process's), so another worker would fail it as dead; and they would count the failed run's
    updates twice."""

    def __init__(self, max_retry: int | None) -> None:
        self.max_retry = max_retry

    def __call__(self, study: Any, trial: Any) -> None:
        queued = copy.copy(trial)
        queued.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _RUN_ATTRS}
        with without_experimental_warnings():
            optuna().storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)(study, queued)


def _is_dead(worker: dict[str, Any]) -> bool:
    """Whether a worker recorded on this host is certainly gone (another host's: unknown, so False)."""
    if worker.get("host") != socket.gethostname():
        return False
    if worker.get("boot") and worker.get("boot") != _boot_id():
        return True  # the machine rebooted since
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    if _exited(pid):  # e.g. a helper process its study has not joined yet
        return True
    started = worker.get("started")
    return started is not None and _start_time(pid) not in (None, started)  # the pid was reused


# How long a running trial may stay without a worker's mark. A worker marks a trial as the first thing it does
# with it (its storage writes wait up to 60 s for SQLite's lock); a trial still unmarked after this is a process's
# that died between taking it and marking it, before any heartbeat, which neither Optuna's stale-heartbeat check
# nor the process check sees.
UNMARKED_GRACE = 120.0
UNMARKED_NOTICE = 10.0  # unmarked this long, a trial that is waited for is named, with the reason


def _sqlite(study: Any) -> bool:
    """Whether ``study`` lives in SQLite: one machine, whose clock wrote its trials' start times."""
    storage = study._storage
    url = getattr(getattr(storage, "_backend", storage), "url", "")
    return isinstance(url, str) and url.startswith("sqlite")


def _age(trial: Any) -> float:
    """Seconds since ``trial`` started, by this host's clock (0 when it has no start)."""
    start = trial.datetime_start
    return (datetime.datetime.now() - start).total_seconds() if start is not None else 0.0


def _gone(trial: Any, sqlite: bool) -> bool:
    """Whether a running trial's worker is certainly gone: a process on this host that no longer exists, or (in a
    SQLite storage) no worker's mark ``UNMARKED_GRACE`` seconds after the trial started."""
    worker = trial.user_attrs.get("worker")
    if isinstance(worker, dict):
        return _is_dead(worker)
    return sqlite and _age(trial) > UNMARKED_GRACE


def live_running_trials(study: Any) -> list[Any]:
    """The study's running trials whose worker may still train them: not one whose worker is gone (see
    :func:`fail_dead_workers`), nor one elsewhere whose heartbeats stopped (Optuna fails those here, and queues
    them again where the storage has heartbeats)."""
    with without_experimental_warnings():
        optuna().storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,))
    sqlite = _sqlite(study)
    live = [t for t in running if not _gone(t, sqlite)]
    for t in live:  # one unmarked for a while (a worker marks a trial at once): say why this waits
        key = (study.study_name, t.number)
        if sqlite and "worker" not in t.user_attrs and key not in _told and _age(t) > UNMARKED_NOTICE:
            _told.add(key)
            logger.warning(
                "%s, trial %d is running but no worker has marked it: if none does within %.0f s of its start (a "
                "worker killed as it took it), it is treated as dead",
                study.study_name,
                t.number,
                UNMARKED_GRACE,
            )
    return live


_told: set[tuple[str, int]] = set()  # the unmarked trials already warned of


def fail_dead_workers(study: Any, storage: Any) -> list[int]:
    """Fail the running trials whose worker is gone and retry them (once, as a stale heartbeat would after its
    grace period); returns their numbers. Gone: a process on this host that no longer exists, or, in a SQLite
    storage, a worker that never marked the trial within ``UNMARKED_GRACE`` seconds of its start (it died
    between taking and marking it). Such a trial is retried only if it had a setting to train (an enqueued one,
    or a retry): a fresh one had drawn nothing yet."""
    trial_state = optuna().trial.TrialState
    sqlite = _sqlite(study)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(trial_state.RUNNING,)):
        if not _gone(trial, sqlite):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, state=trial_state.FAIL):
                failed.append(trial.number)
        except optuna().exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
    retry = storage.get_heartbeat_stale_trial_callback()
    for number in failed:
        trial = study.get_trials(deepcopy=True)[number]
        if "worker" not in trial.user_attrs and not trial.params and "fixed_params" not in trial.system_attrs:
            logger.warning("%s, trial %d: its worker died before it drew a setting; failed", study.study_name, number)
            continue
        logger.warning("%s, trial %d: its worker process is gone; failed and queued again", study.study_name, number)
        if retry is not None:
            retry(study, trial)
    return failed


# ------------------------------------------------------------------------------------------------------------
# results that must not be overwritten


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def check_results(out_dir: Path, study_name: str, storage: Any, url: str) -> None:
    """Refuse (``ValueError``, one line) when ``out_dir`` holds the results of trials (``trials.csv``) that the
    storage's study ``study_name`` does not have: continuing would overwrite them with another study's."""
    rows = _rows(out_dir / "trials.csv")
    if not rows:
        return
    names = {str(r["study"]) for r in rows if r.get("study")}
    if names and names != {study_name}:
        raise ValueError(
            f"{out_dir / 'trials.csv'} holds the results of study {sorted(names)[0]!r}, not {study_name!r}: "
            "write this study to another --out"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna().load_study(study_name=study_name, storage=storage)
        have = {t.number for t in study.get_trials(deepcopy=False)}
    except KeyError:
        have = set()
    missing = [r["number"] for r in rows if r.get("number", "").isdigit() and int(r["number"]) not in have]
    if missing:
        where = "has no such study" if not have else f"lacks {len(missing)} of them"
        raise ValueError(
            f"{out_dir / 'trials.csv'} lists {len(rows)} trials of study {study_name!r}, but the storage {url} "
            f"{where} (emptied or replaced?): restore the database, or write to another --out; nothing was changed"
        )
