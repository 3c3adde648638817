"""MATLAB-compatible bicubic ``imresize`` (Keys a=-0.5, antialiased downscaling) and ``modcrop``.

Each axis is a linear map, so the per-axis weights are precomputed once (MATLAB's ``contributions``) as
a dense out x in matrix and applied with matrix products.  Large axes are split into blocks of output
rows whose non-zero input band is contiguous, which keeps the work proportional to the kernel support
instead of the full image size.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from iptbench.ops.bicubic import contributions
from iptbench.ops.polyphase import AxisPlan
from iptbench.ops.polyphase import axis_plan as polyphase_plan
from iptbench.ops.polyphase import downscale as polyphase_downscale

Mode = Literal["matlab", "matlab_uint8"]
ArrayT = TypeVar("ArrayT", Tensor, np.ndarray)

_BLOCK = 64  # output rows per band block; big enough for efficient GEMMs, small enough to skip zeros


@lru_cache(maxsize=64)
def _axis_plan(
    in_len: int, out_len: int, scale: float
) -> tuple[np.ndarray, tuple[tuple[int, int, int, int], ...]]:
    """Dense weight matrix (out x in, float64) and its blocks (out0, out1, in0, in1) of non-zero bands."""
    idx, w = contributions(in_len, out_len, scale)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    # np.add.at accumulates when mirrored taps hit the same source pixel.
    np.add.at(matrix, (np.repeat(np.arange(out_len), idx.shape[1]), idx.ravel()), w.ravel())
    blocks = []
    for o0 in range(0, out_len, _BLOCK):
        o1 = min(o0 + _BLOCK, out_len)
        cols = np.nonzero(np.any(matrix[o0:o1] != 0, axis=0))[0]
        blocks.append((o0, o1, int(cols.min()), int(cols.max()) + 1))
    return matrix, tuple(blocks)


_TORCH_CACHE: dict[tuple[int, int, float, torch.dtype, str], Tensor] = {}


def _matrix_on(in_len: int, out_len: int, scale: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (in_len, out_len, scale, dtype, str(device))
    m = _TORCH_CACHE.get(key)
    if m is None:
        if len(_TORCH_CACHE) > 64:
            _TORCH_CACHE.clear()
        m = torch.from_numpy(_axis_plan(in_len, out_len, scale)[0]).to(device=device, dtype=dtype)
        _TORCH_CACHE[key] = m
    return m


def _resize_axis(x: Tensor, dim: int, out_len: int, scale: float, round_uint8: bool) -> Tensor:
    """Resize dim -2 (rows) or -1 (columns) of an N x C x H x W float tensor."""
    in_len = x.shape[dim]
    matrix = _matrix_on(in_len, out_len, scale, x.dtype, x.device)
    blocks = _axis_plan(in_len, out_len, scale)[1]
    shape = list(x.shape)
    shape[dim] = out_len
    out = x.new_empty(shape)
    for o0, o1, i0, i1 in blocks:
        w = matrix[o0:o1, i0:i1]
        if dim == -2:
            out[..., o0:o1, :] = torch.matmul(w, x[..., i0:i1, :])
        else:
            out[..., o0:o1] = torch.matmul(x[..., i0:i1], w.T)
    if round_uint8:
        # Clamp first: on non-negative values, floor + (fraction >= 0.5) is round half away from zero,
        # and the fraction x - floor(x) is exact, so ties are decided without rounding error.
        out = out.clamp_(0.0, 255.0)
        whole = torch.floor(out)
        out = whole.add_(out.sub_(whole) >= 0.5)
    return out


def _output_size(in_h: int, in_w: int, scale: float) -> tuple[int, int]:
    def one(n: int) -> int:
        v = n * scale
        # 1/3 is inexact in binary: 255 * (1/3) may land a hair above 85; snap such noise so that
        # a scale of 1/s on a mod-cropped image gives exactly n/s, as the benchmark files assume.
        r = round(v)
        return int(r) if abs(v - r) < 1e-9 * max(1.0, abs(v)) else int(math.ceil(v))

    return one(in_h), one(in_w)


def _polyphase_plans(
    in_size: tuple[int, int], out_size: tuple[int, int], scales: tuple[float, float]
) -> tuple[AxisPlan, AxisPlan] | None:
    if scales[1] < scales[0]:  # the polyphase path does rows first; MATLAB starts with the smaller scale
        return None
    rows = polyphase_plan(in_size[0], out_size[0], scales[0])
    cols = polyphase_plan(in_size[1], out_size[1], scales[1]) if rows is not None else None
    return None if cols is None else (rows, cols)


def downscale_hwc(images: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """``imresize(..., "matlab", size=size)`` of an N x H x W x C float array by integer factors.

    The same function, on the same values, as imresize's CPU path for the channels-last view of the
    array, so the result is bit-identical to it, without the tensor round trip (build-data calls this
    per crop batch). None when the factors are not integers.
    """
    _, in_h, in_w, _ = images.shape
    out_h, out_w = int(size[0]), int(size[1])
    plans = _polyphase_plans((in_h, in_w), (out_h, out_w), (out_h / in_h, out_w / in_w))
    return None if plans is None else polyphase_downscale(images, *plans)


def _polyphase(
    x: Tensor,
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    scales: tuple[float, float],
    round_uint8: bool,
) -> Tensor | None:
    """The CPU fast path for integer downscales (iptbench.ops.polyphase), or None where it does not apply.

    It works on H x W x C memory. Channels-last inputs (build-data's crops) and the float64 uint8 mode gain
    2-3x from it; contiguous float N x C x H x W inputs would first need a full transpose, which costs more
    than it saves, so they keep the dense band GEMMs.
    """
    if x.device.type != "cpu" or x.requires_grad:
        return None
    channels_last = x.shape[1] == 1 or x.permute(0, 2, 3, 1).is_contiguous()
    if not (round_uint8 or channels_last):
        return None
    plans = _polyphase_plans(in_size, out_size, scales)
    if plans is None:
        return None
    rows, cols = plans
    if round_uint8:
        dtype = torch.float64
    else:
        dtype = x.dtype if x.is_floating_point() else torch.float32
    hwc = x.permute(0, 2, 3, 1).to(dtype, memory_format=torch.contiguous_format).numpy()
    out = polyphase_downscale(hwc, rows, cols, round_each_axis=round_uint8)
    # Channels-last memory, as the array came: callers that need contiguous N x C x H x W ask for it.
    result = torch.from_numpy(out).permute(0, 3, 1, 2)
    return result.to(x.dtype) if round_uint8 else result


def imresize(
    images: Tensor,
    scale: float,
    mode: Mode = "matlab",
    *,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """MATLAB ``imresize(images, scale, 'bicubic')`` on N x C x H x W (or C x H x W) tensors.

    ``matlab``: float arithmetic with no rounding (uint8 input becomes float32; float32/float64 kept).
    ``matlab_uint8``: MATLAB on uint8 input: float64 arithmetic, rounding half away from zero and
    clamping to 0..255 after each axis; returns the input dtype (uint8 in, uint8 out).
    Axes are processed in order of increasing scale factor (rows first when equal), as MATLAB does.
    ``size=(H, W)`` overrides the output size; each axis then uses scale = out / in.
    On CPU, integer downscales of channels-last float inputs and all ``matlab_uint8`` integer downscales
    take a polyphase path that groups the sums differently from the dense one: float results of the
    two can differ in the last bits (about 1e-5 on 0-255); uint8 results do not depend on the layout.
    """
    if mode not in ("matlab", "matlab_uint8"):
        raise ValueError(f"imresize mode must be 'matlab' or 'matlab_uint8', got {mode!r}")
    if images.ndim not in (3, 4):
        raise ValueError(f"imresize expects N x C x H x W or C x H x W, got shape {tuple(images.shape)}")
    squeeze = images.ndim == 3
    x = images.unsqueeze(0) if squeeze else images
    in_h, in_w = x.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        scales = (out_h / in_h, out_w / in_w)
    else:
        if not scale > 0:
            raise ValueError(f"imresize scale must be positive, got {scale}")
        out_h, out_w = _output_size(in_h, in_w, float(scale))
        scales = (float(scale), float(scale))
    if min(out_h, out_w) < 1:
        raise ValueError(f"imresize output size would be {out_h} x {out_w}")

    round_uint8 = mode == "matlab_uint8"
    fast = _polyphase(x, (in_h, in_w), (out_h, out_w), scales, round_uint8)
    if fast is not None:
        return fast.squeeze(0) if squeeze else fast
    # Contiguous N x C x H x W keeps the band products plain strided GEMMs (inputs are often
    # channels-last views of H x W x C arrays).
    if round_uint8:
        work = x.to(torch.float64, memory_format=torch.contiguous_format)
    else:
        dtype = x.dtype if x.is_floating_point() else torch.float32
        work = x.to(dtype, memory_format=torch.contiguous_format)
    order = sorted(((scales[0], 0), (scales[1], 1)))  # stable: rows first on ties
    for s, axis in order:
        if axis == 0:
            work = _resize_axis(work, -2, out_h, s, round_uint8)
        else:
            work = _resize_axis(work, -1, out_w, s, round_uint8)

    if round_uint8:
        work = work.to(images.dtype)
    return work.squeeze(0) if squeeze else work


def modcrop(images: ArrayT, scale: int) -> ArrayT:
    """Crop H and W down to multiples of ``scale``, keeping the top-left.

    Tensors are ... x H x W (N x C x H x W or C x H x W); NumPy arrays are H x W or H x W x C.
    """
    s = int(scale)
    if s < 1:
        raise ValueError(f"modcrop scale must be >= 1, got {scale}")
    if isinstance(images, np.ndarray):
        h, w = images.shape[:2]
        return images[: h - h % s, : w - w % s, ...]
    h, w = images.shape[-2:]
    return images[..., : h - h % s, : w - w % s]
