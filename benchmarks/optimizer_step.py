"""Milliseconds per ``optimizer.step()`` (CPU or GPU): lrtune vs torch.optim and torch-optimizer vs the bandwidth bound.

What is measured: the wall time of ``optimizer.step()`` alone (no forward or backward pass) on ~23 M float32
parameters shaped like a 6-layer, d_model = 512 Transformer (an 8000 × 512 embedding; per layer four 512 × 512
attention projections, a 2048 × 512 and a 512 × 2048 feed-forward matrix, their biases and two LayerNorms).
Gradients are random, set once on ``p.grad`` and reused by every step. Each row builds fresh copies of the
parameters and gradients, runs ``--warmup`` steps (which also allocates the optimizer state), then times
``--repeats`` single steps with ``time.perf_counter`` (on a GPU: CUDA events, see ``time_case``) and reports
the median. RAdam rows always warm up past its un-rectified first steps, so that only the steady-state
(rectified) update is timed. ``--device cuda`` uses a ~335 M-parameter set (24 layers, d_model = 1024).

The bound: a step is memory-bound, so its floor is the bytes it must move divided by the bandwidth the
machine achieves. The bandwidth is measured in the same run as the rate of ``a.add_(b)`` on two buffers of
100 M floats, counting 12 bytes per element (read a, read b, write a): 10 times before the rows and 10 times
after them (on a shared host it drifts; both medians are printed), the bound using the median of all 20.
A step then moves at least, per parameter:

* Adam, AdamW, RAdam: 28 bytes (read θ, g, m, v; write θ, m, v);
* SGD with momentum:  20 bytes (read θ, g, buf; write θ, buf).

``× bound`` is the measured time over that floor (1.0 would be a perfect single-pass kernel). The floor is
the update's own: computing the global gradient norm (lrtune's default ``nonfinite="raise"`` check, or
clipping) reads g once more (+4 bytes) and clipping also rescales it (+8 bytes), which that floor leaves out
on purpose so that the cost of those passes shows; ``× bound incl. its gradient passes`` adds them, i.e. it
compares each row with a perfect implementation of what the row does. ``speed-up`` is the time of torch.optim's default
implementation of the same algorithm divided by the row's time. ``read pass`` times one read-only pass over the
gradients (``g.sum()`` of each): the floor of any check that must finish before the update, printed as a multiple
of Adam's bound (on these VMs a read-only stream runs well below ``add_``'s rate).

After the table it prints its verdicts against the project's goals, each with the measured ratio: on a CPU, the
default (``nonfinite="raise"``) within 1.10× of the update's bound plus one read pass (the check must finish
before the update, so it cannot overlap it), ``nonfinite="ignore"`` within 1.10× of the update's bound, and
RAdam's default at least 3.5× faster than ``torch.optim.RAdam``; on a GPU, the default within 1.25× of the
update's bound (the check reads the gradients once more, 4 of 28 bytes per parameter for Adam).

Run it on an idle machine: the rows run one after another, so anything else using the cores (a test suite)
slows some rows and not others, and with torch's default of one thread per core a preempted thread stalls
every parallel region (we have seen steps take ~50× longer). Rows whose interquartile range exceeds 25 % of the
median are marked †, and the load average is printed. The report goes to stdout, progress to stderr.

Usage::

    python benchmarks/optimizer_step.py                    # full run (~23 M parameters)
    python benchmarks/optimizer_step.py --quick            # small parameter set: a smoke test
    python benchmarks/optimizer_step.py --threads 1 --json results.json
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch_optimizer
from torch.optim.optimizer import _default_to_fused_or_foreach

import lrtune
from lrtune.optim import Rectified

# -------------------------------------------------------------------------------------------------
# configuration

LR = 1e-6  # small enough that unit-scale gradients leave the parameters essentially unchanged over the run
MAX_GRAD_NORM = 1.0
SEED = 0
BANDWIDTH_REPEATS = 10
# A row whose interquartile range exceeds this fraction of its median is flagged: the machine was busy
# (on a 2-core box, another process preempting one of torch's threads stalls every parallel region).
NOISY_IQR = 0.25

# Bytes per parameter that a step must move (see the module docstring).
BYTES_PER_PARAM = {"SGD": 20, "Adam": 28, "AdamW": 28, "RAdam": 28}
BANDWIDTH_BYTES_PER_ELEM = 12  # a.add_(b): read a, read b, write a


@dataclass(frozen=True)
class Config:
    """A parameter set shaped like a Transformer stack, and the size of the bandwidth probe."""

    vocab: int
    d_model: int
    d_ff: int
    layers: int
    bandwidth_elems: int  # floats per buffer of the a.add_(b) probe; 100 M streams from DRAM, far past the caches
    repeats: int
    warmup: int


FULL = Config(vocab=8000, d_model=512, d_ff=2048, layers=6, bandwidth_elems=100_000_000, repeats=30, warmup=5)
# On a GPU: ~335 M parameters (a 24-layer, d_model = 1024 stack with a 32k vocabulary), so that a step moves
# ~9 GB and takes milliseconds, far above the launch latency; the probe streams 2 × 1 GB.
CUDA = Config(vocab=32000, d_model=1024, d_ff=4096, layers=24, bandwidth_elems=256_000_000, repeats=50, warmup=5)
# A few hundred thousand parameters: exercises every row in seconds; the timings mean little (cache-resident).
QUICK = Config(vocab=500, d_model=64, d_ff=256, layers=2, bandwidth_elems=4_000_000, repeats=5, warmup=2)

# torch.optim.RAdam, torch-optimizer and lrtune rectify once ρ_t > 5, i.e. from this step on (β2 = 0.999).
RADAM_FIRST_RECTIFIED = next(t for t in range(1, 100) if Rectified(beta2=0.999).rectified(t))


def param_shapes(cfg: Config) -> list[tuple[int, ...]]:
    """Embedding, then per layer: 4 attention projections, the feed-forward pair, 2 LayerNorms (+ biases)."""
    d, f = cfg.d_model, cfg.d_ff
    shapes: list[tuple[int, ...]] = [(cfg.vocab, d)]
    for _ in range(cfg.layers):
        shapes += [(d, d), (d,)] * 4  # q, k, v, out
        shapes += [(f, d), (f,), (d, f), (d,)]  # feed-forward in, out
        shapes += [(d,), (d,)] * 2  # two LayerNorms: weight, bias
    return shapes


# -------------------------------------------------------------------------------------------------
# the rows

Params = list[torch.nn.Parameter]


@dataclass(frozen=True)
class Case:
    """One row: an optimizer factory and how to time it."""

    optimizer: str  # the algorithm, a key of BYTES_PER_PARAM
    implementation: str
    make: Callable[[Params], torch.optim.Optimizer]
    baseline: bool = False  # torch.optim's default implementation: the row others are compared to
    clip_before_step: bool = False  # call torch.nn.utils.clip_grad_norm_ inside the timed region
    # Bytes per parameter that the row's gradient passes must move on top of the update: the global norm
    # (non-finite check or clipping) reads g (4 B); clipping then rescales it (read + write, 8 B).
    grad_pass_bytes: int = 0


DEVICE = torch.device("cpu")  # set by --device


def sync() -> None:
    """Wait for the device's queued work (a no-op on CPU), so that wall time measures the work."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def torch_default_impl() -> str:
    """What torch.optim picks on float32 parameters of the device when neither foreach nor fused is given."""
    fused, foreach = _default_to_fused_or_foreach([torch.zeros(1, device=DEVICE)], differentiable=False)
    return "fused" if fused else "foreach" if foreach else "for-loop"


def cases() -> list[Case]:
    """The table, algorithm by algorithm: torch.optim's implementations, then lrtune's default and variants."""
    default = f"torch.optim default ({torch_default_impl()})"
    peers: dict[str, list[Case]] = {
        "SGD": [
            Case("SGD", default, lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9), baseline=True),
            Case("SGD", "torch.optim foreach=True", lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, foreach=True)),
            Case("SGD", "torch.optim fused=True", lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, fused=True)),
        ],
        "Adam": [
            Case("Adam", default, lambda p: torch.optim.Adam(p, lr=LR), baseline=True),
            Case("Adam", "torch.optim foreach=True", lambda p: torch.optim.Adam(p, lr=LR, foreach=True)),
            Case("Adam", "torch.optim fused=True", lambda p: torch.optim.Adam(p, lr=LR, fused=True)),
            Case(
                "Adam",
                "torch.optim fused=True + clip_grad_norm_",
                lambda p: torch.optim.Adam(p, lr=LR, fused=True),
                clip_before_step=True,
                grad_pass_bytes=12,
            ),
        ],
        "AdamW": [
            Case("AdamW", default, lambda p: torch.optim.AdamW(p, lr=LR), baseline=True),
            Case("AdamW", "torch.optim foreach=True", lambda p: torch.optim.AdamW(p, lr=LR, foreach=True)),
            Case("AdamW", "torch.optim fused=True", lambda p: torch.optim.AdamW(p, lr=LR, fused=True)),
        ],
        "RAdam": [
            Case("RAdam", default, lambda p: torch.optim.RAdam(p, lr=LR), baseline=True),
            Case("RAdam", "torch.optim foreach=True", lambda p: torch.optim.RAdam(p, lr=LR, foreach=True)),
            Case("RAdam", f"torch_optimizer {torch_optimizer.__version__}", lambda p: torch_optimizer.RAdam(p, lr=LR)),
        ],
    }
    ours: dict[str, Callable[..., torch.optim.Optimizer]] = {
        "SGD": lambda p, **kw: lrtune.SGD(p, lr=LR, momentum=0.9, **kw),
        "Adam": lambda p, **kw: lrtune.Adam(p, lr=LR, **kw),
        "AdamW": lambda p, **kw: lrtune.AdamW(p, lr=LR, **kw),
        "RAdam": lambda p, **kw: lrtune.RAdam(p, lr=LR, **kw),
    }
    # lrtune's default is impl="auto" (fused on CPU and CUDA) with nonfinite="raise" (one global-norm pass per step).
    variants: list[tuple[str, dict[str, Any], int]] = [
        ("lrtune default (auto → fused, nonfinite=raise)", {}, 4),
        ("lrtune nonfinite=ignore (no norm pass)", {"nonfinite": "ignore"}, 0),
        (f"lrtune max_grad_norm={MAX_GRAD_NORM}", {"max_grad_norm": MAX_GRAD_NORM}, 12),
        ("lrtune impl=foreach (generic path)", {"impl": "foreach"}, 4),
    ]
    table: list[Case] = []
    for name, make in ours.items():
        table += peers[name]
        table += [
            Case(name, label, functools.partial(make, **kwargs), grad_pass_bytes=extra)
            for label, kwargs, extra in variants
        ]
    return table


# -------------------------------------------------------------------------------------------------
# measurement


def measure_bandwidth(elems: int, repeats: int) -> list[float]:
    """Bytes/s of ``repeats`` streaming ``a.add_(b)`` on fresh buffers, counting 12 bytes per element."""
    a = torch.ones(elems, device=DEVICE)
    b = torch.ones(elems, device=DEVICE)
    a.add_(b)  # warm-up: threads started (ones() has already touched every page)
    rates = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a.add_(b)
        sync()
        rates.append(BANDWIDTH_BYTES_PER_ELEM * elems / (time.perf_counter() - start))
    return rates


def measure_read_pass(grads: list[torch.Tensor], repeats: int) -> float:
    """Median seconds of one read-only pass over the gradients (``g.sum()`` of each, no write): the least a
    separate non-finite check can cost, since it must read every gradient before the update starts."""
    times = []
    for _ in range(repeats + 3):
        sync()
        start = time.perf_counter()
        for g in grads:
            g.sum()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def make_template(cfg: Config) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Initial parameter values and the fixed gradients, shared (as copies) by every row."""
    gen = torch.Generator(DEVICE).manual_seed(SEED)
    shapes = param_shapes(cfg)
    values = [0.02 * torch.randn(s, generator=gen, device=DEVICE) for s in shapes]
    grads = [torch.randn(s, generator=gen, device=DEVICE) for s in shapes]
    return values, grads


def time_case(
    case: Case, values: list[torch.Tensor], grads: list[torch.Tensor], warmup: int, repeats: int
) -> list[float]:
    """Seconds of each timed step, on fresh copies of the parameters, gradients and optimizer state.

    Everything the row allocates is local and freed when it returns: one optimizer in memory at a time.
    """
    params = [torch.nn.Parameter(v.clone()) for v in values]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()  # a fresh copy: clipping rescales gradients in place
    optimizer = case.make(params)
    if case.optimizer == "RAdam":
        warmup = max(warmup, RADAM_FIRST_RECTIFIED)  # time steps > 6 only: the rectified update

    def step() -> None:
        if case.clip_before_step:
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()

    for _ in range(warmup):
        step()
    times = []
    if DEVICE.type == "cuda":
        # CUDA events around each step, no synchronisation between steps: as in training, the host queues a
        # step's kernels while the GPU runs the previous ones, so each sample is the step's time on the GPU
        # (plus any gap while the GPU waited for the host, e.g. after a step that had to synchronise).
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        sync()
        for start_event, end_event in events:
            start_event.record()
            step()
            end_event.record()
        sync()
        times = [a.elapsed_time(b) / 1e3 for a, b in events]
    for _ in range(repeats if DEVICE.type == "cpu" else 0):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)

    if isinstance(optimizer, lrtune.RAdam) and optimizer.last_step_info[0]["rectified"] != 1.0:
        raise RuntimeError("RAdam was timed before its rectified steps")
    if not all(bool(torch.isfinite(p).all()) for p in params):
        raise FloatingPointError(f"{case.optimizer} / {case.implementation}: parameters became non-finite")
    return times


# -------------------------------------------------------------------------------------------------
# reporting


def machine() -> dict[str, Any]:
    """CPU model, core count, torch version and intra-op threads."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_optimizer": torch_optimizer.__version__,
        "lrtune": lrtune.__version__,
        "threads": torch.get_num_threads(),
        "device": str(DEVICE) if DEVICE.type == "cpu" else torch.cuda.get_device_name(DEVICE),
    }


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): a busy machine makes every row noisy."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def relative_iqr(times: list[float]) -> float:
    """Interquartile range over median."""
    if len(times) < 2:
        return 0.0
    q1, q2, q3 = statistics.quantiles(times, n=4)
    return (q3 - q1) / q2


def summarize(timings: list[tuple[Case, list[float]]], n_params: int, bandwidth: float) -> list[dict[str, Any]]:
    """One record per row: median ms, its ratio to the bound and the speed-up over torch.optim's default."""
    baseline_ms = {case.optimizer: 1e3 * statistics.median(times) for case, times in timings if case.baseline}
    rows = []
    for case, times in timings:
        ms = 1e3 * statistics.median(times)
        bound_ms = 1e3 * BYTES_PER_PARAM[case.optimizer] * n_params / bandwidth
        bound_all_ms = 1e3 * (BYTES_PER_PARAM[case.optimizer] + case.grad_pass_bytes) * n_params / bandwidth
        rows.append(
            {
                "optimizer": case.optimizer,
                "implementation": case.implementation,
                "ms_median": ms,
                "bound_ms": bound_ms,
                "x_bound": ms / bound_ms,
                "x_bound_with_grad_passes": ms / bound_all_ms,
                "speedup_vs_torch_default": baseline_ms[case.optimizer] / ms,
                "noisy": relative_iqr(times) > NOISY_IQR,
                "ms_all": [1e3 * t for t in times],
            }
        )
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = [
        "optimizer",
        "implementation",
        "ms/step (median)",
        "× bandwidth bound",
        "× bound incl. its gradient passes",
        "speed-up vs torch default",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:"]) + "|"]
    for r in rows:
        cells = [
            r["optimizer"],
            r["implementation"],
            f"{r['ms_median']:.2f}" + (" †" if r["noisy"] else ""),
            f"{r['x_bound']:.2f}",
            f"{r['x_bound_with_grad_passes']:.2f}",
            f"{r['speedup_vs_torch_default']:.2f}×",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if any(r["noisy"] for r in rows):
        lines.append(
            f"\n† interquartile range > {NOISY_IQR:.0%} of the median: the machine was busy, rerun to trust it."
        )
    return "\n".join(lines)


# The goals the verdicts check (see the module docstring).
CPU_DEFAULT_GOAL = 1.10  # × (update's bound + one read pass of the gradients)
CPU_IGNORE_GOAL = 1.10  # × update's bound
RADAM_SPEEDUP_GOAL = 3.5  # × torch.optim.RAdam's default
CUDA_DEFAULT_GOAL = 1.25  # × update's bound


def verdicts(rows: list[dict[str, Any]], read_pass: float) -> list[dict[str, Any]]:
    """One record per goal and algorithm: the measured ratio, the goal and whether it is met."""
    out = []

    def check(name: str, value: float, goal: float, at_least: bool = False) -> None:
        met = value >= goal if at_least else value <= goal
        out.append({"goal": name, "value": value, "target": goal, "at_least": at_least, "met": met})

    by = {(r["optimizer"], r["implementation"]): r for r in rows}
    for algorithm in BYTES_PER_PARAM:
        default = by.get((algorithm, "lrtune default (auto → fused, nonfinite=raise)"))
        ignore = by.get((algorithm, "lrtune nonfinite=ignore (no norm pass)"))
        if default is None or ignore is None:
            continue
        if DEVICE.type == "cpu":
            floor_ms = default["bound_ms"] + 1e3 * read_pass
            check(
                f"{algorithm} default ≤ {CPU_DEFAULT_GOAL:.2f}× (bound + read pass)",
                default["ms_median"] / floor_ms,
                CPU_DEFAULT_GOAL,
            )
            check(f"{algorithm} nonfinite=ignore ≤ {CPU_IGNORE_GOAL:.2f}× bound", ignore["x_bound"], CPU_IGNORE_GOAL)
        else:
            check(f"{algorithm} default ≤ {CUDA_DEFAULT_GOAL:.2f}× bound", default["x_bound"], CUDA_DEFAULT_GOAL)
    radam = by.get(("RAdam", "lrtune default (auto → fused, nonfinite=raise)"))
    if DEVICE.type == "cpu" and radam is not None:
        check(
            f"RAdam default ≥ {RADAM_SPEEDUP_GOAL:.1f}× faster than torch.optim.RAdam",
            radam["speedup_vs_torch_default"],
            RADAM_SPEEDUP_GOAL,
            at_least=True,
        )
    return out


def format_verdicts(results: list[dict[str, Any]]) -> str:
    lines = [f"goals: {sum(r['met'] for r in results)}/{len(results)} met"]
    for r in results:
        lines.append(f"  {'met    ' if r['met'] else 'NOT met'}  {r['goal']}: {r['value']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help=f"timed steps per row (default {FULL.repeats})")
    parser.add_argument("--warmup", type=int, help=f"untimed steps per row first (default {FULL.warmup})")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="small parameter set, few steps: a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: the ~335 M-parameter GPU set")
    args = parser.parse_args()

    global DEVICE
    DEVICE = torch.device(args.device)
    cfg = QUICK if args.quick else CUDA if DEVICE.type == "cuda" else FULL
    repeats = cfg.repeats if args.repeats is None else args.repeats
    warmup = cfg.warmup if args.warmup is None else args.warmup
    if repeats < 1 or warmup < 0:
        parser.error(f"need --repeats >= 1 and --warmup >= 0, got {repeats} and {warmup}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    info = machine()
    load_start = load_average()
    before = measure_bandwidth(cfg.bandwidth_elems, BANDWIDTH_REPEATS)
    values, grads = make_template(cfg)
    n_params = sum(v.numel() for v in values)
    table = cases()
    timings: list[tuple[Case, list[float]]] = []
    for i, case in enumerate(table, 1):
        print(f"[{i}/{len(table)}] {case.optimizer}: {case.implementation}", file=sys.stderr, flush=True)
        timings.append((case, time_case(case, values, grads, warmup, repeats)))
        gc.collect()
    after = measure_bandwidth(cfg.bandwidth_elems, BANDWIDTH_REPEATS)
    read_pass = measure_read_pass(grads, repeats)
    bandwidth = statistics.median(before + after)
    load_end = load_average()
    rows = summarize(timings, n_params, bandwidth)

    print(
        f"machine: {info['cpu']}, {info['cores']} cores ({info['cores_available']} available), "
        f"torch {info['torch']}, {info['threads']} threads; load average (1 min) {load_start} → {load_end}; "
        f"device {info['device']}"
    )
    print(
        f"bandwidth: {bandwidth / 1e9:.2f} GB/s (a.add_(b) on 2 × {cfg.bandwidth_elems:,} float32, "
        f"{BANDWIDTH_BYTES_PER_ELEM} B/elem; median {statistics.median(before) / 1e9:.2f} GB/s before the rows, "
        f"{statistics.median(after) / 1e9:.2f} after)"
    )
    print(
        f"parameters: {n_params:,} float32 in {len(values)} tensors; median of {repeats} steps after {warmup} warm-up"
    )
    print(
        "bound: "
        + ", ".join(f"{k} {b} B/param = {1e3 * b * n_params / bandwidth:.2f} ms" for k, b in BYTES_PER_PARAM.items())
    )
    adam_bound = BYTES_PER_PARAM["Adam"] * n_params / bandwidth
    print(
        f"read pass: {1e3 * read_pass:.2f} ms to read the gradients once (g.sum() per tensor, "
        f"{4 * n_params / read_pass / 1e9:.2f} GB/s; a BLAS dot of each reads no faster): a check before the "
        f"update costs about that, {read_pass / adam_bound:.2f}× Adam's bound, so nonfinite=raise's floor is "
        f"about {1 + read_pass / adam_bound:.2f}× it on this machine"
    )
    print()
    print(markdown_table(rows))
    goals = verdicts(rows, read_pass)
    print()
    print(format_verdicts(goals))

    if args.json is not None:
        result = {
            "machine": info,
            "load_average_start": load_start,
            "load_average_end": load_end,
            "bandwidth_bytes_per_s": bandwidth,
            "bandwidth_before_bytes_per_s": before,
            "bandwidth_after_bytes_per_s": after,
            "read_pass_seconds": read_pass,
            "params": n_params,
            "tensors": len(values),
            "repeats": repeats,
            "warmup": warmup,
            "bytes_per_param": BYTES_PER_PARAM,
            "rows": rows,
            "verdicts": goals,
        }
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
