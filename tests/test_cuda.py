"""On a GPU: lrtune's optimizers and schedules on CUDA parameters (skipped where no GPU is present)."""

from __future__ import annotations

import pytest
import torch
from helpers import CASE_IDS, CASES, Case, gradient_stream, make_params

import lrtune
from lrtune import schedules as S

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _cuda(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().cuda()) for p in params]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cuda_equals_torch_on_cuda(case: Case) -> None:
    """impl="auto" on CUDA takes the multi-tensor path; torch.optim's default there is foreach."""
    pa = _cuda(make_params(torch.float64))
    pb = [torch.nn.Parameter(p.detach().clone()) for p in pa]
    ours, peer = case.make("auto")(pa), case.make_peer()(pb)
    for grads in gradient_stream(make_params(torch.float64), 200):
        for ps in (pa, pb):
            for p, g in zip(ps, grads, strict=True):
                p.grad = None if g is None else g.cuda()
        ours.step()
        peer.step()
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_cuda_clipping_skip_and_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(4, device="cuda"))
    opt = lrtune.Adam([p], lr=1.0, max_grad_norm=1.0, nonfinite="skip")
    sched = S.LRScheduler(opt, S.warmup_linear_decay(2, 10))
    for i in range(5):
        p.grad = torch.full((4,), float("nan") if i == 2 else 3.0, device="cuda")
        opt.step()
        sched.step()
    assert opt.skipped_steps == 1
    assert sched.applied_updates == 4
    assert opt.last_grad_norm is not None and opt.last_grad_norm.device.type == "cuda"
    assert torch.isfinite(p).all()
