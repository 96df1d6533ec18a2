"""Sweeps: search spaces as validated data, Optuna trials of lrtune.train, results that lrtune train re-runs."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import optuna
import pytest

from lrtune.cli import main
from lrtune.tune import fixed_params, load_space, run_sweep, suggest

SPACE = {
    "optimizer": ["sgd_clip", "adam", "adam_warmup", "radam"],
    "lr": {"min": 1e-4, "max": 1.0, "scaling": "log"},
    "warmup_steps": {"min": 0, "max": 20, "scaling": "log1p"},
    "batch_size": [32, 64],
}


def test_sweep_writes_trials_and_a_best_config_that_trains(tmp_path: Path) -> None:
    study = run_sweep("digits", SPACE, trials=6, out=tmp_path, steps=40, sampler="random", pruner="none")
    assert len(study.trials) == 6 and (tmp_path / "lrtune.db").is_file()
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == list(range(6))
    for row, trial in zip(rows, study.trials, strict=True):
        config = trial.user_attrs["config"]
        assert row["recipe"] == config["recipe"]
        if not config["recipe"].endswith("_warmup"):
            assert "warmup_steps_log1p" not in trial.params and config["schedule"]["warmup_steps"] == 0  # conditional
        if config["recipe"] == "sgd_clip":
            assert config["max_grad_norm"] == 1.0
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["workload"] == "digits" and best["steps"] == 40
    finite = [t.value for t in study.trials if t.value is not None and math.isfinite(t.value)]
    assert (
        best["optimizer"]["lr"]
        == min((t for t in study.trials if t.value in finite), key=lambda t: t.value).user_attrs["config"]["optimizer"][
            "lr"
        ]
    )
    assert main(["train", "--config", str(tmp_path / "best.json"), "--out", str(tmp_path / "rerun")]) == 0
    for picture in ("loss_vs_lr.png", "history.png"):
        assert (tmp_path / picture).stat().st_size > 5_000


def test_grid_sampler_covers_the_grid(tmp_path: Path) -> None:
    space = {"optimizer": ["adam", "radam"], "lr": [1e-3, 1e-2]}
    study = run_sweep("digits", space, trials=4, out=tmp_path, steps=10, sampler="grid", pruner="none")
    combos = {(t.params["optimizer"], t.params["lr"]) for t in study.trials}
    assert combos == {(o, lr) for o in ("adam", "radam") for lr in (1e-3, 1e-2)}
    with pytest.raises(ValueError, match="grid sampler needs lists"):
        run_sweep("digits", SPACE, trials=1, out=tmp_path / "x", steps=10, sampler="grid")


def test_given_grid_points_run_in_their_order_at_the_threads_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import lrtune.tune._trial

    trained_at: list[int] = []
    train = lrtune.tune._trial.train

    def counted(*args: object, **kwargs: object) -> object:
        trained_at.append(torch.get_num_threads())
        return train(*args, **kwargs)

    monkeypatch.setattr(lrtune.tune._trial, "train", counted)
    space = {"optimizer": ["adam", "radam"], "lr": [1e-3, 1e-2]}
    points = [{"optimizer": "radam", "lr": 1e-2}, {"optimizer": "adam", "lr": 1e-3}, {"optimizer": "adam", "lr": 1e-2}]
    own = torch.get_num_threads()
    seen: list[int] = []

    def threads(params: dict[str, object]) -> int | None:
        return own + 1 if params == points[-1] else None

    def watch(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen.append(torch.get_num_threads())  # (after the trial: restored)

    kw: dict[str, object] = {"out": tmp_path, "steps": 10, "sampler": "grid", "pruner": "none", "grid": points}
    study = run_sweep("digits", space, trials=None, threads=threads, callbacks=[watch], **kw)
    assert [t.params for t in study.trials] == points  # the first free point each time, in the order given
    assert [t.user_attrs["threads"] for t in study.trials] == trained_at == [own, own, own + 1]
    assert seen == [own] * 3 and torch.get_num_threads() == own
    with pytest.raises(ValueError, match="threads sets a trial's threads"):
        run_sweep("digits", space, trials=1, out=tmp_path / "x", steps=10, pruner="sh", threads=threads)


class _Deadline:
    """An interrupt check that fails a wait still going after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        import time

        self.until = time.monotonic() + seconds

    def check(self) -> None:
        import time

        if time.monotonic() > self.until:
            raise AssertionError("still waiting")


def test_a_trial_given_more_threads_waits_for_the_others_and_ctrl_c_stops_the_wait(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time

    from lrtune.tune._storage import _exited
    from lrtune.tune._trial import HeldInterrupt, _wait_alone

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'waits.db'}")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])  # not reaped yet: a zombie, as a helper ended
    while not _exited(exited.pid):  # but not yet joined by its study
        time.sleep(0.05)

    def running(pid: int, big: bool = False) -> optuna.Trial:
        trial = study.ask()
        if big:
            trial.suggest_categorical("big", [True])
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": pid})
        return trial

    def threads(params: dict[str, object]) -> int | None:
        return 2 if params.get("big") else None

    try:
        mine = running(os.getpid(), big=True)
        other = running(alive.pid)  # waited for, until it ends
        running(gone.pid)  # its worker is gone: not waited for
        running(exited.pid)  # nor one that has exited
        running(alive.pid, big=True)  # given more threads too: trains beside this one
        threading.Timer(1.5, lambda: study.tell(other, 1.0)).start()
        began = time.monotonic()
        _wait_alone(mine, threads, 1, _Deadline(20), poll=0.1)  # type: ignore[arg-type]
        assert 1.4 < time.monotonic() - began < 20
        running(alive.pid)
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        with HeldInterrupt() as interrupt, pytest.raises(KeyboardInterrupt):
            _wait_alone(mine, threads, 1, interrupt, poll=0.1)  # the first Ctrl-C: held, then the wait stops
    finally:
        alive.kill()
        alive.wait()
        exited.wait()


def test_the_same_command_continues_the_study(tmp_path: Path) -> None:
    run_sweep("digits", SPACE, trials=3, out=tmp_path, steps=20, sampler="random", pruner="none")
    study = run_sweep("digits", SPACE, trials=2, out=tmp_path, steps=20, sampler="random", pruner="none")
    assert len(study.trials) == 5
    assert len(list(csv.DictReader((tmp_path / "trials.csv").open()))) == 5


def test_diverged_runs_are_values_and_pruning_stops_bad_trials(tmp_path: Path) -> None:
    space = {"optimizer": ["sgd"], "lr": {"min": 1e3, "max": 1e4, "scaling": "log"}}
    study = run_sweep("digits", space, trials=2, out=tmp_path / "a", steps=30, sampler="random", pruner="none")
    assert all(t.value == math.inf and t.user_attrs["status"] == "diverged" for t in study.trials)
    assert not (tmp_path / "a" / "best.json").exists()
    space = {"optimizer": ["adam"], "lr": {"min": 1e-6, "max": 1e-1, "scaling": "log"}}
    study = run_sweep("digits", space, trials=12, out=tmp_path / "b", steps=40, evals_per_trial=4, pruner="median")
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.COMPLETE in states
    assert optuna.trial.TrialState.PRUNED in states  # the median pruner stops the worst runs early


def test_sweep_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "space.json").write_text(json.dumps({"optimizer": ["adam", "radam"], "lr": [1e-3, 1e-2]}))
    args = ["sweep", "--workload", "digits", "--space", str(tmp_path / "space.json"), "--trials", "3"]
    assert main([*args, "--steps", "20", "--out", str(tmp_path / "out"), "--sampler", "random"]) == 0
    assert "best" in capsys.readouterr().out
    assert (tmp_path / "out" / "best.json").is_file()
    first = '{"optimizer": "adam", "lr": 0.001}'
    more = ["--enqueue", "radam", "--enqueue", first, "--evals-per-trial", "2"]
    assert main([*args, "--steps", "20", "--out", str(tmp_path / "enq"), *more]) == 0
    study = optuna.load_study(study_name="lrtune", storage=f"sqlite:///{tmp_path / 'enq' / 'lrtune.db'}")
    assert [t.user_attrs["config"]["recipe"] for t in study.trials[:2]] == ["radam", "adam"]
    assert main([*args, "--steps", "20", "--out", str(tmp_path / "rt"), "--lr-from-range-test"]) == 0
    study = optuna.load_study(study_name="lrtune", storage=f"sqlite:///{tmp_path / 'rt' / 'lrtune.db'}")
    assert study.user_attrs["range_test"]["suggestion"] == "steepest"
    assert main([*args, "--out", str(tmp_path / "y"), "--enqueue", "bert"]) == 2
    assert "unknown known-good setting 'bert'" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text(json.dumps({"lr": [1e-3], "momentum": [0.9]}))
    assert main(["sweep", "--space", str(tmp_path / "bad.json"), "--trials", "1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown key 'momentum'" in " ".join(capsys.readouterr().out.split())
    (tmp_path / "notjson.json").write_text("lr: 1e-3\n")
    space = str(tmp_path / "space.json")
    for bad, message in [
        (["--space", str(tmp_path / "notjson.json"), "--trials", "1"], f"--space {tmp_path / 'notjson.json'} is not"),
        (["--space", str(tmp_path / "none.json"), "--trials", "1"], "No such file or directory"),
        (["--space", space, "--trials", "1", "--steps", "-3"], "--steps must be >= 1, got -3"),
        (["--space", space, "--trials", "1", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--space", space, "--trials", "-1"], "--trials must be >= 0, got -1"),
    ]:
        assert main(["sweep", *bad, "--out", str(tmp_path / "z")]) == 2, bad
        out = capsys.readouterr().out
        assert message in " ".join(out.split()) and "Trial" not in out and len(out.strip().splitlines()) == 1, out
        assert not (tmp_path / "z").exists()  # nothing written for a command refused


@pytest.mark.parametrize(
    ("space", "pattern"),
    [
        ({"lr": {"min": 0.0, "max": 1.0, "scaling": "log"}}, "log scaling needs min > 0"),
        ({"lr": {"min": 1.0, "max": 0.1}}, "min < max"),
        ({"lr": [1e-3], "optimizer": ["lamb"]}, "unknown recipe 'lamb'"),
        ({"lr": [1e-3], "warmup_steps": {"fraction_of_total": [0.2, 0.1]}}, "fraction_of_total"),
        ({"lr": {"min": 1e-3, "max": 1e-1, "scaling": "cubic"}}, "scaling"),
        ({"optimizer": ["adam"]}, "needs 'lr'"),
        ({"lr": []}, "empty list"),
    ],
)
def test_space_validation(space: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        load_space(space)


def test_fraction_of_total_warmup() -> None:
    space = load_space({"optimizer": ["adam_warmup"], "lr": [1e-3], "warmup_steps": {"fraction_of_total": [0.1, 0.1]}})
    trial = optuna.trial.FixedTrial({"optimizer": "adam_warmup", "lr": 1e-3, "warmup_fraction": 0.1})
    config = suggest(trial, space, {"steps": 500, "batch_size": 64})
    assert config["schedule"] == {"name": "warmup_linear_decay", "warmup_steps": 50, "total_steps": 500}


def test_a_killed_worker_loses_nothing_and_its_trial_is_retried(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "space.json").write_text(
        json.dumps({"optimizer": ["adam"], "lr": {"min": 1e-3, "max": 1e-2, "scaling": "log"}})
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrtune.cli", "sweep", "--workload", "digits", "--space", str(tmp_path / "space.json")]
    cmd += ["--steps", "3000", "--pruner", "none", "--heartbeat", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen([*cmd, "--trials", "5"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage, deadline = f"sqlite:///{out / 'lrtune.db'}", time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # kill it mid-trial, once one trial has completed
            time.sleep(0.3)
            try:
                trials = optuna.load_study(study_name="lrtune", storage=storage).trials
            except Exception:  # the study or its tables may not exist yet
                continue
            states = [t.state for t in trials]
            running = states and states[-1] == optuna.trial.TrialState.RUNNING
            if optuna.trial.TrialState.COMPLETE in states and running and trials[-1].params:
                break  # mid-trial, its parameters sampled (a trial killed before that has none to retry)
        else:
            pytest.fail("the worker never reached a second trial")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    before = optuna.load_study(study_name="lrtune", storage=storage).trials
    killed = before[-1]
    assert killed.state == optuna.trial.TrialState.RUNNING  # as the kill left it
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    assert subprocess.run([*cmd, "--trials", "1"], env=env, capture_output=True, timeout=240).returncode == 0
    after = optuna.load_study(study_name="lrtune", storage=storage).trials
    assert after[killed.number].state == optuna.trial.TrialState.FAIL  # marked failed by the next worker
    for t in before:  # no completed trial lost
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert after[t.number].state == optuna.trial.TrialState.COMPLETE and after[t.number].value == t.value
    retried = [
        t for t in after if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number
    ]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == killed.params


def test_a_retried_trial_is_not_the_failed_runs_so_no_worker_fails_it_as_dead_when_it_starts(tmp_path: Path) -> None:
    """A gone process's trial is failed and queued again. The retry keeps its parameters and what it was given
    (``fixed_lr``, its config), not what describes the failed run (its process, threads, updates): between a
    worker taking it and marking it, another worker must not see it as the gone process's and fail it again."""
    import subprocess
    import sys

    from lrtune.tune._storage import fail_dead_workers, mark_worker, open_storage, worker_identity

    storage = open_storage(f"sqlite:///{tmp_path / 'db'}", heartbeat=60)
    study = optuna.create_study(storage=storage, study_name="s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    study.enqueue_trial({"lr": 0.01}, user_attrs={"fixed_lr": 0.01})
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)})
    run = {"config": {"lr": 0.01}, "threads": 2, "updates": 40, "train_seconds": 1.5}
    for key, value in {**run, "worker": {**worker_identity(), "pid": gone.pid, "started": 1}}.items():
        trial.set_user_attr(key, value)
    assert fail_dead_workers(study, storage) == [trial.number]
    queued = study.trials[-1]
    assert queued.state == optuna.trial.TrialState.WAITING and queued.params == {"lr": 0.01}
    assert queued.user_attrs == {"fixed_lr": 0.01, "config": {"lr": 0.01}}
    retry = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)})  # taken, not yet marked
    assert retry.number == queued.number and fail_dead_workers(study, storage) == []
    mark_worker(retry)
    assert fail_dead_workers(study, storage) == []  # this process: alive
    assert study.trials[retry.number].state == optuna.trial.TrialState.RUNNING


def test_a_trial_whose_worker_died_before_marking_it_is_not_waited_for_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker killed between taking a trial and marking it leaves it running with no process named and no
    heartbeat: neither the process check nor Optuna's stale-heartbeat check sees it, and a study waiting for its
    running trials waited forever. Unmarked past the grace period, it is gone: not waited for, failed, and queued
    again only if it had a setting (an enqueued one); one that drew nothing is not."""
    import logging
    import time

    from lrtune.tune import _storage
    from lrtune.tune._storage import fail_dead_workers, live_running_trials, mark_worker, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'db'}", heartbeat=60)
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"lr": 0.01}, user_attrs={"fixed_lr": 0.01})
    enqueued = study.ask()  # taken by a worker that died before marking it
    fresh = study.ask()  # likewise, before drawing anything
    marked = study.ask()
    mark_worker(marked)  # this process: alive
    running = [t.number for t in live_running_trials(study)]
    assert running == [enqueued.number, fresh.number, marked.number]  # within the grace: may still be marked
    assert fail_dead_workers(study, storage) == []
    monkeypatch.setattr(_storage, "UNMARKED_NOTICE", 0.1)  # unmarked a while: a wait for them says why, once
    time.sleep(0.2)
    with caplog.at_level(logging.WARNING, logger="lrtune"):
        live_running_trials(study)
        live_running_trials(study)
    told = [r.getMessage() for r in caplog.records if "no worker has marked it" in r.getMessage()]
    assert [m.split(" is running")[0] for m in told] == [f"s, trial {enqueued.number}", f"s, trial {fresh.number}"]
    monkeypatch.setattr(_storage, "UNMARKED_GRACE", 0.2)
    time.sleep(0.3)
    assert [t.number for t in live_running_trials(study)] == [marked.number]
    assert fail_dead_workers(study, storage) == [enqueued.number, fresh.number]
    states = {t.number: t.state for t in study.trials}
    assert states[enqueued.number] == states[fresh.number] == optuna.trial.TrialState.FAIL
    assert states[marked.number] == optuna.trial.TrialState.RUNNING
    queued = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == {"lr": 0.01}
    assert fail_dead_workers(study, storage) == []


def test_pruning_waits_for_the_longest_warmup(tmp_path: Path) -> None:
    from lrtune.tune._sweep import _first_rung, max_warmup_fraction

    space = {
        "optimizer": ["adam", "adam_warmup"],
        "lr": {"min": 1e-6, "max": 1e-1, "scaling": "log"},
        "warmup_steps": {"fraction_of_total": [0.5, 0.5]},
    }
    assert max_warmup_fraction(load_space(space), 40) == 0.5
    assert _first_rung(load_space(space), 40, 4) == 3  # evaluations 1 and 2 fall inside a half-run warm-up
    assert _first_rung(load_space({"optimizer": ["adam"], "lr": [1e-3]}), 40, 4) == 1
    assert (
        max_warmup_fraction(load_space({"optimizer": ["adam_warmup"], "lr": [1e-3], "warmup_steps": [0, 30]}), 60)
        == 0.5
    )
    # RAdam's rectification is a warm-up of 2/(1 − β2) updates: 100 for β2 = 0.98, 20 for β2 = 0.9
    radam = {"optimizer": ["adam", "radam"], "lr": [1e-3]}
    assert max_warmup_fraction(load_space(radam), 400) == pytest.approx(0.25)
    assert max_warmup_fraction(load_space({**radam, "beta2": [0.9, 0.95]}), 400) == pytest.approx(0.1)
    assert max_warmup_fraction(load_space({**radam, "beta2": {"min": 0.9, "max": 0.999}}), 400) == 1.0
    assert _first_rung(load_space(radam), 400, 8) == 3
    assert max_warmup_fraction(load_space({"optimizer": ["adam", "sgd_clip"], "lr": [1e-3]}), 400) == 0.0
    study = run_sweep("digits", space, trials=16, out=tmp_path, steps=40, sampler="random", pruner="median")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the sweep should prune some of its worst trials"
    assert all(max(t.intermediate_values) >= 3 for t in pruned)  # never inside anybody's warm-up
    assert all(set(t.intermediate_values) <= {1, 2, 3, 4} for t in study.trials)  # fractions of the schedule


@pytest.mark.parametrize(
    "warmup",
    [{"min": 0, "max": 20, "scaling": "log1p"}, [0, 5, 10], {"min": 0, "max": 20}, {"fraction_of_total": [0, 0.2]}],
)
def test_enqueued_settings_are_what_the_trial_runs(warmup: object) -> None:
    space = load_space({**SPACE, "warmup_steps": warmup, "total_steps": [40, 80]})
    defaults = {"steps": 40, "batch_size": 64}
    entry = {"optimizer": "adam_warmup", "lr": 3e-3, "warmup_steps": 10, "total_steps": 80, "batch_size": 32}
    config = suggest(optuna.trial.FixedTrial(fixed_params(entry, space, defaults)), space, defaults)
    assert config["recipe"] == "adam_warmup" and config["optimizer"]["lr"] == pytest.approx(3e-3)
    assert config["schedule"] == {"name": "warmup_linear_decay", "warmup_steps": 10, "total_steps": 80}
    assert config["batch_size"] == 32 and config["steps"] == 80
    factors = {name: 10.0 for name in SPACE["optimizer"]}  # LRs centred elsewhere: the enqueued LR is still run
    entry = {"optimizer": "radam", "lr": 0.5, "total_steps": 40, "batch_size": 64}
    params = fixed_params(entry, space, defaults, factors)
    assert suggest(optuna.trial.FixedTrial(params), space, defaults, factors)["optimizer"]["lr"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"lr=50.0 \(÷ 10 from the range test\) is outside"):
        fixed_params({"optimizer": "radam", "lr": 50.0}, space, defaults, factors)


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        ("bert", "unknown known-good setting 'bert'"),
        ({"optimizer": "adamw_warmup", "lr": 1e-3}, "enqueued optimizer='adamw_warmup' is outside"),
        ({"optimizer": "adam", "lr": 5.0}, r"enqueued lr=5.0 is outside"),
        ({"optimizer": "adam", "lr": 1e-5}, r"enqueued lr=1e-05 is outside"),
        ({"optimizer": "radam", "lr": 1e-3, "warmup_steps": 5}, "'radam' does not warm up"),
        ({"optimizer": "adam_warmup", "lr": 1e-3, "warmup_steps": 50}, "enqueued warmup_steps=50 is outside"),
        ({"optimizer": "adam", "lr": 1e-3, "total_steps": 50}, "space does not search total_steps"),
        ({"optimizer": "adam", "lr": 1e-3, "momentum": 0.9}, r"unknown keys \['momentum'\]"),
        ({"optimizer": "adam"}, "needs 'lr'"),
    ],
)
def test_enqueue_errors(entry: object, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        fixed_params(entry, load_space(SPACE), {"steps": 40, "batch_size": 64})  # type: ignore[arg-type]


def test_known_good_settings_run_first_and_lrs_centre_on_the_range_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrtune.tune import _sweep

    calls: list[dict] = []
    real = _sweep.lr_range_test

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["optimizer"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_sweep, "lr_range_test", counted)
    space = {
        **SPACE,
        "warmup_steps": {"fraction_of_total": [0.0, 0.1]},
        "lr": {"min": 1e-2, "max": 1.0, "scaling": "log"},
    }
    kwargs = {"out": tmp_path, "steps": 20, "sampler": "random", "pruner": "none", "lr_from_range_test": "valley"}
    study = run_sweep("digits", space, trials=4, enqueue=["noam", "radam"], range_test_steps=30, **kwargs)
    # one range test per distinct optimizer: sgd+clip, adam (adam and adam_warmup), radam
    assert [c["name"] for c in calls] == ["sgd", "adam", "radam"] and calls[0]["max_grad_norm"] == 1.0
    suggested = study.user_attrs["range_test"]["lr"]
    assert suggested["adam"] == suggested["adam_warmup"] and suggested["adam"] > 0
    first, second = (t.user_attrs["config"] for t in study.trials[:2])
    assert (first["recipe"], second["recipe"]) == ("adam_warmup", "radam")
    assert first["optimizer"]["lr"] == pytest.approx(7e-4) and first["schedule"]["warmup_steps"] == 1  # 4 % of 20
    assert second["optimizer"]["lr"] == pytest.approx(1e-3)
    for trial in study.trials[2:]:  # sampled: within one decade of the recipe's suggestion (the space's width)
        config = trial.user_attrs["config"]
        ratio = config["optimizer"]["lr"] / suggested[config["recipe"]]
        assert 0.1 <= ratio <= 10.0
        assert trial.user_attrs["updates"] == 20 and trial.user_attrs["train_seconds"] > 0
    study = run_sweep("digits", space, trials=1, enqueue=["noam", "radam"], **kwargs)  # resumed: nothing repeated
    assert len(calls) == 3 and len(study.trials) == 5
    noam = [t for t in study.trials if t.user_attrs["config"]["optimizer"]["lr"] == first["optimizer"]["lr"]]
    assert len(noam) == 1  # enqueued once per study
    with pytest.raises(ValueError, match="cannot continue with 'steepest'"):
        run_sweep("digits", space, trials=1, **{**kwargs, "lr_from_range_test": "steepest"})


def test_seeds_beta2_schedules_and_run_directories(tmp_path: Path) -> None:
    space = {"optimizer": ["radam", "algoperf", "sgd_clip"], "lr": [1e-2], "beta2": [0.98, 0.999], "seed": [0, 1]}
    study = run_sweep(
        "digits",
        space,
        trials=12,
        out=tmp_path,
        steps=20,
        sampler="grid",
        pruner="none",
        lr_centres={"radam": 1e-3, "algoperf": 2e-3, "sgd_clip": 0.1},
        run_dirs=True,
        diagnostics_for=lambda config: config["recipe"] == "radam",
    )
    configs = [t.user_attrs["config"] for t in study.trials]
    assert len(configs) == 12 and len({json.dumps(c, sort_keys=True) for c in configs}) == 10  # sgd: no beta2
    twins = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(twins) == 2 and all(t.user_attrs["updates"] == 0 for t in twins)
    for twin in twins:
        original = study.trials[twin.user_attrs["duplicate_of"]]
        assert original.user_attrs["config"] == twin.user_attrs["config"] and original.value == twin.value
    for trial, config in zip(study.trials, configs, strict=True):
        recipe, lr = config["recipe"], config["optimizer"]["lr"]
        assert lr == pytest.approx({"radam": 1e-3, "algoperf": 2e-3, "sgd_clip": 0.1}[recipe])
        if recipe == "sgd_clip":
            assert "betas" not in config["optimizer"]
        else:
            assert config["optimizer"]["betas"][1] == trial.params["beta2"]
        if recipe == "algoperf":
            assert config["schedule"] == {"name": "warmup_cosine", "warmup_steps": 1, "total_steps": 20}
        run = tmp_path / "trials" / str(trial.user_attrs.get("duplicate_of", trial.number))
        saved = json.loads((run / "config.json").read_text())
        assert saved["seed"] == config["seed"] == trial.params["seed"]
        assert (run / "diagnostics.jsonl").is_file() == (recipe == "radam")
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert {(r["seed"], r["beta2"]) for r in rows if r["recipe"] == "radam"} == {
        ("0", "0.98"),
        ("0", "0.999"),
        ("1", "0.98"),
        ("1", "0.999"),
    }
    with pytest.raises(ValueError, match=r"lr_centres has no LR for the space's recipes \['sgd_clip'\]"):
        run_sweep("digits", space, trials=1, out=tmp_path / "x", lr_centres={"radam": 1e-3, "algoperf": 1e-3})
    with pytest.raises(ValueError, match=r"space\['beta2'\] values must be in \[0.0, 1.0\)"):
        load_space({"lr": [1e-3], "beta2": [1.0]})


def test_restart_rungs_compare_short_runs_with_their_own_decay(tmp_path: Path) -> None:
    """Each rung is a separate run of that length whose schedule is compressed to it; a survivor pays for all."""
    space = {"optimizer": ["adam_warmup"], "lr": [1e-4, 3e-3, 1e-2, 3e-1], "warmup_steps": [8]}
    kwargs = {"steps": 64, "evals_per_trial": 8, "sampler": "grid", "pruner": "asha", "rungs": "restart"}
    study = run_sweep("digits", space, trials=4, out=tmp_path, **kwargs)
    from lrtune.tune._trial import rung_indices as _rung_indices

    assert _rung_indices(2, 8) == [2, 8] and _rung_indices(1, 8) == [1, 4, 8] and _rung_indices(1, 20) == [1, 4, 16, 20]
    for trial in study.trials:
        config = trial.user_attrs["config"]
        # rungs at evaluation 2 (16 updates) and 8 (the full run); the short run's schedule is its own
        steps = sorted(trial.intermediate_values)
        if trial.state.name == "PRUNED":  # (a diverged rung run stops early)
            assert steps == [2] and 1 <= trial.user_attrs["updates"] <= 16
        else:
            assert steps == [2, 8] and trial.user_attrs["updates"] == 16 + 64
            assert trial.intermediate_values[8] == trial.value and config["steps"] == 64
    short = lrtune_train_value(study.trials[0].user_attrs["config"], 16)
    assert study.trials[0].intermediate_values[2] == pytest.approx(short)
    assert any(t.state.name == "PRUNED" for t in study.trials)
    with pytest.raises(ValueError, match="range_test_steps must be >= 3, got 2"):
        run_sweep("digits", space, trials=1, out=tmp_path / "y", lr_from_range_test="steepest", range_test_steps=2)
    with pytest.raises(ValueError, match="rungs must be 'continue' or 'restart', got 'x'"):
        run_sweep("digits", space, trials=1, out=tmp_path / "x", rungs="x")


def lrtune_train_value(config: dict, n: int) -> float:
    """The validation loss of the rung run: the config's recipe over n updates, warm-up scaled by n / total."""
    import lrtune
    from lrtune.workloads import get_workload

    schedule = dict(config["schedule"], total_steps=n, warmup_steps=round(config["schedule"]["warmup_steps"] * n / 64))
    record = lrtune.train(
        get_workload("digits"), optimizer=config["optimizer"], schedule=schedule, steps=n, batch_size=64
    )
    return float(record.final_metrics["valid_loss"])


SH_SPACE = {"optimizer": ["adam", "adam_warmup", "sgd_clip"], "lr": [1e-3, 1e-2, 1e-1, 10.0], "warmup_steps": [8]}
SH_ARGS = {"steps": 36, "sampler": "grid", "evals_per_trial": 9}


def test_synchronous_successive_halving_compares_all_trials_at_each_rung(tmp_path: Path) -> None:
    """Every trial reaches the first rung (after the 8-update warm-up: evaluation 3 of 9); the best 12 // 3 continue
    from their checkpoints to the end, with exactly the values of the unpruned runs; diverged runs are values."""
    study = run_sweep("digits", SH_SPACE, trials=12, out=tmp_path / "sh", pruner="sh", run_dirs=True, **SH_ARGS)
    unpruned = run_sweep("digits", SH_SPACE, trials=12, out=tmp_path / "none", pruner="none", **SH_ARGS)
    full = {json.dumps(t.params, sort_keys=True): t for t in unpruned.trials}
    diverged = [t for t in study.trials if t.value == math.inf]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    survivors = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t not in diverged]
    assert len(diverged) == 3 and all(t.user_attrs["status"] == "diverged" for t in diverged)  # lr = 10
    assert len(survivors) == 4 and len(pruned) == 5
    assert all(max(t.intermediate_values) == 3 and t.user_attrs["updates"] == 12 for t in pruned)
    assert max(t.intermediate_values[3] for t in survivors) <= min(t.intermediate_values[3] for t in pruned)
    for trial in [*survivors, *pruned]:  # resumed from checkpoints, bit-identical to the unpruned runs
        twin = full[json.dumps(trial.params, sort_keys=True)]
        assert trial.intermediate_values == {k: twin.intermediate_values[k] for k in trial.intermediate_values}
    for trial in survivors:
        assert trial.value == full[json.dumps(trial.params, sort_keys=True)].value
        assert trial.user_attrs["updates"] == 36 and trial.user_attrs["status"] == "completed"
    assert sum(t.user_attrs["updates"] for t in study.trials) < sum(t.user_attrs["updates"] for t in unpruned.trials)
    best = json.loads((tmp_path / "sh" / "best.json").read_text())
    assert best == json.loads((tmp_path / "none" / "best.json").read_text())
    assert not list((tmp_path / "sh").rglob("*.pt")) and not (tmp_path / "sh" / "rungs").exists()  # cleaned up
    assert (tmp_path / "sh" / "trials" / str(pruned[0].number) / "metrics.jsonl").is_file()


def test_successive_halving_continues_an_interrupted_bracket_from_its_checkpoints(tmp_path: Path) -> None:
    finished = []

    def interrupt(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished.append(trial.number)
        if trial.state == optuna.trial.TrialState.PRUNED:  # after the first rung: Ctrl-C
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep("digits", SH_SPACE, trials=12, out=tmp_path, pruner="sh", callbacks=[interrupt], **SH_ARGS)
    study = optuna.load_study(study_name="lrtune", storage=f"sqlite:///{tmp_path / 'lrtune.db'}")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(failed) == len(waiting) == 12 - len(finished) and finished
    reached = [t for t in failed if math.isfinite(t.intermediate_values.get(3, math.inf))]  # not diverged
    assert reached and all((tmp_path / "rungs" / f"lrtune-{t.number}" / "checkpoints").is_dir() for t in reached)
    study = run_sweep("digits", SH_SPACE, trials=len(waiting), out=tmp_path, pruner="sh", **SH_ARGS)
    retried = [t for t in study.trials if t.number >= 12]
    assert {json.dumps(t.params) for t in retried} == {json.dumps(t.params) for t in failed}
    reference = run_sweep("digits", SH_SPACE, trials=12, out=tmp_path / "ref", pruner="sh", **SH_ARGS)
    values = {json.dumps(t.params): (t.state, t.value) for t in reference.trials}
    # the new bracket (the 11 retried trials) keeps 11 // 3 at the first rung: a subset of the 4 that the
    # uninterrupted bracket kept, and they end with the same values, having trained only past their checkpoints
    survivors = [t for t in retried if t.state == optuna.trial.TrialState.COMPLETE and math.isfinite(t.value)]
    assert len(survivors) == len(retried) // 3
    for trial in survivors:
        assert values[json.dumps(trial.params)] == (optuna.trial.TrialState.COMPLETE, trial.value)
        assert trial.user_attrs["updates"] == 36 - 12
    assert not list(tmp_path.rglob("*.pt"))
    with pytest.raises(ValueError, match="pruner 'sh' continues each trial's own run"):
        run_sweep("digits", SH_SPACE, trials=1, out=tmp_path / "x", pruner="sh", rungs="restart")
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match=f"reduction_factor must be an integer >= 2, got {bad!r}"):
            run_sweep("digits", SH_SPACE, trials=1, out=tmp_path / "x", pruner="sh", reduction_factor=bad)


def test_branch_and_start_from_arguments_are_checked(tmp_path: Path) -> None:
    kw: dict[str, object] = {"trials": 1, "out": tmp_path / "x", "steps": 20}
    with pytest.raises(ValueError, match="branch needs run_dirs=True"):
        run_sweep("digits", SH_SPACE, branch=(5, 2), **kw)
    for bad in ((5,), (0, 2), (5, 0), "5+2"):
        with pytest.raises(ValueError, match="branch"):
            run_sweep("digits", SH_SPACE, branch=bad, run_dirs=True, **kw)
    with pytest.raises(ValueError, match="use a pruner other than 'sh'"):
        run_sweep("digits", SH_SPACE, branch=(5, 2), run_dirs=True, pruner="sh", **kw)
    with pytest.raises(ValueError, match="branch at update 20 must come before the runs' end, update 20"):
        run_sweep("digits", SH_SPACE, branch=(20, 2), run_dirs=True, **kw)
    with pytest.raises(ValueError, match="use a pruner other than 'sh'"):
        run_sweep("digits", SH_SPACE, start_from=lambda config: None, pruner="median", rungs="restart", **kw)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_a_killed_successive_halving_worker_resumes_its_bracket_from_checkpoints(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "space.json").write_text(json.dumps({"optimizer": ["adam"], "lr": [1e-3, 3e-3, 1e-2]}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrtune.cli", "sweep", "--workload", "digits", "--space", str(tmp_path / "space.json")]
    cmd += ["--steps", "6000", "--pruner", "sh", "--sampler", "grid", "--heartbeat", "1", "--out", str(out)]
    cmd += ["--trials", "3"]  # rungs at evaluations 1 (update 1500), 3 and 4 (the end); 1 of 3 continues
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not list((out / "rungs" / "lrtune-0").glob("checkpoints/step-*.pt")):  # trial 0 at its first rung
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never reached a rung"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    storage = f"sqlite:///{out / 'lrtune.db'}"
    before = optuna.load_study(study_name="lrtune", storage=storage).trials
    assert [t.state for t in before] == [optuna.trial.TrialState.RUNNING] * 3  # as the kill left them
    time.sleep(3.5)  # past the grace period of 3 heartbeats
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=240).returncode == 0
    after = optuna.load_study(study_name="lrtune", storage=storage).trials
    assert [t.state for t in after[:3]] == [optuna.trial.TrialState.FAIL] * 3  # failed by the next worker
    retry_of = {optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t): t for t in after[3:]}
    assert sorted(retry_of) == [0, 1, 2] and all(retry_of[t.number].params == t.params for t in before)
    assert sorted(t.state.name for t in after[3:]) == ["COMPLETE", "PRUNED", "PRUNED"]
    first = retry_of[0]  # continued from the checkpoint trial 0 left at update 1500
    assert first.user_attrs["updates"] == (4500 if first.state.name == "COMPLETE" else 0)
    assert first.intermediate_values[1] == before[0].intermediate_values[1]
