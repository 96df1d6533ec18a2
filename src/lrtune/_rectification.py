"""RAdam's variance rectification (Liu et al., 2020): ρ∞, ρ_t and r_t, shared by optimizers and schedules."""

from __future__ import annotations

__all__ = ["rectification", "rho_inf", "rho_t"]


def rho_inf(beta2: float) -> float:
    """ρ∞ = 2 / (1 − β2) − 1: the length of the simple moving average that the EMA approximates."""
    return 2 / (1 - beta2) - 1


def rho_t(beta2: float, step: float) -> float:
    """ρ_t = ρ∞ − 2·t·β2^t / (1 − β2^t), computed in torch.optim.RAdam's order of operations."""
    return rho_inf(beta2) - 2 * step * (beta2**step) / (1 - beta2**step)


def rectification(beta2: float, step: float) -> float:
    """r_t = sqrt((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t)) for ρ_t > 4, else 0.

    Liu et al. (2020), eq. (6). Golden values for β2 = 0.999: r_10 ≈ 0.048998, r_1000 ≈ 0.645326.
    """
    r_inf, r = rho_inf(beta2), rho_t(beta2, step)
    if r <= 4:
        return 0.0
    return ((r - 4) * (r - 2) * r_inf / ((r_inf - 4) * (r_inf - 2) * r)) ** 0.5
