"""The two extension points of the generic adaptive method: momentum φ and adaptive rate ψ.

Algorithm 1 of Liu et al. (2020), "On the Variance of the Adaptive Learning Rate and Beyond":

    g_t = ∇f_t(θ_{t-1})
    m_t = φ(g_1, ..., g_t)          # momentum (a direction)
    l_t = ψ(g_1, ..., g_t)          # adaptive learning rate (a preconditioner)
    θ_t = θ_{t-1} - α_t · m_t · l_t

A rule is a small frozen dataclass holding its hyper-parameters. It owns the per-parameter state it
needs (``init_state``), advances that state for a list of parameters at once (``update``), and, for ψ,
applies the update to the parameters (``apply``) in the order of floating-point operations that the
matching ``torch.optim`` algorithm uses, so that compositions are equal to ``torch.optim`` bit for bit.
Each rule may also give a ``reference`` form, written one parameter at a time in the paper's notation,
used as the test oracle.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

State = dict[str, Any]

__all__ = ["Adaptive", "Momentum", "State"]


class Momentum(abc.ABC):
    """φ: turns the gradient history into a direction m_t = d_t / c_t.

    ``update`` returns the tensors d_t; ``bias_correction`` gives the scalar divisor c_t (1.0 when there
    is none). Keeping c_t separate lets ψ fold it into its own scalar factors as torch does.
    """

    #: Whether the rule's math reads the step t. The optimizer keeps a per-parameter ``step`` in the state
    #: when φ or ψ does (as torch.optim does for Adam, and not for SGD); rules that declare False are
    #: passed t = 1.0 and must not depend on it.
    counts_steps: ClassVar[bool] = True
    #: Whether the rule keeps per-parameter state at all (a parameter whose φ and ψ keep none gets no entry
    #: in ``optimizer.state``, as in torch.optim.SGD without momentum).
    keeps_state: ClassVar[bool] = True
    #: State keys the rule creates later than :meth:`init_state` (e.g. SGD's ``momentum_buffer``, at the first
    #: update): with the keys of :meth:`init_state`, what a loaded state may hold.
    lazy_state: ClassVar[tuple[str, ...]] = ()

    def init_state(self, param: Tensor) -> State:
        """Per-parameter state created before the first update (lazily created state is fine too)."""
        del param
        return {}

    @abc.abstractmethod
    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> list[Tensor]:
        """Advance the state with g_t (step t = 1, 2, ...) and return d_t, with m_t = d_t / c_t."""

    def bias_correction(self, step: float) -> float:
        """c_t, the scalar that divides d_t (1.0: none)."""
        del step
        return 1.0

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor:
        """m_t for one parameter, in the paper's notation (test oracle). Advances ``state``."""
        raise NotImplementedError(f"{type(self).__name__} has no reference form")


class Adaptive(abc.ABC):
    """ψ: the adaptive learning rate l_t, applied to the direction given by φ."""

    #: See :attr:`Momentum.counts_steps`.
    counts_steps: ClassVar[bool] = True
    #: See :attr:`Momentum.keeps_state`.
    keeps_state: ClassVar[bool] = True
    #: See :attr:`Momentum.lazy_state`.
    lazy_state: ClassVar[tuple[str, ...]] = ()

    def init_state(self, param: Tensor) -> State:
        """Per-parameter state created before the first update."""
        del param
        return {}

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> None:  # noqa: B027
        """Advance the state with g_t. The default keeps no state."""

    def applies_update(self, step: float) -> bool:
        """Whether step t moves the parameters (False: only the state moves, e.g. RAdam's skipped steps)."""
        del step
        return True

    @abc.abstractmethod
    def apply(
        self,
        params: list[Tensor],
        states: Sequence[State],
        direction: list[Tensor],
        divisor: float,
        lr: float,
        step: float,
    ) -> None:
        """θ ← θ − lr · (direction / divisor) · l_t, in place."""

    def step_scale(self, step: float) -> float:
        """The scalar part of l_t at step t (e.g. r_t·sqrt(1 − β2^t) for RAdam), for diagnostics."""
        del step
        return 1.0

    def step_info(self, step: float) -> dict[str, float]:
        """Scalars that describe l_t at step t (e.g. RAdam's ρ_t and r_t), for diagnostics."""
        del step
        return {}

    def reference(self, state: State, grad: Tensor, step: float) -> Tensor | float | None:
        """l_t for one parameter in the paper's notation (test oracle); None means "no update"."""
        raise NotImplementedError(f"{type(self).__name__} has no reference form")


def zeros_like(param: Tensor) -> Tensor:
    """A zero moment buffer shaped like ``param`` (torch's ``preserve_format``)."""
    return torch.zeros_like(param, memory_format=torch.preserve_format)
