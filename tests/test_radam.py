"""RAdam's conventions: golden ρ_t / r_t, the threshold, the degenerate steps, per-group diagnostics."""

from __future__ import annotations

import math

import pytest
import torch

import lrtune
from lrtune.optim import EMA, AdaptiveOptimizer, Rectified, rectification, rho_inf, rho_t


def closed_form_rho(beta2: float, t: int) -> float:
    """ρ_t from its definition with exact rationals via math.fsum (independent of lrtune's code path)."""
    r_inf = 2 / (1 - beta2) - 1
    return r_inf - 2 * t * beta2**t / (1 - beta2**t)


@pytest.mark.parametrize(
    ("t", "expected"),
    [(5, 4.995998), (6, 5.994164)],
)
def test_golden_rho(t: int, expected: float) -> None:
    assert rho_t(0.999, t) == pytest.approx(expected, abs=1e-6)
    assert rho_inf(0.999) == pytest.approx(1999.0)


@pytest.mark.parametrize(
    ("beta2", "t", "expected"),
    [(0.999, 10, 0.048998), (0.999, 1000, 0.645326), (0.999, 50, 0.15), (0.98, 50, 0.62), (0.98, 200, 0.96)],
)
def test_golden_rectification(beta2: float, t: int, expected: float) -> None:
    digits = 6 if expected != round(expected, 2) else 2
    assert round(rectification(beta2, t), digits) == pytest.approx(expected, abs=10**-digits)


def test_rectification_formula_and_limits() -> None:
    for beta2 in (0.9, 0.98, 0.999):
        r_inf = rho_inf(beta2)
        for t in (10, 100, 10_000):
            r = closed_form_rho(beta2, t)
            if r > 4:
                want = math.sqrt((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r))
                assert rectification(beta2, t) == pytest.approx(want, rel=1e-12)
        assert rectification(beta2, 10**6) == pytest.approx(1.0, abs=1e-9)
    assert rectification(0.999, 3) == 0.0


def _train(opt: torch.optim.Optimizer, p: torch.nn.Parameter, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(steps):
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        opt.step()
        history.append(p.detach().clone())
    return history


@pytest.mark.parametrize("impl", ["reference", "foreach", "fused"])
def test_skip_moves_only_the_moments_until_rectified(impl: str) -> None:
    p0 = torch.randn(6, dtype=torch.float64)
    p = torch.nn.Parameter(p0.clone())
    opt = lrtune.RAdam([p], lr=0.1, weight_decay=0.1, decoupled_weight_decay=True, degenerate="skip", impl=impl)
    history = _train(opt, p, 8)
    # β2 = 0.999: ρ_5 ≈ 4.996 ≤ 5 < ρ_6 ≈ 5.994 → steps 1..5 leave θ unchanged (weight decay included).
    for t in range(5):
        assert torch.equal(history[t], p0), t
    assert not torch.equal(history[5], p0)
    assert float(opt.state[p]["step"]) == 8
    assert torch.count_nonzero(opt.state[p]["exp_avg"]) == 6


def test_threshold_4_is_the_papers_rule() -> None:
    p = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))
    p0 = p.detach().clone()
    opt = lrtune.RAdam([p], lr=0.1, threshold=4.0, degenerate="skip")
    history = _train(opt, p, 5)
    assert torch.equal(history[3], p0)  # ρ_4 ≈ 3.998 ≤ 4
    assert not torch.equal(history[4], p0)  # ρ_5 ≈ 4.996 > 4: rectified one step earlier than torch


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_skip_mode_matches_reference(impl: str) -> None:
    kw = {"lr": 0.05, "betas": (0.9, 0.99), "weight_decay": 0.1, "decoupled_weight_decay": True, "degenerate": "skip"}
    a = torch.nn.Parameter(torch.randn(5, 4, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ha = _train(lrtune.RAdam([a], impl=impl, **kw), a, 300)
    hb = _train(lrtune.RAdam([b], impl="reference", **kw), b, 300)
    for x, y in zip(ha, hb, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-13)


def test_step_info_exposes_rho_r_and_step_size() -> None:
    p = torch.nn.Parameter(torch.randn(3))
    opt = lrtune.RAdam([{"params": [p], "betas": (0.9, 0.98)}], lr=1e-3)
    _train(opt, p, 50)
    info = opt.last_step_info[0]
    assert info["step"] == 50
    assert info["rho_t"] == pytest.approx(closed_form_rho(0.98, 50))
    assert info["r_t"] == pytest.approx(rectification(0.98, 50))
    assert info["r_t"] == pytest.approx(0.62, abs=0.005)
    want = 1e-3 * info["r_t"] * math.sqrt(1 - 0.98**50) / (1 - 0.9**50)
    assert info["step_size"] == pytest.approx(want)


def test_radam_is_a_composition() -> None:
    """lrtune.RAdam is exactly AdaptiveOptimizer(EMA, Rectified)."""
    a = torch.nn.Parameter(torch.randn(9, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    ha = _train(lrtune.RAdam([a], lr=0.01, betas=(0.8, 0.99), eps=1e-6), a, 100)
    generic = AdaptiveOptimizer([b], lr=0.01, momentum=EMA(0.8), adaptive=Rectified(0.99, 1e-6))
    hb = _train(generic, b, 100)
    assert all(torch.equal(x, y) for x, y in zip(ha, hb, strict=True))
