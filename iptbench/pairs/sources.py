"""Turn the SOURCE argument of `iptbench build-data` into an ordered list of image paths.

The order is part of the dataset's identity: every random choice is derived from (seed, position in this
list, task), so the list must come out the same on every machine that sees the same files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iptbench.errors import IptbenchError
from iptbench.images import is_image_file

# Natural RGB photographs that ship inside installed wheels (see README, build-data). Left out on purpose:
# grayscale images (camera, moon, coins, ...), synthetic ones (color/colorwheel, logo, phantom), and
# non-photographic content whose statistics are nothing like ImageNet (hubble_deep_field is mostly black,
# retina is a fundus scan, ihc is a microscopy slide).
SAMPLE_FILES: tuple[tuple[str, str], ...] = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)


@dataclass(frozen=True)
class Shard:
    """The index-th (0-based) of count contiguous, disjoint slices of the source list."""

    index: int
    count: int

    def bounds(self, num_sources: int) -> tuple[int, int]:
        # Contiguous slices keep the merged file in the same order as a single build.
        return self.index * num_sources // self.count, (self.index + 1) * num_sources // self.count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | None) -> Shard | None:
    """'I/N' (0 <= I < N) -> Shard; None stays None."""
    if spec is None:
        return None
    try:
        left, right = spec.split("/")
        shard = Shard(int(left), int(right))
    except ValueError:
        raise IptbenchError(f"--shard takes I/N with integers, e.g. 0/4; got {spec!r}") from None
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise IptbenchError(f"--shard {spec}: need N >= 1 and 0 <= I < N (shards count from 0)")
    return shard


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without importing it (matplotlib and sklearn are slow to import).
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def sample_images() -> list[Path]:
    """The bundled natural photos that are installed here, in SAMPLE_FILES order."""
    found: list[Path] = []
    for package, relative in SAMPLE_FILES:
        root = _package_dir(package)
        if root is not None and (root / relative).is_file():
            found.append(root / relative)
    return found


def _walk_folder(folder: Path) -> list[Path]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            os.path.join(dirpath, f) for f in filenames if is_image_file(f) and not f.startswith(".")
        )
    # Sorting on the path relative to SOURCE keeps the order independent of where the folder is mounted
    # and of the file system's directory order.
    found.sort(key=lambda p: Path(p).relative_to(folder).as_posix())
    return [Path(p) for p in found]


def _read_list(list_file: Path) -> list[Path]:
    paths: list[Path] = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        # Relative entries are relative to the list file, so a list can travel with its images.
        paths.append(path if path.is_absolute() else list_file.parent / path)
    return paths


def resolve_sources(source: str | os.PathLike[str]) -> list[Path]:
    """SOURCE -> ordered image paths: a folder (recursive), a text file of paths, or the word `samples`."""
    if str(source) == "samples":
        paths = sample_images()
        if not paths:
            raise IptbenchError("no sample images found: `samples` needs scikit-image installed")
        return paths
    path = Path(source).expanduser()
    if path.is_dir():
        paths = _walk_folder(path)
        if not paths:
            raise IptbenchError(
                f"no images under {path} (looked recursively for jpg/jpeg/png/bmp/tif/webp files)"
            )
        return paths
    if path.is_file():
        if is_image_file(path):
            return [path]
        try:
            paths = _read_list(path)
        except UnicodeDecodeError:
            raise IptbenchError(f"{path} is neither an image nor a text file listing image paths") from None
        if not paths:
            raise IptbenchError(f"the list file {path} names no images (one path per line)")
        return paths
    raise IptbenchError(f"SOURCE {source} not found: give a folder, a text file of image paths, or `samples`")


def sources_digest(paths: list[Path] | list[str]) -> str:
    """sha256 of the source list as stored in /sources, to check that shards and resumes agree."""
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def generate_images(
    folder: str | os.PathLike[str],
    count: int,
    size: tuple[int, int] = (500, 375),
    *,
    seed: int = 0,
    suffix: str = ".jpg",
) -> list[Path]:
    """Write `count` natural-looking W x H images made from random crops of the bundled samples.

    For tests, demos and benchmarks without a dataset: ImageNet-like sizes and JPEG statistics, offline.
    """
    from PIL import Image

    from iptbench.images import read_image

    photos = [read_image(p) for p in sample_images()]
    if not photos:
        raise IptbenchError("generating images needs the bundled samples (scikit-image)")
    rng = np.random.default_rng(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    width, height = size
    written: list[Path] = []
    for i in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        frac = rng.uniform(0.5, 1.0)
        ch, cw = max(8, int(h * frac)), max(8, int(min(w, h * frac * width / height)))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = photo[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        img = Image.fromarray(crop.copy()).resize((width, height), Image.Resampling.BICUBIC)
        path = out / f"img_{i:05d}{suffix}"
        img.save(path, **({"quality": 90} if suffix in (".jpg", ".jpeg") else {}))
        written.append(path)
    return written
