"""Listing (natural order), reading and writing images: every image in iptbench is uint8 RGB, H x W x 3.

Tensors follow the official IPT convention: float, N x 3 x H x W, pixel values on the 0-255 scale.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from iptbench.errors import ImageReadError
from iptbench.io import atomic_path

if TYPE_CHECKING:  # torch is imported lazily so that listing folders stays fast
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_NATURAL_CHUNK = re.compile(r"(\d+)")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders '2' before '10' (and 'img2' before 'img10')."""
    parts = _NATURAL_CHUNK.split(text.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p != "")


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: natural_key(p.name))


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder` (not recursive), naturally sorted; hidden files skipped."""
    if not folder.is_dir():
        return []
    return natural_sorted(
        p for p in folder.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    )


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> uint8 H x W x 3: grayscale replicated, alpha dropped, CMYK converted, 16-bit rescaled.

    Pillow opens 16-bit RGB PNG/TIFF as 8-bit RGB (high byte); 16-bit grayscale arrives as mode I;16 or I
    and is rescaled here with rounding.
    """
    if img.mode.startswith("I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.floor(arr * (255.0 / 65535.0) + 0.5).clip(0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode == "F":
        raise ValueError("floating-point images are not supported")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode one image file into uint8 RGB H x W x 3, or raise ImageReadError with the reason."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated files fail here, not later
            return np.ascontiguousarray(_to_rgb_array(img))
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(path, message) from None


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write uint8 H x W x 3 (or H x W) losslessly; parent folders are created.

    Written under a temporary name and renamed, so an interrupted run never leaves a truncated PNG.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8, got {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def image_to_tensor(image: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 H x W x 3 -> float32 1 x 3 x H x W on the 0-255 scale (a copy: the array is not shared)."""
    import torch

    t = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).unsqueeze(0)
    return t.to(device=device, dtype=torch.float32)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W (or 3 x H x W) on the 0-255 scale -> uint8 H x W x 3, rounded half away from zero."""
    import torch

    from iptbench.ops import quantize

    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError("tensor_to_image takes a single image")
        tensor = tensor[0]
    return quantize(tensor.detach()).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


# PIL modes of single-channel images: a ground truth stored like this is a grey image.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


@functools.lru_cache(maxsize=4096)
def is_grey_file(path: Path) -> bool:
    """Whether an image file is stored with one channel (read from the header, nothing decoded).

    The file's own format decides, as in the MATLAB scripts (`size(im, 3) == 1`), not the pixel values:
    an RGB file whose three channels happen to be equal is scored like every RGB file.
    """
    try:
        with Image.open(path) as img:
            return img.mode in GREY_MODES
    except Exception:  # noqa: BLE001 - an unreadable file fails later, when it is decoded, with its reason
        return False
