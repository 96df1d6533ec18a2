"""State dicts: save → load → continue is bit-identical; torch.optim state dicts load where the algorithm matches."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import torch
from helpers import CASE_IDS, CASES, Case, clone_params, gradient_stream, make_params, set_grads

import lrtune


def _roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("impl", ["auto", "foreach"])
def test_save_load_continue_is_bit_identical(case: Case, impl: str) -> None:
    params = make_params(torch.float32)
    opt = case.make(impl)(params)
    stream = list(gradient_stream(params, 40))
    for grads in stream[:20]:
        set_grads(params, grads)
        opt.step()
    resumed_params = clone_params(params)
    resumed = case.make(impl)(resumed_params)
    resumed.load_state_dict(_roundtrip(opt.state_dict()))
    for grads in stream[20:]:
        for ps, o in ((params, opt), (resumed_params, resumed)):
            set_grads(ps, grads)
            o.step()
    for a, b in zip(params, resumed_params, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", [c for c in CASES if c.peer is not torch.optim.SGD or "momentum" in c.kwargs], ids=str)
def test_torch_state_dict_loads_and_continues_equal(case: Case) -> None:
    """Train with torch.optim, load its state into lrtune, continue both: bit-identical (foreach path)."""
    params = make_params(torch.float64)
    peer = case.make_peer()(params)
    stream = list(gradient_stream(params, 30))
    for grads in stream[:15]:
        set_grads(params, grads)
        peer.step()
    ours_params = clone_params(params)
    ours = case.make("foreach")(ours_params)
    ours.load_state_dict(_roundtrip(peer.state_dict()))  # a saved copy: loading shares tensors
    for grads in stream[15:]:
        for ps, o in ((params, peer), (ours_params, ours)):
            set_grads(ps, grads)
            o.step()
    for a, b in zip(params, ours_params, strict=True):
        assert torch.equal(a, b)


def test_loaded_hyperparameters_are_validated() -> None:
    import lrtune

    p = [torch.nn.Parameter(torch.zeros(2))]
    sd = lrtune.Adam(p).state_dict()
    sd["param_groups"][0]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        lrtune.Adam(p).load_state_dict(sd)


@pytest.mark.parametrize(
    ("source", "target", "theirs"),
    [
        (lambda p: lrtune.SGD(p, lr=0.1, momentum=0.9), lambda p: lrtune.Adam(p), "SGD's"),
        (lambda p: lrtune.Adam(p), lambda p: lrtune.SGD(p, lr=0.1, momentum=0.9), "Adam's"),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), lambda p: lrtune.RAdam(p), "SGD with momentum's"),
        (
            lambda p: torch.optim.Adam(p, amsgrad=True),
            lambda p: lrtune.Adam(p),
            "amsgrad=True is not part of lrtune.Adam",
        ),
    ],
)
def test_a_state_of_another_optimizer_is_refused_at_load(source: Any, target: Any, theirs: str) -> None:
    """Loaded, it would fail at every step (KeyError: 'exp_avg') and count steps: refused, naming both types."""
    params = [torch.nn.Parameter(torch.randn(4))]
    params[0].grad = torch.ones(4)
    donor = source(params)
    donor.step()
    receiver = target(params)
    with pytest.raises(ValueError, match=re.escape(theirs)) as info:
        receiver.load_state_dict(donor.state_dict())
    assert type(receiver).__name__ in str(info.value)
    receiver.step()  # untouched by the refused load: it still steps
