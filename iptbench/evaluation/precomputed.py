"""`--model NAME=images:DIR`: score restored images that another method already produced.

DIR may hold one folder per dataset and task in any of the common layouts (names compared
case-insensitively; a dataset may be named by any alias, e.g. BSD100 for B100):

    DIR/Set5/sr-x2/   (iptbench's own --save-images layout)   DIR/Set5/x2/
    DIR/Set5_x2/                                              DIR/x2/Set5/

A task is named by its iptbench name or a short tag: `x2` for sr-x2, `sigma30`/`s30`/`30` for
denoise-30; a deraining set may also keep its images directly in DIR/Rain100L/. A dataset and task without a
folder is skipped, as for a model that lacks the task. Restored files pair with the ground truth by the
stem rules of `iptbench metrics` (`baby_x2_SwinIR.png` belongs to `baby`; the longest stem wins; an exact
name beats suffixed ones). Everything is checked before any scoring: a missing image, a wrong size or an
ambiguous name is one line, and the cell is not written unless --allow-partial is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iptbench.errors import IptbenchError
from iptbench.images import list_images
from iptbench.tasks import Task

_SHOW = 6  # names listed in one error line


def task_tags(task: Task) -> list[str]:
    """Folder names that mean this task, iptbench's own name first."""
    return task.spec.tags_for(task)


def _children(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()}


def _names(dataset: str) -> list[str]:
    from iptbench.benchmarks.registry import get_benchmark

    try:
        return [n.lower() for n in get_benchmark(dataset).names]
    except IptbenchError:
        return [dataset.lower()]


def candidate_folders(root: Path, dataset: str, task: Task) -> list[Path]:
    """Every folder under root that the layouts above name for (dataset, task), in layout order."""
    found: list[Path] = []
    top = _children(root)
    tags = [t.lower() for t in task_tags(task)]
    for name in _names(dataset):
        sub = _children(top[name]) if name in top else {}
        found += [sub[t] for t in tags if t in sub]
        found += [top[f"{name}_{t}"] for t in tags if f"{name}_{t}" in top]
        for t in tags:
            if t in top:
                inner = _children(top[t])
                found += [inner[name]] if name in inner else []
        if task.spec.eval_input == "paired" and name in top and list_images(top[name]):
            found.append(top[name])
    return list(dict.fromkeys(p for p in found if list_images(p)))


@dataclass
class CellImages:
    """The restored file of every ground-truth image of one (dataset, task), or why some are missing."""

    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # ground-truth stem -> restored file
    problems: list[str] = field(default_factory=list)  # one phrase per kind of problem
    expected: int = 0


def _pair(names: list[str], restored: list[Path]) -> tuple[dict[str, Path], list[str], list[str]]:
    """(pairs, missing stems, ambiguous descriptions) by the stem rules of `iptbench metrics`."""
    from iptbench.metrics.folders import matches_stem

    candidates: dict[str, list[Path]] = {n: [] for n in names}
    for path in restored:
        matching = [n for n in names if matches_stem(path.stem, n)]
        if matching:
            candidates[max(matching, key=len)].append(path)
    pairs, missing, ambiguous = {}, [], []
    for name in names:
        found = candidates[name]
        exact = [p for p in found if p.stem.lower() == name.lower()]
        if len(exact) == 1:
            found = exact  # an exact name beats suffixed ones
        if not found:
            missing.append(name)
        elif len(found) > 1:
            ambiguous.append(f"{name} <- {' / '.join(p.name for p in found)}")
        else:
            pairs[name] = found[0]
    return pairs, missing, ambiguous


def _shorten(names: list[str]) -> str:
    more = f" ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when it cannot be read (reported later as broken)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable", reported per image
        return None


def _target_size(item: object, task: Task) -> tuple[int, int] | None:
    size = _image_size(item.target)  # type: ignore[attr-defined]
    if size is None or task.spec.eval_input != "lr":
        return size
    w, h = size
    return (w - w % task.scale, h - h % task.scale)  # the ground truth is mod-cropped to the scale


def match_cell(folder: Path, items: list, task: Task) -> CellImages:
    """Pair the dataset's items with the restored files in `folder` and check every size."""
    names = [item.name for item in items]
    pairs, missing, ambiguous = _pair(names, list_images(folder))
    cell = CellImages(folder, expected=len(items))
    wrong = []
    for item in items:
        path = pairs.get(item.name)
        if path is None:
            continue
        got, want = _image_size(path), _target_size(item, task)
        if got is not None and want is not None and got != want:
            wrong.append(f"{path.name} is {got[0]}x{got[1]}, ground truth {want[0]}x{want[1]}")
            continue
        cell.files[item.name] = path
    if missing:
        cell.problems.append(
            f"no restored image for {len(missing)} of {len(items)} images: {_shorten(missing)} "
            f"(names must start with the ground-truth stem, e.g. {missing[0]}_x4.png)"
        )
    if ambiguous:
        cell.problems.append(f"ambiguous names: {_shorten(ambiguous)}")
    if wrong:
        cell.problems.append(f"wrong size: {_shorten(wrong)}")
    return cell


@dataclass
class PrecomputedImages:
    """The image folder behind one `NAME=images:DIR` model."""

    root: Path

    def folders(self, dataset: str, task: Task) -> list[Path]:
        """Folders for (dataset, task): none means the task is skipped, two or more are ambiguous."""
        return candidate_folders(self.root, dataset, task)

    def match(self, dataset: str, task: Task, items: list) -> CellImages | None:
        """The pairing for one cell; None when DIR has no folder for it."""
        found = self.folders(dataset, task)
        if not found:
            return None
        if len(found) > 1:
            cell = CellImages(found[0], expected=len(items))
            listed = ", ".join(str(p) for p in found)
            cell.problems.append(f"{len(found)} folders hold it ({listed}); keep one")
            return cell
        return match_cell(found[0], items, task)


def parse_images_dir(text: str) -> PrecomputedImages:
    root = Path(text).expanduser()
    if not root.is_dir():
        raise IptbenchError(
            f"images:{text} is not a folder: pass a folder of restored images, e.g. --model SwinIR=images:DIR"
        )
    return PrecomputedImages(root)
