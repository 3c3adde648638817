"""Which torch device to run on: one choice for eval, restore and train."""

from __future__ import annotations

import os

import torch

from iptbench.errors import IptbenchError


def auto_device() -> str:
    """CUDA when present (under torchrun, this rank's GPU, cuda:LOCAL_RANK), else CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")
    return f"cuda:{local_rank}" if local_rank is not None else "cuda"


def choose_device(choice: str | torch.device | None) -> torch.device:
    """--device as given (cpu, cuda, cuda:1 ...), or auto_device() for None / "auto"; CUDA must be present."""
    dev = torch.device(auto_device() if choice is None or choice == "auto" else choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise IptbenchError("--device cuda but this torch build sees no CUDA device; use --device cpu")
    return dev
