"""Shared test fixtures: parameter sets, gradient streams and the optimizer table."""

from __future__ import annotations

import contextlib
import copy
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch_optimizer

import lrtune

SHAPES = [(7, 5), (13,), (3, 4, 2), (1,)]


def make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    """Several shapes plus one parameter that never receives a gradient (the last one)."""
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in SHAPES]
    return [*ps, torch.nn.Parameter(torch.randn(4, generator=g, dtype=dtype))]


def clone_params(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def groups(params: list[torch.nn.Parameter], group_options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split ``params`` into len(group_options) groups, each with its own options."""
    n = len(group_options)
    return [{"params": params[i::n], **opts} for i, opts in enumerate(group_options)]


def gradient_stream(params: list[torch.nn.Parameter], steps: int, seed: int = 1) -> Iterator[list[torch.Tensor | None]]:
    """Random gradients; the 4th parameter skips every 7th step; the last never has one."""
    g = torch.Generator().manual_seed(seed)
    for t in range(1, steps + 1):
        grads: list[torch.Tensor | None] = []
        for i, p in enumerate(params):
            scale = 10.0 ** ((t % 5) - 2)
            grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * scale
            if i == len(params) - 1 or (i == 3 and t % 7 == 0):
                grads.append(None)
            else:
                grads.append(grad)
        yield grads


def set_grads(params: list[torch.nn.Parameter], grads: list[torch.Tensor | None]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.clone()


def run_pair(
    make_a: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    make_b: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    dtype: torch.dtype,
    steps: int,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.Optimizer]:
    """Run two optimizers on identical copies of parameters and gradients."""
    pa = make_params(dtype)
    pb = clone_params(pa)
    opt_a, opt_b = make_a(pa), make_b(pb)
    for grads in gradient_stream(pa, steps):
        set_grads(pa, grads)
        set_grads(pb, grads)
        opt_a.step()
        opt_b.step()
    return pa, pb, opt_a, opt_b


@dataclass
class Case:
    """One row of the optimizer table: an lrtune optimizer and its torch.optim twin."""

    name: str
    ours: type[torch.optim.Optimizer]
    peer: type[torch.optim.Optimizer]
    kwargs: dict[str, Any] = field(default_factory=dict)
    peer_kwargs: dict[str, Any] | None = None
    group_options: list[dict[str, Any]] = field(default_factory=lambda: [{}])

    def make(self, impl: str) -> Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]:
        return lambda ps: self.ours(groups(ps, self.group_options), impl=impl, **self.kwargs)  # type: ignore[call-arg]

    def make_peer(self, **extra: Any) -> Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]:
        kw = copy.deepcopy(self.kwargs if self.peer_kwargs is None else self.peer_kwargs)
        return lambda ps: self.peer(groups(ps, self.group_options), **kw, **extra)


TWO_GROUPS_ADAM = [{"lr": 1e-2, "betas": (0.8, 0.99)}, {"lr": 3e-3}]

CASES = [
    Case("sgd", lrtune.SGD, torch.optim.SGD, {"lr": 1e-2}),
    Case("sgd-momentum", lrtune.SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
    Case(
        "sgd-dampening-wd",
        lrtune.SGD,
        torch.optim.SGD,
        {"lr": 1e-2, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2},
    ),
    Case(
        "sgd-nesterov-groups",
        lrtune.SGD,
        torch.optim.SGD,
        {"lr": 1e-2, "momentum": 0.9, "nesterov": True},
        group_options=[{"lr": 0.05, "momentum": 0.5}, {}],
    ),
    Case("sgd-maximize", lrtune.SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "maximize": True}),
    Case("adam", lrtune.Adam, torch.optim.Adam, {"lr": 1e-2}),
    Case(
        "adam-l2-groups",
        lrtune.Adam,
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 0.1},
        group_options=TWO_GROUPS_ADAM,
    ),
    Case(
        "adam-maximize-decoupled",
        lrtune.Adam,
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 0.1, "maximize": True, "decoupled_weight_decay": True},
    ),
    Case("adamw", lrtune.AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.05}, group_options=TWO_GROUPS_ADAM),
    Case("radam", lrtune.RAdam, torch.optim.RAdam, {"lr": 1e-2}),
    Case(
        "radam-l2-groups",
        lrtune.RAdam,
        torch.optim.RAdam,
        {"lr": 1e-2, "weight_decay": 0.1},
        group_options=TWO_GROUPS_ADAM,
    ),
    Case(
        "radam-decoupled",
        lrtune.RAdam,
        torch.optim.RAdam,
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
        group_options=[{"betas": (0.9, 0.98)}, {"lr": 1e-3}],
    ),
    Case("radam-beta2-0.9", lrtune.RAdam, torch.optim.RAdam, {"lr": 1e-2, "betas": (0.9, 0.9)}),
]
CASE_IDS = [c.name for c in CASES]

# torch-optimizer's RAdam: decoupled weight decay on every step, degenerate steps take the SGD step,
# ε added to sqrt(v_t); moments updated with mul_/add_ rather than lerp (so equal only to rounding).
TORCH_OPTIMIZER_CASES = [
    Case("to-radam", lrtune.RAdam, torch_optimizer.RAdam, {"lr": 1e-2}),
    Case(
        "to-radam-wd",
        lrtune.RAdam,
        torch_optimizer.RAdam,
        {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
        peer_kwargs={"lr": 1e-2, "weight_decay": 0.1},
    ),
    Case("to-radam-betas", lrtune.RAdam, torch_optimizer.RAdam, {"lr": 3e-3, "betas": (0.95, 0.98), "eps": 1e-6}),
]


def max_abs_diff(a: list[torch.nn.Parameter], b: list[torch.nn.Parameter]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[int, int, int]:
    """Load a copy of an HTML page with a probe appended in headless Chromium: (images decoded, images, errors)."""
    import re
    import subprocess

    probe = """<script>
    window.errors = [];
    window.addEventListener("error", e => window.errors.push(String(e.message || e.type)), true);
    window.addEventListener("load", () => {
      const images = Array.from(document.images);
      const ok = images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
      document.title = "probe " + ok + "/" + images.length + " errors " + window.errors.length;
    });
    </script>"""
    text = page.read_text(encoding="utf-8").replace("<head>", "<head>" + probe, 1)
    copy = tmp_path / "probed.html"
    copy.write_text(text, encoding="utf-8")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom"]
    done = subprocess.run([*cmd, copy.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (title,) = re.findall(r"<title>(.*?)</title>", done.stdout)
    found = re.fullmatch(r"probe (\d+)/(\d+) errors (\d+)", title)
    assert found is not None, title
    ok, total, errors = (int(x) for x in found.groups())
    return ok, total, errors


@contextlib.contextmanager
def default_sigint() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt for the block (a test run in the background starts with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
