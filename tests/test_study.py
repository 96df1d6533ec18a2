"""lrtune study and lrtune auto, end to end on real data (a small slice of the translation corpus)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from helpers import default_sigint, open_in_chromium

import lrtune
from lrtune.cli import main
from lrtune.cli._main import _plain_summary
from lrtune.study import PRESETS, Preset, auto, run_study, study_space
from lrtune.study._report import LABELS, edge_note, horizon_note
from lrtune.study._study import grid_size

SLICE = {"max_train_pairs": 2000, "max_eval_pairs": 24, "vocab_size": 1000, "bleu_pairs": 8}
SMOKE = Preset(("adam", "adam_warmup"), (0.3, 1.0), (0, 1), (12,), 400, 2, 8, beyond=0)  # its edge is only flagged


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke study interrupted after three runs, then run again to the end."""
    out = tmp_path_factory.mktemp("study")
    seen: list[int] = []

    def stop_after_three(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seen.append(trial.number)
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_study("translation-de-en", preset=SMOKE, out=out, workload_options=SLICE, callbacks=[stop_after_three])
    first = {n: (out / "trials" / str(n) / "run.json").stat().st_mtime_ns for n in seen}
    run_study("translation-de-en", preset=SMOKE, out=out, workload_options=SLICE)
    (out / "first_runs.json").write_text(json.dumps(first))
    return out


def test_the_study_resumes_without_redoing_finished_runs(study_dir: Path) -> None:
    study = optuna.load_study(study_name="study-custom", storage=f"sqlite:///{study_dir / 'lrtune.db'}")
    assert len(study.trials) == 8 == grid_size(study_space(SMOKE))  # 2 recipes × 2 LRs × 2 seeds, each once
    params = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(set(params)) == 8 and all(t.state.name == "COMPLETE" for t in study.trials)
    for number, mtime in json.loads((study_dir / "first_runs.json").read_text()).items():
        assert (study_dir / "trials" / number / "run.json").stat().st_mtime_ns == mtime  # not run again


def test_a_complete_study_is_only_reread(study_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "again"
    shutil.copytree(study_dir, copy)
    before = json.loads((copy / "summary.json").read_text())
    after = run_study("translation-de-en", preset=SMOKE, out=copy, workload_options=SLICE)
    study = optuna.load_study(study_name="study-custom", storage=f"sqlite:///{copy / 'lrtune.db'}")
    assert len(study.trials) == 8
    assert after["recommendation"] == before["recommendation"] and after["settings"] == before["settings"]


def test_summary_json_is_strict_json() -> None:
    from lrtune.study._study import _json_safe

    summary = {"runs": [{"valid_loss": math.inf, "steps": 3}], "spread": (math.nan, 1.5), "target": -math.inf}
    assert _json_safe(summary) == {"runs": [{"valid_loss": None, "steps": 3}], "spread": [None, 1.5], "target": None}


def test_summary_and_recommendation(study_dir: Path) -> None:
    def refuse(constant: str) -> None:
        raise ValueError(f"summary.json holds {constant}, which is not JSON")

    summary = json.loads((study_dir / "summary.json").read_text(), parse_constant=refuse)
    assert len(summary["runs"]) == 8 and summary["compute"]["updates"] == 8 * 12
    settings = summary["settings"]
    assert {(s["recipe"], s["seeds"]) for s in settings} == {("adam", 2), ("adam_warmup", 2)}
    for s in settings:  # the mean and spread are the seeds' own numbers
        losses = [r["valid_loss"] for r in summary["runs"] if r["trial"] in s["trials"]]
        assert s["mean_valid_loss"] == pytest.approx(sum(losses) / 2)
        assert s["min_valid_loss"] == min(losses) and s["max_valid_loss"] == max(losses)
        # the grid's LRs: its factors, moved so that their geometric middle is the recipe's centre LR (3e-3)
        assert s["lr"] == pytest.approx(3e-3 * 0.3**0.5) or s["lr"] == pytest.approx(3e-3 / 0.3**0.5)
    best = min(settings, key=lambda s: s["mean_valid_loss"])
    rec = summary["recommendation"]
    assert (rec["recipe"], rec["lr"]) == (best["recipe"], best["lr"])
    assert summary["target_valid_loss"] == pytest.approx(1.02 * best["mean_valid_loss"])
    assert rec["warmup_steps"] == (1 if rec["recipe"] == "adam_warmup" else 0)  # 10 % of 12
    runner_up = summary["recipes"][rec["runner_up"]]["best_mean_valid_loss"]
    assert rec["clear"] == (runner_up > best["max_valid_loss"])
    page = (study_dir / "report.html").read_text()
    assert ("Not a clear win" in page) == (not rec["clear"])
    tried = sorted({s["lr"] for s in settings if s["recipe"] == rec["recipe"]})  # two LRs: the best is at an edge
    assert summary["recipes"][rec["recipe"]]["lrs_tried"] == tried
    assert rec["lr_at_edge"] == ("largest" if rec["lr"] == tried[-1] else "smallest")
    assert "At the edge of the grid:" in page and f"{rec['lr']:.3g}, is the {rec['lr_at_edge']} of" in page
    for r in summary["runs"]:  # steps to target: the first evaluation at or below the target
        hits = [e["step"] for e in r["evals"] if e["valid_loss"] <= summary["target_valid_loss"]]
        assert r["steps_to_target"] == (hits[0] if hits else None)
    config = json.loads((study_dir / "recommended.json").read_text())
    assert config["optimizer"]["lr"] == rec["lr"] and config["workload_options"]["max_train_pairs"] == 2000
    (table,) = _plain_summary(summary, LABELS).renderables
    assert str(table.caption).startswith(f"recommendation for {rec['for_steps']} updates: " + LABELS[rec["recipe"]])
    assert [str(c) for c in table.columns[0].cells] == [LABELS[r] for r in summary["ranking"]]
    # a user's model whose loss is tiny: its significant digits, not "0.0000"
    tiny = copy.deepcopy(summary)
    tiny["recommendation"]["mean_valid_loss"] = 8.933e-06
    for part in tiny["by_horizon"].values():
        for info in part["recipes"].values():
            info["best_mean_valid_loss"] = 8.933e-06
    (table,) = _plain_summary(tiny, LABELS).renderables
    assert str(table.caption).endswith("(valid loss 8.933e-06)")
    assert {str(c) for c in table.columns[2].cells} == {"8.933e-06"}


def test_a_best_lr_at_the_edge_of_its_grid_is_flagged() -> None:
    """The best LR of a recipe is flagged when it is the largest or smallest its grid tried (at any horizon:
    finalists are a subset), not when LRs on both sides were tried."""
    from lrtune.study._study import _table

    def setting(lr: float, loss: float, steps: int = 100) -> dict[str, Any]:
        return {
            "recipe": "adam", "lr": lr, "beta2": 0.98, "warmup_steps": 0, "steps": steps, "cell": str(lr),
            "seeds": 1, "diverged": 0, "mean_valid_loss": loss, "min_valid_loss": loss, "max_valid_loss": loss,
            "mean_bleu": None, "trials": [],
        }  # fmt: skip

    interior = [setting(1e-3, 2.0), setting(3e-3, 1.5), setting(1e-2, 1.8)]
    largest = [setting(1e-3, 2.0), setting(3e-3, 1.7), setting(1e-2, 1.5)]
    finalists = [*largest, setting(3e-3, 1.1, steps=400), setting(1e-2, 1.0, steps=400)]  # 1e-2: still the top
    smallest = [setting(1e-3, 1.0), setting(3e-3, 1.7)]
    for settings, horizon, edge in ((interior, 100, None), (largest, 100, "largest"), (finalists, 400, "largest")):
        table = _table(settings, [], horizon)
        assert table is not None and table["recipes"]["adam"]["best_lr_at_edge"] == edge
    table = _table(smallest, [], 100)
    assert table is not None and table["recipes"]["adam"]["best_lr_at_edge"] == "smallest"
    summary = {"recommendation": {"recipe": "adam", "lr": 1e-3, "lr_at_edge": "smallest"}, "recipes": table["recipes"]}
    note = edge_note(summary)
    assert note is not None and note.startswith("The recommended peak LR, 0.001, is the smallest of those its")
    assert "(0.001, 0.003)" in note and "a smaller one may be better" in note
    assert edge_note({"recommendation": {"recipe": "adam", "lr": 3e-3, "lr_at_edge": None}}) is None


def test_report_files(study_dir: Path) -> None:
    page = (study_dir / "report.html").read_text()
    assert "Recommendation" in page and "<script" not in page
    figures = sorted(p.name for p in (study_dir / "figures").iterdir())
    assert {"valid_loss_vs_lr.png", "learning_curves.png", "gradient_histograms.png", "rectification.png"} <= set(
        figures
    )
    for name in figures:
        assert (study_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the Figure-2 histograms come from the runs recorded with diagnostics: Adam with and without warm-up
    recorded = sorted(p.parent.name for p in (study_dir / "trials").glob("*/diagnostics.jsonl"))
    assert len(recorded) == 2


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium (make test installs it as root)")
def test_report_opens_in_headless_chromium(study_dir: Path, tmp_path: Path) -> None:
    ok, total, errors = open_in_chromium(study_dir / "report.html", tmp_path)
    assert total >= 4 and ok == total and errors == 0, (ok, total, errors)


def test_presets_are_what_the_study_claims() -> None:
    quick = study_space(PRESETS["quick"])
    assert quick["optimizer"] == ["sgd_clip", "adam", "adam_warmup", "radam", "radam_warmup", "algoperf"]
    assert len(quick["lr"]) == 3 and quick["seed"] == [0] and grid_size(quick) == 18
    assert PRESETS["quick"].steps == (60,) and PRESETS["quick"].horizon == 400 and PRESETS["quick"].has_final
    assert PRESETS["quick"].finalists == 3 and PRESETS["quick"].branch_steps == (48, 12)
    standard = study_space(PRESETS["standard"])
    assert standard["beta2"] == [0.98, 0.999] and len(standard["total_steps"]) == 2 and len(standard["lr"]) == 5
    with pytest.raises(ValueError, match="preset must be one of"):
        run_study(preset="huge")
    with pytest.raises(ValueError, match="seeds must be >= 1, got 0"):
        run_study(preset="quick", seeds=0)
    for change, pattern in [
        ({"recipes": ("adam", "lion")}, "recipes must be a non-empty tuple"),
        ({"lr_factors": (0.0, 1.0)}, "lr_factors must be positive"),
        ({"seeds": ()}, "seeds must be a non-empty tuple"),
        ({"steps": (1,)}, r"steps must be integers >= 2, got \(1,\)"),
        ({"evals": 0}, "batch_tokens and evals must be >= 1"),
        ({"warmup_steps": (5, 20)}, r"warmup_steps \(5, 20\) must be shorter than the runs \(12,\)"),
        ({"target_steps": 5}, "target_steps must be an integer >= the longest steps 12, got 5"),
        ({"finalists": 0}, "finalists must be an integer >= 1, got 0"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            Preset(**{**dataclasses.asdict(SMOKE), **change})


def test_auto_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["auto", "--workload", "digits", "--steps", "40", "--batch-size", "32", "--out", str(tmp_path)]
    assert main([*args, "--optimizer", "radam", "--candidates", "2", "--train"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    config = json.loads((tmp_path / "auto.json").read_text())
    assert f"chosen: radam lr {config['optimizer']['lr']:.3g}, warm-up 0 of 40 updates" in out
    assert "full run: completed" in out
    assert main(["train", "--config", str(tmp_path / "auto.json"), "--out", str(tmp_path / "again")]) == 0
    winner = next(p for p in tmp_path.glob("candidate-*") if json.loads((p / "run.json").read_text())["steps"] == 40)

    def updates(run: Path) -> list[str]:  # the training trajectory (the candidate also evaluated at its rungs)
        return [x for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]

    assert updates(winner) == updates(tmp_path / "again")  # the full run is the winner's run, continued
    final = [json.loads((d / "run.json").read_text())["final_metrics"] for d in (winner, tmp_path / "again")]
    assert final[0] == final[1]
    assert main([*args, "--beta2", "1.5"]) == 2
    assert "beta2 must be in (0, 1), got 1.5" in capsys.readouterr().out


def test_auto_never_replaces_a_choice_for_other_settings_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrtune.study._auto import REQUEST

    args = ["auto", "--workload", "digits", "--steps", "24", "--batch-size", "32", "--candidates", "1"]
    args += ["--repeats", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    saved = (tmp_path / "auto.json").read_bytes()
    assert main([*args, "--seed", "1", "--spacing", "0.5"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert (
        f"lrtune auto: {tmp_path} holds an auto choice for other settings: seed 0 → 1, spacing 0.3 → 0.5; "
        "overwrite it (lrtune auto --overwrite) or choose another out"
    ) in out
    assert (tmp_path / "auto.json").read_bytes() == saved and len(list(tmp_path.glob("candidate-*"))) == 2
    runs = {p: p.stat().st_mtime_ns for p in tmp_path.glob("candidate-*/**/*") if p.is_file()}
    assert main(args) == 0  # the same settings: continued, nothing trained again
    assert {p: p.stat().st_mtime_ns for p in runs} == runs and (tmp_path / "auto.json").read_bytes() == saved
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((tmp_path / "auto.json").read_text())["seed"] == 1
    assert json.loads((tmp_path / REQUEST).read_text())["seed"] == 1
    (tmp_path / REQUEST).unlink()  # a choice whose settings were not recorded is not replaced unasked either
    capsys.readouterr()
    assert main(args) == 2
    assert "holds an auto choice for settings not recorded" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "auto.json")]) == 2
    assert f"lrtune auto: --out {tmp_path / 'auto.json'} is a file, not a directory" in capsys.readouterr().out


def test_auto_returns_a_config_that_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = auto("digits", steps=40, batch_size=32, candidates=3, range_test_steps=30, out=tmp_path / "a")
    config = result.config
    assert config["schedule"] == {"name": "warmup_linear_decay", "warmup_steps": 20, "total_steps": 40}
    assert config["optimizer"]["betas"] == [0.9, 0.98]  # untuned warm-up 2/(1-0.98) = 100, capped at half the run
    estimate = result.suggestions["estimate"]
    first = [c["lr"] for c in result.candidates[:3]]
    assert first == pytest.approx([estimate * 10 ** (0.3 * k) for k in (0, 1, 2)])
    # every candidate to update 24 (20 + a fifth of the 20 updates after the warm-up), then a branch decaying its
    # LR to 0 over 3 updates (8 % of the budget); while the best is at an edge, one more beyond it
    assert all(c["rungs"] == [24] and len(c["valid_loss"]) == 1 for c in result.candidates)
    after = {c["lr"]: c["valid_loss"][0] for c in result.candidates}
    for i, c in enumerate(result.candidates):  # the value compared is the cooldown branch's final validation loss
        branch = tmp_path / "a" / f"candidate-{i}-cooldown"
        outcome = json.loads((branch / "run.json").read_text())
        assert outcome["steps"] == 27 and outcome["final_metrics"]["valid_loss"] == c["valid_loss"][0]
        schedule = lrtune.schedules.from_spec(json.loads((branch / "config.json").read_text())["schedule"])
        main_schedule = lrtune.schedules.warmup_linear_decay(20, 40)
        assert [schedule.at(t) for t in range(1, 25)] == [main_schedule.at(t) for t in range(1, 25)]
        assert schedule.at(27) == 0.0 and 0 < schedule.at(26) < main_schedule.at(25)
    best = min(after, key=after.get)  # type: ignore[arg-type]
    tried = sorted(after)
    if "plateau" in result.choice:  # the best at an edge but < 1 % ahead of its neighbour: the neighbour
        best = tried[1] if best == tried[0] else tried[-2]
        assert after[best] <= 1.01 * min(after.values())
    else:
        assert result.choice == "the lowest validation loss after the cooldown"
    assert tried[0] < best < tried[-1] or result.weak  # an edge winner is flagged as weak evidence
    assert config["optimizer"]["lr"] == best
    assert json.loads((tmp_path / "a" / "auto.json").read_text())["evidence"]["choice"] == result.choice
    trained = (24 + 3) * len(result.candidates)
    assert result.range_test_updates <= 2 * 30 and result.updates == result.range_test_updates + trained
    saved = tmp_path / "a" / "auto.json"
    assert {k: v for k, v in json.loads(saved.read_text()).items() if k != "evidence"} == config
    assert json.loads(saved.read_text())["evidence"]["weak"] == result.weak
    assert main(["train", "--config", str(saved), "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["steps"] == 40
    runs = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("candidate-*/**/*") if p.is_file()}
    again = auto("digits", steps=40, batch_size=32, candidates=3, range_test_steps=30, out=tmp_path / "a")
    assert again.config == config
    assert {p: p.stat().st_mtime_ns for p in runs} == runs  # continued: no candidate run trained again
    assert again.updates == again.range_test_updates + trained  # and the choice's compute still counts them


def test_auto_looks_beyond_an_edge_winner() -> None:
    """Candidates far below the best LR (the estimate scaled down a hundredfold): auto steps up past the edge."""
    from unittest import mock

    from lrtune.study import _auto

    real = _auto.estimate_lr

    def low(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        found.lr /= 100
        return found

    with mock.patch.object(_auto, "estimate_lr", low):
        result = auto("digits", steps=60, batch_size=32, candidates=2, range_test_steps=30, max_extensions=3)
    lrs = [c["lr"] for c in result.candidates]
    assert len(lrs) > 2 and lrs[2] > max(lrs[:2])  # it tried above the largest first candidate
    if max(lrs) == result.config["optimizer"]["lr"]:
        assert any("largest of those tried" in w for w in result.weak)


def test_auto_run_again_does_not_train_a_diverged_candidate_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Candidates far above the best LR (the estimate scaled up a hundredfold) diverge; the warning names the run
    and gives the loss and LR in a few digits. auto run again with the same settings reads them: nothing trains."""
    import logging
    from unittest import mock

    from lrtune.study import _auto

    real = _auto.estimate_lr

    def high(*args: object, **kwargs: object) -> object:
        found = real(*args, **kwargs)  # type: ignore[arg-type]
        found.lr *= 100
        return found

    def choose() -> Any:
        with mock.patch.object(_auto, "estimate_lr", high):
            return auto("digits", steps=40, batch_size=32, candidates=3, range_test_steps=30, out=tmp_path)

    with caplog.at_level(logging.WARNING, logger="lrtune"):
        first = choose()
    diverged = [i for i, c in enumerate(first.candidates) if c["status"] == "diverged"]
    assert diverged, [c["status"] for c in first.candidates]
    for i in diverged:
        lines = [r.getMessage() for r in caplog.records if f"{tmp_path / f'candidate-{i}'} diverged" in r.getMessage()]
        assert len(lines) == 1 and re.search(r"diverged at update \d+ \(loss [^ ]{1,9}, LR [^ ]{1,6}\)$", lines[0])
    runs = {p: p.stat().st_mtime_ns for p in tmp_path.glob("candidate-*/**/*") if p.is_file()}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lrtune"):
        again = choose()
    assert not [r for r in caplog.records if "diverged at update" in r.getMessage()]
    assert {p: p.stat().st_mtime_ns for p in runs} == runs  # nothing trained again, the diverged ones included
    assert again.config == first.config and again.updates == first.updates
    assert [c["status"] for c in again.candidates] == [c["status"] for c in first.candidates]


def test_auto_stops_on_ctrl_c_and_the_same_call_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a candidate run stops auto (no choice is written from a run cut short); auto run again with the
    same settings continues that run from its checkpoint and chooses exactly as an uninterrupted auto."""
    from lrtune.study import _auto

    settings: dict[str, Any] = dict(steps=40, batch_size=32, candidates=2, range_test_steps=30, max_extensions=0)
    whole = auto("digits", out=tmp_path / "whole", **settings)
    real = _auto.train

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(_auto, "train", real)  # only the first candidate run is interrupted
        seen = [0]

        def send(line: dict[str, Any]) -> None:
            kwargs["callback"](line)
            seen[0] += "loss" in line
            if seen[0] == 5:
                os.kill(os.getpid(), signal.SIGINT)

        return real(*args, **{**kwargs, "callback": send})

    monkeypatch.setattr(_auto, "train", interrupted_once)
    with default_sigint(), pytest.raises(KeyboardInterrupt, match=r"candidate-0 interrupted at update 5$"):
        auto("digits", out=tmp_path / "cut", **settings)
    assert not (tmp_path / "cut" / "auto.json").exists()
    assert (tmp_path / "cut" / "candidate-0" / "checkpoints" / "step-00000005.pt").is_file()
    again = auto("digits", out=tmp_path / "cut", **settings)
    assert again.config == whole.config and again.updates == whole.updates
    assert [c["valid_loss"] for c in again.candidates] == [c["valid_loss"] for c in whole.candidates]


def test_auto_flags_a_comparison_within_its_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidate losses that fall, rise by more than 2 % and fall again across LR are weak evidence (digits at batch
    32, seed 1, measured: 0.092, 0.104, 0.082, 0.115 at 0.016 … 0.12); a smooth curve, or a flat optimum's
    0.2 % wobble (the sequence classifier at batch 128: 0.3044, 0.3049, 0.3030), is not."""
    from lrtune.study import _auto

    def pool(losses: list[float], lrs: list[float] | None = None) -> list[dict[str, Any]]:
        lrs = lrs or [2**k for k in range(len(losses))]
        return [{"lr": lr, "valid_loss": [v]} for lr, v in zip(lrs, losses, strict=True)]

    assert _auto._bump(pool([0.3, 0.5, 0.4, 0.6], [4, 1, 2, 8])) == 0.0  # 0.5, 0.4, 0.3, 0.6 by LR: one minimum
    assert _auto._bump(pool([0.092, 0.104, 0.082, 0.115])) == pytest.approx(0.104 / 0.092 - 1)
    assert _auto._bump(pool([0.3044, 0.3049, 0.3030, 0.3183])) == pytest.approx(0.3049 / 0.3044 - 1)
    assert _auto._bump(pool([0.2, 0.5, 0.3, 0.6, 0.1])) == pytest.approx(0.6 / 0.3 - 1)  # the largest rise
    assert _auto._bump(pool([0.3, math.inf])) == 0.0  # diverged: one minimum
    assert _auto._bump(pool([0.3, math.inf, 0.2])) == math.inf
    assert _auto._bump(pool([0.3, 0.3])) == 0.0  # a tie: no minimum

    def probe(self: _auto._Candidates, i: int, rung: int, cooldown: int) -> float:
        return self._record(self.pool[i], rung, "completed", losses[i])

    monkeypatch.setattr(_auto._Candidates, "probe", probe)
    for losses, flagged in [([0.3, 0.5, 0.2, 0.4], True), ([0.4, 0.3, 0.35], False), ([0.3, 0.301, 0.29, 0.4], False)]:
        result = auto("digits", steps=40, batch_size=32, candidates=3, range_test_steps=20)
        assert len(result.candidates) == len(losses)  # the best at the edge: one more beyond it
        assert result.config["optimizer"]["lr"] == result.candidates[losses.index(min(losses))]["lr"]
        assert any("rise by 67 %" in w for w in result.weak) == flagged


def test_auto_takes_the_inner_neighbour_of_an_edge_winner_on_a_plateau(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edge winner less than 1 % ahead of its neighbour: the neighbour is chosen, with no look beyond (the
    sequence classifier at batch 32 measured leads of 0.1–0.5 %); 1 % or more: one more LR beyond the edge."""
    from lrtune.study import _auto

    def probe(self: _auto._Candidates, i: int, rung: int, cooldown: int) -> float:
        return self._record(self.pool[i], rung, "completed", losses[i])

    monkeypatch.setattr(_auto._Candidates, "probe", probe)
    # candidates e, 2e, 4e (then e/2 when e wins at the edge by >= 1 %); the index of the one chosen
    for losses, chosen in [([0.300, 0.302, 0.4], 1), ([0.3, 0.31, 0.4, 0.299], 0), ([0.3, 0.31, 0.4, 0.32], 0)]:
        result = auto("digits", steps=40, batch_size=32, candidates=3, range_test_steps=20)
        assert len(result.candidates) == len(losses)
        assert result.config["optimizer"]["lr"] == result.candidates[chosen]["lr"]
        lrs = sorted(c["lr"] for c in result.candidates)
        assert lrs[0] < result.config["optimizer"]["lr"] < lrs[-1] and not result.weak
        assert ("plateau" in result.choice) == (chosen != losses.index(min(losses)))
    losses = [0.300, 0.302, 0.4]
    assert "only 0.67 % ahead of" in auto("digits", steps=40, batch_size=32, range_test_steps=20).choice


def test_auto_radam_has_no_warmup_and_bad_arguments() -> None:
    result = auto("digits", steps=20, batch_size=32, optimizer="radam", candidates=1, range_test_steps=20)
    assert result.config["schedule"]["warmup_steps"] == 0 and len(result.candidates) == 1
    for kwargs, pattern in [
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"beta2": 1.0}, "beta2 must be in"),
        ({"check_fraction": 1.5}, "check_fraction must be in"),
        ({"candidates": 0}, "candidates must be"),
        ({"spacing": 0.0}, "spacing must be a positive number of decades, got 0.0"),
        ({"range_test_steps": 2}, "range_test_steps must be"),
        ({"cooldown": 0.0}, "cooldown must be a fraction of the budget"),
        ({"repeats": 0}, "repeats must be"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            auto("digits", steps=20, **kwargs)  # type: ignore[arg-type]


def test_auto_compares_candidates_only_after_the_warmup() -> None:
    from lrtune.study._auto import _rung, _untuned_warmup

    # β2 = 0.98: a warm-up (explicit for Adam, RAdam's rectification) of 2/(1 − β2) = 100 updates
    assert _untuned_warmup(0.98, 300) == 100
    assert _rung(300, 100, 0.2) == 140  # a fifth of the way after the warm-up
    assert _untuned_warmup(0.999, 300) == 150  # capped at half the budget
    assert _rung(300, 150, 0.2) == 180
    for total in range(4, 60):
        warmup = _untuned_warmup(0.98, total)
        assert warmup < _rung(total, warmup, 0.2) < total


def test_study_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "seeds must be >= 1" in capsys.readouterr().out
    for jobs in ("-1", "0"):  # one line, before any progress bar, and nothing written
        assert main(["study", "--workload", "digits", "--jobs", jobs, "--out", str(tmp_path / "j")]) == 2
        assert capsys.readouterr().out == f"lrtune study: --jobs must be >= 1, got {jobs}\n"
    assert not (tmp_path / "j").exists()
    (tmp_path / "afile").write_text("mine\n")
    under = tmp_path / "afile" / "sub"
    refused = {
        ("--batch-size", "-3"): "lrtune study: --batch-size must be >= 1, got -3\n",
        ("--beyond", "-1"): "lrtune study: --beyond must be an integer >= 0, got -1\n",
        ("--out", str(tmp_path / "afile")): f"lrtune study: --out {tmp_path / 'afile'} is a file, not a directory\n",
        ("--workload", "nosuch"): "lrtune study: --workload 'nosuch' is not one of",
        ("--out", str(under)): f"lrtune study: --out {under}: {tmp_path / 'afile'} is a file, not a directory\n",
    }
    for (flag, value), line in refused.items():
        args = ["study", "--workload", "digits", "--out", str(tmp_path / "k"), flag, value]
        assert main(args) == 2
        out = capsys.readouterr().out
        assert out.startswith(line) and out.count("\n") == 1, out  # no progress bar before it
    assert not (tmp_path / "k").exists() and (tmp_path / "afile").read_text() == "mine\n"


def test_study_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(PRESETS, "quick", Preset(("adam", "radam"), (1.0,), (0,), (8,), 400, 1, 4))
    options = [x for key, value in SLICE.items() for x in ("--workload-option", f"{key}={value}")]
    assert main(["study", *options, "--out", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"recommendation for 8 updates: {LABELS[summary['recommendation']['recipe']]}" in out
    assert "report:" in out and (tmp_path / "report.html").is_file()
    assert main(["study", *options, "--out", str(tmp_path)]) == 0  # complete: re-read, nothing trained
    study = optuna.load_study(study_name="study-quick", storage=f"sqlite:///{tmp_path / 'lrtune.db'}")
    assert len(study.trials) == 2


def test_study_command_run_again_counts_its_finalists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished study run again trains nothing, and its progress bar counts every run, the finalists too."""
    preset = Preset(("adam",), (0.5, 2.0), (0,), (8,), 64, 1, None, diagnostics=False, target_steps=16, finalists=1)
    monkeypatch.setitem(PRESETS, "quick", preset)
    args = ["study", "--workload", "digits", "--out", str(tmp_path)]
    assert main(args) == 0
    beyond = json.loads((tmp_path / "summary.json").read_text())["beyond"]
    assert beyond  # a grid of two LRs: its best is at an edge, so the study trains beyond it, and counts that too
    runs = 3 + len(beyond)
    assert f"{runs}/{runs}" in capsys.readouterr().out
    assert main(args) == 0
    assert f"{runs}/{runs}" in capsys.readouterr().out  # (it read 2/3: the finalist was not counted)


def test_the_study_progress_bar_ends_at_what_the_storage_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A helper's runs call no callback in the study's process (with --jobs 2 the last finalist may be the
    helper's): the bar's last count is read from the storage, not from the callbacks seen."""
    preset = Preset(("adam",), (0.5, 2.0), (0,), (8,), 64, 1, None, diagnostics=False, target_steps=16, finalists=1)
    monkeypatch.setitem(PRESETS, "quick", preset)
    real = lrtune.study.run_study

    def unseen(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return real(*args, **{**kwargs, "callbacks": []})  # as if every run were a helper's

    monkeypatch.setattr(lrtune.study, "run_study", unseen)
    assert main(["study", "--workload", "digits", "--out", str(tmp_path)]) == 0
    runs = 3 + len(json.loads((tmp_path / "summary.json").read_text())["beyond"])
    assert f"{runs}/{runs}" in capsys.readouterr().out


def test_a_study_with_two_horizons_reports_whether_its_ranking_holds(tmp_path: Path) -> None:
    preset = Preset(("adam", "sgd_clip"), (0.1, 1.0, 10.0), (0,), (20, 80), 64, 2, None, diagnostics=False)
    summary = run_study("digits", preset=preset, out=tmp_path, report=True)
    transfer = summary["transfer"]
    assert transfer["horizons"] == [20, 80] and len(transfer["pairs"]) == 1
    pair = transfer["pairs"][0]
    assert pair["cells"] == 6 and -1.0 <= pair["spearman"] <= 1.0
    at = {h: {s["cell"]: s["mean_valid_loss"] for s in summary["settings"] if s["steps"] == h} for h in (20, 80)}
    pick = min(at[20], key=at[20].get)  # type: ignore[arg-type]
    assert pair["regret"] == pytest.approx(at[80][pick] / min(at[80].values()) - 1)
    assert pair["top1"] == (pick == min(at[80], key=at[80].get))  # type: ignore[arg-type]
    assert transfer["stable"] == (pair["regret"] <= 0.02)
    rec = summary["recommendation"]
    assert rec["for_steps"] == 80 and rec["config"]["steps"] == 80  # the answer is for the longest runs
    assert rec["mean_valid_loss"] == min(at[80].values())
    page = (tmp_path / "report.html").read_text()
    assert "Does the ranking hold for longer training?" in page and "20 → 80" in page
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["transfer"]["pairs"][0]["short"] == 20
    assert "compared over" not in horizon_note(summary)  # every setting ran at both horizons


def test_spearman_equals_scipy() -> None:
    import random

    from scipy.stats import spearmanr

    from lrtune.study._transfer import spearman

    rng = random.Random(0)
    for n in (3, 7, 30):
        a = [rng.choice([1.0, 2.0, 2.0, 3.5, math.inf]) + rng.random() * (k % 2) for k in range(n)]
        b = [rng.random() for _ in range(n)]
        expected = spearmanr([x if math.isfinite(x) else 1e300 for x in a], b).statistic
        assert spearman(a, b) == pytest.approx(expected, abs=1e-12)


def _neighbours(f: float, grid: tuple[float, ...]) -> set[float]:
    i = grid.index(f)
    return {grid[j] for j in (i - 1, i + 1) if 0 <= j < len(grid)}


def test_finalists_are_the_best_and_the_best_beside_its_lr() -> None:
    """Short-horizon bias moves the best LR either way: the finalists straddle the screening's best LR."""
    from lrtune.study._study import choose_finalists

    def setting(recipe: str, f: float, loss: float) -> dict[str, object]:
        return {"steps": 50, "cell": json.dumps({"lr": f, "optimizer": recipe}), "mean_valid_loss": loss}

    grid = (0.1, 1.0, 10.0, 100.0)
    losses = {("adam", 10.0): 1.0, ("radam", 10.0): 1.1, ("adam", 1.0): 1.5, ("radam", 100.0): 1.3,
              ("adam", 100.0): 1.4, ("radam", 1.0): 1.6, ("adam", 0.1): 1.2, ("radam", 0.1): math.inf}  # fmt: skip
    screened = {"settings": [setting(r, f, v) for (r, f), v in losses.items()]}
    for k, expected in [
        (1, [("adam", 10.0)]),
        (2, [("adam", 10.0), ("radam", 100.0)]),  # the better neighbour (LR above: 1.3 < 1.5)
        (3, [("adam", 10.0), ("radam", 100.0), ("adam", 1.0)]),
        (4, [("adam", 10.0), ("radam", 100.0), ("adam", 1.0), ("adam", 0.1)]),  # an LR not yet there, then the rest
        (5, [("adam", 10.0), ("radam", 100.0), ("adam", 1.0), ("adam", 0.1), ("radam", 10.0)]),
    ]:
        preset = Preset(("adam", "radam"), grid, (3,), (50,), 64, 1, None, target_steps=400, finalists=k)
        got = choose_finalists(screened, preset)
        assert [(p["optimizer"], p["lr"]) for p in got] == expected and all(p["seed"] == 3 for p in got)
    diverged_best = {"settings": [setting("adam", 0.1, math.inf), setting("adam", 1.0, 2.0)]}
    one = Preset(("adam",), (0.1, 1.0), (0,), (50,), 64, 1, None, target_steps=400, finalists=1)
    assert [p["lr"] for p in choose_finalists(diverged_best, one)] == [1.0]  # a diverged setting is never the best


def test_a_target_beyond_the_screening_trains_the_best_settings_that_long(tmp_path: Path) -> None:
    """Screening at 20 updates, the recommendation for 80: the best screened setting and the best at a
    neighbouring LR are trained for 80 (their whole schedule stretched), the recommendation is the best of them
    there, and transfer is reported."""
    preset = Preset(
        ("adam", "sgd_clip"), (0.1, 1.0, 10.0), (0, 1), (20,), 64, 2, None, diagnostics=False, finalists=2, beyond=0
    )  # fmt: skip
    summary = run_study("digits", preset=preset, out=tmp_path, target_steps=80)
    screening = [s for s in summary["settings"] if s["steps"] == 20]
    final = [s for s in summary["settings"] if s["steps"] == 80]
    assert len(screening) == 6 and len(final) == 2 and all(s["seeds"] == 1 for s in final)
    ranked = sorted(screening, key=lambda s: s["mean_valid_loss"])
    factor = {s["cell"]: json.loads(s["cell"])["lr"] for s in screening}
    beside = [s for s in ranked if factor[s["cell"]] in _neighbours(factor[ranked[0]["cell"]], (0.1, 1.0, 10.0))]
    # the best of the screening and the best at a neighbouring peak LR of the grid
    assert {s["cell"] for s in final} == {ranked[0]["cell"], beside[0]["cell"]}
    rec = summary["recommendation"]
    assert rec["for_steps"] == 80 and rec["config"]["steps"] == 80
    assert rec["config"]["schedule"]["total_steps"] == 80
    assert rec["mean_valid_loss"] == min(s["mean_valid_loss"] for s in final)
    assert summary["transfer"]["pairs"][0]["cells"] == 2 and summary["missing"] == []
    note = horizon_note(summary)
    assert "(compared over the 2 settings run at both)" in note  # the finalists, not the grid
    assert summary["transfer"]["stable"] or "the best of the 2 finalists trained to 80" in note
    centres = summary["lr_centres"]  # not translation: each recipe's grid is centred on its own LR estimate
    assert centres["source"] == "estimate_lr" and set(centres["lr"]) == {"adam", "sgd_clip"}
    for s in screening:
        assert any(math.isclose(s["lr"], centres["lr"][s["recipe"]] * f, rel_tol=1e-9) for f in (0.1, 1.0, 10.0))
    assert set(summary["by_horizon"]) == {"20", "80"} and len(summary["by_horizon"]["20"]["ranking"]) == 2
    assert (tmp_path / "final" / "trials.csv").is_file() and (tmp_path / "recommended.json").is_file()
    again = run_study("digits", preset=preset, out=tmp_path, target_steps=80)  # complete: only re-read
    assert again["recommendation"] == rec and again["compute"] == summary["compute"]
    more = run_study("digits", preset=preset, out=tmp_path, target_steps=80, finalists=3)  # one more finalist
    assert {s["cell"] for s in final} < {s["cell"] for s in more["settings"] if s["steps"] == 80}
    assert more["compute"]["updates"] == summary["compute"]["updates"] + 80  # the first two were not trained again


def test_a_branch_screening_continues_its_best_runs_to_the_target(tmp_path: Path) -> None:
    """Screening by branches (the quick preset's way): each setting trains its 80-update schedule to update 20,
    then a cooldown of 8; the best two branches continue their runs from the checkpoint at 20 to 80 — the same
    runs, bit for bit, as trained from update 0 — and the recommendation is the best of them at 80."""
    preset = Preset(
        ("adam", "sgd_clip"), (0.1, 1.0, 10.0), (0,), (1,), 64, 1, None, diagnostics=False, target_steps=80,
        finalists=2, branch=(0.25, 0.1), beyond=0,
    )  # fmt: skip
    assert preset.steps == (28,) and preset.branch_steps == (20, 8)  # steps: the branches' length
    summary = run_study("digits", preset=preset, out=tmp_path)
    screening = [r for r in summary["runs"] if r["steps"] == 28]
    final = [r for r in summary["runs"] if r["steps"] == 80]
    assert len(screening) == 6 and len(final) == 2 and summary["missing"] == []
    for run in screening:
        assert run["config"]["branch"] == {"at": 20, "cooldown": 8}
        assert run["config"]["schedule"]["total_steps"] == 80  # the target's schedule (and its warm-up) to 20
        assert (tmp_path / run["run_dir"] / "checkpoints" / "step-00000020.pt").is_file()
        trained = json.loads((tmp_path / run["run_dir"] / "config.json").read_text())["schedule"]
        lrs = [lrtune.schedules.from_spec(trained)(t) for t in (20, 24, 28)]
        base = lrtune.schedules.from_spec(run["config"]["schedule"])(20)
        assert lrs == pytest.approx([base, base / 2, 0.0])  # the cooldown: linear from update 20 to 0 at 28
        assert run["updates"] == 28
    ranked = sorted(screening, key=lambda r: r["valid_loss"])
    assert {r["cell"] for r in final} == {r["cell"] for r in ranked[:2]}  # the best two branches, not LR neighbours
    assert all(r["updates"] == 60 for r in final)  # continued from update 20
    assert summary["compute"]["updates"] == 6 * 28 + 2 * 60
    best = min(final, key=lambda r: r["valid_loss"])
    rec = summary["recommendation"]
    assert rec["for_steps"] == 80 and rec["mean_valid_loss"] == best["valid_loss"]
    assert rec["config"]["steps"] == 80 and "branch" not in rec["config"]
    scratch = lrtune.train(
        lrtune.workloads.resolve_workload("digits"),
        optimizer=best["config"]["optimizer"],
        schedule=best["config"]["schedule"],
        steps=80,
        batch_size=best["config"]["batch_size"],
        seed=0,
        max_grad_norm=best["config"]["max_grad_norm"],
        eval_at=[40, 80],
    )
    assert scratch.final_metrics["valid_loss"] == best["valid_loss"]  # the continued run is the whole run
    assert summary["screening"] == {"kind": "branch", "at": 20, "cooldown": 8, "of_steps": 80, "steps": 28}
    assert "The screening's 28 updates are branches" in (tmp_path / "report.html").read_text()
    note = horizon_note(summary)
    assert summary["transfer"]["stable"] or "best at its branch (its 80-update schedule to update 20" in note


def test_a_branch_preset_is_checked() -> None:
    quick = PRESETS["quick"]
    assert quick.branch_steps == (48, 12) and quick.steps == (60,) and quick.finalists == 3
    assert dataclasses.replace(quick, target_steps=800).branch_steps == (96, 24)  # fractions of the target
    for change, message in [
        ({"target_steps": None}, "needs target_steps"),
        ({"branch": (0.9, 0.2)}, "two fractions"),
        ({"branch": (0.0, 0.1)}, "two fractions"),
        ({"branch": (0.12,)}, "two fractions"),
        ({"target_steps": 4}, "target_steps must be at least 5 for branches at 0.12 of it with 0.03 of it"),
        ({"target_steps": -5}, "needs target_steps, an integer >= 1, got -5"),
    ]:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(quick, **change)


def test_the_horizon_note_of_a_single_finalist_says_there_is_no_ranking_to_compare() -> None:
    summary = {"recommendation": {"for_steps": 400}, "transfer": {"horizons": [50, 400], "pairs": [], "stable": False}}
    assert horizon_note(summary).startswith("For runs of 400 updates, measured at 400 on the one setting trained")


def test_study_finalists_flag_is_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", "--workload", "digits", "--finalists", "0", "--out", str(tmp_path / "S")]) == 2
    assert "finalists must be an integer >= 1, got 0" in capsys.readouterr().out
    assert not (tmp_path / "S").exists()


def test_a_study_with_two_jobs_is_the_study_with_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jobs=2 (a spawned helper process beside this one, each at one thread) trains the same runs: every grid
    point once, the finalists chosen from them, and the same numbers as one job at one thread."""
    preset = Preset(
        ("adam", "sgd_clip"), (0.1, 1.0, 10.0), (0,), (1,), 64, 1, None, diagnostics=False, target_steps=200,
        finalists=2, branch=(0.25, 0.1), beyond=0,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = run_study("digits", preset=preset, out=tmp_path / "one", report=False)
    finally:
        torch.set_num_threads(threads)
    two = run_study("digits", preset=preset, out=tmp_path / "two", report=False, jobs=2)
    assert torch.get_num_threads() == threads  # restored
    assert two["missing"] == [] and len(two["runs"]) == len(one["runs"]) == 6 + 2

    def numbers(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((r["cell"], r["steps"], r["valid_loss"], r["updates"]) for r in summary["runs"])

    assert numbers(two) == numbers(one)
    assert two["recommendation"] == one["recommendation"]
    storage = f"sqlite:///{tmp_path / 'two' / 'lrtune.db'}"
    trials = optuna.load_study(study_name="study-custom", storage=storage).trials
    assert len(trials) == 6  # no trial drawn for a point another process held
    assert not any("duplicate_of" in t.user_attrs or "twin_of" in t.user_attrs for t in trials)

    def no_helpers(*args: Any) -> Any:
        raise AssertionError("a helper started for a complete study")

    monkeypatch.setattr("lrtune.study._parallel.helpers", no_helpers)
    again = run_study("digits", preset=preset, out=tmp_path / "two", report=False, jobs=2)
    assert numbers(again) == numbers(two)  # only read again


def test_the_finalist_left_for_the_last_turn_trains_at_every_thread_after_the_others(tmp_path: Path) -> None:
    """Three finalists, two jobs: the first two train side by side at a thread each, the third after both have
    ended, at both threads (not at one beside an idle core)."""
    preset = Preset(
        ("adam", "sgd_clip"), (0.1, 1.0, 10.0), (0,), (1,), 64, 1, None, diagnostics=False, target_steps=300,
        finalists=3, branch=(0.25, 0.1), beyond=0,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        summary = run_study("digits", preset=preset, out=tmp_path, report=False, jobs=2)
    finally:
        torch.set_num_threads(threads)
    assert summary["missing"] == []
    assert {r["threads"] for r in summary["runs"] if r["steps"] < 300} == {1}  # the screening
    storage = f"sqlite:///{tmp_path / 'lrtune.db'}"
    final = optuna.load_study(study_name="study-custom-final-300", storage=storage).trials
    trained = [t for t in final if t.state.name == "COMPLETE" and "twin_of" not in t.user_attrs]
    by_rank = sorted(trained, key=lambda t: t.system_attrs["lrtune:grid_point"])  # the finalists' ranks
    assert [t.system_attrs["lrtune:grid_point"] for t in by_rank] == [0, 1, 2]
    assert [t.user_attrs["threads"] for t in by_rank] == [1, 1, 2]
    last, others = by_rank[-1], by_rank[:-1]
    began = last.datetime_complete.timestamp() - last.user_attrs["train_seconds"]
    assert all(began >= t.datetime_complete.timestamp() - 0.5 for t in others)  # the cores to itself


def test_a_best_lr_at_the_edge_of_its_grid_is_tried_beyond_it_at_the_target(tmp_path: Path) -> None:
    """Two LRs, so the best setting at the target is at an edge of those its recipe tried: the study trains the
    next LR beyond it (a grid step further, from update 0 to the target) while the best is at that edge,
    Preset.beyond times at most, after its helpers, at all the threads; run again, it trains nothing. With
    beyond=0 the edge is only flagged."""
    preset = Preset(("adam",), (0.3, 1.0), (0,), (20,), 64, 1, None, diagnostics=False, target_steps=80, finalists=1)
    summary = run_study("digits", preset=preset, out=tmp_path / "S", jobs=2)
    beyond, rec = summary["beyond"], summary["recommendation"]
    assert 1 <= len(beyond) <= preset.beyond and summary["missing"] == []
    (finalist,) = [r for r in summary["runs"] if r["study"] == "study-custom-final-80"]
    assert beyond[0]["of"] == finalist["lr"]  # the one finalist, at an edge of the grid's two LRs
    for step in beyond:
        assert step["lr"] == pytest.approx(step["of"] * (1 / 0.3 if step["edge"] == "largest" else 0.3))  # a grid step
        (run,) = [r for r in summary["runs"] if r["study"] == step["study"]]
        assert run["lr"] == pytest.approx(step["lr"], rel=1e-12) and run["steps"] == 80
        assert run["threads"] == torch.get_num_threads()  # at every thread
        assert run["updates"] == 80 or run["status"] == "diverged"  # from update 0
    assert rec["lr_at_edge"] is None or len(beyond) == preset.beyond  # it stops once the best is inside
    at_target = [r["valid_loss"] for r in summary["runs"] if r["steps"] == 80 and math.isfinite(r["valid_loss"])]
    assert rec["mean_valid_loss"] == min(at_target)  # the runs beyond are candidates like the finalists
    page = (tmp_path / "S" / "report.html").read_text()
    assert "Beyond the grid: the recommended setting was at an edge of the LRs its recipe tried" in page
    again = run_study("digits", preset=preset, out=tmp_path / "S", report=False)
    assert again["beyond"] == beyond and again["recommendation"] == rec and again["compute"] == summary["compute"]

    flagged = run_study("digits", preset=dataclasses.replace(preset, beyond=0), out=tmp_path / "F", report=False)
    assert flagged["beyond"] == [] and flagged["recommendation"]["lr_at_edge"] in ("largest", "smallest")
    assert "the study did not try one" in (edge_note(flagged) or "")


def test_a_study_without_finalists_looks_beyond_with_all_its_seeds(tmp_path: Path) -> None:
    """No target beyond the screening: the setting beyond the edge is run like the grid's, at its horizon with
    every seed, and compared by the seeds' mean."""
    preset = Preset(("adam",), (0.3, 1.0), (0, 1), (10, 20), 64, 1, None, diagnostics=False, beyond=1)
    summary = run_study("digits", preset=preset, out=tmp_path, report=False)
    (step,) = summary["beyond"]  # two LRs: the best is at an edge; one step at most
    runs = [r for r in summary["runs"] if r["study"] == step["study"]]
    assert sorted(r["seed"] for r in runs) == [0, 1] and {r["steps"] for r in runs} == {20}
    assert all(r["lr"] == pytest.approx(step["lr"], rel=1e-12) for r in runs)
    beyond = [s for s in summary["settings"] if s["trials"] and s["steps"] == 20 and s["lr"] == runs[0]["lr"]]
    assert len(beyond) == 1 and beyond[0]["seeds"] == 2  # one setting, the mean of its seeds
    rec = summary["recommendation"]
    finite = [
        s["mean_valid_loss"] for s in summary["settings"] if s["steps"] == 20 and math.isfinite(s["mean_valid_loss"])
    ]
    assert rec["for_steps"] == 20 and rec["mean_valid_loss"] == min(finite)
    assert summary["transfer"]["pairs"][0]["cells"] == 2  # the grid's settings, run at both horizons
    assert summary["missing"] == []


def test_the_next_lr_beyond_an_edge_is_a_grid_step_further() -> None:
    from lrtune.study._study import beyond_point

    cell = json.dumps({"lr": 0.3, "optimizer": "adam"}, sort_keys=True)
    summary = {
        "recommendation": {"recipe": "adam", "lr": 1e-3, "lr_at_edge": "smallest"},
        "recipes": {"adam": {"lrs_tried": [1e-3, 4e-3, 1.6e-2], "cell": cell}},
    }
    point = beyond_point(summary)
    assert point is not None and point["edge"] == "smallest" and point["lr"] == pytest.approx(2.5e-4)
    assert point["params"] == {"lr": pytest.approx(0.075), "optimizer": "adam"}
    summary["recommendation"]["lr_at_edge"] = None
    assert beyond_point(summary) is None
    with pytest.raises(ValueError, match="beyond must be an integer >= 0, got -1"):
        dataclasses.replace(PRESETS["quick"], beyond=-1)


def test_jobs_are_checked_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--workload", "digits", "--jobs", "0", "--out", str(tmp_path / "S")]) == 2
    assert "jobs must be >= 1, got 0" in capsys.readouterr().out
    assert not (tmp_path / "S").exists()

    @dataclasses.dataclass
    class Local(lrtune.workloads.Digits):  # built here: a helper process could not import it
        pass

    with pytest.raises(ValueError, match="jobs=2 needs a workload that helper processes can import again"):
        run_study(Local(), preset=PRESETS["quick"], out=tmp_path / "L", jobs=2)
    assert not (tmp_path / "L").exists()
