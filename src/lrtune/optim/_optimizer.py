"""The generic adaptive optimizer: θ_t = θ_{t−1} − α_t · m_t · l_t with m_t = φ(g_1..g_t), l_t = ψ(g_1..g_t)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from .._validate import check_choice, check_nonnegative, check_positive
from ._adaptive import Identity
from ._fused import fusable, fused_step, supports_fused
from ._momentum import NoMomentum
from ._reference import reference_step
from ._rules import Adaptive, Momentum, State

__all__ = ["AdaptiveOptimizer"]

logger = logging.getLogger(__name__)

IMPLS = ("auto", "reference", "foreach", "fused")
NONFINITE = ("raise", "skip", "ignore")
# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
CLIP_EPS = 1e-6
# Elements per chunk of the CPU multi-tensor path: 2 MiB of float32 per tensor list, so the handful of
# lists a step touches (θ, g, moments, temporaries) stay within a typical last-level cache.
CPU_CHUNK_ELEMENTS = 1 << 19


class AdaptiveOptimizer(torch.optim.Optimizer):
    r"""The generic adaptive method (Liu et al., 2020, Algorithm 1) as a ``torch.optim.Optimizer``.

    For each parameter with a gradient, at its step t = 1, 2, ...::

        g_t ← −g_t if maximize;  g_t ← g_t + λ·θ_{t−1} (L2, unless decoupled)
        θ_{t−1} ← θ_{t−1}·(1 − α·λ)                 (decoupled weight decay, on updating steps)
        m_t = φ(g_1..g_t);  l_t = ψ(g_1..g_t)
        θ_t = θ_{t−1} − α · m_t · l_t

    Before any of that, the global L2 norm of all gradients of the optimizer is computed when it is
    needed (clipping, or a non-finite check): with ``max_grad_norm=M`` the gradients are scaled in place by
    min(1, M / (‖g‖ + 1e-6)), exactly as ``torch.nn.utils.clip_grad_norm_``.

    Example:
        >>> import torch
        >>> from lrtune.optim import EMA, AdaptiveOptimizer, Rectified
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = AdaptiveOptimizer([w], lr=1e-3, momentum=EMA(0.9), adaptive=Rectified(0.999))
        >>> w.sum().backward(); opt.step()

    Args:
        params: parameters or parameter groups; a group may override ``lr``, ``weight_decay``,
            ``decoupled_weight_decay``, ``maximize``, ``phi`` and ``psi``.
        lr: α ≥ 0.
        momentum: the momentum rule φ (default: none).
        adaptive: the adaptive-rate rule ψ (default: identity, i.e. SGD).
        weight_decay: λ ≥ 0.
        decoupled_weight_decay: decay θ directly (AdamW) rather than adding λ·θ to g (L2).
        maximize: ascend instead of descend.
        max_grad_norm: clip the global gradient norm to this value (None: no clipping).
        nonfinite: what a step with a NaN/Inf gradient does: ``"raise"`` a ``FloatingPointError``,
            ``"skip"`` the step (parameters *and* state untouched, :attr:`skipped_steps` incremented), or
            ``"ignore"`` (no check; torch.optim's behaviour, saves one read of the gradients).
        impl: ``"reference"`` (paper notation, one parameter at a time: the test oracle), ``"foreach"``
            (generic multi-tensor path, works for any φ/ψ), ``"fused"`` (single-pass kernels for the
            built-in pairs on CPU and CUDA) or ``"auto"`` (fused where supported, else foreach). Parameters
            whose layout the fused kernels cannot walk (a strided view; a gradient or state whose strides differ
            from its parameter's) take the multi-tensor path in either case, so every layout gets the same
            update.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        *,
        momentum: Momentum | None = None,
        adaptive: Adaptive | None = None,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        maximize: bool = False,
        max_grad_norm: float | None = None,
        nonfinite: str = "raise",
        impl: str = "auto",
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "phi": NoMomentum() if momentum is None else momentum,
            "psi": Identity() if adaptive is None else adaptive,
        }
        self._setup(params, defaults, max_grad_norm=max_grad_norm, nonfinite=nonfinite, impl=impl)

    # ----------------------------------------------------------------------------------------------
    # construction and validation

    def _setup(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        max_grad_norm: float | None,
        nonfinite: str,
        impl: str,
    ) -> None:
        """Shared constructor of the generic class and its thin compositions."""
        if max_grad_norm is not None:
            max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.max_grad_norm: float | None = max_grad_norm
        self.nonfinite = check_choice("nonfinite", nonfinite, NONFINITE)
        self.impl = check_choice("impl", impl, IMPLS)
        #: Steps skipped because a gradient was NaN/Inf (``nonfinite="skip"``).
        self.skipped_steps = 0
        self._last_grad_norm: Tensor | None = None
        #: Per param group, scalars of the last step: step, lr, bias corrections, ρ_t, r_t, step_size.
        self.last_step_info: list[dict[str, float]] = []
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative("lr", group["lr"])
        check_nonnegative("weight_decay", group["weight_decay"])
        for flag in ("decoupled_weight_decay", "maximize"):
            if not isinstance(group[flag], bool):
                raise TypeError(f"{flag} must be a bool, got {group[flag]!r}")
        for p in group["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                raise TypeError(f"params must be floating-point tensors, got one of dtype {p.dtype}")
            if p.is_complex():
                raise TypeError(f"complex parameters are not supported, got one of dtype {p.dtype}")
        momentum, adaptive = self._rules(group)
        if not isinstance(momentum, Momentum):
            raise TypeError(f"momentum must be a lrtune.optim.Momentum (φ), got {momentum!r}")
        if not isinstance(adaptive, Adaptive):
            raise TypeError(f"adaptive must be a lrtune.optim.Adaptive (ψ), got {adaptive!r}")
        if self.impl == "reference":
            for rule in (momentum, adaptive):
                if "reference" not in type(rule).__dict__:
                    raise ValueError(
                        f"impl='reference' needs each rule's own reference form; {type(rule).__name__} defines no "
                        "reference form (an inherited one would describe another algorithm)"
                    )
        if self.impl == "fused" and not supports_fused(momentum, adaptive, group["params"]):
            raise ValueError(
                "impl='fused' supports the built-in pairs (EMA with RMS or Rectified; HeavyBall or NoMomentum with "
                "Identity) on floating-point parameters of one CPU or CUDA device (SGD on CPU: float32 and float64 "
                f"only); got momentum={momentum!r}, adaptive={adaptive!r} on "
                f"{sorted({f'{p.device.type} {p.dtype}' for p in group['params']})}"
            )

    def _rules(self, group: dict[str, Any]) -> tuple[Momentum, Adaptive]:
        """The (φ, ψ) pair of a param group; compositions build it from torch-named hyper-parameters."""
        return group["phi"], group["psi"]

    # ----------------------------------------------------------------------------------------------
    # public state

    @property
    def last_grad_norm(self) -> Tensor | None:
        """Global L2 norm of the gradients *before* clipping at the last step, as a 0-dim tensor.

        Reading its value (``.item()``) is the only host sync it costs. None until a step computed it
        (with ``max_grad_norm=None`` and ``nonfinite="ignore"`` the norm is never computed).
        """
        return self._last_grad_norm

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict (same per-parameter keys as torch.optim) plus ``skipped_steps``.

        φ/ψ objects of the generic class are configuration, not state: they are left out so that the dict
        loads with ``torch.load(weights_only=True)``; loading keeps the optimizer's own rules.
        """
        sd = super().state_dict()
        sd["param_groups"] = [{k: v for k, v in g.items() if k not in ("phi", "psi")} for g in sd["param_groups"]]
        sd["skipped_steps"] = self.skipped_steps
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load lrtune's or a torch.optim state dict of the same algorithm (missing keys keep their value)."""
        sd = dict(state_dict)
        saved_groups = sd.get("param_groups", [])
        if len(saved_groups) == len(self.param_groups):
            merged = []
            for current, saved in zip(self.param_groups, saved_groups, strict=True):
                group = {k: v for k, v in current.items() if k != "params"}
                group.update(saved)
                self._check_group({**group, "params": current["params"]})
                merged.append(group)
            sd["param_groups"] = merged
        super().load_state_dict(sd)
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    # ----------------------------------------------------------------------------------------------
    # the step

    # Under torch.compile the step runs eagerly (a graph break): it is host-side dispatch around
    # single-pass kernels, and torch's fused optimizer kernels have no meta implementation to trace.
    @torch.compiler.disable  # type: ignore[untyped-decorator]
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        work: list[tuple[int, dict[str, Any], list[Tensor], list[Tensor]]] = []
        all_grads: list[Tensor] = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            grads = [cast(Tensor, p.grad) for p in params]
            for p, g in zip(params, grads, strict=True):
                if g.is_sparse:
                    raise TypeError(f"sparse gradients are not supported (param group {index}, shape {tuple(p.shape)})")
            work.append((index, group, params, grads))
            all_grads += grads
        if not all_grads:
            return loss

        # Host bookkeeping first: on a GPU the non-finite check below waits for the device, and what is
        # left after it should be little more than queueing the kernels.
        created: list[Tensor] = []
        plans = [self._plan(index, group, params, grads, created) for index, group, params, grads in work if params]
        if self.max_grad_norm is not None or self.nonfinite != "ignore":
            norm = _global_norm(all_grads)
            self._last_grad_norm = norm
            if self.nonfinite != "ignore" and not bool(torch.isfinite(norm)):
                for p in created:  # a skipped step leaves no trace, not even fresh state
                    del self.state[p]
                if self.nonfinite == "raise":
                    raise FloatingPointError(
                        f"non-finite gradient (global norm {norm.item()}); pass nonfinite='skip' to skip such steps"
                    )
                self.skipped_steps += 1
                logger.warning("skipped a step with a non-finite gradient (%d so far)", self.skipped_steps)
                return loss
            if self.max_grad_norm is not None:
                coef = torch.clamp(self.max_grad_norm / (norm + CLIP_EPS), max=1.0)
                by_device: dict[torch.device, list[Tensor]] = {}
                for g in all_grads:
                    by_device.setdefault(g.device, []).append(g)
                for device, grads in by_device.items():  # one multi-tensor launch per device, as clip_grad_norm_
                    torch._foreach_mul_(grads, coef.to(device))

        self.last_step_info = [{} for _ in self.param_groups]
        for plan in plans:
            self._group_step(plan)
        return loss

    def _plan(
        self, index: int, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], created: list[Tensor]
    ) -> _Plan:
        """What a group's update will do: its rules, implementation, scalars and parameters bucketed by step."""
        momentum, adaptive = self._rules(group)
        created += [p for p in params if "step" not in self.state[p]]
        states = [self._param_state(p, momentum, adaptive) for p in params]
        impl = self.impl
        if impl == "auto":
            impl = "fused" if supports_fused(momentum, adaptive, params) else "foreach"
        hyper = {
            "lr": float(group["lr"]),
            "weight_decay": float(group["weight_decay"]),
            "decoupled_weight_decay": group["decoupled_weight_decay"],
            "maximize": group["maximize"],
        }
        # Parameters of a group share their step count unless some missed gradients: bucket by step.
        buckets: dict[float, list[int]] = {}
        for i, s in enumerate(states):
            buckets.setdefault(s["step"].item() + 1, []).append(i)
        return _Plan(index, momentum, adaptive, impl, hyper, params, grads, states, buckets)

    def _group_step(self, plan: _Plan) -> None:
        index, momentum, adaptive, impl, hyper = plan.index, plan.momentum, plan.adaptive, plan.impl, plan.hyper
        params, grads, states, buckets = plan.params, plan.grads, plan.states, plan.buckets
        for t, idx in buckets.items():
            torch._foreach_add_([states[i]["step"] for i in idx], 1)
            if impl == "reference":
                for i in idx:
                    p, g, s = params[i], grads[i], states[i]
                    reference_step(p, g, s, momentum=momentum, adaptive=adaptive, step=t, **hyper)
                continue
            rest = idx
            if impl == "fused":  # parameters whose layouts the kernels cannot walk take the multi-tensor path
                ok = fusable([params[i] for i in idx], [grads[i] for i in idx], [states[i] for i in idx])
                fast = [i for i, good in zip(idx, ok, strict=True) if good]
                rest = [i for i, good in zip(idx, ok, strict=True) if not good]
                if fast and not fused_step(
                    [params[i] for i in fast],
                    [grads[i] for i in fast],
                    [states[i] for i in fast],
                    momentum=momentum,
                    adaptive=adaptive,
                    step=t,
                    **hyper,
                ):
                    rest = idx  # not fusable at this step (RAdam's un-rectified steps): all take the generic path
            p_t = [params[i] for i in rest]
            for chunk in _cache_chunks(p_t) if rest else []:
                _foreach_step(
                    [p_t[i] for i in chunk],
                    [grads[rest[i]] for i in chunk],
                    [states[rest[i]] for i in chunk],
                    momentum=momentum,
                    adaptive=adaptive,
                    step=t,
                    **hyper,
                )
        t = max(buckets)
        self.last_step_info[index] = {
            "step": t,
            "lr": hyper["lr"],
            "bias_correction1": momentum.bias_correction(t),
            "step_size": hyper["lr"] * adaptive.step_scale(t) / momentum.bias_correction(t),
            **adaptive.step_info(t),
        }

    def _param_state(self, p: Tensor, momentum: Momentum, adaptive: Adaptive) -> State:
        state = self.state[p]
        if "step" not in state:
            # A fresh parameter, or one loaded from a torch.optim state that keeps no step (SGD).
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            for key, value in {**momentum.init_state(p), **adaptive.init_state(p)}.items():
                state.setdefault(key, value)
        return cast(State, state)


@dataclass
class _Plan:
    """One parameter group's update, prepared before the gradient check (see ``step``)."""

    index: int
    momentum: Momentum
    adaptive: Adaptive
    impl: str
    hyper: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    states: list[State]
    buckets: dict[float, list[int]]


def _cache_chunks(params: Sequence[Tensor]) -> list[list[int]]:
    """Indices of ``params`` split so that, on CPU, each chunk's tensors fit in the cache together.

    The multi-tensor path makes several passes (one per foreach op) over its tensors; over a whole model
    each pass streams from main memory, while over a chunk of ~1 M elements the passes after the first hit
    the cache. Element-wise math is unchanged by the split. Other devices get one chunk (fewer launches).
    """
    if not params or params[0].device.type != "cpu":
        return [list(range(len(params)))]
    chunks: list[list[int]] = [[]]
    size = 0
    for i, p in enumerate(params):
        if chunks[-1] and size + p.numel() > CPU_CHUNK_ELEMENTS:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += p.numel()
    return chunks


def _global_norm(grads: Sequence[Tensor]) -> Tensor:
    """‖g‖₂ over all gradients, computed as ``torch.nn.utils.clip_grad_norm_`` does."""
    first = grads[0].device
    norms = torch._foreach_norm(list(grads), 2.0)
    return torch.linalg.vector_norm(torch.stack([n.to(first) for n in norms]), 2.0)


def _foreach_step(
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
) -> None:
    """The generic multi-tensor step for any (φ, ψ), in torch.optim's order of operations."""
    if maximize:
        grads = list(torch._foreach_neg(grads))
    if weight_decay != 0:
        if not decoupled_weight_decay:
            grads = list(torch._foreach_add(grads, params, alpha=weight_decay))
        elif adaptive.applies_update(step):
            torch._foreach_mul_(params, 1 - lr * weight_decay)
    direction = momentum.update(states, grads, step)
    adaptive.update(states, grads, step)
    adaptive.apply(params, states, direction, momentum.bias_correction(step), lr, step)
