"""Several devices for one training job, through torch.distributed (DDP).

Ranks are started by ctbench's local executor (``--devices-per-job N``) or by submitit on
SLURM (one task per GPU), and find each other through torch's usual environment variables
(``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), which ctbench's
launcher and submitit set. Backend: NCCL on CUDA, gloo on CPU.

What keeps a job's numbers independent of N (the trainer relies on it):
- an effective batch is cut into the same micro-batches whatever N is, rank r taking its own
  contiguous run of them, and each micro-batch's random draws are keyed by its index in the
  batch (``trainer._micro_rng``), not by the rank;
- DDP averages gradients over ranks; each rank's loss is scaled by N to undo that, so the sum
  over ranks is the effective batch's gradient;
- BatchNorm running statistics are merged after each step as if one process had run the
  micro-batches one after the other (``merge_batchnorm_stats``); DDP's own buffer broadcast,
  which would keep rank 0's and drop the rest, is off.
"""
from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# A follower waits in a collective while rank 0 runs jobs it takes no part in (a linear probe's
# feature extraction over a million slices); gloo's default 30 minutes would end the group.
CONTROL_TIMEOUT = datetime.timedelta(hours=12)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_control: Any = None  # a gloo group for job ids and small objects, also when the main backend is NCCL


def from_environment() -> World:
    """The world torch's environment variables describe (one process when they are absent)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: str) -> World:
    """Join the process group the environment describes; returns this process's place in it."""
    global _control
    world = from_environment()
    if not world.distributed:
        return world
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=CONTROL_TIMEOUT)
    _control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT) if backend != "gloo" else dist.group.WORLD
    return World(world.rank, world.size, world.local_rank, backend)


def current() -> World:
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def shutdown() -> None:
    global _control
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _control = None


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (small picklable objects: job ids, flags)."""
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather(value: Any) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value, group=_control)
    return out


def devices(device: torch.device) -> list[str]:
    """Each rank's device, named for the result's provenance."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    mine = f"{device.type}:{torch.cuda.current_device()} ({name})" if device.type == "cuda" else "cpu"
    return gather(mine) if current().distributed else [mine]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``model``; buffers are not broadcast (``merge_batchnorm_stats`` keeps them equal)."""
    ids = [torch.cuda.current_device()] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # torch >= 2.14 names it forward_sync_buffers (and deprecates broadcast_buffers); both stop the per-forward copy
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters \
        else {"broadcast_buffers": False}
    return ddp(model, device_ids=ids, **no_sync)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]


def snapshot_batchnorm(layers: list) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.running_mean.detach().clone(), m.running_var.detach().clone()) for m in layers]


def merge_batchnorm_stats(layers: list, before: list, updates_per_rank: int) -> None:
    """Running statistics as one process would have left them after every rank's micro-batches in
    rank order. Each rank applied ``k`` exponential updates to the same starting value ``r0``:
    ``r_i = (1-a)^k r0 + d_i``; run one after another they give ``(1-a)^(Nk) r0 + sum_i (1-a)^((N-1-i)k) d_i``.

    Written by hand: DDP either broadcasts rank 0's buffers or SyncBatchNorm changes what a batch
    normalises over (and has no CPU kernel); neither reproduces the single-process run.
    """
    if not layers or updates_per_rank == 0:
        return
    size = dist.get_world_size()
    for layer, (mean0, var0) in zip(layers, before):
        seen = int(layer.num_batches_tracked) - updates_per_rank  # updates before this step, the same on every rank
        for buffer, start in ((layer.running_mean, mean0), (layer.running_var, var0)):
            stacked = [torch.empty_like(buffer) for _ in range(size)]
            dist.all_gather(stacked, buffer.data)
            buffer.data.copy_(_sequential(stacked, start, layer.momentum, updates_per_rank, seen))
        layer.num_batches_tracked.add_((size - 1) * updates_per_rank)


def _sequential(ranks: list[torch.Tensor], start: torch.Tensor, momentum: float | None, k: int,
                seen: int) -> torch.Tensor:
    """The value after every rank's ``k`` updates, applied one rank after another."""
    if momentum is None:  # a cumulative average: each rank added k terms to the same ``seen``
        added = sum(value * (seen + k) - seen * start for value in ranks)
        return (seen * start + added) / (seen + len(ranks) * k)
    decay = (1 - momentum) ** k
    merged = decay ** len(ranks) * start
    for i, value in enumerate(ranks):
        merged = merged + decay ** (len(ranks) - 1 - i) * (value - decay * start)
    return merged
