"""End-to-end: ``lrtune schedule`` prints the key points and writes a valid PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image

from lrtune.cli import main
from lrtune.cli._main import key_points
from lrtune.schedules import noam, warmup_linear_decay

SPEC = {"name": "warmup_linear_decay", "warmup_steps": 40, "total_steps": 400}


def test_schedule_command_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "schedule.png"
    proc = subprocess.run(
        [sys.executable, "-m", "lrtune.cli", "schedule", json.dumps(SPEC), "--steps", "500", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "peak (end of warm-up)" in proc.stdout
    assert "warmup_linear_decay" in proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas


def test_spec_from_file_and_bad_spec(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec_file = tmp_path / "s.json"
    spec_file.write_text(json.dumps(SPEC))
    assert main(["schedule", str(spec_file), "--steps", "100"]) == 0
    assert main(["schedule", json.dumps({"name": "warmup_linear_decay", "warmup_steps": 500, "total_steps": 400})]) == 2
    assert "warmup_steps must be < total_steps" in capsys.readouterr().out.replace("\n", "")


def test_key_points() -> None:
    points = key_points(warmup_linear_decay(40, 400), 500)
    assert points[0][:2] == ("first update", 1)
    assert points[1][1:] == (40, 1.0)
    assert ("end of schedule", 400, 0.0) in points
    assert key_points(noam(512, 4000), 8000)[1][1] == 4000


def test_train_and_rerun_from_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train",
        "--workload",
        "digits",
        "--optimizer",
        "radam",
        "--lr",
        "1e-2",
        "--schedule",
        "warmup_linear_decay",
    ]
    args += ["--warmup-steps", "10", "--steps", "60", "--eval-every", "30", "--out", str(run)]
    args += ["--workload-option", "hidden=32"]
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["optimizer"] == {"name": "radam", "lr": 1e-2}
    assert config["workload_options"] == {"hidden": 32}  # what --config needs to rebuild the workload
    assert config["schedule"]["warmup_steps"] == 10 and config["schedule"]["total_steps"] == 60
    assert main(["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()


def test_train_into_a_run_names_the_flags(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A run already in --out is never replaced unasked; the message names this command's flags."""
    args = ["train", "--workload", "digits", "--steps", "3", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    before = (tmp_path / "r" / "run.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    line = " ".join(capsys.readouterr().out.split())
    assert line.endswith("resume it (--resume), overwrite it (--overwrite) or choose another --out"), line
    assert main([*args, "--resume"]) == 2  # finished, without a checkpoint
    line = " ".join(capsys.readouterr().out.split())
    assert line.endswith("no checkpoint to resume from: overwrite it (--overwrite) or choose another --out"), line
    assert (tmp_path / "r" / "run.json").read_bytes() == before
    (tmp_path / "afile").write_text("mine\n")
    for out in (tmp_path / "afile", tmp_path / "afile" / "r"):  # a file, or under one: refused before any work
        assert main(["train", "--workload", "digits", "--steps", "3", "--out", str(out)]) == 2
        line = " ".join(capsys.readouterr().out.split())
        assert line.startswith(f"lrtune train: --out {out}") and line.endswith("is a file, not a directory"), line
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_train_bad_input_and_workloads(capsys, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path))
    assert main(["train", "--workload", "imagenet", "--steps", "5"]) == 2
    assert "'imagenet' is not one of" in capsys.readouterr().out
    assert main(["train", "--lr", "-1", "--steps", "5"]) == 2
    assert main(["train", "--workload-option", "depth=3", "--steps", "5"]) == 2
    assert "has no option 'depth'" in capsys.readouterr().out
    assert main(["train", "--workload-option", "hidden", "--steps", "5"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().out
    assert main(["workloads"]) == 0
    listing = capsys.readouterr().out
    assert "digits" in listing and "translation-de-en" in listing


def test_a_missing_extra_is_one_line_naming_the_install() -> None:
    """As after a plain `pip install lrtune`: the command says what to install instead of a traceback."""
    code = "import sys; sys.modules['rich'] = None; from lrtune.cli import main; sys.exit(main(sys.argv[1:]))"
    for args in (["workloads"], ["schedule", json.dumps(SPEC)]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 2, done.stderr
        assert "needs rich" in done.stderr and "pip install 'lrtune[all]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_ctrl_c_while_lrtune_starts_is_one_line(tmp_path: Path) -> None:
    import signal
    import time

    for delay in (0.2, 1.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "lrtune.cli", "train", "--steps", "3000", "--out", str(tmp_path / f"r{delay}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, out
        assert "Traceback" not in out and "interrupted" in out


def test_version_and_python_dash_m(tmp_path: Path) -> None:
    """``lrtune --version`` names the installed version; ``python -m lrtune`` is the same command."""
    import lrtune

    done = subprocess.run(
        [sys.executable, "-m", "lrtune", "--version"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == f"lrtune {lrtune.__version__}", done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "lrtune", "schedule", json.dumps(SPEC)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "end of schedule" in done.stdout, done.stderr
