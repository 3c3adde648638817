"""Shared fixtures for the training tests: one tiny two-task build-data file, single-threaded torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.sources import generate_images, resolve_sources

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
def _one_thread(one_thread_module: None) -> None:
    """Every training test module runs torch on one thread (tests/conftest.py, one_thread_module)."""
