"""optax's own schedule test cases (``optax/schedules/_schedule_test.py`` and ``_join_test.py``), all 35, written
with lrtune's schedules.

An optax schedule maps the count c of updates already applied (0 for the first update) to a value; lrtune's
``s(t)`` is a multiplier of a base learning rate for the t-th update. Each case below is an lrtune schedule
``s`` and a base such that base·s(c) equals optax's value at count c for every count the optax test checks
(pointwise, as lrtune's recipes equal Hugging Face's λ pointwise), against the values or closed forms optax's
test asserts, at optax's tolerance or tighter. Driving an optimizer, lrtune's first update uses s(1) where
optax's uses its value at count 0: ``shift(s, 1)`` gives optax's run update for update (tested at the end).

Where optax and lrtune differ, the test says so: optax falls back to a constant schedule for a decay rate of
0 or a negative number of steps (with a log message) where lrtune refuses them at construction; optax refuses
a negative scale, lrtune's schedules are functions that may go negative and its ``LRScheduler`` refuses to set
a negative learning rate; optax's ``join_schedules`` switches to the next piece at the boundary itself, lrtune's
``join`` at the update after it (they agree wherever the pieces meet continuously).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from lrtune import schedules as S
from lrtune.schedules import Schedule


def values(s: Schedule, counts: range | list[int], base: float = 1.0) -> list[float]:
    return [base * s(c) for c in counts]


def close(ours: list[float], expected: list[float], atol: float = 1e-12, rtol: float = 1e-12) -> None:
    assert ours == pytest.approx(expected, rel=rtol, abs=atol)


# -------------------------------------------------------------------------------------------------
# constant (1)


def test_constant() -> None:
    close(values(S.constant(), range(15), base=10.0), [10.0] * 15)


# -------------------------------------------------------------------------------------------------
# polynomial (4): optax's polynomial_schedule(init, end, power, transition_steps, transition_begin)


def test_polynomial_linear_grows_from_init_to_end() -> None:
    """init 10 → end 20 over 10 counts: relative to init, a linear ramp from 1 to final = 2 (growth)."""
    s = S.polynomial_decay(10, final=2.0, power=1.0)
    close(values(s, range(15), base=10.0), [float(c) for c in range(10, 20)] + [20.0] * 5)
    assert s == S.from_spec({"name": "polynomial_decay", "decay_steps": 10, "final": 2.0, "power": 1.0})
    close(values(S.linear_decay(10, final=2.0), range(15)), values(s, range(15)))  # power 1 is linear


def test_polynomial_zero_steps_is_constant() -> None:
    """transition_steps 0 (or less, in optax) keeps the initial value: lrtune's zero-length decay is no decay;
    a negative number of steps is refused, where optax logs and returns a constant."""
    for s in (S.polynomial_decay(0, final=2.0), S.linear_decay(0, final=2.0), S.cosine(0, final=0.5)):
        close(values(s, range(15), base=10.0), [10.0] * 15)
    with pytest.raises(ValueError, match="decay_steps"):
        S.polynomial_decay(-1, final=2.0)


def test_polynomial_nonlinear() -> None:
    """init 25 → end 10, power 2: 10 + 15·(1 − c/10)²."""
    s = S.polynomial_decay(10, final=10 / 25, power=2.0)
    close(values(s, range(15), base=25.0), [10.0 + 15.0 * (1 - c / 10) ** 2 for c in range(10)] + [10.0] * 5)


def test_polynomial_with_decay_begin() -> None:
    """init 30 → end 10, power 2, transition_begin 4: constant for 4 counts, then the decay (a shift)."""
    s = S.shift(S.polynomial_decay(10, final=10 / 30, power=2.0), 4)
    expected = [30.0] * 4 + [10.0 + 20.0 * (1 - c / 10) ** 2 for c in range(10)] + [10.0] * 6
    close(values(s, range(20), base=30.0), expected)


# -------------------------------------------------------------------------------------------------
# piecewise constant (2): optax's piecewise_constant_schedule(init, {boundary: scale})

PIECEWISE = [0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1]  # init 0.1, {3: 2.0, 6: 0.5}


def _piecewise_constant() -> Schedule:
    """optax's scale applies from count b on; lrtune's join changes piece after update b: boundaries b − 1."""
    return S.join([S.constant(1.0), S.constant(2.0), S.constant(1.0)], [2, 5])


def test_piecewise_constant_positive() -> None:
    close(values(_piecewise_constant(), range(10), base=0.1), PIECEWISE)


def test_piecewise_constant_negative() -> None:
    """init −0.1: the multipliers are the same, the sign is the base's."""
    close(values(_piecewise_constant(), range(10), base=-0.1), [-v for v in PIECEWISE])


# -------------------------------------------------------------------------------------------------
# exponential decay (6): optax's exponential_decay(init, transition_steps, decay_rate, transition_begin,
# staircase, end_value). lrtune's exponential(γ, steps, staircase, final) uses 1 at its first update like optax's
# run; pointwise, optax's function is shift(exponential(...), begin − 1).


def _optax_exponential(
    rate: float, steps: int, staircase: bool = False, begin: int = 0, final: float | None = None
) -> Schedule:
    return S.shift(S.exponential(rate, steps, staircase, final), begin - 1)


def _power_law(c: int, rate: float, steps: int, staircase: bool) -> float:
    p = c / steps
    return rate ** (math.floor(p) if staircase else p)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_constant_schedule(staircase: bool) -> None:
    close(values(_optax_exponential(1.0, 15, staircase), range(15)), [1.0] * 15)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_nonvalid_transition_steps(staircase: bool) -> None:
    """transition_steps 0 gives a constant in both; a negative number is refused by lrtune (optax: constant)."""
    close(values(_optax_exponential(1.0, 0, staircase), range(15)), [1.0] * 15)
    close(values(_optax_exponential(0.5, 0, staircase), range(15)), [1.0] * 15)
    with pytest.raises(ValueError, match="steps"):
        S.exponential(1.0, steps=-1, staircase=staircase)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_nonvalid_decay_rate(staircase: bool) -> None:
    """A decay rate of 0: optax logs and returns the constant init value; lrtune refuses γ = 0 at construction
    (the constant is ``constant()``)."""
    with pytest.raises(ValueError, match="gamma"):
        S.exponential(0.0, steps=2, staircase=staircase)
    close(values(S.constant(), range(15)), [1.0] * 15)


@pytest.mark.parametrize(("staircase", "begin"), [(False, 0), (True, 0), (False, 5), (True, 5)])
def test_exponential_growth(staircase: bool, begin: int) -> None:
    """rate 2 (growth, γ > 1) every 2 counts, after ``begin`` constant counts."""
    s = _optax_exponential(2.0, 2, staircase, begin)
    expected = [1.0] * begin + [_power_law(c, 2.0, 2, staircase) for c in range(15)]
    close(values(s, range(15 + begin)), expected)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize(("rate", "end"), [(0.2, 0.1), (1.0, 0.1), (2.0, 3.0)])
def test_exponential_end_value(rate: float, end: float, staircase: bool) -> None:
    """end_value bounds the schedule: a floor for a decay (rate < 1), a ceiling otherwise — over every count,
    the constant start included (so rate 1 with end 0.1 is 0.1 throughout)."""
    s = _optax_exponential(rate, 2, staircase, begin=3, final=end)
    raw = [1.0] * 3 + [_power_law(c, rate, 2, staircase) for c in range(11)]
    bound = max if rate < 1 else min
    close(values(s, range(14)), [bound(v, end) for v in raw])


def test_exponential_immutable_count() -> None:
    close(values(_optax_exponential(0.5, 1), range(5), base=32.0), [32.0, 16.0, 8.0, 4.0, 2.0])


# -------------------------------------------------------------------------------------------------
# cosine decay (5): optax's cosine_decay_schedule(init, decay_steps, alpha, exponent)


def _half_cosine(x: float) -> float:
    return 0.5 + 0.5 * math.cos(math.pi * x)


def test_cosine_decay_count_smaller_count() -> None:
    close(values(S.cosine(10), range(10), base=0.1), [0.1 * _half_cosine(c / 10) for c in range(10)])


def test_cosine_decay_count_greater_count() -> None:
    close(values(S.cosine(5), range(12), base=0.1), [0.1 * _half_cosine(min(c, 5) / 5) for c in range(12)])


def test_cosine_decay_count_greater_count_with_alpha() -> None:
    expected = [0.1 * (0.9 * _half_cosine(min(c, 5) / 5) + 0.1) for c in range(12)]
    close(values(S.cosine(5, final=0.1), range(12), base=0.1), expected)


def test_cosine_with_exponent() -> None:
    """optax's published values (float32), at its tolerance."""
    s = S.cosine(100, exponent=2.0)
    expected = [0.1, 0.09516553580760956, 0.025, 0.0021446612663567066, 0.0]
    close(values(s, [0, 10, 50, 75, 100], base=0.1), expected, rtol=1e-6, atol=1e-8)


def test_cosine_with_giant_int_steps() -> None:
    assert 1000.0 * S.cosine(10**10)(10**9) == pytest.approx(975.52826, rel=1e-7)


# -------------------------------------------------------------------------------------------------
# warm-up + cosine decay (4): optax's warmup_cosine_decay_schedule(init, peak, warmup_steps, decay_steps, end,
# exponent), decay_steps counting the warm-up. Relative to the peak: start = init/peak, final = end/peak.


@pytest.mark.parametrize(("init", "peak", "end"), [(10.0, 0.5, 1e-4), (5.0, 3.0, 0.0)], ids=["with-end", "without"])
def test_warmup_cosine_decay_limits(init: float, peak: float, end: float) -> None:
    """The warm-up starts above the peak (start = 20 and 5/3): it comes down to it."""
    s = S.warmup_cosine(100, 1000, final=end / peak, start=init / peak)
    assert peak * s(0) == pytest.approx(init, rel=1e-12)
    assert peak * s(100) == peak
    assert peak * s(1000) == pytest.approx(end, rel=1e-3, abs=1e-15)
    assert s == S.from_spec(
        {"name": "warmup_cosine", "warmup_steps": 100, "total_steps": 1000, "final": end / peak, "start": init / peak}
    )


def test_warmup_cosine_decay_with_exponent() -> None:
    """init 0.2, peak 1.21, end −3.0, exponent 2: a negative end is a value like any other (the optimizer's
    LRScheduler would refuse to set it); optax's published values (float32) at its tolerance."""
    peak = 1.21
    s = S.warmup_cosine(50, 100, final=-3.0 / peak, start=0.2 / peak, exponent=2.0)
    expected = [0.20000004768371582, 0.4020000100135803, 1.2100000381469727, -1.947500228881836, -3.000000238418579]
    close(values(s, [0, 10, 50, 75, 100], base=peak), expected, rtol=1e-6, atol=1e-6)


def test_warmup_cosine_decay_zero_peak_value() -> None:
    """Peak 0: relative to the initial value 0.2 it is a linear decay to 0 over the warm-up, then 0."""
    close(values(S.linear_decay(50), [0, 10, 50, 75, 100], base=0.2), [0.2, 0.16, 0.0, 0.0, 0.0], atol=1e-8)


# -------------------------------------------------------------------------------------------------
# SGDR (2): optax's sgdr_schedule: warm-up + cosine pieces joined at the cumulative decay steps


@pytest.mark.parametrize(("lr0", "lr1", "lr2"), [(1.6, 0.8, 0.4), (1.6, 1.6, 1.6)], ids=["step-decay", "no-decay"])
def test_sgdr_limits(lr0: float, lr1: float, lr2: float) -> None:
    pieces = [S.scale(S.warmup_cosine(500, n), lr) for n, lr in ((2000, lr0), (3000, lr1), (5000, lr2))]
    s = S.join(pieces, [2000, 5000])
    assert s(500) == pytest.approx(lr0, rel=1e-12)
    assert s(2500) == pytest.approx(lr1, rel=1e-12)
    assert s(5500) == pytest.approx(lr2, rel=1e-12)


# -------------------------------------------------------------------------------------------------
# piecewise interpolation (7): optax's piecewise_interpolate_schedule(kind, init, {boundary: scale})


def test_linear_piecewise() -> None:
    """200, ×1.5 at 5, ×0.25 at 10: a linear ramp up to 1.5 (final > 1), then down to 1.5·0.25."""
    s = S.join([S.linear_decay(5, final=1.5), S.scale(S.linear_decay(5, final=0.25), 1.5)], [5])
    expected = [200.0, 220.0, 240.0, 260.0, 280.0, 300.0, 255.0, 210.0, 165.0, 120.0, 75.0, 75.0, 75.0]
    close(values(s, range(13), base=200.0), expected)


def test_cos_piecewise() -> None:
    """400, {3: 0.6, 5: 1.2, 7: 1.0}: cosine interpolation between the cumulative scales 0.6, 0.72, 0.72."""
    s = S.join(
        [S.cosine(3, final=0.6), S.scale(S.cosine(2, final=1.2), 0.6), S.scale(S.cosine(2, final=1.0), 0.72)], [3, 5]
    )
    expected = [400.0, 360.0, 280.0, 240.0, 264.0, 288.0, 288.0, 288.0, 288.0]
    close(values(s, range(9), base=400.0), expected)


def test_piecewise_interpolate_empty_dict() -> None:
    close(values(S.constant(), range(5), base=13.0), [13.0] * 5)


def test_piecewise_interpolate_no_dict() -> None:
    close(values(S.constant(), range(3), base=17.0), [17.0] * 3)


def test_piecewise_interpolate_invalid_type() -> None:
    """An unknown interpolation kind is refused at construction: lrtune's kinds are wsd's warm-up and decay."""
    for bad in ("linar", ""):
        with pytest.raises(ValueError, match="decay"):
            S.wsd(1, 1, 5, decay=bad)
        with pytest.raises(ValueError, match="warmup"):
            S.wsd(1, 1, 5, warmup=bad)


def test_piecewise_interpolate_invalid_scale() -> None:
    """optax refuses a negative scale when the schedule is built; lrtune's schedule is a function and may go
    negative, and LRScheduler refuses the negative learning rate at the update that would use it."""
    s = S.linear_decay(5, final=-3.0)  # 13, ×(−3) at 5: from 13 down to −39
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=13.0)
    sched = S.LRScheduler(opt, s)
    with pytest.raises(ValueError, match=r"learning rate -7\.8.* at update 2"):
        for _ in range(5):
            p.grad = torch.zeros(1)
            opt.step()
            sched.step()
    assert sched.applied_updates == 1  # update 1 ran at 13·(1 − 4/5) = 2.6


def test_piecewise_interpolate_zero_interval_size() -> None:
    """{0: 2.0, 5: 3.0}: the first scale applies from count 0, then a ramp to 2·3 at count 5."""
    s = S.scale(S.linear_decay(5, final=3.0), 2.0)
    assert all(math.isfinite(s(c)) for c in range(6))
    assert 13.0 * s(0) == pytest.approx(26.0)
    assert 13.0 * s(5) == pytest.approx(78.0)


# -------------------------------------------------------------------------------------------------
# one-cycle (3): optax's linear_onecycle_schedule and cosine_onecycle_schedule


def test_linear_onecycle() -> None:
    """10 steps, peak 1000, 30 % up from peak/10, down to peak/10 at 70 %, then to peak/10/100."""
    s = S.join(
        [S.linear_warmup(3, start=0.1), S.linear_decay(4, final=0.1), S.scale(S.linear_decay(3, final=0.01), 0.1)],
        [3, 7],
    )
    expected = [100.0, 400.0, 700.0, 1000.0, 775.0, 550.0, 325.0, 100.0, 67.0, 34.0, 1.0, 1.0]
    close(values(s, range(12), base=1000.0), expected, atol=1e-9)


def test_cosine_onecycle() -> None:
    """5 steps, peak 1000, 40 % up: a cosine-shaped warm-up from peak/10, then a cosine down to peak/1000."""
    s = S.join([S.cosine_warmup(2, start=0.1), S.cosine(3, final=0.001)], [2])
    close(values(s, range(7), base=1000.0), [100.0, 550.0, 1000.0, 750.25, 250.75, 1.0, 1.0], atol=1e-9)
    assert s == S.from_spec(s.to_spec())


def test_onecycle_nonpositive_transition_steps() -> None:
    """A warm-up of 0 updates is refused at construction, as optax refuses a one-cycle of 0 steps."""
    for factory in (S.linear_warmup, S.cosine_warmup):
        with pytest.raises(ValueError, match="warmup_steps"):
            factory(0)


# -------------------------------------------------------------------------------------------------
# join (1): optax's join_schedules switches at the boundary itself (count b is the next piece's 0)


def test_join_schedules() -> None:
    s = S.shift(S.join([S.constant(1.0), S.constant(2.0), S.constant(1.0)], [3, 6]), -1)
    assert values(s, range(7)) == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0]


# -------------------------------------------------------------------------------------------------
# the run: optax's first update uses the value at count 0; shift(s, 1) makes lrtune's do the same


@pytest.mark.parametrize(
    "make",
    [
        lambda: S.warmup_cosine(50, 100, final=0.1, start=0.2, exponent=2.0),
        lambda: S.shift(S.polynomial_decay(10, final=1 / 3, power=2.0), 4),
        lambda: S.join([S.cosine_warmup(2, start=0.1), S.cosine(3, final=0.001)], [2]),
    ],
)
def test_shift_by_one_reproduces_optax_run(make: Callable[[], Schedule]) -> None:
    s = make()
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = S.LRScheduler(opt, S.shift(s, 1))
    used = []
    for _ in range(20):
        used.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    assert used == [s(c) for c in range(20)]  # update c + 1 uses optax's value at count c
