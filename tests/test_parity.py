"""lrtune's optimizers against torch.optim, torch-optimizer and lrtune's own reference implementation."""

from __future__ import annotations

import pytest
import torch
from helpers import CASE_IDS, CASES, TORCH_OPTIMIZER_CASES, Case, make_params, max_abs_diff, run_pair

import lrtune.optim._optimizer as optimizer_module

STEPS = 500
DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 2e-4, "atol": 1e-5}}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_foreach_is_bitwise_equal_to_torch(case: Case, dtype: torch.dtype) -> None:
    """The generic multi-tensor path follows torch.optim's order of operations: equal bit for bit."""
    pa, pb, _, _ = run_pair(case.make("foreach"), case.make_peer(), dtype, STEPS)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b), f"max diff {max_abs_diff(pa, pb)}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("impl", ["reference", "fused", "auto"])
def test_impls_equal_torch(case: Case, impl: str, dtype: torch.dtype) -> None:
    """Reference (paper notation) and fused paths agree with torch.optim to rounding over 500 steps."""
    pa, pb, _, _ = run_pair(case.make(impl), case.make_peer(), dtype, STEPS)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [c for c in CASES if c.ours.__name__ in ("Adam", "AdamW", "SGD")], ids=str)
def test_fused_is_bitwise_equal_to_torch_fused(case: Case, dtype: torch.dtype) -> None:
    """For Adam, AdamW and SGD the fused path runs torch's own fused kernel with the same scalars."""
    pa, pb, _, _ = run_pair(case.make("fused"), case.make_peer(fused=True), dtype, STEPS)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b), f"max diff {max_abs_diff(pa, pb)}"


@pytest.mark.parametrize("case", TORCH_OPTIMIZER_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("impl", ["foreach", "fused", "reference"])
def test_radam_equals_torch_optimizer(case: Case, impl: str) -> None:
    """torch-optimizer computes in float32 whatever the parameter dtype, so compare in float32."""
    pa, pb, _, _ = run_pair(case.make(impl), case.make_peer(), torch.float32, STEPS)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, **TOL[torch.float32])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_state_matches_torch_keys_and_values(case: Case) -> None:
    """The same per-parameter state keys as torch (SGD keeps no step count, as torch.optim.SGD) and equal moments."""
    _, _, ours, peer = run_pair(case.make("foreach"), case.make_peer(), torch.float64, 50)
    s_ours, s_peer = ours.state_dict()["state"], peer.state_dict()["state"]
    assert set(s_peer) == set(s_ours)
    for k, st in s_peer.items():
        assert set(st) == set(s_ours[k])
        for key, value in st.items():
            if torch.is_tensor(value):
                assert torch.equal(s_ours[k][key], value), key
            else:
                assert value is None or float(s_ours[k][key]) == float(value), key


@pytest.mark.parametrize("name", ["adam", "sgd-momentum", "sgd"])
def test_params_without_grad_keep_no_state(name: str) -> None:
    """Like torch.optim: no entry for a parameter that never had a gradient, and none at all for plain SGD."""
    params = make_params(torch.float64)
    case = next(c for c in CASES if c.name == name)
    _, _, opt, peer = run_pair(case.make("auto"), case.make_peer(), torch.float64, 3)
    assert len(opt.state) == len(peer.state) == (0 if name == "sgd" else len(params) - 1)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cache_chunked_foreach_is_bitwise_equal(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU multi-tensor path runs in cache-sized chunks; tiny chunks exercise the split."""
    monkeypatch.setattr(optimizer_module, "CPU_CHUNK_ELEMENTS", 20)
    assert len(optimizer_module._cache_chunks(make_params(torch.float32))) > 2
    pa, pb, _, _ = run_pair(case.make("foreach"), case.make_peer(), torch.float64, 100)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b)
