"""German→English sentence pairs from the Ding dictionary (Debian package ``trans-de-en``).

The file ``/usr/share/trans/de-en`` holds one entry per line, ``GERMAN :: ENGLISH``; each side lists parallel
senses separated by `` | `` (paired only when both sides have as many), synonyms inside a sense separated by
``; `` (the first is taken), and annotations to strip: ``{...}`` (grammar), ``[...]`` (usage), ``<...>``
(abbreviations) and ``/.../`` (abbreviation notes). Sentences of one entry are related, so the corpus is split
into train/valid/test **by entry**, never by pair: no entry contributes to two splits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._paths import cache_dir, find_data_file

__all__ = ["DING_FILE", "DING_SEARCH_PATHS", "DingCorpus", "SentencePair", "find_ding", "load_ding", "parse_ding"]

logger = logging.getLogger(__name__)

#: The dictionary's place in the data directory (:func:`~lrtune.workloads.data_dir`), where
#: ``lrtune data fetch translation-de-en`` puts it.
DING_FILE = "trans-de-en/de-en"
#: Where the dictionary is looked for after an explicit path, ``$LRTUNE_DING`` and the data directory: the
#: system-wide Debian package, then ``dpkg-deb -x`` of it into ``./data/trans-de-en`` (earlier versions' place).
DING_SEARCH_PATHS = (
    Path("/usr/share/trans/de-en"),
    Path("data/trans-de-en/usr/share/trans/de-en"),
)
_HOW_TO_GET = (
    "The German-English data is the Ding dictionary from Debian's package trans-de-en. Get it with "
    "`lrtune data fetch translation-de-en` (downloads the package with apt-get and unpacks it into lrtune's data "
    "directory; no root needed). Or install it system-wide (`sudo apt-get install trans-de-en`), or set "
    "LRTUNE_DING to a copy of its file usr/share/trans/de-en, or pass that file as the workload's data_path= "
    "(`--workload-option data_path=FILE` on the command line)."
)

_ANNOTATIONS = re.compile(r"\{[^}]*\}|\[[^\]]*\]|<[^>]*>|(?:^|(?<=\s))/[^/\s][^/]*/(?=\s|$)")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = (".", "!", "?")


@dataclass(frozen=True)
class SentencePair:
    """One aligned pair and the dictionary entry (line number) it comes from."""

    entry: int
    de: str
    en: str


def find_ding(path: str | os.PathLike[str] | None = None) -> Path:
    """The dictionary file: ``path``, else ``$LRTUNE_DING``, else :data:`DING_FILE` in the data directory,
    else :data:`DING_SEARCH_PATHS`.

    Raises:
        DataPathError: ``$LRTUNE_DING`` names no file (a :class:`FileNotFoundError`).
        FileNotFoundError: nothing found; the message says how to get the data.
    """
    return find_data_file(
        path,
        env="LRTUNE_DING",
        relative=DING_FILE,
        search=DING_SEARCH_PATHS,
        what="Ding dictionary",
        how_to_get=_HOW_TO_GET,
    )


def _clean(sense: str) -> str:
    first = sense.split("; ")[0]
    return _SPACES.sub(" ", _ANNOTATIONS.sub(" ", first)).strip()


def parse_ding(path: str | os.PathLike[str], *, max_lines: int | None = None) -> Iterator[SentencePair]:
    """All aligned (German, English) pairs, in file order, duplicates included."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if max_lines is not None and line_no > max_lines:
                return
            if line.startswith("#") or " :: " not in line:
                continue
            de_side, en_side = line.rstrip("\n").split(" :: ", 1)
            de_senses, en_senses = de_side.split(" | "), en_side.split(" | ")
            if len(de_senses) != len(en_senses):
                continue
            for de, en in zip(de_senses, en_senses, strict=True):
                de, en = _clean(de), _clean(en)
                if de and en:
                    yield SentencePair(line_no, de, en)


def _is_sentence(text: str) -> bool:
    return text.endswith(_SENTENCE_END) and len(text.split()) >= 3


def _split_of(entry: int, seed: int, valid_fraction: float, test_fraction: float) -> str:
    """The split of a dictionary entry: a seeded hash of its line number, so it does not depend on which
    pairs a filter keeps (sentences and phrases of one entry always land in the same split)."""
    digest = hashlib.blake2b(f"{seed}:{entry}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    if u < test_fraction:
        return "test"
    return "valid" if u < test_fraction + valid_fraction else "train"


@dataclass(frozen=True)
class DingCorpus:
    """Deduplicated pairs split by entry. ``sentences_only`` keeps full sentences (both sides end in . ! ?
    and have at least 3 words), the usual setting for translation; otherwise pairs with at least
    ``min_words`` words on both sides (phrases and sentences)."""

    train: list[SentencePair]
    valid: list[SentencePair]
    test: list[SentencePair]
    source: str

    def splits(self) -> dict[str, list[SentencePair]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def _fingerprint(path: Path, **options: object) -> str:
    stat = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns, **options})
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def load_ding(
    path: str | os.PathLike[str] | None = None,
    *,
    sentences_only: bool = True,
    min_words: int = 3,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
    cache: bool = True,
) -> DingCorpus:
    """Parse (or read from the cache) the dictionary, deduplicate, and split by entry.

    Each entry goes to test, valid or train by a seeded hash of its line number (about ``test_fraction`` and
    ``valid_fraction`` of the entries), so the split of an entry is the same whatever the filter; a pair seen
    in several entries is kept at its first occurrence. The parsed corpus is cached (JSON, keyed by the file's
    path, size and mtime and these options) in the cache directory (:func:`~lrtune.workloads.cache_dir`).
    """
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    if min_words < 1:
        raise ValueError(f"min_words must be >= 1, got {min_words!r}")
    source = find_ding(path)
    options = {
        "sentences_only": sentences_only,
        "min_words": min_words,
        "valid": valid_fraction,
        "test": test_fraction,
        "seed": seed,
    }
    cache_file = cache_dir() / f"ding-{_fingerprint(source, **options)}.json"
    if cache and cache_file.is_file():
        try:
            raw = json.loads(cache_file.read_text(encoding="utf-8"))
            return DingCorpus(
                **{k: [SentencePair(*p) for p in raw[k]] for k in ("train", "valid", "test")}, source=str(source)
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a corrupt corpus cache %s", cache_file)
    start = time.perf_counter()
    seen: set[tuple[str, str]] = set()
    pairs: list[SentencePair] = []
    for pair in parse_ding(source):
        if sentences_only and not (_is_sentence(pair.de) and _is_sentence(pair.en)):
            continue
        if min(len(pair.de.split()), len(pair.en.split())) < min_words:
            continue
        if (pair.de, pair.en) not in seen:
            seen.add((pair.de, pair.en))
            pairs.append(pair)
    out: dict[str, list[SentencePair]] = {"train": [], "valid": [], "test": []}
    for p in pairs:
        out[_split_of(p.entry, seed, valid_fraction, test_fraction)].append(p)
    # the same German or English text under two entries would leak across the split: held out only if unseen
    seen_de, seen_en = {p.de for p in out["train"]}, {p.en for p in out["train"]}
    for split in ("valid", "test"):
        out[split] = [p for p in out[split] if p.de not in seen_de and p.en not in seen_en]
    corpus = DingCorpus(**out, source=str(source))
    logger.info("parsed %d pairs from %s in %.1f s", len(pairs), source, time.perf_counter() - start)
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({k: [[p.entry, p.de, p.en] for p in v] for k, v in out.items()}), encoding="utf-8")
        tmp.replace(cache_file)  # atomic: a killed run never leaves a truncated cache
    return corpus
