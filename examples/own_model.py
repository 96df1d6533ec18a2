"""Tune the learning rate of *your* model: a model, a Dataset and a loss, wrapped in a few lines.

Copy this file and replace the three marked parts (data, model, loss/metrics) with yours. The rest — wrapping them
as a workload, the LR range test, choosing settings for a budget, the training run with checkpoints — stays.

The stand-in task: a small CNN on scikit-learn's bundled 8×8 handwritten digits (offline, no download), with a
random-shift augmentation in the Dataset. Needs torch, lrtune and scikit-learn.

Run: python examples/own_model.py            (range test + lrtune auto + the full run: under a minute on 2 cores)
     python examples/own_model.py --quick    (a few seconds: the settings the test suite runs)

The module-level ``workload`` factory is what lrtune's commands can load by name
(``--workload own_model:workload --workload-option hidden=128``): keep one like it in your copy.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset, TensorDataset

import lrtune
from lrtune.study import auto
from lrtune.tune import lr_range_test
from lrtune.workloads import ModelWorkload

# -- config (flat, nanoGPT style) -------------------------------------------------------------------------
STEPS = 600  # optimizer updates of the final run (≈ 30 epochs of the 1,257 training images)
BATCH_SIZE = 64  # examples per update; lrtune's tools pass it to the workload, which batches the Dataset
OPTIMIZER = "adam"  # lrtune auto: "adam" (untuned warm-up of 2/(1 − β2) updates) or "radam" (no warm-up)
BETA2 = 0.98  # Adam's β2: 0.98 is the Transformer default; the warm-up is then 100 updates
RANGE_TEST_STEPS = 200  # LR range test: 1e-7 -> 10 exponentially, 25 updates per decade (one test's steepest
#                        point on this noisy curve moves by decades between seeds: auto reads two, see step 2)
CANDIDATES = 4  # lrtune auto: peak LRs 0.3 decades apart from its LR estimate up (more beyond an edge winner)
SEED = 0
QUICK = {"STEPS": 30, "RANGE_TEST_STEPS": 30, "CANDIDATES": 2}  # --quick: a smoke test of every step


# -- 1. your data ------------------------------------------------------------------------------------------
def load_digits_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """1797 images (1×8×8, scaled to [0, 1]) and labels, split 70/15/15 by a fixed permutation."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_train, n_valid = int(0.7 * len(y)), int(0.15 * len(y))
    parts = {"train": order[:n_train], "valid": order[n_train : n_train + n_valid], "test": order[n_train + n_valid :]}
    return {k: (x[i], y[i]) for k, i in parts.items()}


class ShiftedDigits(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Training images, each shifted by up to one pixel at random — an augmentation that draws from torch's RNG.

    lrtune runs data code on a random stream of its own, seeded from the run's seed: the shifts are the same in
    every run with that seed, and resuming from a checkpoint gives the uninterrupted run's batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, max_shift: int = 1) -> None:
        self.images, self.labels, self.max_shift = images, labels, max_shift

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
        return torch.roll(self.images[i], shifts=(dy, dx), dims=(1, 2)), self.labels[i]


# -- 2. your model -----------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self, channels: int = 16, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8×8 -> 4×4
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * 16, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# -- 3. your loss and metrics ------------------------------------------------------------------------------
def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The batch's mean loss; lrtune has already moved the batch to the model's device."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def accuracy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A per-batch mean: lrtune averages it over the validation batches, weighted by their sizes."""
    images, labels = batch
    return {"valid_accuracy": (model(images).argmax(1) == labels).float().mean()}


# -- the workload: what every lrtune tool (and command) takes ----------------------------------------------
def workload(channels: int = 16, hidden: int = 64, dropout: float = 0.1, max_shift: int = 1) -> ModelWorkload:
    """The digits CNN as an lrtune workload; the arguments are what ``--workload-option KEY=VALUE`` sets."""
    splits = load_digits_splits()
    x_test, y_test = splits["test"]

    def test_accuracy(model: nn.Module, *, final: bool) -> dict[str, float]:
        """Held-out test accuracy, computed at the run's last evaluation only (the test set is not for tuning)."""
        if not final:
            return {}
        device = next(model.parameters()).device
        predictions = model(x_test.to(device)).argmax(1).cpu()
        return {"test_accuracy": (predictions == y_test).float().mean().item()}

    return ModelWorkload(
        model=lambda: SmallCNN(channels, hidden, dropout),  # torch is seeded with the run's seed before this
        train_data=ShiftedDigits(*splits["train"], max_shift=max_shift),  # or a DataLoader (its collate_fn kept)
        loss=loss_fn,
        valid_data=TensorDataset(*splits["valid"]),  # or a DataLoader, or a list of batches
        metrics=accuracy,
        evaluate=test_accuracy,
        metric="valid_accuracy",
        higher_is_better=True,
        name="digits-cnn",
        step_hint=STEPS,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings (a few seconds)")
    parser.add_argument("--out", default=None, help="where the final run writes its records (default: a temp dir)")
    args = parser.parse_args()
    config = {"STEPS": STEPS, "RANGE_TEST_STEPS": RANGE_TEST_STEPS, "CANDIDATES": CANDIDATES}
    if args.quick:
        config |= QUICK
    steps, range_test_steps, candidates = config["STEPS"], config["RANGE_TEST_STEPS"], config["CANDIDATES"]
    task = workload()

    # 1. An LR range test: where does the loss fall fastest? (lrtune auto starts with the same one)
    t0 = time.perf_counter()
    spec = {"name": OPTIMIZER, "betas": (0.9, BETA2)}
    curve = lr_range_test(task, optimizer=spec, num_steps=range_test_steps, batch_size=BATCH_SIZE, seed=SEED)
    print(f"LR range test ({len(curve.lrs)} updates, {time.perf_counter() - t0:.1f} s):")
    for rule, lr in curve.suggestions().items():
        print(f"  {rule:16s} {lr:.3g}")

    # 2. lrtune auto: peak LR, warm-up and schedule for this budget (a robust LR estimate from two range tests,
    #    then candidates trained on the real schedule and compared after a short cooldown).
    t0 = time.perf_counter()
    choice = auto(
        task, steps=steps, batch_size=BATCH_SIZE, optimizer=OPTIMIZER, beta2=BETA2, candidates=candidates,
        range_test_steps=range_test_steps, seed=SEED,
    )  # fmt: skip
    lr = choice.config["optimizer"]["lr"]
    print(f"lrtune auto ({choice.updates} updates, {time.perf_counter() - t0:.1f} s): {OPTIMIZER} lr={lr:.3g}")
    for candidate in choice.candidates:
        losses = candidate["valid_loss"] if isinstance(candidate["valid_loss"], list) else [candidate["valid_loss"]]
        print(f"  candidate lr={candidate['lr']:.3g}: valid loss after its cooldown {losses[-1]:.4f}")
    print(f"  schedule {choice.config['schedule']}")

    # 3. The full run with those settings: checkpoints every 100 updates (resume=True continues bit-identically).
    with tempfile.TemporaryDirectory() as tmp:
        record = lrtune.train(
            task,
            optimizer=choice.config["optimizer"],
            schedule=choice.config["schedule"],
            steps=steps,
            batch_size=BATCH_SIZE,
            seed=SEED,
            eval_every=max(1, steps // 5),
            out_dir=args.out or tmp,
            checkpoint_every=100,
        )
    print(f"final run: {record.status}, {record.steps} updates in {record.seconds:.1f} s")
    for evaluation in record.evals:
        print(
            f"  update {evaluation['step']:4d}: valid loss {evaluation['valid_loss']:.4f}, "
            f"valid accuracy {evaluation['valid_accuracy']:.3f}"
        )
    print(f"test accuracy: {record.final_metrics['test_accuracy']:.3f}")


if __name__ == "__main__":
    main()
