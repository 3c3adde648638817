"""A seeded rain-streak synthesiser, tuned by eye and by statistics to Rain100L's light rain.

Each patch gets one rain "event": a dominant fall angle near vertical, a streak density, a typical streak
length, width and brightness, all drawn from the generator. Every streak is then drawn as a motion-blurred
drop: a segment whose cross-section is a Gaussian (the width) and whose intensity tapers to zero at both
ends (the drop's path during the exposure), with its own small jitter in angle, length and brightness.
Streaks are rendered analytically on the pixel grid, vectorised over all streaks of all patches, so there is
no per-streak Python loop. Streak centres are drawn over the patch plus a margin of half the longest streak,
so streaks enter and leave through the borders as they do in a crop of a larger rainy image.

Reference statistics (Rain100L test, rainy - clean, averaged over channels): mean 2-10, 5-15 % of pixels
brighter by > 10, 99th percentile 33-100, peaks up to ~200; streaks 1-2 px wide, 20-60 px long in 481x321
images, within ~20 degrees of vertical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    version: int = 1


DEFAULT_RANGES = RainRanges()


def synth_rain_layers(
    rng: np.random.Generator, count: int, size: int, ranges: RainRanges = DEFAULT_RANGES
) -> np.ndarray:
    """`count` additive grey streak layers of size x size (float32, 0-255 scale, >= 0)."""
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

    # Most centres in the margin miss the patch; keep only streaks whose bounding box meets it, packed to
    # the front, so the dense rendering below costs what the visible streaks cost.
    reach_x = np.abs(np.sin(a)) * half + 3 * sig
    reach_y = np.abs(np.cos(a)) * half + 3 * sig
    hits = used & (cx + reach_x > 0) & (cx - reach_x < size) & (cy + reach_y > 0) & (cy - reach_y < size)
    order = np.argsort(~hits, axis=1, kind="stable")
    m = max(int(hits.sum(axis=1).max()), 1)
    take = order[:, :m]
    cx, cy, a, half, sig = (np.take_along_axis(v, take, axis=1) for v in (cx, cy, a, half, sig))
    amp = np.take_along_axis(amp * hits, take, axis=1)

    f32 = np.float32
    grid = np.arange(size, dtype=f32) + f32(0.5)
    dx = grid[None, None, None, :] - cx.astype(f32)[:, :, None, None]
    dy = grid[None, None, :, None] - cy.astype(f32)[:, :, None, None]
    sin, cos = np.sin(a).astype(f32)[:, :, None, None], np.cos(a).astype(f32)[:, :, None, None]
    # The same float32 operations in the same order as the plain expressions
    #   taper = clip(1 - along^2, 0), profile = exp(-perp^2 / (2 sig^2)) * taper
    # but in place: two full-size (count, m, size, size) temporaries instead of seven.
    taper = dx * sin + dy * cos
    taper /= half.astype(f32)[:, :, None, None]  # along the streak, in half-lengths
    np.multiply(taper, taper, out=taper)
    np.subtract(f32(1.0), taper, out=taper)
    np.clip(taper, f32(0.0), None, out=taper)
    profile = dx * cos - dy * sin  # across the streak
    np.multiply(profile, profile, out=profile)
    np.negative(profile, out=profile)
    profile /= f32(2.0) * sig.astype(f32)[:, :, None, None] ** 2
    np.exp(profile, out=profile)
    profile *= taper
    layer = np.einsum("km,kmyx->kyx", amp.astype(f32), profile)
    return layer.astype(np.float32)


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
