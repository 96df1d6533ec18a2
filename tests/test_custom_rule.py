"""A user-defined ψ is a new optimizer: the AMSGrad example equals torch.optim.Adam(amsgrad=True)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from helpers import make_params, run_pair

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "amsgrad.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("amsgrad_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_rule_is_short() -> None:
    source = inspect.getsource(_load().AMSGrad)
    assert len(source.splitlines()) < 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_amsgrad_equals_torch(dtype: torch.dtype) -> None:
    ex = _load()
    pa, pb, ours, _ = run_pair(
        lambda ps: ex.amsgrad(ps, lr=1e-2, betas=(0.8, 0.99)),
        lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), amsgrad=True),
        dtype,
        500,
    )
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b)
    assert "max_exp_avg_sq" in ours.state[pa[0]]


def test_reference_impl_needs_the_rules_own_reference_form() -> None:
    """AMSGrad inherits RMS's reference form, which is not AMSGrad's math: impl="reference" refuses it."""
    ex = _load()
    with pytest.raises(ValueError, match="AMSGrad defines no reference form"):
        ex.AdaptiveOptimizer(make_params(torch.float32), momentum=ex.EMA(), adaptive=ex.AMSGrad(), impl="reference")
