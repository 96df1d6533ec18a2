"""The LR range test (Smith 2015/2017): raise the LR every update and watch the loss.

One update per LR, from ``start_lr`` to ``end_lr`` over ``num_steps`` updates, exponentially (or linearly):
``lr_i = start · (end / start) ** (i / (num_steps − 1))`` for update i = 0 … num_steps − 1, the same convention as
torch-lr-finder's ``range_test``. The loss of each update's batch is smoothed as an exponential moving average
(``smoothed_0 = loss_0``, ``smoothed_i = s · loss_i + (1 − s) · smoothed_{i−1}``) and the test stops once the
smoothed loss exceeds ``diverge_threshold`` times its best value (that update is kept). The model, the optimizer
and the RNG state are restored afterwards: the caller's model is untouched.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validate import check_choice, check_positive, check_steps
from ..runner import build_optimizer
from ..runner._trainer import OptimizerSpec
from ..workloads import Workload

__all__ = ["LREstimate", "RangeTestResult", "estimate_lr", "lr_range_test"]

LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


@dataclass
class RangeTestResult:
    """The curve of an LR range test: per update its LR, raw and smoothed loss (and validation loss if asked)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    valid_losses: list[float] | None = None
    diverged: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def suggestions(self) -> dict[str, float]:
        """Suggested peak LRs: ``steepest`` (the most negative slope of the smoothed loss in log LR, skipping the
        first tenth), ``valley`` (the middle of the longest stretch over which the smoothed loss keeps falling)
        and ``minimum_over_10`` (the LR of the lowest smoothed loss, divided by 10)."""
        n = len(self.smoothed)
        if n < 3:
            raise ValueError(f"suggestions need at least 3 points, the test recorded {n}")
        logs = [math.log10(lr) for lr in self.lrs]
        skip = max(1, n // 10)
        slopes = [
            (self.smoothed[i + 1] - self.smoothed[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(skip, n - 1)
        ]
        steepest = skip + min(range(len(slopes)), key=slopes.__getitem__)
        # longest strictly decreasing subsequence of the smoothed loss: its first and last indices
        length, begin = [1] * n, list(range(n))
        for i in range(n):
            for j in range(i):
                if self.smoothed[j] > self.smoothed[i] and length[j] + 1 > length[i]:
                    length[i], begin[i] = length[j] + 1, begin[j]
        end = max(range(n), key=lambda i: (length[i], -i))
        valley = (begin[end] + end) // 2
        best = min(range(n), key=self.smoothed.__getitem__)
        return {"steepest": self.lrs[steepest], "valley": self.lrs[valley], "minimum_over_10": self.lrs[best] / 10}

    def plot(self, ax: Any = None) -> Any:
        """Raw and smoothed loss against the LR (log scale) with the suggestions marked; returns the axes."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("plotting needs matplotlib: pip install 'lrtune[plot]'") from e
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        ax.plot(self.lrs, self.losses, alpha=0.3, label="loss")
        ax.plot(self.lrs, self.smoothed, label="smoothed loss")
        if self.valid_losses is not None:
            ax.plot(self.lrs, self.valid_losses, label="validation loss")
        if len(self.smoothed) >= 3:
            for (name, lr), style in zip(self.suggestions().items(), ("--", ":", "-."), strict=True):
                ax.axvline(lr, linestyle=style, color="gray", label=f"{name}: {lr:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.legend(fontsize="small")
        return ax


def _lr_at(i: int, n: int, start: float, end: float, mode: str) -> float:
    r = i / (n - 1)
    return start * (end / start) ** r if mode == "exp" else start + (end - start) * r


def lr_range_test(
    target: Workload | tuple[torch.nn.Module, LossFn, Iterable[Any]],
    *,
    optimizer: OptimizerSpec,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    smooth: float = 0.05,
    diverge_threshold: float = 4.0,
    batch_size: int = 64,
    seed: int = 0,
    valid_loss: Callable[[torch.nn.Module], float] | None = None,
) -> RangeTestResult:
    """Run an LR range test on a workload (fresh model from ``seed``, its training batches of ``batch_size``) or
    on ``(model, loss_fn, batches)`` with ``loss_fn(model, batch) -> loss``; the model is restored afterwards.

    ``optimizer`` is a spec (``{"name": "adam"}``; its ``lr`` is replaced) or a factory ``params -> Optimizer``.
    ``valid_loss(model)``, if given, is recorded after every update (slow, but shows over-fitting LRs).
    """
    check_positive("start_lr", start_lr)
    if not end_lr > start_lr:
        raise ValueError(f"end_lr must be > start_lr ({start_lr!r}), got {end_lr!r}")
    num_steps = check_steps("num_steps", num_steps, minimum=2)
    check_choice("mode", mode, ("exp", "linear"))
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}")
    if not diverge_threshold > 1:
        raise ValueError(f"diverge_threshold must be > 1, got {diverge_threshold!r}")

    rng = torch.get_rng_state()
    if isinstance(target, tuple):
        model, loss_fn, batch_source = target
        saved = copy.deepcopy(model.state_dict())
        batches: Iterator[Any] = iter(batch_source)
    else:
        model, loss_fn, saved = target.build_model(seed), target.loss, None
        batches = target.train_batches(batch_size, seed)
    spec = dict(optimizer, lr=start_lr) if isinstance(optimizer, dict) else optimizer
    opt = build_optimizer(spec, model.parameters())
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    valid: list[float] = []
    diverged = False
    was_training = model.training
    try:
        model.train()
        best = math.inf
        for i in range(num_steps):
            lr = _lr_at(i, num_steps, start_lr, end_lr, mode)
            for group in opt.param_groups:
                group["lr"] = lr
            try:
                batch = next(batches)
            except StopIteration:
                break
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            loss.backward()  # type: ignore[no-untyped-call]
            try:
                opt.step()
            except FloatingPointError:
                diverged = True
                break
            value = loss.item()
            if valid_loss is not None:
                model.eval()
                valid.append(float(valid_loss(model)))
                model.train()
            lrs.append(lr)
            losses.append(value)
            smoothed.append(value if i == 0 else smooth * value + (1 - smooth) * smoothed[-1])
            best = min(best, smoothed[-1])
            if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge_threshold * best:
                diverged = True
                break
    finally:
        if saved is not None:
            model.load_state_dict(saved)
        model.train(was_training)
        torch.set_rng_state(rng)
    settings = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps, "mode": mode, "smooth": smooth}
    settings |= {
        "diverge_threshold": diverge_threshold,
        "optimizer": optimizer if isinstance(optimizer, dict) else repr(optimizer),
    }
    return RangeTestResult(lrs, losses, smoothed, valid if valid_loss is not None else None, diverged, settings)


@dataclass
class LREstimate:
    """A peak-LR estimate from repeated range tests, and how far to trust it.

    ``lr`` is the median (in log LR) of every repeat's two suggestions — the steepest descent of the loss before
    its minimum, and the minimum's LR / 10 — read off a centred (lag-free) moving average of the raw losses;
    ``spread_decades`` is how far the repeats' own estimates lie apart; ``weak`` lists why the estimate is not
    to be trusted (empty when nothing is wrong)."""

    lr: float
    per_repeat: list[dict[str, float]]
    spread_decades: float
    weak: list[str]
    results: list[RangeTestResult] = field(repr=False, default_factory=list)

    @property
    def updates(self) -> int:
        return sum(len(r.lrs) for r in self.results)


def _centred(values: list[float], width: int) -> list[float]:
    half = width // 2
    return [
        sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1])
        for i in range(len(values))
    ]


def _read_curve(result: RangeTestResult) -> tuple[dict[str, float], str | None]:
    """Steepest descent before the minimum and minimum / 10 of one curve (centred smoothing), or why not."""
    n = len(result.losses)
    if n < 8 or not all(math.isfinite(v) for v in result.losses):
        return {}, f"the range test stopped after {n} updates"
    curve = _centred(result.losses, max(3, (n // 12) | 1))
    logs = [math.log10(lr) for lr in result.lrs]
    lowest = min(range(n), key=curve.__getitem__)
    # the loss's noise: raw minus smoothed, up to the minimum (past it the loss climbs and blows up)
    noise = statistics.pstdev([a - b for a, b in zip(result.losses[: lowest + 1], curve[: lowest + 1], strict=True)])
    fall = curve[0] - curve[lowest]
    if fall <= max(3 * noise, 1e-6 * abs(curve[0])):
        return {}, f"the loss fell by {fall:.3g}, within 3× its noise ({noise:.3g})"
    skip = max(1, n // 10)
    window = range(skip, max(skip + 1, lowest))
    slopes = {i: (curve[i + 1] - curve[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in window if 0 < i < n - 1}
    if not slopes:
        return {"minimum_over_10": result.lrs[lowest] / 10}, None
    steepest = min(slopes, key=slopes.__getitem__)
    return {"steepest": result.lrs[steepest], "minimum_over_10": result.lrs[lowest] / 10}, None


def estimate_lr(
    target: Workload,
    *,
    optimizer: OptimizerSpec,
    batch_size: int,
    seed: int = 0,
    repeats: int = 2,
    num_steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
) -> LREstimate:
    """A robust peak-LR estimate: ``repeats`` range tests (seeds ``seed``, ``seed + 1``, ...), each read for its
    steepest descent before the loss's minimum and for the minimum's LR / 10 on a lag-free smoothing; the
    estimate is the median of all of them in log LR. Flags weak evidence: repeats more than a decade apart, a
    loss that barely falls, a test cut short."""
    repeats = check_steps("repeats", repeats, minimum=1)
    results, readings, weak = [], [], []
    for r in range(repeats):
        result = lr_range_test(
            target,
            optimizer=optimizer,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            batch_size=batch_size,
            seed=seed + r,
        )
        results.append(result)
        reading, problem = _read_curve(result)
        if problem:
            weak.append(f"repeat {r}: {problem}")
        if reading:
            readings.append(reading)
    values = [v for reading in readings for v in reading.values()]
    if not values:
        raise ValueError(f"no LR range test gave a reading ({'; '.join(weak)}): check the workload's loss")
    lr = 10 ** statistics.median(math.log10(v) for v in values)
    own = [10 ** statistics.median(math.log10(v) for v in reading.values()) for reading in readings]
    spread = math.log10(max(own) / min(own))
    if spread > 1.0:
        weak.append(f"the repeats' estimates lie {spread:.1f} decades apart")
    return LREstimate(lr, readings, spread, weak, results)
