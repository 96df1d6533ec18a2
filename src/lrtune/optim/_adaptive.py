"""Built-in adaptive-rate rules ψ: identity (SGD), RMS (Adam) and rectified RMS (RAdam).

Where ε goes (it matters for small v_t):

* Adam (:class:`RMS`): l_t = 1 / (sqrt(v̂_t) + ε) with v̂_t = v_t / (1 − β2^t): ε is added to the
  *bias-corrected* root, as ``torch.optim.Adam``.
* RAdam (:class:`Rectified`): l_t = r_t · sqrt(1 − β2^t) / (sqrt(v_t) + ε): ε is added to the
  *uncorrected* root, as ``torch.optim.RAdam`` and the original implementation. Early in training,
  where 1 − β2^t is small, RAdam's ε is thus effectively larger by 1 / sqrt(1 − β2^t).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._rectification import rectification, rho_t
from .._validate import check_choice, check_in_unit_interval, check_nonnegative, check_real
from ._rules import Adaptive, State, zeros_like

__all__ = ["RMS", "Identity", "Rectified"]


@dataclass(frozen=True)
class Identity(Adaptive):
    """l_t = 1 (SGD): θ ← θ − α·m_t."""

    counts_steps = False
    keeps_state = False

    def apply(
        self,
        params: list[Tensor],
        states: Sequence[State],
        direction: list[Tensor],
        divisor: float,
        lr: float,
        step: float,
    ) -> None:
        torch._foreach_add_(params, direction, alpha=-(lr / divisor))

    def reference(self, state: State, grad: Tensor, step: float) -> float:
        return 1.0


@dataclass(frozen=True)
class RMS(Adaptive):
    """Adam's adaptive rate: v_t = β2·v_{t-1} + (1 − β2)·g_t², l_t = 1 / (sqrt(v_t / (1 − β2^t)) + ε).

    State key: ``exp_avg_sq``. Subclasses may change which second moment is used through
    :meth:`second_moment` (AMSGrad uses the running maximum).

    Args:
        beta2: β2 in [0, 1).
        eps: ε ≥ 0, added to the bias-corrected root (see the module docstring); 0 is accepted as by torch.
    """

    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        check_in_unit_interval("beta2", self.beta2)
        check_nonnegative("eps", self.eps)

    def init_state(self, param: Tensor) -> State:
        return {"exp_avg_sq": zeros_like(param)}

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> None:
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(exp_avg_sqs, self.beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - self.beta2)

    def second_moment(self, state: State) -> Tensor:
        """The v_t that l_t is computed from."""
        return state["exp_avg_sq"]

    def apply(
        self,
        params: list[Tensor],
        states: Sequence[State],
        direction: list[Tensor],
        divisor: float,
        lr: float,
        step: float,
    ) -> None:
        bias_correction2_sqrt = (1 - self.beta2**step) ** 0.5
        denom = torch._foreach_sqrt([self.second_moment(s) for s in states])
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, direction, denom, value=-(lr / divisor))

    def step_scale(self, step: float) -> float:
        return (1 - self.beta2**step) ** 0.5

    def step_info(self, step: float) -> dict[str, float]:
        return {"bias_correction2": 1 - self.beta2**step}

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor:
        v = self.beta2 * state["exp_avg_sq"] + (1 - self.beta2) * grad * grad
        state["exp_avg_sq"] = v
        v_hat = v / (1 - self.beta2**step)
        return 1 / (v_hat.sqrt() + self.eps)


@dataclass(frozen=True)
class Rectified(Adaptive):
    """RAdam's rectified adaptive rate (Liu et al., 2020, Algorithm 2).

    v_t as in Adam. When ρ_t > ``threshold``: l_t = r_t · sqrt(1 − β2^t) / (sqrt(v_t) + ε) (note where ε
    goes: see the module docstring). Otherwise the variance of l_t is intractable and the step is
    ``degenerate``: ``"sgd"`` takes the momentum step l_t = 1 (torch.optim.RAdam, torch-optimizer);
    ``"skip"`` updates only the moments (the original implementation's ``degenerated_to_sgd=False``).

    Args:
        beta2: β2 in [0, 1).
        eps: ε ≥ 0.
        threshold: rectify when ρ_t exceeds it; 5.0 is torch's rule, 4.0 the paper's (r_t is defined for
            ρ_t > 4).
        degenerate: ``"sgd"`` or ``"skip"``.
    """

    beta2: float = 0.999
    eps: float = 1e-8
    threshold: float = 5.0
    degenerate: str = "sgd"

    def __post_init__(self) -> None:
        check_in_unit_interval("beta2", self.beta2)
        check_nonnegative("eps", self.eps)
        if check_real("threshold", self.threshold) < 4:
            raise ValueError(f"threshold must be >= 4 (r_t is undefined for rho_t <= 4), got {self.threshold!r}")
        check_choice("degenerate", self.degenerate, ("sgd", "skip"))

    init_state = RMS.init_state
    update = RMS.update

    def rectified(self, step: float) -> bool:
        """Whether step t uses the rectified adaptive rate (ρ_t > threshold)."""
        return rho_t(self.beta2, step) > self.threshold

    def applies_update(self, step: float) -> bool:
        return self.degenerate == "sgd" or self.rectified(step)

    def apply(
        self,
        params: list[Tensor],
        states: Sequence[State],
        direction: list[Tensor],
        divisor: float,
        lr: float,
        step: float,
    ) -> None:
        m_hat = torch._foreach_div(direction, divisor)
        torch._foreach_mul_(m_hat, lr)
        if self.rectified(step):
            # torch.optim.RAdam's order: ((m̂ · lr) · (sqrt(1 − β2^t) / (sqrt(v) + ε))) · r_t
            adaptive = torch._foreach_sqrt([s["exp_avg_sq"] for s in states])
            torch._foreach_add_(adaptive, self.eps)
            torch._foreach_reciprocal_(adaptive)
            torch._foreach_mul_(adaptive, (1 - self.beta2**step) ** 0.5)
            torch._foreach_mul_(m_hat, adaptive)
            torch._foreach_mul_(m_hat, rectification(self.beta2, step))
        elif self.degenerate == "skip":
            return
        torch._foreach_add_(params, m_hat, alpha=-1.0)

    def step_scale(self, step: float) -> float:
        if self.rectified(step):
            return rectification(self.beta2, step) * (1 - self.beta2**step) ** 0.5
        return 1.0 if self.degenerate == "sgd" else 0.0

    def step_info(self, step: float) -> dict[str, float]:
        rect = self.rectified(step)
        return {
            "rho_t": rho_t(self.beta2, step),
            "r_t": rectification(self.beta2, step) if rect else 0.0,
            "rectified": float(rect),
            "bias_correction2": 1 - self.beta2**step,
        }

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor | float | None:
        v = self.beta2 * state["exp_avg_sq"] + (1 - self.beta2) * grad * grad
        state["exp_avg_sq"] = v
        if rho_t(self.beta2, step) > self.threshold:
            r = rectification(self.beta2, step)
            return r * math.sqrt(1 - self.beta2**step) / (v.sqrt() + self.eps)
        return 1.0 if self.degenerate == "sgd" else None
