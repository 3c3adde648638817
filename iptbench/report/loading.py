"""Reading eval folders for `iptbench report`, and the rule for merging several of them.

A cell (row label, dataset, task, profile) found in two folders is kept once. When both folders recorded
the cell's identity and the identities differ, the two numbers describe different computations (other
weights, tiling, inputs, scoring code...): the merge is refused, naming the differing fields, unless
`prefer_later` keeps the later folder's cell. Summaries written before identities existed cannot be
compared; the later one wins with a warning, as before.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iptbench.errors import IptbenchError
from iptbench.evaluation.identity import differing_fields
from iptbench.tasks import get_task


@dataclass(frozen=True)
class Measured:
    model: str
    dataset: str
    task: str
    profile: str
    images: int
    psnr: float
    ssim: float
    channel: str
    crop: int
    profile_description: str
    expected_images: int = 0
    psnr_replicated: float | None = None  # grey images scored as IPT does (replicated to RGB)
    arch: str = ""  # "ipt", "baseline", "images"; "" in summaries written before identities
    settings: str = ""
    identity: str = ""
    identity_fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    folder: str = ""

    @property
    def is_ipt(self) -> bool:
        # Old summaries carry no architecture: their IPT rows were recognisable only by the label.
        return self.arch == "ipt" if self.arch else self.model.lower().startswith("ipt")


def _float(text: str | None) -> float:
    return float(text) if text not in ("", None) else math.nan


def _measured(raw: dict[str, str], folder: Path) -> Measured:
    rep = raw.get("psnr_replicated") or ""
    fields = json.loads(raw["identity_json"]) if raw.get("identity_json") else {}
    return Measured(
        raw["model"],
        raw["dataset"],
        get_task(raw["task"]).name,
        raw["profile"],
        int(raw["images"]),
        _float(raw["psnr"]),
        _float(raw["ssim"]),
        raw.get("channel", ""),
        int(raw.get("crop") or 0),
        raw.get("profile_description", ""),
        int(raw.get("expected_images") or raw["images"]),
        float(rep) if rep else None,
        raw.get("arch", ""),
        raw.get("settings", ""),
        raw.get("identity", ""),
        fields,
        str(folder),
    )


def _read(folder: Path) -> list[Measured]:
    path = folder / "summary.csv" if folder.is_dir() else folder
    if not path.is_file():
        raise IptbenchError(f"no summary.csv in {folder}: pass folders written by `iptbench eval --out`")
    with path.open(newline="", encoding="utf-8") as handle:
        return [_measured(raw, folder) for raw in csv.DictReader(handle)]


def _merge(old: Measured, new: Measured, prefer_later: bool, warnings: list[str]) -> None:
    name = f"{new.model}/{new.dataset}/{new.task} ({new.profile})"
    if not (old.identity and new.identity):
        warnings.append(
            f"{name} appears twice; kept the one in {new.folder} (no identity recorded to compare)"
        )
        return
    if old.identity == new.identity:
        return  # the same computation measured twice: either copy will do
    fields = ", ".join(differing_fields(old.identity_fields, new.identity_fields)) or "identity"
    if not prefer_later:
        raise IptbenchError(
            f"{name} is in {old.folder} and {new.folder} with different identities ({fields}): "
            "pass --prefer-later to keep the later folder's, or re-run one under another row label"
        )
    warnings.append(f"{name}: identities differ ({fields}); kept the one in {new.folder} (--prefer-later)")


def load_results(folders: list[Path], prefer_later: bool = False) -> tuple[list[Measured], list[str]]:
    """Rows of every folder's summary.csv; a cell in several folders is merged by the rule above."""
    cells: dict[tuple[str, str, str, str], Measured] = {}
    warnings: list[str] = []
    for folder in folders:
        for row in _read(Path(folder)):
            key = (row.model, row.dataset, row.task, row.profile)
            if key in cells:
                _merge(cells[key], row, prefer_later, warnings)
            cells[key] = row
    return list(cells.values()), warnings
