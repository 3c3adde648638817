"""A generated Set5 (tiny images, registry count) for report tests that run real evals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from iptbench.images import write_png


@pytest.fixture
def make_root(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "Set5", size: tuple[int, int] = (30, 36)) -> Path:
        assert name == "Set5", "only Set5 is generated here"
        root = tmp_path / "data"
        rng = np.random.RandomState(0)
        for i in range(5):
            image = rng.randint(0, 256, size=(*size, 3)).astype(np.uint8)
            write_png(root / "Set5" / "HR" / f"img{i + 1:03d}.png", image)
        return root

    return make
