"""Optimizers on one φ/ψ framework: θ_t = θ_{t−1} − α_t · m_t · l_t (Liu et al., 2020, Algorithm 1).

* :class:`AdaptiveOptimizer` — the generic method, for any momentum rule φ and adaptive rule ψ.
* :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`RAdam` — thin compositions equal to torch.optim.
* φ: :class:`NoMomentum`, :class:`HeavyBall`, :class:`EMA`; ψ: :class:`Identity`, :class:`RMS`,
  :class:`Rectified`. Subclass :class:`Momentum` or :class:`Adaptive` to define a new optimizer.
"""

from .._rectification import rectification, rho_inf, rho_t
from ._adaptive import RMS, Identity, Rectified
from ._momentum import EMA, HeavyBall, NoMomentum
from ._optimizer import AdaptiveOptimizer
from ._optimizers import SGD, Adam, AdamW, RAdam
from ._rules import Adaptive, Momentum, State

__all__ = [
    "EMA",
    "RMS",
    "SGD",
    "Adam",
    "AdamW",
    "Adaptive",
    "AdaptiveOptimizer",
    "HeavyBall",
    "Identity",
    "Momentum",
    "NoMomentum",
    "RAdam",
    "Rectified",
    "State",
    "rectification",
    "rho_inf",
    "rho_t",
]
