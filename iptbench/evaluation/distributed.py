"""torchrun support: every rank scores a slice of the images, rank 0 gathers and writes.

Only `gather` needs a process group; with WORLD_SIZE unset or 1 everything is a no-op, so a plain
`iptbench eval` never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[Any]) -> list[tuple[int, Any]]:
        """(index, item) pairs of this rank: a strided split keeps image sizes balanced across ranks."""
        return [(i, item) for i, item in enumerate(items) if i % self.size == self.rank]

    def gather(self, payload: Any) -> list[Any]:
        """All ranks' payloads on rank 0 (in rank order); other ranks get an empty list."""
        if self.size == 1:
            return [payload]
        received: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(payload, received, dst=0)
        return list(received) if received is not None else []

    def broadcast(self, payload: Any) -> Any:
        if self.size == 1:
            return payload
        box = [payload if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world() -> World:
    """Join the torchrun process group (gloo, so CPU-only machines work) when WORLD_SIZE > 1."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return World(dist.get_rank(), dist.get_world_size())
