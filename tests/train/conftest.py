"""Shared fixtures for the training tests: one tiny two-task build-data file, single-threaded torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from iptbench.data.builder import BuildConfig, build
from iptbench.data.sources import generate_images, resolve_sources

TASKS = ("sr-x2", "denoise-30")


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 images x 2 patches = 8 pairs per task (sr-x2, denoise-30), 48x48 inputs as ipt-tiny takes."""
    root = tmp_path_factory.mktemp("train-data")
    generate_images(root / "imgs", 4, (128, 128), seed=3)
    out = root / "pairs.h5"
    build(BuildConfig(TASKS, 48, 2, 0, "none"), resolve_sources(root / "imgs"), out)
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # On a shared 2-core machine two intra-op threads spin on each other (~10x slower steps); the
    # results do not depend on it. Module scope so that module fixtures (a CLI run) get it too; the
    # previous setting is restored for other test modules.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
