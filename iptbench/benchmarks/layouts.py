"""How benchmark folders are laid out on disk, and how to read one without knowing in advance.

Pure file-system logic (no image decoding): finding a dataset folder under a data root, recognising its
layout, pairing rainy/clean files, and finding `LR_bicubic` files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iptbench.images import is_image_file, list_images

# Folders a data root may wrap datasets in (the EDSR/IPT archives unpack to `benchmark/<Set>/...`).
CONTAINER_DIRS = ("benchmark", "benchmarks")

# (rainy folder, clean folder) names, tried in order; compared case-insensitively.
PAIR_DIRS: tuple[tuple[str, str], ...] = (
    ("rainy", "norain"),
    ("rain", "norain"),
    ("input", "target"),
    ("input", "gt"),
    ("lq", "gt"),
)

# Prefixes that name the role of a file in a rain pair (`rain-001.png` / `norain-001.png`), stripped to pair.
_PAIR_PREFIX = re.compile(r"^(?:no[-_]?rain|rainy|rain|clean|input|target|gt|lq)[-_]?", re.IGNORECASE)


def child_dir(folder: Path, name: str) -> Path | None:
    """The sub-folder of `folder` called `name`, compared case-insensitively (`hr`, `HR`, `Hr`)."""
    if not folder.is_dir():
        return None
    wanted = name.lower()
    matches = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.lower() == wanted)
    return matches[0] if matches else None


def find_dataset_dir(root: Path, names: Sequence[str]) -> Path | None:
    """The folder for a dataset under `root` (or `root/benchmark`), matching `names` case-insensitively.

    `names` is ordered canonical name first, then aliases; the first name that matches wins, so a root holding
    both `B100/` and `BSD100/` resolves to `B100/`.
    """
    parents = [root]
    for container in CONTAINER_DIRS:
        found = child_dir(root, container)
        if found is not None:
            parents.append(found)
    for name in names:
        for parent in parents:
            found = child_dir(parent, name)
            if found is not None:
                return found
    return None


def pair_key(stem: str) -> str:
    """The part of a rain-pair file name shared by both sides: `rain-001` and `norain-001` -> `001`."""
    return _PAIR_PREFIX.sub("", stem, count=1).lower() or stem.lower()


@dataclass(frozen=True)
class Pair:
    """One rainy/clean pair; `name` is the stem the pair is reported under."""

    name: str
    rainy: Path
    clean: Path


@dataclass
class Layout:
    """A recognised folder layout: which files are the targets, and where inputs come from.

    kind: "hr" (HR/ with optional LR_bicubic/X{s}/), "flat" (images in the folder itself),
    "pairs" (rainy and clean sub-folders paired by name) or "prenet" (rainy/rain-NNN + norain-NNN beside it).
    """

    kind: str
    description: str
    targets: list[Path] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    lr_root: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.pairs) if self.kind in ("pairs", "prenet") else len(self.targets)

    @property
    def is_paired(self) -> bool:
        return self.kind in ("pairs", "prenet")

    def lr_scales(self) -> list[int]:
        """Scales with an `LR_bicubic/X{s}` folder, ascending."""
        if self.lr_root is None:
            return []
        scales = []
        for sub in self.lr_root.iterdir():
            match = re.fullmatch(r"x(\d+)", sub.name, re.IGNORECASE)
            if sub.is_dir() and match:
                scales.append(int(match.group(1)))
        return sorted(scales)

    def lr_dir(self, scale: int) -> Path | None:
        return None if self.lr_root is None else child_dir(self.lr_root, f"X{scale}")


def find_lr_file(lr_dir: Path, stem: str, scale: int) -> Path | None:
    """The LR file for HR `stem` in an `X{s}` folder: `{stem}x{s}.*` (EDSR naming) or `{stem}.*`."""
    for candidate_stem in (f"{stem}x{scale}", f"{stem}_x{scale}", stem):
        for path in lr_dir.glob(f"{_glob_escape(candidate_stem)}.*"):
            if path.is_file() and is_image_file(path):
                return path
    return None


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _pair_by_name(rainy: list[Path], clean: list[Path], rainy_label: str, clean_label: str) -> Layout:
    clean_by_key: dict[str, Path] = {}
    for path in clean:
        clean_by_key.setdefault(pair_key(path.stem), path)
    layout = Layout(kind="pairs", description=f"{rainy_label}/ + {clean_label}/ paired by name")
    matched: set[str] = set()
    for path in rainy:
        key = pair_key(path.stem)
        partner = clean_by_key.get(key)
        if partner is None:
            layout.problems.append(f"{rainy_label}/{path.name} has no partner in {clean_label}/")
            continue
        matched.add(key)
        layout.pairs.append(Pair(path.stem, path, partner))
    unmatched = [p.name for k, p in clean_by_key.items() if k not in matched]
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        layout.problems.append(f"{len(unmatched)} file(s) in {clean_label}/ have no rainy partner: {shown}")
    return layout


def _prenet_layout(folder: Path, rainy_dir: Path) -> Layout | None:
    """PReNet/IPT: `rainy/rain-001.png` with its clean image `norain-001.png` in the dataset folder itself."""
    clean = {pair_key(p.stem): p for p in list_images(folder) if p.stem.lower().startswith("norain")}
    if not clean:
        return None
    layout = Layout(kind="prenet", description=f"{rainy_dir.name}/rain-NNN + norain-NNN beside it")
    for path in list_images(rainy_dir):
        partner = clean.get(pair_key(path.stem))
        if partner is None:
            layout.problems.append(f"{rainy_dir.name}/{path.name} has no norain-* partner in {folder.name}/")
        else:
            layout.pairs.append(Pair(path.stem, path, partner))
    return layout


def detect_layout(folder: Path) -> Layout | None:
    """Recognise the layout of a dataset folder, or None when it holds no images we know how to read."""
    for rainy_name, clean_name in PAIR_DIRS:
        rainy_dir = child_dir(folder, rainy_name)
        if rainy_dir is None:
            continue
        clean_dir = child_dir(folder, clean_name)
        if clean_dir is not None:
            return _pair_by_name(
                list_images(rainy_dir), list_images(clean_dir), rainy_dir.name, clean_dir.name
            )
        prenet = _prenet_layout(folder, rainy_dir)
        if prenet is not None:
            return prenet
    hr_dir = child_dir(folder, "HR")
    if hr_dir is not None:
        lr_root = child_dir(folder, "LR_bicubic")
        layout = Layout(kind="hr", description="HR/", targets=list_images(hr_dir), lr_root=lr_root)
        if lr_root is not None:
            scales = layout.lr_scales()
            layout.description = "HR/ + LR_bicubic/" + ",".join(f"X{s}" for s in scales)
        return layout
    images = list_images(folder)
    if images:
        suffixes = sorted({p.suffix.lower().lstrip(".") for p in images})
        return Layout(kind="flat", description=f"flat folder ({', '.join(suffixes)})", targets=images)
    return None
