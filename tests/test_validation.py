"""Every invalid argument raises at construction (sparse gradients: at the first step), naming itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import lrtune
from lrtune.optim import EMA, RMS, AdaptiveOptimizer, HeavyBall, Rectified


def _p() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2))]


BAD: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("lr<0", lambda: lrtune.Adam(_p(), lr=-1.0), ValueError, "lr .*-1.0"),
    ("lr nan", lambda: lrtune.SGD(_p(), lr=float("nan")), ValueError, "lr .*nan"),
    ("lr str", lambda: lrtune.RAdam(_p(), lr="0.1"), TypeError, "lr .*'0.1'"),
    ("beta1", lambda: lrtune.Adam(_p(), betas=(1.0, 0.999)), ValueError, r"betas\[0\] .*1.0"),
    ("beta2", lambda: lrtune.RAdam(_p(), betas=(0.9, 1.2)), ValueError, r"betas\[1\] .*1.2"),
    ("beta2<0", lambda: lrtune.AdamW(_p(), betas=(0.9, -0.1)), ValueError, r"betas\[1\] .*-0.1"),
    ("betas shape", lambda: lrtune.Adam(_p(), betas=(0.9,)), ValueError, r"betas .*\(0.9,\)"),
    ("eps=0", lambda: lrtune.Adam(_p(), eps=0.0), ValueError, "eps .*0.0"),
    ("eps<0", lambda: lrtune.RAdam(_p(), eps=-1e-8), ValueError, "eps .*-1e-08"),
    ("wd<0", lambda: lrtune.AdamW(_p(), weight_decay=-0.1), ValueError, "weight_decay .*-0.1"),
    ("momentum", lambda: lrtune.SGD(_p(), momentum=-0.5), ValueError, "momentum .*-0.5"),
    ("dampening", lambda: lrtune.SGD(_p(), momentum=0.9, dampening=1.5), ValueError, "dampening .*1.5"),
    ("nesterov", lambda: lrtune.SGD(_p(), nesterov=True), ValueError, "nesterov"),
    ("threshold", lambda: lrtune.RAdam(_p(), threshold=3.0), ValueError, "threshold .*3.0"),
    ("degenerate", lambda: lrtune.RAdam(_p(), degenerate="adam"), ValueError, "degenerate .*'adam'"),
    ("impl", lambda: lrtune.Adam(_p(), impl="cuda"), ValueError, "impl .*'cuda'"),
    ("nonfinite", lambda: lrtune.Adam(_p(), nonfinite="zero"), ValueError, "nonfinite .*'zero'"),
    ("max_grad_norm", lambda: lrtune.SGD(_p(), max_grad_norm=0.0), ValueError, "max_grad_norm .*0.0"),
    ("maximize", lambda: lrtune.SGD(_p(), maximize="yes"), TypeError, "maximize .*'yes'"),
    ("group lr", lambda: lrtune.Adam([{"params": _p(), "lr": -2.0}]), ValueError, "lr .*-2.0"),
    ("group betas", lambda: lrtune.RAdam([{"params": _p(), "betas": (0.9, 1.0)}]), ValueError, r"betas\[1\] .*1.0"),
    ("complex", lambda: lrtune.Adam([torch.nn.Parameter(torch.zeros(2, dtype=torch.cfloat))]), TypeError, "complex"),
    ("integer", lambda: lrtune.SGD([torch.zeros(2, dtype=torch.int64)]), TypeError, "floating-point"),
    ("phi", lambda: AdaptiveOptimizer(_p(), momentum=RMS()), TypeError, "momentum .*RMS"),
    ("psi", lambda: AdaptiveOptimizer(_p(), adaptive=EMA()), TypeError, "adaptive .*EMA"),
    ("EMA", lambda: EMA(beta1=2.0), ValueError, "beta1 .*2.0"),
    ("HeavyBall", lambda: HeavyBall(momentum=1.0), ValueError, "momentum .*1.0"),
    ("Rectified", lambda: Rectified(degenerate="x"), ValueError, "degenerate .*'x'"),
    (
        "fused custom",
        lambda: AdaptiveOptimizer(_p(), momentum=HeavyBall(), adaptive=RMS(), impl="fused"),
        ValueError,
        "impl='fused'",
    ),
    ("amsgrad", lambda: lrtune.Adam([{"params": _p(), "amsgrad": True}]), ValueError, "amsgrad"),
]


@pytest.mark.parametrize(("make", "error", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_argument_raises_with_its_name(make: Callable[[], Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make()


def test_invalid_group_added_later_raises() -> None:
    opt = lrtune.Adam(_p())
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": _p(), "eps": -1.0})


def test_sparse_gradient_raises_at_first_step() -> None:
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = lrtune.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse gradients"):
        opt.step()
