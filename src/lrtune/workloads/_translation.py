"""``translation-de-en``: an encoder–decoder Transformer translating German to English, scored with BLEU.

The seed paper's setting (IWSLT'14 De-En, fairseq's ``transformer_iwslt_de_en``) made small enough to run on
two CPU cores: the Ding dictionary's example sentences (see :func:`load_ding`), a joint BPE vocabulary trained
with ``tokenizers`` (cached), a Transformer built from ``torch.nn`` modules with **post-LayerNorm** by default
(the original Transformer's placement, the one where Adam needs warm-up) or ``pre_ln=True``, label-smoothed
cross-entropy, batches of about ``batch_size`` target tokens, and BLEU (sacrebleu) of greedy translations.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ._ding import SentencePair, load_ding
from ._parallel import load_parallel
from ._paths import cache_dir

__all__ = ["PRESETS", "Translation", "TranslationModel", "bleu"]

logger = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

#: Model shapes: (d_model, heads, encoder layers, decoder layers, feed-forward width).
PRESETS: dict[str, tuple[int, int, int, int, int]] = {
    "tiny": (128, 4, 2, 2, 256),  # a useful run in minutes on 2 CPU cores
    "small": (256, 4, 3, 3, 1024),
    "iwslt": (512, 4, 6, 6, 1024),  # fairseq's transformer_iwslt_de_en, for GPUs
}

Batch = tuple[torch.Tensor, torch.Tensor]  # source ids (B, S), target ids with BOS/EOS (B, T), PAD-padded


def _train_tokenizer(pairs: list[SentencePair], vocab_size: int, path: Path) -> Any:
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the translation workload needs tokenizers: pip install 'lrtune[workloads]'") from e
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tokenizer.train_from_iterator((text for p in pairs for text in (p.de, p.en)), trainer=trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tokenizer.save(str(tmp))
    tmp.replace(path)
    return tokenizer


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults: 13a tokenisation, one reference per sentence)."""
    try:
        import sacrebleu
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("BLEU needs sacrebleu: pip install 'lrtune[workloads]'") from e
    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


class TranslationModel(nn.Module):
    """Encoder–decoder Transformer; target embeddings tied to the output projection, and with
    ``share_embeddings`` (the joint vocabulary's default) to the source embeddings too."""

    positions: torch.Tensor

    def __init__(
        self,
        vocab: int,
        preset: str,
        *,
        pre_ln: bool,
        dropout: float,
        share_embeddings: bool = True,
        max_len: int = 256,
    ) -> None:
        super().__init__()
        d, heads, n_enc, n_dec, ffn = PRESETS[preset]
        self.d_model = d
        self.src_embed = nn.Embedding(vocab, d, padding_idx=PAD)
        self.tgt_embed = self.src_embed if share_embeddings else nn.Embedding(vocab, d, padding_idx=PAD)
        self.register_buffer("positions", self._sinusoids(max_len, d), persistent=False)
        self.transformer = nn.Transformer(
            d, heads, n_enc, n_dec, ffn, dropout=dropout, batch_first=True, norm_first=pre_ln
        )
        for emb in {self.src_embed, self.tgt_embed}:  # N(0, 1/d): unit scale after the sqrt(d) multiplier
            nn.init.normal_(emb.weight, std=d**-0.5)
            with torch.no_grad():
                emb.weight[PAD].zero_()
        # the same (padded) math in train and eval mode: no nested-tensor fast path
        self.transformer.encoder.enable_nested_tensor = self.transformer.encoder.use_nested_tensor = False
        self.out = nn.Linear(d, vocab, bias=False)
        self.out.weight = self.tgt_embed.weight
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def _sinusoids(n: int, d: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        table = torch.zeros(n, d)
        table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return table

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return self.drop(emb(ids) * math.sqrt(self.d_model) + self.positions[: ids.shape[1]])

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self._embed(self.src_embed, src), src_key_padding_mask=src == PAD)

    def decode(self, memory: torch.Tensor, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        n = tgt_in.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=tgt_in.device).triu(1)  # True: may not attend
        h = self.transformer.decoder(
            self._embed(self.tgt_embed, tgt_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src == PAD,
        )
        return self.out(h)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(src), src, tgt_in)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Greedy decoding: target ids (without BOS), EOS then PAD after the end."""
        memory = self.encode(src)
        ys = torch.full((src.shape[0], 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            nxt = self.decode(memory, src, ys)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            ys = torch.cat([ys, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return ys[:, 1:]


@dataclass
class Translation:
    """The German→English workload. ``max_train_pairs`` and ``max_eval_pairs`` cut the data (for quick tests).

    Valid and test are full sentences. ``train_phrases`` adds the dictionary's phrases of at least three words
    on both sides (from the training entries only) to the training sentences, ~3.7× the pairs.

    ``corpus`` replaces the dictionary by a parallel corpus of your own (e.g. IWSLT'14 De-En prepared as
    ``train.de``/``train.en``/``valid.*``/``test.*``, or TSV; see :func:`load_parallel`), in the languages
    ``source_lang`` → ``target_lang``. ``bleu_pairs`` limits BLEU (computed at a run's final evaluation only) to
    the first that many test sentences (default: all ``max_eval_pairs``).
    """

    preset: str = "tiny"
    pre_ln: bool = False
    vocab_size: int = 4000
    dropout: float = 0.1
    train_phrases: bool = False
    share_embeddings: bool = True
    label_smoothing: float = 0.1
    max_train_pairs: int | None = None
    max_eval_pairs: int = 500
    bleu_pairs: int | None = None
    data_path: str | None = None
    corpus: str | None = None
    source_lang: str = "de"
    target_lang: str = "en"
    name: str = "translation-de-en"
    step_hint: int = 3000
    batch_hint: ClassVar[int] = 2000  # target tokens
    metric: str = "bleu"
    higher_is_better: bool = True
    _data: dict[str, list[tuple[list[int], list[int]]]] = field(default_factory=dict, repr=False)
    _refs: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.bleu_pairs is not None and self.bleu_pairs < 1:
            raise ValueError(f"bleu_pairs must be >= 1 (or None for every test pair), got {self.bleu_pairs!r}")
        if self.vocab_size < 100:
            raise ValueError(f"vocab_size must be >= 100, got {self.vocab_size!r}")
        if self.corpus is not None:
            if self.train_phrases or self.data_path is not None:
                raise ValueError("train_phrases and data_path apply to the Ding dictionary, not to corpus=...")
            corpus = load_parallel(self.corpus, src=self.source_lang, tgt=self.target_lang)
            train = corpus.train
        else:
            corpus = load_ding(self.data_path)
            train = (load_ding(self.data_path, sentences_only=False) if self.train_phrases else corpus).train
        train = train[: self.max_train_pairs]
        digest = hashlib.sha256(f"{self.vocab_size}".encode())
        for p in train:  # the tokenizer cache is keyed by the very text it is trained on
            digest.update(f"{p.de}\t{p.en}\n".encode())
        key = digest.hexdigest()[:16]
        self.tokenizer = _train_tokenizer(train, self.vocab_size, cache_dir() / f"bpe-de-en-{key}.json")
        for split, pairs in (("train", train), ("valid", corpus.valid), ("test", corpus.test)):
            if split != "train":
                pairs = pairs[: self.max_eval_pairs]
            src = self.tokenizer.encode_batch([p.de for p in pairs])
            tgt = self.tokenizer.encode_batch([p.en for p in pairs])
            self._data[split] = [(s.ids[:200], [BOS, *t.ids[:200], EOS]) for s, t in zip(src, tgt, strict=True)]
            self._refs[split] = [p.en for p in pairs]

    @property
    def vocab(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return TranslationModel(
            self.vocab, self.preset, pre_ln=self.pre_ln, dropout=self.dropout, share_embeddings=self.share_embeddings
        )

    @staticmethod
    def _collate(items: list[tuple[list[int], list[int]]]) -> Batch:
        src = torch.full((len(items), max(len(s) for s, _ in items)), PAD, dtype=torch.long)
        tgt = torch.full((len(items), max(len(t) for _, t in items)), PAD, dtype=torch.long)
        for i, (s, t) in enumerate(items):
            src[i, : len(s)] = torch.tensor(s)
            tgt[i, : len(t)] = torch.tensor(t)
        return src, tgt

    def _token_batches(
        self, split: str | list[tuple[list[int], list[int]]], max_tokens: int, rng: random.Random | None
    ) -> list[list[int]]:
        """Indices grouped into batches of at most ``max_tokens`` padded target tokens (similar lengths)."""
        data = self._data[split] if isinstance(split, str) else split
        order = sorted(range(len(data)), key=lambda i: (len(data[i][1]), rng.random() if rng else i))
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            n = len(data[i][1])
            if current and max(longest, n) * (len(current) + 1) > max_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, n)
        if current:
            batches.append(current)
        if rng is not None:
            rng.shuffle(batches)
        return batches

    def train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        """Endless batches of about ``batch_size`` target tokens, reshuffled each epoch (seeded)."""
        if batch_size < 64:
            raise ValueError(f"batch_size counts target tokens here and must be >= 64, got {batch_size!r}")
        rng = random.Random(seed)
        data = self._data["train"]
        while True:
            for idx in self._token_batches("train", batch_size, rng):
                yield self._collate([data[i] for i in idx])

    @staticmethod
    def loss_weight(batch: Batch) -> int:
        """The number of target tokens the loss averages over (weights data-parallel shards)."""
        return int((batch[1][:, 1:] != PAD).sum())

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        src, tgt = batch
        logits = model(src, tgt[:, :-1])
        return nn.functional.cross_entropy(
            logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD, label_smoothing=self.label_smoothing
        )

    def translate(
        self, model: nn.Module, split: str = "test", max_tokens: int = 4000, limit: int | None = None
    ) -> list[str]:
        """Greedy translations of a split (its first ``limit`` sentences), in order."""
        if not isinstance(model, TranslationModel):
            raise TypeError(f"model must be a TranslationModel (from build_model), got {type(model).__name__}")
        if split not in self._data:
            raise ValueError(f"split must be one of {sorted(self._data)}, got {split!r}")
        data = self._data[split][:limit]
        out: list[str] = [""] * len(data)
        device = next(model.parameters()).device
        for idx in self._token_batches(data, max_tokens, None):
            src = self._collate([data[i] for i in idx])[0].to(device)
            ids = model.greedy(src, max_len=int(src.shape[1] * 1.5) + 10)
            for i, row in zip(idx, ids.tolist(), strict=True):
                row = row[: row.index(EOS)] if EOS in row else row
                out[i] = self.tokenizer.decode([t for t in row if t > UNK or t == UNK])
        return out

    def references(self, split: str = "test", limit: int | None = None) -> list[str]:
        """The target sentences of a split (its first ``limit``), as BLEU's references."""
        if split not in self._refs:
            raise ValueError(f"split must be one of {sorted(self._refs)}, got {split!r}")
        return self._refs[split][:limit]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, *, final: bool = True) -> dict[str, float]:
        """Validation loss (and perplexity); on the ``final`` evaluation also BLEU of greedy translations of the
        test split's first ``bleu_pairs`` sentences (decoding is the costly part, so intermediate evaluations
        skip it)."""
        losses, tokens = 0.0, 0
        device = next(model.parameters()).device
        for idx in self._token_batches("valid", 4000, None):
            src, tgt = (t.to(device) for t in self._collate([self._data["valid"][i] for i in idx]))
            logits = model(src, tgt[:, :-1])
            n = int((tgt[:, 1:] != PAD).sum())
            losses += (
                n * nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD).item()
            )
            tokens += n
        valid_loss = losses / tokens
        metrics = {"valid_loss": valid_loss, "valid_ppl": math.exp(min(valid_loss, 50.0))}
        if final:
            limit = self.bleu_pairs
            metrics["bleu"] = bleu(self.translate(model, "test", limit=limit), self.references("test", limit))
        return metrics
