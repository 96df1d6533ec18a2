"""Golden values: lrtune's schedules against the closed forms other libraries document.

Step conventions matter more than formulas here. lrtune's ``s(t)`` is the multiplier of the t-th optimizer
update (t = 1, 2, ...). Hugging Face's ``lr_lambda(s)`` is evaluated at the scheduler's ``last_epoch`` s, which
is 0 for the first update: its t-th update uses λ(t − 1). So lrtune's recipe equals λ pointwise, and
``shift(recipe, 1)`` reproduces HF's training run update for update. torch's StepLR / ExponentialLR also
give their first update the undecayed LR, like lrtune's step_decay / exponential (γ^⌊(t − 1)/k⌋, γ^(t − 1)).

HF's formulas are written here from its documentation, so that transformers is not needed:

* ``get_linear_schedule_with_warmup``: λ(s) = s/W for s < W, else max(0, (N − s)/(N − W));
* ``get_cosine_schedule_with_warmup`` (num_cycles = 0.5): λ(s) = s/W for s < W, else
  0.5·(1 + cos(π·(s − W)/(N − W))) for s ≤ N, taken as 0 after N. (HF's code evaluates the cosine past N too,
  where it rises again; lrtune's schedules are frozen after their end, so only s ≤ N + 1 is compared with
  that rebound excluded.)
* ``get_polynomial_decay_schedule_with_warmup(lr_end, power)``: λ(s) = s/W for s < W, lr_end/lr_init for s > N,
  else ((lr_init − lr_end)·(1 − (s − W)/(N − W))^power + lr_end)/lr_init;
* ``get_wsd_schedule(num_warmup_steps W, num_decay_steps D, num_stable_steps S, warmup_type, decay_type,
  min_lr_ratio m)``: for s < W, m + (1 − m)·w(s/W) with w linear x, cosine (1 − cos πx)/2 or 1-sqrt
  1 − sqrt(1 − x); 1 for s < W + S; for s < W + S + D, m + (1 − m)·d((s − W − S)/D) with d linear 1 − x,
  cosine (1 + cos πx)/2 (num_cycles 0.5) or 1-sqrt 1 − sqrt(x); m after.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from lrtune import schedules as S
from lrtune.schedules import Schedule

W, N = 2, 10
HF_LINEAR = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0]  # λ(s), s = 0..11


def hf_linear(s: int, w: int = W, n: int = N) -> float:
    """Hugging Face ``get_linear_schedule_with_warmup``'s λ(s) (from its docs)."""
    return s / w if s < w else max(0.0, (n - s) / (n - w))


def hf_cosine(s: int, w: int = W, n: int = N) -> float:
    """Hugging Face ``get_cosine_schedule_with_warmup``'s λ(s), num_cycles = 0.5, held at 0 after N."""
    if s < w:
        return s / w
    if s >= n:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (s - w) / (n - w)))


def lrs_used(schedule: Schedule, updates: int, base_lr: float = 1.0, groups: int = 1) -> list[list[float]]:
    """The LR of each param group for each of ``updates`` updates, read just before ``optimizer.step()``."""
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p], "lr": base_lr * (i + 1)} for i, p in enumerate(params)], lr=base_lr)
    sched = S.LRScheduler(opt, schedule)
    return _drive(opt, sched, params, updates)


def _drive(
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: list[torch.nn.Parameter],
    updates: int,
) -> list[list[float]]:
    used = []
    for _ in range(updates):
        used.append([float(g["lr"]) for g in opt.param_groups])
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return used


# -------------------------------------------------------------------------------------------------
# Hugging Face: linear with warm-up


def test_hf_linear_vector_matches_its_formula() -> None:
    assert [hf_linear(s) for s in range(12)] == HF_LINEAR


def test_warmup_linear_decay_equals_hf_lambda_pointwise() -> None:
    s = S.warmup_linear_decay(W, N)
    assert [s(t) for t in range(12)] == HF_LINEAR


def test_warmup_linear_decay_uses_lambda_t_where_hf_uses_lambda_t_minus_1() -> None:
    ours = [row[0] for row in lrs_used(S.warmup_linear_decay(W, N), 12)]
    hf = [hf_linear(t - 1) for t in range(1, 13)]
    assert ours == [hf_linear(t) for t in range(1, 13)] == [*HF_LINEAR[1:], 0.0]
    assert hf == HF_LINEAR
    assert ours[:-1] == hf[1:]  # lrtune is one update ahead: its first update does not waste a step at LR 0


def test_shifted_warmup_linear_decay_is_hf_identical() -> None:
    shifted = S.shift(S.warmup_linear_decay(W, N), 1)
    assert [shifted(t) for t in range(1, 13)] == [hf_linear(t - 1) for t in range(1, 13)] == HF_LINEAR
    lrs = lrs_used(shifted, 12, base_lr=0.1, groups=2)
    assert lrs == [[0.1 * lam, 0.2 * lam] for lam in HF_LINEAR]


# -------------------------------------------------------------------------------------------------
# Hugging Face: cosine with warm-up


def test_warmup_cosine_equals_hf_lambda_pointwise() -> None:
    s = S.warmup_cosine(W, N)
    assert [s(t) for t in range(N + 5)] == pytest.approx([hf_cosine(t) for t in range(N + 5)], rel=1e-14, abs=1e-16)
    assert s(W) == 1.0 and s(N) == 0.0 and s(N + 1) == 0.0
    assert s(W + (N - W) / 2) == pytest.approx(0.5, rel=1e-15)


def test_warmup_cosine_t_th_update_and_hf_shift() -> None:
    ours = [row[0] for row in lrs_used(S.warmup_cosine(W, N), 12)]
    assert ours == pytest.approx([hf_cosine(t) for t in range(1, 13)], rel=1e-14, abs=1e-16)
    shifted = [row[0] for row in lrs_used(S.shift(S.warmup_cosine(W, N), 1), 12)]
    assert shifted == pytest.approx([hf_cosine(t - 1) for t in range(1, 13)], rel=1e-14, abs=1e-16)
    assert shifted[0] == 0.0  # HF's first update has LR 0


def test_warmup_cosine_with_final_scales_the_cosine() -> None:
    final = 0.1
    s = S.warmup_cosine(W, N, final)
    for t in range(N + 3):
        expected = hf_cosine(t) if t < W else final + (1 - final) * (hf_cosine(t) if t < N else 0.0)
        assert s(t) == pytest.approx(expected, rel=1e-14)


# -------------------------------------------------------------------------------------------------
# Noam and inverse square root


@pytest.mark.parametrize(("t", "lr"), [(1, 1.7469e-7), (4000, 6.9877e-4), (16000, 3.4939e-4)])
def test_noam_transformer_base_vectors(t: int, lr: float) -> None:
    """Vaswani et al. (2017), d_model = 512, warmup_steps = 4000: lr = d^−0.5·min(t^−0.5, t·w^−1.5)."""
    assert S.noam(512, 4000)(t) == pytest.approx(lr, rel=1e-4)


def test_noam_drives_the_optimizer_lr_itself() -> None:
    s = S.noam(512, 4000)
    lrs = lrs_used(s, 5, base_lr=123.0, groups=2)  # an absolute schedule ignores the base LR
    assert lrs == [[s(t), s(t)] for t in range(1, 6)]
    assert lrs[0][0] == pytest.approx(1.7469e-7, rel=1e-4)


@pytest.mark.parametrize("w", [1, 4, 4000])
def test_inverse_sqrt_is_peak_times_min_of_ramp_and_decay(w: int) -> None:
    peak = 5e-4
    s = S.inverse_sqrt(w)
    for t in sorted({1, 2, 3, max(1, w - 1), w, w + 1, 2 * w, 4 * w, 100 * w}):
        assert peak * s(t) == pytest.approx(peak * min(t / w, math.sqrt(w / t)), rel=1e-15)
    assert peak * s(4 * w) == pytest.approx(peak / 2, rel=1e-15)
    lrs = [row[0] for row in lrs_used(s, 12, base_lr=peak)]
    assert lrs == pytest.approx([peak * min(t / w, math.sqrt(w / t)) for t in range(1, 13)], rel=1e-15)


def test_inverse_sqrt_with_warmup_init_is_fairseqs() -> None:
    """fairseq: lr = init + (peak − init)·t/w during warm-up, then peak·sqrt(w/t)."""
    w, init = 8, 0.25
    s = S.inverse_sqrt(w, warmup_init=init)
    for t in range(0, 5 * w):
        expected = init + (1 - init) * t / w if t <= w else math.sqrt(w / t)
        assert s(t) == pytest.approx(expected, rel=1e-15)


# -------------------------------------------------------------------------------------------------
# warm-up, stable, decay


def _decay_value(kind: str, x: float) -> float:
    """The cool-down's closed form at progress x ∈ [0, 1] (from 1 to 0)."""
    return {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(x)}[kind]


@pytest.mark.parametrize("kind", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("final", [0.0, 0.1])
def test_wsd_closed_form(kind: str, final: float) -> None:
    w, stable, d = 10, 20, 40
    s = S.wsd(w, stable, d, decay=kind, final=final)
    golden = {
        0: 0.0,
        1: 0.1,
        5: 0.5,
        10: 1.0,  # the warm-up's last update: the peak
        11: 1.0,
        30: 1.0,  # the stable phase's last update
        40: final + (1 - final) * _decay_value(kind, 0.25),
        50: final + (1 - final) * _decay_value(kind, 0.5),
        60: final + (1 - final) * _decay_value(kind, 0.75),
        70: final,  # w + stable + d
        71: final,
        1000: final,
    }
    for t, v in golden.items():
        assert s(t) == pytest.approx(v, rel=1e-14, abs=1e-16), t
    assert s.end == w + stable + d
    # Literal values for the half-way point of the cool-down (t = 50), final = 0.
    if final == 0.0:
        assert s(50) == pytest.approx({"linear": 0.5, "cosine": 0.5, "1-sqrt": 1 - 0.5**0.5}[kind], rel=1e-14)


def test_wsd_without_warmup_or_stable_phase() -> None:
    assert S.wsd(0, 5, 10)(3) == 1.0
    assert S.wsd(0, 5, 10)(10) == pytest.approx(0.5)
    assert S.wsd(4, 0, 8)(4) == 1.0
    assert S.wsd(4, 0, 8)(8) == pytest.approx(0.5)
    assert [S.wsd(0, 0, 10)(t) for t in range(15)] == [S.linear_decay(10)(t) for t in range(15)]


# -------------------------------------------------------------------------------------------------
# torch's StepLR and ExponentialLR


def _flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def _torch_lrs(
    make: Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler], updates: int
) -> list[list[float]]:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(params)], lr=0.1)
    return _drive(opt, make(opt), params, updates)


@pytest.mark.parametrize(("step_size", "gamma"), [(1, 0.5), (5, 0.1), (7, 0.9), (30, 0.3)])
def test_step_decay_equals_torch_step_lr(step_size: int, gamma: float) -> None:
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 30)
    ours = lrs_used(S.step_decay(step_size, gamma), 30, base_lr=0.1, groups=2)
    assert _flat(ours) == pytest.approx(_flat(theirs), rel=1e-12)
    assert ours[:step_size] == [[0.1, 0.2]] * min(step_size, 30)  # the first step_size updates are undecayed


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_exponential_equals_torch_exponential_lr(gamma: float) -> None:
    theirs = _torch_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma), 30)
    ours = lrs_used(S.exponential(gamma), 30, base_lr=0.1, groups=2)
    assert _flat(ours) == pytest.approx(_flat(theirs), rel=1e-12)
    assert ours[0] == [0.1, 0.2]
    assert ours[29][0] == pytest.approx(0.1 * gamma**29, rel=1e-14)


# -------------------------------------------------------------------------------------------------
# Hugging Face: polynomial decay with warm-up

HF_POLYNOMIAL = [0.0, 5.0, 10.0, 7.656, 5.625, 3.906, 2.5, 1.406, 0.625, 0.156]  # HF's test: lr 10, power 2, end 1e-7


def hf_polynomial(s: int, w: int, n: int, power: float, lr_end: float, lr_init: float) -> float:
    """Hugging Face ``get_polynomial_decay_schedule_with_warmup``'s λ(s)."""
    if s < w:
        return s / max(1, w)
    if s > n:
        return lr_end / lr_init
    remaining = 1 - (s - w) / (n - w)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


def test_warmup_polynomial_decay_is_hfs_polynomial_schedule() -> None:
    """HF's own test vector (its scheduler's LRs for updates 1..10, i.e. λ(0..9)), then λ pointwise."""
    lr, end = 10.0, 1e-7
    s = S.warmup_polynomial_decay(W, N, power=2.0, final=end / lr)
    assert s == S.from_spec(
        {"name": "warmup_polynomial_decay", "warmup_steps": W, "total_steps": N, "power": 2.0, "final": end / lr}
    )
    hf_run = [lr * row[0] for row in lrs_used(S.shift(s, 1), 10)]  # HF's t-th update uses λ(t − 1)
    assert hf_run == pytest.approx(HF_POLYNOMIAL, abs=1e-2)  # HF's own tolerance
    for power in (0.5, 1.0, 2.0, 3.0):
        for w, n in ((0, 10), (2, 10), (5, 50)):
            ours = S.warmup_polynomial_decay(w, n, power=power, final=end / lr)
            expected = [hf_polynomial(t, w, n, power, end, lr) for t in range(n + 5)]
            assert [ours(t) for t in range(n + 5)] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_warmup_polynomial_decay_power_1_is_warmup_linear_decay() -> None:
    a, b = S.warmup_polynomial_decay(4, 40, power=1.0), S.warmup_linear_decay(4, 40)
    assert [a(t) for t in range(45)] == pytest.approx([b(t) for t in range(45)], rel=1e-15, abs=1e-15)


# -------------------------------------------------------------------------------------------------
# Hugging Face: warm-up, stable, decay


def hf_wsd(s: int, w: int, stable: int, d: int, warmup_type: str, decay_type: str, m: float) -> float:
    """Hugging Face ``get_wsd_schedule``'s λ(s) (num_cycles 0.5)."""
    if s < w:
        x = s / max(1, w)
        shape = {"linear": x, "cosine": 0.5 * (1 - math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(1 - x)}
        return max(0.0, shape[warmup_type] * (1 - m) + m)
    if s < w + stable:
        return 1.0
    if s < w + stable + d:
        x = (s - w - stable) / max(1, d)
        shape = {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(x)}
        return max(0.0, shape[decay_type] * (1 - m) + m)
    return m


KINDS = ["linear", "cosine", "1-sqrt"]


@pytest.mark.parametrize("min_lr_ratio", [0.0, 1e-3, 0.1])
@pytest.mark.parametrize("decay_type", KINDS)
@pytest.mark.parametrize("warmup_type", KINDS)
def test_wsd_with_start_equals_hfs_wsd(warmup_type: str, decay_type: str, min_lr_ratio: float) -> None:
    """HF warms up from min_lr_ratio and cools down to it: ``wsd(..., start=m, final=m)`` equals its λ pointwise
    (``wsd(final=m)`` alone warms up from 0)."""
    for w, stable, d in ((2, 6, 2), (10, 30, 20), (0, 5, 5), (4, 0, 4)):
        s = S.wsd(w, stable, d, decay=decay_type, final=min_lr_ratio, start=min_lr_ratio, warmup=warmup_type)
        expected = [hf_wsd(t, w, stable, d, warmup_type, decay_type, min_lr_ratio) for t in range(w + stable + d + 5)]
        assert [s(t) for t in range(len(expected))] == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert S.wsd(2, 6, 2, final=0.1)(0) == 0.0 != hf_wsd(0, 2, 6, 2, "linear", "linear", 0.1)


def test_wsd_hf_run_with_its_test_settings() -> None:
    """HF's test settings (lr 10, 2 warm-up and 2 decay updates of 10, cosine decay, min_lr_ratio 1e-3), run as HF
    runs them: update t uses λ(t − 1)."""
    m = 1e-3
    s = S.wsd(2, 6, 2, decay="cosine", final=m, start=m)
    run = [10.0 * row[0] for row in lrs_used(S.shift(s, 1), 10)]
    assert run == pytest.approx([10.0 * hf_wsd(t, 2, 6, 2, "linear", "cosine", m) for t in range(10)], rel=1e-14)
    assert run == pytest.approx([0.01, 5.005, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 5.005], rel=1e-12)
