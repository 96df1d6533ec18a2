"""Data-parallel training under ``torchrun``: every rank reads the same global batch and trains on its shard.

With ``WORLD_SIZE > 1`` in the environment (``torchrun --nproc_per_node=N``), :func:`lrtune.train` joins the
process group (gloo on CPU, NCCL on CUDA), wraps the model in ``DistributedDataParallel`` and splits every global
batch into ``N`` shards along its first dimension. Each rank's loss is weighted by its share of the batch's loss
terms (``workload.loss_weight(batch)``, e.g. target tokens; rows by default) so that DDP's gradient average equals
the gradient of the global batch's mean loss: the run matches a one-process run with the same global batch up to
floating-point reassociation. Rank 0 alone evaluates and writes files; the others receive its metrics.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

from .._batch import batch_rows, map_tensors, move_to

__all__ = ["Distributed", "move_to", "shard_batch"]

logger = logging.getLogger(__name__)


def shard_batch(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous share of every tensor's first dimension (``torch.tensor_split``)."""
    if isinstance(batch, torch.Tensor):
        if batch.ndim == 0 or batch.shape[0] < world:
            raise ValueError(
                f"a global batch with {batch.shape[0] if batch.ndim else 0} rows cannot be split over "
                f"{world} processes: raise batch_size"
            )
        return batch.tensor_split(world)[rank]
    return map_tensors(batch, lambda t: shard_batch(t, rank, world))


class Distributed:
    """The process group of a run: a no-op with one process.

    Args:
        device: where the model trains (``None``: CPU); under ``torchrun`` a CUDA device becomes
            ``cuda:LOCAL_RANK``.
    """

    def __init__(self, device: str | torch.device | None) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.device = torch.device("cpu" if device is None else device)
        self.rank, self.owns_group = 0, False
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self.owns_group = True
            self.rank = dist.get_rank()
            if dist.get_world_size() != self.world:
                raise RuntimeError(f"WORLD_SIZE={self.world} but the process group has {dist.get_world_size()}")
            logger.info("rank %d of %d on %s", self.rank, self.world, self.device)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on the device, wrapped in DDP when there are several processes."""
        model = model.to(self.device)
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def local(self, workload: Any, batch: Any) -> tuple[Any, float, int]:
        """This rank's shard of a global batch, the factor on its mean loss (1 with one process) and the
        global batch's number of loss terms (``workload.loss_weight``, else rows)."""
        weight = getattr(workload, "loss_weight", batch_rows)
        total = int(weight(batch))
        if not self.active:
            return batch, 1.0, total
        shard = getattr(workload, "shard", shard_batch)(batch, self.rank, self.world)
        if total <= 0:
            raise ValueError("a global batch has no loss terms")
        return shard, self.world * float(weight(shard)) / total, total

    def global_loss(self, scaled_loss: torch.Tensor) -> float:
        """The global batch's mean loss from every rank's shard loss times its factor from :meth:`local`."""
        if not self.active:
            return scaled_loss.item()
        total = scaled_loss.detach().double() / self.world
        dist.all_reduce(total)
        return total.item()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (so that every rank stops at the same update)."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, by rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
