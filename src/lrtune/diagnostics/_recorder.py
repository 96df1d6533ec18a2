"""Step hooks that record what the RAdam paper plots, for any ``torch.optim.Optimizer`` (lrtune's or not).

:class:`Diagnostics` attaches a pre- and a post-step hook to an optimizer. On sampled steps (every step up to
``first``, then every ``every``-th) it records:

* absolute-gradient histograms on log-spaced bins (:func:`abs_log_histogram`), pooled over the model and per
  parameter kind (embedding, attention, ffn, norm, other; kinds come from the model's modules);
* the global gradient norm before the step and after any clipping done inside it, and each group's LR;
* for Adam-family state (``exp_avg_sq``): the element-wise adaptive rate ``l_t = 1 / (sqrt(v_t / (1 − β2^t)) + ε)``
  — mean, variance, min, max and quantiles over the parameters (quantiles from a strided subsample of at most
  16,384 values), pooled and per kind;
* for RAdam (lrtune's or torch's): ρ_t, the rectification term r_t (None while un-rectified) and the step size;
* per group, the update-to-weight ratio ‖θ_t − θ_{t−1}‖ / ‖θ_{t−1}‖, and the cosine between the momentum
  (``exp_avg`` or ``momentum_buffer``) and the gradient.

Records go to :attr:`Diagnostics.records`, optionally to a JSONL file (one line per sampled step, flushed) and to a
TensorBoard ``SummaryWriter``. Nothing is computed on steps that are not sampled, and no hook exists once
:meth:`Diagnostics.close` has run (or the ``with`` block has ended).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor, nn

from .._json import dumps
from .._rectification import rectification, rho_t
from ._histogram import DEFAULT_BINS, LogBins, abs_log_histogram

__all__ = ["KINDS", "Diagnostics", "parameter_kinds"]

#: Parameter kinds used to split statistics (the RAdam paper's Figure 2 pools all of them).
KINDS = ("embedding", "attention", "ffn", "norm", "other")
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
# Quantiles are taken over at most this many elements (a fixed-stride subsample of larger sets): a full sort of
# a model's worth of rates would cost more than the training step; mean, variance, min and max stay exact.
_QUANTILE_MAX_ELEMENTS = 1 << 14
_FFN_NAMES = ("linear1", "linear2", "mlp", "ffn", "fc", "feed_forward")
_ATTENTION_NAMES = ("attn", "attention")


def parameter_kinds(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> kind`` from the module that owns each parameter (a tied parameter keeps its first)."""
    kinds: dict[int, str] = {}
    for name, module in model.named_modules():
        lowered = name.lower()
        if isinstance(module, nn.Embedding):
            kind = "embedding"
        elif (
            isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d))
            or "norm" in type(module).__name__.lower()
        ):
            kind = "norm"
        elif isinstance(module, nn.MultiheadAttention) or any(k in lowered for k in _ATTENTION_NAMES):
            kind = "attention"
        elif any(lowered.endswith(k) or f".{k}" in lowered for k in _FFN_NAMES):
            kind = "ffn"
        else:
            kind = "other"
        for p in module.parameters(recurse=False):
            kinds.setdefault(id(p), kind)
    return kinds


def _norm(tensors: list[Tensor]) -> float:
    if not tensors:
        return 0.0
    norms = torch._foreach_norm([t.detach() for t in tensors])
    return math.sqrt(float(torch.stack([n.double().to(norms[0].device) for n in norms]).square().sum()))


def _distribution(values: Tensor) -> dict[str, float]:
    """Mean, variance (population), min, max and quantiles of a 1-D tensor (quantiles of a strided subsample
    when it holds more than 16,384 elements)."""
    v = values
    n = v.numel()
    mean = float(v.sum(dtype=torch.float64)) / n
    var = float((v - mean).square().sum(dtype=torch.float64)) / n  # two passes: no cancellation
    out = {"mean": mean, "var": var, "min": float(v.min()), "max": float(v.max())}
    sample = v if v.numel() <= _QUANTILE_MAX_ELEMENTS else v[:: math.ceil(v.numel() / _QUANTILE_MAX_ELEMENTS)]
    qs = torch.quantile(sample, torch.tensor(QUANTILES, dtype=sample.dtype, device=sample.device))
    out.update({f"q{round(q * 100):02d}": float(x) for q, x in zip(QUANTILES, qs, strict=True)})
    return out


class Diagnostics:
    """Record gradient histograms, adaptive-LR statistics, norms and update ratios of an optimizer's steps.

    Example:
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        >>> with Diagnostics(opt, model, first=10) as diag:
        ...     for _ in range(3):
        ...         model(torch.randn(8, 4)).square().mean().backward(); opt.step(); opt.zero_grad()
        >>> len(diag.records)
        3

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        model: the model, to split statistics by parameter kind (without it every parameter is "other").
        first: record every step up to this one (the paper's window is the first ~100).
        every: then every ``every``-th step.
        bins: the histogram bins.
        path: a JSONL file to append one line per recorded step to.
        tensorboard: a ``torch.utils.tensorboard.SummaryWriter`` for the scalar statistics.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module | None = None,
        *,
        first: int = 100,
        every: int = 10,
        bins: LogBins = DEFAULT_BINS,
        path: str | os.PathLike[str] | None = None,
        tensorboard: Any = None,
    ) -> None:
        if first < 0:
            raise ValueError(f"first must be >= 0, got {first!r}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.optimizer, self.first, self.every, self.bins = optimizer, first, every, bins
        self.kinds = parameter_kinds(model) if model is not None else {}
        self.records: list[dict[str, Any]] = []
        self.step = 0
        self._writer = tensorboard
        self._file: IO[str] | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._before: list[list[Tensor]] | None = None
        self._pending: dict[str, Any] | None = None
        self._handles = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
        ]

    # ------------------------------------------------------------------------------------------------
    def sampled(self, step: int) -> bool:
        """Whether step ``step`` (1-based) is recorded."""
        return step <= self.first or step % self.every == 0

    def close(self) -> None:
        """Remove the hooks and close the JSONL file; the records stay."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Diagnostics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------
    def _params_with_grad(self) -> list[list[Tensor]]:
        return [[p for p in g["params"] if p.grad is not None] for g in self.optimizer.param_groups]

    def _by_kind(self, params: Iterable[Tensor]) -> dict[str, list[Tensor]]:
        out: dict[str, list[Tensor]] = {}
        for p in params:
            out.setdefault(self.kinds.get(id(p), "other"), []).append(p)
        return out

    @torch.no_grad()
    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.step += 1
        if not self.sampled(self.step):
            return
        groups = self._params_with_grad()
        grads = [p.grad for ps in groups for p in ps if p.grad is not None]
        by_kind = self._by_kind(p for ps in groups for p in ps)
        hist = {
            kind: abs_log_histogram([p.grad for p in ps if p.grad is not None], self.bins)
            for kind, ps in by_kind.items()
        }
        pooled = torch.zeros(self.bins.size, dtype=torch.long)
        for counts in hist.values():
            pooled += counts.cpu()
        self._pending = {
            "step": self.step,
            "grad_norm": _norm(grads),
            "hist": {"all": pooled.tolist(), **{k: v.tolist() for k, v in sorted(hist.items())}},
        }
        self._before = [[p.detach().clone() for p in ps] for ps in groups]

    @torch.no_grad()
    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._pending is None or self._before is None:
            return
        record, before = self._pending, self._before
        self._pending = self._before = None
        groups = self._params_with_grad()
        record["grad_norm_after_clip"] = _norm([p.grad for ps in groups for p in ps if p.grad is not None])
        record["lr"] = [float(g["lr"]) for g in optimizer.param_groups]
        record["update_ratio"] = [
            _norm([a - b for a, b in zip(ps, old, strict=True)]) / max(_norm(old), 1e-30) if ps else None
            for ps, old in zip(groups, before, strict=True)
        ]
        record["momentum_cosine"] = self._momentum_cosine(groups)
        adaptive = self._adaptive_rates(groups)
        if adaptive:
            record["adaptive_lr"] = adaptive
        rect = self._rectification()
        if rect:
            record["rectification"] = rect
        self._emit(record)

    def _momentum_cosine(self, groups: list[list[Tensor]]) -> float | None:
        dot = mm = gg = 0.0
        found = False
        for ps in groups:
            for p in ps:
                state = self.optimizer.state.get(p, {})
                m = state.get("exp_avg", state.get("momentum_buffer"))
                if m is None or p.grad is None:
                    continue
                found = True
                g = p.grad
                dot += float((m * g).sum(dtype=torch.float64))
                mm += float(m.square().sum(dtype=torch.float64))
                gg += float(g.square().sum(dtype=torch.float64))
        if not found or mm == 0 or gg == 0:
            return None
        return dot / math.sqrt(mm * gg)

    def _adaptive_rates(self, groups: list[list[Tensor]]) -> dict[str, dict[str, float]]:
        """Statistics of l_t = 1 / (sqrt(v_t / (1 − β2^t)) + ε) over the parameters, pooled and per kind."""
        rates: dict[str, list[Tensor]] = {}
        for group, ps in zip(self.optimizer.param_groups, groups, strict=True):
            betas, eps = group.get("betas"), group.get("eps")
            if betas is None or eps is None:
                continue
            beta2 = float(betas[1])
            for p in ps:
                state = self.optimizer.state.get(p, {})
                v, step = state.get("exp_avg_sq"), state.get("step")
                if v is None or step is None or float(step) < 1:
                    continue
                bias = 1 - beta2 ** float(step)
                rate = 1.0 / ((v / bias).sqrt() + float(eps))
                rates.setdefault(self.kinds.get(id(p), "other"), []).append(rate.flatten())
        if not rates:
            return {}
        out = {kind: _distribution(torch.cat(v)) for kind, v in sorted(rates.items())}
        return {"all": _distribution(torch.cat([t for v in rates.values() for t in v])), **out}

    def _rectification(self) -> dict[str, Any]:
        """ρ_t, r_t and the step size of RAdam-type optimizers (first group), else {}."""
        info = getattr(self.optimizer, "last_step_info", None)
        if info and info[0] and "rho_t" in info[0]:  # lrtune's own account of its step
            first = info[0]
            return {
                "rho": first["rho_t"],
                "r": first["r_t"] if first["rectified"] else None,
                "step_size": first["step_size"],
            }
        if isinstance(self.optimizer, torch.optim.RAdam):
            group = self.optimizer.param_groups[0]
            states = [self.optimizer.state[p] for p in group["params"] if p in self.optimizer.state]
            if not states:
                return {}
            t = float(states[0]["step"])
            beta1, beta2 = (float(b) for b in group["betas"])
            rho = rho_t(beta2, t)
            r = rectification(beta2, t) if rho > 5 else None
            return {
                "rho": rho,
                "r": r,
                "step_size": float(group["lr"]) * (r if r is not None else 1.0) / (1 - beta1**t),
            }
        return {}

    def _emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(dumps(record) + "\n")
            self._file.flush()
        if self._writer is not None:
            step = record["step"]
            for key in ("grad_norm", "grad_norm_after_clip", "momentum_cosine"):
                if record.get(key) is not None:
                    self._writer.add_scalar(f"diagnostics/{key}", record[key], step)
            for kind, stats in record.get("adaptive_lr", {}).items():
                for name, value in stats.items():
                    self._writer.add_scalar(f"diagnostics/adaptive_lr/{kind}/{name}", value, step)
            for key, value in record.get("rectification", {}).items():
                if value is not None:
                    self._writer.add_scalar(f"diagnostics/{key}", value, step)
