"""Gradient clipping inside step() and what a NaN/Inf gradient does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from helpers import CASE_IDS, CASES, Case, clone_params, gradient_stream, groups, make_params, run_pair, set_grads
from torch.utils._python_dispatch import TorchDispatchMode

import lrtune

OPTIMIZERS = [
    (lrtune.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (lrtune.Adam, torch.optim.Adam, {"lr": 0.01}),
    (lrtune.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    (lrtune.RAdam, torch.optim.RAdam, {"lr": 0.01}),
]
IDS = [o[0].__name__ for o in OPTIMIZERS]


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_clipping_equals_clip_grad_norm(ours: type, peer: type, kw: dict, impl: str) -> None:
    pa = make_params(torch.float64)
    pb = clone_params(pa)
    opt_a = ours(pa, max_grad_norm=1.0, impl=impl, **kw)
    opt_b = peer(pb, **kw)
    clipped = 0
    for grads in gradient_stream(pa, 200):
        set_grads(pa, grads)
        set_grads(pb, grads)
        opt_a.step()
        norm = torch.nn.utils.clip_grad_norm_([p for p in pb if p.grad is not None], 1.0)
        opt_b.step()
        assert torch.equal(opt_a.last_grad_norm, norm)
        clipped += bool(norm > 1.0)
    assert 0 < clipped < 200  # the stream has both clipped and unclipped steps
    for a, b in zip(pa, pb, strict=True):
        if impl == "foreach":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_clipping_is_global_over_groups() -> None:
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = lrtune.SGD([{"params": [p1]}, {"params": [p2], "lr": 1.0}], lr=1.0, max_grad_norm=5.0)
    p1.grad, p2.grad = torch.tensor([6.0]), torch.tensor([8.0])
    opt.step()
    assert float(opt.last_grad_norm) == pytest.approx(10.0)
    torch.testing.assert_close(p1.detach(), torch.tensor([-3.0]), rtol=1e-6, atol=0)
    torch.testing.assert_close(p2.detach(), torch.tensor([-4.0]), rtol=1e-6, atol=0)


def _snapshot(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> tuple:
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()["state"])


def _assert_same(a: tuple, b: tuple) -> None:
    for x, y in zip(a[0], b[0], strict=True):
        assert torch.equal(x, y)
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert a[1][k].keys() == b[1][k].keys()
        for key in a[1][k]:
            x, y = a[1][k][key], b[1][k][key]
            assert torch.equal(x, y) if torch.is_tensor(x) else x == y


def _bad(grads: list, value: float = float("nan")) -> list:
    """The same gradients with one element of the second parameter's set to ``value``."""
    grads = list(grads)
    grads[1] = grads[1].clone()
    grads[1][0] = value
    return grads


def _run(make: Any, stream: list, bad_at: set[int], params: list[torch.nn.Parameter] | None = None) -> tuple:
    """Train on ``stream``, replacing the gradients of the steps in ``bad_at`` by non-finite ones."""
    params = make_params(torch.float32) if params is None else params
    opt = make(params)
    for i, grads in enumerate(stream):
        set_grads(params, _bad(grads) if i in bad_at else grads)
        opt.step()
    return params, opt


IMPLS = ["auto", "foreach", "reference"]


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad_at", [0, 3, 8], ids=["first-step", "unrectified", "later"])
@pytest.mark.parametrize("clip", [1.0, None])  # the check with clipping, and alone
def test_skipped_step_leaves_no_trace(
    ours: type, peer: type, kw: dict, impl: str, bad_at: int, clip: float | None
) -> None:
    """A run with a bad step skipped equals, bit for bit, the run that never had that step: parameters, every state
    tensor (moments, step counts; at the first step: no state at all) and every later update. The first step's
    state is created before the check is read and rolled back; RAdam's steps 1-5 take the multi-tensor path (the
    flag is read at once), later ones the fused kernels (the flag is read at the next step)."""
    stream = list(gradient_stream(make_params(torch.float32), 12))
    make = lambda ps: ours(ps, nonfinite="skip", max_grad_norm=clip, impl=impl, **kw)  # noqa: E731
    with_bad, opt = _run(make, stream, {bad_at})
    clean_stream = stream[:bad_at] + stream[bad_at + 1 :]
    without, clean = _run(make, clean_stream, set())
    assert opt.skipped_steps == 1 and clean.skipped_steps == 0
    _assert_same(_snapshot(opt, with_bad), _snapshot(clean, without))
    assert opt.state_dict()["skipped_steps"] == 1


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_skip_leaves_everything_untouched(ours: type, peer: type, kw: dict, bad: float) -> None:
    params = make_params(torch.float32)
    opt = ours(params, nonfinite="skip", **kw)
    stream = gradient_stream(params, 10)
    for _ in range(7):
        set_grads(params, next(stream))
        opt.step()
    before = _snapshot(opt, params)
    set_grads(params, _bad(next(stream), bad))
    opt.step()
    _assert_same(before, _snapshot(opt, params))
    assert opt.skipped_steps == 1
    assert not torch.isfinite(opt.last_grad_norm)


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("impl", ["auto", "foreach"])
def test_nonfinite_raise_is_deferred_to_the_next_step(ours: type, peer: type, kw: dict, impl: str) -> None:
    """nonfinite="raise": the bad step is skipped (on the device, without a host read in that step) and the next
    step() raises before changing anything; caught, training goes on as if the bad step had never been."""
    stream = list(gradient_stream(make_params(torch.float32), 12))
    params = make_params(torch.float32)
    opt = ours(params, impl=impl, **kw)
    for grads in stream[:7]:
        set_grads(params, grads)
        opt.step()
    before = _snapshot(opt, params)
    set_grads(params, _bad(stream[7]))
    opt.step()  # returns: the error is raised by the next call
    set_grads(params, stream[8])
    with pytest.raises(FloatingPointError, match=r"non-finite gradient .* at the last step, which was skipped"):
        opt.step()
    _assert_same(before, _snapshot(opt, params))  # neither the bad step nor the raising one changed anything
    assert opt.skipped_steps == 0  # raised steps are not counted as skipped
    for grads in stream[8:]:  # the error was raised once: the same gradients now make an ordinary step
        set_grads(params, grads)
        opt.step()
    without, clean = _run(lambda ps: ours(ps, impl=impl, **kw), stream[:7] + stream[8:], set())
    _assert_same(_snapshot(opt, params), _snapshot(clean, without))


@pytest.mark.parametrize("read", ["last_grad_norm", "skipped_steps"])
def test_nonfinite_raise_when_the_norm_or_the_count_is_read(read: str) -> None:
    params = make_params(torch.float32)
    opt = lrtune.Adam(params)
    set_grads(params, next(gradient_stream(params, 1)))
    opt.step()
    before = _snapshot(opt, params)
    params[0].grad = torch.full_like(params[0], float("nan"))
    opt.step()
    _assert_same(before, _snapshot(opt, params))  # state_dict() reads the check but does not raise...
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        getattr(opt, read)  # ... reading the norm or the count does
    assert opt.skipped_steps == 0 and not torch.isfinite(opt.last_grad_norm)  # raised once
    opt.step()  # the same NaN gradient again: skipped, and raised at the next read
    opt.load_state_dict(before_sd := copy.deepcopy(opt.state_dict()))  # loading a state discards a pending error
    assert opt.state_dict()["state"].keys() == before_sd["state"].keys()
    params[0].grad = torch.ones_like(params[0])
    opt.step()
    assert float(opt.last_grad_norm) > 0


def test_nonfinite_ignore_computes_no_norm() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = lrtune.SGD([p], lr=0.1, nonfinite="ignore")
    p.grad = torch.ones(2)
    opt.step()
    assert opt.last_grad_norm is None


class _CountOps(TorchDispatchMode):
    """Counts the aten operations run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _ops_of_one_step(make: Any, n: int, groups: int = 1) -> list[str]:
    params = [torch.nn.Parameter(torch.randn(3)) for _ in range(n)]
    opt = make([{"params": params[i::groups]} for i in range(groups)])
    for _ in range(8):  # past RAdam's un-rectified steps
        for p in params:
            p.grad = torch.randn(3)
        opt.step()
    with _CountOps() as counter:
        opt.step()
    return counter.ops


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("nonfinite", ["raise", "skip"])
def test_default_step_is_per_group_and_reads_nothing_back(ours: type, peer: type, kw: dict, nonfinite: str) -> None:
    """The default step's device work is a fixed number of multi-tensor operations per group, whatever the number
    of parameters (no per-parameter step counts, norms moved or values read), and no value goes back to the host
    within the step (no ``aten._local_scalar_dense``, what ``.item()`` runs: a GPU synchronisation). (On a CPU a
    gradient of 64 Ki elements or more has its squared norm taken by a BLAS dot of its own: see the tests of
    ``_check_norm`` below; these gradients are smaller.)"""
    make = lambda ps: ours(ps, nonfinite=nonfinite, **kw)  # noqa: E731
    few, many = _ops_of_one_step(make, 4), _ops_of_one_step(make, 64)
    assert few == many
    assert "aten._local_scalar_dense.default" not in many
    assert len(_ops_of_one_step(make, 64, groups=2)) > len(many)  # per group


def test_multi_tensor_path_reads_the_flag_at_once() -> None:
    """impl="foreach" cannot read a device flag, so its step reads it on the host (a sync on a GPU)."""
    ops = _ops_of_one_step(lambda ps: lrtune.Adam(ps, impl="foreach"), 8)
    assert ops.count("aten._local_scalar_dense.default") == 1


SGDW = Case(
    "sgdw",
    lrtune.SGD,
    torch.optim.SGD,
    {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.1, "decoupled_weight_decay": True},
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", [*CASES, SGDW], ids=[*CASE_IDS, "sgdw"])
def test_the_check_does_not_change_the_update(case: Case, dtype: torch.dtype) -> None:
    """With finite gradients, the default (the kernels gated by the device flag) and nonfinite="skip" give exactly
    the update of nonfinite="ignore" (no flag), on the default path."""
    runs = []
    for nonfinite in ("ignore", "raise", "skip"):
        make = lambda ps, nonfinite=nonfinite: case.ours(  # noqa: E731
            groups(ps, case.group_options), nonfinite=nonfinite, **case.kwargs
        )
        params, _, _, _ = run_pair(make, make, dtype, 30)
        runs.append(params)
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert torch.equal(a, b)


def _exact_norm(grads: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum(((g.to(torch.float64).abs()) ** 2).sum() for g in grads)))  # type: ignore[arg-type]


def test_check_norm_on_a_cpu_is_the_l2_norm_of_every_kind_of_gradient() -> None:
    """The non-finite check's norm on a CPU (a BLAS dot per large contiguous float gradient, one multi-tensor call
    for the rest) is the global L2 norm: checked against a float64 sum of squares over large, small,
    non-contiguous, float64 and bfloat16 gradients, and against ``_foreach_norm``'s own value."""
    from lrtune.optim._optimizer import _DOT_MIN_NUMEL, _check_norm, _global_norm

    g = torch.Generator().manual_seed(0)
    grads = [
        torch.randn(_DOT_MIN_NUMEL * 4, generator=g) * 3,  # dot
        torch.randn(512, 256, generator=g),  # dot (2-D, contiguous)
        torch.randn(300, 400, generator=g).t(),  # large but not contiguous: multi-tensor call
        torch.randn(7, generator=g),  # small: multi-tensor call
        torch.randn(_DOT_MIN_NUMEL, generator=g, dtype=torch.float64),  # dot in float64
    ]
    assert float(_check_norm(grads)) == pytest.approx(_exact_norm(grads), rel=1e-6)
    assert _check_norm(grads).dtype == torch.float32
    # bfloat16 is not a dot dtype: it keeps the multi-tensor call (and its bfloat16 rounding), as before
    grads.append(torch.randn(_DOT_MIN_NUMEL, generator=g).to(torch.bfloat16))
    assert float(_check_norm(grads)) == pytest.approx(float(_global_norm(grads)), rel=1e-5)
    assert float(_check_norm(grads)) == pytest.approx(_exact_norm(grads), rel=1e-3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e20])
@pytest.mark.parametrize("where", ["large", "small"])
def test_check_norm_flags_what_foreach_norm_flags(bad: float, where: str) -> None:
    """A NaN or infinite element anywhere gives a non-finite norm, as with ``_foreach_norm``, and so does a finite
    element whose square overflows float32 (1e20): neither rescales, so both flag exactly the same steps."""
    from lrtune.optim._optimizer import _DOT_MIN_NUMEL, _check_norm, _global_norm

    grads = [torch.ones(_DOT_MIN_NUMEL * 2), torch.ones(5)]
    grads[0 if where == "large" else 1][3] = bad
    assert not torch.isfinite(_check_norm(grads))
    assert not torch.isfinite(_global_norm(grads))


def test_default_step_skips_a_nan_in_a_large_cpu_gradient() -> None:
    """End to end through the CPU dot path: a NaN in a large gradient skips the step, parameters and state as they
    were, and raises at the next step."""
    from lrtune.optim._optimizer import _DOT_MIN_NUMEL

    p = torch.nn.Parameter(torch.ones(_DOT_MIN_NUMEL * 2))
    for nonfinite in ("skip", "raise"):
        opt = lrtune.Adam([p], lr=0.1, nonfinite=nonfinite)
        p.grad = torch.ones_like(p)
        opt.step()
        before, state = p.detach().clone(), copy.deepcopy(opt.state[p])
        p.grad[12345] = float("nan")
        opt.step()
        assert torch.equal(p.detach(), before)
        if nonfinite == "skip":
            assert opt.skipped_steps == 1
            assert all(torch.equal(state[k], opt.state[p][k]) for k in state)
        else:
            with pytest.raises(FloatingPointError):
                opt.step()
            assert torch.equal(p.detach(), before)
