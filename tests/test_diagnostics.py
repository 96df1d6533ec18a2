"""lrtune.diagnostics: histograms count every element once; recorded statistics equal direct computations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import lrtune
from lrtune._rectification import rectification, rho_t
from lrtune.diagnostics import Diagnostics, LogBins, abs_log_histogram, parameter_kinds


def _reference_bin(x: float, bins: LogBins) -> int:
    """The bin of one value, by the definition in the module docstring."""
    a = abs(x)
    if math.isnan(a) or math.isinf(a):
        return bins.n + 3
    if a == 0:
        return 0
    edges = bins.log10_edges()
    if a < 10 ** edges[0]:
        return 1
    if a >= 10 ** edges[-1]:
        return bins.n + 2
    return 2 + max(i for i, e in enumerate(edges[:-1]) if a >= 10**e)


def test_histogram_counts_every_element_once() -> None:
    bins = LogBins(low=-6, high=1, per_decade=2)
    g = torch.Generator().manual_seed(0)
    xs = [
        torch.randn(50, 7, generator=g) * 10.0 ** torch.randint(-9, 3, (50, 7), generator=g),
        torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-7, 10.0, 1e-6, 3.2e-4]),
        torch.zeros(0),
    ]
    counts = abs_log_histogram(xs, bins)
    assert counts.dtype == torch.long and counts.shape == (bins.size,)
    assert int(counts.sum()) == sum(x.numel() for x in xs)
    expected = torch.zeros(bins.size, dtype=torch.long)
    for x in xs:
        for v in x.flatten().tolist():
            expected[_reference_bin(v, bins)] += 1
    # float32 log10 may move a value sitting within rounding of an edge: allow that, nothing else
    assert (counts - expected).abs().sum() <= 2, (counts, expected)
    assert counts[0] == 2 and counts[bins.n + 3] == 3
    assert len(bins.labels()) == bins.size


def test_bins_validate() -> None:
    with pytest.raises(ValueError, match="high must be > low"):
        LogBins(low=2, high=2)
    with pytest.raises(ValueError, match="per_decade"):
        LogBins(per_decade=0)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(20, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(0, 20, (16,), generator=g)
        loss = model(ids).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_sampling_and_clean_detach(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with Diagnostics(opt, model, first=3, every=5, path=tmp_path / "d.jsonl") as diag:
        _train(model, opt, 12)
    assert [r["step"] for r in diag.records] == [1, 2, 3, 5, 10]
    _train(model, opt, 3)  # after the block: no hook, no record
    assert len(diag.records) == 5
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(diag.records))  # valid JSONL, reloadable, equal to memory
    total = sum(p.numel() for p in model.parameters())
    assert all(sum(r["hist"]["all"]) == total for r in diag.records)
    assert {"embedding", "norm", "other"} <= set(diag.records[0]["hist"])
    assert diag.records[1]["momentum_cosine"] is not None and "adaptive_lr" not in diag.records[0]


@pytest.mark.parametrize("make", [lambda p: torch.optim.Adam(p, lr=1e-2), lambda p: lrtune.Adam(p, lr=1e-2)])
def test_adaptive_rate_statistics_equal_a_direct_computation(make) -> None:  # type: ignore[no-untyped-def]
    model = _model()
    opt = make(model.parameters())
    with Diagnostics(opt, model, first=5) as diag:
        _train(model, opt, 5)
    beta2, eps = opt.param_groups[0]["betas"][1], opt.param_groups[0]["eps"]
    rates = []
    for p in model.parameters():
        s = opt.state[p]
        rates.append((1 / ((s["exp_avg_sq"].double() / (1 - beta2 ** float(s["step"]))).sqrt() + eps)).flatten())
    direct = torch.cat(rates)
    stats = diag.records[-1]["adaptive_lr"]["all"]
    # the recorder computes the rates in the state's precision (float32) and accumulates in float64
    assert stats["mean"] == pytest.approx(float(direct.mean()), rel=1e-6)
    assert stats["var"] == pytest.approx(float(direct.var(unbiased=False)), rel=1e-5)
    assert stats["q50"] == pytest.approx(float(direct.median()), rel=1e-6)
    assert stats["max"] == pytest.approx(float(direct.max()), rel=1e-6)


@pytest.mark.parametrize("cls", [torch.optim.RAdam, lrtune.RAdam])
def test_rectification_is_recorded(cls) -> None:  # type: ignore[no-untyped-def]
    model = _model()
    opt = cls(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    with Diagnostics(opt, model, first=10) as diag:
        _train(model, opt, 10)
    for r in diag.records:
        t = r["step"]
        assert r["rectification"]["rho"] == pytest.approx(rho_t(0.98, t), rel=1e-12)
        if rho_t(0.98, t) > 5:
            assert r["rectification"]["r"] == pytest.approx(rectification(0.98, t), rel=1e-12)
        else:
            assert r["rectification"]["r"] is None


def test_update_ratio_and_clipped_norm() -> None:
    model = _model()
    opt = lrtune.Adam(model.parameters(), lr=1e-2, max_grad_norm=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    with Diagnostics(opt, model, first=1) as diag:
        _train(model, opt, 1)
    after = [p.detach().double() for p in model.parameters()]
    delta = math.sqrt(sum(float((a - b.double()).square().sum()) for a, b in zip(after, before, strict=True)))
    norm = math.sqrt(sum(float(b.double().square().sum()) for b in before))
    (record,) = diag.records
    assert record["update_ratio"][0] == pytest.approx(delta / norm, rel=1e-6)  # Δθ rounds in float32
    assert record["grad_norm"] > 1e-3 and record["grad_norm_after_clip"] == pytest.approx(1e-3, rel=1e-3)


def test_parameter_kinds_of_a_transformer() -> None:
    from lrtune.workloads._translation import TranslationModel

    model = TranslationModel(100, "tiny", pre_ln=False, dropout=0.0)
    kinds = parameter_kinds(model)
    names = {n: kinds[id(p)] for n, p in model.named_parameters()}
    assert names["src_embed.weight"] == "embedding"
    assert names["transformer.encoder.layers.0.self_attn.in_proj_weight"] == "attention"
    assert names["transformer.encoder.layers.0.linear1.weight"] == "ffn"
    assert names["transformer.encoder.layers.0.norm1.weight"] == "norm"


def test_bad_arguments() -> None:
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="every"):
        Diagnostics(opt, every=0)
    with pytest.raises(ValueError, match="first"):
        Diagnostics(opt, first=-1)


def test_trainer_records_diagnostics_only_when_asked(tmp_path: Path) -> None:
    from lrtune.workloads import Digits

    kwargs = {"optimizer": {"name": "radam", "lr": 1e-2}, "steps": 30, "batch_size": 32}
    off = lrtune.train(Digits(), out_dir=tmp_path / "off", **kwargs)  # type: ignore[arg-type]
    assert off.diagnostics == [] and not (tmp_path / "off" / "diagnostics.jsonl").exists()
    on = lrtune.train(Digits(), out_dir=tmp_path / "on", diagnostics={"first": 20, "every": 5}, **kwargs)  # type: ignore[arg-type]
    assert [r["step"] for r in on.diagnostics] == [*range(1, 21), 25, 30]
    lines = [json.loads(x) for x in (tmp_path / "on" / "diagnostics.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(on.diagnostics))
    assert on.final_metrics == off.final_metrics  # diagnostics observe, never steer
    assert any(r["rectification"]["r"] is not None for r in on.diagnostics)


def test_plots_render_to_non_empty_pngs(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from lrtune.diagnostics import load_records, plot_adaptive_lr, plot_gradient_histograms
    from lrtune.workloads import Digits

    kwargs = {"steps": 12, "batch_size": 32, "diagnostics": True}
    lrtune.train(Digits(), optimizer={"name": "adam", "lr": 1e-2}, out_dir=tmp_path / "adam", **kwargs)  # type: ignore[arg-type]
    lrtune.train(Digits(), optimizer={"name": "radam", "lr": 1e-2}, out_dir=tmp_path / "radam", **kwargs)  # type: ignore[arg-type]
    assert len(load_records(tmp_path / "adam")) == 12
    figures = {
        "hist.png": plot_gradient_histograms([tmp_path / "adam", tmp_path / "radam"], labels=["Adam", "RAdam"]),
        "adaptive.png": plot_adaptive_lr([tmp_path / "adam", tmp_path / "radam"], labels=["Adam", "RAdam"]),
    }
    for name, fig in figures.items():
        fig.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 5_000  # a drawn picture, not an empty canvas
    with pytest.raises(ValueError, match="one entry per run"):
        plot_gradient_histograms([tmp_path / "adam"], labels=["a", "b"])
    with pytest.raises(FileNotFoundError, match="diagnostics=True"):
        load_records(tmp_path / "nowhere")


def test_histogram_median_and_distortion_on_known_data() -> None:
    from lrtune.diagnostics import distortion, histogram_median

    g = torch.Generator().manual_seed(0)
    x = 10 ** (torch.rand(100_000, generator=g, dtype=torch.float64) * 4 - 6)  # log10 uniform on [-6, -2]
    counts = abs_log_histogram([x]).tolist()
    assert histogram_median(counts) == pytest.approx(-4.0, abs=0.02)
    assert histogram_median([0] * LogBins().size) is None
    records = [
        {"step": 1, "hist": {"all": counts}},
        {"step": 2, "hist": {"all": abs_log_histogram([x / 1e4]).tolist()}},  # four decades smaller
    ]
    first, second = distortion(records)
    assert first["median_shift"] == 0.0 and first["low_mass"] == 0.0
    assert second["median_shift"] == pytest.approx(-4.0, abs=0.02)
    assert second["low_mass"] == pytest.approx(0.5, abs=0.01)  # log10 now uniform on [-10, -6]: half below -8
    with pytest.raises(ValueError, match="low must be one of"):
        distortion(records, low=-7.1)


def test_distortion_is_computed_on_a_real_translation_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lrtune.diagnostics import distortion
    from lrtune.workloads import Translation

    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path))
    workload = Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=8)
    record = lrtune.train(
        workload, optimizer={"name": "adam", "lr": 1e-3}, steps=8, batch_size=512, diagnostics={"first": 8}
    )
    measures = distortion(record.diagnostics)
    assert [m["step"] for m in measures] == list(range(1, 9))
    assert all(m["median_shift"] is not None and math.isfinite(m["median_shift"]) for m in measures)
    assert all(-1.0 <= m["low_mass"] <= 1.0 for m in measures)


def test_adaptive_lr_variance_shrinks_with_iid_gradients() -> None:
    """The paper's argument in its own setting: i.i.d. gradients, Var[l_t] is huge at t = 1 and shrinks."""
    from lrtune.diagnostics import adaptive_lr_variance

    runs = []
    for seed in (0, 1):
        w = torch.nn.Parameter(torch.zeros(10_000))
        opt = torch.optim.Adam([w], lr=0.0, betas=(0.9, 0.999))
        g = torch.Generator().manual_seed(seed)
        with Diagnostics(opt, first=50) as diag:
            for _ in range(50):
                w.grad = torch.randn(10_000, generator=g)
                opt.step()
        runs.append(diag.records)
    estimates = adaptive_lr_variance(runs)
    assert [e["step"] for e in estimates] == list(range(1, 51))
    assert estimates[0]["within"] == pytest.approx(
        (runs[0][0]["adaptive_lr"]["all"]["var"] + runs[1][0]["adaptive_lr"]["all"]["var"]) / 2
    )
    assert estimates[49]["within"] < estimates[0]["within"] / 100
    assert estimates[49]["log_within"] < estimates[0]["log_within"] / 5
    assert all(e["across"] >= 0 and math.isfinite(e["across"]) for e in estimates)


def test_adaptive_lr_variance_with_and_without_warmup_on_real_runs() -> None:
    from lrtune.diagnostics import adaptive_lr_variance
    from lrtune.workloads import Digits

    results = {}
    for name, schedule in (
        ("none", {"name": "constant"}),
        ("warmup", {"name": "warmup_linear_decay", "warmup_steps": 10, "total_steps": 100}),
    ):
        runs = [
            lrtune.train(
                Digits(),
                optimizer={"name": "adam", "lr": 1e-2},
                schedule=schedule,
                steps=15,
                batch_size=32,
                seed=seed,
                diagnostics={"first": 15},
            ).diagnostics
            for seed in (0, 1)
        ]
        results[name] = adaptive_lr_variance(runs)
    for estimates in results.values():
        assert len(estimates) == 15 and all(e["within"] > 0 and math.isfinite(e["across"]) for e in estimates)
    with pytest.raises(ValueError, match="at least one run"):
        adaptive_lr_variance([])


def test_tensorboard_sink_receives_the_scalars() -> None:
    """Any object with SummaryWriter's add_scalar works as the sink (tensorboard itself is optional)."""

    class Writer:
        def __init__(self) -> None:
            self.scalars: list[tuple[str, float, int]] = []

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self.scalars.append((tag, value, step))

    model = _model()
    opt = lrtune.RAdam(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    writer = Writer()
    with Diagnostics(opt, model, first=8, tensorboard=writer) as diag:
        _train(model, opt, 8)
    tags = {tag for tag, _, _ in writer.scalars}
    assert {"diagnostics/grad_norm", "diagnostics/adaptive_lr/all/var", "diagnostics/rho"} <= tags
    assert "diagnostics/r" in tags  # rectified from update 6 on with β2 = 0.98
    norms = [(v, s) for tag, v, s in writer.scalars if tag == "diagnostics/grad_norm"]
    assert norms == [(r["grad_norm"], r["step"]) for r in diag.records]
