"""Whole-image inference: tiling, optional x8 self-ensemble, device and precision handling.

Precision is a choice (`precision=`): fp32, bf16 or fp16, through autocast on the model's device, so
layer norms and softmax stay in fp32 while matrix products run in the lower precision. The default is fp32
on CPU (what the official code runs) and bf16 on CUDA (tensor cores). fp32 on CUDA turns TF32 off for the
call: TF32 matmuls and convolutions keep only 10 mantissa bits, so "fp32" would not mean fp32.

`IptRestorer` is a loaded checkpoint as a Restorer (iptbench.models.restorer), with the identity of its
eval cells: weights sha256, architecture, tiling, self-ensemble, precision and device kind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from iptbench.errors import IptbenchError
from iptbench.models.ipt import IPT
from iptbench.models.tiling import (
    default_stride,
    fast_window_count,
    official_distinct_window_count,
    tile_fast,
    tile_official,
)
from iptbench.tasks import Task

TileMode = Literal["fast", "official"]
TILE_MODES: tuple[str, ...] = ("fast", "official")
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# On CPU large GEMM batches fall out of cache: ipt-base runs 0.47 s/window in chunks of 8 but 0.69 s/window
# at 64 on 2 cores, so CPU batches are split into chunks of this size (same results up to rounding).
CPU_MICRO_BATCH = 8


def _flip_w(x: Tensor) -> Tensor:
    return x.flip(-1)


def _flip_h(x: Tensor) -> Tensor:
    return x.flip(-2)


def _transpose(x: Tensor) -> Tensor:
    return x.transpose(-2, -1)


def ensemble_inputs(x: Tensor) -> list[Tensor]:
    """The official x8 order: [x, W-flips of that], then H-flips of all, then transposes of all eight."""
    views = [x]
    for op in (_flip_w, _flip_h, _transpose):
        views.extend([op(v) for v in views])
    return views


def undo_ensemble(i: int, y: Tensor) -> Tensor:
    """Invert variant i of ensemble_inputs: transpose, then H-flip, then W-flip, as applicable."""
    if i > 3:
        y = _transpose(y)
    if i % 4 > 1:
        y = _flip_h(y)
    if i % 2 == 1:
        y = _flip_w(y)
    return y


def count_windows(
    model: IPT,
    height: int,
    width: int,
    *,
    tile_mode: TileMode = "fast",
    self_ensemble: bool = False,
    stride: int | None = None,
) -> int:
    """Windows `restore` will run for an H x W input (for progress bars and benchmarks)."""
    p = model.patch_size
    if tile_mode == "official":
        one, swapped = (
            official_distinct_window_count(height, width, p),
            official_distinct_window_count(width, height, p),
        )
    else:
        one, swapped = (
            fast_window_count(height, width, p, stride),
            fast_window_count(width, height, p, stride),
        )
    return 4 * (one + swapped) if self_ensemble else one


def _as_image(image: Tensor) -> Tensor:
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1:
        raise IptbenchError(f"restore takes one image (1 x 3 x H x W), got shape {tuple(image.shape)}")
    if image.shape[1] == 1:
        image = image.expand(-1, 3, -1, -1)
    if image.shape[1] != 3:
        raise IptbenchError(f"restore needs an RGB image, got {image.shape[1]} channels")
    return image.float()


@contextlib.contextmanager
def _eval_mode(model: IPT) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def resolve_precision(precision: str | None, device: torch.device | str) -> str:
    """The precision a call runs at: the one asked for, else fp32 on CPU and bf16 on CUDA."""
    if precision is None:
        return "bf16" if torch.device(device).type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise IptbenchError(f"unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def precision_context(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast for bf16/fp16; for fp32 on CUDA, TF32 off (restored afterwards)."""
    if precision != "fp32":
        with torch.autocast(device.type, dtype=PRECISIONS[precision]):
            yield
        return
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _window_fn(model: IPT, index: int, device: torch.device, precision: str) -> Callable[[Tensor], Tensor]:
    cuda = device.type == "cuda"

    def run(batch: Tensor) -> Tensor:
        with precision_context(device, precision):
            if cuda:
                batch = batch.contiguous(memory_format=torch.channels_last)
                return model(batch, index).float()
            return torch.cat([model(chunk, index).float() for chunk in batch.split(CPU_MICRO_BATCH)])

    return run


def restore(
    model: IPT,
    image: Tensor,
    task: str,
    *,
    tile_mode: TileMode = "fast",
    window_batch: int = 64,
    self_ensemble: bool = False,
    stride: int | None = None,
    precision: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Restore one image of any size: 1 x 3 x H x W on 0-255 -> 1 x 3 x sH x sW float32 (not quantised).

    Runs on the model's device at `precision` (see the module docstring; on CUDA in channels_last layout,
    on CPU in chunks of CPU_MICRO_BATCH windows).
    `progress` is called with the number of windows finished after each batch.
    """
    if tile_mode not in TILE_MODES:
        raise IptbenchError(f"unknown tile mode {tile_mode!r}; use one of: {', '.join(TILE_MODES)}")
    if window_batch < 1:
        raise IptbenchError(f"--window-batch must be at least 1, got {window_batch}")
    index = model.task_index(task)
    scale = model.scale_for(index)
    device = next(model.parameters()).device
    run = _window_fn(model, index, device, resolve_precision(precision, device))
    x = _as_image(image).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)

    def tile(img: Tensor) -> Tensor:
        if tile_mode == "official":
            return tile_official(
                run, img, model.patch_size, scale, window_batch=window_batch, progress=progress
            )
        return tile_fast(
            run, img, model.patch_size, scale, window_batch=window_batch, stride=stride, progress=progress
        )

    with _eval_mode(model), torch.inference_mode():
        if not self_ensemble:
            return tile(x)
        outs = [undo_ensemble(i, tile(v.contiguous())) for i, v in enumerate(ensemble_inputs(x))]
        return torch.cat(outs, dim=0).mean(dim=0, keepdim=True)


# --------------------------------------------------------------------------- the IPT Restorer


@dataclass(frozen=True)
class IptSettings:
    """How an IPT checkpoint is run; everything but window_batch is part of its cells' identity."""

    device: str | None = None
    tile_mode: str = "fast"
    window_batch: int = 64
    self_ensemble: bool = False
    precision: str | None = None  # None: fp32 on CPU, bf16 on CUDA


def _tile_identity(mode: str, patch: int) -> dict[str, Any]:
    if mode == "official":
        return {"patch": patch, "stride": patch // 4}
    return {"patch": patch, "stride": default_stride(patch), "stride_default": True}


class IptRestorer:
    """A loaded IPT checkpoint as a Restorer (iptbench.models.restorer): `restore` tiles it over any size."""

    kind = "ipt"

    def __init__(self, model: IPT, path: Path, sha256: str, settings: IptSettings, device: str) -> None:
        self.model = model.eval()
        self.settings, self.sha256 = settings, sha256
        self.device_type = torch.device(device).type
        self.precision = resolve_precision(settings.precision, torch.device(device))
        self.tasks = tuple(str(t) for t in model.tasks)
        # `iptbench train` writes every run's weights as model.safetensors: its run folder names it better.
        stem = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        self.name, self.spec, self.source = f"ipt:{stem}", f"ipt:{path}", str(path.resolve())
        self.meta = {"checkpoint": str(path), "sha256": sha256, "window_batch": settings.window_batch}
        self.description = (
            f"IPT checkpoint {path.name} (tile_mode={settings.tile_mode}, "
            f"window_batch={settings.window_batch}, self_ensemble={settings.self_ensemble}, "
            f"precision={self.precision} on {self.device_type})"
        )

    def restore(self, image: Tensor, task: Task | str) -> Tensor:
        param = next(self.model.parameters(), None)
        dev = param.device if param is not None else image.device
        with torch.inference_mode():
            out = restore(
                self.model,
                image.to(dev),
                task.name if isinstance(task, Task) else task,
                tile_mode=self.settings.tile_mode,  # type: ignore[arg-type]
                window_batch=self.settings.window_batch,
                self_ensemble=self.settings.self_ensemble,
                precision=self.precision,
            )
        return out.float().cpu()

    def identity(self) -> dict[str, Any]:
        arch = json.loads(self.model.config.to_json())
        arch.pop("name", None)  # a registry name is a label; the fields are the architecture
        return {
            "kind": "ipt",
            "weights_sha256": self.sha256,
            "arch": arch,
            "tile_mode": self.settings.tile_mode,
            "tile": _tile_identity(self.settings.tile_mode, self.model.patch_size),
            "self_ensemble": self.settings.self_ensemble,
            "precision": self.precision,
            "device": self.device_type,
        }
