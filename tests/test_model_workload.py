"""ModelWorkload: a model factory, data and a loss as a Workload that every lrtune tool runs."""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from collections import namedtuple
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, WeightedRandomSampler

import lrtune
from lrtune.study import auto
from lrtune.tune import lr_range_test
from lrtune.workloads import ModelWorkload, Workload

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model.py"
N_TRAIN, N_VALID, FEATURES = 100, 10, 6


def _tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


class Noisy(Dataset[dict[str, torch.Tensor]]):
    """Examples with their index and a random augmentation drawn from torch's global RNG."""

    def __init__(self, n: int = N_TRAIN) -> None:
        self.x, self.y = _tensors(n, seed=1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i] + 0.1 * torch.randn(FEATURES), "y": self.y[i], "index": torch.tensor(i)}


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def ce(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
    return F.cross_entropy(model(x), y)


def accuracy(model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
    x, y = batch
    return {"valid_accuracy": (model(x).argmax(1) == y).float().mean()}


def make(**overrides: Any) -> ModelWorkload:
    kwargs: dict[str, Any] = {
        "model": mlp,
        "train_data": Noisy(),
        "loss": ce,
        "valid_data": TensorDataset(*_tensors(N_VALID, seed=2)),
        "eval_batch_size": 4,  # batches of 4, 4 and 2: unequal sizes
        "name": "toy",
        "step_hint": 30,
    }
    return ModelWorkload(**(kwargs | overrides))


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_it_is_a_workload_with_seeded_models() -> None:
    w = make()
    assert isinstance(w, Workload)
    assert (w.name, w.step_hint, w.metric, w.higher_is_better) == ("toy", 30, "valid_loss", False)
    a, b, c = (_params(w.build_model(s)) for s in (0, 0, 1))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    seen: list[int] = []
    by_seed = make(model=lambda seed: seen.append(seed) or mlp())
    by_seed.build_model(7)
    assert seen == [7]
    by_class = make(model=nn.Identity)  # a class is called without arguments
    assert isinstance(by_class.build_model(3), nn.Identity)
    assert lrtune.workloads.workload_options(w) == {}  # nothing of a user's objects goes into run configs


def _indices(batches: Any, count: int) -> list[list[int]]:
    return [b["index"].tolist() for b in itertools.islice(batches, count)]


def test_training_batches_are_seeded_epochs_that_leave_the_global_rng_alone() -> None:
    w = make()
    before = torch.get_rng_state()
    stream = list(itertools.islice(w.train_batches(32, seed=0), 9))  # 3 epochs of 3 batches (4 examples dropped)
    assert torch.equal(torch.get_rng_state(), before)  # augmentation and shuffling ran on the data's own stream
    epochs = [sorted(i for b in stream[e * 3 : e * 3 + 3] for i in b["index"].tolist()) for e in range(3)]
    assert all(len(e) == len(set(e)) == 96 for e in epochs)
    assert _indices(iter(stream), 3) != _indices(iter(stream[3:]), 3)  # every epoch is reshuffled
    again = list(itertools.islice(w.train_batches(32, seed=0), 9))
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(stream, again, strict=True))  # augmentation too
    assert _indices(w.train_batches(32, seed=1), 3) != _indices(iter(stream), 3)
    with pytest.raises(ValueError, match="batch_size must be <= the 100 training examples, got 101"):
        w.train_batches(101, seed=0)


def _collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([e[k] for e in examples]) for k in ("x", "y", "index")} | {"collated": torch.ones(1)}


def test_a_dataloader_is_rebatched_by_lrtune_keeping_its_collate_fn() -> None:
    loader = DataLoader(Noisy(), batch_size=7, shuffle=True, collate_fn=_collate)
    from_loader = make(train_data=loader).train_batches(16, seed=3)
    from_dataset = make(collate_fn=_collate).train_batches(16, seed=3)
    for a, b in itertools.islice(zip(from_loader, from_dataset, strict=True), 8):
        assert "collated" in a and a["index"].shape == (16,)
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["x"], b["x"])
    weighted = DataLoader(Noisy(), batch_size=8, sampler=WeightedRandomSampler(torch.ones(N_TRAIN), N_TRAIN))
    with pytest.raises(ValueError, match=r"WeightedRandomSampler.*callable"):
        make(train_data=weighted)


def test_a_callable_gives_its_own_batches_epoch_after_epoch() -> None:
    data = Noisy()

    def batches(batch_size: int, seed: int) -> DataLoader[Any]:  # a DataLoader without a generator of its own
        return DataLoader(data, batch_size=batch_size, shuffle=True)

    w = make(train_data=batches)
    a, b = (_indices(w.train_batches(25, seed=0), 8) for _ in range(2))  # 2 epochs of 4
    assert a == b and a[:4] != a[4:]
    assert sorted(i for batch in a[:4] for i in batch) == list(range(N_TRAIN))

    def once(batch_size: int, seed: int) -> Any:
        return iter([next(iter(DataLoader(data, batch_size=batch_size)))])

    stream = make(train_data=once).train_batches(10, seed=0)
    next(stream)
    with pytest.raises(ValueError, match="returned an iterator, which ended after one pass"):
        next(stream)
    with pytest.raises(ValueError, match="yielded no batches"):
        next(make(train_data=lambda batch_size, seed: []).train_batches(10, seed=0))


def test_evaluate_averages_over_batches_of_unequal_size() -> None:
    x, y = _tensors(N_VALID, seed=2)
    model = mlp().eval()
    with torch.no_grad():
        whole = {"valid_loss": F.cross_entropy(model(x), y).item()}
        whole["valid_accuracy"] = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    for valid_data in (
        TensorDataset(x, y),
        DataLoader(TensorDataset(x, y), batch_size=3),
        [(x[:7], y[:7]), (x[7:], y[7:])],
    ):
        w = make(valid_data=valid_data, metrics=accuracy)
        got = w.evaluate(model)
        assert got.keys() == whole.keys()
        assert all(math.isclose(got[k], whole[k], rel_tol=1e-6) for k in whole), (valid_data, got, whole)
        assert model.training  # the mode is restored


def test_loss_weight_weights_the_averages() -> None:
    """A masked (token-level) loss: batches average over their unmasked terms, the evaluation over all of them."""
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 5, generator=g), torch.rand(4, 5, generator=g) > 0.3) for _ in range(3)]

    def masked(model: nn.Module, batch: Any) -> torch.Tensor:
        values, mask = batch
        return model(values)[mask].mean()

    w = make(model=nn.Identity, loss=masked, valid_data=batches, loss_weight=lambda batch: int(batch[1].sum()))
    everything = torch.cat([v[m] for v, m in batches]).mean().item()
    assert math.isclose(w.evaluate(nn.Identity())["valid_loss"], everything, rel_tol=1e-6)
    by_rows = make(model=nn.Identity, loss=masked, valid_data=batches).evaluate(nn.Identity())["valid_loss"]
    assert not math.isclose(by_rows, everything, rel_tol=1e-6)  # the mean of the batches' means is not


def test_evaluate_function_is_told_when_it_is_final_and_leaves_the_rng_alone() -> None:
    calls: list[bool] = []

    def expensive(model: nn.Module, *, final: bool) -> dict[str, float]:
        calls.append(final)
        torch.rand(3)  # evaluation may draw random numbers: training's stream must not see them
        return {"f1": 0.5} if final else {}

    w = make(evaluate=expensive)
    before = torch.get_rng_state()
    record = lrtune.train(w, optimizer={"name": "adam", "lr": 1e-2}, steps=4, eval_every=2, batch_size=16)
    assert calls == [False, True] and record.final_metrics["f1"] == 0.5 and "f1" not in record.evals[0]
    assert w.evaluate(mlp()).keys() == {"valid_loss", "f1"}
    torch.set_rng_state(before)
    model = w.build_model(0)
    state = torch.get_rng_state()
    w.evaluate(model)
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="metric 'f1' is not among the evaluated metrics"):
        make(evaluate=expensive, metric="f1", higher_is_better=True).evaluate(model, final=False)


class _Stream(IterableDataset[int]):
    def __iter__(self) -> Any:
        return iter(range(3))


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"model": mlp()}, TypeError, "model must be a factory that builds a fresh model .* nn.Module instance"),
        ({"model": 3}, TypeError, "model must be a callable returning an nn.Module, got int"),
        ({"model": lambda a, b: mlp()}, TypeError, "model must take no arguments or a seed"),
        (
            {"train_data": _tensors(8, 0)},
            TypeError,
            r"train_data is a tuple of tensors: wrap tensors in .*TensorDataset",
        ),
        ({"train_data": [1, 2, 3]}, TypeError, "train_data must be a map-style Dataset, a DataLoader, or a callable"),
        ({"train_data": _Stream()}, TypeError, "train_data is an IterableDataset"),
        ({"train_data": TensorDataset(torch.zeros(0))}, ValueError, "train_data is empty"),
        ({"train_data": lambda batch_size: []}, TypeError, r"train_data must take 2 positional argument\(s\)"),
        ({"loss": lambda batch: batch}, TypeError, r"loss must take 2 positional argument\(s\) \(model, batch\)"),
        ({"valid_data": _tensors(8, 0)}, TypeError, "valid_data is a tuple of tensors"),
        ({"valid_data": iter([1])}, TypeError, "valid_data is an iterator"),
        ({"valid_data": 5}, TypeError, "valid_data must be a Dataset, a DataLoader or a list of batches, got int"),
        ({"metric": "valid_accuracy", "metrics": accuracy}, ValueError, "higher_is_better must be given"),
        ({"metric": "valid_accuracy", "higher_is_better": True}, ValueError, "needs a metrics or an evaluate"),
        ({"higher_is_better": 1}, TypeError, "higher_is_better must be True or False, got 1"),
        ({"metric": ""}, TypeError, "metric must be a non-empty string"),
        ({"name": ""}, TypeError, "name must be a non-empty string"),
        ({"step_hint": 0}, ValueError, "step_hint must be >= 1, got 0"),
        ({"eval_batch_size": 2.5}, ValueError, "eval_batch_size must be a whole number of steps, got 2.5"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_bad_arguments_fail_at_construction(overrides: dict[str, Any], error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make(**overrides)


def test_bad_results_are_named() -> None:
    batch = next(make().train_batches(8, seed=0))
    with pytest.raises(TypeError, match=r"loss must return a scalar tensor .*, got \(8,\)"):
        make(loss=lambda m, b: F.cross_entropy(m(b["x"]), b["y"], reduction="none")).loss(mlp(), batch)
    with pytest.raises(TypeError, match=r"model must return a torch\.nn\.Module, got str"):
        make(model=lambda: "net").build_model(0)
    with pytest.raises(ValueError, match="metrics returned the key 'valid_loss'"):
        make(metrics=lambda m, b: {"valid_loss": 0.0}).evaluate(mlp())
    flaky = iter([{"a": 1.0}, {"b": 1.0}, {"a": 1.0}])
    with pytest.raises(
        ValueError, match=r"keys \['b', 'valid_loss'\] for a batch, \['a', 'valid_loss'\] for an earlier"
    ):
        make(metrics=lambda m, b: next(flaky)).evaluate(mlp())
    with pytest.raises(TypeError, match=r"metrics\['acc'\] must be a scalar"):
        make(metrics=lambda m, b: {"acc": torch.ones(2)}).evaluate(mlp())


def _train(w: ModelWorkload, out: Path, steps: int, **kw: Any) -> lrtune.RunRecord:
    return lrtune.train(
        w,
        optimizer={"name": "adam", "lr": 1e-2},
        schedule={"name": "warmup_linear_decay", "warmup_steps": 5, "total_steps": 40},
        steps=steps,
        batch_size=16,
        eval_every=10,
        checkpoint_every=10,
        out_dir=out,
        **kw,
    )


def test_train_learns_and_resumes_bit_identically(tmp_path: Path) -> None:
    """Dropout in the model, random augmentation in the data: a resumed run still equals the uninterrupted one."""
    w = make(metrics=accuracy, metric="valid_accuracy", higher_is_better=True)
    full = _train(w, tmp_path / "full", 40)
    assert full.status == "completed" and full.evals[-1]["valid_loss"] < full.evals[0]["valid_loss"]
    _train(w, tmp_path / "cut", 25)  # stopped after update 25; the last checkpoint is at 20
    resumed = _train(w, tmp_path / "cut", 40, resume=True)
    assert resumed.evals == full.evals
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    other = lrtune.train(w, optimizer={"name": "adam", "lr": 1e-2}, steps=10, batch_size=16, seed=1)
    assert other.evals != full.evals[:1]


def test_how_often_a_run_evaluates_does_not_change_its_training() -> None:
    w = make(evaluate=lambda model: {"noise": torch.rand(()).item()})  # evaluation that draws random numbers
    runs = [
        lrtune.train(w, optimizer={"name": "adam", "lr": 1e-2}, steps=12, batch_size=16, eval_every=every)
        for every in (3, 12)
    ]
    assert runs[0].evals[-1] == runs[1].evals[-1]  # dropout and data drew the same numbers in both


def test_named_tuple_batches_reach_the_loss_as_named_tuples() -> None:
    Batch = namedtuple("Batch", ["x", "y"])
    x, y = _tensors(N_TRAIN, seed=1)

    def batches(batch_size: int, seed: int) -> Any:
        return [Batch(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, N_TRAIN, batch_size)]

    w = make(
        train_data=batches,
        valid_data=batches(8, 0),
        loss=lambda model, batch: F.cross_entropy(model(batch.x), batch.y),
    )
    assert lrtune.train(w, optimizer={"name": "sgd", "lr": 0.1}, steps=3, batch_size=8).status == "completed"


def test_range_test_and_auto_run_on_it(tmp_path: Path) -> None:
    w = make()
    curve = lr_range_test(w, optimizer={"name": "adam"}, num_steps=15, batch_size=16)
    assert len(curve.lrs) >= 5 and all(math.isfinite(v) for v in curve.suggestions().values())
    choice = auto(w, steps=12, batch_size=16, candidates=2, range_test_steps=10, out=tmp_path)
    assert choice.config["workload"] == "toy" and choice.config["workload_options"] == {}
    assert len(choice.candidates) >= 2 and (tmp_path / "auto.json").is_file()  # (more when one won at an edge)


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("own_model_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    example = _load_example()
    narrow = example.workload(hidden=8)  # what --workload-option hidden=8 will pass
    assert isinstance(narrow, Workload) and narrow.build_model(0).head[1].out_features == 8
    monkeypatch.setattr(sys, "argv", ["own_model.py", "--quick"])
    example.main()
    out = capsys.readouterr().out
    assert "LR range test (30 updates" in out and "lrtune auto" in out and "final run: completed, 30 updates" in out
    accuracies = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "valid accuracy" in line]
    assert len(accuracies) == 5 and accuracies[-1] > accuracies[0] and accuracies[-1] > 0.5
    assert float(out.rsplit("test accuracy: ", 1)[1]) > 0.5
