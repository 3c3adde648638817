"""Files an eval run writes into --out: CSVs, manifest.json, restored PNGs (the state is in state.py).

Every file is rewritten whole (write to a temporary name, then rename), so an interrupted run never leaves a
half-written file behind; the CSVs are derived from state.json, which a rerun trusts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from iptbench.io import atomic_write_text

if TYPE_CHECKING:
    from iptbench.evaluation.state import CellRecord, ImageRow

PER_IMAGE_COLUMNS = (
    "model",
    "dataset",
    "task",
    "image",
    "psnr",
    "ssim",
    "lpips",
    "seconds",
    "psnr_replicated",
)
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
    "expected_images",
    "psnr_replicated",
    "arch",
    "settings",
    "identity",
    "identity_json",
)
BROKEN_COLUMNS = ("dataset", "task", "image", "path", "reason")


def _fmt(value: float | None) -> str:
    # repr() is the shortest string that reads back to the same float: full precision, stable bytes.
    if value is None:
        return ""
    return repr(float(value))


def remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left behind (`.NAME.tmpPID`); the real files never depend on them."""
    if out.is_dir():
        for path in out.glob(".*.tmp*"):
            if path.is_file():
                path.unlink(missing_ok=True)


def _csv_text(columns: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(rows)
    return buffer.getvalue()


def write_per_image(path: Path, cells: list[CellRecord]) -> None:
    rows = (
        [
            r.model,
            r.dataset,
            r.task,
            r.image,
            _fmt(r.psnr),
            _fmt(r.ssim),
            _fmt(r.lpips),
            f"{r.seconds:.6f}",
            _fmt(r.psnr_replicated),
        ]
        for cell in cells
        for r in cell.rows
    )
    atomic_write_text(path, _csv_text(PER_IMAGE_COLUMNS, rows))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _replicated_mean(rows: list[ImageRow]) -> str:
    """Mean PSNR with grey images scored as IPT does; empty when no image of the cell is grey."""
    if all(r.psnr_replicated is None for r in rows):
        return ""
    values = [r.psnr if r.psnr_replicated is None else r.psnr_replicated for r in rows]
    return _fmt(_mean(values))


def summary_rows(cells: list[CellRecord]) -> list[list[str]]:
    out: list[list[str]] = []
    for cell in cells:
        images = cell.rows
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
                str(cell.expected_images or len(images)),
                _replicated_mean(images),
                cell.arch,
                cell.settings,
                cell.identity_digest[:16],
                json.dumps(cell.identity, sort_keys=True, separators=(",", ":")),
            ]
        )
    return out


def write_summary(path: Path, cells: list[CellRecord]) -> None:
    atomic_write_text(path, _csv_text(SUMMARY_COLUMNS, summary_rows(cells)))


def write_broken(path: Path, errors: list[dict[str, str]]) -> None:
    seen: dict[tuple[str, ...], dict[str, str]] = {}
    for e in errors:
        seen.setdefault(tuple(e.get(c, "") for c in BROKEN_COLUMNS), e)
    atomic_write_text(path, _csv_text(BROKEN_COLUMNS, (list(k) for k in seen)))


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
