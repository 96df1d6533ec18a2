"""The generic adaptive optimizer: θ_t = θ_{t−1} − α_t · m_t · l_t with m_t = φ(g_1..g_t), l_t = ψ(g_1..g_t)."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from .._validate import check_choice, check_nonnegative, check_positive
from ._adaptive import Identity
from ._fused import fusable, fused_applies, fused_step, supports_fused
from ._momentum import HeavyBall, NoMomentum
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
# The t passed to rules that count no steps (SGD's): their math does not read it.
NO_STEP = 1.0
_IS_SPARSE = operator.attrgetter("is_sparse")

COMPILE_MESSAGE = (
    "lrtune's optimizer.step() runs eagerly and cannot be traced by torch.compile: it dispatches fused kernels "
    "from host-side bookkeeping and reads the previous step's non-finite check. Call optimizer.step() outside "
    "the compiled function (compile the forward and backward pass), or compile without fullgraph=True, where "
    "the step is a graph break and runs eagerly with exactly the eager result."
)


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

    **Non-finite gradients, without a host synchronisation.** The check runs on the device: the norm gives a
    flag (1.0 when ‖g‖ is NaN or infinite) that the fused kernels read there and that makes them leave
    parameters and state untouched, as torch's fused optimizers do with ``GradScaler``'s ``found_inf``. The
    host does not wait for the flag in the step that computes it; it reads it at the **next** ``step()`` (by
    then the device has normally finished that step; if not, the host waits for that step alone, never for
    work queued after it), or earlier where something asks. A bad step's host-side bookkeeping (step counts,
    state created in that step) is rolled back when the flag is read, so a skipped step leaves no trace.
    Parameters that take the multi-tensor or reference path (``impl="foreach"``/``"reference"``, custom rules,
    RAdam's first un-rectified steps, layouts the kernels cannot walk) need the flag on the host before their
    update: for those steps the host reads it at once (a synchronisation on a GPU, free on a CPU). Then:

    * ``nonfinite="raise"`` (default): the bad step is skipped, and ``FloatingPointError`` is raised by the
      first of: the next ``step()`` call (before it changes any parameter or state; its closure, if given, has
      run), reading :attr:`last_grad_norm`, or reading :attr:`skipped_steps`. The error is raised once;
      ``load_state_dict`` discards one that is pending. Raised steps are not counted in :attr:`skipped_steps`.
    * ``nonfinite="skip"``: the bad step is skipped and counted in :attr:`skipped_steps`, which reads the
      count lazily (waiting for the last step's check only when it is read) and is saved in the state dict.
    * ``nonfinite="ignore"``: no check, torch.optim's behaviour (one read of the gradients cheaper).

    ``state_dict()`` reads a pending check first (without raising), so a saved state never includes a skipped
    step. Step counts live in one host buffer per parameter group (``state[p]["step"]`` are views of it), so
    the per-step host work is per group, not per parameter.

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
        nonfinite: what a step with a NaN/Inf gradient does: ``"raise"``, ``"skip"`` or ``"ignore"`` (above).
        impl: ``"reference"`` (paper notation, one parameter at a time: the test oracle), ``"foreach"``
            (generic multi-tensor path, works for any φ/ψ), ``"fused"`` (single-pass kernels for the
            built-in pairs on CPU and CUDA) or ``"auto"`` (fused where supported, else foreach). Parameters
            whose layout the fused kernels cannot walk (a strided view; a gradient or state whose strides differ
            from its parameter's) take the multi-tensor path in either case, so every layout gets the same
            update.

    Hyper-parameters are checked before ``params`` is read, so ``RAdam(None, lr=-0.01)`` raises the
    ``ValueError`` that names ``lr``.
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
        self._check_hyperparameters(defaults)  # before torch reads params: the error names the argument
        self._skipped = 0
        self._unapplied = 0
        self._last_grad_norm: Tensor | None = None
        self._pending: _Pending | None = None
        self._error: FloatingPointError | None = None
        self._caches: dict[int, _GroupCache] = {}
        self._state_version = 0
        self._flag_buffers: dict[torch.device, Tensor] = {}
        #: Per param group, scalars of the last step: step (for rules that count steps), lr, bias
        #: corrections, ρ_t, r_t, step_size.
        self.last_step_info: list[dict[str, float]] = []
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """The checks that do not need the parameters."""
        check_nonnegative("lr", group["lr"])
        check_nonnegative("weight_decay", group["weight_decay"])
        for flag in ("decoupled_weight_decay", "maximize"):
            if not isinstance(group[flag], bool):
                raise TypeError(f"{flag} must be a bool, got {group[flag]!r}")
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

    def _check_group(self, group: dict[str, Any]) -> None:
        self._check_hyperparameters(group)
        for p in group["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                raise TypeError(f"params must be floating-point tensors, got one of dtype {p.dtype}")
            if p.is_complex():
                raise TypeError(f"complex parameters are not supported, got one of dtype {p.dtype}")
        momentum, adaptive = self._rules(group)
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
        """Global L2 norm of the gradients *before* clipping at the last step, as a 0-dim tensor on the device.

        Reading its value (``.item()``) is the host sync it costs. With ``nonfinite="raise"``, reading the
        property first reads the last step's non-finite check (waiting for that step) and raises
        ``FloatingPointError`` if it failed. None until a step computed it (with ``max_grad_norm=None`` and
        ``nonfinite="ignore"`` the norm is never computed).
        """
        if self.nonfinite == "raise":
            self._settle()
            self._raise_pending()
        return self._last_grad_norm

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because a gradient was NaN/Inf (``nonfinite="skip"``), read lazily: reading it waits for
        the last step's check. With ``nonfinite="raise"`` it stays 0, and reading it raises a pending error."""
        self._settle()
        self._raise_pending()
        return self._skipped

    def unapplied_steps(self, *, wait: bool = False) -> int:
        """How many ``step()`` calls did not update the parameters (a non-finite gradient, skipped or raised), as
        far as the host knows without waiting; ``wait=True`` reads the last step's check first.

        :class:`lrtune.schedules.LRScheduler` counts the updates actually applied with it.
        """
        if wait:
            self._settle()
        return self._unapplied

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict (same per-parameter keys as torch.optim) plus ``skipped_steps``.

        φ/ψ objects of the generic class are configuration, not state: they are left out so that the dict
        loads with ``torch.load(weights_only=True)``; loading keeps the optimizer's own rules. A pending
        non-finite check is read first (a skipped step is rolled back; an error stays pending).
        """
        self._settle()
        sd = super().state_dict()
        sd["param_groups"] = [{k: v for k, v in g.items() if k not in ("phi", "psi")} for g in sd["param_groups"]]
        sd["skipped_steps"] = self._skipped
        sd["optimizer_type"] = type(self).__name__
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load lrtune's or a torch.optim state dict of the same algorithm (missing keys keep their value).

        A pending non-finite error is discarded: the loaded state replaces the one it was about.
        """
        self._settle()
        self._check_state_kind(state_dict)
        self._error = None
        sd = {k: v for k, v in state_dict.items() if k != "optimizer_type"}
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
        self._skipped = int(state_dict.get("skipped_steps", 0))
        for group in self.param_groups:  # a state saved by an older SGD, which kept a step count torch's does not
            if not any(rule.counts_steps for rule in self._rules(group)):
                for p in group["params"]:
                    if p in self.state:
                        self.state[p].pop("step", None)
        self._invalidate()

    def _check_state_kind(self, state_dict: dict[str, Any]) -> None:
        """Refuse, naming both, a state dict of another algorithm (its per-parameter keys are not this one's):
        loaded, it would fail at every step."""
        mine = type(self).__name__
        saved_groups = state_dict.get("param_groups", [])
        state = state_dict.get("state", {})
        for index, (current, saved) in enumerate(zip(self.param_groups, saved_groups, strict=False)):
            rules = self._rules({**{k: v for k, v in current.items() if k != "params"}, **saved})
            probe = torch.zeros(1)
            required = {k for rule in rules for k in rule.init_state(probe)}
            allowed = required | {k for rule in rules for k in rule.lazy_state} | {"step"}
            for pid in saved.get("params", []):
                keys = set(state.get(pid, {}))
                if keys and not (required <= keys <= allowed):
                    theirs = state_dict.get("optimizer_type") or _guess_kind(keys)
                    raise ValueError(
                        f"this state dict is {theirs}'s (parameter {pid} of group {index} holds {sorted(keys)}); "
                        f"{mine} keeps {sorted(required | (allowed - {'step'}))}: it cannot be loaded into {mine}"
                    )

    def __getstate__(self) -> dict[str, Any]:
        self._settle()
        state = super().__getstate__()
        keep = ("max_grad_norm", "nonfinite", "impl", "_skipped", "_unapplied", "_last_grad_norm", "last_step_info")
        return {**state, **{k: self.__dict__[k] for k in keep}, "_error": self._error}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._pending = None
        self._caches = {}
        self._state_version = 0
        self._flag_buffers = {}

    # ----------------------------------------------------------------------------------------------
    # the step

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns the closure's loss, if any."""
        if torch.compiler.is_compiling():
            torch._dynamo.graph_break(msg=COMPILE_MESSAGE)  # with fullgraph=True, an error that says what to do
        return self._step(closure)

    @torch.compiler.disable  # type: ignore[untyped-decorator]
    @torch.no_grad()
    def _step(self, closure: Callable[[], Any] | None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = self._with_grads()
        all_grads = [g for _, _, _, grads in work for g in grads]
        norm = flag = None
        if all_grads and (self.max_grad_norm is not None or self.nonfinite != "ignore"):
            norm = _global_norm(all_grads) if self.max_grad_norm is not None else _check_norm(all_grads)
            if self.nonfinite != "ignore":
                flag = torch.logical_not(torch.isfinite(norm)).to(torch.float32)
        # The previous step's check, queued before this step's norm: read it now, and raise for it if asked.
        self._settle()
        self._raise_pending()
        if not all_grads:
            return loss
        if norm is not None:
            self._last_grad_norm = norm
        if self.max_grad_norm is not None:
            assert norm is not None
            coef = torch.clamp(self.max_grad_norm / (norm + CLIP_EPS), max=1.0)
            if flag is not None:  # a skipped step leaves the gradients as they were
                coef = torch.where(flag == 0, coef, 1.0)
            by_device: dict[torch.device, list[Tensor]] = {}
            for g in all_grads:
                by_device.setdefault(g.device, []).append(g)
            for device, grads in by_device.items():  # one multi-tensor launch per device, as clip_grad_norm_
                torch._foreach_mul_(grads, coef.to(device))

        plans = [self._plan(index, group, params, grads) for index, group, params, grads in work]
        known_bad = None
        if flag is not None and any(plan.host_work for plan in plans):
            known_bad = bool(flag.item())  # the multi-tensor path cannot read a device flag: read it now
        previous_info = self.last_step_info
        self.last_step_info = [{} for _ in self.param_groups]
        for plan in plans:
            self._apply(plan, flag, known_bad)
        if flag is not None:
            assert norm is not None
            self._pending = _Pending(self._queue_flag(flag, norm), plans, previous_info)
            if known_bad is not None:
                self._settle()
        return loss

    def _with_grads(self) -> list[tuple[int, dict[str, Any], list[Tensor], list[Tensor]]]:
        """Per param group with gradients: its index, the group, the parameters that have one and theirs."""
        work = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = cast(list[Tensor], [p.grad for p in params])
            if any(map(_IS_SPARSE, grads)):
                shape = next(tuple(p.shape) for p in params if cast(Tensor, p.grad).is_sparse)
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients (param group {index}, a parameter of "
                    f"shape {shape}); use torch.optim.SparseAdam for sparse embeddings"
                )
            work.append((index, group, params, grads))
        return work

    def _queue_flag(self, flag: Tensor, norm: Tensor) -> _Flag:
        """The flag and the norm, on their way to the host: on a GPU an asynchronous copy into pinned memory and an
        event to wait for; on a CPU the values themselves."""
        packed = torch.stack([flag, norm.to(torch.float32)])
        if flag.device.type != "cuda":
            return _Flag(packed, None)
        host = self._flag_buffers.get(flag.device)
        if host is None:
            host = self._flag_buffers[flag.device] = torch.empty(2, dtype=torch.float32, pin_memory=True)
        host.copy_(packed, non_blocking=True)  # the previous step's copy was read before this one is queued
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record(torch.cuda.current_stream(flag.device))
        return _Flag(host, event)

    def _settle(self) -> None:
        """Read the last step's non-finite check, if not read yet; roll that step back if it was bad."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        bad, norm = pending.flag.read()
        if not bad:
            return
        for plan in pending.plans:
            if plan.cache.steps is not None:
                plan.cache.steps.sub_(1)
            for s in plan.new_buffers:
                s.pop("momentum_buffer", None)
            for p in plan.created:
                self.state.pop(p, None)
            if plan.created:
                self._invalidate()
        self.last_step_info = pending.info
        self._unapplied += 1
        if self.nonfinite == "skip":
            self._skipped += 1
            logger.warning("skipped a step with a non-finite gradient (%d so far)", self._skipped)
        else:
            self._error = FloatingPointError(
                f"non-finite gradient (global norm {norm}) at the last step, which was skipped (parameters and state "
                "untouched); pass nonfinite='skip' to skip such steps and go on"
            )

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _invalidate(self) -> None:
        """State was created, deleted or loaded: the per-group caches are rebuilt at the next step."""
        self._state_version += 1

    # ----------------------------------------------------------------------------------------------
    # per-group bookkeeping

    def _plan(self, index: int, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> _Plan:
        """What a group's update will do: its rules, implementation, scalars and parameters bucketed by step."""
        momentum, adaptive = self._rules(group)
        cache = self._caches.get(index)
        created: list[Tensor] = []
        if (
            cache is None
            or cache.version != self._state_version
            or cache.rules != (type(momentum), type(adaptive))
            or len(cache.params) != len(params)
            or not all(map(operator.is_, cache.params, params))
        ):
            cache, created = self._build_cache(index, params, momentum, adaptive)
        hyper = {
            "lr": float(group["lr"]),
            "weight_decay": float(group["weight_decay"]),
            "decoupled_weight_decay": group["decoupled_weight_decay"],
            "maximize": group["maximize"],
        }
        states = cache.states
        everyone = list(range(len(params)))
        if cache.steps is None:
            steps: dict[float, list[int]] = {NO_STEP: everyone}
        else:
            cache.steps.add_(1)
            values = cache.steps.tolist()
            low, high = min(values), max(values)
            if low == high:  # the usual case: the group's parameters share their step count
                steps = {low: everyone}
            else:  # some missed gradients at earlier steps
                steps = {}
                for i, t in enumerate(values):
                    steps.setdefault(t, []).append(i)
        buckets = []
        for t, idx in steps.items():
            fast: list[int] = []
            if cache.fused:
                whole = len(idx) == len(params)
                sub_states = states if whole else [states[i] for i in idx]
                if fused_applies(momentum, adaptive, t, sub_states):
                    # The layout guard, cheap in the usual case: everything contiguous (the parameters and the
                    # moments were checked when the cache was built, the gradients change every step).
                    buffers: list[Tensor] = []
                    if type(momentum) is HeavyBall and sub_states[0].get("momentum_buffer") is not None:
                        buffers = [s["momentum_buffer"] for s in sub_states]  # all or none (fused_applies)
                    contiguous = all(map(Tensor.is_contiguous, grads)) and all(map(Tensor.is_contiguous, buffers))
                    if whole and cache.dense and contiguous:
                        fast = idx
                    else:
                        ok = fusable([params[i] for i in idx], [grads[i] for i in idx], sub_states)
                        fast = [i for i, good in zip(idx, ok, strict=True) if good]
            taken = set(fast)
            buckets.append(_Bucket(t, fast, [] if len(fast) == len(idx) else [i for i in idx if i not in taken]))
        host_work = self.impl == "reference" or any(b.generic for b in buckets)
        return _Plan(index, momentum, adaptive, cache, hyper, params, grads, buckets, created, host_work)

    def _build_cache(
        self, index: int, params: list[Tensor], momentum: Momentum, adaptive: Adaptive
    ) -> tuple[_GroupCache, list[Tensor]]:
        """Per-group facts that hold from step to step: states (created here for new parameters), the step-count
        buffer, and whether the fused kernels apply. Returns the parameters whose state this created."""
        counts_steps = momentum.counts_steps or adaptive.counts_steps
        keeps_state = momentum.keeps_state or adaptive.keeps_state or counts_steps
        created = [p for p in params if not self.state.get(p)] if keeps_state else []
        states: list[State] = []
        for p in params:
            if not keeps_state:
                states.append({})  # nothing to keep (SGD without momentum): torch.optim.SGD keeps no entry either
                continue
            state = self.state[p]
            if not state or (counts_steps and "step" not in state):
                # A fresh parameter, or one loaded from a state without a step count (torch.optim.SGD's).
                if counts_steps:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                for key, value in {**momentum.init_state(p), **adaptive.init_state(p)}.items():
                    state.setdefault(key, value)
            states.append(cast(State, state))
        steps = None
        if counts_steps:
            # One buffer per group, whose elements are the parameters' step tensors: one add per step.
            dtype = torch.float64 if any(s["step"].dtype == torch.float64 for s in states) else torch.float32
            steps = torch.tensor([float(s["step"]) for s in states], dtype=dtype)
            for i, s in enumerate(states):
                s["step"] = steps[i]
        impl = self.impl
        if impl == "auto":
            impl = "fused" if supports_fused(momentum, adaptive, params) else "foreach"
        kernel_state = [v for s in states for k, v in s.items() if k in ("exp_avg", "exp_avg_sq", "momentum_buffer")]
        dense = all(t.is_contiguous() for t in (*params, *kernel_state))
        cache = _GroupCache(list(params), (type(momentum), type(adaptive)), states, steps, impl, dense)
        cache.version = self._state_version
        self._caches[index] = cache
        return cache, created

    def _apply(self, plan: _Plan, flag: Tensor | None, known_bad: bool | None) -> None:
        momentum, adaptive, hyper, cache = plan.momentum, plan.adaptive, plan.hyper, plan.cache
        params, grads, states = plan.params, plan.grads, cache.states
        for bucket in plan.buckets:
            t = bucket.step
            if cache.impl == "reference":
                if not known_bad:
                    for i in bucket.generic:
                        reference_step(
                            params[i], grads[i], states[i], momentum=momentum, adaptive=adaptive, step=t, **hyper
                        )
                continue
            if bucket.fused:
                whole = len(bucket.fused) == len(params)
                sub = states if whole else [states[i] for i in bucket.fused]
                if type(momentum) is HeavyBall and sub[0].get("momentum_buffer") is None:
                    plan.new_buffers += sub  # created by this step: removed again if it turns out skipped
                fused_step(
                    params if whole else [params[i] for i in bucket.fused],
                    grads if whole else [grads[i] for i in bucket.fused],
                    sub,
                    momentum=momentum,
                    adaptive=adaptive,
                    step=t,
                    found_inf=None if flag is None else flag.to(params[0].device),
                    **hyper,
                )
            if bucket.generic and not known_bad:
                rest = bucket.generic
                p_t = [params[i] for i in rest]
                for chunk in _cache_chunks(p_t):
                    _foreach_step(
                        [p_t[i] for i in chunk],
                        [grads[rest[i]] for i in chunk],
                        [states[rest[i]] for i in chunk],
                        momentum=momentum,
                        adaptive=adaptive,
                        step=t,
                        **hyper,
                    )
        t = max(b.step for b in plan.buckets)
        info = {"step": t} if cache.steps is not None else {}
        self.last_step_info[plan.index] = {
            **info,
            "lr": hyper["lr"],
            "bias_correction1": momentum.bias_correction(t),
            "step_size": hyper["lr"] * adaptive.step_scale(t) / momentum.bias_correction(t),
            **adaptive.step_info(t),
        }


@dataclass
class _GroupCache:
    """What a group's update needs that does not change from step to step while the same parameters have gradients
    and no state is created, deleted or loaded."""

    params: list[Tensor]
    rules: tuple[type, type]
    states: list[State]
    steps: Tensor | None  # 1-D host buffer; states[i]["step"] is steps[i] (None: the rules count no steps)
    impl: str  # "fused", "foreach" or "reference" (what "auto" resolved to)
    dense: bool  # parameters and kernel state contiguous: contiguous gradients then suffice for the kernels
    version: int = 0

    @property
    def fused(self) -> bool:
        return self.impl == "fused"


@dataclass
class _Bucket:
    """Parameters of a group at the same step t, split between the fused kernels and the generic path."""

    step: float
    fused: list[int]
    generic: list[int]


def _guess_kind(keys: set[str]) -> str:
    """Which optimizer a per-parameter state's keys suggest."""
    if "max_exp_avg_sq" in keys:
        return "Adam(amsgrad=True)"
    if {"exp_avg", "exp_avg_sq"} <= keys:
        return "an Adam-family optimizer (Adam, AdamW, RAdam)"
    if "momentum_buffer" in keys:
        return "SGD with momentum"
    return f"an optimizer keeping {sorted(keys)}"


@dataclass
class _Plan:
    """One parameter group's update, prepared after the previous step's check was read (see ``_step``)."""

    index: int
    momentum: Momentum
    adaptive: Adaptive
    cache: _GroupCache
    hyper: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    buckets: list[_Bucket]
    created: list[Tensor]  # parameters whose state this step created
    host_work: bool  # some of the update runs on the generic path, which needs the non-finite flag on the host
    new_buffers: list[State] = field(default_factory=list)  # heavy-ball buffers the fused kernel creates


@dataclass
class _Flag:
    """A step's non-finite flag and gradient norm, [flag, norm], readable on the host once ``event`` has passed."""

    values: Tensor
    event: Any  # torch.cuda.Event, or None on a CPU

    def read(self) -> tuple[bool, float]:
        if self.event is not None:
            self.event.synchronize()  # waits for that step's kernels, not for what was queued after them
        flag, norm = self.values.tolist()
        return flag != 0.0, norm


@dataclass
class _Pending:
    """A step whose non-finite check the host has not read yet, and what to roll back if it was bad."""

    flag: _Flag
    plans: list[_Plan]
    info: list[dict[str, float]]


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
    norms = torch._foreach_norm(list(grads), 2.0)
    try:
        stacked = torch.stack(norms)  # the usual case: one device
    except RuntimeError:  # gradients on several devices: gather the norms on the first one
        first = grads[0].device
        stacked = torch.stack([n.to(first) for n in norms])
    return torch.linalg.vector_norm(stacked, 2.0)


def _check_norm(grads: Sequence[Tensor]) -> Tensor:
    """‖g‖₂ over all gradients for the non-finite check alone (no clipping).

    On a CPU, ``torch._foreach_norm`` reads large tensors at about half the rate of a read-only pass, which
    made the check cost twice what reading the gradients costs. There the squared norm of each large
    (≥ ``_DOT_MIN_NUMEL`` elements) contiguous float32/float64 gradient is its BLAS dot product with itself: one
    read pass, and, with MKL's dot, closer to the exact (float64) norm than ``_foreach_norm`` (relative error
    1.8e-7 against 1.4e-5, measured on the 23 M-parameter set of ``benchmarks/optimizer_step.py``). Below that
    size a call per tensor costs more than it saves (~4 µs each), so small gradients keep the one multi-tensor
    call. The dot overflows and underflows where ``_foreach_norm`` does (neither rescales: a gradient element
    beyond ~1.8e19 gives inf in both), so the check flags exactly the same steps. Every other gradient (GPU,
    half precision, complex, non-contiguous) goes through ``_global_norm``.
    """
    if not all(g.device.type == "cpu" for g in grads):
        return _global_norm(grads)
    squares: list[Tensor] = []
    rest: list[Tensor] = []
    for g in grads:
        if g.dtype in _DOT_DTYPES and g.numel() >= _DOT_MIN_NUMEL and g.is_contiguous():
            flat = g.view(-1)
            squares.append(torch.dot(flat, flat).to(torch.float32))
        else:
            rest.append(g)
    if rest:
        squares.append(torch.square(_global_norm(rest)).to(torch.float32))
    return torch.sqrt(torch.stack(squares).sum())


_DOT_DTYPES = (torch.float32, torch.float64)
_DOT_MIN_NUMEL = 1 << 16  # measured crossover: 64 Ki floats read in ~15 µs by either path


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
