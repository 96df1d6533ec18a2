"""Properties of every schedule primitive and recipe, checked by Hypothesis against their closed forms.

What a schedule promises (``lrtune.schedules``): ``s(t)`` is the multiplier of the LR used by the t-th
optimizer update; multipliers lie in [0, 1] (absolute schedules such as Noam never exceed their peak);
joined pieces meet continuously; warm-ups are non-decreasing and reach exactly 1 at their last update;
after ``s.end`` the value is frozen (no cosine rebound); a spec survives JSON and pickle; and every bad
argument fails at construction with an error that names it.

Edge cases these tests once found (a warm-up an ulp above 1 at its end, an untuned warm-up not yet flat at
its ``end``, RAdam's r_t at tiny fractional t, a growing γ that overflowed, an infinite constant) are kept as
regression tests at the end of the file, each with its original failing input.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import pytorch_warmup  # type: ignore[import-untyped]
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

import lrtune
from lrtune import schedules as S
from lrtune.schedules import Schedule

# Fast, and no example database: a run neither depends on nor adds to saved failing examples.
FAST = settings(max_examples=100, deadline=None, database=None, derandomize=True)

# -------------------------------------------------------------------------------------------------
# strategies

STEPS = st.integers(min_value=1, max_value=10_000)
FINAL = st.floats(min_value=0.0, max_value=1.0)
# γ ≤ 1: a decay (γ > 1 is refused at construction).
GAMMA = st.floats(min_value=0.01, max_value=1.0)
BETA2 = st.floats(min_value=0.5, max_value=0.9999)
# Warm-up starts anywhere in [0, 1].
EXACT_START = st.floats(min_value=0.0, max_value=1.0)
# β2 for the untuned warm-up, its end (⌈2/(1 − β2)⌉) included.
COMMON_BETA2 = st.one_of(st.sampled_from([0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 0.99999]), BETA2)
KINDS = st.sampled_from(["linear", "exponential"])
DECAYS = st.sampled_from(["linear", "cosine", "1-sqrt"])
# Update indices: whole updates and the real line in between (schedules accept any t >= 0).
T = st.one_of(st.integers(min_value=0, max_value=10**6), st.floats(min_value=0.0, max_value=1e6))
# For RAdam's rectification: whole updates and any fractional t (r_t is 0 before the first update).
T_RECT = T
POSITIVE_DT = st.one_of(st.integers(min_value=1, max_value=10**6), st.floats(min_value=1e-6, max_value=1e6))


POWERS = st.floats(min_value=0.5, max_value=4.0)  # ≥ 1/2: a cool-down at most as steep as 1-sqrt at its end


@st.composite
def recipes(draw: st.DrawFn) -> Schedule:
    """warmup_linear_decay, warmup_cosine, warmup_polynomial_decay or wsd with random (valid) lengths, start and
    final values in [0, 1] and shapes."""
    w = draw(st.integers(min_value=0, max_value=1000))
    final, start = draw(FINAL), draw(EXACT_START)
    kind = draw(st.sampled_from(["warmup_linear_decay", "warmup_cosine", "warmup_polynomial_decay", "wsd"]))
    if kind == "wsd":
        stable = draw(st.integers(min_value=0, max_value=1000))
        return S.wsd(w, stable, draw(STEPS), decay=draw(DECAYS), final=final, start=start, warmup=draw(DECAYS))
    n = w + draw(st.integers(min_value=1, max_value=1000))
    if kind == "warmup_cosine":
        return S.warmup_cosine(w, n, final, start, draw(POWERS))
    if kind == "warmup_polynomial_decay":
        return S.warmup_polynomial_decay(w, n, draw(POWERS), final, start)
    return S.warmup_linear_decay(w, n, final, start)


def ended_primitives() -> SearchStrategy[Schedule]:
    """Primitives with a whole-number ``end`` (constant afterwards)."""
    return st.one_of(
        st.builds(S.linear_warmup, STEPS, EXACT_START),
        st.builds(S.cosine_warmup, STEPS, EXACT_START),
        st.builds(S.one_minus_sqrt_warmup, STEPS, EXACT_START),
        st.builds(S.linear_decay, STEPS, FINAL),
        st.builds(S.polynomial_decay, STEPS, FINAL, POWERS),
        st.builds(S.cosine, STEPS, FINAL, POWERS),
        st.builds(S.OneMinusSqrtDecay, STEPS, FINAL),
    )


def relative_primitives() -> SearchStrategy[Schedule]:
    """Every multiplier primitive, with arguments that keep it in [0, 1]."""
    return st.one_of(
        ended_primitives(),
        st.builds(S.constant, FINAL),
        st.builds(S.inverse_sqrt, STEPS, EXACT_START),
        st.builds(S.step_decay, STEPS, GAMMA),
        st.builds(S.exponential, GAMMA),
        st.builds(S.exponential, GAMMA, st.integers(min_value=0, max_value=100), st.booleans(), st.none() | FINAL),
        st.builds(S.exponential_warmup, st.floats(min_value=0.1, max_value=1e4)),
        st.builds(S.untuned_warmup, BETA2, KINDS, st.booleans()),
    )


RECTIFICATIONS = st.builds(S.rectification, BETA2, st.floats(min_value=4.0, max_value=10.0))


@st.composite
def joins(draw: st.DrawFn, pieces: SearchStrategy[Schedule]) -> Schedule:
    parts = draw(st.lists(pieces, min_size=1, max_size=4))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=1000), min_size=len(parts) - 1, max_size=len(parts) - 1))
    return S.join(parts, list(itertools.accumulate(gaps)))


def compounds(base: SearchStrategy[Schedule]) -> SearchStrategy[Schedule]:
    """``base`` closed under join, product, scale (factor ≤ 1) and shift: stays in [0, 1] if base does."""
    return st.recursive(
        base,
        lambda inner: st.one_of(
            joins(inner),
            st.builds(S.product, inner, inner),
            st.builds(S.scale, inner, st.floats(min_value=0.0, max_value=1.0)),
            st.builds(S.shift, inner, st.integers(min_value=0, max_value=1000)),
        ),
        max_leaves=5,
    )


MULTIPLIERS = compounds(st.one_of(relative_primitives(), recipes()))
# Schedules with an end, the untuned warm-up alone (its end is ⌈2/(1 − β2)⌉) and inside combinators.
ENDED = compounds(
    st.one_of(ended_primitives(), recipes(), st.builds(S.untuned_warmup, COMMON_BETA2, st.just("linear")))
)
NOAMS = st.builds(S.noam, st.integers(min_value=1, max_value=4096), STEPS, st.floats(min_value=0.01, max_value=10.0))
ANY_SCHEDULE = st.one_of(
    MULTIPLIERS,
    NOAMS,
    st.builds(S.scale, NOAMS, st.floats(min_value=0.0, max_value=10.0)),
    st.builds(S.shift, NOAMS, st.integers(min_value=0, max_value=100)),
    st.builds(S.product, NOAMS, MULTIPLIERS),
    RECTIFICATIONS,
    st.builds(S.constant, st.floats(min_value=0.0, max_value=100.0)),
)

# -------------------------------------------------------------------------------------------------
# bounded


@FAST
@given(MULTIPLIERS, T)
def test_multiplier_schedules_lie_in_unit_interval(s: Schedule, t: float) -> None:
    assert not s.absolute
    assert 0.0 <= s(t) <= 1.0


@FAST
@given(RECTIFICATIONS, T_RECT)
def test_rectification_lies_in_unit_interval(s: Schedule, t: float) -> None:
    assert 0.0 <= s(t) <= 1.0


@FAST
@given(NOAMS, T)
def test_noam_never_exceeds_its_peak(s: Any, t: float) -> None:
    peak = s.scale * (s.d_model * s.warmup_steps) ** -0.5
    assert s.absolute
    assert 0.0 <= s(t) <= peak * (1 + 1e-12)


# -------------------------------------------------------------------------------------------------
# continuity where pieces meet


def _gap(s: Schedule, b: float, eps: float) -> float:
    """The largest jump between s(b) and its values ε either side of b."""
    return max(abs(s(b) - s(b + eps)), abs(s(b) - s(max(0.0, b - eps))))


def _assert_continuous_at(s: Schedule, b: float) -> None:
    # Every piece has slope ≤ π/2 per update except 1-sqrt's cool-down, which starts like sqrt(ε): so the
    # jump over ε must vanish at least as fast as 2·sqrt(ε).
    for eps in (1e-6, 1e-9):
        assert _gap(s, b, eps) <= 2 * math.sqrt(eps) + 1e-12, (s, b, eps)


@FAST
@given(recipes())
def test_recipes_are_continuous_where_pieces_meet_and_at_the_end(s: Schedule) -> None:
    bounds = list(s.boundaries) if isinstance(s, S.Join) else []
    assert s.end is not None
    for b in [*bounds, s.end]:
        _assert_continuous_at(s, float(b))


@FAST
@given(STEPS, STEPS, FINAL, DECAYS)
def test_warmup_joined_to_any_decay_is_continuous(w: int, n: int, final: float, decay: str) -> None:
    d = {"linear": S.linear_decay, "cosine": S.cosine, "1-sqrt": S.OneMinusSqrtDecay}[decay](n, final)
    s = S.join([S.linear_warmup(w), d], [w])
    _assert_continuous_at(s, float(w))
    _assert_continuous_at(s, float(w + n))


@FAST
@given(NOAMS, st.builds(S.inverse_sqrt, STEPS, EXACT_START))
def test_noam_and_inverse_sqrt_are_continuous_at_the_warmup_end(noam: Any, isqrt: Any) -> None:
    w = float(noam.warmup_steps)
    peak = noam(w)
    # Noam's slope is at most peak/w ≤ peak per update on either side of w.
    assert abs(peak - noam(w + 1e-9)) <= 2e-9 * peak and abs(peak - noam(w - 1e-9)) <= 2e-9 * peak
    _assert_continuous_at(isqrt, float(isqrt.warmup_steps))


# -------------------------------------------------------------------------------------------------
# warm-up: monotone, peak exactly 1 at its end


def _warmups(w: int) -> list[Schedule]:
    return [
        S.linear_warmup(w),
        S.cosine_warmup(w),
        S.one_minus_sqrt_warmup(w, start=0.1),
        S.inverse_sqrt(w),
        S.warmup_linear_decay(w, w + 7),
        S.warmup_cosine(w, 2 * w + 1, final=0.1),
        S.warmup_polynomial_decay(w, w + 3, power=2.0),
        S.wsd(w, 5, 10, decay="1-sqrt"),
        S.wsd(w, 0, 10, warmup="cosine", start=0.01),
        S.join([S.linear_warmup(w, start=0.5), S.constant(1.0)], [w]),
    ]


@FAST
@given(STEPS, st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_warmup_is_monotone_and_peaks_at_exactly_one(w: int, a: float, b: float) -> None:
    t1, t2 = sorted((a * w, b * w))
    for s in _warmups(w):
        assert s(t1) <= s(t2) <= 1.0
        assert s(w) == 1.0
        assert s(w - 1) < 1.0  # the peak is reached at w, not before
        assert all(s(t) <= s(w) for t in range(max(0, w - 3), w + 4))


@FAST
@given(NOAMS, st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_noam_warmup_is_monotone(s: Any, a: float, b: float) -> None:
    t1, t2 = sorted((a * s.warmup_steps, b * s.warmup_steps))
    assert s(t1) <= s(t2)


@FAST
@given(BETA2, KINDS, T, T)
def test_untuned_warmup_is_monotone(beta2: float, kind: str, a: float, b: float) -> None:
    t1, t2 = sorted((a, b))
    assert S.untuned_warmup(beta2, kind)(t1) <= S.untuned_warmup(beta2, kind)(t2)


@FAST
@given(RECTIFICATIONS, T_RECT, T_RECT)
def test_rectification_is_monotone(s: Schedule, a: float, b: float) -> None:
    t1, t2 = sorted((a, b))
    assert s(t1) <= s(t2)


# -------------------------------------------------------------------------------------------------
# decay: exactly ``final`` at total_steps, flat after ``end``


@FAST
@given(st.integers(min_value=0, max_value=1000), STEPS, FINAL, POSITIVE_DT)
def test_decay_hits_final_at_total_steps_and_stays(w: int, extra: int, final: float, dt: float) -> None:
    n = w + extra
    for s in (
        S.warmup_linear_decay(w, n, final),
        S.warmup_cosine(w, n, final),
        S.wsd(w // 2, w - w // 2, extra, decay="linear", final=final),
        S.wsd(w // 2, w - w // 2, extra, decay="1-sqrt", final=final),
        S.linear_decay(n, final),
        S.cosine(n, final),
    ):
        assert s.end == n
        assert s(n) == final
        assert s(n + dt) == final  # no cosine rebound
        assert s(n - 1) >= final


@FAST
@given(ENDED, POSITIVE_DT)
def test_every_schedule_with_an_end_is_flat_after_it(s: Schedule, dt: float) -> None:
    end = s.end
    assert end is not None
    assert s(end + dt) == s(end)
    assert s(end + 10 * dt) == s(end)


@FAST
@given(
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=2, max_value=2000),
    st.floats(min_value=0.01, max_value=0.99),
    STEPS,
    st.floats(min_value=0.0, max_value=3.0),
)
def test_cooldown_follows_its_run_then_decays_linearly_to_zero(
    w: int, extra: int, where: float, steps: int, frac: float
) -> None:
    """``cooldown(s, at, n)``: s(t) up to ``at``, then s(at)·(1 − (t − at)/n) down to 0 at ``at + n``, flat after;
    its spec survives JSON."""
    total = w + extra
    at = max(1, min(total - 1, round(where * total)))
    for base in (S.warmup_linear_decay(w, total), S.warmup_cosine(w, total), S.constant(0.5)):
        s = S.cooldown(base, at, steps)
        t = frac * (at + steps)
        want = base(t) if t <= at else base(at) * max(0.0, 1 - (t - at) / steps)
        assert s(t) == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert s(at) == base(at)
        assert s(at + steps) == 0.0
        assert s.end == at + steps
        assert S.from_spec(json.loads(json.dumps(s.to_spec()))) == s


def test_cooldown_refuses_a_bad_rung_or_length_and_a_schedule_it_cannot_evaluate() -> None:
    base = S.warmup_linear_decay(10, 100)
    with pytest.raises(ValueError, match="at must be"):
        S.cooldown(base, 0, 5)
    with pytest.raises(ValueError, match="steps must be"):
        S.cooldown(base, 10, 0)
    with pytest.raises(ValueError, match="param group"):
        S.cooldown(S.untuned_warmup(), 10, 5)


# -------------------------------------------------------------------------------------------------
# closed forms: Noam, inverse sqrt, untuned warm-up


@FAST
@given(NOAMS, st.integers(min_value=0, max_value=10**6))
def test_noam_peak_is_at_warmup_steps_and_is_the_max_over_integers(s: Any, t: int) -> None:
    w = s.warmup_steps
    assert s(w) == pytest.approx(s.scale * (s.d_model * w) ** -0.5, rel=1e-12)
    assert s(t) <= s(w)
    assert s(w - 1) < s(w) and s(w + 1) < s(w)


@FAST
@given(STEPS, T)
def test_inverse_sqrt_is_min_of_ramp_and_inverse_sqrt(w: int, t: float) -> None:
    expected = 0.0 if t == 0 else min(t / w, math.sqrt(w / t))
    assert S.inverse_sqrt(w)(t) == expected


@FAST
@given(BETA2, T)
def test_untuned_warmup_follows_ma_and_yarats(beta2: float, t: float) -> None:
    """Ma & Yarats (2019), "On the adequacy of untuned warmup for adaptive optimization".

    Linear: ω_t = min(1, t(1 − β2)/2); exponential: ω_t = 1 − exp(−(1 − β2)t).
    """
    assert S.untuned_warmup(beta2, "linear")(t) == min(1.0, t * (1 - beta2) / 2)
    assert S.untuned_warmup(beta2, "exponential")(t) == 1 - math.exp(-(1 - beta2) * t)
    # The linear warm-up lasts τ = 2/(1 − β2) updates; the exponential one has time constant 1/(1 − β2).
    tau = 2 / (1 - beta2)
    assert S.untuned_warmup(beta2)(t) == pytest.approx(min(1.0, t / tau), rel=1e-12)
    # Its end is the first whole update at or after τ: exactly 1 from there on.
    assert S.untuned_warmup(beta2).end == math.ceil(tau)
    assert S.untuned_warmup(beta2)(math.ceil(tau)) == 1.0


def _pytorch_warmup_factors(cls: type, beta2: float, updates: int) -> list[float]:
    """ω used by each of ``updates`` Adam updates under pytorch_warmup's documented loop (base LR 1)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, beta2))
    warmup = cls(opt)
    used = []
    for _ in range(updates):
        used.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: the parameter is left alone, the warm-up only counts calls
        with warmup.dampening():
            pass
    return used


@pytest.mark.parametrize("beta2", [0.5, 0.75, 0.9375, 1 - 2**-9])
@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_untuned_warmup_equals_pytorch_warmup_when_its_period_is_whole(beta2: float, kind: str) -> None:
    """Same step convention: pytorch_warmup's t-th update uses ω(t) (it dampens by ω(last_step + 1) with
    last_step starting at −1), like lrtune's. When τ = 2/(1 − β2) (linear) or 1/(1 − β2) (exponential) is a
    whole number, its int(τ) is τ and the two agree bit for bit."""
    cls = pytorch_warmup.UntunedLinearWarmup if kind == "linear" else pytorch_warmup.UntunedExponentialWarmup
    updates = int(4 / (1 - beta2)) + 5
    ours = S.untuned_warmup(beta2, kind)
    assert _pytorch_warmup_factors(cls, beta2, updates) == [ours(t) for t in range(1, updates + 1)]


@pytest.mark.parametrize("beta2", [0.98, 0.999])
def test_untuned_warmup_vs_pytorch_warmup_differ_by_int_truncation(beta2: float) -> None:
    """pytorch_warmup computes the period with int(): τ' = int(2/(1 − β2)) (linear) and int(1/(1 − β2))
    (exponential). 1 − β2 is not exact in binary (1 − 0.999 = 0.0010000000000000009), so 2/(1 − β2) is
    1999.9999999999982 and int() gives 1999, not 2000 (99, not 100, for β2 = 0.98). lrtune uses the formula
    of Ma & Yarats with the real τ = 2/(1 − β2). Hence, exactly:

    * pytorch_warmup(β2) is lrtune's formula with τ' in place of τ, i.e. untuned_warmup(1 − 2/τ') (linear),
      untuned_warmup(1 − 1/τ', "exponential");
    * linear: pytorch_warmup's ω_t = min(1, t/τ') is larger by the factor τ/τ' until it reaches 1 at t = τ',
      one update before lrtune's (which reaches 1 at ceil(τ)); the largest difference is at t = τ':
      1 − τ'/τ = 1/ceil(τ) (5e-4 for β2 = 0.999, 1e-2 for β2 = 0.98), and they are equal from t = ceil(τ) on;
    * exponential: ω differs by exp(−t/τ) − exp(−t/τ') > 0, largest at t ≈ τ (about (τ − τ')/(e·τ),
      3.7e-4 for β2 = 0.999), and never vanishes exactly.
    """
    n = int(5 / (1 - beta2))
    ts = range(1, n + 1)

    # linear
    theirs = _pytorch_warmup_factors(pytorch_warmup.UntunedLinearWarmup, beta2, n)
    ours = [S.untuned_warmup(beta2)(t) for t in ts]
    tau = 2 / (1 - beta2)
    tau_int = int(tau)
    assert tau_int == math.ceil(tau) - 1 == round(tau) - 1  # the truncation drops one whole update
    assert theirs == pytest.approx([S.untuned_warmup(1 - 2 / tau_int)(t) for t in ts], rel=1e-12, abs=0)
    assert theirs == pytest.approx([min(1.0, t / tau_int) for t in ts], rel=1e-15, abs=0)
    diff = [a - b for a, b in zip(theirs, ours, strict=True)]
    assert all(d >= 0 for d in diff)
    worst = max(range(n), key=lambda i: diff[i])
    assert worst + 1 == tau_int
    assert diff[worst] == pytest.approx(1 / math.ceil(tau), rel=1e-9)
    assert theirs[tau_int - 1] == 1.0 and ours[tau_int - 1] < 1.0
    assert theirs[math.ceil(tau) - 1 :] == ours[math.ceil(tau) - 1 :] == [1.0] * (n - math.ceil(tau) + 1)
    for t in range(1, tau_int):
        assert theirs[t - 1] / ours[t - 1] == pytest.approx(tau / tau_int, rel=1e-12)

    # exponential
    theirs = _pytorch_warmup_factors(pytorch_warmup.UntunedExponentialWarmup, beta2, n)
    ours = [S.untuned_warmup(beta2, "exponential")(t) for t in ts]
    tau = 1 / (1 - beta2)
    tau_int = int(tau)
    assert tau_int == math.ceil(tau) - 1
    assert theirs == pytest.approx([S.untuned_warmup(1 - 1 / tau_int, "exponential")(t) for t in ts], rel=1e-12)
    diff = [a - b for a, b in zip(theirs, ours, strict=True)]
    closed_form = [math.exp(-t / tau) - math.exp(-t / tau_int) for t in ts]
    assert diff == pytest.approx(closed_form, rel=1e-6, abs=1e-15)
    assert all(d > 0 for d in diff)
    worst = max(range(n), key=lambda i: diff[i])
    assert abs((worst + 1) - tau) <= 1
    assert diff[worst] == pytest.approx((tau - tau_int) / (math.e * tau), rel=2e-2)


def _per_group_lrs(
    make_warmup: Callable[[torch.optim.Optimizer], Any] | None, schedule: Schedule | None, n: int
) -> list:
    """The LR of each of two param groups (β2 = 0.98 and 0.999, base LRs 1 and 0.5) for ``n`` Adam updates, under
    pytorch_warmup's documented loop (``make_warmup``) or lrtune's LRScheduler (``schedule``)."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    opt = torch.optim.Adam(
        [{"params": [params[0]], "betas": (0.9, 0.98)}, {"params": [params[1]], "lr": 0.5, "betas": (0.9, 0.999)}],
        lr=1.0,
    )
    warmup = make_warmup(opt) if make_warmup is not None else None
    sched = S.LRScheduler(opt, schedule) if schedule is not None else None
    used = []
    for _ in range(n):
        used.append([g["lr"] for g in opt.param_groups])
        opt.step()  # no gradients: the parameters stay, the schedules count updates
        if warmup is not None:
            with warmup.dampening():
                pass
        if sched is not None:
            sched.step()
    return used


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_untuned_warmup_truncated_reads_each_groups_beta2_as_pytorch_warmup(kind: str) -> None:
    """pytorch_warmup's untuned warm-ups read each param group's β2 and truncate their periods with int() — both
    the linear one (int(2/(1 − β2))) and the exponential one (int(1/(1 − β2))). ``untuned_warmup(kind=...,
    truncate=True)`` without beta2, bound to each group by LRScheduler, gives the same LRs bit for bit."""
    cls = pytorch_warmup.UntunedLinearWarmup if kind == "linear" else pytorch_warmup.UntunedExponentialWarmup
    n = 2600
    ours = S.untuned_warmup(kind=kind, truncate=True)
    assert ours == S.from_spec({"name": "untuned_warmup", "beta2": None, "kind": kind, "truncate": True})
    assert _per_group_lrs(None, ours, n) == _per_group_lrs(cls, None, n)
    exact = _per_group_lrs(None, S.untuned_warmup(kind=kind), n)  # untruncated: Ma & Yarats' formula, per group
    assert exact == [[S.untuned_warmup(0.98, kind)(t), 0.5 * S.untuned_warmup(0.999, kind)(t)] for t in range(1, n + 1)]


def test_exponential_and_linear_warmup_equal_pytorch_warmups() -> None:
    """pytorch_warmup.ExponentialWarmup(τ) and LinearWarmup(τ), one period per group, bit for bit."""
    for ours, theirs in (
        ((S.exponential_warmup(50.0), S.exponential_warmup(500.0)), pytorch_warmup.ExponentialWarmup),
        ((S.linear_warmup(50), S.linear_warmup(500)), pytorch_warmup.LinearWarmup),
    ):
        lrs = _per_group_lrs(lambda o, theirs=theirs: theirs(o, warmup_period=[50, 500]), None, 700)
        assert lrs == [[ours[0](t), 0.5 * ours[1](t)] for t in range(1, 701)]


@pytest.mark.parametrize("beta2", [0.98, 0.99, 0.999])
def test_radam_warmup_is_the_rectification_shifted_back(beta2: float) -> None:
    """pytorch_warmup.RAdamWarmup: ω_t = r_{t+δ−1}, δ the first t with ρ_t > 4, i.e. RAdam's r_t with the
    paper's threshold 4, started δ − 1 updates early: a negative shift."""
    delta = pytorch_warmup.get_offset(beta2, pytorch_warmup.rho_inf_fn(beta2))
    s = S.shift(S.rectification(beta2, threshold=4.0), -(delta - 1))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.9, beta2))
    warmup = pytorch_warmup.RAdamWarmup(opt)
    for t in range(1, 3001):
        assert opt.param_groups[0]["lr"] == pytest.approx(s(t), rel=1e-13), t
        opt.step()
        with warmup.dampening():
            pass
    assert s(1) > 0 and S.rectification(beta2, threshold=4.0)(delta - 1) == 0.0


# -------------------------------------------------------------------------------------------------
# RAdam's rectification as a schedule


@pytest.mark.parametrize("beta2", [0.98, 0.999])
def test_rectification_equals_the_r_t_that_radam_applies(beta2: float) -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = lrtune.RAdam([p], lr=1e-3, betas=(0.9, beta2))
    s = S.rectification(beta2)
    rectified = 0
    for t in range(1, 301):
        p.grad = torch.randn_like(p)
        opt.step()
        info = opt.last_step_info[0]
        assert info["step"] == t
        assert info["r_t"] == s(t), t
        rectified += info["rectified"] == 1.0
    assert s(0) == 0.0
    assert 0 < rectified < 300  # both regimes were compared: the first (ρ_t ≤ 5) updates have r_t = 0


# -------------------------------------------------------------------------------------------------
# serialisation


@FAST
@given(ANY_SCHEDULE, T_RECT)
def test_spec_round_trips_through_json_and_pickle(s: Schedule, t: float) -> None:
    spec = s.to_spec()
    back = S.from_spec(json.loads(json.dumps(spec)))
    assert back == s
    assert type(back) is type(s)
    assert back.to_spec() == spec
    assert back(t) == s(t)
    assert back.end == s.end and back.absolute == s.absolute
    unpickled = pickle.loads(pickle.dumps(s))
    assert unpickled == s and unpickled(t) == s(t)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"name": "warmup_linear_decay", "warmup_steps": 4000, "total_steps": 100_000},
            S.warmup_linear_decay(4000, 100_000),
        ),
        ({"name": "warmup_cosine", "warmup_steps": 10, "total_steps": 50, "final": 0.1}, S.warmup_cosine(10, 50, 0.1)),
        (
            {"name": "wsd", "warmup_steps": 5, "stable_steps": 10, "decay_steps": 5, "decay": "1-sqrt"},
            S.wsd(5, 10, 5, "1-sqrt"),
        ),
        ({"name": "noam", "d_model": 512, "warmup_steps": 4000}, S.noam(512, 4000)),
    ],
)
def test_recipe_specs_build_the_recipe(spec: dict[str, Any], expected: Schedule) -> None:
    assert S.from_spec(spec) == expected


# -------------------------------------------------------------------------------------------------
# errors: every invalid argument fails at construction and names the argument

_c = S.constant()
# The schedules API without its type hints, to call it with arguments of the wrong type.
U: Any = S
_WSD_SPEC = {"name": "wsd", "warmup_steps": 1, "stable_steps": 1, "decay_steps": 1}

INVALID: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # warm-up as long as (or longer than) the whole run
    ("warmup == total", lambda: U.warmup_linear_decay(10, 10), ValueError, "warmup_steps"),
    ("warmup > total", lambda: U.warmup_linear_decay(11, 10), ValueError, "warmup_steps"),
    ("cosine warmup == total", lambda: U.warmup_cosine(10, 10), ValueError, "warmup_steps"),
    # negative (or zero) step counts
    ("negative warmup", lambda: U.linear_warmup(-1), ValueError, "warmup_steps"),
    ("zero warmup", lambda: U.linear_warmup(0), ValueError, "warmup_steps"),
    ("negative decay", lambda: U.linear_decay(-5), ValueError, "decay_steps"),
    ("negative cosine", lambda: U.cosine(-1), ValueError, "decay_steps"),
    ("negative total", lambda: U.warmup_linear_decay(0, -10), ValueError, "total_steps"),
    ("negative recipe warmup", lambda: U.warmup_cosine(-1, 10), ValueError, "warmup_steps"),
    ("negative wsd warmup", lambda: U.wsd(-1, 0, 10), ValueError, "warmup_steps"),
    ("negative wsd stable", lambda: U.wsd(0, -1, 10), ValueError, "stable_steps"),
    ("zero wsd decay", lambda: U.wsd(0, 0, 0), ValueError, "decay_steps"),
    ("negative noam warmup", lambda: U.noam(512, -1), ValueError, "warmup_steps"),
    ("negative inverse_sqrt", lambda: U.inverse_sqrt(-1), ValueError, "warmup_steps"),
    ("negative step_size", lambda: U.step_decay(-1), ValueError, "step_size"),
    ("fractional negative shift", lambda: U.shift(_c, -1.5), ValueError, "offset"),
    # non-integer step counts
    ("float warmup", lambda: U.linear_warmup(2.5), ValueError, "warmup_steps"),
    ("float recipe warmup", lambda: U.warmup_linear_decay(2.5, 10), ValueError, "warmup_steps"),
    ("float total", lambda: U.warmup_linear_decay(2, 10.5), ValueError, "total_steps"),
    ("float decay", lambda: U.cosine(2.5), ValueError, "decay_steps"),
    ("float wsd stable", lambda: U.wsd(1, 2.5, 3), ValueError, "stable_steps"),
    ("float noam warmup", lambda: U.noam(512, 2.5), ValueError, "warmup_steps"),
    ("float d_model", lambda: U.noam(512.5, 10), ValueError, "d_model"),
    ("float step_size", lambda: U.step_decay(2.5), ValueError, "step_size"),
    ("float offset", lambda: U.shift(_c, 0.5), ValueError, "offset"),
    ("float boundary", lambda: U.join([_c, _c], [2.5]), ValueError, "boundaries"),
    ("str steps", lambda: U.linear_warmup("10"), TypeError, "warmup_steps"),
    ("bool steps", lambda: U.linear_decay(True), TypeError, "decay_steps"),
    ("None steps", lambda: U.warmup_linear_decay(None, 10), TypeError, "warmup_steps"),
    # values: any finite number (a multiplier above 1 or below 0 is a function value), never NaN or infinite
    ("final inf", lambda: U.linear_decay(10, final=math.inf), ValueError, "final"),
    ("final NaN", lambda: U.cosine(10, final=math.nan), ValueError, "final"),
    ("1-sqrt final -inf", lambda: U.OneMinusSqrtDecay(10, -math.inf), ValueError, "final"),
    ("recipe final inf", lambda: U.warmup_linear_decay(1, 10, final=math.inf), ValueError, "final"),
    ("cosine recipe final NaN", lambda: U.warmup_cosine(1, 10, final=math.nan), ValueError, "final"),
    ("wsd final inf", lambda: U.wsd(1, 1, 10, final=math.inf), ValueError, "final"),
    ("start inf", lambda: U.linear_warmup(10, start=math.inf), ValueError, "start"),
    ("recipe start NaN", lambda: U.warmup_cosine(2, 10, start=math.nan), ValueError, "start"),
    ("warmup_init NaN", lambda: U.inverse_sqrt(10, warmup_init=math.nan), ValueError, "warmup_init"),
    ("exponential final inf", lambda: U.exponential(2.0, final=math.inf), ValueError, "final"),
    # shape parameters
    ("zero power", lambda: U.polynomial_decay(10, power=0.0), ValueError, "power"),
    ("negative exponent", lambda: U.cosine(10, exponent=-1.0), ValueError, "exponent"),
    ("recipe power NaN", lambda: U.warmup_polynomial_decay(2, 10, power=math.nan), ValueError, "power"),
    ("zero period", lambda: U.exponential_warmup(0.0), ValueError, "period"),
    ("negative exponential steps", lambda: U.exponential(0.5, steps=-1), ValueError, "steps"),
    ("staircase str", lambda: U.exponential(0.5, staircase="yes"), TypeError, "staircase"),
    ("truncate int", lambda: U.untuned_warmup(0.999, truncate=1), TypeError, "truncate"),
    ("infinite gamma", lambda: U.exponential(math.inf), ValueError, "gamma"),
    # d_model ≤ 0, bad scale
    ("zero d_model", lambda: U.noam(0, 10), ValueError, "d_model"),
    ("negative d_model", lambda: U.noam(-512, 10), ValueError, "d_model"),
    ("zero noam scale", lambda: U.noam(512, 10, scale=0.0), ValueError, "scale"),
    # β2 outside (0, 1)
    ("beta2 = 0", lambda: U.untuned_warmup(0.0), ValueError, "beta2"),
    ("beta2 = 1", lambda: U.untuned_warmup(1.0), ValueError, "beta2"),
    ("beta2 > 1", lambda: U.untuned_warmup(1.5), ValueError, "beta2"),
    ("beta2 < 0", lambda: U.untuned_warmup(-0.1), ValueError, "beta2"),
    ("beta2 NaN", lambda: U.untuned_warmup(math.nan), ValueError, "beta2"),
    ("str beta2", lambda: U.untuned_warmup("0.999"), TypeError, "beta2"),
    ("rectification beta2 = 1", lambda: U.rectification(1.0), ValueError, "beta2"),
    ("rectification beta2 = 0", lambda: U.rectification(0.0), ValueError, "beta2"),
    ("rectification threshold < 4", lambda: U.rectification(0.999, threshold=3.0), ValueError, "threshold"),
    # other arguments
    ("untuned kind", lambda: U.untuned_warmup(0.999, "cosine"), ValueError, "kind"),
    ("wsd decay kind", lambda: U.wsd(1, 1, 10, decay="exp"), ValueError, "decay"),
    ("wsd warmup kind", lambda: U.wsd(1, 1, 10, warmup="linar"), ValueError, "warmup"),
    ("NaN constant", lambda: U.constant(math.nan), ValueError, "value"),
    ("untuned warm-up used unbound", lambda: U.untuned_warmup()(3), ValueError, "beta2"),
    ("rectification bound to SGD", lambda: U.rectification(None).bind({"lr": 0.1}), ValueError, "betas"),
    ("zero gamma", lambda: U.exponential(0.0), ValueError, "gamma"),
    ("negative step gamma", lambda: U.step_decay(10, -0.5), ValueError, "gamma"),
    ("NaN scale factor", lambda: U.scale(_c, math.nan), ValueError, "factor"),
    ("infinite scale factor", lambda: U.scale(_c, math.inf), ValueError, "factor"),
    ("scale of a non-schedule", lambda: U.scale(1.0, 2.0), TypeError, "schedule"),
    # specs
    ("unknown spec name", lambda: U.from_spec({"name": "nope"}), ValueError, "spec name 'nope'"),
    ("spec without name", lambda: U.from_spec({"decay_steps": 10}), ValueError, "name"),
    ("unknown spec argument", lambda: U.from_spec({"name": "cosine", "decay_steps": 1, "xx": 1}), ValueError, "xx"),
    ("unknown recipe argument", lambda: U.from_spec({**_WSD_SPEC, "bogus": 1}), ValueError, "bogus"),
    ("missing spec argument", lambda: U.from_spec({"name": "cosine"}), TypeError, "decay_steps"),
    ("bad value in spec", lambda: U.from_spec({"name": "cosine", "decay_steps": -3}), ValueError, "decay_steps"),
    # join
    ("too few boundaries", lambda: U.join([_c, _c], []), ValueError, "boundaries"),
    ("too many boundaries", lambda: U.join([_c, _c], [1, 2]), ValueError, "boundaries"),
    ("equal boundaries", lambda: U.join([_c, _c, _c], [5, 5]), ValueError, "boundaries"),
    ("decreasing boundaries", lambda: U.join([_c, _c, _c], [5, 3]), ValueError, "boundaries"),
    ("zero boundary", lambda: U.join([_c, _c], [0]), ValueError, "boundaries"),
    ("no pieces", lambda: U.join([], []), ValueError, "schedules"),
    ("non-schedule piece", lambda: U.join([_c, 1.0], [3]), TypeError, "schedules"),
    ("absolute joined to relative", lambda: U.join([U.noam(512, 10), _c], [3]), ValueError, "absolute"),
    ("two absolute factors", lambda: U.product(U.noam(512, 10), U.noam(256, 10)), ValueError, "absolute"),
    # t
    ("negative t", lambda: _c(-1), ValueError, "t must be"),
    ("tiny negative t", lambda: U.warmup_cosine(2, 10)(-1e-12), ValueError, "t must be"),
    ("NaN t", lambda: U.noam(512, 10)(math.nan), ValueError, "t must be"),
    ("str t", lambda: U.constant()("3"), ValueError, "t must be"),
    # the scheduler adapter
    ("scheduler on a non-optimizer", lambda: U.LRScheduler(object(), _c), TypeError, "optimizer"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "needle"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_arguments_raise_and_name_the_argument(
    make: Callable[[], object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        make()
    assert type(info.value) is error
    assert needle in str(info.value)


# -------------------------------------------------------------------------------------------------
# regressions: edge cases these tests once found in the library, each with its original failing input


@pytest.mark.parametrize("factory", [S.linear_warmup, S.inverse_sqrt])
@pytest.mark.parametrize(("w", "start"), [(3, 0.2), (3, 0.3), (9, 0.1)])
def test_linear_warmup_peak_is_exactly_one_for_any_start(factory: Any, w: int, start: float) -> None:
    s = factory(w, start)
    assert s(w) == 1.0
    assert 0.0 <= s(w) <= 1.0


@pytest.mark.parametrize(
    "s",
    [
        S.untuned_warmup(0.9999),
        S.untuned_warmup(0.99999),
        S.join([S.linear_warmup(1), S.untuned_warmup(0.9)], [12]),
    ],
    ids=["beta2=0.9999", "beta2=0.99999", "join-beta2=0.9"],
)
def test_untuned_linear_is_flat_after_end_for_any_beta2(s: Schedule) -> None:
    assert s.end is not None
    assert s(s.end) == s(s.end + 1) == 1.0


@pytest.mark.parametrize("t", [1e-13, 1e-14])
def test_rectification_at_tiny_positive_t(t: float) -> None:
    assert S.rectification(0.999)(t) == 0.0


@pytest.mark.parametrize(
    ("factory", "gamma", "t"), [(lambda g: S.step_decay(1, g), 6.0, 398), (S.exponential, 2.0, 1100)]
)
def test_growing_gamma_overflows_to_inf_which_the_scheduler_refuses(
    factory: Callable[[float], Schedule], gamma: float, t: int
) -> None:
    """Growth (γ > 1) is a schedule optax and torch express; these inputs once raised OverflowError at update t.
    Now the power gives inf there, and LRScheduler refuses to set it as a learning rate (naming the update)."""
    s = factory(gamma)
    assert s(t) == math.inf
    first = t  # the first update whose multiplier overflows
    while s(first - 1) == math.inf:
        first -= 1
    assert 1 < s(first - 1) < math.inf
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-300)
    sched = S.LRScheduler(opt, S.shift(s, -(first - 2)))  # update 1 is finite, update 2 overflows
    p.grad = torch.zeros(1)
    opt.step()
    with pytest.raises(ValueError, match=r"learning rate inf at update 2"):
        sched.step()


def test_constant_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="value"):
        S.constant(math.inf)
