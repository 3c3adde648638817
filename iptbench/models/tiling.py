"""Running a fixed-window model over an image of any size.

Two schemes, both model-agnostic (`fn` maps N x C x P x P windows to N x C x sP x sP):

* `tile_official`: the official `Model.forward_chop` of huawei-noah/Pretrained-IPT, reproduced from its
  code (model/__init__.py): stride P/4, centre crops averaged, the corner and
  bottom/right/top/left strips, hard seams floor(s*(P+cut)/2) from the far edges. Windows that the official
  code evaluates twice (the top/left strips are also the grid's first row/column) are run once here;
  the arithmetic on their outputs is the same.
* `tile_fast`: ours. Windows at stride ~3/4 P, spread evenly so the last one is flush with the far edge,
  blended with linear-ramp weights over the overlap (no seams), images smaller than a window reflected.
  About 8x fewer windows than official mode on a 256 x 256 input.

Windows go through `fn` in batches of `window_batch`; only the output canvases scale with the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

WindowFn = Callable[[Tensor], Tensor]
Progress = Callable[[int], None]


def _run_windows(
    fn: WindowFn,
    image: Tensor,
    positions: list[tuple[int, int]],
    patch: int,
    window_batch: int,
    progress: Progress | None,
) -> Iterator[tuple[int, Tensor]]:
    """Evaluate the windows at `positions` batch by batch; yields (first index, outputs) pairs lazily."""
    if window_batch < 1:
        raise ValueError("window_batch must be >= 1")
    for start in range(0, len(positions), window_batch):
        chunk = positions[start : start + window_batch]
        batch = torch.cat([image[..., y : y + patch, x : x + patch] for y, x in chunk], dim=0)
        out = fn(batch).float()
        yield start, out
        if progress is not None:
            progress(len(chunk))


def _reflect_pad_to(image: Tensor, size: int) -> Tensor:
    """Pad bottom/right up to `size` by mirroring (repeatedly for tiny images, replicate for 1-pixel ones)."""
    while image.shape[-2] < size or image.shape[-1] < size:
        h, w = image.shape[-2:]
        ph = min(size - h, h - 1) if h < size else 0
        pw = min(size - w, w - 1) if w < size else 0
        if (h < size and ph == 0) or (w < size and pw == 0):
            image = F.pad(image, (0, max(size - w, 0), 0, max(size - h, 0)), mode="replicate")
        else:
            image = F.pad(image, (0, pw, 0, ph), mode="reflect")
    return image


# --------------------------------------------------------------------------- official forward_chop


@dataclass(frozen=True)
class _Group:
    """One blend group of the official scheme: windows at rows x cols, each keeping its per-axis interval."""

    rows: tuple[int, ...]  # LR top coordinates
    cols: tuple[int, ...]

    def intervals(self, n: int, patch: int, stride: int, scale: int) -> list[tuple[int, int]]:
        # Central part of every window, plus the leading edge of the first and trailing edge of the last.
        return [
            (0 if k == 0 else stride * scale, patch * scale if k == n - 1 else (patch - stride) * scale)
            for k in range(n)
        ]


def _official_groups(h: int, w: int, p: int) -> dict[str, _Group]:
    t = p // 4
    grid_r = tuple(range(0, h - (h - p) % t - p + 1, t))
    grid_c = tuple(range(0, w - (w - p) % t - p + 1, t))
    return {
        "grid": _Group(grid_r, grid_c),
        "top": _Group((0,), grid_c),
        "left": _Group(grid_r, (0,)),
        "bottom": _Group((h - p,), grid_c),
        "right": _Group(grid_r, (w - p,)),
        "corner": _Group((h - p,), (w - p,)),
    }


def _official_uses(groups: dict[str, _Group]) -> dict[tuple[int, int], list[tuple[str, int, int]]]:
    """Every distinct window once, with the (group, row index, col index) slots it fills."""
    uses: dict[tuple[int, int], list[tuple[str, int, int]]] = {}
    for name, g in groups.items():
        for i, y in enumerate(g.rows):
            for j, x in enumerate(g.cols):
                uses.setdefault((y, x), []).append((name, i, j))
    return uses


def official_distinct_window_count(h: int, w: int, patch: int = 48) -> int:
    """Windows official mode actually runs here (duplicates of the official code evaluated once)."""
    return len(_official_uses(_official_groups(max(h, patch), max(w, patch), patch)))


def official_window_count(h: int, w: int, patch: int = 48) -> int:
    """Windows the official forward_chop feeds to the network (397 for 256 x 256, P=48)."""
    h, w = max(h, patch), max(w, patch)
    t = patch // 4
    n_h, n_w = (h - patch) // t + 1, (w - patch) // t + 1
    return n_h * n_w + 2 * n_h + 2 * n_w + 1


Spans = dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]


def tile_official(
    fn: WindowFn,
    image: Tensor,
    patch: int,
    scale: int,
    *,
    window_batch: int = 64,
    progress: Progress | None = None,
) -> Tensor:
    """The official forward_chop on a 1 x C x H x W image; images smaller than P are reflect-padded first."""
    if patch % 4:
        raise ValueError(f"official tiling needs a window side divisible by 4, got {patch}")
    h0, w0 = image.shape[-2:]
    image = _reflect_pad_to(image, patch)
    h, w = image.shape[-2:]
    groups = _official_groups(h, w, patch)
    sums, spans = _official_sums(fn, image, groups, patch, scale, window_batch, progress)
    blended = _official_blend(sums, spans, groups, scale)
    out = _official_assemble(blended, image.shape[1], h, w, patch, scale)
    return out[..., : h0 * scale, : w0 * scale]


def _official_sums(
    fn: WindowFn,
    image: Tensor,
    groups: dict[str, _Group],
    p: int,
    s: int,
    window_batch: int,
    progress: Progress | None,
) -> tuple[dict[str, Tensor], Spans]:
    """Per group, the sum of its windows' kept intervals on a canvas over the group, and those intervals."""
    t, c = p // 4, image.shape[1]
    uses = _official_uses(groups)
    positions = sorted(uses)
    sums: dict[str, Tensor] = {}
    spans: Spans = {}
    for name, g in groups.items():
        ri = g.intervals(len(g.rows), p, t, s)
        ci = g.intervals(len(g.cols), p, t, s)
        spans[name] = (ri, ci)
        height = (g.rows[-1] - g.rows[0] + p) * s
        width = (g.cols[-1] - g.cols[0] + p) * s
        sums[name] = torch.zeros(c, height, width, dtype=torch.float32, device=image.device)

    for start, out in _run_windows(fn, image, positions, p, window_batch, progress):
        for n, win in enumerate(out):
            y, x = positions[start + n]
            for name, i, j in uses[(y, x)]:
                g = groups[name]
                (r0, r1), (c0, c1) = spans[name][0][i], spans[name][1][j]
                oy, ox = (y - g.rows[0]) * s, (x - g.cols[0]) * s
                sums[name][:, oy + r0 : oy + r1, ox + c0 : ox + c1] += win[:, r0:r1, c0:c1]
    return sums, spans


def _official_blend(
    sums: dict[str, Tensor], spans: Spans, groups: dict[str, _Group], s: int
) -> dict[str, Tensor]:
    """Each group's sums divided by how many windows covered each pixel (an average per pixel)."""
    blended: dict[str, Tensor] = {}
    for name, g in groups.items():
        counts = []
        for axis, coords in ((0, g.rows), (1, g.cols)):
            n = torch.zeros(sums[name].shape[1 + axis], device=sums[name].device)
            for pos, (a, b) in zip(coords, spans[name][axis], strict=True):
                off = (pos - coords[0]) * s
                n[off + a : off + b] += 1
            counts.append(n)
        blended[name] = sums[name] / (counts[0][:, None] * counts[1][None, :])
    return blended


def _official_assemble(blended: dict[str, Tensor], c: int, h: int, w: int, p: int, s: int) -> Tensor:
    """The 1 x C x sH x sW output from the blended groups, with the official code's strips and seams."""
    t = p // 4
    hh, ww = h - (h - p) % t, w - (w - p) % t  # extent of the regular grid
    h_cut, w_cut = h - hh, w - ww
    # Canvas over the grid area, written in the official order: top strip, left strip, then the interior.
    canvas = blended["grid"].clone()
    canvas[:, : p * s, :] = blended["top"]
    canvas[:, :, : p * s] = blended["left"]
    canvas[:, t * s : (hh - t) * s, t * s : (ww - t) * s] = blended["grid"][
        :, t * s : (hh - t) * s, t * s : (ww - t) * s
    ]

    a2, b2 = s * (p - h_cut), s * (p - w_cut)  # twice the seam offsets a and b
    row_seam, col_seam = hh * s - a2 // 2, ww * s - b2 // 2
    row_start, col_start = (a2 + 1) // 2, (b2 + 1) // 2  # int(a + 0.5) in the official code
    out = torch.empty(1, c, h * s, w * s, dtype=torch.float32, device=canvas.device)
    out[0, :, :row_seam, :col_seam] = canvas[:, :row_seam, :col_seam]
    out[0, :, row_seam:, :col_seam] = blended["bottom"][:, row_start:, :col_seam]
    out[0, :, :row_seam, col_seam:] = blended["right"][:, :row_seam, col_start:]
    out[0, :, row_seam:, col_seam:] = blended["corner"][:, row_start:, col_start:]
    return out


# --------------------------------------------------------------------------- fast mode


def fast_positions(length: int, patch: int, stride: int) -> list[int]:
    """Evenly spread window starts from 0 to length - patch, no gap wider than `stride`."""
    if length <= patch:
        return [0]
    n = math.ceil((length - patch) / stride) + 1
    return [round(k * (length - patch) / (n - 1)) for k in range(n)]


def default_stride(patch: int) -> int:
    return max(1, (3 * patch) // 4)


def fast_window_count(h: int, w: int, patch: int = 48, stride: int | None = None) -> int:
    stride = stride or default_stride(patch)
    return len(fast_positions(max(h, patch), patch, stride)) * len(
        fast_positions(max(w, patch), patch, stride)
    )


def ramp_weights(size: int, ramp: int, device: torch.device | None = None) -> Tensor:
    """1 in the middle, falling linearly to ~0 over `ramp` pixels at both ends; never exactly 0."""
    x = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    if ramp <= 0:
        return torch.ones(size, device=device)
    return torch.minimum(x, size - x).div(ramp).clamp(max=1.0)


def tile_fast(
    fn: WindowFn,
    image: Tensor,
    patch: int,
    scale: int,
    *,
    window_batch: int = 64,
    stride: int | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Overlapping windows blended by normalised linear ramps; 1 x C x H x W -> 1 x C x sH x sW."""
    stride = stride or default_stride(patch)
    if not 1 <= stride <= patch:
        raise ValueError(f"stride must be in 1..{patch}, got {stride}")
    h0, w0 = image.shape[-2:]
    image = _reflect_pad_to(image, patch)
    h, w = image.shape[-2:]
    s, c = scale, image.shape[1]
    rows, cols = fast_positions(h, patch, stride), fast_positions(w, patch, stride)
    positions = [(y, x) for y in rows for x in cols]
    ramp = ramp_weights(patch * s, (patch - stride) * s, device=image.device)
    weight = ramp[:, None] * ramp[None, :]
    acc = torch.zeros(c, h * s, w * s, dtype=torch.float32, device=image.device)
    norm = torch.zeros(h * s, w * s, dtype=torch.float32, device=image.device)
    for start, out in _run_windows(fn, image, positions, patch, window_batch, progress):
        for n, win in enumerate(out):
            y, x = positions[start + n]
            sl = (slice(y * s, (y + patch) * s), slice(x * s, (x + patch) * s))
            acc[(slice(None), *sl)] += win * weight
            norm[sl] += weight
    return (acc / norm).unsqueeze(0)[..., : h0 * s, : w0 * s]
