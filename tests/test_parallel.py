"""A user's parallel corpus (train.de/train.en files or TSV) feeds the translation workload."""

from __future__ import annotations

from pathlib import Path

import pytest

import lrtune
from lrtune.workloads import Translation, load_ding, load_parallel


@pytest.fixture(scope="module")
def ding_sentences() -> list[tuple[str, str]]:
    corpus = load_ding(cache=False)
    return [(p.de, p.en) for p in corpus.train[:1200]]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _iwslt_layout(root: Path, pairs: list[tuple[str, str]]) -> None:
    """train/valid/test .de and .en files, as fairseq's IWSLT preparation writes them (valid named dev here)."""
    root.mkdir()
    for split, part in (("train", pairs[:1000]), ("dev", pairs[1000:1100]), ("test", pairs[1100:])):
        _write(root / f"{split}.de", [de for de, _ in part])
        _write(root / f"{split}.en", [en for _, en in part])


def test_files_layout(tmp_path: Path, ding_sentences: list[tuple[str, str]]) -> None:
    _iwslt_layout(tmp_path / "iwslt", ding_sentences)
    corpus = load_parallel(tmp_path / "iwslt")
    assert [(p.de, p.en) for p in corpus.train] == ding_sentences[:1000]
    assert [(p.de, p.en) for p in corpus.valid] == ding_sentences[1000:1100]
    assert [(p.de, p.en) for p in corpus.test] == ding_sentences[1100:]


def test_tsv_directory_and_single_file(tmp_path: Path, ding_sentences: list[tuple[str, str]]) -> None:
    (tmp_path / "d").mkdir()
    for split, part in (("train", ding_sentences[:1000]), ("valid", ding_sentences[1000:1100])):
        _write(tmp_path / "d" / f"{split}.tsv", [f"{de}\t{en}" for de, en in part])
    _write(tmp_path / "d" / "test.tsv", [f"{de}\t{en}" for de, en in ding_sentences[1100:]] + [""])
    corpus = load_parallel(tmp_path / "d")
    assert len(corpus.train) == 1000 and len(corpus.valid) == 100 and len(corpus.test) == 100  # blank line dropped

    _write(tmp_path / "all.tsv", [f"{de}\t{en}" for de, en in ding_sentences])
    one = load_parallel(tmp_path / "all.tsv")
    sizes = [len(one.train), len(one.valid), len(one.test)]
    assert sum(sizes) == len(ding_sentences) and all(n > 20 for n in sizes[1:]) and sizes[0] > 1000
    assert load_parallel(tmp_path / "all.tsv") == one  # the split is a deterministic hash


def test_bad_corpora_are_named(tmp_path: Path, ding_sentences: list[tuple[str, str]]) -> None:
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        load_parallel(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    _write(tmp_path / "half" / "train.de", ["a"])
    with pytest.raises(FileNotFoundError, match="lacks train, valid, test"):
        load_parallel(tmp_path / "half")
    _iwslt_layout(tmp_path / "bad", ding_sentences)
    _write(tmp_path / "bad" / "test.en", ["only one line"])
    with pytest.raises(ValueError, match="must be line-aligned"):
        load_parallel(tmp_path / "bad")
    _write(tmp_path / "x.tsv", ["eins\tone", "zwei two"])
    with pytest.raises(ValueError, match=r"x\.tsv:2"):
        load_parallel(tmp_path / "x.tsv")


def test_translation_trains_on_a_user_corpus(
    tmp_path: Path, ding_sentences: list[tuple[str, str]], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path / "cache"))
    _iwslt_layout(tmp_path / "iwslt", ding_sentences)
    workload = Translation(corpus=str(tmp_path / "iwslt"), vocab_size=800, max_eval_pairs=16, dropout=0.0)
    assert workload._refs["test"] == [en for _, en in ding_sentences[1100:1116]]
    record = lrtune.train(workload, optimizer={"name": "adam", "lr": 2e-3}, steps=20, batch_size=512)
    assert record.status == "completed" and record.config["workload_options"]["corpus"] == str(tmp_path / "iwslt")
    with pytest.raises(ValueError, match="train_phrases"):
        Translation(corpus=str(tmp_path / "iwslt"), train_phrases=True)
