"""Many workers on one study: two concurrent `lrtune sweep` processes share a PostgreSQL storage.

A private PostgreSQL server (Debian's `postgresql` package, which `make test` installs as root) is started on
loopback in a temporary directory for the test; without the server binaries or the driver the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = (
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
    if Path("/usr/lib/postgresql").is_dir()
    else None
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg (3) is not installed")
    if PG_BIN is None:
        pytest.skip("no PostgreSQL server binaries (make test installs Debian's postgresql as root)")
    root = Path(
        tempfile.mkdtemp(prefix="lrtune-pg-")
    )  # not under pytest's root-only tmp tree: the server user reads it
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: use the package's postgres account
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=60)  # noqa: E731
    run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "lrtune", "--auth=trust")
    options = f"-h 127.0.0.1 -p {port} -k {root}"
    run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "lrtune", "sweeps")
        yield f"postgresql://lrtune@127.0.0.1:{port}/sweeps"
    finally:
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    import optuna

    space = tmp_path / "space.json"
    space.write_text(
        json.dumps({"optimizer": ["adam", "radam", "sgd_clip"], "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"}})
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lrtune.cli",
                "sweep",
                "--workload",
                "digits",
                "--space",
                str(space),
                "--trials",
                "4",
                "--steps",
                "30",
                "--storage",
                postgres_url,
                "--study",
                "shared",
                "--sampler",
                "random",
                "--pruner",
                "none",
                "--seed",
                str(i),
                "--out",
                str(tmp_path / f"worker{i}"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 8  # every trial of both workers, each recorded once
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t._trial_id for t in trials}) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert any("8 trials" in out for out in outputs)  # the later worker saw the other's trials too
