"""Ranks of one run trained by several processes (torch DistributedDataParallel).

A run becomes distributed when it starts under `torchrun` (WORLD_SIZE > 1 in the environment) or
as one of several tasks of a submitit job (`launcher=slurm hydra.launcher.tasks_per_node=k`,
whose environment submitit's `TorchDistributedEnvironment` exports). Backend: nccl on CUDA, gloo
on the CPU (the same code path, so the CPU tests exercise it).

The contract (sweeps/run/loop.py keeps it): every rank draws the SAME global batch as a
one-process run and takes its own contiguous slice of rows; each rank's loss is its slice's
summed cross-entropy divided by the global token count, times the world size, so DDP's gradient
average is exactly the gradient of the global mean (slices of unequal size included). Only rank 0
writes (record, curve, checkpoints); every rank loads rank 0's checkpoint on resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Ranks", "from_env", "rows_of", "in_distributed_env"]


def in_distributed_env() -> bool:
    """True when this process is one rank of several (torchrun, or a multi-task submitit job)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return True
    return _submitit_tasks() > 1


def _submitit_tasks() -> int:
    """Tasks of the submitit job this process belongs to (1 outside submitit)."""
    key = {"local": "SUBMITIT_LOCAL_NTASKS", "slurm": "SLURM_NTASKS"}.get(
        os.environ.get("SUBMITIT_EXECUTOR", "")
    )
    return int(os.environ.get(key, "1")) if key else 1


@dataclass
class Ranks:
    """This process's place in a distributed run (world 1: the ordinary one-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    joined: bool = False  # rank 0 told the others to train (see `go`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def device(self, name: str) -> torch.device:
        """The device of this rank: cuda:local_rank on CUDA, else the CPU."""
        if name == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def go(self, value: bool | None = None) -> bool:
        """Rank 0 says whether this run trains (True) or ends here (False: done already, held by
        another process, a config error); the other ranks wait for the word. Called once."""
        if not self.active:
            return bool(value)
        import torch.distributed as dist

        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        self.joined = True
        return bool(box[0])

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of `t` over the ranks (in place; returns `t`)."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model under DistributedDataParallel (unchanged for one process)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def rows_of(n_rows: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of `n_rows` rows (sizes differ by at most one; may be empty
    when there are fewer rows than ranks)."""
    return slice(rank * n_rows // world, (rank + 1) * n_rows // world)


def from_env(device_name: str = "auto") -> Ranks:
    """Join the process group when this process is one of several ranks, else a one-process
    Ranks. torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) are used as
    they are; a multi-task submitit job's are exported by submitit itself first."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and _submitit_tasks() > 1:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    ranks = Ranks(
        rank=int(os.environ["RANK"]),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return ranks
