"""Every optimizer × impl × dtype gives torch.optim's update for every memory layout.

torch's fused kernels walk a parameter, its gradient and its moments as flat arrays, so they are wrong when
those are not laid out alike (a strided-view parameter; a transposed or channels_last parameter whose gradient
was assigned contiguous). torch 2.13's own CPU ``fused=True`` shares that defect, so the peer here is torch's
multi-tensor path (``foreach=True``), which is right for any strides.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from helpers import CASE_IDS, CASES, Case

import lrtune
from lrtune.optim._fused import fusable

STEPS = 20  # RAdam (β2 = 0.999) rectifies from update 6 on: both of its branches run
IMPLS = ["auto", "fused", "foreach", "reference"]
TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 2e-5, "atol": 2e-6}}


def _values(layout: str, dtype: torch.dtype, gen: torch.Generator, device: str) -> torch.Tensor:
    """A tensor of ``layout`` on ``device``; its values are drawn in float64 and rounded, the same for every dtype."""

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    if layout == "contiguous":
        return draw(7, 5)
    if layout == "strided-view":
        return draw(7, 5, 2)[..., 0]  # every other element of a buffer: not dense
    if layout == "transposed":
        return draw(5, 7).t()
    if layout == "channels_last":
        return draw(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    raise AssertionError(layout)


LAYOUTS = ["contiguous", "strided-view", "transposed", "channels_last"]
GRADS = ["autograd", "assigned"]


def params_of(layout: str, dtype: torch.dtype, device: str = "cpu") -> list[torch.nn.Parameter]:
    """Two parameters of the layout (so that two-group cases have one each) and a contiguous bias."""
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(_values(layout, dtype, gen, device)) for _ in range(2)]
    bias = torch.randn(5, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    return [*ps, torch.nn.Parameter(bias)]


def same_layout_copy(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """Copies with the same strides (a strided view stays a view into a buffer of its own)."""
    copies = []
    for p in params:
        buffer = torch.zeros(p.untyped_storage().nbytes() // p.element_size(), dtype=p.dtype, device=p.device)
        base = buffer.as_strided(p.shape, p.stride(), p.storage_offset())
        base.copy_(p.detach())
        copies.append(torch.nn.Parameter(base))
        assert copies[-1].stride() == p.stride()
    return copies


def train_steps(
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    params: list[torch.nn.Parameter],
    grads: str,
    steps: int = STEPS,
) -> list[torch.nn.Parameter]:
    """``steps`` updates with the same gradient stream: computed by autograd (the gradient then takes the
    parameter's layout where it is dense) or assigned as contiguous tensors."""
    opt = make(params)
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        draws = [
            torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype) * 10.0 ** (t % 3 - 1)
            for p in params
        ]
        opt.zero_grad(set_to_none=True)
        if grads == "autograd":
            sum((p * d).sum() for p, d in zip(params, draws, strict=True)).backward()  # type: ignore[union-attr]
        else:
            for p, d in zip(params, draws, strict=True):
                p.grad = d.clone()
        opt.step()
    return params


@pytest.mark.parametrize("grads", GRADS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_layout_equals_torch_foreach(case: Case, impl: str, dtype: torch.dtype, layout: str, grads: str) -> None:
    ours = params_of(layout, dtype)
    peer = same_layout_copy(ours)
    train_steps(case.make(impl), ours, grads)
    train_steps(case.make_peer(foreach=True), peer, grads)
    for i, (a, b) in enumerate(zip(ours, peer, strict=True)):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m, i=i: f"parameter {i} ({layout}): {m}")


@pytest.mark.parametrize("grads", GRADS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("impl", ["auto", "foreach"])
@pytest.mark.parametrize("case", [c for c in CASES if c.group_options == [{}]], ids=lambda c: c.name)
def test_half_precision_is_as_close_to_float64_as_torch(
    case: Case, impl: str, dtype: torch.dtype, layout: str, grads: str
) -> None:
    """In half precision fused and multi-tensor paths round differently, so both are measured against the
    same run in float64: lrtune's error may not exceed torch foreach's by more than a few units of rounding.
    (With ε = 1e-8, which rounds to 0 in float16, torch's RAdam divides by zero: NaN is then as close as torch.)"""
    exact = train_steps(
        case.make("foreach"), [p.detach().double().requires_grad_() for p in params_of(layout, dtype)], grads
    )
    ours = train_steps(case.make(impl), params_of(layout, dtype), grads)
    peer = train_steps(case.make_peer(foreach=True), same_layout_copy(params_of(layout, dtype)), grads)
    for i, (a, b, x) in enumerate(zip(ours, peer, exact, strict=True)):
        ours_err = float((a.detach().double() - x.detach()).abs().max())
        peer_err = float((b.detach().double() - x.detach()).abs().max())
        slack = 8 * torch.finfo(dtype).eps * float(x.detach().abs().max())
        both_nan = math.isnan(ours_err) and math.isnan(peer_err)
        assert both_nan or ours_err <= 2 * (math.inf if math.isnan(peer_err) else peer_err) + slack, (
            f"parameter {i} ({layout}): {ours_err} vs torch's {peer_err}"
        )


def test_fusable_tells_layouts_apart() -> None:
    dense = torch.zeros(4, 6)
    cl = torch.zeros(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    view = torch.zeros(4, 6, 2)[..., 0]
    cases = [
        (dense, dense.clone(), {"exp_avg": torch.zeros_like(dense)}, True),
        (dense.t(), torch.zeros(6, 4), {}, False),  # transposed parameter, contiguous gradient
        (dense.t(), torch.zeros(4, 6).t(), {"exp_avg": torch.zeros_like(dense.t())}, True),
        (cl, torch.zeros_like(cl), {"exp_avg_sq": torch.zeros_like(cl)}, True),
        (cl, torch.zeros(2, 3, 4, 5), {}, False),
        (cl, torch.zeros_like(cl), {"exp_avg": torch.zeros(2, 3, 4, 5)}, False),  # state loaded contiguous
        (view, torch.zeros(4, 6), {}, False),
        (view, torch.zeros(4, 6, 2)[..., 0], {}, False),  # same strides, but not dense
        (torch.zeros(1, 6)[:, ::1], torch.zeros(1, 6), {"step": torch.tensor(3.0)}, True),
        (torch.zeros(3).expand(4, 3), torch.zeros(3).expand(4, 3), {}, False),  # overlapping
    ]
    for p, g, state, expected in cases:
        assert fusable([p], [g], [state]) == [expected], (p.stride(), g.stride())


def test_mixed_layouts_in_one_group_split_between_paths() -> None:
    """One group holding parameters of every layout: each takes its own path and all equal torch foreach."""
    params = [p for layout in LAYOUTS for p in params_of(layout, torch.float64)[:1]]
    peer = same_layout_copy(params)
    train_steps(lambda ps: lrtune.Adam(ps, lr=1e-2), params, "assigned")
    train_steps(lambda ps: torch.optim.Adam(ps, lr=1e-2, foreach=True), peer, "assigned")
    for layout, a, b in zip(LAYOUTS, params, peer, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=lambda m, layout=layout: f"{layout}: {m}")


def test_issue_reproducer_three_steps() -> None:
    """The reported case: a strided-view parameter, 3 steps at lr 1e-2, against torch.optim's default."""

    def run(make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> torch.Tensor:
        torch.manual_seed(0)
        w = torch.randn(10, 5, 2)[..., 0].requires_grad_(True)
        x = torch.randn(5)
        opt = make([w])
        for _ in range(3):
            opt.zero_grad()
            w.mv(x).pow(2).sum().backward()
            opt.step()
        return w.detach()

    pairs = [
        (lambda p: lrtune.Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False)),
        (lambda p: lrtune.AdamW(p, lr=1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2, foreach=False)),
        (lambda p: lrtune.RAdam(p, lr=1e-2), lambda p: torch.optim.RAdam(p, lr=1e-2, foreach=False)),
        (
            lambda p: lrtune.SGD(p, lr=1e-2, momentum=0.9),
            lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, foreach=False),
        ),
    ]
    for ours, peer in pairs:
        torch.testing.assert_close(run(ours), run(peer), rtol=1e-6, atol=1e-7)
