"""PSNR and SSIM as the SR/restoration literature computes them (MATLAB/BasicSR conventions).

Both take N x C x H x W images on the 0-255 scale (uint8 or float), quantise ``restored`` to uint8 values
first, crop ``crop`` pixels from every side, score Y (BT.601 studio range, float, not rounded) or RGB, and
work in float64.

Grey ground truth: a one-channel ``target`` is a grey image and is scored on its grey values, whatever
``channel`` says, as the MATLAB scripts behind the published SR tables do (they take Y of three-channel
images only; with this rule Set14's bicubic rows match them). A three-channel ``restored`` image is reduced to
one channel by full-range luma 0.299 R + 0.587 G + 0.114 B (MATLAB ``rgb2gray``), which leaves a grey image
unchanged. Taking Y of a grey image replicated to RGB instead (IPT's ``set_channel``) gives
16 + 219/255 * grey, which shrinks every error by 219/255 (+1.32 dB); callers that want that convention
replicate the target to three channels themselves.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
from torch import Tensor

from iptbench.ops.color import quantize, rgb_to_y

Channel = Literal["y", "rgb"]

_WIN = 11
_SIGMA = 1.5
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2


def _prepare(restored: Tensor, target: Tensor, crop: int, channel: Channel) -> tuple[Tensor, Tensor]:
    if channel not in ("y", "rgb"):
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    if restored.ndim == 3:
        restored = restored.unsqueeze(0)
    if target.ndim == 3:
        target = target.unsqueeze(0)
    for img in (restored, target):
        if img.ndim != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f"expected N x 3 x H x W (or N x 1 x H x W) images, got {tuple(img.shape)}")
    if restored.shape[0] != target.shape[0] or restored.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"restored {tuple(restored.shape)} and target {tuple(target.shape)} differ in shape")
    grey = target.shape[1] == 1
    if not grey and restored.shape[1] == 1:  # a grey output of a colour image: compared as grey RGB
        restored = restored.expand(-1, 3, -1, -1)
    crop = int(crop)
    h, w = restored.shape[-2:]
    if crop < 0 or h - 2 * crop < 1 or w - 2 * crop < 1:
        raise ValueError(f"crop {crop} leaves nothing of a {h} x {w} image")
    out = []
    for img, quant in ((restored, True), (target, False)):
        x = img.to(torch.float64)
        if quant:
            x = quantize(x)
        if crop:
            x = x[..., crop : h - crop, crop : w - crop]
        if grey:
            out.append(grey_luma(x) if x.shape[1] == 3 else x)
        else:
            out.append(rgb_to_y(x) if channel == "y" else x)
    return out[0], out[1]


def grey_luma(images: Tensor) -> Tensor:
    """Full-range luma of N x 3 x H x W (MATLAB ``rgb2gray`` weights, float, not rounded): N x 1 x H x W."""
    r, g, b = images.unbind(dim=1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def psnr(restored: Tensor, target: Tensor, *, crop: int = 0, channel: Channel = "y") -> Tensor:
    """Per-image 10 log10(255^2 / MSE) as a float64 tensor of length N (+inf for identical images)."""
    x, y = _prepare(restored, target, crop, channel)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10((255.0**2) / mse)


@lru_cache(maxsize=8)
def _gaussian_taps() -> tuple[float, ...]:
    # Same normalised 11-tap kernel as MATLAB fspecial('gaussian', 11, 1.5) (separable) and skimage's
    # gaussian filter with sigma 1.5, truncate 3.5.
    raw = [math.exp(-0.5 * ((k - _WIN // 2) / _SIGMA) ** 2) for k in range(_WIN)]
    total = math.fsum(raw)
    return tuple(v / total for v in raw)


_STRIP = 64  # output rows per strip: both passes of a strip stay in cache


def _filter_valid(x: Tensor) -> Tensor:
    """Separable 11x11 Gaussian over the last two dims, 'valid' region only (no padding)."""
    taps = _gaussian_taps()
    ho = x.shape[-2] - _WIN + 1
    wo = x.shape[-1] - _WIN + 1
    out = x.new_empty(x.shape[:-2] + (ho, wo))
    acc_buf = x.new_empty(x.shape[:-2] + (min(_STRIP, ho), x.shape[-1]))
    # Shifted multiply-adds (one fused elementwise kernel each) beat float64 conv2d, which has no
    # oneDNN path, and dense Toeplitz products; strips keep the working set in cache.
    for r0 in range(0, ho, _STRIP):
        n = min(_STRIP, ho - r0)
        acc = acc_buf[..., :n, :]
        torch.mul(x[..., r0 : r0 + n, :], taps[0], out=acc)
        for k in range(1, _WIN):
            acc.add_(x[..., r0 + k : r0 + k + n, :], alpha=taps[k])
        dst = out[..., r0 : r0 + n, :]
        torch.mul(acc[..., 0:wo], taps[0], out=dst)
        for k in range(1, _WIN):
            dst.add_(acc[..., k : k + wo], alpha=taps[k])
    return out


def ssim(restored: Tensor, target: Tensor, *, crop: int = 0, channel: Channel = "y") -> Tensor:
    """Per-image SSIM (Wang et al. 2004, MATLAB ``ssim_index``): float64 tensor of length N.

    11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, L 255, population covariance, valid region,
    mean of the map; for RGB the mean of the per-channel values.
    """
    x, y = _prepare(restored, target, crop, channel)
    if min(x.shape[-2:]) < _WIN:
        raise ValueError(
            f"SSIM needs at least {_WIN} x {_WIN} pixels after cropping, got {tuple(x.shape[-2:])}"
        )
    # Only vx + vy is needed, so x^2 + y^2 is filtered as one map: four maps instead of five.
    maps = x.new_empty((4,) + tuple(x.shape))
    maps[0].copy_(x)
    maps[1].copy_(y)
    torch.mul(x, x, out=maps[2]).addcmul_(y, y)
    torch.mul(x, y, out=maps[3])
    mx, my, sq, xy = _filter_valid(maps).unbind(0)
    # Same algebra as Wang's ssim_index, with in-place ops to avoid fresh full-size temporaries.
    mxy = mx * my
    msq = mx.mul_(mx).addcmul_(my, my)  # mx^2 + my^2 (mx, my are no longer needed)
    num = (2.0 * mxy + _C1).mul_(xy.sub_(mxy).mul_(2.0).add_(_C2))
    den = (msq + _C1).mul_(sq.sub_(msq).add_(_C2))
    smap = num.div_(den)
    # Mean over each channel's map, then over channels (equal sizes, so one mean is the same thing).
    return smap.flatten(1).mean(dim=1)
