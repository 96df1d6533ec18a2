"""Every invalid argument raises at construction (sparse gradients: at the first step), naming itself.

Hyper-parameters are checked before ``params`` is read, as torch.optim does: ``RAdam(None, lr=-0.01)`` raises the
ValueError about ``lr``, not torch's TypeError about ``params`` (the cases torch-optimizer's own suite checks).
"""

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
    ("eps nan", lambda: lrtune.Adam(_p(), eps=float("nan")), ValueError, "eps .*nan"),
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


# With params=None: the hyper-parameter's error comes first.
BEFORE_PARAMS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("radam lr", lambda: lrtune.RAdam(None, lr=-0.01), ValueError, "lr .*-0.01"),  # type: ignore[arg-type]
    ("sgd lr", lambda: lrtune.SGD(None, lr=-0.01), ValueError, "lr .*-0.01"),  # type: ignore[arg-type]
    ("eps", lambda: lrtune.RAdam(None, lr=0.1, eps=-0.1), ValueError, "eps .*-0.1"),  # type: ignore[arg-type]
    ("wd", lambda: lrtune.SGD(None, lr=0.1, weight_decay=-0.1), ValueError, "weight_decay .*-0.1"),  # type: ignore[arg-type]
    ("beta0", lambda: lrtune.RAdam(None, lr=0.1, betas=(-1, 0.999)), ValueError, r"betas\[0\] .*-1"),  # type: ignore[arg-type]
    ("beta1", lambda: lrtune.Adam(None, lr=0.1, betas=(0.9, -0.999)), ValueError, r"betas\[1\] .*-0.999"),  # type: ignore[arg-type]
    ("momentum", lambda: lrtune.SGD(None, lr=0.1, momentum=-1.0), ValueError, "momentum .*-1.0"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("make", "error", "pattern"), [b[1:] for b in BEFORE_PARAMS], ids=[b[0] for b in BEFORE_PARAMS]
)
def test_hyperparameters_are_checked_before_params(
    make: Callable[[], Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        make()


def test_valid_hyperparameters_with_bad_params_raise_torchs_error() -> None:
    with pytest.raises(TypeError, match="not iterable"):
        lrtune.RAdam(None, lr=0.01)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ours", "peer"), [(lrtune.Adam, torch.optim.Adam), (lrtune.RAdam, torch.optim.RAdam)])
@pytest.mark.parametrize("impl", ["auto", "foreach"])
def test_eps_zero_is_accepted_as_by_torch(ours: type, peer: type, impl: str) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(6, 3, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = ours([a], lr=1e-2, eps=0.0, impl=impl), peer([b], lr=1e-2, eps=0.0)
    for _ in range(20):
        grad = torch.randn(6, 3, generator=g)
        a.grad, b.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert torch.isfinite(a).all()


@pytest.mark.parametrize(("make", "error", "pattern"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_argument_raises_with_its_name(make: Callable[[], Any], error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make()


def test_invalid_group_added_later_raises() -> None:
    opt = lrtune.Adam(_p())
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": _p(), "eps": -1.0})


@pytest.mark.parametrize("cls", [lrtune.SGD, lrtune.Adam, lrtune.AdamW, lrtune.RAdam])
def test_sparse_gradient_raises_runtime_error_at_first_step(cls: type) -> None:
    """torch.optim raises RuntimeError for sparse gradients ("... does not support sparse gradients"); so does lrtune,
    naming the optimizer, the group and the parameter, before it changes anything."""
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = cls(emb.parameters(), lr=0.1)
    before = emb.weight.detach().clone()
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match=rf"{cls.__name__} does not support sparse gradients \(param group 0"):
        opt.step()
    assert torch.equal(emb.weight, before) and not opt.state
