"""The corruptions of IPT's six pre-training tasks, applied to uint8 clean crops.

All functions take and return uint8 arrays (K x H x W x 3, or a single H x W x 3), so what is stored in the
HDF5 file is exactly what they return. Rounding is half away from zero (iptbench.ops.quantize), as MATLAB
and the official evaluation do.
"""

from __future__ import annotations

import numpy as np

from iptbench.data.rain import DEFAULT_RANGES, RainRanges, StreakBank, synth_rain_layers
from iptbench.ops.color import quantize_array
from iptbench.ops.resize import downscale_hwc


def _batched(images: np.ndarray) -> tuple[np.ndarray, bool]:
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        return images[None], True
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 or K x H x W x 3, got shape {images.shape}")
    return images, False


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """iptbench.ops.quantize then uint8, on a float array x (overwritten)."""
    return quantize_array(x).astype(np.uint8)


def bicubic_lr(clean: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic downscale by 1/scale (antialiased), rounded half away from zero to uint8.

    H and W must be multiples of scale. The output size is passed explicitly: ceil(H * (1/3)) can come out
    one pixel too large in floating point.
    """
    batch, single = _batched(clean)
    h, w = batch.shape[1:3]
    if h % scale or w % scale:
        raise ValueError(f"crop {h}x{w} is not a multiple of the scale {scale}")
    size = (h // scale, w // scale)
    # uint8 -> float32 is exact, so this is imresize's own CPU path on the same values, bit for bit.
    lr = downscale_hwc(batch.astype(np.float32), size)
    if lr is None:
        raise ValueError(f"bicubic_lr needs an integer scale of at least 2, got {scale}")
    out = np.ascontiguousarray(_to_uint8(lr))  # lr is ours to overwrite
    return out[0] if single else out


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """clean + N(0, sigma^2) on the 0-255 scale, clipped to [0, 255] and rounded to uint8."""
    batch, single = _batched(clean)
    noise = rng.standard_normal(batch.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise += batch
    out = _to_uint8(noise)
    return out[0] if single else out


def add_rain(
    clean: np.ndarray,
    rng: np.random.Generator,
    streaks: StreakBank | None = None,
    ranges: RainRanges = DEFAULT_RANGES,
) -> np.ndarray:
    """Add rain streaks (our synthesiser, or crops of user streak maps), clip to [0, 255], round to uint8."""
    batch, single = _batched(clean)
    k, h, w = batch.shape[:3]
    if h != w:
        raise ValueError("rain synthesis works on square patches")
    if streaks is None:
        layer = synth_rain_layers(rng, k, h, ranges)[..., None]
    else:
        layer = streaks.layers(rng, k, h)
    out = _to_uint8(np.add(layer, batch, dtype=np.float32))
    return out[0] if single else out
