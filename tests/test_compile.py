"""torch.compile of a training step that calls optimizer.step()."""

from __future__ import annotations

import pytest
import torch

import lrtune


@pytest.mark.parametrize("opt_cls", [lrtune.SGD, lrtune.Adam, lrtune.RAdam], ids=lambda c: c.__name__)
def test_compiled_training_step_matches_eager(opt_cls: type) -> None:
    """The optimizer step is excluded from compilation (it runs eagerly, a graph break); the compiled
    training step gives exactly the eager result."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    models = [torch.nn.Linear(4, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [opt_cls(m.parameters(), lr=1e-2) for m in models]

    def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = torch.compile(train_step, backend="aot_eager")
    torch._dynamo.reset()
    for _ in range(8):
        eager_loss = train_step(models[0], opts[0])
        compiled_loss = compiled(models[1], opts[1])
        assert torch.equal(eager_loss, compiled_loss)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)
    state = opts[1].state_dict()["state"]
    if opt_cls is lrtune.SGD:
        assert state == {}  # plain SGD keeps no state, as torch.optim.SGD
    else:
        assert [float(s["step"]) for s in state.values()] == [8.0, 8.0]


@pytest.mark.parametrize("opt_cls", [lrtune.SGD, lrtune.Adam, lrtune.RAdam], ids=lambda c: c.__name__)
def test_fullgraph_compile_names_lrtune_and_the_way_out(opt_cls: type) -> None:
    """With fullgraph=True the step cannot be a graph break: the error says it is lrtune's step and what to do
    (torch 2.13's own optimizers graph-break in step() too). Following its advice gives the eager result."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    models = [torch.nn.Linear(4, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    opts = [opt_cls(m.parameters(), lr=1e-2) for m in models]
    for model in models:
        torch.nn.functional.mse_loss(model(x), y).backward()
    torch._dynamo.reset()
    with pytest.raises(Exception, match=r"lrtune's optimizer\.step\(\) runs eagerly") as info:
        torch.compile(lambda: opts[1].step(), backend="aot_eager", fullgraph=True)()
    assert "outside the compiled function" in str(info.value) and "fullgraph=True" in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))

    def loss_of(model: torch.nn.Module) -> torch.Tensor:  # the way out: compile the forward, step eagerly
        return torch.nn.functional.mse_loss(model(x), y)

    compiled_loss = torch.compile(loss_of, backend="aot_eager", fullgraph=True)
    for _ in range(3):
        for opt, model, fn in zip(opts, models, (loss_of, compiled_loss), strict=True):
            opt.zero_grad()
            fn(model).backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
