"""Colour conversion and quantisation with MATLAB's conventions (BT.601 studio range, 0-255 scale)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# MATLAB rgb2ycbcr on a 0-255 scale: ycbcr = OFFSET + MATRIX @ rgb / 255.
_MATRIX = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
_INVERSE = np.linalg.inv(_MATRIX / 255.0)


def _as_float(images: Tensor) -> Tensor:
    # Integer images (uint8) become float32, like imresize; float inputs keep their precision.
    return images if images.is_floating_point() else images.to(torch.float32)


def _check_rgb(images: Tensor, name: str) -> None:
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"{name} expects N x 3 x H x W or 3 x H x W images, got shape {tuple(images.shape)}")


def _apply(images: Tensor, matrix: np.ndarray, pre: np.ndarray | None, post: np.ndarray | None) -> Tensor:
    x = _as_float(images)
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    if pre is not None:
        x = x - torch.as_tensor(pre, dtype=x.dtype, device=x.device).view(3, 1, 1)
    out = torch.einsum("ij,...jhw->...ihw", m, x)
    if post is not None:
        out = out + torch.as_tensor(post, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return out


def rgb_to_ycbcr(images: Tensor) -> Tensor:
    """RGB (0-255) -> YCbCr, BT.601 studio range as MATLAB ``rgb2ycbcr`` on doubles; no rounding."""
    _check_rgb(images, "rgb_to_ycbcr")
    return _apply(images, _MATRIX / 255.0, None, _OFFSET)


def ycbcr_to_rgb(images: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb`` on doubles, 0-255); no rounding or clamping."""
    _check_rgb(images, "ycbcr_to_rgb")
    return _apply(images, _INVERSE, _OFFSET, None)


def rgb_to_y(images: Tensor) -> Tensor:
    """Luma only: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, shape N x 1 x H x W (or 1 x H x W)."""
    _check_rgb(images, "rgb_to_y")
    x = _as_float(images)
    r, g, b = x.unbind(dim=-3)
    # Same operation order as the MATLAB formula, so float64 results agree to the last bits.
    y = (65.481 * r + 128.553 * g + 24.966 * b) / 255.0 + 16.0
    return y.unsqueeze(-3)


def round_half_away(x: Tensor) -> Tensor:
    """Round half away from zero (MATLAB ``round``); torch.round rounds half to even."""
    if not x.is_floating_point():
        return x
    a = x.abs()
    fl = torch.floor(a)
    # a - floor(a) is exact in binary floating point, so the tie test has no rounding error
    # (unlike floor(a + 0.5), which rounds 0.49999997 up in float32).
    r = fl + (a - fl >= 0.5).to(x.dtype)
    return torch.copysign(r, x)


def quantize(x: Tensor) -> Tensor:
    """Values a uint8 image would hold: round half away from zero, clamp to [0, 255], same float dtype."""
    if not x.is_floating_point():
        return x.clamp(0, 255)
    # After clamping everything is non-negative, so floor + (fraction >= 0.5) is half away from zero.
    y = x.clamp(0.0, 255.0)
    whole = torch.floor(y)
    return whole.add_(y.sub_(whole) >= 0.5)


def quantize_array(x: np.ndarray) -> np.ndarray:
    """``quantize`` for a float NumPy array, bit for bit, overwriting x (every step is exact).

    NumPy skips torch's per-call overhead on the small patch batches build-data rounds."""
    np.clip(x, 0.0, 255.0, out=x)
    whole = np.floor(x)
    whole += np.subtract(x, whole, out=x) >= 0.5
    return whole
