"""Your model, data and loss as a :class:`Workload`: what every lrtune tool tunes, in a few lines.

::

    from lrtune.workloads import ModelWorkload

    workload = ModelWorkload(
        model=lambda: MyNet(hidden=256),           # a fresh model per run (torch seeded for you)
        train_data=train_set,                      # a Dataset, a DataLoader, or (batch_size, seed) -> batches
        loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        valid_data=valid_set,                      # a Dataset, a DataLoader, or a list of batches
        metrics=lambda model, batch: {"valid_accuracy": (model(batch[0]).argmax(1) == batch[1]).float().mean()},
        metric="valid_accuracy", higher_is_better=True,
    )
    lrtune.train(workload, optimizer={"name": "adam", "lr": 1e-3}, steps=2000, batch_size=128)

Every tool gives the workload its batch size and seed, so training batches are lrtune's to make: a ``Dataset`` is
shuffled with a fresh permutation every epoch drawn from a generator seeded with ``seed``, cut into batches of
``batch_size`` (the last, incomplete one dropped) and collated; a ``DataLoader`` is re-batched the same way, keeping
its dataset, ``collate_fn``, ``num_workers``, ``pin_memory`` and worker settings. For anything else (a bucketing
batch sampler, a weighted sampler, streamed data) pass a callable ``(batch_size, seed) -> batches``.

Data code runs on a random stream of its own (torch's CPU generator state, seeded from ``seed``, swapped in around
every batch): random augmentations in a ``Dataset`` and a ``DataLoader`` without a generator are reproducible
from the seed, never shift the model's random stream (dropout), and a resumed run — which skips the batches it has
already trained on — is bit-identical to an uninterrupted one. Evaluation leaves the global random state as it
found it, so how often a run evaluates does not change its training.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    default_collate,
)

from .._batch import batch_rows, move_to
from .._validate import check_steps

__all__ = ["ModelWorkload"]

logger = logging.getLogger(__name__)

ModelFactory = Callable[[int], nn.Module] | Callable[[], nn.Module]
LossFn = Callable[[nn.Module, Any], torch.Tensor]
BatchMetrics = Callable[[nn.Module, Any], Mapping[str, float | torch.Tensor]]
ModelMetrics = Callable[..., Mapping[str, float | torch.Tensor]]

_TENSOR_HINT = "wrap tensors in torch.utils.data.TensorDataset(x, y)"


class ModelWorkload:
    """A :class:`~lrtune.workloads.Workload` from a model factory, training data, a loss and validation data.

    Its :meth:`evaluate` returns ``valid_loss`` — ``loss`` averaged over the validation batches, each weighted by
    its number of examples (or by ``loss_weight(batch)``), so batches of unequal size average correctly — plus the
    per-batch ``metrics`` averaged with the same weights, plus what ``evaluate`` returns. The metric to tune is
    ``valid_loss`` unless ``metric`` names another key.

    Args:
        model: a factory of a freshly initialised model: called as ``model(seed)`` if it takes an argument named
            ``seed`` or one required positional argument, else as ``model()`` (an ``nn.Module`` class is always
            called without arguments). torch is seeded with ``seed`` just before, so either kind is deterministic.
        train_data: a map-style ``Dataset`` (anything with ``__len__`` and ``__getitem__``: a torch ``Dataset``,
            a Hugging Face ``datasets.Dataset`` in torch format), a ``DataLoader`` over one (re-batched, see the
            module doc), or a callable ``(batch_size, seed) -> iterable of batches``. The callable's result may be
            endless, or re-iterable (a ``DataLoader``: iterated again, epoch after epoch); it must depend only
            on its arguments.
        loss: ``loss(model, batch) -> scalar tensor``, the batch's mean training loss (it calls the model, so a
            model that computes its own loss is ``lambda model, batch: model(**batch).loss``). Batches reach it
            on the model's device: tensors, and tensors inside tuples (named ones too), lists and dicts, are moved
            (a mapping arrives as a ``dict``); anything else is passed as it is.
        valid_data: a map-style ``Dataset`` (batches of ``eval_batch_size``, in order), a ``DataLoader`` (used as
            it is), or a list (or other re-iterable) of batches. All of it is evaluated every time.
        metrics: ``metrics(model, batch) -> {name: value}``, per-batch means (e.g. accuracy), averaged over the
            validation batches like the loss. It runs its own forward pass.
        evaluate: ``evaluate(model) -> {name: value}`` for metrics that are not means over batches (F1, BLEU);
            given a keyword ``final``, it is told whether this is the run's last evaluation (compute costly
            metrics only then; every metric named by ``metric`` must be there every time).
        metric: the key of :meth:`evaluate`'s result to tune (``"valid_loss"`` by default).
        higher_is_better: whether a larger ``metric`` is better; required unless ``metric`` is ``"valid_loss"``.
        name: a short name for run records.
        step_hint: a sensible number of optimizer updates for a full run (used when a tool is given no ``steps``).
        batch_hint: the training batch size tools use when given none.
        eval_batch_size: the batch size of a validation ``Dataset``.
        collate_fn: turns a list of examples into a batch, for ``Dataset`` inputs (default: torch's
            ``default_collate``); a ``DataLoader`` brings its own.
        loss_weight: ``loss_weight(batch) -> int``, the number of terms ``loss`` averages over (e.g. target
            tokens) when that is not the batch's number of rows: it weights the validation averages, and under
            ``torchrun`` each process's share of the gradient (see :class:`~lrtune.workloads.Workload`).

    Raises:
        TypeError, ValueError: at construction, naming the argument, when one has the wrong kind or value.
    """

    def __init__(
        self,
        *,
        model: ModelFactory,
        train_data: Any,
        loss: LossFn,
        valid_data: Any,
        metrics: BatchMetrics | None = None,
        evaluate: ModelMetrics | None = None,
        metric: str = "valid_loss",
        higher_is_better: bool | None = None,
        name: str = "custom",
        step_hint: int = 1000,
        batch_hint: int = 64,
        eval_batch_size: int = 256,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        loss_weight: Callable[[Any], int] | None = None,
    ) -> None:
        self._make_model, self._seeded = _check_factory(model)
        self._train = _check_train_data(train_data)
        self._loss = _check_callable("loss", loss, 2, "(model, batch)")
        self._valid = _check_valid_data(valid_data)
        self._metrics = None if metrics is None else _check_callable("metrics", metrics, 2, "(model, batch)")
        self._evaluate_takes_final = evaluate is not None and _accepts_keyword(evaluate, "final")
        final = {"final": True} if self._evaluate_takes_final else {}
        self._evaluate = None if evaluate is None else _check_callable("evaluate", evaluate, 1, "(model)", **final)
        if not isinstance(metric, str) or not metric:
            raise TypeError(f"metric must be a non-empty string (a key of evaluate's result), got {metric!r}")
        if metric != "valid_loss" and metrics is None and evaluate is None:
            raise ValueError(f"metric {metric!r} needs a metrics or an evaluate function that returns it")
        if higher_is_better is None:
            if metric != "valid_loss":
                raise ValueError(f"higher_is_better must be given for metric {metric!r} (True or False)")
            higher_is_better = False
        if not isinstance(higher_is_better, bool):
            raise TypeError(f"higher_is_better must be True or False, got {higher_is_better!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self.step_hint = check_steps("step_hint", step_hint, minimum=1)
        self.batch_hint = check_steps("batch_hint", batch_hint, minimum=1)
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.eval_batch_size = check_steps("eval_batch_size", eval_batch_size, minimum=1)
        self._collate = default_collate if collate_fn is None else _check_callable("collate_fn", collate_fn, 1, "")
        if loss_weight is not None:  # only then: the trainer counts "tokens" rather than "examples" for it
            self.loss_weight = _check_callable("loss_weight", loss_weight, 1, "(batch)")

    def __repr__(self) -> str:
        return (
            f"ModelWorkload(name={self.name!r}, metric={self.metric!r}, higher_is_better={self.higher_is_better}, "
            f"step_hint={self.step_hint})"
        )

    def build_model(self, seed: int) -> nn.Module:
        """A fresh model from the factory, with torch seeded with ``seed`` first."""
        torch.manual_seed(seed)
        module = self._make_model(seed) if self._seeded else self._make_model()
        if not isinstance(module, nn.Module):
            raise TypeError(f"model must return a torch.nn.Module, got {type(module).__name__}")
        return module

    def train_batches(self, batch_size: int, seed: int) -> Iterator[Any]:
        """An endless stream of training batches, the same for the same ``batch_size`` and ``seed``."""
        batch_size = check_steps("batch_size", batch_size, minimum=1)
        rng = _DataRNG(seed)
        source = self._train
        if not isinstance(source, DataLoader) and not _is_map_dataset(source):  # a callable
            return _endless(lambda: source(batch_size, seed), rng, f"train_data({batch_size}, {seed})")
        if isinstance(source, DataLoader):
            dataset, options = source.dataset, _loader_options(source)
            if source.batch_size != batch_size:
                logger.info("train_data's DataLoader re-batched: batches of %d, not %s", batch_size, source.batch_size)
        else:
            dataset, options = source, {"collate_fn": self._collate}
        n = len(dataset)  # type: ignore[arg-type]  # a map-style dataset has a length
        if batch_size > n:
            raise ValueError(f"batch_size must be <= the {n} training examples, got {batch_size!r}")
        loader = DataLoader(dataset, batch_sampler=_ShuffledBatches(n, batch_size, seed), **options)
        return _endless(lambda: loader, rng, "train_data")

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``model`` on ``batch`` (the ``loss`` function given)."""
        value = self._loss(model, batch)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"loss must return a scalar tensor (the batch's mean loss), got {shape}")
        return value.reshape(())

    def evaluate(self, model: nn.Module, *, final: bool = True) -> dict[str, float]:
        """``valid_loss``, the averaged per-batch ``metrics`` and ``evaluate``'s metrics of ``model``."""
        device = _device_of(model)
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                out = self._averages(model, device)
                if self._evaluate is not None:
                    extra = self._evaluate(model, final=final) if self._evaluate_takes_final else self._evaluate(model)
                    out.update(_floats("evaluate", extra, reserved=out))
        finally:
            model.train(was_training)
        if self.metric not in out:
            raise ValueError(f"metric {self.metric!r} is not among the evaluated metrics {sorted(out)}")
        return out

    def _averages(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """The validation loss and per-batch metrics, averaged with each batch's weight (one host sync at the end)."""
        weight_of = getattr(self, "loss_weight", batch_rows)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        sums: dict[str, torch.Tensor] = {}
        total = 0
        for raw in _valid_batches(self._valid, self.eval_batch_size, self._collate):
            weight = int(weight_of(raw))
            batch = move_to(raw, device)
            values: dict[str, Any] = {"valid_loss": self.loss(model, batch)}
            if self._metrics is not None:
                values.update(_check_metrics(self._metrics(model, batch), reserved=values))
            if sums and values.keys() != sums.keys():
                raise ValueError(
                    f"metrics gave the keys {sorted(values)} for a batch, {sorted(sums)} for an earlier one"
                )
            for key, value in values.items():
                term = torch.as_tensor(value, dtype=dtype, device=device) * weight
                sums[key] = sums[key] + term if key in sums else term
            total += weight
        if total <= 0:
            raise ValueError("valid_data holds no examples to evaluate on")
        return {key: float(value.item()) / total for key, value in sums.items()}


class _ShuffledBatches(Sampler[list[int]]):
    """Endless index batches: each epoch a fresh permutation from a generator seeded with ``seed``, cut into
    ``batch_size`` pieces (the incomplete last one dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            order = torch.randperm(self.n, generator=g).tolist()
            for start in range(0, self.n - self.batch_size + 1, self.batch_size):
                yield order[start : start + self.batch_size]


class _DataRNG:
    """A torch CPU random state for data code, swapped in while it runs; seeded from the run's seed, apart from
    the model's stream (a derived seed, so that the two streams differ)."""

    def __init__(self, seed: int) -> None:
        derived = int(np.random.SeedSequence([seed % 2**64, 0xDA7A]).generate_state(1, np.uint64)[0])
        self._state = torch.Generator().manual_seed(derived).get_state()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        outer = torch.get_rng_state()
        torch.set_rng_state(self._state)
        try:
            yield
        finally:
            self._state = torch.get_rng_state()
            torch.set_rng_state(outer)


def _endless(make: Callable[[], Iterable[Any]], rng: _DataRNG, what: str) -> Iterator[Any]:
    """The batches of ``make()``, iterated again each time they end, every data call on ``rng``'s stream."""
    with rng.active():
        iterable = make()
    if not isinstance(iterable, Iterable):
        raise TypeError(f"{what} must return an iterable of batches, got {type(iterable).__name__}")
    epoch = 0
    while True:
        with rng.active():
            it = iter(iterable)
        if epoch > 0 and it is iterable:
            raise ValueError(
                f"{what} returned an iterator, which ended after one pass: return an endless iterator, or a "
                "re-iterable such as a DataLoader"
            )
        count = 0
        while True:
            with rng.active():
                batch = next(it, _END)
            if batch is _END:
                break
            count += 1
            yield batch  # outside the data stream: the trainer's code runs on the model's
        if count == 0:
            raise ValueError(f"{what} yielded no batches")
        epoch += 1


_END = object()


def _valid_batches(source: Any, batch_size: int, collate: Callable[[list[Any]], Any]) -> Iterable[Any]:
    if isinstance(source, DataLoader):
        return source
    if _is_map_dataset(source) or isinstance(source, IterableDataset):
        return DataLoader(source, batch_size=batch_size, shuffle=False, collate_fn=collate)
    return source  # a list (or another re-iterable) of batches


def _loader_options(loader: DataLoader[Any]) -> dict[str, Any]:
    """The options of ``loader`` that lrtune keeps when it re-batches its dataset."""
    options: dict[str, Any] = {
        "collate_fn": loader.collate_fn,
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
    }
    if loader.num_workers > 0:
        options |= {
            "multiprocessing_context": loader.multiprocessing_context,
            "prefetch_factor": loader.prefetch_factor,
            "persistent_workers": loader.persistent_workers,
        }
    return options


def _is_map_dataset(x: Any) -> bool:
    return (
        not isinstance(x, (IterableDataset, DataLoader, Mapping, str, bytes, list, tuple))
        and hasattr(type(x), "__getitem__")
        and hasattr(type(x), "__len__")
    )


def _check_train_data(data: Any) -> Any:
    if isinstance(data, DataLoader):
        if isinstance(data.dataset, IterableDataset):
            raise ValueError(
                "train_data is a DataLoader over an IterableDataset, which lrtune cannot shuffle by seed or "
                "re-batch: pass a callable (batch_size, seed) -> batches"
            )
        if data.batch_size is None or type(data.batch_sampler) is not BatchSampler:
            raise ValueError(
                "train_data is a DataLoader with its own batch_sampler (or no automatic batching), which "
                "lrtune would replace: pass a callable (batch_size, seed) -> batches that builds it"
            )
        if type(data.sampler) not in (SequentialSampler, RandomSampler):
            raise ValueError(
                f"train_data is a DataLoader with a {type(data.sampler).__name__}, which lrtune would replace "
                "by its seeded shuffling: pass a callable (batch_size, seed) -> batches that builds it"
            )
        return data
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
        raise TypeError(f"train_data is a tuple of tensors: {_TENSOR_HINT}")
    if isinstance(data, IterableDataset):
        raise TypeError(
            "train_data is an IterableDataset, which lrtune cannot shuffle by seed: pass a callable "
            "(batch_size, seed) -> batches"
        )
    if _is_map_dataset(data):
        if len(data) == 0:
            raise ValueError("train_data is empty")
        return data
    if callable(data):
        return _check_callable("train_data", data, 2, "(batch_size, seed)")
    raise TypeError(
        "train_data must be a map-style Dataset, a DataLoader, or a callable (batch_size, seed) -> batches; "
        f"got {type(data).__name__}" + (f" ({_TENSOR_HINT})" if isinstance(data, (list, tuple)) else "")
    )


def _check_valid_data(data: Any) -> Any:
    if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
        raise TypeError(f"valid_data is a tuple of tensors: {_TENSOR_HINT}, or pass a list of batches [(x, y)]")
    if isinstance(data, (DataLoader, IterableDataset)) or _is_map_dataset(data):
        return data
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        raise TypeError(f"valid_data must be a Dataset, a DataLoader or a list of batches, got {type(data).__name__}")
    if iter(data) is data:
        raise TypeError(
            f"valid_data is an iterator ({type(data).__name__}), used up by the first evaluation: pass a list of "
            "batches, a Dataset or a DataLoader"
        )
    return data


def _check_factory(model: Any) -> tuple[Callable[..., Any], bool]:
    """The factory and whether it takes the seed."""
    if isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a factory that builds a fresh model (e.g. lambda: {type(model).__name__}(...)), got an "
            "nn.Module instance: every run (seed, LR) starts from its own initialisation"
        )
    if not callable(model):
        raise TypeError(f"model must be a callable returning an nn.Module, got {type(model).__name__}")
    if isinstance(model, type):
        return model, False
    try:
        params = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):  # no signature to read (some builtins): call it without arguments
        return model, False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is inspect.Parameter.empty]
    if len(required) > 1:
        raise TypeError(f"model must take no arguments or a seed, got a callable of {len(required)} arguments")
    takes_seed = bool(required) or any(p.name == "seed" and p.kind in positional for p in params)
    return model, takes_seed


def _check_callable(name: str, fn: Any, arity: int, shape: str, **keywords: Any) -> Any:
    """``fn`` if it is callable with ``arity`` positional arguments (when its signature can be read)."""
    if not callable(fn):
        raise TypeError(f"{name} must be a callable {shape}, got {type(fn).__name__}")
    try:
        inspect.signature(fn).bind(*([None] * arity), **keywords)
    except TypeError as e:
        raise TypeError(f"{name} must take {arity} positional argument(s) {shape}: {e}") from None
    except ValueError:  # no signature to read
        pass
    return fn


def _accepts_keyword(fn: Callable[..., Any], keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _check_metrics(values: Any, *, reserved: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise TypeError(f"metrics must return a dict of name -> value, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or key in reserved:
            raise ValueError(f"metrics returned the key {key!r}: use a string other than {sorted(reserved)}")
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise TypeError(f"metrics[{key!r}] must be a scalar, got a tensor of shape {tuple(value.shape)}")
            value = value.detach().reshape(())
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"metrics[{key!r}] must be a number or a scalar tensor, got {type(value).__name__}")
        out[key] = value
    return out


def _floats(what: str, values: Any, *, reserved: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must return a dict of name -> value, got {type(values).__name__}")
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or key in reserved:
            raise ValueError(f"{what} returned the key {key!r}: use a string other than {sorted(reserved)}")
        try:
            out[key] = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{what}[{key!r}] must be a number or a scalar tensor, got {value!r}") from None
    return out


def _device_of(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")
