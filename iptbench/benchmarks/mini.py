"""`mini`: a test set that needs no download, made of the colour photos that ship inside scikit-image.

Six photographs (astronaut, chelsea, coffee, rocket, motorcycle_left, motorcycle_right; their licences are
listed in the README), each cut to its centre 288 x 288 (so the whole suite, six tasks, runs in about a
minute on two cores), serve every task, corrupted deterministically the way the real suites are:
- SR: MATLAB-style uint8 bicubic of the image mod-cropped to the scale (`load_item`'s on-the-fly path);
- denoising: the evaluation's fixed per-image noise seed, added by the runner as for CBSD68;
- deraining: our rain synthesiser (iptbench.degradations.rain) with a fixed per-image seed.
The crops and the rainy images are written once to a cache folder and then read like any benchmark's
files, so their sha256 is part of each cell's identity: a change of the crop or of the synthesiser can
never be mistaken for the same input.
scikit-image is a hard dependency, so `mini` is the same six images on every install; scikit-learn's and
matplotlib's photos are not used, because whether they are installed would change the set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from iptbench.benchmarks.registry import BenchmarkItem, load_item
from iptbench.errors import IptbenchError
from iptbench.tasks import Task

NAME = "mini"
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)
RAIN_SEED = 20210601  # any fixed number: the IPT paper's CVPR year and month
CROP = 288  # divisible by 2, 3 and 4: every SR scale keeps the whole crop


def source_paths() -> list[Path]:
    """The uncropped photos inside the installed scikit-image."""
    import skimage

    folder = Path(skimage.__file__).resolve().parent / "data"
    paths = [folder / name for name in PHOTOS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise IptbenchError(
            f"scikit-image's sample photos {', '.join(missing)} are missing from {folder}; "
            "reinstall scikit-image (pip install --force-reinstall scikit-image)"
        )
    return paths


def cache_dir() -> Path:
    return Path(os.environ.get("IPTBENCH_CACHE", Path.home() / ".cache" / "iptbench")) / "mini"


def crop_path(source: Path) -> Path:
    """The centre CROP x CROP of a photo (smaller sides kept whole), written once to the cache as a PNG."""
    from iptbench.images import read_image, write_png

    path = cache_dir() / f"crop{CROP}" / f"{source.stem}.png"
    if path.is_file():
        return path
    image = read_image(source)
    h, w = image.shape[:2]
    top, left = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
    write_png(path, np.ascontiguousarray(image[top : top + CROP, left : left + CROP]))  # atomic
    return path


def photo_paths() -> list[Path]:
    """The six cropped clean photos of the suite (made on first use)."""
    return [crop_path(p) for p in source_paths()]


def rainy_path(clean: Path, index: int) -> Path:
    """The rainy version of photo `index`, synthesised once (seeded by index) and cached as a PNG."""
    from iptbench.degradations.arrays import to_uint8
    from iptbench.degradations.rain import DEFAULT_RANGES, synth_rain_layers
    from iptbench.images import read_image, write_png

    path = cache_dir() / f"rain-v{DEFAULT_RANGES.version}-seed{RAIN_SEED}-crop{CROP}" / f"{clean.stem}.png"
    if path.is_file():
        return path
    image = read_image(clean)
    h, w = image.shape[:2]
    rng = np.random.default_rng([RAIN_SEED, index])
    layer = synth_rain_layers(rng, 1, max(h, w))[0, :h, :w, None]  # square synthesiser: crop its layer
    rainy = to_uint8(np.add(layer, image, dtype=np.float32))  # clip and round as the training pairs do
    write_png(path, rainy)  # atomic: a killed run leaves the old file or none
    return path


class MiniDataset:
    """The `mini` set, with the interface of BenchmarkDataset that the eval runner uses."""

    name = NAME

    def __init__(self) -> None:
        self.paths = photo_paths()

    def __len__(self) -> int:
        return len(self.paths)

    def items(self, task: Task) -> list[BenchmarkItem]:
        if task.spec.eval_input == "paired":
            return [BenchmarkItem(p.stem, p, rainy_path(p, i)) for i, p in enumerate(self.paths)]
        return [BenchmarkItem(p.stem, p) for p in self.paths]

    def load(self, item: BenchmarkItem, task: Task) -> tuple[np.ndarray | None, np.ndarray]:
        return load_item(item, task)
