"""Gradient clipping inside step() and what a NaN/Inf gradient does."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import clone_params, gradient_stream, make_params, set_grads

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
        for key in a[1][k]:
            x, y = a[1][k][key], b[1][k][key]
            assert torch.equal(x, y) if torch.is_tensor(x) else x == y


@pytest.mark.parametrize(("ours", "peer", "kw"), OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("clip", [1.0, None])  # the check with clipping, and alone
def test_nonfinite_skip_leaves_everything_untouched(
    ours: type, peer: type, kw: dict, bad: float, clip: float | None
) -> None:
    params = make_params(torch.float32)
    opt = ours(params, nonfinite="skip", max_grad_norm=clip, **kw)
    stream = gradient_stream(params, 10)
    for _ in range(5):
        set_grads(params, next(stream))
        opt.step()
    before = _snapshot(opt, params)
    grads = next(stream)
    grads[1] = grads[1].clone()
    grads[1][0] = bad
    set_grads(params, grads)
    opt.step()
    _assert_same(before, _snapshot(opt, params))
    assert opt.skipped_steps == 1
    assert not torch.isfinite(opt.last_grad_norm)
    set_grads(params, next(stream))
    opt.step()
    assert float(opt.state[params[0]]["step"]) == 6
    assert opt.state_dict()["skipped_steps"] == 1


def test_nonfinite_raise_is_clear_and_harmless() -> None:
    params = make_params(torch.float32)
    opt = lrtune.Adam(params)
    set_grads(params, next(gradient_stream(params, 1)))
    opt.step()
    before = _snapshot(opt, params)
    params[0].grad = torch.full_like(params[0], float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        opt.step()
    _assert_same(before, _snapshot(opt, params))


def test_nonfinite_ignore_computes_no_norm() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = lrtune.SGD([p], lr=0.1, nonfinite="ignore")
    p.grad = torch.ones(2)
    opt.step()
    assert opt.last_grad_norm is None
