"""On a GPU: lrtune's optimizers, schedules and trainer on CUDA (skipped where no GPU is present)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from helpers import CASE_IDS, CASES, Case, gradient_stream, make_params

import lrtune
from lrtune import schedules as S
from lrtune.optim._fused import supports_fused

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

FUSED_PEERS = [c for c in CASES if c.ours.__name__ in ("Adam", "AdamW", "SGD")]


def _cuda(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().cuda()) for p in params]


def _run_on_cuda(
    ours: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    peer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    dtype: torch.dtype,
    steps: int = 200,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    pa = _cuda(make_params(dtype))
    pb = [torch.nn.Parameter(p.detach().clone()) for p in pa]
    opt_a, opt_b = ours(pa), peer(pb)
    for grads in gradient_stream(make_params(dtype), steps):
        for ps in (pa, pb):
            for p, g in zip(ps, grads, strict=True):
                p.grad = None if g is None else g.cuda()
        opt_a.step()
        opt_b.step()
    return pa, pb


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cuda_equals_torch_on_cuda(case: Case) -> None:
    """impl="auto" (fused on CUDA for the built-ins) against torch.optim's CUDA default (foreach)."""
    pa, pb = _run_on_cuda(case.make("auto"), case.make_peer(), torch.float64)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", FUSED_PEERS, ids=lambda c: c.name)
def test_cuda_fused_is_bitwise_equal_to_torch_fused(case: Case, dtype: torch.dtype) -> None:
    pa, pb = _run_on_cuda(case.make("fused"), case.make_peer(fused=True), dtype)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b), float((a - b).abs().max())


def test_auto_picks_the_fused_kernels_on_cuda() -> None:
    opt = lrtune.RAdam(_cuda(make_params(torch.float32)), lr=1e-3)
    group = opt.param_groups[0]
    momentum, adaptive = opt._rules(group)
    assert supports_fused(momentum, adaptive, group["params"])


def test_cuda_clipping_skip_and_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(4, device="cuda"))
    opt = lrtune.Adam([p], lr=1.0, max_grad_norm=1.0, nonfinite="skip")
    sched = S.LRScheduler(opt, S.warmup_linear_decay(2, 10))
    for i in range(5):
        p.grad = torch.full((4,), float("nan") if i == 2 else 3.0, device="cuda")
        opt.step()
        sched.step()
    assert opt.skipped_steps == 1
    assert sched.applied_updates == 4
    assert opt.last_grad_norm is not None and opt.last_grad_norm.device.type == "cuda"
    assert torch.isfinite(p).all()


def test_trainer_on_cuda_matches_cpu() -> None:
    from lrtune.workloads import Digits

    kwargs = {"optimizer": {"name": "radam", "lr": 3e-3}, "steps": 40, "batch_size": 64, "max_grad_norm": 1.0}
    cpu = lrtune.train(Digits(), **kwargs)  # type: ignore[arg-type]
    gpu = lrtune.train(Digits(), device="cuda", **kwargs)  # type: ignore[arg-type]
    assert gpu.status == cpu.status == "completed"
    for key, value in cpu.final_metrics.items():
        assert gpu.final_metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key


def test_translation_trains_and_translates_on_cuda(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lrtune.workloads import Translation, find_ding

    try:
        find_ding()
    except FileNotFoundError as e:
        pytest.skip(str(e).splitlines()[0])
    monkeypatch.setenv("LRTUNE_CACHE", str(tmp_path))
    workload = Translation(vocab_size=1000, max_train_pairs=2000, max_eval_pairs=32)
    record = lrtune.train(workload, optimizer={"name": "radam", "lr": 2e-3}, steps=30, batch_size=1024, device="cuda")
    assert record.status == "completed"
    assert record.final_metrics["valid_loss"] < 7.0 and 0.0 <= record.final_metrics["bleu"] <= 100.0


@pytest.mark.parametrize("grads", ["autograd", "assigned"])
@pytest.mark.parametrize("layout", ["contiguous", "strided-view", "transposed", "channels_last"])
@pytest.mark.parametrize("impl", ["auto", "fused", "foreach"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_cuda_every_layout_equals_torch_foreach(case: Case, impl: str, layout: str, grads: str) -> None:
    """The layouts of tests/test_layouts.py on CUDA: the fused kernels only where they can walk the layout."""
    from test_layouts import params_of, same_layout_copy, train_steps

    ours = params_of(layout, torch.float64, "cuda")
    peer = same_layout_copy(ours)
    train_steps(case.make(impl), ours, grads)
    train_steps(case.make_peer(foreach=True), peer, grads)
    for a, b in zip(ours, peer, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("case", [c for c in CASES if c.group_options == [{}]], ids=lambda c: c.name)
def test_cuda_half_precision_is_as_close_to_float64_as_torch(case: Case, dtype: torch.dtype) -> None:
    """torch 2.13's CPU fused SGD is wrong in half precision; this checks the CUDA kernels the default uses."""
    from test_layouts import params_of, train_steps

    exact = train_steps(
        case.make("foreach"),
        [p.detach().double().requires_grad_() for p in params_of("contiguous", dtype, "cuda")],
        "assigned",
    )
    ours = train_steps(case.make("auto"), params_of("contiguous", dtype, "cuda"), "assigned")
    peer = train_steps(case.make_peer(foreach=True), params_of("contiguous", dtype, "cuda"), "assigned")
    for a, b, x in zip(ours, peer, exact, strict=True):
        ours_err = float((a.detach().double() - x.detach()).abs().max())
        peer_err = float((b.detach().double() - x.detach()).abs().max())
        slack = 8 * torch.finfo(dtype).eps * float(x.detach().abs().max())
        assert ours_err <= 2 * peer_err + slack or (ours_err != ours_err and peer_err != peer_err)


# -------------------------------------------------------------------------------------------------
# the non-finite check on the device: no host synchronisation in a default step

SYNC_FREE = [
    ("adam", lambda ps, **kw: lrtune.Adam(ps, lr=1e-3, **kw)),
    ("adamw", lambda ps, **kw: lrtune.AdamW(ps, lr=1e-3, **kw)),
    ("radam", lambda ps, **kw: lrtune.RAdam(ps, lr=1e-3, **kw)),
    ("sgd-momentum", lambda ps, **kw: lrtune.SGD(ps, lr=1e-2, momentum=0.9, **kw)),
    (
        "sgdw",
        lambda ps, **kw: lrtune.SGD(ps, lr=1e-2, momentum=0.9, weight_decay=1e-2, decoupled_weight_decay=True, **kw),
    ),
]


@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("nonfinite", ["raise", "skip"])
@pytest.mark.parametrize(("name", "make"), SYNC_FREE, ids=[s[0] for s in SYNC_FREE])
def test_default_step_does_not_synchronise(name: str, make: Callable, nonfinite: str, clip: float | None) -> None:
    """torch's sync debug mode turns every synchronising call (``.item()``, a copy to or from pageable host memory,
    a stream synchronisation) into an error: the default steps, including one with a NaN gradient under "skip",
    make none. (Waiting on the previous step's event, which is how the next step reads its check, is not one.)"""
    params = _cuda(make_params(torch.float32))
    opt = make(params, nonfinite=nonfinite, max_grad_norm=clip)
    # Every gradient on the GPU before the checked steps: a copy from pageable host memory would synchronise.
    stream = [
        [None if g is None else g.cuda() for g in grads] for grads in gradient_stream(make_params(torch.float32), 16)
    ]
    if nonfinite == "skip":
        stream[12][0] = stream[12][0].clone()  # type: ignore[union-attr]
        stream[12][0].view(-1)[0] = float("nan")  # type: ignore[union-attr]

    def step(i: int) -> None:
        for p, g in zip(params, stream[i], strict=True):
            p.grad = g
        opt.step()

    for i in range(8):  # RAdam's first steps are not rectified: they take the multi-tensor path, which reads
        step(i)  # the flag on the host; from step 6 on RAdam is fused
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(8, 16):
            step(i)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert opt.skipped_steps == (1 if nonfinite == "skip" else 0)
    assert all(bool(torch.isfinite(p).all()) for p in params)


@pytest.mark.parametrize(("name", "make"), SYNC_FREE, ids=[s[0] for s in SYNC_FREE])
def test_cuda_skipped_step_leaves_no_trace(name: str, make: Callable) -> None:
    """As on CPU (tests/test_clipping_nonfinite.py): a run with a skipped NaN step equals the run without it."""
    stream = list(gradient_stream(make_params(torch.float32), 14))

    def run(steps: list, bad: int | None) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
        params = _cuda(make_params(torch.float32))
        opt = make(params, nonfinite="skip")
        for i, grads in enumerate(steps):
            for p, g in zip(params, grads, strict=True):
                p.grad = None if g is None else g.cuda()
            if i == bad:
                params[1].grad.view(-1)[0] = float("inf")  # type: ignore[union-attr]
            opt.step()
        return params, opt

    with_bad, opt = run(stream, 9)
    without, clean = run(stream[:9] + stream[10:], None)
    assert opt.skipped_steps == 1
    for a, b in zip(with_bad, without, strict=True):
        assert torch.equal(a, b)
    sa, sb = opt.state_dict()["state"], clean.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for key, value in sa[k].items():
            assert torch.equal(value, sb[k][key]), key


def test_cuda_raise_is_deferred_to_the_next_step() -> None:
    params = _cuda(make_params(torch.float32))
    opt = lrtune.Adam(params, lr=1e-2)
    stream = list(gradient_stream(make_params(torch.float32), 4))
    for grads in stream[:2]:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else g.cuda()
        opt.step()
    before = [p.detach().clone() for p in params]
    params[0].grad = torch.full_like(params[0], float("nan"))
    opt.step()  # no error yet: the check is read at the next step
    with pytest.raises(FloatingPointError, match="non-finite gradient"):
        opt.step()
    for a, b in zip(params, before, strict=True):
        assert torch.equal(a, b)
