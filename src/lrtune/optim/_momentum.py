"""Built-in momentum rules φ: none, heavy-ball (SGD) and bias-corrected EMA (Adam)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import check_in_unit_interval
from ._rules import Momentum, State, zeros_like

__all__ = ["EMA", "HeavyBall", "NoMomentum"]


@dataclass(frozen=True)
class NoMomentum(Momentum):
    """m_t = g_t (plain SGD)."""

    counts_steps = False
    keeps_state = False

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> list[Tensor]:
        return grads

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor:
        return grad


@dataclass(frozen=True)
class HeavyBall(Momentum):
    """Heavy-ball momentum as in ``torch.optim.SGD``.

    b_1 = g_1, b_t = μ·b_{t-1} + (1 − τ)·g_t; m_t = b_t, or g_t + μ·b_t with Nesterov.
    State key: ``momentum_buffer`` (torch's), created at the first update.

    Args:
        momentum: μ in [0, 1).
        dampening: τ in [0, 1].
        nesterov: use the Nesterov direction (needs μ > 0 and τ = 0, as torch).
    """

    counts_steps = False
    lazy_state = ("momentum_buffer",)

    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        check_in_unit_interval("momentum", self.momentum)
        check_in_unit_interval("dampening", self.dampening, closed=True)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening = 0, got momentum={self.momentum!r} "
                f"and dampening={self.dampening!r}"
            )

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> list[Tensor]:
        if any("momentum_buffer" not in s or s["momentum_buffer"] is None for s in states):
            # torch.optim.SGD: the first buffer is a copy of the gradient, undamped.
            for s, g in zip(states, grads, strict=True):
                if s.get("momentum_buffer") is None:
                    s["momentum_buffer"] = torch.clone(g).detach()
                else:
                    s["momentum_buffer"].mul_(self.momentum).add_(g, alpha=1 - self.dampening)
        else:
            bufs = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(bufs, self.momentum)
            torch._foreach_add_(bufs, grads, alpha=1 - self.dampening)
        bufs = [s["momentum_buffer"] for s in states]
        if self.nesterov:
            return list(torch._foreach_add(grads, bufs, alpha=self.momentum))
        return bufs

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor:
        b = state.get("momentum_buffer")
        b = grad.clone() if b is None else self.momentum * b + (1 - self.dampening) * grad
        state["momentum_buffer"] = b
        return grad + self.momentum * b if self.nesterov else b


@dataclass(frozen=True)
class EMA(Momentum):
    """Exponential moving average with bias correction, as Adam.

    m_t = β1·m_{t-1} + (1 − β1)·g_t (computed as torch does, ``lerp``), m̂_t = m_t / (1 − β1^t).
    State key: ``exp_avg``.

    Args:
        beta1: β1 in [0, 1).
    """

    beta1: float = 0.9

    def __post_init__(self) -> None:
        check_in_unit_interval("beta1", self.beta1)

    def init_state(self, param: Tensor) -> State:
        return {"exp_avg": zeros_like(param)}

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> list[Tensor]:
        exp_avgs = [s["exp_avg"] for s in states]
        torch._foreach_lerp_(exp_avgs, grads, 1 - self.beta1)
        return exp_avgs

    def bias_correction(self, step: float) -> float:
        return 1 - self.beta1**step

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor:
        m = self.beta1 * state["exp_avg"] + (1 - self.beta1) * grad
        state["exp_avg"] = m
        return m / (1 - self.beta1**step)
