"""state.json: the finished cells of an eval folder, with their identities and every per-image row.

The state file is the single source of truth of a result folder. It holds only finished cells, each with
all its rows, and it is replaced atomically (written under a temporary name, then renamed). summary.csv and
per_image.csv are derived from it and rewritten after it. A run killed at any moment, even with kill -9,
leaves either the previous state or the new one, never a half-written cell. A rerun then rebuilds the CSVs
from the state, so they equal an uninterrupted run's, timing columns aside.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iptbench.evaluation.outputs import BROKEN_COLUMNS
from iptbench.io import atomic_write_text

STATE_FILE = "state.json"
STATE_VERSION = 2

CellKey = tuple[str, str, str]


@dataclass
class ImageRow:
    model: str
    dataset: str
    task: str
    image: str
    psnr: float
    ssim: float
    lpips: float | None
    seconds: float
    psnr_replicated: float | None = None  # grey ground truth only: PSNR as IPT scores it (replicated, Y)

    def cell(self) -> CellKey:
        return (self.model, self.dataset, self.task)


@dataclass
class CellRecord:
    """A finished (model, dataset, task) cell: its identity, its rows and what the tables print about it."""

    model: str
    dataset: str
    task: str
    profile: str
    profile_description: str
    channel: str
    crop: int
    images: int
    spec: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    limit: int | None = None  # set when only the first N images were scored
    identity: dict[str, Any] = field(default_factory=dict)
    identity_digest: str = ""
    finished_at: str = ""  # UTC, ISO 8601
    source: str = ""  # checkpoint file, image folder or baseline name behind the label
    expected_images: int = 0  # images of the (dataset, task); more than `images` for a partial cell
    arch: str = ""  # "ipt" for the IPT architecture, "baseline", "images"
    settings: str = ""  # restorer settings that differ from the defaults, e.g. "official tiling, x8"
    restored_sha256: dict[str, str] = field(default_factory=dict)  # precomputed images: image -> sha256
    rows: list[ImageRow] = field(default_factory=list)

    def key(self) -> CellKey:
        return (self.model, self.dataset, self.task)


def _json_float(value: float | None) -> float | str | None:
    # JSON has no inf/nan; identical images give +inf PSNR. repr() round-trips every finite float exactly.
    if value is None or math.isfinite(value):
        return value
    return repr(float(value))


def _read_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _row_to_json(row: ImageRow) -> list[Any]:
    return [
        row.image,
        _json_float(row.psnr),
        _json_float(row.ssim),
        _json_float(row.lpips),
        row.seconds,
        _json_float(row.psnr_replicated),
    ]


def _cell_from_json(data: dict[str, Any]) -> CellRecord:
    raw_rows = data.pop("rows", [])
    known = set(CellRecord.__dataclass_fields__)
    cell = CellRecord(**{k: v for k, v in data.items() if k in known})
    cell.rows = [
        ImageRow(
            cell.model,
            cell.dataset,
            cell.task,
            r[0],
            float(r[1]),
            float(r[2]),
            _read_float(r[3]),
            float(r[4]),
            _read_float(r[5]) if len(r) > 5 else None,
        )
        for r in raw_rows
    ]
    return cell


@dataclass
class RunState:
    """What earlier runs in the same --out finished, plus the input and noise hashes they saw."""

    cells: dict[CellKey, CellRecord] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    noise: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> RunState:
        """The saved state; a state from before identities (version 1) keeps its cells without identity,
        so every one of them is redone, with a line saying why."""
        path = out / STATE_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = [_cell_from_json(dict(c)) for c in data.get("cells", [])]
        return cls({c.key(): c for c in cells}, dict(data.get("inputs", {})), dict(data.get("noise", {})))

    def save(self, out: Path) -> None:
        cells = []
        for cell in self.cells.values():
            record = asdict(cell)
            record["rows"] = [_row_to_json(r) for r in cell.rows]
            cells.append(record)
        data = {
            "version": STATE_VERSION,
            "cells": cells,
            "inputs": dict(sorted(self.inputs.items())),
            "noise": dict(sorted(self.noise.items())),
        }
        atomic_write_text(out / STATE_FILE, json.dumps(data, indent=1) + "\n")

    def rows(self) -> list[ImageRow]:
        return [r for cell in self.cells.values() for r in cell.rows]

    def order(self, keys: list[CellKey]) -> None:
        """Put the cells in `keys` order (the plan's), the others after them in their stored order, so the
        CSVs of a resumed run list cells exactly as an uninterrupted one does."""
        rank = {k: i for i, k in enumerate(keys)}
        stored = list(self.cells)
        ordered = sorted(stored, key=lambda k: (0, rank[k]) if k in rank else (1, stored.index(k)))
        self.cells = {k: self.cells[k] for k in ordered}

    def errors(self) -> list[dict[str, str]]:
        """Broken images of every finished cell, once each (all models of a pair share them)."""
        seen: dict[tuple[str, ...], dict[str, str]] = {}
        for cell in self.cells.values():
            for e in cell.errors:
                seen.setdefault(tuple(e.get(c, "") for c in BROKEN_COLUMNS[:3]), e)
        return list(seen.values())
