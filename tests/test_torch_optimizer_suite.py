"""torch-optimizer's own test cases for RAdam and SGDW, run with lrtune substituted.

The cases of jettify/pytorch-optimizer's ``tests/`` (``test_basic.py``, ``test_optimizer_with_nn.py``,
``test_optimizer.py``, ``test_param_validation.py``) that exercise ``RAdam`` and ``SGDW``, rewritten here with
``lrtune.RAdam(decoupled_weight_decay=True)`` for ``torch_optimizer.RAdam`` (which decays decoupled; lrtune's
default is torch.optim's L2) and ``lrtune.SGD(decoupled_weight_decay=True)`` for ``torch_optimizer.SGDW``. Where
the peer still runs it is run too, and lrtune is compared with it.

The harness needed these fixes to run under torch 2.x (torch-optimizer's suite predates it):

1. The sparse-gradient case calls ``zero_grad(set_to_none=False)``: torch 2's default sets the sparse gradient
   to None, after which ``step()`` has nothing to refuse.
2. The basic-cases template steps the optimizer inside its 200-iteration loop, before the schedulers (its port
   stepped the optimizer once and then the schedulers 200 times, which torch 2 warns about), and gives
   ``ReduceLROnPlateau`` the loss as a number (torch 2 warns about a tensor that requires grad).
3. Tensors are compared with ``torch.equal``/``allclose``: ``==`` of multi-element tensors has no truth value.
4. The state-dict case checks that loading leaves the given dict unchanged right after loading: since torch 2,
   ``load_state_dict`` shares tensors with the dict it is given (torch.optim's too), so later steps change it.
5. SGDW's Nesterov branch calls ``Tensor.add(Number, Tensor)``, a signature torch 2 removed: where the peer
   runs with Nesterov, that call is translated to ``add(Tensor, alpha=Number)``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
import torch_optimizer
from torch.optim.lr_scheduler import ExponentialLR, ReduceLROnPlateau, StepLR

import lrtune

Factory = Callable[..., torch.optim.Optimizer]


def radam(params: Any, **kw: Any) -> torch.optim.Optimizer:
    """lrtune's replacement for torch_optimizer.RAdam: decoupled weight decay, as Liu et al.'s."""
    return lrtune.RAdam(params, decoupled_weight_decay=True, **kw)


def sgdw(params: Any, **kw: Any) -> torch.optim.Optimizer:
    """lrtune's replacement for torch_optimizer.SGDW."""
    return lrtune.SGD(params, decoupled_weight_decay=True, **kw)


OURS: dict[str, Factory] = {"RAdam": radam, "SGDW": sgdw}
PEERS: dict[str, Factory] = {"RAdam": torch_optimizer.RAdam, "SGDW": torch_optimizer.SGDW}


@contextmanager
def legacy_tensor_add() -> Iterator[None]:
    """Fix 5: let ``Tensor.add(Number, Tensor)`` (torch < 2) mean ``add(Tensor, alpha=Number)`` inside the block."""
    original = torch.Tensor.add

    def add(self: torch.Tensor, other: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        if isinstance(other, (int, float)) and args and isinstance(args[0], torch.Tensor):
            return original(self, args[0], alpha=other)
        return original(self, other, *args, **kwargs)

    torch.Tensor.add = add  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.Tensor.add = original  # type: ignore[method-assign]


# -------------------------------------------------------------------------------------------------
# test_basic.py: minimise three test functions from (1.5, 1.5)


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy
    return (1 - x) ** 2 + (y - x**2) ** 2


def quadratic(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy
    return x**2 + y**2


def beale(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


FUNCTIONS = [(rosenbrock, (1.0, 1.0)), (quadratic, (0.0, 0.0)), (beale, (3.0, 0.5))]
SETTINGS = [
    ("RAdam", {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-3}, 800),
    ("SGDW", {"lr": 0.002, "momentum": 0.91}, 900),
]


def _minimise(make: Factory, func: Callable[[torch.Tensor], torch.Tensor], iterations: int, **kw: Any) -> tuple:
    x = torch.tensor([1.5, 1.5], requires_grad=True)
    optimizer = make([x], **kw)
    for _ in range(iterations):
        optimizer.zero_grad()
        func(x).backward()
        optimizer.step()
    return x.detach(), optimizer


@pytest.mark.parametrize(("func", "minimum"), FUNCTIONS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize(("name", "kw", "iterations"), SETTINGS, ids=[s[0] for s in SETTINGS])
def test_benchmark_function(func: Callable, minimum: tuple, name: str, kw: dict, iterations: int) -> None:
    ours, optimizer = _minimise(OURS[name], func, iterations, **kw)
    assert torch.allclose(ours, torch.tensor(minimum), atol=1e-3)
    assert type(optimizer).__name__ in repr(optimizer)
    theirs, _ = _minimise(PEERS[name], func, iterations, **kw)
    # The multi-tensor path does SGDW's float32 operations in its order (bit for bit); the fused kernel and
    # RAdam's update round differently (torch-optimizer's RAdam: mul_/add_ instead of lerp, its own order), which
    # 800-900 steps on these curved functions amplify to at most a few 1e-5 (the peer's own tolerance is 1e-3).
    if name == "SGDW":
        foreach, _ = _minimise(functools.partial(sgdw, impl="foreach"), func, iterations, **kw)
        assert torch.equal(foreach, theirs)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-4)


# -------------------------------------------------------------------------------------------------
# test_optimizer_with_nn.py: a small logistic regression, 200 updates halve the loss


def make_dataset(seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """100 points in 2-D: the first half around (−2, −2) labelled 0, the second around (2, 2) labelled 1."""
    rng = np.random.RandomState(seed)
    x = rng.randn(100, 2) * 2
    x[:50] -= 2
    x[50:] += 2
    y = np.array([0] * 50 + [1] * 50).reshape(100, 1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def _logistic_regression(make: Factory, lr: float, seed: int) -> tuple[float, float, torch.nn.Module]:
    x, y = make_dataset()
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1), torch.nn.Sigmoid())
    optimizer = make(model.parameters(), lr=lr)
    first = last = None
    for _ in range(200):
        loss = torch.nn.functional.binary_cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        last = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first is not None and last is not None
    return first, last, model


@pytest.mark.parametrize("name", ["RAdam", "SGDW"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_basic_nn_model(name: str, seed: int) -> None:
    first, last, model = _logistic_regression(OURS[name], 1.0, seed)
    assert first > 2.0 * last
    _, peer_last, peer_model = _logistic_regression(PEERS[name], 1.0, seed)
    # Float32 rounding differences, amplified by 200 steps at lr = 1 (RAdam: up to 3e-4 in a weight).
    assert last == pytest.approx(peer_last, rel=2e-3)
    for a, b in zip(model.parameters(), peer_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-3)


# -------------------------------------------------------------------------------------------------
# test_optimizer.py: parameter-group layouts and LR schedulers; state-dict resume


def _two_groups(weight: torch.Tensor, bias: torch.Tensor, **kw: Any) -> list[dict[str, Any]]:
    return [{"params": [weight]}, {"params": [bias], **kw}]


def _bias_only(weight: torch.Tensor, bias: torch.Tensor, **kw: Any) -> list[dict[str, Any]]:
    return [{"params": bias, **kw}]  # a bare tensor as a group's params, as the peer's suite passes it


CONSTRUCTIONS: list[tuple[str, Callable[[Factory, torch.Tensor, torch.Tensor], torch.optim.Optimizer], list]] = [
    ("list", lambda make, w, b: make([w, b], lr=1e-3), []),
    ("groups", lambda make, w, b: make(_two_groups(w, b, lr=1e-2), lr=1e-3), []),
    ("bias-group", lambda make, w, b: make(_bias_only(w, b, lr=1e-2), lr=1e-3), []),
    ("bias-group-default-lr", lambda make, w, b: make(_bias_only(w, b, lr=1e-2)), []),
    ("step-lr", lambda make, w, b: make([w, b], lr=1e-3), [lambda o: StepLR(o, gamma=0.9, step_size=10)]),
    (
        "step-lr-plateau",
        lambda make, w, b: make([w, b], lr=1e-3),
        [lambda o: StepLR(o, gamma=0.9, step_size=10), lambda o: ReduceLROnPlateau(o)],
    ),
    (
        "step-exp-plateau",
        lambda make, w, b: make([w, b], lr=1e-3),
        [
            lambda o: StepLR(o, gamma=0.99, step_size=10),
            lambda o: ExponentialLR(o, gamma=0.99),
            lambda o: ReduceLROnPlateau(o),
        ],
    ),
]


def _loss(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (weight.mv(x) + bias).pow(2).sum()


def _basic_case(construct: Callable, make: Factory, schedulers: list, weight: torch.Tensor, bias: torch.Tensor) -> None:
    x = torch.randn(5)
    weight, bias = weight.requires_grad_(), bias.requires_grad_()
    optimizer = construct(make, weight, bias)
    made = [s(optimizer) for s in schedulers]
    repr(optimizer)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _loss(weight, bias, x)
        loss.backward()
        return loss

    initial = closure().item()
    for _ in range(200):  # fix 2: an optimizer step per iteration, then the schedulers
        optimizer.step(closure)
        for scheduler in made:
            if isinstance(scheduler, ReduceLROnPlateau):
                scheduler.step(closure().item())  # fix 2: a number (torch 2 warns about a tensor)
            else:
                scheduler.step()
    assert closure().item() < initial


def _state_dict_case(construct: Callable, make: Factory) -> None:
    weight, bias, x = torch.randn(10, 5, requires_grad=True), torch.randn(10, requires_grad=True), torch.randn(5)

    def closure(optimizer: torch.optim.Optimizer, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad()
        loss = _loss(w, b, x)
        loss.backward()
        return loss

    optimizer = construct(make, weight, bias)
    for _ in range(20):
        optimizer.step(functools.partial(closure, optimizer, weight, bias))
    weight_c = weight.detach().clone().requires_grad_()
    bias_c = bias.detach().clone().requires_grad_()
    optimizer_c = construct(make, weight_c, bias_c)
    state_dict = copy.deepcopy(optimizer.state_dict())
    state_dict_c = copy.deepcopy(optimizer.state_dict())
    optimizer_c.load_state_dict(state_dict_c)
    _assert_equal(state_dict, state_dict_c)  # fix 4: loading does not change the dict it is given
    for _ in range(20):
        optimizer.step(functools.partial(closure, optimizer, weight, bias))
        optimizer_c.step(functools.partial(closure, optimizer_c, weight_c, bias_c))
        assert torch.equal(weight, weight_c) and torch.equal(bias, bias_c)  # the peer's suite: atol 1e-4


def _assert_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)  # fix 3
    else:
        assert a == b


@pytest.mark.parametrize(("label", "construct", "schedulers"), CONSTRUCTIONS, ids=[c[0] for c in CONSTRUCTIONS])
@pytest.mark.parametrize("name", ["RAdam", "SGDW"])
def test_optimizer(name: str, label: str, construct: Callable, schedulers: list) -> None:
    torch.manual_seed(0)
    make = OURS[name]
    _state_dict_case(construct, make)
    _basic_case(construct, make, schedulers, torch.randn(10, 5), torch.randn(10))
    _basic_case(construct, make, schedulers, torch.randn(10, 5, 2)[..., 0], torch.randn(10, 2)[..., 0])  # strided
    if torch.cuda.is_available():
        _basic_case(construct, make, schedulers, torch.randn(10, 5).cuda(), torch.randn(10).cuda())


# -------------------------------------------------------------------------------------------------
# test_param_validation.py


def test_sparse_not_supported() -> None:
    """RAdam and SGDW refuse sparse gradients with a RuntimeError that says so (fix 1: set_to_none=False)."""
    for name in ("RAdam", "SGDW"):
        for make in (OURS[name], PEERS[name]):
            param = torch.randn(1, 1).to_sparse().requires_grad_(True)
            param.grad = torch.randn(1, 1).to_sparse()
            optimizer = make([param])
            optimizer.zero_grad(set_to_none=False)
            with pytest.raises(RuntimeError, match="does not support sparse gradients"):
                optimizer.step()


@pytest.mark.parametrize("name", ["RAdam", "SGDW"])
def test_learning_rate(name: str) -> None:
    with pytest.raises(ValueError, match=r"lr .*-0\.01"):
        OURS[name](None, lr=-0.01)


def test_eps_validation() -> None:
    with pytest.raises(ValueError, match=r"eps .*-0\.1"):
        OURS["RAdam"](None, lr=0.1, eps=-0.1)


@pytest.mark.parametrize("name", ["RAdam", "SGDW"])
def test_weight_decay_validation(name: str) -> None:
    with pytest.raises(ValueError, match=r"weight_decay .*-0\.1"):
        OURS[name](None, lr=0.1, weight_decay=-0.1)


def test_betas_validation() -> None:
    with pytest.raises(ValueError, match=r"betas\[0\] .*-1"):
        OURS["RAdam"](None, lr=0.1, betas=(-1, 0.999))
    with pytest.raises(ValueError, match=r"betas\[1\] .*-0\.999"):
        OURS["RAdam"](None, lr=0.1, betas=(0.9, -0.999))


# -------------------------------------------------------------------------------------------------
# beyond the peer's suite: the update itself, against the peer


@pytest.mark.parametrize(("nesterov", "dampening"), [(False, 0.0), (False, 0.1), (True, 0.0)])  # Nesterov: τ = 0
def test_sgd_without_weight_decay_equals_sgdw_bit_for_bit(nesterov: bool, dampening: float) -> None:
    kw = {"lr": 0.05, "momentum": 0.9, "dampening": dampening, "nesterov": nesterov}
    g = torch.Generator().manual_seed(0)
    a = torch.nn.Parameter(torch.randn(7, 3, generator=g))
    b = torch.nn.Parameter(a.detach().clone())
    c = torch.nn.Parameter(a.detach().clone())
    ours, peer, fused = sgdw([a], impl="foreach", **kw), torch_optimizer.SGDW([b], **kw), sgdw([c], **kw)
    with legacy_tensor_add():
        for _ in range(50):
            grad = torch.randn(7, 3, generator=g)
            a.grad, b.grad, c.grad = grad.clone(), grad.clone(), grad.clone()
            ours.step()
            peer.step()
            fused.step()
    assert torch.equal(a, b)
    torch.testing.assert_close(c, b, rtol=1e-6, atol=1e-6)  # the default fused kernel: to rounding


def test_sgdw_decays_the_parameter_where_torch_optimizer_subtracts_a_constant() -> None:
    """SGDW (Loshchilov & Hutter, 2019) decays θ by lr·λ·θ before the momentum step. torch-optimizer 0.3.0's
    SGDW subtracts lr·λ from every element instead (it passes λ where the parameter belongs), so the two
    differ whenever λ > 0; lrtune's equals the paper's closed form and torch.optim.SGD on a pre-decayed θ."""
    lr, wd = 0.1, 0.01
    g = torch.Generator().manual_seed(0)
    theta0 = torch.randn(6, generator=g, dtype=torch.float64)
    grads = [torch.randn(6, generator=g, dtype=torch.float64) for _ in range(30)]
    a = torch.nn.Parameter(theta0.clone())
    b = torch.nn.Parameter(theta0.clone())
    ours = sgdw([a], lr=lr, momentum=0.9, weight_decay=wd, impl="foreach")
    torch_sgd = torch.optim.SGD([b], lr=lr, momentum=0.9)
    for grad in grads:
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        with torch.no_grad():
            b.mul_(1 - lr * wd)
        torch_sgd.step()
    assert torch.equal(a, b)
    fused = torch.nn.Parameter(theta0.clone())  # the default (fused) path agrees to rounding
    opt = sgdw([fused], lr=lr, momentum=0.9, weight_decay=wd)
    for grad in grads:
        fused.grad = grad.clone()
        opt.step()
    torch.testing.assert_close(fused, a, rtol=1e-12, atol=1e-14)
    # One step from θ = 0 with a zero gradient: the paper's decay leaves 0; torch-optimizer's moves every element.
    zero, peer_zero = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    zero.grad, peer_zero.grad = torch.zeros(3), torch.zeros(3)
    sgdw([zero], lr=lr, weight_decay=wd).step()
    torch_optimizer.SGDW([peer_zero], lr=lr, weight_decay=wd).step()
    assert torch.equal(zero, torch.zeros(3))
    torch.testing.assert_close(peer_zero.detach(), torch.full((3,), -lr * wd))


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_radam_with_decoupled_decay_equals_torch_optimizer(weight_decay: float) -> None:
    """torch_optimizer.RAdam decays decoupled on every step: lrtune.RAdam(decoupled_weight_decay=True) matches it
    (to float32 rounding: the peer computes in float32); lrtune's default (L2, as torch.optim.RAdam) does not."""
    g = torch.Generator().manual_seed(0)
    theta0 = torch.randn(5, 4, generator=g)
    grads = [torch.randn(5, 4, generator=g) for _ in range(200)]
    runs = {}
    for label, make in {
        "decoupled": functools.partial(radam, weight_decay=weight_decay),
        "l2": functools.partial(lrtune.RAdam, weight_decay=weight_decay),
        "peer": functools.partial(torch_optimizer.RAdam, weight_decay=weight_decay),
    }.items():
        p = torch.nn.Parameter(theta0.clone())
        opt = make([p], lr=1e-2)
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
        runs[label] = p.detach()
    torch.testing.assert_close(runs["decoupled"], runs["peer"], rtol=2e-4, atol=1e-5)
    if weight_decay:
        assert not torch.allclose(runs["l2"], runs["peer"], rtol=2e-4, atol=1e-5)
