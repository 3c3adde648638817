"""Bicubic LR: MATLAB's antialiased imresize by 1/scale, for training pairs and for evaluation inputs.

`bicubic_lr` (training) takes and returns uint8 arrays (K x H x W x 3, or a single H x W x 3), rounded once
at the end, so the HDF5 file stores exactly what it returns. `bicubic_lr_matlab_uint8` (evaluation) rounds
after each axis, as MATLAB's uint8 imresize made the distributed LR_bicubic files. Rounding is half away
from zero (iptbench.ops.quantize), as MATLAB and the official evaluation do.
"""

from __future__ import annotations

import numpy as np

from iptbench.degradations.arrays import batched, to_uint8
from iptbench.ops.resize import downscale_hwc


def bicubic_lr(clean: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic downscale by 1/scale (antialiased), rounded half away from zero to uint8.

    H and W must be multiples of scale. The output size is passed explicitly: ceil(H * (1/3)) can come out
    one pixel too large in floating point.
    """
    batch, single = batched(clean)
    h, w = batch.shape[1:3]
    if h % scale or w % scale:
        raise ValueError(f"crop {h}x{w} is not a multiple of the scale {scale}")
    size = (h // scale, w // scale)
    # uint8 -> float32 is exact, so this is imresize's own CPU path on the same values, bit for bit.
    lr = downscale_hwc(batch.astype(np.float32), size)
    if lr is None:
        raise ValueError(f"bicubic_lr needs an integer scale of at least 2, got {scale}")
    out = np.ascontiguousarray(to_uint8(lr))  # lr is ours to overwrite
    return out[0] if single else out


def bicubic_lr_matlab_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    """The LR input of an SR benchmark image without an LR file: imresize(hr, 1/scale) in `matlab_uint8` mode.

    `hr` is uint8 H x W x 3, already mod-cropped to the scale; returns uint8 (H/scale) x (W/scale) x 3.
    """
    import torch

    from iptbench.ops import imresize

    chw = torch.from_numpy(hr).permute(2, 0, 1).contiguous()
    lr = imresize(chw, 1.0 / scale, mode="matlab_uint8")
    return lr.permute(1, 2, 0).contiguous().numpy().astype(np.uint8, copy=False)
