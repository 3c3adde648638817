"""Files an eval run writes into --out: CSVs, the resume state, manifest.json, restored PNGs.

Every file is rewritten whole (write to a temporary name, then rename), so an interrupted run never leaves a
half-written CSV behind, and a rerun can trust what it finds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

PER_IMAGE_COLUMNS = ("model", "dataset", "task", "image", "psnr", "ssim", "lpips", "seconds")
SUMMARY_COLUMNS = (
    "model",
    "dataset",
    "task",
    "profile",
    "images",
    "psnr",
    "ssim",
    "lpips",
    "seconds",
    "channel",
    "crop",
    "profile_description",
)
BROKEN_COLUMNS = ("dataset", "task", "image", "path", "reason")
STATE_FILE = "state.json"


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

    def cell(self) -> tuple[str, str, str]:
        return (self.model, self.dataset, self.task)


@dataclass
class CellRecord:
    """A finished (model, dataset, task) cell: what a rerun skips."""

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
    limit: int | None = None  # set when only the first N images were scored (never resumed by a full run)

    def key(self) -> tuple[str, str, str]:
        return (self.model, self.dataset, self.task)


def _fmt(value: float | None) -> str:
    # repr() is the shortest string that reads back to the same float: full precision, stable bytes.
    if value is None:
        return ""
    return repr(float(value))


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


def _csv_text(columns: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(rows)
    return buffer.getvalue()


def write_per_image(path: Path, rows: list[ImageRow]) -> None:
    atomic_write_text(
        path,
        _csv_text(
            PER_IMAGE_COLUMNS,
            (
                [
                    r.model,
                    r.dataset,
                    r.task,
                    r.image,
                    _fmt(r.psnr),
                    _fmt(r.ssim),
                    _fmt(r.lpips),
                    f"{r.seconds:.6f}",
                ]
                for r in rows
            ),
        ),
    )


def read_per_image(path: Path) -> list[ImageRow]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            ImageRow(
                r["model"],
                r["dataset"],
                r["task"],
                r["image"],
                float(r["psnr"]),
                float(r["ssim"]),
                float(r["lpips"]) if r["lpips"] else None,
                float(r["seconds"]),
            )
            for r in csv.DictReader(handle)
        ]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def summary_rows(cells: list[CellRecord], rows: list[ImageRow]) -> list[list[str]]:
    by_cell: dict[tuple[str, str, str], list[ImageRow]] = {}
    for row in rows:
        by_cell.setdefault(row.cell(), []).append(row)
    out: list[list[str]] = []
    for cell in cells:
        images = by_cell.get(cell.key(), [])
        if not images:
            continue  # every image broken: nothing to average, the errors say why
        lp = [r.lpips for r in images if r.lpips is not None]
        out.append(
            [
                cell.model,
                cell.dataset,
                cell.task,
                cell.profile,
                str(len(images)),
                _fmt(_mean([r.psnr for r in images])),
                _fmt(_mean([r.ssim for r in images])),
                _fmt(_mean(lp)) if len(lp) == len(images) else "",
                f"{_mean([r.seconds for r in images]):.6f}",
                cell.channel,
                str(cell.crop),
                cell.profile_description,
            ]
        )
    return out


def write_summary(path: Path, cells: list[CellRecord], rows: list[ImageRow]) -> None:
    atomic_write_text(path, _csv_text(SUMMARY_COLUMNS, summary_rows(cells, rows)))


def write_broken(path: Path, errors: list[dict[str, str]]) -> None:
    seen: dict[tuple[str, ...], dict[str, str]] = {}
    for e in errors:
        seen.setdefault(tuple(e.get(c, "") for c in BROKEN_COLUMNS), e)
    atomic_write_text(path, _csv_text(BROKEN_COLUMNS, (list(k) for k in seen)))


@dataclass
class RunState:
    """What a previous run in the same --out finished, plus the input hashes it saw."""

    cells: dict[tuple[str, str, str], CellRecord] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    noise: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> RunState:
        path = out / STATE_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = [CellRecord(**c) for c in data.get("cells", [])]
        return cls({c.key(): c for c in cells}, dict(data.get("inputs", {})), dict(data.get("noise", {})))

    def save(self, out: Path) -> None:
        data = {
            "cells": [asdict(c) for c in self.cells.values()],
            "inputs": dict(sorted(self.inputs.items())),
            "noise": dict(sorted(self.noise.items())),
        }
        atomic_write_text(out / STATE_FILE, json.dumps(data, indent=1) + "\n")

    def errors(self) -> list[dict[str, str]]:
        """Broken images of every finished cell, once each (all models of a pair share them)."""
        seen: dict[tuple[str, ...], dict[str, str]] = {}
        for cell in self.cells.values():
            for e in cell.errors:
                seen.setdefault(tuple(e.get(c, "") for c in BROKEN_COLUMNS[:3]), e)
        return list(seen.values())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_revision() -> str | None:
    """The commit of the iptbench source tree, when it is a git checkout (not for an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    revision = result.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
    )
    return revision + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def write_manifest(out: Path, payload: dict[str, object]) -> None:
    from iptbench._version import __version__

    manifest = {
        "iptbench_version": __version__,
        "git_revision": git_revision(),
        "command_line": list(sys.argv),
        **payload,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, sort_keys=False) + "\n")


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """A file-system-safe version of a model name such as 'ipt:IPT_sr2' -> 'ipt_IPT_sr2'."""
    return _UNSAFE.sub("_", text).strip("_") or "model"


def restored_image_path(out: Path, model: str, dataset: str, task: str, image: str) -> Path:
    return out / "images" / safe_name(model) / dataset / task / f"{safe_name(image)}.png"
