"""The Image Processing Transformer: per-task heads and tails around one shared transformer body.

Built exactly as the official PyTorch code builds it (huawei-noah/Pretrained-IPT, model/ipt.py and
model/common.py), with the same state-dict keys, so `IPT_*.pt` files load strictly. The task rows of the
heads, tails and task embedding are stored in the order of `config.tasks`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from iptbench.errors import IptbenchError
from iptbench.models.transformer import VisionTransformer
from iptbench.tasks import get_task, task_names

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in EDSR/IPT
RGB_RANGE = 255.0


@dataclass(frozen=True)
class IPTConfig:
    """Everything needed to rebuild an IPT; serialised as JSON into checkpoint metadata."""

    tasks: tuple[str, ...] = ("sr-x2",)
    n_feats: int = 64
    n_colors: int = 3
    patch_size: int = 48  # side of the window the body accepts (input side, before upscaling)
    patch_dim: int = 3  # side of the feature patch that becomes one token
    num_heads: int = 12
    num_layers: int = 12
    dropout: float = 0.0
    no_mlp: bool = False
    pos_every: bool = False
    no_pos: bool = False
    no_norm: bool = False
    out_proj_bias: bool = False  # checkpoints saved by PyTorch 1.6-1.8 carry attention out_proj.bias
    name: str = field(default="ipt-custom", compare=False)

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if not tasks:
            raise IptbenchError("an IPT model needs at least one task")
        for t in tasks:
            get_task(t)
        if len(set(tasks)) != len(tasks):
            raise IptbenchError(f"duplicate task in {', '.join(tasks)}: each task has one head and tail")
        if self.patch_size % self.patch_dim:
            raise IptbenchError(
                f"patch_size {self.patch_size} must be a multiple of patch_dim {self.patch_dim}"
            )
        if self.embedding_dim % self.num_heads:
            raise IptbenchError(
                f"embedding dim {self.embedding_dim} (n_feats*patch_dim^2) is not divisible by "
                f"{self.num_heads} heads; pass a --num-heads that divides it"
            )
        if self.pos_every and self.no_pos:
            raise IptbenchError("pos_every and no_pos cannot both be set")

    @property
    def embedding_dim(self) -> int:
        return self.n_feats * self.patch_dim * self.patch_dim

    @property
    def num_queries(self) -> int:
        return len(self.tasks)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IPTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise IptbenchError(
                f"unknown IPT config fields {unknown}; the file was written by a newer iptbench, upgrade it"
            )
        return cls(**{**data, "tasks": tuple(data.get("tasks", ("sr-x2",)))})

    def replace(self, **changes: Any) -> IPTConfig:
        return dataclasses.replace(self, **changes)


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)


class MeanShift(nn.Conv2d):
    """Fixed 1x1 conv adding or subtracting the RGB mean; frozen, but stored in the state dict."""

    def __init__(self, sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * RGB_RANGE * torch.tensor(RGB_MEAN)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """EDSR residual block: conv, ReLU, conv, plus identity (keys `body.0`, `body.2`)."""

    def __init__(self, n_feats: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(n_feats, n_feats, kernel_size), nn.ReLU(True), _conv(n_feats, n_feats, kernel_size)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


def _upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """EDSR upsampler without BN/activation; empty for scale 1 (denoise, derain)."""
    layers: list[nn.Module] = []
    if scale in (2, 4):
        for _ in range(scale.bit_length() - 1):
            layers += [_conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [_conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
    elif scale != 1:
        raise ValueError(f"unsupported scale {scale}")
    return nn.Sequential(*layers)


class IPT(nn.Module):
    """IPT on 0-255 RGB windows of `patch_size` x `patch_size`: forward(x, task) -> (B, 3, sP, sP)."""

    def __init__(self, config: IPTConfig) -> None:
        super().__init__()
        self.config = config
        c = config.n_feats
        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(+1)
        self.head = nn.ModuleList(
            nn.Sequential(_conv(config.n_colors, c, 3), ResBlock(c, 5), ResBlock(c, 5)) for _ in config.tasks
        )
        self.body = VisionTransformer(
            img_dim=config.patch_size,
            patch_dim=config.patch_dim,
            num_channels=c,
            num_heads=config.num_heads,
            num_layers=config.num_layers,
            num_queries=config.num_queries,
            dropout=config.dropout,
            no_mlp=config.no_mlp,
            pos_every=config.pos_every,
            no_pos=config.no_pos,
            no_norm=config.no_norm,
            out_proj_bias=config.out_proj_bias,
        )
        self.tail = nn.ModuleList(
            nn.Sequential(_upsampler(get_task(t).scale, c), _conv(c, config.n_colors, 3))
            for t in config.tasks
        )

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.config.tasks

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    def scale_for(self, task: str | int) -> int:
        return get_task(self.tasks[self.task_index(task)]).scale

    def task_index(self, task: str | int) -> int:
        if isinstance(task, int):
            if not 0 <= task < len(self.tasks):
                raise IptbenchError(f"task index {task} out of range for a model with tasks {self.tasks}")
            return task
        if task not in self.tasks:
            hint = "" if task in task_names() else f" ({task!r} is not a task name)"
            raise IptbenchError(
                f"these weights have no {task!r} head{hint}; they hold: {', '.join(self.tasks)}"
            )
        return self.tasks.index(task)

    def forward(
        self, x: Tensor, task: str | int, *, return_features: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Restored windows; with `return_features` also the (B, L, E) decoder tokens, for training's
        contrastive loss (one extra output, same computation)."""
        i = self.task_index(task)
        x = self.sub_mean(x)
        x = self.head[i](x)
        if return_features:
            body, features = self.body(x, i, return_tokens=True)
            out = self.add_mean(self.tail[i](body + x))
            return out, features
        x = self.body(x, i) + x
        x = self.tail[i](x)
        return self.add_mean(x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}"
