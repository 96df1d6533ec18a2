"""The German→English corpus from the Ding dictionary (real data: the Debian package trans-de-en)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from lrtune.workloads import _ding, find_ding, load_ding, parse_ding


@pytest.fixture(scope="module")
def corpus_and_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRTUNE_CACHE", str(cache))
        start = time.perf_counter()
        corpus = load_ding()
        cold = time.perf_counter() - start
    return corpus, cache, cold


def test_missing_data_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LRTUNE_DING", raising=False)
    monkeypatch.setenv("LRTUNE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(_ding, "DING_SEARCH_PATHS", (tmp_path / "nowhere",))
    with pytest.raises(FileNotFoundError, match=r"lrtune data fetch translation-de-en") as info:
        find_ding()
    message = str(info.value)
    assert "apt-get install trans-de-en" in message and "LRTUNE_DING" in message and "data_path=" in message
    assert str(tmp_path / "data" / "trans-de-en" / "de-en") in message and "nowhere" in message
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ding(tmp_path / "nowhere", cache=False)


def test_parser_strips_annotations_and_pairs_senses() -> None:
    pairs = list(parse_ding(find_ding(), max_lines=3000))
    assert len(pairs) > 1000
    for p in pairs:
        for text in (p.de, p.en):
            assert not any(c in text for c in "{}[]<>"), text
            assert text == text.strip() and "  " not in text
    # "Aalbestand {m} | Aalbestände {pl} :: eel stock | eel stocks": two senses, annotations stripped
    assert ("Aalbestand", "eel stock") in {(p.de, p.en) for p in pairs}
    assert ("Aalbestände", "eel stocks") in {(p.de, p.en) for p in pairs}


def test_parser_rules_on_a_written_entry(tmp_path: Path) -> None:
    f = tmp_path / "de-en"
    f.write_text(
        "# comment :: ignored\n"
        "Haus {n}; Gebäude {n} [arch.] | Häuser {pl} :: house; building | houses\n"
        "eins | zwei | drei :: one | two\n"  # sense counts differ: not paired
        "Abkürzung /Abk./ <Abk.> :: abbreviation /abbr./\n",
        encoding="utf-8",
    )
    got = [(p.entry, p.de, p.en) for p in parse_ding(f)]
    assert got == [(2, "Haus", "house"), (2, "Häuser", "houses"), (4, "Abkürzung", "abbreviation")]


def test_corpus_yield_and_known_sentence(corpus_and_cache: tuple) -> None:
    corpus, _, _ = corpus_and_cache
    sizes = {k: len(v) for k, v in corpus.splits().items()}
    total = sum(sizes.values())
    assert 15_000 < total < 25_000, sizes  # ~20k full sentences in the 2023 dictionary
    assert 0.04 < sizes["valid"] / total < 0.06 and 0.04 < sizes["test"] / total < 0.06
    everything = list(itertools.chain(*corpus.splits().values()))
    assert any(
        p.de == "Du hast mich da in eine unangenehme Lage gebracht." and p.en == "You’ve put me in an awkward position."
        for p in everything
    )
    assert len({(p.de, p.en) for p in everything}) == total  # deduplicated
    assert all(p.en.endswith((".", "!", "?")) and len(p.en.split()) >= 3 for p in everything)


def test_splits_share_no_entry(corpus_and_cache: tuple) -> None:
    corpus, _, _ = corpus_and_cache
    entries = {k: {p.entry for p in v} for k, v in corpus.splits().items()}
    assert not entries["train"] & entries["valid"]
    assert not entries["train"] & entries["test"]
    assert not entries["valid"] & entries["test"]


def test_cache_is_equal_faster_and_survives_corruption(corpus_and_cache: tuple, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    corpus, cache, cold = corpus_and_cache
    monkeypatch.setenv("LRTUNE_CACHE", str(cache))
    start = time.perf_counter()
    cached = load_ding()
    assert time.perf_counter() - start < cold / 5
    assert cached == corpus
    (cache_file,) = cache.glob("ding-*.json")
    cache_file.write_text(cache_file.read_text()[:1000])  # truncated, as by a killed writer
    assert load_ding() == corpus  # re-parsed, with a warning
    assert load_ding(seed=1) != corpus  # another split for another seed


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match="valid_fraction"):
        load_ding(valid_fraction=0.7)
