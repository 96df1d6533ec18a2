"""A user's own workload, named as ``module:NAME``, through every command — run from outside the repository —
and back through ``lrtune train --config``; an installed package's registered workload; diagnostics from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lrtune
from lrtune.cli import main
from lrtune.tune import run_sweep
from lrtune.workloads import get_workload, registered_workloads, resolve_workload, workload_reference

# What a user writes from the Workload docstring: an MLP regression on data of their own (no lrtune import).
USER_MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Regression:
        name, metric, higher_is_better, step_hint = "regression", "valid_loss", False, 200

        def __init__(self, hidden: int = 32, noise: float = 0.1):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(1200, 8, generator=g)
            self.y = (self.x @ torch.randn(8, 1, generator=g)).tanh() + noise * torch.randn(1200, 1, generator=g)
            self.hidden = hidden

        def build_model(self, seed):
            torch.manual_seed(seed)
            return nn.Sequential(nn.Linear(8, self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

        def train_batches(self, batch_size, seed):
            g = torch.Generator().manual_seed(seed)
            while True:
                order = torch.randperm(1000, generator=g)
                for i in range(0, 1000 - batch_size + 1, batch_size):
                    yield self.x[order[i : i + batch_size]], self.y[order[i : i + batch_size]]

        def loss(self, model, batch):
            return nn.functional.mse_loss(model(batch[0]), batch[1])

        @torch.no_grad()
        def evaluate(self, model):
            return {"valid_loss": nn.functional.mse_loss(model(self.x[1000:]), self.y[1000:]).item()}


    def workload(hidden: int = 32) -> Regression:
        return Regression(hidden=hidden)


    instance = Regression(hidden=8)
    """
)


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    """A folder outside the repository holding the user's module."""
    (tmp_path / "user_task.py").write_text(USER_MODULE)
    return tmp_path


def _lrtune(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the module comes from the cwd
    environment.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "lrtune.cli", *args], cwd=cwd, env=environment, capture_output=True, text=True
    )


def test_every_command_takes_module_name_and_configs_rerun_it(user_dir: Path) -> None:
    assert Path.cwd() != user_dir and not (user_dir / "src").exists()  # not the repository
    train = _lrtune(
        "train", "--workload", "user_task:Regression", "--workload-option", "hidden=16", "--steps", "60",
        "--eval-every", "20", "--out", "run", cwd=user_dir,
    )  # fmt: skip
    assert train.returncode == 0, train.stdout + train.stderr
    config = json.loads((user_dir / "run" / "config.json").read_text())
    assert config["workload"] == "user_task:Regression" and config["workload_options"] == {"hidden": 16}
    again = _lrtune("train", "--config", "run/config.json", "--out", "again", cwd=user_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (user_dir / "again" / "metrics.jsonl").read_text() == (user_dir / "run" / "metrics.jsonl").read_text()

    find = _lrtune("find-lr", "--workload", "user_task:workload", "--num-steps", "30", "--out", "lr", cwd=user_dir)
    assert find.returncode == 0, find.stdout + find.stderr
    assert (user_dir / "lr.png").is_file() and "steepest" in json.loads((user_dir / "lr.json").read_text())[
        "suggestions"
    ]

    (user_dir / "space.json").write_text(json.dumps({"optimizer": ["adam", "sgd"], "lr": [1e-3, 1e-2]}))
    sweep = _lrtune(
        "sweep", "--workload", "user_task:workload", "--workload-option", "hidden=16", "--space", "space.json",
        "--trials", "4", "--sampler", "grid", "--steps", "40", "--out", "sweep", cwd=user_dir,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    best = json.loads((user_dir / "sweep" / "best.json").read_text())
    assert best["workload"] == "user_task:workload" and best["workload_options"] == {"hidden": 16}
    assert best["batch_size"] == 64  # the user's workload has no batch hint: 64, not translation's tokens
    rerun = _lrtune("train", "--config", "sweep/best.json", "--out", "best", cwd=user_dir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    study = _lrtune(
        "study", "--workload", "user_task:workload", "--seeds", "1", "--batch-size", "32", "--out", "study",
        cwd=user_dir,
    )  # fmt: skip
    assert study.returncode == 0, study.stdout + study.stderr
    recommended = json.loads((user_dir / "study" / "recommended.json").read_text())
    assert recommended["workload"] == "user_task:workload" and recommended["batch_size"] == 32
    rerun = _lrtune("train", "--config", "study/recommended.json", "--out", "rec", cwd=user_dir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    auto = _lrtune("auto", "--workload", "user_task:instance", "--steps", "60", "--out", "auto", cwd=user_dir)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert json.loads((user_dir / "auto" / "auto.json").read_text())["workload"] == "user_task:instance"
    rerun = _lrtune("train", "--config", "auto/auto.json", "--out", "autorun", cwd=user_dir)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr


def test_bad_references_are_one_line(
    user_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(user_dir)  # (in this process: the command line's own code, without a start-up per case)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (user_dir / "broken_task.py").write_text("x = 1 / 0\n")
    (user_dir / "needs_dep.py").write_text("import no_such_dependency\n")
    (user_dir / "bad_factory.py").write_text("def workload():\n    raise RuntimeError('my factory failed')\n")
    (user_dir / "typo_task.py").write_text("import torch\n\ndef workload(:\n    pass\n")
    cases = [
        (["--workload", "no_such_module:Thing"], "cannot import 'no_such_module'"),
        (
            ["--workload", "broken_task:wl"],
            "importing 'broken_task' failed: ZeroDivisionError: division by zero (broken_task.py:1)",
        ),
        (
            ["--workload", "needs_dep:wl"],
            "importing 'needs_dep' failed: ModuleNotFoundError: No module named 'no_such_dependency' (needs_dep.py:1)",
        ),
        (
            ["--workload", "bad_factory:workload"],
            "building it failed: RuntimeError: my factory failed (bad_factory.py:2)",
        ),
        (  # the line the syntax error is on, not a line of Python's import machinery
            ["--workload", "typo_task:workload"],
            "importing 'typo_task' failed: SyntaxError: invalid syntax (typo_task.py:3)",
        ),
        (["--workload", "user_task:Missing"], "has no 'Missing'"),
        (["--workload", "user_task:torch"], "is not a lrtune Workload"),
        (["--workload", "user_task:instance", "--workload-option", "hidden=3"], "is an instance: it takes no options"),
        (["--workload", "user_task:workload", "--workload-option", "depth=3"], "has no option 'depth'"),
        (
            ["--workload", "user_task:workload", "--workload-option", "hidden=wide"],
            "option hidden='wide': expected int",
        ),
        (["--workload", "imagenet"], "is not one of"),
    ]
    for args, message in cases:
        assert main(["train", *args, "--steps", "5"]) == 2, args
        out = capsys.readouterr().out.replace("\n", "")
        assert message in out, (args, out)


def test_python_entry_points_take_objects_and_references(user_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(user_dir)
    task = get_workload("user_task:workload", hidden=16)
    assert workload_reference(task) == ("user_task:workload", {"hidden": 16})
    assert resolve_workload(task) is task
    record = lrtune.train(task, optimizer={"name": "adam", "lr": 1e-2}, steps=20)
    assert record.config["workload"] == "user_task:workload"
    study = run_sweep(task, {"lr": [1e-3, 1e-2]}, trials=2, out=user_dir / "s", steps=10, sampler="grid", pruner="none")
    assert study.user_attrs["workload"] == "user_task:workload"
    with pytest.raises(ValueError, match="need a workload given by name"):
        resolve_workload(task, {"hidden": 3})


def test_an_installed_package_registers_a_workload(user_dir: Path) -> None:
    """An entry point in the group lrtune.workloads (a distribution's metadata on the path, as pip installs it)."""
    dist = user_dir / "user_task_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-task-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lrtune.workloads]\nregression = user_task:workload\n")
    env = {"PYTHONPATH": str(user_dir)}
    other = user_dir / "elsewhere"
    other.mkdir()
    listing = _lrtune("workloads", cwd=other, env=env)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "regression" in listing.stdout and "registered: user_task:workload" in listing.stdout
    done = _lrtune("train", "--workload", "regression", "--steps", "10", "--out", "run", cwd=other, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((other / "run" / "config.json").read_text())["workload"] == "regression"
    sys.path.insert(0, str(user_dir))
    try:
        assert registered_workloads()["regression"] == "user_task:workload"
    finally:
        sys.path.remove(str(user_dir))


def test_train_diagnostics_from_the_command_line_feed_the_report(user_dir: Path) -> None:
    done = _lrtune("train", "--workload", "digits", "--steps", "30", "--diagnostics", "--out", "run", cwd=user_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (user_dir / "run" / "diagnostics.jsonl").stat().st_size > 0
    report = _lrtune("report", "run", "--out", "report.html", cwd=user_dir)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "Gradient histograms" in (user_dir / "report.html").read_text()
