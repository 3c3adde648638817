"""MATLAB's bicubic kernel (Keys, a = -0.5) and its per-axis taps, shared by both imresize paths.

`tap_weights` follows MATLAB's `contributions` line by line (x / scale + 0.5 * (1 - 1 / scale), a kernel
widened by 1 / scale when antialiasing a downscale, rows normalised to sum 1), so every path of
iptbench.ops.imresize multiplies by the same weights MATLAB does.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def tap_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's taps before mirroring and pruning: first input index per output (1-based, float64, may be
    out of range) and the out_len x P normalised weights of inputs first, first + 1, ..."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - indices
    weights = scale * _cubic(scale * dist) if antialias else _cubic(dist)
    return left, weights / weights.sum(axis=1, keepdims=True)


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's per-axis taps: (indices 0-based, weights), each out_len x P, rows summing to 1."""
    left, weights = tap_weights(in_len, out_len, scale)
    indices = left[:, None] + np.arange(weights.shape[1], dtype=np.float64)[None, :]
    # Symmetric boundary: MATLAB indexes [1..n, n..1] periodically.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0, axis=0)
    return idx[:, keep], weights[:, keep]
