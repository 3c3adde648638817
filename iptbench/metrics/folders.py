"""Scoring a folder of restored images against a folder of ground truth, as BasicSR's metric scripts do.

Files are paired by stem. Restorers name their outputs after the input with a suffix (`baby_x4_SwinIR.png`,
`babyx4.png`, `baby_IPT_x2.png`), so a restored file belongs to the ground-truth image whose stem it starts
with, provided what follows is a scale tag (`x4...`) or begins with a separator (`_`, `-`, `.`). The longest
such stem wins, so `img_1_x4` goes to `img_1`, not to `img`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from iptbench.errors import IptbenchError
from iptbench.images import image_to_tensor, is_grey_file, list_images, read_image

_SUFFIX = re.compile(r"^(?:x\d+(?:[_\-.].*)?|[_\-.].+)$", re.IGNORECASE)
_MIN_SIDE = 11  # the SSIM window: a cropped image smaller than this has no valid SSIM region


@dataclass(frozen=True)
class FilePair:
    name: str  # the ground-truth stem, used in tables and CSV
    target: Path
    restored: Path


@dataclass
class Pairing:
    pairs: list[FilePair]
    unused: list[Path] = field(default_factory=list)  # restored files that match no ground-truth image


def _shorten(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def matches_stem(restored_stem: str, gt_stem: str) -> bool:
    """Whether a restored file's stem names the ground-truth stem (exactly, or with a tolerated suffix)."""
    r, g = restored_stem.lower(), gt_stem.lower()
    return r == g or (r.startswith(g) and _SUFFIX.match(r[len(g) :]) is not None)


def pair_folders(gt_dir: Path, restored_dir: Path) -> Pairing:
    """Pair every ground-truth image with exactly one restored image, or raise a one-line IptbenchError."""
    for folder, label in ((gt_dir, "ground-truth"), (restored_dir, "restored")):
        if not folder.is_dir():
            raise IptbenchError(f"{label} folder {folder} does not exist")
    gts = list_images(gt_dir)
    restored = list_images(restored_dir)
    if not gts:
        raise IptbenchError(f"no images in ground-truth folder {gt_dir}")
    if not restored:
        raise IptbenchError(f"no images in restored folder {restored_dir}")
    by_stem: dict[str, Path] = {}
    for path in gts:
        other = by_stem.setdefault(path.stem.lower(), path)
        if other is not path:
            raise IptbenchError(
                f"ground-truth folder has two images with stem {path.stem!r}: {other.name}, {path.name}"
            )

    candidates: dict[str, list[Path]] = {stem: [] for stem in by_stem}
    unused = []
    for path in restored:
        matching = [stem for stem in by_stem if matches_stem(path.stem, stem)]
        if matching:
            candidates[max(matching, key=len)].append(path)
        else:
            unused.append(path)

    pairs, missing, ambiguous = [], [], []
    for stem, gt in by_stem.items():
        found = candidates[stem]
        exact = [p for p in found if p.stem.lower() == stem]
        if len(exact) == 1 and len(found) > 1:
            unused.extend(p for p in found if p is not exact[0])  # an exact name beats suffixed ones
            found = exact
        if not found:
            missing.append(gt.stem)
        elif len(found) > 1:
            ambiguous.append(f"{gt.stem} <- {' / '.join(p.name for p in found)}")
        else:
            pairs.append(FilePair(gt.stem, gt, found[0]))
    if missing:
        raise IptbenchError(
            f"no restored image in {restored_dir} for {len(missing)} of {len(gts)} ground-truth images: "
            f"{_shorten(missing)} (restored names must start with the ground-truth stem, e.g. "
            f"{missing[0]}_x4_SwinIR.png)"
        )
    if ambiguous:
        raise IptbenchError(
            f"ambiguous pairs in {restored_dir}: {_shorten(ambiguous, 4)}; keep one restored image per"
            " ground-truth image"
        )
    return Pairing(pairs, sorted(unused))


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    lpips: float | None = None


@dataclass
class FolderScores:
    rows: list[ImageScore]
    crop: int
    channel: Literal["y", "rgb"]
    lpips_net: str | None = None
    modcropped: list[str] = field(default_factory=list)  # GT images cropped to the scale to match the output
    unused: list[Path] = field(default_factory=list)

    def mean(self) -> ImageScore:
        lp = [r.lpips for r in self.rows if r.lpips is not None]
        return ImageScore(
            "mean",
            float(np.mean([r.psnr for r in self.rows])),
            float(np.mean([r.ssim for r in self.rows])),
            float(np.mean(lp)) if lp else None,
        )


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def score_folder(
    gt_dir: Path,
    restored_dir: Path,
    *,
    crop: int = 0,
    channel: Literal["y", "rgb"] = "y",
    scale: int | None = None,
    lpips_net: str | None = None,
    on_image: Callable[[str], None] | None = None,
) -> FolderScores:
    """PSNR/SSIM (and LPIPS on the full RGB images, as BasicSR's calculate_lpips) for every pair.

    When `scale` is given and a restored image equals its ground truth mod-cropped to the scale (the usual SR
    evaluation, HR folders are often not pre-cropped), the ground truth is cropped the same way.
    """
    from iptbench.metrics import psnr, ssim

    if crop < 0:
        raise IptbenchError(f"--crop must be >= 0, got {crop}")
    pairing = pair_folders(Path(gt_dir), Path(restored_dir))
    lpips_fn = None
    if lpips_net:
        from iptbench.metrics import Lpips  # loads torchvision backbones: only when asked

        lpips_fn = Lpips(net=lpips_net)
    result = FolderScores([], crop, channel, lpips_net, unused=pairing.unused)
    for pair in pairing.pairs:
        target = read_image(pair.target)
        restored = read_image(pair.restored)
        if target.shape != restored.shape and scale:
            h, w = target.shape[0] - target.shape[0] % scale, target.shape[1] - target.shape[1] % scale
            if restored.shape[:2] == (h, w):
                target = np.ascontiguousarray(target[:h, :w])
                result.modcropped.append(pair.name)
        if target.shape != restored.shape:
            raise IptbenchError(
                f"size mismatch for {pair.name}: ground truth {pair.target.name} is {_size(target)},"
                f" restored {pair.restored.name} is {_size(restored)}"
            )
        if min(target.shape[:2]) - 2 * crop < _MIN_SIDE:
            raise IptbenchError(
                f"--crop {crop} leaves less than 11 px of {pair.target.name} ({_size(target)})"
            )
        # copies: decoded arrays can be read-only, which torch.from_numpy warns about
        t, r = image_to_tensor(np.array(target)), image_to_tensor(np.array(restored))
        if is_grey_file(pair.target):  # the literature's rule: a grey ground truth is scored on grey values
            t = t[:, :1]
        row = ImageScore(
            pair.name,
            float(psnr(r, t, crop=crop, channel=channel)[0]),
            float(ssim(r, t, crop=crop, channel=channel)[0]),
            float(lpips_fn(r, t)[0]) if lpips_fn is not None else None,
        )
        result.rows.append(row)
        if on_image is not None:
            on_image(pair.name)
    return result
