"""uint8 batch helpers shared by the training corruptions (bicubic LR, uint8 noise, rain)."""

from __future__ import annotations

import numpy as np


def batched(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """`images` (K x H x W x 3 or H x W x 3 uint8) as a K x H x W x 3 batch, and whether it was one image."""
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        return images[None], True
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 or K x H x W x 3, got shape {images.shape}")
    return images, False


def to_uint8(x: np.ndarray) -> np.ndarray:
    """iptbench.ops.quantize then uint8, on a float array x (overwritten)."""
    # Imported here: iptbench.ops.color loads torch, and iptbench.tasks reads NOISE_ALGORITHM from
    # iptbench.degradations.noise (which uses this module) at import, which must stay light.
    from iptbench.ops.color import quantize_array

    return quantize_array(x).astype(np.uint8)
