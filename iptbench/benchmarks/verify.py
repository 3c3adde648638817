"""Checking a benchmark folder: image counts, every file decodes, LR/HR and rainy/clean sizes, sha256."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    Progress,
)

from iptbench.benchmarks.layouts import Layout, find_lr_file
from iptbench.benchmarks.registry import (
    Benchmark,
    fetch_command,
    get_benchmark,
    locate,
    manual_hint,
    resolve_data_root,
)
from iptbench.errors import ImageReadError, IptbenchError
from iptbench.images import read_image
from iptbench.io import sha256_file

SUMS_FILE = "SHA256SUMS"
_stderr = Console(stderr=True)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not be checked (said why in detail)
    detail: str
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    name: str
    path: Path
    layout: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [p for c in self.checks for p in c.problems]


def read_sha256sums(path: Path) -> dict[Path, str]:
    """`sha256sum` output (`<hex>  <relative path>`, optionally `*` for binary) -> absolute path -> hex."""
    sums: dict[Path, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if match:
            sums[Path(os.path.normpath(path.parent / match.group(2)))] = match.group(1).lower()
    return sums


def _size_summary(sizes: list[tuple[int, int]]) -> str:
    counts = Counter(sizes).most_common()
    shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in counts[:5])
    return shown + (f", {len(counts) - 5} more sizes" if len(counts) > 5 else "")


def _sha_check(root: Path, folder: Path, bench: Benchmark) -> Check:
    sums: dict[Path, str] = {}
    used = []
    for candidate in (root / SUMS_FILE, folder / SUMS_FILE):
        if candidate.is_file():
            found = {p: h for p, h in read_sha256sums(candidate).items() if p.is_relative_to(folder)}
            if found:
                sums.update(found)
                used.append(str(candidate))
    if not sums:
        archive_note = "known" if bench.fetch is not None and bench.fetch.sha256 else "unknown"
        return Check(
            "sha256",
            None,
            f"not checked: no {SUMS_FILE} listing these files in {root} or {folder}, and iptbench knows no"
            f" per-file hashes for {bench.name} (archive hash: {archive_note})",
        )
    problems = []
    for path, expected in sorted(sums.items()):
        if not path.is_file():
            problems.append(f"{path.relative_to(folder)} is listed in {SUMS_FILE} but missing")
        elif sha256_file(path) != expected:
            problems.append(f"{path.relative_to(folder)} does not match its sha256 in {SUMS_FILE}")
    detail = f"{len(sums) - len(problems)}/{len(sums)} files match {', '.join(used)}"
    return Check("sha256", not problems, detail, problems)


def verify_dataset(name: str, root: Path | str | None = None, *, show_progress: bool = True) -> VerifyReport:
    """Check a benchmark folder: counts, every image decodes, LR/HR and rainy/clean sizes agree, sha256."""
    bench = get_benchmark(name)
    root = resolve_data_root(root)
    status = locate(bench.name, root)
    if status.path is None:
        raise IptbenchError(
            f"{bench.name} not found under {root}; run `{fetch_command(bench.name)}`"
            f" or {manual_hint(bench.name, root)}"
        )
    folder, layout = status.path, status.layout
    unit = "pairs" if layout is not None and layout.is_paired else "images"
    checks = [
        Check("count", not status.problems, f"{status.found} / {bench.count} {unit}", list(status.problems))
    ]
    report = VerifyReport(bench.name, folder, status.layout_name or "unrecognised", checks)
    if layout is None:
        return report

    lr_files: dict[int, dict[Path, Path | None]] = {}
    for scale in layout.lr_scales():
        lr_dir = layout.lr_dir(scale)
        lr_files[scale] = {t: find_lr_file(lr_dir, t.stem, scale) if lr_dir else None for t in layout.targets}
    files = [f for p in layout.pairs for f in (p.rainy, p.clean)] + list(layout.targets)
    files += [f for by_target in lr_files.values() for f in by_target.values() if f is not None]
    sizes, readable = _read_sizes(files, bench.name, show_progress)
    checks.append(readable)
    checks.append(_size_check(layout, lr_files, sizes, bench))
    checks.append(_sha_check(root, folder, bench))
    return report


def _read_sizes(
    files: list[Path], name: str, show_progress: bool
) -> tuple[dict[Path, tuple[int, int]], Check]:
    """(width, height) of every file that decodes, and the "readable" check naming those that do not."""
    sizes: dict[Path, tuple[int, int]] = {}
    unreadable = []
    with Progress(console=_stderr, disable=not show_progress, transient=True) as bar:
        for path in bar.track(files, description=f"reading {name}"):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                unreadable.append(str(exc))
                continue
            sizes[path] = (image.shape[1], image.shape[0])
    return sizes, Check("readable", not unreadable, f"{len(sizes)}/{len(files)} files decode", unreadable)


def _size_check(
    layout: Layout,
    lr_files: dict[int, dict[Path, Path | None]],
    sizes: dict[Path, tuple[int, int]],
    bench: Benchmark,
) -> Check:
    """LR files match their mod-cropped HR targets, rainy images their clean ones; the sizes summarised."""
    size_problems = []
    for scale, by_target in lr_files.items():
        for target, lr in by_target.items():
            if lr is None:
                size_problems.append(f"LR_bicubic/X{scale} has no file for {target.name}")
            elif target in sizes and lr in sizes:
                (w, h), (lw, lh) = sizes[target], sizes[lr]
                if (lw * scale, lh * scale) != (w - w % scale, h - h % scale):
                    size_problems.append(
                        f"{lr.name} is {lw}x{lh} but {target.name} ({w}x{h}) mod-cropped to x{scale} is"
                        f" {w - w % scale}x{h - h % scale}"
                    )
    for pair in layout.pairs:
        if pair.rainy in sizes and pair.clean in sizes and sizes[pair.rainy] != sizes[pair.clean]:
            (rw, rh), (cw, ch) = sizes[pair.rainy], sizes[pair.clean]
            size_problems.append(f"{pair.rainy.name} is {rw}x{rh} but {pair.clean.name} is {cw}x{ch}")
    target_sizes = [sizes[t] for t in (layout.targets or [p.clean for p in layout.pairs]) if t in sizes]
    detail = _size_summary(target_sizes)
    for variant_size, label in bench.size_variants:
        if target_sizes and all(s == variant_size for s in target_sizes):
            detail += f"; this is the {label}"
    if lr_files:
        detail += "; LR x" + "/".join(str(s) for s in lr_files) + " consistent" if not size_problems else ""
    return Check("sizes", not size_problems, detail, size_problems)
