"""A new optimizer is a new ψ: AMSGrad (Reddi et al., 2018) in a few lines.

AMSGrad is Adam whose adaptive rate uses the running maximum of the second moment,
l_t = 1 / (sqrt(max(v_1..v_t) / (1 − β2^t)) + ε). Everything else — momentum, bias correction,
weight decay, clipping, state dicts — comes from the framework.

Run: python examples/amsgrad.py
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lrtune.optim import EMA, RMS, AdaptiveOptimizer, State


@dataclass(frozen=True)
class AMSGrad(RMS):
    """ψ of AMSGrad: RMS over the running maximum of v_t (state key ``max_exp_avg_sq``, as torch)."""

    def init_state(self, param: Tensor) -> State:
        return {**super().init_state(param), "max_exp_avg_sq": torch.zeros_like(param)}

    def update(self, states: Sequence[State], grads: list[Tensor], step: float) -> None:
        super().update(states, grads, step)
        for s in states:
            torch.maximum(s["max_exp_avg_sq"], s["exp_avg_sq"], out=s["max_exp_avg_sq"])

    def second_moment(self, state: State) -> Tensor:
        return state["max_exp_avg_sq"]


def amsgrad(params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):  # type: ignore[no-untyped-def]
    """AMSGrad as an optimizer: φ = EMA(β1), ψ = AMSGrad(β2, ε)."""
    return AdaptiveOptimizer(params, lr, momentum=EMA(betas[0]), adaptive=AMSGrad(betas[1], eps))


if __name__ == "__main__":
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10))
    ours, ref = amsgrad([w]), torch.optim.Adam([w2 := torch.nn.Parameter(w.detach().clone())], amsgrad=True)
    for _ in range(100):
        for p, opt in ((w, ours), (w2, ref)):
            opt.zero_grad()
            ((p - 1) ** 4).sum().backward()
            opt.step()
    print(f"lrtune AMSGrad == torch.optim.Adam(amsgrad=True) after 100 steps: {torch.equal(w, w2)}")
