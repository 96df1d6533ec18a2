"""SGD, Adam, AdamW and RAdam: thin compositions of one momentum rule φ and one adaptive rule ψ.

Keyword names and defaults follow ``torch.optim``; each group keeps torch's hyper-parameter keys
(``lr``, ``betas``, ``eps``, ``momentum``, ...), so LR schedulers, ``OneCycleLR``'s momentum cycling and
torch.optim state dicts work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._validate import check_in_unit_interval
from ._adaptive import RMS, Identity, Rectified
from ._momentum import EMA, HeavyBall, NoMomentum
from ._optimizer import AdaptiveOptimizer
from ._rules import Adaptive, Momentum

__all__ = ["SGD", "Adam", "AdamW", "RAdam"]


def _betas(group: dict[str, Any]) -> tuple[float, float]:
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (
        check_in_unit_interval("betas[0]", betas[0]),
        check_in_unit_interval("betas[1]", betas[1]),
    )


class SGD(AdaptiveOptimizer):
    """Stochastic gradient descent with optional heavy-ball/Nesterov momentum: φ = HeavyBall, ψ = Identity.

    Equal to ``torch.optim.SGD``, state included (``momentum_buffer`` only: no step count). With
    ``max_grad_norm`` it is the "SGD + gradient clipping" recipe, the clipping done inside ``step()``.

    ``decoupled_weight_decay=True`` is SGDW (Loshchilov & Hutter, 2019, Algorithm 1): θ ← θ·(1 − lr·λ) before
    the momentum step, as AdamW does, instead of adding λ·θ to the gradient (which momentum then carries). It
    replaces torch-optimizer's ``SGDW``, with one difference: torch-optimizer 0.3.0 subtracts the constant lr·λ
    from every element (``p.add_(weight_decay, alpha=-lr)``), not lr·λ·θ.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "raise",
        impl: str = "auto",
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        self._setup(params, defaults, max_grad_norm=max_grad_norm, nonfinite=nonfinite, impl=impl)

    def _rules(self, group: dict[str, Any]) -> tuple[Momentum, Adaptive]:
        if group["momentum"] == 0 and not group["nesterov"]:
            check_in_unit_interval("dampening", group["dampening"], closed=True)
            return NoMomentum(), Identity()
        return HeavyBall(group["momentum"], group["dampening"], group["nesterov"]), Identity()


class Adam(AdaptiveOptimizer):
    """Adam (Kingma & Ba, 2015): φ = EMA(β1), ψ = RMS(β2, ε). Equal to ``torch.optim.Adam``.

    ε is added to the bias-corrected root sqrt(v̂_t) (torch's placement), unlike :class:`RAdam`.
    ``decoupled_weight_decay=True`` is AdamW.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "raise",
        impl: str = "auto",
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        self._setup(params, defaults, max_grad_norm=max_grad_norm, nonfinite=nonfinite, impl=impl)

    def _rules(self, group: dict[str, Any]) -> tuple[Momentum, Adaptive]:
        if group.get("amsgrad", False):
            raise ValueError("amsgrad=True is not part of lrtune.Adam; see examples/amsgrad.py for AMSGrad as a ψ")
        beta1, beta2 = _betas(group)
        return EMA(beta1), RMS(beta2, group["eps"])


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay. Equal to ``torch.optim.AdamW``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "raise",
        impl: str = "auto",
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            decoupled_weight_decay=True,
            maximize=maximize,
            max_grad_norm=max_grad_norm,
            nonfinite=nonfinite,
            impl=impl,
        )


class RAdam(AdaptiveOptimizer):
    """Rectified Adam (Liu et al., 2020): φ = EMA(β1), ψ = Rectified(β2, ε, threshold, degenerate).

    The defaults equal ``torch.optim.RAdam``: rectify when ρ_t > 5, ε added to sqrt(v_t) (not to the
    bias-corrected root as in :class:`Adam`), un-rectified steps take the momentum step lr·m̂_t.
    ``threshold=4.0`` is the paper's rule; ``degenerate="skip"`` makes un-rectified steps move only the
    moments (the original implementation's ``degenerated_to_sgd=False``; decoupled weight decay is then
    applied only on updating steps). After each step, :attr:`last_step_info` holds per group ρ_t, r_t and
    the effective step size lr·r_t·sqrt(1 − β2^t)/(1 − β1^t).

    Weight decay: like ``torch.optim.RAdam``, ``weight_decay`` is L2 by default (λ·θ added to the gradient,
    so it passes through the moments). The original implementation (Liu et al.) and ``torch_optimizer.RAdam``
    decay decoupled (θ ← θ·(1 − lr·λ)): coming from either, pass ``decoupled_weight_decay=True`` to keep the
    same update.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        threshold: float = 5.0,
        degenerate: str = "sgd",
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "raise",
        impl: str = "auto",
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "threshold": threshold,
            "degenerate": degenerate,
            "maximize": maximize,
        }
        self._setup(params, defaults, max_grad_norm=max_grad_norm, nonfinite=nonfinite, impl=impl)

    def _rules(self, group: dict[str, Any]) -> tuple[Momentum, Adaptive]:
        beta1, beta2 = _betas(group)
        return EMA(beta1), Rectified(beta2, group["eps"], group["threshold"], group["degenerate"])
