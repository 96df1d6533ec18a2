"""Microseconds per ``scheduler.step()``: lrtune's ``LRScheduler`` vs torch's ``LambdaLR`` vs a bare Python floor.

What is measured: the wall time of ``scheduler.step()`` alone, on a ``torch.optim.SGD`` with 1 and with 4 param
groups (one tiny parameter each; the optimizer never steps inside the timed region). Four schedules:
``warmup_linear_decay``, ``warmup_cosine``, ``noam`` and a 3-piece ``wsd`` (warm-up, stable, 1-sqrt cool-down).

* **lrtune**: ``lrtune.schedules.LRScheduler(optimizer, schedule)``.
* **LambdaLR**: ``torch.optim.lr_scheduler.LambdaLR`` with the hand-written lambda a user would pass for the
  same schedule (plain Python arithmetic, not lrtune's schedule object), so that it sets the same LRs.
* **floor**: what any scheduler must do at the least: evaluate that lambda once and write ``group["lr"]`` for
  each group, inline, with no scheduler object. ``× floor`` shows what the scheduler protocol itself costs.

Each call is timed at a different point of the schedule (update indices spread over the whole run by a fixed
stride), so every piece of a join is exercised: before each call the loop sets the scheduler's counter
(lrtune's ``applied_updates``, LambdaLR's ``last_epoch``), which both then read; the cost of a loop that only
sets that attribute is measured in the same run and subtracted (it is printed). Every repeat times the three
variants back to back, ``--calls`` calls each, with the garbage collector off; the table reports the median
over ``--repeats`` repeats. Rows whose interquartile range exceeds 25 % of the median are marked †.

Checks, printed with the table (a failed check exits with status 1):

* the LRs set by lrtune and by the lambda agree (relative difference ≤ 1e-12) at every timed update;
* lrtune's ``step()`` creates no tensors: it runs under a ``TorchDispatchMode`` that counts every aten op and a
  ``TorchFunctionMode`` that counts every torch function (``torch.tensor`` included); both must count 0. The
  counters are first shown to see a ``torch.tensor(1.0)``.

Target: lrtune ≤ 1.5× LambdaLR per ``step()``.

Usage::

    python benchmarks/schedule_step.py            # 20 repeats of 2000 calls per variant
    python benchmarks/schedule_step.py --quick    # 5 repeats of 300 calls: a smoke test
"""

from __future__ import annotations

import argparse
import collections
import gc
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import lrtune
from lrtune import schedules
from lrtune.schedules import Schedule

# -------------------------------------------------------------------------------------------------
# configuration

REPEATS, CALLS = 20, 2000
QUICK_REPEATS, QUICK_CALLS = 5, 300
GROUP_COUNTS = (1, 4)
TARGET_RATIO = 1.5  # lrtune's step() may cost at most this multiple of LambdaLR's
NOISY_IQR = 0.25
LR_RTOL = 1e-12

# A 100 k-update run with a 4 k-update warm-up (Transformer-base-like), and Noam for d_model = 512.
TOTAL, WARMUP = 100_000, 4000
D_MODEL = 512
WSD_WARMUP, WSD_STABLE, WSD_DECAY = 2000, 80_000, 18_000
STRIDE = 7919  # a prime: update indices i·STRIDE mod (TOTAL + 1000) visit every piece, and past the end


def linear_lambda(t: int) -> float:
    """Hugging-Face-style linear warm-up then linear decay, as a user would write it."""
    if t <= WARMUP:
        return t / WARMUP
    return max(0.0, (TOTAL - t) / (TOTAL - WARMUP))


def cosine_lambda(t: int) -> float:
    if t <= WARMUP:
        return t / WARMUP
    if t >= TOTAL:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (t - WARMUP) / (TOTAL - WARMUP)))


def noam_lambda(t: int) -> float:
    """The absolute LR (use with base LR 1)."""
    return 0.0 if t == 0 else D_MODEL**-0.5 * min(t**-0.5, t * WARMUP**-1.5)


def wsd_lambda(t: int) -> float:
    if t <= WSD_WARMUP:
        return t / WSD_WARMUP
    if t <= WSD_WARMUP + WSD_STABLE:
        return 1.0
    if t >= WSD_WARMUP + WSD_STABLE + WSD_DECAY:
        return 0.0
    return 1.0 - math.sqrt((t - WSD_WARMUP - WSD_STABLE) / WSD_DECAY)


@dataclass(frozen=True)
class Case:
    """One schedule: lrtune's object and the equivalent hand-written f(t) of the t-th update."""

    name: str
    schedule: Schedule
    f: Callable[[int], float]


CASES = [
    Case(f"warmup_linear_decay({WARMUP}, {TOTAL})", schedules.warmup_linear_decay(WARMUP, TOTAL), linear_lambda),
    Case(f"warmup_cosine({WARMUP}, {TOTAL})", schedules.warmup_cosine(WARMUP, TOTAL), cosine_lambda),
    Case(f"noam({D_MODEL}, {WARMUP})", schedules.noam(D_MODEL, WARMUP), noam_lambda),
    Case(
        f"wsd({WSD_WARMUP}, {WSD_STABLE}, {WSD_DECAY}, 1-sqrt)",
        schedules.wsd(WSD_WARMUP, WSD_STABLE, WSD_DECAY, decay="1-sqrt"),
        wsd_lambda,
    ),
]

# -------------------------------------------------------------------------------------------------
# tensor-creation counters


class CountAtenOps(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch leaves these untyped
    """Counts every aten op dispatched while active (any tensor created or touched shows up here)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


class CountTorchCalls(TorchFunctionMode):
    """Counts every torch function or tensor method called while active (``torch.tensor`` included)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.calls[getattr(func, "__name__", str(func))] += 1
        return func(*args, **(kwargs or {}))


def step_n(sched: torch.optim.lr_scheduler.LRScheduler, n: int) -> None:
    for _ in range(n):
        sched.step()


def count_torch_work(fn: Callable[[], object]) -> tuple[int, int, list[str]]:
    """(aten ops, torch calls, their names) while running ``fn``."""
    with CountTorchCalls() as calls, CountAtenOps() as ops:
        fn()
    return sum(ops.ops.values()), sum(calls.calls.values()), sorted({*ops.ops, *calls.calls})


# -------------------------------------------------------------------------------------------------
# the three variants


def make_optimizer(groups: int) -> torch.optim.Optimizer:
    """SGD with ``groups`` param groups of one tiny parameter each, all at base LR 1 (Noam's LR is absolute)."""
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(groups)], lr=1.0)


def make_lrtune(case: Case, groups: int) -> schedules.LRScheduler:
    opt = make_optimizer(groups)
    sched = schedules.LRScheduler(opt, case.schedule)
    opt.step()  # the usual order (no gradients: nothing moves); the first step() then raises no warning
    sched.step()
    return sched


def make_lambda(case: Case, groups: int) -> torch.optim.lr_scheduler.LambdaLR:
    opt = make_optimizer(groups)
    f = case.f
    # LambdaLR's t-th update uses λ(t − 1): λ(e) = f(e + 1) sets the same LR as lrtune's f(t).
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: f(e + 1))
    opt.step()
    sched.step()
    return sched


def time_lrtune(sched: schedules.LRScheduler, ts: list[int]) -> float:
    """Seconds for len(ts) calls; before each, the scheduler is told that ts[i] updates were applied."""
    step = sched.step
    start = time.perf_counter()
    for k in ts:
        sched.applied_updates = k
        step()
    return time.perf_counter() - start


def time_lambda(sched: torch.optim.lr_scheduler.LambdaLR, epochs: list[int]) -> float:
    """Seconds for len(epochs) calls; step() increments last_epoch to epochs[i] + 1."""
    step = sched.step
    start = time.perf_counter()
    for e in epochs:
        sched.last_epoch = e
        step()
    return time.perf_counter() - start


def time_floor(optimizer: torch.optim.Optimizer, f: Callable[[int], float], ts: list[int]) -> float:
    """Seconds for evaluating f and writing every group's LR, inline: the least any scheduler must do."""
    groups = optimizer.param_groups
    bases = [1.0] * len(groups)
    start = time.perf_counter()
    for k in ts:
        v = f(k + 1)
        for g, b in zip(groups, bases, strict=True):
            g["lr"] = b * v
    return time.perf_counter() - start


class _Counter:
    attr = 0


def time_loop_overhead(ts: list[int], *, with_attribute: bool) -> float:
    """Seconds of the timing loop alone (with the attribute store that the scheduler loops do)."""
    obj = _Counter()
    start = time.perf_counter()
    if with_attribute:
        for k in ts:
            obj.attr = k
    else:
        for _ in ts:
            pass
    return time.perf_counter() - start


# -------------------------------------------------------------------------------------------------
# checks


def check_same_lrs(case: Case, groups: int, ts: list[int]) -> float:
    """The largest relative difference between the LRs lrtune and LambdaLR set at the update indices ts."""
    ours, theirs = make_lrtune(case, groups), make_lambda(case, groups)
    worst = 0.0
    for k in ts:
        ours.applied_updates = k
        ours.step()
        theirs.last_epoch = k - 1
        theirs.step()
        for a, b in zip(ours.optimizer.param_groups, theirs.optimizer.param_groups, strict=True):
            x, y = float(a["lr"]), float(b["lr"])
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-300) if x != y else 0.0)
    return worst


# -------------------------------------------------------------------------------------------------
# measurement and report


def relative_iqr(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    q1, q2, q3 = statistics.quantiles(xs, n=4)
    return (q3 - q1) / q2 if q2 else 0.0


def measure(case: Case, groups: int, repeats: int, calls: int) -> dict[str, Any]:
    ts = [(i * STRIDE) % (TOTAL + 1000) for i in range(calls)]  # lrtune: ts[i] updates applied → f(ts[i] + 1)
    epochs = [k - 1 for k in ts]  # LambdaLR: last_epoch = ts[i] - 1 → step() → λ(ts[i]) = f(ts[i] + 1)
    ours, theirs = make_lrtune(case, groups), make_lambda(case, groups)
    floor_opt = make_optimizer(groups)
    samples: dict[str, list[float]] = {"lrtune": [], "LambdaLR": [], "floor": [], "overhead": []}
    gc.collect()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(repeats):
                store = time_loop_overhead(ts, with_attribute=True)
                bare = time_loop_overhead(ts, with_attribute=False)
                samples["lrtune"].append((time_lrtune(ours, ts) - store) / calls)
                samples["LambdaLR"].append((time_lambda(theirs, epochs) - store) / calls)
                samples["floor"].append((time_floor(floor_opt, case.f, ts) - bare) / calls)
                samples["overhead"].append(store / calls)
    finally:
        gc.enable()

    probe_ops, probe_calls, _ = count_torch_work(lambda: torch.tensor(1.0))
    ours_ops, ours_calls, ours_names = count_torch_work(lambda: step_n(ours, 100))
    theirs_ops, theirs_calls, _ = count_torch_work(lambda: step_n(theirs, 100))
    med = {k: 1e6 * statistics.median(v) for k, v in samples.items()}
    return {
        "schedule": case.name,
        "groups": groups,
        "us": med,
        "noisy": any(relative_iqr(samples[k]) > NOISY_IQR for k in ("lrtune", "LambdaLR", "floor")),
        "ratio_lambda": med["lrtune"] / med["LambdaLR"],
        "ratio_floor": med["lrtune"] / med["floor"],
        "lr_rel_diff": check_same_lrs(case, groups, ts),
        "probe": (probe_ops, probe_calls),
        "ours_torch_work": (ours_ops, ours_calls, ours_names),
        "theirs_torch_work": (theirs_ops, theirs_calls),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "schedule",
        "groups",
        "lrtune µs/step",
        "LambdaLR µs/step",
        "floor µs/step",
        "lrtune / LambdaLR",
        "lrtune / floor",
        "torch ops in 100 lrtune steps",
        "max rel. LR diff",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ops, calls, _ = r["ours_torch_work"]
        cells = [
            f"`{r['schedule']}`",
            str(r["groups"]),
            f"{r['us']['lrtune']:.2f}" + (" †" if r["noisy"] else ""),
            f"{r['us']['LambdaLR']:.2f}",
            f"{r['us']['floor']:.2f}",
            f"{r['ratio_lambda']:.2f}×",
            f"{r['ratio_floor']:.2f}×",
            f"{ops} aten / {calls} torch",
            f"{r['lr_rel_diff']:.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REPEATS} repeats of {QUICK_CALLS} calls")
    parser.add_argument("--repeats", type=int, help=f"timed repeats per variant (default {REPEATS})")
    parser.add_argument("--calls", type=int, help=f"scheduler.step() calls per repeat (default {CALLS})")
    args = parser.parse_args()
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    calls = args.calls or (QUICK_CALLS if args.quick else CALLS)
    if repeats < 1 or calls < 1:
        parser.error(f"need --repeats >= 1 and --calls >= 1, got {repeats} and {calls}")

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for case in CASES:
        for groups in GROUP_COUNTS:
            print(f"{case.name}, {groups} group(s)", file=sys.stderr, flush=True)
            rows.append(measure(case, groups, repeats, calls))
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, lrtune {lrtune.__version__}; "
        f"load average (1 min) {load_start:.2f} → {load_end:.2f}"
    )
    overhead = statistics.median(r["us"]["overhead"] for r in rows)
    print(
        f"median of {repeats} repeats × {calls} calls per variant; the timing loop's own cost "
        f"({overhead:.3f} µs/call with its counter store) is subtracted"
    )
    print()
    print(markdown_table(rows))
    if any(r["noisy"] for r in rows):
        print(f"\n† interquartile range > {NOISY_IQR:.0%} of the median: the machine was busy, rerun to trust it.")

    probe_ops, probe_calls = rows[0]["probe"]
    print(f"\ncounter probe: torch.tensor(1.0) counts as {probe_ops} aten op(s) and {probe_calls} torch call(s)")
    allocating = [r for r in rows if r["ours_torch_work"][0] or r["ours_torch_work"][1]]
    theirs_work = max(r["theirs_torch_work"][0] + r["theirs_torch_work"][1] for r in rows)
    print(
        "tensors created by lrtune's step(): "
        + ("none (0 aten ops, 0 torch calls in every row)" if not allocating else f"YES in {len(allocating)} row(s)")
        + f"; LambdaLR: {theirs_work} torch op(s) at most"
    )
    for r in allocating:
        print(f"  {r['schedule']} / {r['groups']} groups: {r['ours_torch_work'][2]}")
    met = sum(r["ratio_lambda"] <= TARGET_RATIO for r in rows)
    worst = max(r["ratio_lambda"] for r in rows)
    print(f"target lrtune ≤ {TARGET_RATIO}× LambdaLR: met in {met}/{len(rows)} rows (worst {worst:.2f}×)")
    mismatched = [r for r in rows if r["lr_rel_diff"] > LR_RTOL]
    print(
        f"LRs equal to LambdaLR's (rel. ≤ {LR_RTOL:g}) at every timed update: "
        + ("yes" if not mismatched else f"NO in {len(mismatched)} row(s)")
    )
    failed = bool(allocating or mismatched or probe_ops == 0 or probe_calls == 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
