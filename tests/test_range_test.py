"""The LR range test: the same curve as torch-lr-finder, suggestions, restoration, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch_lr_finder import LRFinder

from lrtune.tune import RangeTestResult, lr_range_test
from lrtune.workloads import Digits


def _setup() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    digits = Digits()
    model = digits.build_model(0)
    batches = list(zip(range(60), digits.train_batches(32, seed=0), strict=False))
    return model, [b for _, b in batches]


def _ce(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_same_curve_as_torch_lr_finder(mode: str) -> None:
    model, batches = _setup()
    theirs_model = copy.deepcopy(model)
    ours = lr_range_test(
        (model, _ce, batches),
        optimizer=lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9),
        start_lr=1e-4,
        end_lr=10.0,
        num_steps=60,
        mode=mode,
        smooth=0.05,
        diverge_threshold=5.0,
    )
    finder = LRFinder(
        theirs_model,
        torch.optim.SGD(theirs_model.parameters(), lr=1.0, momentum=0.9),
        torch.nn.CrossEntropyLoss(),
        device="cpu",
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)  # the same batches, in order
    finder.range_test(loader, start_lr=1e-4, end_lr=10.0, num_iter=60, step_mode=mode, smooth_f=0.05, diverge_th=5)
    assert len(ours.lrs) == len(finder.history["lr"])  # the same stopping update
    assert ours.lrs == pytest.approx(finder.history["lr"], rel=1e-12)
    assert ours.smoothed == pytest.approx(finder.history["loss"], rel=1e-6)


def test_workload_suggestions_and_restoration() -> None:
    digits = Digits()
    rng = torch.get_rng_state()
    result = lr_range_test(digits, optimizer={"name": "adam"}, start_lr=1e-5, end_lr=10.0, num_steps=80, batch_size=64)
    assert torch.equal(torch.get_rng_state(), rng)
    assert result.diverged and len(result.lrs) < 80  # Adam at LR 10 blows up before the end
    s = result.suggestions()
    assert set(s) == {"steepest", "valley", "minimum_over_10"}
    assert all(1e-5 <= v <= 10.0 for v in s.values())
    best = result.lrs[min(range(len(result.smoothed)), key=result.smoothed.__getitem__)]
    assert s["minimum_over_10"] == pytest.approx(best / 10)
    assert result.smoothed[0] == result.losses[0]
    assert result.smoothed[1] == pytest.approx(0.05 * result.losses[1] + 0.95 * result.losses[0])


def test_user_model_is_untouched_and_validation_loss_recorded() -> None:
    model, batches = _setup()
    before = copy.deepcopy(model.state_dict())
    x, y = batches[-1]
    result = lr_range_test(
        (model, _ce, batches[:20]),
        optimizer={"name": "sgd", "momentum": 0.9},
        num_steps=20,
        valid_loss=lambda m: _ce(m, (x, y)).item(),
    )
    assert result.valid_losses is not None and len(result.valid_losses) == len(result.lrs) == 20
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training


def test_suggestions_on_a_known_curve() -> None:
    lrs = [10 ** (-5 + i / 10) for i in range(50)]
    losses = [3.0 - 2.0 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) for lr in lrs]  # steepest at lr = 1e-3
    result = RangeTestResult(lrs, losses, losses)
    assert result.suggestions()["steepest"] == pytest.approx(1e-3, rel=0.3)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"end_lr": 1e-8}, "end_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"mode": "cosine"}, "mode"),
        ({"smooth": 1.0}, "smooth"),
        ({"diverge_threshold": 1.0}, "diverge_threshold"),
    ],
)
def test_bad_arguments(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        lr_range_test(Digits(), optimizer={"name": "sgd"}, **kwargs)


def test_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    result = lr_range_test(Digits(), optimizer={"name": "adam"}, num_steps=40)
    result.plot().figure.savefig(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 5_000


def test_find_lr_command(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from lrtune.cli import main

    out = tmp_path / "lr.png"
    assert main(["find-lr", "--workload", "digits", "--optimizer", "sgd", "--num-steps", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "steepest" in text and "valley" in text and "minimum_over_10" in text
    assert out.stat().st_size > 5_000
    assert main(["find-lr", "--num-steps", "1", "--out", str(out)]) == 2
    folder = f"{tmp_path / 'new'}/"  # a folder not there yet, named with a trailing slash
    assert main(["find-lr", "--workload", "digits", "--num-steps", "20", "--out", folder]) == 0
    assert (tmp_path / "new" / "lr_range_test.png").is_file() and (tmp_path / "new" / "lr_range_test.json").is_file()
    capsys.readouterr()
    (tmp_path / "afile").write_text("mine\n")  # an --out whose folder cannot be made: refused before the test trains
    bad = str(tmp_path / "afile" / "lr.png")
    assert main(["find-lr", "--workload", "digits", "--num-steps", "20", "--out", bad]) == 2
    text = capsys.readouterr().out
    assert text.startswith(f"lrtune find-lr: --out {bad}: cannot make the folder") and "updates" not in text, text


def test_a_quadratic_diverges_where_theory_says() -> None:
    """f(w) = a·w²/2 with plain SGD: w ← (1 − lr·a)·w shrinks for lr < 2/a and grows beyond it."""
    a = 4.0  # the stability limit is lr = 2/a = 0.5
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(model.weight)

    def loss_fn(m: torch.nn.Module, batch: object) -> torch.Tensor:
        return 0.5 * a * m.weight.square().sum()

    result = lr_range_test(
        (model, loss_fn, range(300)), optimizer={"name": "sgd"}, start_lr=1e-4, end_lr=10.0, num_steps=300
    )
    assert result.diverged
    stop = result.lrs[-1]
    assert stop > 2 / a  # it cannot diverge below the stability limit
    lowest = result.lrs[min(range(len(result.losses)), key=result.losses.__getitem__)]
    assert 0.25 < lowest <= 2 / a * 1.1  # the raw loss falls until lr·a reaches 2, then rises
    best = result.lrs[min(range(len(result.smoothed)), key=result.smoothed.__getitem__)]
    assert best >= lowest  # the moving average lags the raw loss
    assert result.suggestions()["minimum_over_10"] == pytest.approx(best / 10)
    assert float(model.weight) == 1.0  # restored


def test_the_lr_estimate_is_the_median_of_repeats_and_flags_weak_evidence() -> None:
    from lrtune.tune import estimate_lr

    digits = Digits()
    found = estimate_lr(digits, optimizer={"name": "adam"}, batch_size=64, repeats=2, num_steps=60)
    values = [v for reading in found.per_repeat for v in reading.values()]
    logs = sorted(math.log10(v) for v in values)
    middle = (logs[len(logs) // 2 - 1] + logs[len(logs) // 2]) / 2 if len(logs) % 2 == 0 else logs[len(logs) // 2]
    assert math.log10(found.lr) == pytest.approx(middle)
    assert found.updates <= 120 and found.spread_decades < 1.0 and found.weak == []

    class Flat:  # a loss no LR can move: nothing to read from the curve
        name, metric, higher_is_better, step_hint = "flat", "valid_loss", False, 10

        def build_model(self, seed: int) -> torch.nn.Module:
            return torch.nn.Linear(1, 1)

        def train_batches(self, batch_size: int, seed: int):  # type: ignore[no-untyped-def]
            while True:
                yield torch.zeros(batch_size, 1)

        def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return (model(batch) * 0).sum() + 1.0

        def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
            return {"valid_loss": 1.0}

    with pytest.raises(ValueError, match="no LR range test gave a reading"):
        estimate_lr(Flat(), optimizer={"name": "adam"}, batch_size=8, repeats=2, num_steps=30)
