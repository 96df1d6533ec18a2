"""Fault injection: sweeps and studies interrupted (SIGINT, SIGKILL) at several points, emptied and corrupt
databases, concurrent workers. Nothing completed is lost, nothing is trained twice, every grid point completes
once with the value an uninterrupted run gives, and results are never overwritten by another study."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from helpers import default_sigint

import lrtune
from lrtune.cli import main
from lrtune.tune import run_sweep

TrialState = optuna.trial.TrialState
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
LISTS = {"optimizer": ["adam", "radam"], "lr": [1e-3, 3e-3, 1e-2]}  # 6 configurations


def _cli(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lrtune.cli", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    except Exception:  # not created yet
        return []


def _wait(predicate: Any, what: str, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _running_after_one_complete(url: str, name: str) -> bool:
    """A trial has completed and another is training: running, with its parameters already drawn."""
    trials = _trials(url, name)
    training = any(t.state == TrialState.RUNNING and t.params for t in trials)
    return training and any(t.state == TrialState.COMPLETE for t in trials)


def _trained(trials: list[optuna.trial.FrozenTrial]) -> collections.Counter[str]:
    """How often each configuration was trained to completion (duplicates and twins do not train)."""
    return collections.Counter(
        json.dumps(t.user_attrs["config"], sort_keys=True)
        for t in trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs and "twin_of" not in t.user_attrs
    )


# ------------------------------------------------------------------------------------------------------------
# the study: Ctrl-C never loses a grid point


def test_ctrl_c_while_a_trial_is_recorded_is_held_until_it_is(tmp_path: Path) -> None:
    """Ctrl-C between runs (here: while the first trial's callbacks run, right after Optuna recorded it) stops
    the sweep once that trial is recorded — the next trial never starts and nothing is left half-written."""
    url = f"sqlite:///{tmp_path / 'lrtune.db'}"

    def press(study: Any, trial: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with default_sigint():
        with pytest.raises(KeyboardInterrupt):
            run_sweep(
                "digits", LISTS, trials=3, out=tmp_path, steps=5, sampler="random", pruner="none", callbacks=[press]
            )
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    trials = _trials(url, "lrtune")
    assert [t.state for t in trials] == [TrialState.COMPLETE]


def test_a_study_interrupted_twice_completes_every_grid_point_once(tmp_path: Path) -> None:
    """The reported case: `lrtune study --workload digits`, Ctrl-C mid-trial, run again (twice)."""
    args = ["study", "--workload", "digits", "--seeds", "1", "--out", "S"]
    url, name = f"sqlite:///{tmp_path / 'S' / 'lrtune.db'}", "study-quick"
    interrupted: list[int] = []
    for _ in range(2):  # interrupt during a trial, twice
        proc = _cli(*args, cwd=tmp_path)
        done_before = sum(t.state == TrialState.COMPLETE for t in _trials(url, name))

        def progressed(done_before: int = done_before) -> bool:
            trials = _trials(url, name)
            return sum(t.state == TrialState.COMPLETE for t in trials) > done_before and any(
                t.state == TrialState.RUNNING for t in trials
            )

        _wait(progressed, "a finished trial and a running one")
        running = [t.number for t in _trials(url, name) if t.state == TrialState.RUNNING]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 130, out
        assert "Traceback" not in out and "run the same command again" in out and "failed with" not in out, out
        # a trial that was training is failed (and queued again); one whose run had just ended when Ctrl-C came
        # (Optuna recording it) is completed — never left running
        after = _trials(url, name)
        assert all(after[n].state in (TrialState.FAIL, TrialState.COMPLETE) for n in running)
        interrupted += [n for n in running if after[n].state == TrialState.FAIL]
    trials = _trials(url, name)
    proc = _cli(*args, cwd=tmp_path)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    summary = json.loads((tmp_path / "S" / "summary.json").read_text())
    assert summary["missing"] == []
    points = collections.Counter((r["recipe"], r["lr"], r["seed"]) for r in summary["runs"] if r["steps"] == 60)
    assert len(points) == 18 and set(points.values()) == {1}  # 6 recipes × 3 LRs × 1 seed, each once
    assert len([r for r in summary["runs"] if r["study"] == "study-quick-final-400"]) == 3  # the finalists
    for step in summary["beyond"]:  # and any run beyond the grid's edge, each once
        assert len([r for r in summary["runs"] if r["study"] == step["study"]]) == 1
    trials = _trials(url, name)
    assert max(_trained(trials).values()) == 1  # no configuration trained twice
    # the points whose trials were interrupted: completed later with the value an uninterrupted run gives (on one
    # thread, as the workers ran: another thread count sums in another order)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for number in interrupted:  # (a trial interrupted before it set its config has its grid point in its params)
        point = trials[number].system_attrs["lrtune:grid_point"]
        redo = [
            t for t in trials if t.state == TrialState.COMPLETE and t.system_attrs.get("lrtune:grid_point") == point
        ]
        assert len(redo) == 1
        config = redo[0].user_attrs["config"]
        branch = config["branch"]  # the quick preset screens by branches of the target's runs
        fresh = lrtune.train(
            lrtune.workloads.Digits(),
            optimizer=config["optimizer"],
            schedule=lrtune.schedules.cooldown(
                lrtune.schedules.from_spec(config["schedule"]), branch["at"], branch["cooldown"]
            ),
            steps=config["steps"],
            batch_size=config["batch_size"],
            seed=config["seed"],
            max_grad_norm=config["max_grad_norm"],
        )
        assert redo[0].value == fresh.final_metrics["valid_loss"]
    torch.set_num_threads(threads)
    # a complete study is only re-read: nothing more is trained
    proc = _cli(*args, cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and len(_trials(url, name)) == len(trials), out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pid: int) -> bool:
    """The process has ended (gone, or a zombie that its new parent has not reaped yet)."""
    try:
        return not _alive(pid) or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_study_with_two_jobs_survives_ctrl_c_and_kill_9_and_trains_each_point_once(tmp_path: Path) -> None:
    """`lrtune study --jobs 2`: a helper process trains beside the study's own; Ctrl-C stops both (their runs
    queued again), `kill -9` of the study's process makes the orphaned helper stop itself the same way, and the
    command run again completes every grid point once, finalists included."""
    args = ["study", "--workload", "digits", "--seeds", "1", "--target-steps", "10000", "--finalists", "2"]
    args += ["--jobs", "2", "--out", "S"]  # branches of 1,500 updates: a few seconds each
    url, name = f"sqlite:///{tmp_path / 'S' / 'lrtune.db'}", "study-quick"
    env = {**ENV, "OMP_NUM_THREADS": "2"}

    def two_running() -> list[optuna.trial.FrozenTrial]:  # by this command's two processes
        running = [t for t in _trials(url, name) if t.state == TrialState.RUNNING and "worker" in t.user_attrs]
        pids = {t.user_attrs["worker"]["pid"] for t in running}
        return running if len(pids) == 2 and proc.pid in pids else []

    for stop in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(
            [sys.executable, "-m", "lrtune.cli", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        _wait(lambda: bool(two_running()), "two trials training at once, in two processes")
        running = two_running()
        helper = next(t.user_attrs["worker"]["pid"] for t in running if t.user_attrs["worker"]["pid"] != proc.pid)
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=300)
        _wait(lambda helper=helper: _gone(helper), "the helper process to stop", timeout=60)
        after = {t.number: t for t in _trials(url, name)}
        if stop == signal.SIGINT:
            assert proc.returncode == 130, out
            assert "Traceback" not in out and "run the same command again" in out, out
            assert "ended with exit code" not in out, out  # an interrupted helper is not reported as failed
            assert all(after[t.number].state in (TrialState.FAIL, TrialState.COMPLETE) for t in running)
        else:  # the killed process's trial is left running (the next command fails it); the helper's is failed
            theirs = next(t for t in running if t.user_attrs["worker"]["pid"] == helper)
            assert after[theirs.number].state in (TrialState.FAIL, TrialState.COMPLETE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lrtune.cli", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    summary = json.loads((tmp_path / "S" / "summary.json").read_text())
    assert summary["missing"] == []
    points = collections.Counter((r["recipe"], r["lr"], r["seed"]) for r in summary["runs"] if r["steps"] == 1500)
    assert len(points) == 18 and set(points.values()) == {1}  # branches at 1200 + 300 of cooldown, each once
    assert len([r for r in summary["runs"] if r["study"] == "study-quick-final-10000"]) == 2  # the finalists
    for step in summary["beyond"]:  # and any run beyond the grid's edge, each once
        assert len([r for r in summary["runs"] if r["study"] == step["study"]]) == 1
    trials = _trials(url, name)
    assert max(_trained(trials).values()) == 1  # nothing trained twice, by either process


# ------------------------------------------------------------------------------------------------------------
# sweeps: continued and concurrent workers draw new configurations and never train one twice


def _configs(study: Any) -> list[str]:
    return [json.dumps(t.user_attrs["config"], sort_keys=True) for t in study.trials if "config" in t.user_attrs]


SPACE = {"optimizer": ["adam", "radam"], "lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"}}


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_continued_sweep_draws_new_configurations_and_the_seed_reproduces(tmp_path: Path, sampler: str) -> None:
    kw: dict[str, Any] = {"steps": 5, "sampler": sampler, "pruner": "none", "batch_size": 32}
    first = _configs(run_sweep("digits", SPACE, trials=3, out=tmp_path / "a", **kw))
    both = _configs(run_sweep("digits", SPACE, trials=3, out=tmp_path / "a", **kw))
    assert both[:3] == first and len(set(both)) == 6  # three new configurations, none repeated
    again = _configs(run_sweep("digits", SPACE, trials=6, out=tmp_path / "b", **kw))
    assert again == both  # a single process with the same seed reproduces the sweep
    other = _configs(run_sweep("digits", SPACE, trials=3, out=tmp_path / "c", seed=1, **kw))
    assert set(other).isdisjoint(first)


def test_a_repeated_configuration_is_not_trained_again(tmp_path: Path) -> None:
    """A space of 6 configurations and 10 trials: 4 draws repeat a finished configuration and reuse its value."""
    study = run_sweep("digits", LISTS, trials=10, out=tmp_path, steps=5, sampler="random", pruner="none")
    trained = _trained(study.trials)
    assert max(trained.values()) == 1
    duplicates = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    assert len(trained) + len(duplicates) == 10
    for t in duplicates:
        assert t.user_attrs["updates"] == 0 and t.value == study.trials[t.user_attrs["duplicate_of"]].value


def test_two_concurrent_workers_never_train_the_same_configuration(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(LISTS))
    args = ["sweep", "--workload", "digits", "--space", "space.json", "--steps", "150", "--sampler", "random"]
    args += ["--pruner", "none", "--trials", "5", "--out", "out"]
    workers = [_cli(*args, cwd=tmp_path) for _ in range(2)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    trials = _trials(f"sqlite:///{tmp_path / 'out' / 'lrtune.db'}", "lrtune")
    assert len(trials) == 10
    assert max(_trained(trials).values()) == 1  # twins were not trained side by side
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2  # both workers took part


def _race(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finish_other: bool) -> tuple[Any, Any]:
    """Trial 1 looks for twins before trial 0 (another worker's) has recorded the same config, so both start; once
    trial 1 trains, trial 0 records that config (and, with ``finish_other``, completes with the value 0.5)."""
    from lrtune.tune import _trial
    from lrtune.tune._space import load_space
    from lrtune.workloads import resolve_workload

    study = optuna.create_study(direction="minimize")
    other = study.ask()  # number 0: a worker that has asked for its trial and not yet recorded its config
    trial = study.ask()
    task = resolve_workload("digits", {})
    sweep = _trial.Sweep(
        task=task, space=load_space({"optimizer": ["adam"], "lr": [1e-2]}), defaults={"steps": 40, "batch_size": 32},
        factors=None, seed=0, out_dir=tmp_path, evals=4, pruner="none", rungs="continue", first_rung=1,
    )  # fmt: skip
    real = _trial.train

    def train(*args: Any, **kwargs: Any) -> Any:
        other.set_user_attr("config", trial.user_attrs["config"])
        if finish_other:
            study.tell(other, 0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(_trial, "train", train)
    return sweep, trial


def test_of_two_workers_training_one_config_the_later_number_stops_at_its_next_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, trial = _race(tmp_path, monkeypatch, finish_other=False)
    with pytest.raises(optuna.TrialPruned, match="trial 0 is training the same configuration"):
        _trial_objective(sweep, trial)
    assert trial.user_attrs["twin_of"] == 0
    assert trial.user_attrs["updates"] == 10  # it trained to its first evaluation, and says so


def test_a_trial_whose_config_completes_elsewhere_while_it_trains_takes_that_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, trial = _race(tmp_path, monkeypatch, finish_other=True)
    assert _trial_objective(sweep, trial) == 0.5
    assert trial.user_attrs["duplicate_of"] == 0 and trial.user_attrs["updates"] == 10


def test_a_successive_halving_member_looks_for_twins_before_each_rung(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker's trial 0 records trial 1's config once trial 1 trains its first rung: trial 1 stops there."""
    from lrtune.tune import _trial

    (tmp_path / "out").mkdir()
    url = f"sqlite:///{tmp_path / 'out' / 'lrtune.db'}"
    other = optuna.create_study(study_name="lrtune", storage=url, direction="minimize").ask()
    real = _trial.train

    def train(*args: Any, **kwargs: Any) -> Any:
        mine = [t for t in optuna.load_study(study_name="lrtune", storage=url).trials if t.number == 1]
        other.set_user_attr("config", mine[0].user_attrs["config"])
        return real(*args, **kwargs)

    monkeypatch.setattr(_trial, "train", train)
    space = {"optimizer": ["adam"], "lr": [1e-2]}
    study = run_sweep(
        "digits", space, trials=1, out=tmp_path / "out", sampler="random", pruner="sh", steps=40, batch_size=32
    )
    mine = study.trials[1]
    assert mine.state == TrialState.PRUNED and mine.user_attrs["twin_of"] == 0
    assert mine.user_attrs["updates"] == 10  # its first rung, and no more


def _trial_objective(sweep: Any, trial: Any) -> float:
    from lrtune.tune._trial import objective

    return objective(sweep, trial)


def test_a_grid_sweep_run_by_two_workers_covers_each_point_once(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(LISTS))
    args = ["sweep", "--workload", "digits", "--space", "space.json", "--steps", "150", "--sampler", "grid"]
    args += ["--pruner", "none", "--trials", "6", "--out", "out"]
    workers = [_cli(*args, cwd=tmp_path) for _ in range(2)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    trials = _trials(f"sqlite:///{tmp_path / 'out' / 'lrtune.db'}", "lrtune")
    trained = _trained(trials)
    assert len(trained) == 6 and max(trained.values()) == 1
    # a worker stops once the other holds every point left: no trial drawn for a finished point
    assert not any("duplicate_of" in t.user_attrs for t in trials)


# ------------------------------------------------------------------------------------------------------------
# SIGKILL: a dead worker on this host is recognised at once


def test_a_killed_worker_is_recognised_at_once_on_the_same_host(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    args = ["sweep", "--workload", "digits", "--space", "space.json", "--steps", "3000", "--sampler", "random"]
    args += ["--pruner", "none", "--heartbeat", "10", "--out", "out"]
    url = f"sqlite:///{tmp_path / 'out' / 'lrtune.db'}"
    worker = _cli(*args, "--trials", "5", cwd=tmp_path)
    try:
        _wait(lambda: _running_after_one_complete(url, "lrtune"), "a running second trial")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    before = _trials(url, "lrtune")
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    began = time.time()
    again = _cli(*args, "--trials", "1", cwd=tmp_path)  # at once: long before 3 heartbeats (30 s) have passed
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    after = _trials(url, "lrtune")
    assert after[killed[0].number].state == TrialState.FAIL
    retried = [t for t in after if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed[0].params
    assert retried[0].datetime_start is not None
    assert retried[0].datetime_start.timestamp() - began < 25  # retried by that worker's first trial
    for t in before:  # nothing completed is lost
        if t.state == TrialState.COMPLETE:
            assert after[t.number].state == TrialState.COMPLETE and after[t.number].value == t.value


# ------------------------------------------------------------------------------------------------------------
# databases that are empty, replaced or corrupt; interrupted result writing


def test_an_emptied_or_corrupt_database_is_refused_and_results_are_kept(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(LISTS))
    args = ["sweep", "--workload", "digits", "--space", "space.json", "--steps", "5", "--sampler", "grid"]
    args += ["--pruner", "none", "--trials", "3", "--out", "out"]
    assert main([*args[:4], str(tmp_path / "space.json"), *args[5:-1], str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    kept = {name: (out / name).read_bytes() for name in ("trials.csv", "best.json")}
    shutil.copy(out / "lrtune.db", tmp_path / "good.db")
    for damage, message in (
        (b"", "trials.csv lists 3 trials"),
        (b"garbage " * 100, "is not a readable Optuna storage"),
    ):
        (out / "lrtune.db").write_bytes(damage)
        proc = _cli(*args, cwd=tmp_path)
        text, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, text
        assert message in text.replace("\n", "") and "Traceback" not in text, text
        assert str(out / "lrtune.db") in text.replace("\n", "")
        assert {name: (out / name).read_bytes() for name in kept} == kept  # the old results are untouched
    shutil.copy(tmp_path / "good.db", out / "lrtune.db")  # restored: the sweep continues
    proc = _cli(*args, cwd=tmp_path)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, text
    assert len(_trials(f"sqlite:///{out / 'lrtune.db'}", "lrtune")) == 6


def test_a_study_refuses_another_study_s_results(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(LISTS))
    run_sweep("digits", LISTS, trials=2, out=tmp_path, steps=5, sampler="grid", pruner="none", study="first")
    with pytest.raises(ValueError, match="holds the results of study 'first'"):
        run_sweep("digits", LISTS, trials=2, out=tmp_path, steps=5, sampler="grid", pruner="none", study="second")
    with pytest.raises(ValueError, match="tunes workload 'digits' with options"):
        run_sweep(
            "digits",
            LISTS,
            trials=1,
            out=tmp_path,
            steps=5,
            sampler="grid",
            study="first",
            workload_options={"hidden": 8},
        )


def test_an_interruption_while_writing_results_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrtune.tune import _plots

    def interrupted(study: Any, out_dir: Path) -> list[Path]:
        raise KeyboardInterrupt

    monkeypatch.setattr(_plots, "plot_sweep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("digits", LISTS, trials=2, out=tmp_path, steps=5, sampler="grid", pruner="none")
    monkeypatch.undo()
    study = run_sweep("digits", LISTS, trials=0, out=tmp_path, steps=5, sampler="grid", pruner="none")
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 3 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert json.loads((tmp_path / "best.json").read_text())["workload"] == "digits"


# ------------------------------------------------------------------------------------------------------------
# pruning starts where the sweep says it does


def test_no_pruning_when_the_warmup_outlasts_every_evaluation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """30 updates, 4 evaluations (updates 8, 15, 22, 30), a warm-up of 25 updates: nothing can be compared before
    the end, so the sweep says it will not prune, and it does not (the reported case pruned at update 28)."""
    space = {"optimizer": ["adam_warmup"], "lr": [1e-4, 3e-3, 1e-2, 3e-2, 1.0], "warmup_steps": [25]}
    with caplog.at_level("WARNING"):
        study = run_sweep("digits", space, trials=5, out=tmp_path, steps=30, sampler="grid", pruner="median")
    assert "no pruning" in caplog.text
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in study.trials)


def test_evaluations_fall_at_equal_fractions_of_the_run(tmp_path: Path) -> None:
    space = {"optimizer": ["adam"], "lr": [1e-3]}
    study = run_sweep("digits", space, trials=1, out=tmp_path, steps=30, sampler="grid", pruner="none", run_dirs=True)
    lines = [json.loads(x) for x in (tmp_path / "trials" / "0" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "eval" in x] == [8, 15, 22, 30]
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3, 4]
