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
    assert float(opts[1].state[next(models[1].parameters())]["step"]) == 8
