"""Small generated benchmark folders (registry names and counts, tiny images) for tests without real data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from iptbench.images import write_png

COUNTS = {"Set5": 5, "Set14": 14, "CBSD68": 68, "Rain100L": 100}


def synthetic_image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    coarse = rng.randint(0, 256, size=(h // 4 + 2, w // 4 + 2, 3)).astype(np.float64)
    fine = np.kron(coarse, np.ones((4, 4, 1)))[:h, :w]
    return np.clip(fine + rng.normal(0, 8, fine.shape), 0, 255).astype(np.uint8)


def make_benchmark(root: Path, name: str, size: tuple[int, int] = (30, 36), count: int | None = None) -> Path:
    h, w = size
    n = COUNTS[name] if count is None else count
    folder = root / name
    if name.startswith("Rain"):
        for i in range(1, n + 1):
            clean = synthetic_image(i, h, w)
            rainy = np.clip(clean.astype(np.int16) + 40 * (np.arange(w)[None, :, None] % 7 == 0), 0, 255)
            write_png(folder / "norain" / f"{i}.png", clean)
            write_png(folder / "rainy" / f"{i}.png", rainy.astype(np.uint8))
    else:
        for i in range(n):
            write_png(folder / "HR" / f"img{i + 1:03d}.png", synthetic_image(100 + i, h, w))
    return folder


@pytest.fixture
def make_root(tmp_path: Path) -> Callable[..., Path]:
    def make(*names: str, size: tuple[int, int] = (30, 36)) -> Path:
        root = tmp_path / "data"
        root.mkdir(exist_ok=True)
        for name in names:
            make_benchmark(root, name, size)
        return root

    return make
