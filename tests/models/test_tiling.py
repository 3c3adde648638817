"""Tiling: official forward_chop (huawei-noah/Pretrained-IPT, model/__init__.py) against a reference; fast
mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iptbench.models.tiling import (
    fast_positions,
    fast_window_count,
    official_distinct_window_count,
    official_window_count,
    tile_fast,
    tile_official,
)

# --------------------------------------------------------------------------- stand-in models


def nearest(scale: int):
    """Position-equivariant: every window predicts the same value for a pixel, so tiling must be exact."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="nearest") if scale > 1 else x.clone()

    return fn


def position_dependent(scale: int, patch: int):
    """Zero-padded conv (borders differ from the interior) plus a ramp in window coordinates."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 3, 5, 5, generator=gen, dtype=torch.float64) * 0.1
    rows = torch.linspace(0.0, 9.0, patch * scale, dtype=torch.float64)
    cols = torch.linspace(-4.0, 5.0, patch * scale, dtype=torch.float64)
    ramp = rows[:, None] * 1.7 + cols[None, :] ** 2

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x.double(), weight, padding=2)
        if scale > 1:
            y = F.interpolate(y, scale_factor=scale, mode="nearest")
        return y + ramp

    return fn


# --------------------------------------------------------------------------- reference from the notes


def _strip_blend(outs: list[np.ndarray], starts: list[int], p: int, t: int, s: int, axis: int, extent: int):
    """1-D blend (notes: 'Strip blending'): mean of the windows whose central part holds the coordinate;
    before s*t only the first window, from s*(extent-t) on only the last."""
    shape = list(outs[0].shape)
    shape[axis + 1] = extent * s
    total = np.zeros(shape)
    count = np.zeros(extent * s)
    for k, (out, st) in enumerate(zip(outs, starts, strict=True)):
        for j in range(p * s):
            pos = st * s + j
            central = s * t <= j < s * (p - t)
            alone_first = k == 0 and pos < s * t
            alone_last = k == len(outs) - 1 and pos >= s * (extent - t)
            if central or alone_first or alone_last:
                sl = [slice(None)] * 3
                sl[axis + 1] = pos
                src = [slice(None)] * 3
                src[axis + 1] = j
                total[tuple(sl)] += out[tuple(src)]
                count[pos] += 1
    shape_c = [1, 1, 1]
    shape_c[axis + 1] = -1
    return total / count.reshape(shape_c)


def reference_chop(fn, img: np.ndarray, p: int, s: int) -> np.ndarray:
    """forward_chop's arithmetic written out plainly; img is C x H x W float64."""
    c, h, w = img.shape
    t = p // 4
    h_cut, w_cut = (h - p) % t, (w - p) % t
    hh, ww = h - h_cut, w - w_cut
    n_h, n_w = (hh - p) // t + 1, (ww - p) // t + 1

    def run(y: int, x: int) -> np.ndarray:
        win = torch.from_numpy(img[None, :, y : y + p, x : x + p].copy())
        return fn(win)[0].double().numpy()

    col_starts = [j * t for j in range(n_w)]
    row_starts = [i * t for i in range(n_h)]
    bottom = _strip_blend([run(h - p, x) for x in col_starts], col_starts, p, t, s, 1, ww)
    top = _strip_blend([run(0, x) for x in col_starts], col_starts, p, t, s, 1, ww)
    right = _strip_blend([run(y, w - p) for y in row_starts], row_starts, p, t, s, 0, hh)
    left = _strip_blend([run(y, 0) for y in row_starts], row_starts, p, t, s, 0, hh)
    corner = run(h - p, w - p)

    # (c) 2-D interior: mean over grid windows whose central part contains the pixel in both axes
    total = np.zeros((c, hh * s, ww * s))
    count = np.zeros((hh * s, ww * s))
    for y in row_starts:
        for x in col_starts:
            out = run(y, x)
            cy = slice(y * s + s * t, y * s + s * (p - t))
            cx = slice(x * s + s * t, x * s + s * (p - t))
            total[:, cy, cx] += out[:, s * t : s * (p - t), s * t : s * (p - t)]
            count[cy, cx] += 1
    canvas = np.full((c, hh * s, ww * s), np.nan)
    canvas[:, : s * p, :] = top  # (a)
    canvas[:, :, : s * p] = left  # (b)
    inner = (slice(None), slice(s * t, s * (hh - t)), slice(s * t, s * (ww - t)))
    canvas[inner] = total[inner] / count[inner[1:]]  # (c)

    a, b = s * (p - h_cut) / 2, s * (p - w_cut) / 2
    row_seam, col_seam = hh * s - int(np.floor(a)), ww * s - int(np.floor(b))
    ra, cb = int(a + 0.5), int(b + 0.5)
    out = np.zeros((c, h * s, w * s))
    out[:, :row_seam, :col_seam] = canvas[:, :row_seam, :col_seam]
    out[:, row_seam:, :col_seam] = bottom[:, ra:, :col_seam]
    out[:, :row_seam, col_seam:] = right[:, :row_seam, cb:]
    out[:, row_seam:, col_seam:] = corner[:, ra:, cb:]
    assert not np.isnan(out).any()
    return out


SIZES = [(12, 12), (13, 17), (25, 12), (31, 44), (40, 29)]


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", SIZES)
def test_official_matches_reference_from_notes(scale: int, size: tuple[int, int]) -> None:
    p = 12
    rng = np.random.default_rng(sum(size) * scale)
    img = rng.uniform(0, 255, (3, *size))
    fn = position_dependent(scale, p)
    ref = reference_chop(fn, img, p, scale)
    got = tile_official(fn, torch.from_numpy(img)[None], p, scale, window_batch=5)[0].double().numpy()
    assert got.shape == ref.shape == (3, size[0] * scale, size[1] * scale)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-4)


def test_official_matches_reference_at_paper_window() -> None:
    p, scale = 48, 2
    img = np.random.default_rng(1).uniform(0, 255, (3, 61, 70))
    fn = position_dependent(scale, p)
    ref = reference_chop(fn, img, p, scale)
    got = tile_official(fn, torch.from_numpy(img)[None], p, scale, window_batch=64)[0].double().numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-4)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(48, 48), (49, 53), (97, 61), (20, 30)])
def test_equivariant_model_is_exact_in_both_modes(scale: int, size: tuple[int, int]) -> None:
    img = torch.randint(0, 256, (1, 3, *size)).float()  # integers: sums of up to 4 stay exact
    want = nearest(scale)(img)
    got = tile_official(nearest(scale), img, 48, scale, window_batch=7)
    assert torch.equal(got, want)
    fast = tile_fast(nearest(scale), img, 48, scale, window_batch=3)
    torch.testing.assert_close(fast, want, rtol=0, atol=1e-3)


def test_window_counts() -> None:
    assert official_window_count(256, 256) == 397
    assert official_distinct_window_count(256, 256) == 397 - 2 * 18  # top/left strips run once
    assert fast_window_count(256, 256) == 49
    assert fast_window_count(30, 20) == 1
    starts = fast_positions(256, 48, 36)
    assert starts[0] == 0 and starts[-1] == 256 - 48
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) <= 36


def test_fast_mode_batches_and_progress() -> None:
    img = torch.rand(1, 3, 100, 77) * 255
    fn = position_dependent(2, 48)
    seen: list[int] = []
    one = tile_fast(fn, img, 48, 2, window_batch=1, progress=seen.append)
    many = tile_fast(fn, img, 48, 2, window_batch=64)
    assert sum(seen) == fast_window_count(100, 77) == len(seen)
    torch.testing.assert_close(one, many)


def _max_step(x: torch.Tensor) -> float:
    return max(x.diff(dim=-1).abs().max().item(), x.diff(dim=-2).abs().max().item())


def test_fast_mode_has_no_seams() -> None:
    """A smooth stand-in whose output depends on the window position: hard stitching jumps, ramps do not."""
    p, amp = 48, 20.0
    u = torch.sin(torch.pi * (torch.arange(p) + 0.5) / p)
    bump = amp * u[:, None] * u[None, :]

    def fn(x: torch.Tensor) -> torch.Tensor:
        return x + bump

    img = torch.full((1, 3, 150, 131), 100.0)
    fast = tile_fast(fn, img, p, 1)
    hard = tile_fast(fn, img, p, 1, stride=p)  # stride = window: non-overlapping tiles
    within = _max_step(bump)
    assert _max_step(hard) > 5 * within  # the check can fail: seams are visible without blending
    assert _max_step(fast) < 2.5 * within
