"""lrtune.schedules.LRScheduler: the torch scheduler protocol, counting applied updates, exact resume."""

from __future__ import annotations

import copy
import io
import math
import warnings
from collections.abc import Callable

import pytest
import torch

import lrtune
from lrtune import schedules as S


def _opt(lr: float = 1.0, groups: int = 1, **kw: object) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    ps = [torch.nn.Parameter(torch.zeros(3)) for _ in range(groups)]
    opt = lrtune.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr, **kw)  # type: ignore[arg-type]
    return ps, opt


def _lrs_used(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, ps: list, n: int) -> list:
    """The LR of each of ``n`` updates (read just before optimizer.step())."""
    used = []
    for _ in range(n):
        used.append([g["lr"] for g in opt.param_groups])
        for p in ps:
            p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    return used


def _roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_update_t_uses_base_lr_times_f_t() -> None:
    ps, opt = _opt(lr=0.5, groups=2)
    schedule = S.warmup_cosine(5, 20, final=0.1)
    used = _lrs_used(opt, S.LRScheduler(opt, schedule), ps, 25)
    for t, lrs in enumerate(used, start=1):
        assert lrs == [0.5 * schedule(t), 1.0 * schedule(t)]


def test_absolute_schedule_ignores_base_lr() -> None:
    ps, opt = _opt(lr=123.0, groups=2)
    schedule = S.noam(512, 4)
    used = _lrs_used(opt, S.LRScheduler(opt, schedule), ps, 6)
    assert used == [[schedule(t)] * 2 for t in range(1, 7)]


def test_get_last_lr_and_torch_protocol() -> None:
    ps, opt = _opt(lr=0.1)
    sched = lrtune.warmup_linear_decay(opt, warmup_steps=2, total_steps=10)
    # What Hugging Face's Trainer and Lightning rely on: a torch LRScheduler bound to this optimizer whose
    # step() takes no argument, with get_last_lr() and a state dict that torch.load(weights_only=True) reads.
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert sched.optimizer is opt
    assert sched.get_last_lr() == [pytest.approx(0.05)]
    ps[0].grad = torch.ones(3)
    opt.step()
    sched.step()
    assert sched.get_last_lr() == [pytest.approx(0.1)]
    sd = _roundtrip(sched.state_dict())
    assert sd["schedule"] == S.warmup_linear_decay(2, 10).to_spec()
    assert sd["applied_updates"] == 1


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_gradient_accumulation_follows_applied_updates() -> None:
    """scheduler.step() on every micro-batch (a common mistake) does not advance the schedule."""
    ps, opt = _opt()
    schedule = S.warmup_linear_decay(3, 12)
    sched = S.LRScheduler(opt, schedule)
    used = []
    for _ in range(10):
        used.append(opt.param_groups[0]["lr"])
        for micro in range(4):
            ps[0].grad = torch.ones(3)
            if micro == 3:
                opt.step()
            sched.step()
    assert used == [schedule(t) for t in range(1, 11)]


def _record_lrs_used(opt: torch.optim.Optimizer) -> list[float]:
    """The LR each step() call runs with: read by a pre-step hook registered after the scheduler's."""
    used: list[float] = []
    opt.register_step_pre_hook(lambda o, args, kwargs: used.append(o.param_groups[0]["lr"]))
    return used


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("impl", ["auto", "foreach"])
def test_skipped_nonfinite_steps_do_not_advance_the_schedule(momentum: float, impl: str) -> None:
    """lrtune's optimizer reads a step's check at the next step(); the scheduler's pre-step hook then puts the LR
    of a skipped step back, so every applied update t runs with f(t) (a skipped step runs with the LR of the
    update it would have been)."""
    ps, opt = _opt(nonfinite="skip", momentum=momentum, impl=impl)
    schedule = S.linear_warmup(10)
    sched = S.LRScheduler(opt, schedule)
    used = _record_lrs_used(opt)
    for i in range(8):
        ps[0].grad = torch.full((3,), float("nan")) if i in (2, 3, 6) else torch.ones(3)
        opt.step()
        sched.step()
    assert opt.skipped_steps == 3
    assert sched.applied_updates == 5
    assert used == [schedule(t) for t in (1, 2, 3, 3, 3, 4, 5, 5)]
    assert sched.state_dict()["applied_updates"] == 5


def test_raised_steps_caught_and_continued_do_not_advance_the_schedule() -> None:
    ps, opt = _opt()  # nonfinite="raise"
    schedule = S.linear_warmup(10)
    sched = S.LRScheduler(opt, schedule)
    used = _record_lrs_used(opt)
    raised = 0
    for i in range(6):
        ps[0].grad = torch.full((3,), float("nan")) if i == 2 else torch.ones(3)
        try:
            opt.step()
        except FloatingPointError:  # raised at the step after the bad one, which then did nothing
            raised += 1
            opt.step()  # the same (finite) gradient again
        sched.step()
    assert raised == 1
    assert sched.applied_updates == 5
    # Calls: 1, 2, 3 (bad), 4 (raises, before its update), 4 again, 5, 6.
    assert used == [schedule(t) for t in (1, 2, 3, 3, 3, 4, 5)]


def test_grad_scaler_skips_do_not_advance_the_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=1.0)
    schedule = S.linear_warmup(10)
    sched = S.LRScheduler(opt, schedule)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
    used = []
    for i in range(6):
        used.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = (p * (float("inf") if i == 2 else 1.0)).sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
    assert sched.applied_updates == 5
    assert used == [schedule(t) for t in (1, 2, 3, 3, 4, 5)]


def _train(steps: int, start: dict | None = None) -> tuple[torch.nn.Module, lrtune.Adam, S.LRScheduler, list]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = lrtune.Adam(model.parameters(), lr=1e-2)
    sched = lrtune.warmup_linear_decay(opt, warmup_steps=10, total_steps=100)
    first = 0
    if start is not None:
        model.load_state_dict(start["model"])
        opt.load_state_dict(start["optimizer"])
        sched.load_state_dict(start["scheduler"])
        first = start["step"]
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)) for _ in range(100)]
    lrs = []
    for x, y in data[first : first + steps]:
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return model, opt, sched, lrs


def test_resume_is_bit_identical() -> None:
    full_model, _, _, full_lrs = _train(100)
    model, opt, sched, first_lrs = _train(40)
    checkpoint = _roundtrip(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": 40}
    )
    resumed_model, _, _, rest_lrs = _train(60, start=checkpoint)
    assert first_lrs + rest_lrs == full_lrs
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def _state_after(schedule: S.Schedule, updates: int) -> dict:
    ps, opt = _opt()
    sched = S.LRScheduler(opt, schedule)
    _lrs_used(opt, sched, ps, updates)
    return copy.deepcopy(sched.state_dict())


def test_changed_schedule_on_resume_raises() -> None:
    state = _state_after(S.warmup_linear_decay(10, 100), 30)
    _, opt = _opt()
    with pytest.raises(ValueError, match=r"differs from this scheduler's .* at update"):
        S.LRScheduler(opt, S.warmup_linear_decay(10, 200)).load_state_dict(state)


def test_changed_schedule_allowed_explicitly() -> None:
    state = _state_after(S.warmup_linear_decay(10, 100), 30)
    _ps, opt = _opt()
    sched = S.LRScheduler(opt, S.warmup_linear_decay(10, 200), allow_schedule_change=True)
    sched.load_state_dict(state)
    assert sched.applied_updates == 30
    assert sched.schedule == S.warmup_linear_decay(10, 200)


def test_wsd_extends_its_stable_phase_without_a_jump() -> None:
    """A run in WSD's stable phase can be extended to a longer total: the past and the next LR agree."""
    state = _state_after(S.wsd(10, 100, 20), 50)
    ps, opt = _opt()
    longer = S.wsd(10, 300, 20)
    sched = S.LRScheduler(opt, longer)
    sched.load_state_dict(state)
    assert sched.applied_updates == 50
    used = _lrs_used(opt, sched, ps, 3)
    assert [u[0] for u in used] == [1.0, 1.0, 1.0]
    # ... but not once the cool-down has started.
    state = _state_after(S.wsd(10, 100, 20), 115)
    _, opt = _opt()
    with pytest.raises(ValueError, match="differs"):
        S.LRScheduler(opt, longer).load_state_dict(state)


def test_spec_dict_accepted_and_bad_optimizer_rejected() -> None:
    ps, opt = _opt()
    sched = S.LRScheduler(opt, {"name": "warmup_linear_decay", "warmup_steps": 4, "total_steps": 8})
    assert sched.schedule == S.warmup_linear_decay(4, 8)
    assert math.isclose(opt.param_groups[0]["lr"], 0.25)
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        S.LRScheduler(ps, S.constant())  # type: ignore[arg-type]


@pytest.mark.parametrize("beta2", [0.98, 0.999])
def test_radam_is_adam_with_the_rectification_as_warmup(beta2: float) -> None:
    """RAdam (skipping its un-rectified steps) = Adam whose LR follows r_t, up to where ε is added."""
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(50, dtype=torch.float64, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    radam = lrtune.RAdam([a], lr=1e-2, betas=(0.9, beta2), eps=1e-30, degenerate="skip")
    adam = lrtune.Adam([b], lr=1e-2, betas=(0.9, beta2), eps=1e-30)
    sched = S.LRScheduler(adam, S.rectification(beta2))
    moved = 0
    for _ in range(300):
        grad = torch.randn(50, dtype=torch.float64, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        before = a.detach().clone()
        radam.step()
        adam.step()
        sched.step()
        moved += not torch.equal(before, a)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert moved == 300 - 5  # ρ_t ≤ 5 for the first 5 steps with either β2: no move, in both


# -------------------------------------------------------------------------------------------------
# stepped less often than the optimizer updates


def _staircase_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "staircase" in str(w.message)]


def test_stepping_once_per_epoch_warns_once() -> None:
    """Lightning's default interval="epoch" steps the scheduler once per epoch: the schedule, indexed by updates,
    turns into a staircase. The second update of the first epoch already runs on a stale LR: warned there, once."""
    ps, opt = _opt()
    sched = S.LRScheduler(opt, S.warmup_linear_decay(10, 100))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _epoch in range(3):
            for _batch in range(5):
                ps[0].grad = torch.ones(3)
                opt.step()
                if _epoch == 0 and _batch == 1:
                    assert len(_staircase_warnings(record)) == 1  # at the second update
            sched.step()
    (message,) = _staircase_warnings(record)
    assert "update 2 is about to use the learning rate set for update 1" in message
    assert "interval='step'" in message and sched.warned_staircase


def _no_staircase(loop: Callable[[], None]) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loop()
    assert _staircase_warnings(record) == []


def test_no_staircase_warning_for_the_standard_loop_accumulation_skips_and_resume() -> None:
    def standard() -> None:
        ps, opt = _opt()
        _lrs_used(opt, S.LRScheduler(opt, S.warmup_linear_decay(3, 20)), ps, 20)

    def accumulation() -> None:  # scheduler.step() on every micro-batch, the optimizer every 4th
        ps, opt = _opt()
        sched = S.LRScheduler(opt, S.warmup_linear_decay(3, 20))
        for micro in range(40):
            ps[0].grad = torch.ones(3)
            if micro % 4 == 3:
                opt.step()
            sched.step()

    def skipped() -> None:  # nonfinite="skip" steps and GradScaler-skipped steps
        ps, opt = _opt(nonfinite="skip")
        sched = S.LRScheduler(opt, S.linear_warmup(10))
        for i in range(10):
            ps[0].grad = torch.full((3,), float("nan")) if i % 3 == 1 else torch.ones(3)
            opt.step()
            sched.step()
        p = torch.nn.Parameter(torch.zeros(3))
        torch_opt = torch.optim.SGD([p], lr=1.0)
        sched = S.LRScheduler(torch_opt, S.linear_warmup(10))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
        for i in range(6):
            torch_opt.zero_grad()
            scaler.scale((p * (float("inf") if i == 2 else 1.0)).sum()).backward()
            scaler.step(torch_opt)
            scaler.update()
            sched.step()

    def resumed() -> None:  # a fresh optimizer and scheduler restored mid-run, then the standard loop
        _model, opt, sched, _ = _train(30)
        state = _roundtrip({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
        _train(20, start={"model": _model.state_dict(), **state, "step": 30})

    for loop in (standard, accumulation, skipped, resumed):
        _no_staircase(loop)


# -------------------------------------------------------------------------------------------------
# schedules that read each param group's hyper-parameters


def test_group_bound_schedules_read_each_groups_beta2_and_resume() -> None:
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    groups = [{"params": [params[0]], "betas": (0.9, 0.98)}, {"params": [params[1]], "betas": (0.9, 0.999)}]
    opt = lrtune.Adam(groups, lr=1e-3)
    schedule = S.product(S.untuned_warmup(), S.rectification(None, threshold=4.0))
    sched = S.LRScheduler(opt, schedule)
    used = []
    for _ in range(30):
        used.append([g["lr"] for g in opt.param_groups])
        for p in params:
            p.grad = torch.ones(2)
        opt.step()
        sched.step()

    def f(beta2: float, t: int) -> float:
        return S.untuned_warmup(beta2)(t) * S.rectification(beta2, threshold=4.0)(t)

    assert used == [[1e-3 * f(b, t) for b in (0.98, 0.999)] for t in range(1, 31)]
    state = _roundtrip(sched.state_dict())
    assert state["schedule"] == schedule.to_spec()
    fresh = [{**g, "params": [torch.nn.Parameter(torch.zeros(2))]} for g in groups]
    resumed = S.LRScheduler(lrtune.Adam(fresh, lr=1e-3), schedule)
    resumed.load_state_dict(state)
    assert resumed.applied_updates == 30
    assert resumed.get_last_lr() == [1e-3 * f(b, 31) for b in (0.98, 0.999)]


def test_group_bound_schedule_on_an_optimizer_without_betas_fails_at_construction() -> None:
    _, opt = _opt()  # SGD: no betas
    with pytest.raises(ValueError, match=r"untuned_warmup without beta2 reads each param group's betas\[1\]"):
        S.LRScheduler(opt, S.untuned_warmup())
