"""Training curves of one or more runs as one PNG (`iptbench report --curves RUN [RUN...] -o curves.png`).

One panel per task, in the official task order: the training loss of the steps that trained that task
(log.csv) above the mean validation PSNR of that task over its --val sets (val.csv), step on the x axis,
one colour per run. Drawn with Pillow (no plotting library needed), so the same CSVs always give the same
bytes.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from iptbench.errors import IptbenchError
from iptbench.tasks import task_names

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
PANEL_W, PLOT_H, MARGIN, TITLE_H, COLUMNS = 440, 170, 54, 26, 3
Series = list[tuple[float, float]]


@dataclass
class RunCurves:
    label: str
    loss: dict[str, Series] = field(default_factory=dict)  # task -> (step, loss)
    val: dict[str, Series] = field(default_factory=dict)  # task -> (step, mean PSNR over its sets)


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IptbenchError(f"cannot read {path}: {exc}") from None


def _number(row: dict[str, str], key: str, path: Path) -> float:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        raise IptbenchError(f"{path}: row {row} has no number in column {key!r}") from None


def load_run(run: Path, label: str) -> RunCurves:
    """A run folder's log.csv (required) and val.csv (when it validated)."""
    log = run / "log.csv"
    if not log.is_file():
        raise IptbenchError(f"{run} has no log.csv: give run folders written by `iptbench train`")
    curves = RunCurves(label)
    for row in _rows(log):
        curves.loss.setdefault(row.get("task", ""), []).append(
            (_number(row, "step", log), _number(row, "loss", log))
        )
    val = run / "val.csv"
    by_step: dict[tuple[str, float], list[float]] = {}
    for row in _rows(val) if val.is_file() else []:
        by_step.setdefault((row.get("task", ""), _number(row, "step", val)), []).append(
            _number(row, "psnr", val)
        )
    for (task, step), values in sorted(by_step.items()):
        curves.val.setdefault(task, []).append((step, math.fsum(values) / len(values)))
    return curves


def _labels(runs: Sequence[Path]) -> list[str]:
    names = [Path(r).name or str(r) for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names, strict=True)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k apart) covering lo..hi."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.2e}"


class _Plot:
    """One axes box at (x0, y0) of the image, mapping data to pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], font: ImageFont.ImageFont):
        self.draw, self.box, self.font = draw, box, font

    def frame(self, xs: list[float], ys: list[float], ylabel: str) -> None:
        x0, y0, x1, y1 = self.box
        self.xt, self.yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
        self.xr = (self.xt[0], self.xt[-1]) if self.xt else (0.0, 1.0)
        self.yr = (self.yt[0], self.yt[-1]) if self.yt else (0.0, 1.0)
        self.draw.rectangle(self.box, outline="#444444")
        for t in self.xt:
            x = self.px(t, self.yr[0])[0]
            self.draw.line([(x, y0), (x, y1)], fill="#eeeeee")
            self.draw.text((x, y1 + 3), _fmt(t), fill="#333333", font=self.font, anchor="mt")
        for t in self.yt:
            y = self.px(self.xr[0], t)[1]
            self.draw.line([(x0, y), (x1, y)], fill="#eeeeee")
            self.draw.text((x0 - 4, y), _fmt(t), fill="#333333", font=self.font, anchor="rm")
        self.draw.rectangle(self.box, outline="#444444")
        self.draw.text((x0 + 4, y0 + 3), ylabel, fill="#333333", font=self.font)

    def px(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        fx = (x - self.xr[0]) / ((self.xr[1] - self.xr[0]) or 1.0)
        fy = (y - self.yr[0]) / ((self.yr[1] - self.yr[0]) or 1.0)
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    def series(self, points: Series, colour: str, marker: bool) -> None:
        pts = [self.px(x, y) for x, y in points]
        if len(pts) > 1:
            self.draw.line(pts, fill=colour, width=2)
        for x, y in pts if marker or len(pts) == 1 else []:
            self.draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)

    def empty(self, text: str) -> None:
        x0, y0, x1, y1 = self.box
        self.draw.rectangle(self.box, outline="#bbbbbb")
        self.draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, fill="#888888", font=self.font, anchor="mm")


def _panel(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], task: str, runs: list[RunCurves], font
) -> None:
    ox, oy = origin
    draw.text((ox + PANEL_W / 2, oy + 6), task, fill="#000000", font=font, anchor="mt")
    kinds = (("loss", "training loss (L1 0-255 + contrastive)", False), ("val", "validation PSNR (dB)", True))
    # one step axis for both plots of the panel, so a loss and a PSNR at the same step line up
    steps = [x for r in runs for attr in ("loss", "val") for x, _ in getattr(r, attr).get(task, [])]
    for k, (attr, label, marker) in enumerate(kinds):
        top = oy + TITLE_H + k * (PLOT_H + 28)
        plot = _Plot(draw, (ox + MARGIN, top, ox + PANEL_W - 14, top + PLOT_H), font)
        data = [(i, getattr(r, attr).get(task, [])) for i, r in enumerate(runs)]
        xs = [x for _, s in data for x, _ in s]
        if not xs:
            plot.empty("no validation (train with --val)" if attr == "val" else "no log rows")
            continue
        plot.frame(steps, [y for _, s in data for _, y in s if math.isfinite(y)] or [0.0], label)
        if k == 1:
            draw.text((ox + PANEL_W - 14, top + PLOT_H + 16), "step", fill="#333333", font=font, anchor="rt")
        for i, points in data:
            plot.series([(x, y) for x, y in points if math.isfinite(y)], PALETTE[i % len(PALETTE)], marker)


def render_curves(runs: Sequence[Path], output: Path) -> Path:
    """Draw the curves of `runs` into the PNG `output` (written atomically)."""
    if not runs:
        raise IptbenchError("give at least one run folder to --curves")
    curves = [load_run(Path(r), label) for r, label in zip(runs, _labels(runs), strict=True)]
    seen = {t for c in curves for t in (*c.loss, *c.val)}
    known = task_names()
    tasks = [t for t in known if t in seen] + sorted(seen - set(known))
    if not tasks:
        raise IptbenchError(f"no log rows in {', '.join(map(str, runs))}: nothing to plot yet")
    font = ImageFont.load_default(size=12)
    cols = min(COLUMNS, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    panel_h = TITLE_H + 2 * (PLOT_H + 28)
    legend_h = 22 + 18 * len(curves)
    image = Image.new("RGB", (cols * PANEL_W, legend_h + rows * panel_h), "white")
    draw = ImageDraw.Draw(image)
    for i, c in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        draw.rectangle((10, 10 + 18 * i, 28, 22 + 18 * i), fill=colour)
        draw.text((34, 10 + 18 * i), c.label, fill="#000000", font=font)
    for n, task in enumerate(tasks):
        _panel(draw, ((n % cols) * PANEL_W, legend_h + (n // cols) * panel_h), task, curves, font)
    return _save(image, Path(output))


def _save(image: Image.Image, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG")
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output
