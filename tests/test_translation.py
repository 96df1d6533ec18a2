"""translation-de-en on a real slice of the Ding corpus: it trains, evaluates and scores BLEU correctly."""

from __future__ import annotations

import random

import pytest
import torch

import lrtune
from lrtune.workloads import Translation, Workload, bleu, get_workload


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Translation:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LRTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
        return Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=24, dropout=0.0)


def test_is_a_registered_workload(small: Translation) -> None:
    assert isinstance(small, Workload)
    assert small.name == "translation-de-en" and small.metric == "bleu"
    src, tgt = next(small.train_batches(512, seed=0))
    assert src.dtype == tgt.dtype == torch.long
    assert int((tgt != 0).sum()) <= 512 + tgt.shape[0]  # about batch_size target tokens
    with pytest.raises(ValueError, match="'imagenet'"):
        get_workload("imagenet")


def test_post_ln_by_default_and_pre_ln_option(small: Translation) -> None:
    post = small.build_model(0)
    assert not post.transformer.encoder.layers[0].norm_first
    pre = Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=24, pre_ln=True).build_model(0)
    assert pre.transformer.encoder.layers[0].norm_first


def test_loss_decreases_and_metrics_are_finite(small: Translation) -> None:
    record = lrtune.train(
        small,
        optimizer={"name": "adam", "lr": 2e-3, "betas": (0.9, 0.98)},
        schedule={"name": "warmup_linear_decay", "warmup_steps": 5, "total_steps": 40},
        steps=40,
        batch_size=512,
        eval_every=40,
    )
    assert record.status == "completed"
    before = small.evaluate(small.build_model(0))
    after = record.final_metrics
    assert after["valid_loss"] < before["valid_loss"] - 1.0
    assert all(torch.isfinite(torch.tensor(v)) for v in after.values())
    assert 0.0 <= after["bleu"] <= 100.0


def test_records_tokens_per_update(small: Translation) -> None:
    lines: list[dict] = []
    lrtune.train(small, optimizer={"name": "adam", "lr": 1e-3}, steps=3, batch_size=512, callback=lines.append)
    batches = small.train_batches(512, seed=0)
    expected = [int((next(batches)[1][:, 1:] != 0).sum()) for _ in range(3)]
    assert [x["tokens"] for x in lines if "loss" in x] == expected


def test_shared_embeddings_and_phrases(small: Translation) -> None:
    model = small.build_model(0)
    assert model.src_embed.weight is model.tgt_embed.weight is model.out.weight
    separate = Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=24, share_embeddings=False)
    other = separate.build_model(0)
    assert other.src_embed.weight is not other.tgt_embed.weight and other.tgt_embed.weight is other.out.weight
    phrases = Translation(vocab_size=1000, max_train_pairs=50_000, max_eval_pairs=24, train_phrases=True)
    assert len(phrases._data["train"]) > 2 * len(small._data["train"])
    assert phrases._refs["test"] == small._refs["test"]  # the same held-out sentences
    assert not set(phrases._refs["train"]) & set(phrases._refs["test"])  # no held-out text seen in training


def test_bleu_wiring(small: Translation) -> None:
    refs = small._refs["test"]
    assert bleu(refs, refs) == pytest.approx(100.0)
    shuffled = refs[:]
    random.Random(0).shuffle(shuffled)
    assert bleu(shuffled, refs) < 5.0


def test_translate_returns_one_string_per_sentence(small: Translation) -> None:
    hyps = small.translate(small.build_model(0), "test")
    assert len(hyps) == len(small._refs["test"]) and all(isinstance(h, str) for h in hyps)


def test_bad_preset() -> None:
    with pytest.raises(ValueError, match="preset"):
        Translation(preset="huge")


def test_translate_a_prefix_and_bad_arguments(small: Translation) -> None:
    model = small.build_model(0)
    assert len(small.translate(model, "train", limit=5)) == 5 == len(small.references("train", limit=5))
    with pytest.raises(ValueError, match="split must be one of"):
        small.translate(model, "dev")
    with pytest.raises(TypeError, match="TranslationModel"):
        small.translate(torch.nn.Linear(2, 2))


def test_bleu_only_at_the_final_evaluation(small: Translation) -> None:
    """Decoding is the costly part of an evaluation: intermediate ones give the validation loss only."""
    record = lrtune.train(small, optimizer={"name": "adam", "lr": 1e-3}, steps=4, batch_size=512, eval_every=2)
    assert [sorted(e) for e in record.evals] == [
        ["step", "valid_loss", "valid_ppl"],
        ["bleu", "step", "valid_loss", "valid_ppl"],
    ]
    compared = lrtune.train(small, optimizer={"name": "adam", "lr": 1e-3}, steps=2, batch_size=512, final_metrics=False)
    assert sorted(compared.final_metrics) == ["valid_loss", "valid_ppl"]  # a run compared by its loss: no decoding
    model = small.build_model(0)
    limited = Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=24, dropout=0.0, bleu_pairs=5)
    hyps = small.translate(model, "test", limit=5)
    assert limited.evaluate(model)["bleu"] == pytest.approx(bleu(hyps, small.references("test", 5)))
    with pytest.raises(ValueError, match=r"bleu_pairs must be >= 1 .*, got 0"):
        Translation(bleu_pairs=0)
