"""The processes of a training run: one, or several launched by ``torchrun`` that train a
DistributedDataParallel model together (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that evaluates and writes."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in a single-process run)."""
        if self.world_size > 1:
            dist.barrier()


def resolve_device(device_arg: str) -> torch.device:
    """The device of a single-process run: ``auto`` is CUDA when available, else the CPU."""
    if device_arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device_arg)


def init_distributed(device_arg: str) -> DistributedContext:
    """Rank, world size and device of this process; under torchrun (``RANK`` and
    ``WORLD_SIZE`` set) it initialises the process group (nccl on CUDA, else gloo)."""
    want_cuda = device_arg.startswith("cuda") or (device_arg == "auto"
                                                   and torch.cuda.is_available())
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistributedContext(0, 1, resolve_device(device_arg))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if not want_cuda:
        return DistributedContext(rank, world, torch.device("cpu"))
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    return DistributedContext(rank, world, torch.device("cuda", local))


def wrap_distributed(model: nn.Module, context: DistributedContext) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself
    (looking for unused parameters in every step for a model that takes body parts)."""
    if context.world_size == 1:
        return model
    device = context.device
    # A part-attention model's heads of the body parts absent from a batch take no part in
    # its forward pass.
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(getattr(model, "takes_body_part", False)))
