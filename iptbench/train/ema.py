"""Exponential moving average of the weights (`--ema DECAY`), as BasicSR's `net_g_ema` and timm's ModelEma.

After every optimiser step: ema = decay * ema + (1 - decay) * weights, for every floating-point tensor of
the state dict (parameters and buffers), in the weights' own dtype and device. The update is one fused
foreach lerp, elementwise and so deterministic; its state is a plain tensor dict saved in last.pt, so a
resumed run continues the average bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class Ema:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._pairs(model)

    def _pairs(self, model: nn.Module) -> None:
        live = model.state_dict()
        keys = [k for k, v in self.state.items() if v.is_floating_point()]
        self._ema = [self.state[k] for k in keys]
        self._live = [live[k] for k in keys]  # views of the model's tensors: no copy per step

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self._ema, self._live, 1.0 - self.decay)

    def load(self, state: Mapping[str, Tensor], model: nn.Module) -> None:
        """Restore a saved average (from last.pt) into this EMA's tensors."""
        missing = sorted(set(self.state) ^ set(state))
        if missing:
            raise ValueError(f"EMA state does not match the model ({', '.join(missing[:3])})")
        with torch.no_grad():
            for k, v in state.items():
                self.state[k].copy_(v)
        self._pairs(model)
