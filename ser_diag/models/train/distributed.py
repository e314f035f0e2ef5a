"""Processes and devices: the process group under ``torchrun``, the device of each process,
gathering rows and objects across processes, and the seeding of each process's generators.

Under ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised from the environment
(gloo on CPU, nccl on GPU). Every process draws the same global batch (samplers are functions
of ``(seed, epoch)``) and computes a contiguous shard of it; the model outputs of all shards
are gathered in rank order (:func:`_gather_rows`), every process evaluates the loss on the
whole global batch, and the gradient flows through its own rows only (the loss is scaled by
the world size to undo DDP's gradient averaging). So ``P`` processes x ``b/P`` rows compute
the gradient of the same loss as 1 process x ``b`` rows, batch-level losses (1-CCC, soft
macro-F1) included. Each process draws dropout from its own generator (process 0: the one
seeded by ``seed``, process ``r``: one seeded by ``(seed, r)``, :func:`_process_seed`) and
every process's generator state is checkpointed; waveform augmentation and mixup are functions
of ``(seed, epoch, file/batch)``, so they do not depend on the number of processes. Hence
without dropout ``P`` processes equal one process up to floating-point summation order; with
dropout they are different (equally valid) random draws.

Imports :mod:`.config` only.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ser_diag.models.train.config import TrainConfig


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _gather_rows(x: torch.Tensor, sizes: list[int], ctx: _Dist) -> torch.Tensor:
    """Concatenate every process's rows (shard sizes known to all) in rank order; the gradient
    flows to this process's own rows only."""
    if ctx.world_size == 1:
        return x
    pad = max(sizes) - x.shape[0]
    padded = torch.cat([x.detach(), x.new_zeros((pad,) + x.shape[1:])]) if pad else x.detach().contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    parts = [p[:n] for p, n in zip(parts, sizes)]
    parts[ctx.rank] = x
    return torch.cat(parts)


def _gather_objects(obj, ctx: _Dist) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
    if ctx.world_size == 1:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------- per-process generators

def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _process_seed(seed: int, rank: int) -> int:
    """Seed of process ``rank``'s own generators (dropout): ``seed`` for process 0, a seed drawn
    from ``(seed, rank)`` for the others."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank), 0xD0]).generate_state(1)[0])


# --------------------------------------------------------------------------- device

def _device(config: TrainConfig, ctx: _Dist) -> torch.device:
    if config.device == "auto":
        device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device
