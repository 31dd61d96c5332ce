"""Several processes (torchrun): each trains on its share of every batch, and the first one
alone evaluates, logs and writes the run folder."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among data-parallel workers; one worker when torchrun did not start it."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:  # the one that logs, evaluates and writes the run folder
        return self.rank == 0

    def share(self, n: int) -> torch.Tensor | slice:
        """This worker's rows of a batch of n: contiguous, as equal as n allows."""
        return slice(None) if self.size == 1 else torch.tensor_split(torch.arange(n), self.size)[self.rank]

    def sum_(self, *tensors: torch.Tensor) -> None:
        if self.size > 1:
            for t in tensors:
                dist.all_reduce(t)

    def min_(self, tensor: torch.Tensor) -> None:
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.MIN)

    def from_main(self, value):
        """The main worker's `value`, on every worker."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def join_workers(device: torch.device) -> Workers:
    """Join torchrun's process group (gloo on CPUs, NCCL on GPUs) when WORLD_SIZE says there is one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Workers()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)  # one GPU per worker, before NCCL starts
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Workers(dist.get_rank(), size, local_rank)
