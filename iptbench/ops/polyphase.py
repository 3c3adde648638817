"""MATLAB bicubic downscaling by an integer factor s, as a polyphase filter: the CPU fast path of imresize.

At a scale of exactly 1/s every output pixel of MATLAB's antialiased bicubic uses the same 4s-tap kernel,
shifted by s input pixels per output pixel; only the mirrored border indices differ. So the dense
out x in weight matrix (mostly zeros) is replaced by: gather the mirrored input rows once, view them as
overlapping windows of ROWS_PER_BLOCK outputs (no copy), and multiply every window by one small banded
block matrix in a single batched GEMM: about s + 4s / ROWS_PER_BLOCK multiply-adds per output instead of
`in` (benchmarks/bench_ops.py measures the gain; about 3x on build-data's 48-px patches).

Everything works on N x H x W x C arrays (the layout images are decoded in) with the rows axis first, as
MATLAB orders equal scales. Weights are taken from the same per-row MATLAB formula as the dense path
(`resize.contributions`), not re-derived, so both paths sum the same weights; only the GEMM grouping
of the sums differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from iptbench.ops.bicubic import tap_weights
from iptbench.ops.color import quantize_array

ROWS_PER_BLOCK = 4  # output rows per window; small blocks skip the zeros, 4 measured fastest on 48-px patches


@dataclass(frozen=True)
class AxisPlan:
    """One axis of an integer downscale: gather `positions`, then windows of `window` rows every `step`."""

    out_len: int
    positions: np.ndarray  # mirrored input indices, length step * (blocks - 1) + window
    blocks: int
    window: int
    step: int
    weights: np.ndarray  # rows_per_block x window, float64 (cast per dtype on use)


@lru_cache(maxsize=64)
def axis_plan(in_len: int, out_len: int, scale: float) -> AxisPlan | None:
    """The polyphase plan for in_len -> out_len at `scale`, or None unless scale is 1/s for an integer s >= 2
    and MATLAB's kernel is exactly the same for every output pixel."""
    if not 0 < scale <= 0.5:
        return None
    factor = round(1 / scale)
    if abs(1 / scale - factor) > 1e-9 * factor:
        return None
    left, weights = tap_weights(in_len, out_len, scale)
    # Shift invariance, exactly: every row has the same weights and starts `factor` pixels after the last.
    if not (np.array_equal(weights, np.broadcast_to(weights[0], weights.shape))):
        return None
    if not np.array_equal(np.diff(left), np.full(out_len - 1, factor)):
        return None
    kernel = weights[0]
    nonzero = np.nonzero(kernel)[0]
    lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
    kernel = kernel[lo:hi]
    taps = hi - lo
    b = ROWS_PER_BLOCK
    blocks = -(-out_len // b)
    window = factor * (b - 1) + taps
    step = factor * b
    needed = step * (blocks - 1) + window
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    first = int(left[0]) + lo - 1  # 0-based
    positions = mirror[np.mod(first + np.arange(needed), mirror.size)]
    block = np.zeros((b, window), dtype=np.float64)
    for r in range(b):
        block[r, factor * r : factor * r + taps] = kernel
    return AxisPlan(out_len, positions, blocks, window, step, block)


def _apply_rows(x: np.ndarray, plan: AxisPlan) -> np.ndarray:
    """N x L x M -> N x out_len x M along axis 1."""
    n, _, m = x.shape
    gathered = np.take(x, plan.positions, axis=1)  # a fresh C-contiguous N x needed x M array
    item = gathered.itemsize
    windows = np.lib.stride_tricks.as_strided(
        gathered,
        shape=(n, plan.blocks, plan.window, m),
        strides=(gathered.strides[0], plan.step * m * item, m * item, item),
        writeable=False,
    )
    out = np.matmul(plan.weights.astype(x.dtype, copy=False), windows)  # N x blocks x b x M
    return out.reshape(n, -1, m)[:, : plan.out_len]


def downscale(
    images: np.ndarray, rows: AxisPlan, cols: AxisPlan, *, round_each_axis: bool = False
) -> np.ndarray:
    """N x H x W x C float array -> N x out_h x out_w x C, rows first then columns.

    round_each_axis: MATLAB's uint8 arithmetic (clamp and round half away from zero after each axis).
    """
    n, h, w, c = images.shape
    x = _apply_rows(np.ascontiguousarray(images).reshape(n, h, w * c), rows)
    if round_each_axis:
        x = quantize_array(x)
    # Columns: bring W to axis 1 (a small copy, after the rows pass has already shrunk the data).
    x = _swap_axes_1_2(x.reshape(n, rows.out_len, w, c))
    x = _apply_rows(x.reshape(n, w, rows.out_len * c), cols)
    if round_each_axis:
        x = quantize_array(x)
    return _swap_axes_1_2(x.reshape(n, cols.out_len, rows.out_len, c))


def _swap_axes_1_2(x: np.ndarray) -> np.ndarray:
    """N x A x B x C -> contiguous N x B x A x C, moving each pixel's C values as one opaque item.

    NumPy copies a 3-float inner axis element by element; as one 12-byte item it is twice as fast.
    """
    n, a, b, c = x.shape
    pixels = np.ascontiguousarray(x).view(np.dtype((np.void, c * x.itemsize))).reshape(n, a, b)
    return np.ascontiguousarray(pixels.transpose(0, 2, 1)).view(x.dtype).reshape(n, b, a, c)
