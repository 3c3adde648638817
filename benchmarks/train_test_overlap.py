"""Check that no training image is a near-duplicate of a test image: whole, resized or cropped.

    python benchmarks/train_test_overlap.py weights/train-images.txt --data-root "$IPTBENCH_DATA"

Every test image (the HR / clean images of each benchmark set under --data-root, plus the `mini`
photos) is compared with every training image in two ways, both on grey values:
- whole image: both resized to 32x32, Pearson correlation (catches resized and re-encoded copies);
- crop: normalised cross-correlation (`skimage.feature.match_template`) of the test image, shrunk to
  each of 20 widths between 1/6 and all of the training image's width, inside the training image shrunk
  to 160 px wide, and the reverse at 10 widths between 1/3 and 1 (the training image inside the test image).
A pair scoring above --threshold in either test is printed as a suspect and the script exits 1.
The highest score of each training image is printed, so the margin is visible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, uniform_filter
from skimage.feature import match_template

WORK_WIDTH = 160

SCALES = np.geomspace(1 / 6, 1.0, 20)
REVERSE_SCALES = np.geomspace(1 / 3, 1.0, 10)


def _grey(path: Path) -> np.ndarray:
    pil = Image.open(path)
    pil.draft("L", (WORK_WIDTH * 2, WORK_WIDTH * 2))
    return np.asarray(pil.convert("L"), dtype=np.float32)


def _resize(grey: np.ndarray, width: int) -> np.ndarray:
    h, w = grey.shape
    height = max(1, round(h * width / w))
    return np.asarray(Image.fromarray(grey).resize((width, height), Image.BILINEAR), dtype=np.float32)


def _detail(grey: np.ndarray) -> np.ndarray:
    """A band-pass (difference of Gaussians): correlating structure, not smooth shading, keeps two skies
    from "matching", and the low cut tolerates the few-percent scale error between the tried widths."""
    return gaussian_filter(grey, 1.5) - gaussian_filter(grey, 5.0)


def _whole_score(a: np.ndarray, b: np.ndarray) -> float:
    x = np.asarray(Image.fromarray(a).resize((32, 32), Image.BILINEAR), dtype=np.float64).ravel()
    y = np.asarray(Image.fromarray(b).resize((32, 32), Image.BILINEAR), dtype=np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def _crop_score(big: np.ndarray, small: np.ndarray, scales: np.ndarray = SCALES) -> float:
    """Best NCC of `small`, shrunk to several widths, anywhere inside `big` (both already shrunk)."""
    best = 0.0
    bh, bw = big.shape
    for s in scales:
        width = int(round(bw * s))
        if width < 16:
            continue
        template = _resize(small, width)
        th, tw = template.shape
        if th > bh or tw > bw or th < 16 or template.std() < 4.0:
            continue
        scores = match_template(_detail(big), _detail(template))
        # Over flat windows of `big` (clear sky, night) the normalisation divides by ~0 and the score is
        # noise, sometimes outside [-1, 1]: such positions say nothing about a match.
        mean = uniform_filter(big, (th, tw), mode="constant")
        square = uniform_filter(big * big, (th, tw), mode="constant")
        std = np.sqrt(np.maximum(square - mean * mean, 0.0))
        oy, ox = th // 2, tw // 2
        window_std = std[oy : oy + scores.shape[0], ox : ox + scores.shape[1]]
        scores[(window_std < 4.0) | (np.abs(scores) > 1.0)] = 0.0
        best = max(best, float(scores.max()))
    return best


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _test_images(data_root: Path | None) -> list[tuple[str, np.ndarray]]:
    """Every clean benchmark image under data_root, plus the bundled photos that `mini` is made of."""
    from iptbench.pairs.sources import sample_images

    paths: list[tuple[str, Path]] = []
    if data_root is not None:
        for folder in sorted(p for p in data_root.rglob("*") if p.is_dir() and p.name in {"HR", "norain"}):
            paths += [
                (str(p.relative_to(data_root)), p)
                for p in sorted(folder.iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES
            ]
    paths += [(f"mini/{p.name}", p) for p in sample_images()]
    return [(name, _grey(path)) for name, path in paths]


def _score(train: np.ndarray, test: np.ndarray) -> float:
    small_test = _resize(test, min(WORK_WIDTH, test.shape[1]))
    return max(
        _whole_score(train, small_test),
        _crop_score(train, small_test),
        _crop_score(small_test, train, REVERSE_SCALES),
    )


def _positive_control(tests: list[tuple[str, np.ndarray]], threshold: float) -> None:
    """The check must catch what it is for: a test image upscaled 2.5x and pasted into a larger frame,
    and a 60 % crop of one upscaled 3x. Exits when either scores below the threshold."""
    name, test = tests[0]
    h, w = test.shape
    big = np.full((h * 4, w * 4), 128.0, np.float32)
    big[h : h + int(h * 2.5), w : w + int(w * 2.5)] = _resize(test, int(w * 2.5))[: int(h * 2.5)]
    crop = test[int(h * 0.2) : int(h * 0.8), int(w * 0.2) : int(w * 0.8)]
    for what, image in (("pasted", big), ("cropped", _resize(crop, crop.shape[1] * 3))):
        score = _score(_resize(image, WORK_WIDTH), test)
        print(f"control {score:.3f}  {name} {what} (must be above {threshold})")
        if score <= threshold:
            sys.exit(f"the check misses a {what} copy of {name}: lower --threshold")


def _write_sheet(path: Path, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    rows = [np.hstack([_pad(_resize(a, 160)), _pad(_resize(b, 160))]) for a, b in pairs]
    Image.fromarray(np.vstack(rows).clip(0, 255).astype(np.uint8)).save(path)


def _pad(grey: np.ndarray, height: int = 110) -> np.ndarray:
    out = np.full((height, grey.shape[1] + 4), 255.0, np.float32)
    out[: min(height, grey.shape[0]), : grey.shape[1]] = grey[:height]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_list", type=Path, help="text file, one training image path per line")
    parser.add_argument("--data-root", type=Path, default=None, help="benchmark sets (HR/ and norain/)")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument(
        "--sheet",
        type=Path,
        default=None,
        help="PNG of each training image beside its closest test image, to check suspects by eye",
    )
    args = parser.parse_args()
    lines = [ln.strip() for ln in args.image_list.read_text().splitlines()]
    train_paths = [Path(ln) for ln in lines if ln and not ln.startswith("#")]
    tests = _test_images(args.data_root)
    print(f"{len(train_paths)} training images against {len(tests)} test images")
    _positive_control(tests, args.threshold)
    suspects = 0
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for path in train_paths:
        train = _resize(_grey(path), WORK_WIDTH)
        best, best_name = 0.0, ""
        for name, test in tests:
            score = _score(train, test)
            if score > best:
                best, best_name = score, name
        pairs.append((train, dict(tests)[best_name]))
        flag = "SUSPECT" if best > args.threshold else "ok"
        suspects += best > args.threshold
        shown = "/".join(path.parts[-4:]) if path.parent.name == "images" else path.name
        print(f"{flag:7s} {best:.3f}  {shown}  (closest: {best_name})", flush=True)
    print(f"{suspects} suspect(s) above {args.threshold}")
    if args.sheet is not None:
        _write_sheet(args.sheet, pairs)
    return 1 if suspects else 0


if __name__ == "__main__":
    sys.exit(main())
