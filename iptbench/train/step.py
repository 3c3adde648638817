"""One training step's losses, and the per-tensor gradient clipping that follows the backward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from iptbench.train.losses import l1_loss, supcon_loss
from iptbench.train.state import TrainConfig


def clip_per_tensor(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale each gradient to L2 norm <= max_norm on its own (MindSpore ClipByNorm per tensor)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or max_norm <= 0:
        return
    norms = torch._foreach_norm(grads)
    torch._foreach_mul_(grads, [max_norm / torch.clamp(n, min=max_norm) for n in norms])


def step_losses(
    model: torch.nn.Module, batch: dict[str, Any], device: torch.device, lam: float, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    task = batch["task"][0]
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    x = batch["input"].to(device, non_blocking=True).float().contiguous(memory_format=fmt)
    y = batch["target"].to(device, non_blocking=True).float()
    amp = cfg.amp and device.type == "cuda"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        if lam > 0:
            out, tokens = model(x, task, return_features=True)
        else:
            out, tokens = model(x, task), None
    l1 = l1_loss(out, y)
    if tokens is not None:
        labels = batch["file"].to(device).long() * (1 << 40) + batch["source"].to(device).long()
        con = supcon_loss(tokens, labels, cfg.temperature)
    else:
        con = torch.zeros((), device=device)
    return l1 + lam * con, l1, con
