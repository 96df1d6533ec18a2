"""Every optimizer (and implementation) actually optimizes: Rosenbrock and a least-squares regression."""

from __future__ import annotations

import pytest
import torch

import lrtune

OPTS = [
    ("sgd", lambda ps, impl: lrtune.SGD(ps, lr=1e-3, momentum=0.9, max_grad_norm=10.0, impl=impl), 3000),
    ("adam", lambda ps, impl: lrtune.Adam(ps, lr=2e-2, impl=impl), 3000),
    ("adamw", lambda ps, impl: lrtune.AdamW(ps, lr=2e-2, weight_decay=1e-4, impl=impl), 3000),
    # RAdam's un-rectified first steps are plain momentum steps: on Rosenbrock (|g| ~ 1e3 at the start)
    # lr = 2e-2 diverges there, so the default takes a smaller lr; degenerate="skip" tolerates the larger one.
    ("radam", lambda ps, impl: lrtune.RAdam(ps, lr=1e-2, impl=impl), 6000),
    ("radam-skip", lambda ps, impl: lrtune.RAdam(ps, lr=2e-2, degenerate="skip", impl=impl), 3000),
]


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


@pytest.mark.parametrize(("name", "make", "steps"), OPTS, ids=[o[0] for o in OPTS])
@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_rosenbrock(name: str, make, steps: int, impl: str) -> None:  # type: ignore[no-untyped-def]
    xy = torch.nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
    opt = make([xy], impl)
    start = rosenbrock(xy).item()
    for _ in range(steps):
        opt.zero_grad()
        rosenbrock(xy).backward()
        opt.step()
    assert rosenbrock(xy).item() < 1e-3 * start
    torch.testing.assert_close(xy.detach(), torch.ones(2, dtype=torch.float64), atol=0.05, rtol=0)


@pytest.mark.parametrize(("name", "make", "steps"), OPTS, ids=[o[0] for o in OPTS])
def test_linear_regression(name: str, make, steps: int) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    w_true = torch.randn(8, 1, generator=g)
    y = x @ w_true + 0.01 * torch.randn(256, 1, generator=g)
    model = torch.nn.Linear(8, 1)
    opt = make(model.parameters(), "auto")
    best = torch.linalg.lstsq(torch.cat([x, torch.ones(256, 1)], 1), y).solution
    optimum = torch.mean((torch.cat([x, torch.ones(256, 1)], 1) @ best - y) ** 2).item()
    for _ in range(steps // 3):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
    assert loss.item() < optimum + 1e-3
