"""A seeded rain-streak synthesiser, tuned by eye and by statistics to Rain100L's light rain.

Each patch gets one rain "event": a dominant fall angle near vertical, a streak density, a typical streak
length, width and brightness, all drawn from the generator. Every streak is then drawn as a motion-blurred
drop: a segment whose cross-section is a Gaussian (the width) and whose intensity tapers to zero at both
ends (the drop's path during the exposure), with its own small jitter in angle, length and brightness.
Streaks are evaluated analytically at pixel centres within RENDER_RADIUS px of their centre line, vectorised
over all streaks of all patches (no per-streak Python loop), and summed into the layer. Streak centres
are drawn over the patch plus a margin of half the longest streak, so streaks enter and leave through the
borders as they do in a crop of a larger rainy image.

Reference statistics (Rain100L test, rainy - clean, averaged over channels): mean 2-10, 5-15 % of pixels
brighter by > 10, 99th percentile 33-100, peaks up to ~200; streaks 1-2 px wide, 20-60 px long in 481x321
images, within ~20 degrees of vertical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from iptbench.degradations.arrays import batched, to_uint8
from iptbench.errors import IptbenchError
from iptbench.images import is_image_file, read_image


@dataclass(frozen=True)
class RainRanges:
    """Per-patch parameter ranges (uniform draws). Bump `version` whenever a range or the drawing changes."""

    angle_deg: tuple[float, float] = (-15.0, 15.0)  # dominant direction, from vertical
    angle_jitter_deg: float = 2.0  # per-streak std around the dominant angle
    density: tuple[float, float] = (0.002, 0.006)  # streak centres per pixel of the padded area
    length: tuple[float, float] = (20.0, 60.0)  # typical streak length in pixels
    length_jitter: tuple[float, float] = (0.6, 1.25)  # per-streak factor on the typical length
    width: tuple[float, float] = (0.35, 0.8)  # Gaussian sigma of the cross-section in pixels
    brightness: tuple[float, float] = (70.0, 150.0)  # peak added value on the 0-255 scale
    brightness_jitter: tuple[float, float] = (0.35, 1.0)  # per-streak factor on the brightness
    version: int = 2  # 2: streaks rendered within RENDER_RADIUS px of their centre line


RENDER_RADIUS = 6  # px either side of a streak's centre line, per row; see render_streaks


DEFAULT_RANGES = RainRanges()


class Streaks(NamedTuple):
    """Streak parameters, count x m arrays (patch, streak): centre (pixels, from the patch's top-left
    corner), angle from vertical (radians), half-length and Gaussian width (pixels), peak brightness."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    half: np.ndarray
    sigma: np.ndarray
    amp: np.ndarray


def synth_rain_layers(
    rng: np.random.Generator, count: int, size: int, ranges: RainRanges = DEFAULT_RANGES
) -> np.ndarray:
    """`count` additive grey streak layers of size x size (float32, 0-255 scale, >= 0)."""
    return render_streaks(draw_streaks(rng, count, size, ranges), size)


def draw_streaks(
    rng: np.random.Generator, count: int, size: int, ranges: RainRanges = DEFAULT_RANGES
) -> Streaks:
    """The streaks of `count` size x size patches that can reach the patch (others are dropped)."""
    r = ranges
    angle = np.deg2rad(rng.uniform(*r.angle_deg, size=count))
    density = rng.uniform(*r.density, size=count)
    length = rng.uniform(*r.length, size=count)
    width = rng.uniform(*r.width, size=count)
    bright = rng.uniform(*r.brightness, size=count)

    margin = 0.5 * r.length[1] * r.length_jitter[1]
    span = size + 2 * margin
    n = rng.poisson(density * span * span)
    m = max(int(n.max()), 1)
    # Draw a full (count, m) block and mask the unused tail: the draw count stays fixed for a given n.max().
    used = np.arange(m)[None, :] < n[:, None]
    cx = rng.uniform(-margin, size + margin, size=(count, m))
    cy = rng.uniform(-margin, size + margin, size=(count, m))
    a = angle[:, None] + np.deg2rad(r.angle_jitter_deg) * rng.standard_normal((count, m))
    half = 0.5 * length[:, None] * rng.uniform(*r.length_jitter, size=(count, m))
    amp = bright[:, None] * rng.uniform(*r.brightness_jitter, size=(count, m)) * used
    sig = width[:, None] * rng.uniform(0.8, 1.2, size=(count, m))

    # Most centres in the margin miss the patch; keep only streaks whose rendered extent meets it, packed
    # to the front, so rendering costs what the visible streaks cost.
    reach_x = np.abs(np.sin(a)) * half + RENDER_RADIUS
    reach_y = np.abs(np.cos(a)) * half + RENDER_RADIUS
    hits = used & (cx + reach_x > 0) & (cx - reach_x < size) & (cy + reach_y > 0) & (cy - reach_y < size)
    order = np.argsort(~hits, axis=1, kind="stable")
    m = max(int(hits.sum(axis=1).max()), 1)
    take = order[:, :m]
    cx, cy, a, half, sig = (np.take_along_axis(v, take, axis=1) for v in (cx, cy, a, half, sig))
    amp = np.take_along_axis(amp * hits, take, axis=1)
    return Streaks(cx, cy, a, half, sig, amp)


def render_streaks(streaks: Streaks, size: int) -> np.ndarray:
    """Sum the streaks into count x size x size float32 layers.

    Each streak is evaluated only on the RENDER_RADIUS pixels either side of its centre line in every row
    (beyond that its Gaussian profile is under 1e-4 grey levels), then all values are summed into place
    with one bincount: about a quarter of the work of evaluating every streak on every pixel.
    """
    f32 = np.float32
    cx, cy, a, half, sig, amp = streaks
    count = cx.shape[0]
    r = RENDER_RADIUS
    sin, cos = np.sin(a), np.cos(a)
    dy = (np.arange(size) + 0.5)[None, None, :] - cy[..., None]  # count x m x size: rows to centre
    line_x = cx[..., None] + dy * (sin / cos)[..., None]  # where the centre line crosses each row
    first = np.floor(line_x)
    # t: horizontal offset of pixel centres from the line. Across the streak it is t cos(a) (the
    # Gaussian); along it, t sin(a) + dy / cos(a) (the taper), in units of the half-length.
    t = ((first + 0.5 - line_x)[..., None] + np.arange(-r, r + 1)).astype(f32)  # count x m x size x 2r+1
    along = t * (sin / half).astype(f32)[..., None, None]
    along += (dy / (cos * half)[..., None]).astype(f32)[..., None]
    np.multiply(along, along, out=along)
    np.subtract(f32(1.0), along, out=along)
    np.clip(along, f32(0.0), None, out=along)
    np.multiply(t, t, out=t)
    t *= (-(cos**2) / (2 * sig**2)).astype(f32)[..., None, None]
    np.exp(t, out=t)
    t *= along
    t *= amp.astype(f32)[..., None, None]
    cols = first.astype(np.int64)[..., None] + np.arange(-r, r + 1)
    # Columns outside the patch go to one spare bin past the end, dropped after summing.
    outside = (cols < 0) | (cols >= size)
    cols += (np.arange(count)[:, None, None, None] * size + np.arange(size)[None, None, :, None]) * size
    cols[outside] = count * size * size
    layer = np.bincount(cols.ravel(), weights=t.ravel(), minlength=count * size * size + 1)[:-1]
    return layer.reshape(count, size, size).astype(np.float32)


class StreakBank:
    """User streak maps (e.g. RainTrainL's rainstreak*.png): a random crop of one is added per patch."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise IptbenchError(f"--rain-streaks {folder}: not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            raise IptbenchError(f"--rain-streaks {folder}: no image files in it")
        self.files = files
        self.maps = [read_image(p).astype(np.float32) for p in files]

    def min_side(self) -> int:
        return min(min(m.shape[:2]) for m in self.maps)

    def layers(self, rng: np.random.Generator, count: int, size: int) -> np.ndarray:
        """`count` crops of size x size x 3 (float32)."""
        out = np.empty((count, size, size, 3), dtype=np.float32)
        picks = rng.integers(0, len(self.maps), size=count)
        for k, pick in enumerate(picks):
            streak = self.maps[pick]
            if min(streak.shape[:2]) < size:
                raise IptbenchError(f"rain streak map {self.files[pick]} is smaller than the {size} px patch")
            y = int(rng.integers(0, streak.shape[0] - size + 1))
            x = int(rng.integers(0, streak.shape[1] - size + 1))
            out[k] = streak[y : y + size, x : x + size]
        return out


def add_rain(
    clean: np.ndarray,
    rng: np.random.Generator,
    streaks: StreakBank | None = None,
    ranges: RainRanges = DEFAULT_RANGES,
) -> np.ndarray:
    """Add rain streaks (our synthesiser, or crops of user streak maps), clip to [0, 255], round to uint8."""
    batch, single = batched(clean)
    k, h, w = batch.shape[:3]
    if h != w:
        raise ValueError("rain synthesis works on square patches")
    if streaks is None:
        layer = synth_rain_layers(rng, k, h, ranges)[..., None]
    else:
        layer = streaks.layers(rng, k, h)
    out = to_uint8(np.add(layer, batch, dtype=np.float32))
    return out[0] if single else out
