"""DDP helpers. A run started by ``torchrun`` has WORLD_SIZE/RANK/LOCAL_RANK set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Initialises the process group when launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")), world_size=world)


def shutdown_distributed() -> None:
    """Leaves the process group at the end of a run: every rank first meets the others at a
    barrier (none tears down its connections while another still talks to it), then the
    group is destroyed. A no-op without a group, so it is safe to call twice.

    A rank that exits with its group still up may abort at exit ("terminate called without
    an active exception", SIGABRT): the communication threads can still hold the last
    collective's tensors when the interpreter shuts down. A later :func:`init_distributed`
    starts a new group. Call it where every rank gets to; a rank that failed should not
    (see :meth:`~pipeline.training.trainer.Trainer.fit`).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Averages a tensor over ranks (identity without DDP)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself without DDP); picklable plain data only."""
    if dist.is_available() and dist.is_initialized():
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj
