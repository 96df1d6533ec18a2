"""Two workloads written as a user would, for benchmarks that must hold on models lrtune was never tuned on.

* ``MLPRegression`` implements the :class:`lrtune.workloads.Workload` protocol by hand (from its docstring): an
  MLP regressing a smooth non-linear function of 16 inputs with noise, mean squared error.
* ``sequence_classifier`` wraps a small Transformer classifier, its data and loss with
  :class:`lrtune.workloads.ModelWorkload`: sequences of 24 tokens (vocabulary 16), the label says which of tokens
  1 and 2 occurs more often, flipped for 10 % of the sequences (so that the best validation loss is well above 0,
  about 0.33 nats, and relative gaps mean something).

Both make their data from a fixed seed (nothing to download); benchmarks refer to them as
``_user_workloads:MLPRegression`` and ``_user_workloads:sequence_classifier``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from lrtune.workloads import ModelWorkload


class MLPRegression:
    """y = sin(x·a) + 0.5·tanh(x·b) + noise, x ∈ R^16; 4,000 training and 1,000 validation rows."""

    name, metric, higher_is_better, step_hint = "mlp-regression", "valid_loss", False, 600

    def __init__(self, hidden: int = 64, noise: float = 0.1) -> None:
        g = torch.Generator().manual_seed(1234)
        x = torch.randn(5000, 16, generator=g)
        a, b = torch.randn(16, generator=g) / 4, torch.randn(16, generator=g) / 4
        y = torch.sin(x @ a) + 0.5 * torch.tanh(x @ b) + noise * torch.randn(5000, generator=g)
        self.train_x, self.train_y = x[:4000], y[:4000, None]
        self.valid_x, self.valid_y = x[4000:], y[4000:, None]
        self.hidden = hidden

    def build_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        h = self.hidden
        return nn.Sequential(nn.Linear(16, h), nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, 1))

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(len(self.train_x), generator=g)
            for i in range(0, len(order) - batch_size + 1, batch_size):
                idx = order[i : i + batch_size]
                yield self.train_x[idx], self.train_y[idx]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {"valid_loss": nn.functional.mse_loss(model(self.valid_x), self.valid_y).item()}


class _Classifier(nn.Module):
    def __init__(self, vocab: int, length: int, d: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = nn.Parameter(torch.randn(length, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.position)
        return self.head(h.mean(1))


def _sequences(n: int, length: int, vocab: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, length), generator=g)
    ones, twos = (tokens == 1).sum(1), (tokens == 2).sum(1)
    keep = ones != twos  # no ties
    labels = (ones > twos).long()
    flip = torch.rand(n, generator=g) < 0.1  # label noise
    labels = torch.where(flip, 1 - labels, labels)
    return torch.utils.data.TensorDataset(tokens[keep], labels[keep])


def sequence_classifier(d: int = 64, layers: int = 2) -> ModelWorkload:
    """A small Transformer classifier (post-LN encoder, mean-pooled) wrapped with ModelWorkload."""
    length, vocab = 24, 16
    return ModelWorkload(
        model=lambda: _Classifier(vocab, length, d, layers),
        train_data=_sequences(6000, length, vocab, seed=1),
        loss=lambda model, batch: nn.functional.cross_entropy(model(batch[0]), batch[1]),
        valid_data=_sequences(1500, length, vocab, seed=2),
        metrics=lambda model, batch: {"valid_accuracy": (model(batch[0]).argmax(1) == batch[1]).float().mean()},
        name="sequence-classifier",
        step_hint=600,
    )
