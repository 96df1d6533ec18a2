"""Memory: no more optimizer state than torch, and no parameter-sized temporaries in the default step."""

from __future__ import annotations

import weakref
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import lrtune


class AllocationTracker(TorchDispatchMode):
    """Peak bytes of tensors allocated by ops (outputs that share no storage with an input) and still alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                nbytes = t.untyped_storage().nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t.untyped_storage(), self._free, nbytes)
        return out

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes


SHAPES = [(256, 128), (128, 128), (512,), (64, 256)]
OPTS = [
    ("sgd", lambda ps, **kw: lrtune.SGD(ps, lr=0.1, momentum=0.9, **kw), torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ("adam", lambda ps, **kw: lrtune.Adam(ps, **kw), torch.optim.Adam, {}),
    ("adamw", lambda ps, **kw: lrtune.AdamW(ps, **kw), torch.optim.AdamW, {}),
    ("radam", lambda ps, **kw: lrtune.RAdam(ps, **kw), torch.optim.RAdam, {}),
]


def _params() -> list[torch.nn.Parameter]:
    ps = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-3
    return ps


def _state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.nbytes for st in opt.state.values() for v in st.values() if torch.is_tensor(v))


@pytest.mark.parametrize(("name", "make", "peer", "peer_kw"), OPTS, ids=[o[0] for o in OPTS])
def test_state_is_no_larger_than_torch(name: str, make: Any, peer: type, peer_kw: dict) -> None:
    ours, theirs = make(_params()), peer(_params(), **peer_kw)
    for _ in range(8):
        ours.step()
        theirs.step()
    # lrtune also keeps SGD's step count (one 4-byte scalar per parameter): torch's SGD has none.
    scalars = 4 * len(SHAPES) if name == "sgd" else 0
    assert _state_bytes(ours) <= _state_bytes(theirs) + scalars


@pytest.mark.parametrize(("name", "make", "peer", "peer_kw"), OPTS, ids=[o[0] for o in OPTS])
@pytest.mark.parametrize("clip", [None, 1e-6])
def test_default_step_allocates_no_parameter_sized_temporary(
    name: str, make: Any, peer: type, peer_kw: dict, clip: float | None
) -> None:
    """The default (fused) step, with the non-finite check and clipping, allocates only scalars."""
    opt = make(_params(), max_grad_norm=clip)
    for _ in range(7):  # past RAdam's un-rectified steps
        opt.step()
    tracker = AllocationTracker()
    with tracker:
        opt.step()
    smallest_param = min(torch.Size(s).numel() for s in SHAPES) * 4
    assert tracker.peak < smallest_param, tracker.peak


def test_tracker_sees_the_generic_paths_temporaries() -> None:
    """The tracker is not blind: the multi-tensor RAdam path allocates parameter-sized temporaries."""
    opt = lrtune.RAdam(_params(), impl="foreach")
    for _ in range(7):
        opt.step()
    tracker = AllocationTracker()
    with tracker:
        opt.step()
    assert tracker.peak >= max(torch.Size(s).numel() for s in SHAPES) * 4
