"""Whole-image inference: tiling, optional x8 self-ensemble, device and precision handling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch
from torch import Tensor

from iptbench.errors import IptbenchError
from iptbench.models.ipt import IPT
from iptbench.models.tiling import (
    fast_window_count,
    official_distinct_window_count,
    tile_fast,
    tile_official,
)

TileMode = Literal["fast", "official"]
TILE_MODES: tuple[str, ...] = ("fast", "official")
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


def restore(
    model: IPT,
    image: Tensor,
    task: str,
    *,
    tile_mode: TileMode = "fast",
    window_batch: int = 64,
    self_ensemble: bool = False,
    stride: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Restore one image of any size: 1 x 3 x H x W on 0-255 -> 1 x 3 x sH x sW float32 (not quantised).

    Runs on the model's device; on CUDA the windows go through bf16 autocast in channels_last layout,
    on CPU in fp32 chunks of CPU_MICRO_BATCH.
    `progress` is called with the number of windows finished after each batch.
    """
    if tile_mode not in TILE_MODES:
        raise IptbenchError(f"unknown tile mode {tile_mode!r}; use one of: {', '.join(TILE_MODES)}")
    if window_batch < 1:
        raise IptbenchError(f"--window-batch must be at least 1, got {window_batch}")
    index = model.task_index(task)
    scale = model.scale_for(index)
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    x = _as_image(image).to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)

    def run(batch: Tensor) -> Tensor:
        if cuda:
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(batch, index).float()
        return torch.cat([model(chunk, index) for chunk in batch.split(CPU_MICRO_BATCH)])

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
