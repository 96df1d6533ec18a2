"""Fused kernels: built-in (φ, ψ) pairs mapped onto torch's fused optimizer kernels with per-step scalars.

torch ships vectorised, multi-threaded single-pass kernels for Adam, AdamW and SGD (``torch._fused_adam_``,
``torch._fused_adamw_``, ``torch._fused_sgd_``); each reads θ, g and the moments once and writes them once,
which is the memory-bandwidth bound of the step. RAdam has no fused kernel in torch, but a rectified RAdam
step *is* an Adam step with other scalars:

    θ ← θ − lr·r_t/(1−β1^t) · m_t · sqrt(1−β2^t) / (sqrt(v_t) + ε)
      = θ − (lr·r_t)/(1−β1^t) · m_t / (sqrt(v_t)/sqrt(1−β2^t) + ε/sqrt(1−β2^t))

so it runs as Adam with lr' = lr·r_t and ε' = ε/sqrt(1−β2^t) (and, for decoupled weight decay, λ' = λ/r_t so
that lr'·λ' = lr·λ). The few un-rectified steps at the start take the generic multi-tensor path.

Every kernel takes ``found_inf``, a flag on the device: set, it leaves parameters and moments untouched. That is
how a step with a non-finite gradient is skipped without the host reading the flag first.

The kernels exist for CPU and CUDA tensors. On CUDA they read the step count from a device scalar: one is
filled per update (a launch, no host synchronisation) while the state keeps its host-side ``step``.

The kernels walk each parameter, its gradient and its moments as flat arrays in memory order, so they are right
only when all of them are dense and share one layout (torch 2.13's own CPU ``fused=True`` is wrong otherwise:
a strided-view parameter, or a transposed or ``channels_last`` one whose ``.grad`` was assigned contiguous).
:func:`fusable` tells which parameters qualify; the others take the multi-tensor path, which is exact for any
strides. torch 2.13's CPU fused SGD kernel is also wrong in float16 and bfloat16 (its vectorised loop, from 16
elements on; torch's own ``SGD(fused=True)`` shares it), so on CPU half-precision SGD takes the multi-tensor path.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

import torch
from torch import Tensor

from .._rectification import rectification
from ._adaptive import RMS, Identity, Rectified
from ._momentum import EMA, HeavyBall, NoMomentum
from ._rules import Adaptive, Momentum, State

__all__ = ["fusable", "fused_applies", "fused_step", "supports_fused"]

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FUSED_SGD_CPU_DTYPES = (torch.float32, torch.float64)  # see the module docstring
_KERNEL_STATE = ("exp_avg", "exp_avg_sq", "momentum_buffer")  # the state tensors the kernels walk


def supports_fused(momentum: Momentum, adaptive: Adaptive, params: Sequence[Tensor]) -> bool:
    """Whether :func:`fused_step` handles this pair on these parameters (exact built-in types only)."""
    pair_ok = (type(momentum) is EMA and type(adaptive) in (RMS, Rectified)) or (
        type(momentum) in (HeavyBall, NoMomentum) and type(adaptive) is Identity
    )
    if not pair_ok or not params:
        return False
    device = params[0].device
    dtypes = _FUSED_SGD_CPU_DTYPES if device.type == "cpu" and type(adaptive) is Identity else _FUSED_DTYPES
    return device.type in ("cpu", "cuda") and all(p.device == device and p.dtype in dtypes for p in params)


def _dense(t: Tensor) -> bool:
    """Whether ``t`` covers its memory without gaps or overlaps (in some order of its dimensions)."""
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(tensors: Sequence[Tensor]) -> bool:
    """Whether the tensors are dense and laid out alike, so that one flat walk visits matching elements."""
    strides = tensors[0].stride()
    return all(t.stride() == strides for t in tensors[1:]) and _dense(tensors[0])


def fusable(params: Sequence[Tensor], grads: Sequence[Tensor], states: Sequence[State]) -> list[bool]:
    """Per parameter, whether the fused kernels handle its layout: the parameter, its gradient and the state
    tensors the kernels read (moments, momentum buffer) dense and with equal strides. The others must take the
    multi-tensor path."""
    out = []
    for p, g, s in zip(params, grads, states, strict=True):
        moments = [v for k in _KERNEL_STATE if (v := s.get(k)) is not None]
        if p.is_contiguous() and g.is_contiguous():  # the common case: one C call per tensor
            out.append(all(v.is_contiguous() for v in moments))
        else:
            out.append(_same_layout([p, g, *moments]))
    return out


def fused_applies(momentum: Momentum, adaptive: Adaptive, step: float, states: Sequence[State]) -> bool:
    """Whether parameters standing at step ``step`` can take :func:`fused_step`: not RAdam's un-rectified steps,
    nor a heavy-ball group where some parameters have a momentum buffer and others do not yet."""
    if isinstance(adaptive, Rectified):
        return adaptive.rectified(step)
    if isinstance(momentum, HeavyBall):
        first = list(map(operator.is_, (s.get("momentum_buffer") for s in states), itertools.repeat(None)))
        return all(first) or not any(first)
    return True


def fused_step(
    params: list[Tensor],
    grads: list[Tensor],
    states: Sequence[State],
    *,
    momentum: Momentum,
    adaptive: Adaptive,
    lr: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    maximize: bool,
    step: float,
    found_inf: Tensor | None = None,
) -> None:
    """One fused update of parameters that all stand at step ``step`` (already incremented), whose layouts
    :func:`fusable` accepts and for which :func:`fused_applies` holds.

    ``found_inf`` (a float32 scalar on the parameters' device, 1.0 for a step with a non-finite gradient) makes the
    kernels leave parameters and moments untouched, read on the device: no host synchronisation. A heavy-ball
    group's first step creates its momentum buffers (uninitialised until a kernel writes them): the caller removes
    them again if the step turns out skipped.
    """
    if isinstance(adaptive, Identity):
        if isinstance(momentum, HeavyBall):
            first = states[0].get("momentum_buffer") is None  # all or none (fused_applies)
            if first:
                for s, g in zip(states, grads, strict=True):
                    s["momentum_buffer"] = torch.empty_like(g)
            bufs = [s["momentum_buffer"] for s in states]
            mu, tau, nesterov = momentum.momentum, momentum.dampening, momentum.nesterov
        else:
            bufs, mu, tau, nesterov, first = [], 0.0, 0.0, False, False
        if decoupled_weight_decay and weight_decay != 0:
            # θ ← θ·(1 − lr·λ) before the update, as AdamW; on the device, a skipped step multiplies by 1.
            decay = 1 - lr * weight_decay
            if found_inf is None:
                torch._foreach_mul_(params, decay)
            else:  # torch.full and masked_fill_ are kernels: no host-to-device copy, no sync
                # In the dtype the kernel computes in (float32 for half precision), as it casts a Python scalar.
                opmath = torch.float64 if params[0].dtype == torch.float64 else torch.float32
                on_device = torch.full((), decay, dtype=opmath, device=found_inf.device)
                torch._foreach_mul_(params, on_device.masked_fill_(found_inf != 0, 1.0))
            weight_decay = 0.0
        torch._fused_sgd_(
            params,
            grads,
            bufs,
            weight_decay=weight_decay,
            momentum=mu,
            lr=lr,
            dampening=tau,
            nesterov=nesterov,
            maximize=maximize,
            is_first_step=first,
            found_inf=found_inf,
        )
        return

    assert isinstance(momentum, EMA) and isinstance(adaptive, (RMS, Rectified))
    eps = adaptive.eps
    if isinstance(adaptive, Rectified):
        r = rectification(adaptive.beta2, step)
        lr, eps = lr * r, eps / (1 - adaptive.beta2**step) ** 0.5
        if decoupled_weight_decay:
            weight_decay = weight_decay / r
    kernel = torch._fused_adamw_ if decoupled_weight_decay else torch._fused_adam_
    if params[0].device.type == "cpu":
        steps = [s["step"] for s in states]
    else:  # the kernel reads the step on the device; the state's step count stays a host scalar, as in torch
        steps = [torch.full((), step, dtype=torch.float32, device=params[0].device)] * len(params)
    kernel(
        params,
        grads,
        [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states],
        [],
        steps,
        lr=lr,
        beta1=momentum.beta1,
        beta2=adaptive.beta2,
        weight_decay=weight_decay,
        eps=eps,
        amsgrad=False,
        maximize=maximize,
        found_inf=found_inf,
    )
