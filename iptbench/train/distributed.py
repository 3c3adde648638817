"""torchrun support for training: one process per device, gradients averaged by DDP, rank 0 writes.

Without torchrun (WORLD_SIZE unset or 1) nothing here touches torch.distributed, so a plain
`iptbench train` runs in one process with no process group. IPTBENCH_DDP=1 joins the process group and
wraps the model in DDP even for one process: `benchmarks/gpu_check.py` uses it to run the nccl path on a
single GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from iptbench.devices import choose_device
from iptbench.errors import IptbenchError

DEVICES = ("auto", "cpu", "cuda")


FORCE_ENV = "IPTBENCH_DDP"


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    group: bool = False  # a process group is joined (several processes, or IPTBENCH_DDP=1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.group or self.world_size > 1

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.distributed and dist.is_initialized() else None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise IptbenchError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda when available; under torchrun each process takes cuda:LOCAL_RANK."""
    if choice not in DEVICES:
        raise IptbenchError(f"--device must be one of {', '.join(DEVICES)}, got {choice!r}")
    if choose_device(choice).type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise IptbenchError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices; "
                "lower --nproc-per-node"
            )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device: str) -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    forced = os.environ.get(FORCE_ENV, "") == "1" and "MASTER_ADDR" in os.environ  # torchrun sets it
    if world <= 1 and not forced:
        return DistContext(0, 1, 0, dev)
    if not dist.is_available():
        raise IptbenchError("torch.distributed is not available in this torch build; run without torchrun")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, group=True)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP when distributed. Unused parameters must be found: each step trains one task, so the other
    tasks' heads and tails get no gradient (they keep grad None and Adam leaves them alone)."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def mean_over_ranks(values: Tensor, ctx: DistContext) -> Tensor:
    """Average a small tensor over ranks (for logging: every rank then sees the same loss)."""
    if not ctx.distributed:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / ctx.world_size


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's object on every rank (used to share a setup error so no rank hangs)."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's object on rank 0, in rank order (other ranks get an empty list)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return list(out) if out is not None else []


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
