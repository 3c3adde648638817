"""Published benchmark numbers (package data `published.csv`), each with its source and protocol.

Only rows traced to a primary source (the paper or repository named in `source` and `table`) have
`confirmed=True`; the few rows that could not be traced are kept with `confirmed=False` so tables can flag
them instead of silently mixing them in. `channel`/`crop` say how the number was scored, which matters
most for IPT: its code scores every task on Y, the denoising literature on RGB.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

from iptbench.tasks import get_task

COLUMNS = (
    "method",
    "task",
    "dataset",
    "psnr",
    "ssim",
    "channel",
    "crop",
    "protocol",
    "source",
    "table",
    "confirmed",
    "note",
)


@dataclass(frozen=True)
class PublishedRow:
    method: str
    task: str
    dataset: str
    psnr: float
    ssim: float | None
    channel: str  # "y" or "rgb"
    crop: str  # "scale" or a pixel count
    protocol: str
    source: str
    table: str
    confirmed: bool
    note: str
    ssim_text: str = ""  # as printed (some papers give 3 decimals)

    def crop_pixels(self) -> int:
        return get_task(self.task).scale if self.crop == "scale" else int(self.crop)

    def is_ipt(self) -> bool:
        return self.method.split(" ")[0].upper() == "IPT"


def _parse(raw: dict[str, str]) -> PublishedRow:
    return PublishedRow(
        method=raw["method"],
        task=get_task(raw["task"]).name,
        dataset=raw["dataset"],
        psnr=float(raw["psnr"]),
        ssim=float(raw["ssim"]) if raw["ssim"] else None,
        channel=raw["channel"],
        crop=raw["crop"],
        protocol=raw["protocol"],
        source=raw["source"],
        table=raw["table"],
        confirmed=raw["confirmed"].strip().lower() == "true",
        note=raw["note"],
        ssim_text=raw["ssim"],
    )


@functools.cache
def published_rows() -> tuple[PublishedRow, ...]:
    """All rows of the packaged table, in file order (methods grouped as the papers list them)."""
    text = resources.files("iptbench.report").joinpath("published.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    return tuple(_parse(raw) for raw in reader)


def published_for(task: str, datasets: list[str] | None = None) -> list[PublishedRow]:
    rows = [r for r in published_rows() if r.task == task]
    if datasets is not None:
        rows = [r for r in rows if r.dataset in datasets]
    return rows
