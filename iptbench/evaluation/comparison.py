"""comparison.png: zoomed crops of ground truth / input / every model, one row per (dataset, task).

The crop is the most textured square of the ground truth (largest gradient energy on a coarse grid), so the
differences between models are visible; it is chosen from the image alone, hence the same on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TILE = 160  # pixels of one zoomed crop in the figure
LABEL_H = 14
TITLE_H = 16
PAD = 4


@dataclass
class _Row:
    title: str
    tiles: list[tuple[str, np.ndarray]] = field(default_factory=list)


def pick_region(target: np.ndarray, size: int, step: int) -> tuple[int, int]:
    """Top-left (y, x), multiples of `step`, of the size x size window with the most gradient energy."""
    h, w = target.shape[:2]
    gray = target.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, best_yx = -1.0, (0, 0)
    stride = max(step, (size // 4) // step * step)
    for y in range(0, h - size + 1, stride):
        for x in range(0, w - size + 1, stride):
            total = (
                integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            )
            if total > best:
                best, best_yx = total, (y, x)
    return best_yx


def _zoom(crop: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(crop).resize((TILE, TILE), Image.Resampling.NEAREST))


class ComparisonCollector:
    """Keeps one crop set per (dataset, task) for the first image scored, up to `max_rows` rows."""

    def __init__(self, max_rows: int = 8, crop: int = 48) -> None:
        self.max_rows = max_rows
        self.crop = crop
        self.rows: list[_Row] = []
        self._open: dict[tuple[str, str], tuple[_Row, tuple[int, int, int]]] = {}

    def wants(self, dataset: str, task: str) -> bool:
        return (dataset, task) not in self._open and len(self.rows) < self.max_rows

    def start(
        self,
        dataset: str,
        task: str,
        image: str,
        target: np.ndarray,
        shown_input: np.ndarray,
        scale: int,
        input_psnr: float | None,
    ) -> None:
        h, w = target.shape[:2]
        size = max(scale, min(self.crop, h, w) // scale * scale)
        y, x = pick_region(target, size, scale)
        row = _Row(f"{dataset} | {task} | {image}")
        row.tiles.append(("GT", _zoom(target[y : y + size, x : x + size])))
        s = size // scale
        lr = shown_input[y // scale : y // scale + s, x // scale : x // scale + s]
        label = "input" if input_psnr is None else f"input {input_psnr:.2f} dB"
        row.tiles.append((label, _zoom(lr)))
        self.rows.append(row)
        self._open[(dataset, task)] = (row, (y, x, size))

    def add(self, dataset: str, task: str, model: str, restored: np.ndarray, psnr: float) -> None:
        if (dataset, task) not in self._open:
            return
        row, (y, x, size) = self._open[(dataset, task)]
        if any(label.startswith(f"{model} ") for label, _ in row.tiles):
            return
        row.tiles.append((f"{model} {psnr:.2f} dB", _zoom(restored[y : y + size, x : x + size])))

    def render(self, path: Path) -> bool:
        if not self.rows:
            return False
        columns = max(len(r.tiles) for r in self.rows)
        width = PAD + columns * (TILE + PAD)
        row_h = TITLE_H + TILE + LABEL_H + PAD
        canvas = Image.new("RGB", (width, PAD + len(self.rows) * row_h), "white")
        draw = ImageDraw.Draw(canvas)
        for i, row in enumerate(self.rows):
            top = PAD + i * row_h
            draw.text((PAD, top + 2), row.title, fill="black")
            for j, (label, tile) in enumerate(row.tiles):
                left = PAD + j * (TILE + PAD)
                canvas.paste(Image.fromarray(tile), (left, top + TITLE_H))
                draw.text((left + 2, top + TITLE_H + TILE + 1), label[:30], fill="black")
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path, format="PNG")
        return True
