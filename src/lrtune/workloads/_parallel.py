"""A parallel corpus the user has: ``train.de``/``train.en`` files (IWSLT/fairseq layout) or tab-separated text.

Accepted layouts for ``load_parallel(path)``:

* a directory with line-aligned ``{split}.{src}`` and ``{split}.{tgt}`` files for split in train, valid (or
  ``dev``) and test, e.g. the output of fairseq's ``prepare-iwslt14.sh`` before BPE;
* a directory with ``train.tsv``, ``valid.tsv`` (or ``dev.tsv``) and ``test.tsv``, one ``source<TAB>target``
  pair per line;
* one ``.tsv`` file, split into train/valid/test by a seeded hash of each line's text (5 % + 5 % held out).

Text is used as given (plain, detokenised sentences: BLEU is computed by sacrebleu against these references).
Empty lines and pairs with an empty side are dropped; anything else malformed is an error naming the file and
line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ._ding import DingCorpus, SentencePair

__all__ = ["load_parallel"]

_SPLITS = {"train": ("train",), "valid": ("valid", "dev"), "test": ("test",)}


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f]


def _pairs_from_files(src: Path, tgt: Path) -> list[SentencePair]:
    a, b = _read_lines(src), _read_lines(tgt)
    if len(a) != len(b):
        raise ValueError(f"{src} has {len(a)} lines but {tgt} has {len(b)}: the files must be line-aligned")
    return [SentencePair(i, s.strip(), t.strip()) for i, (s, t) in enumerate(zip(a, b, strict=True), 1) if s.strip()]


def _pairs_from_tsv(path: Path) -> list[SentencePair]:
    pairs = []
    for i, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{i}: expected 'source<TAB>target', got {len(fields)} tab-separated fields")
        pairs.append(SentencePair(i, fields[0].strip(), fields[1].strip()))
    return pairs


def _find(directory: Path, split: str, suffix: str) -> Path | None:
    return next((directory / f"{n}.{suffix}" for n in _SPLITS[split] if (directory / f"{n}.{suffix}").is_file()), None)


def load_parallel(
    path: str | os.PathLike[str],
    *,
    src: str = "de",
    tgt: str = "en",
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> DingCorpus:
    """Train/valid/test sentence pairs from a user's parallel corpus (see the module docstring for layouts).

    Raises:
        FileNotFoundError: when ``path`` holds none of the layouts (the message lists what was looked for).
        ValueError: misaligned files or malformed lines, with the file and line.
    """
    root = Path(path)
    out: dict[str, list[SentencePair]] = {}
    if root.is_file():
        pairs = _pairs_from_tsv(root)
        out = {"train": [], "valid": [], "test": []}
        for p in pairs:
            u = int.from_bytes(hashlib.blake2b(f"{seed}:{p.de}".encode(), digest_size=8).digest(), "big") / 2.0**64
            out["test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"].append(p)
    elif root.is_dir():
        for split in _SPLITS:
            s, t, tsv = _find(root, split, src), _find(root, split, tgt), _find(root, split, "tsv")
            if s is not None and t is not None:
                out[split] = _pairs_from_files(s, t)
            elif tsv is not None:
                out[split] = _pairs_from_tsv(tsv)
        missing = [k for k in _SPLITS if k not in out]
        if missing:
            wanted = ", ".join(f"{'|'.join(_SPLITS[k])}.{{{src},{tgt}}} or .tsv" for k in missing)
            raise FileNotFoundError(f"parallel corpus {root} lacks {', '.join(missing)}: expected {wanted}")
    else:
        raise FileNotFoundError(f"parallel corpus {root} is neither a directory nor a .tsv file")
    for split, pairs in out.items():
        if not pairs:
            raise ValueError(f"parallel corpus {root}: the {split} split is empty")
    return DingCorpus(train=out["train"], valid=out["valid"], test=out["test"], source=str(root.resolve()))
