"""The reference step: Algorithm 1 of Liu et al. (2020), one parameter at a time, in the paper's notation.

Slow and plain on purpose: it is the oracle the fast paths are tested against.
"""

from __future__ import annotations

from torch import Tensor

from ._rules import Adaptive, Momentum, State

__all__ = ["reference_step"]


def reference_step(
    theta: Tensor,
    g: Tensor,
    state: State,
    *,
    momentum: Momentum,
    adaptive: Adaptive,
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    step: float,
) -> None:
    """θ_t = θ_{t−1} − α·m_t·l_t for one parameter at step t (``state`` holds φ's and ψ's moments)."""
    if maximize:
        g = -g
    if weight_decay != 0 and not decoupled_weight_decay:
        g = g + weight_decay * theta
    m_t = momentum.reference(state, g, step)
    l_t = adaptive.reference(state, g, step)
    if l_t is None:  # the step only moves the moments (RAdam with degenerate="skip")
        return
    if weight_decay != 0 and decoupled_weight_decay:
        theta.mul_(1 - lr * weight_decay)
    theta.sub_(lr * m_t * l_t)
