"""Shared fixtures: real benchmark images (skip unless IPTBENCH_DATA is set), single-threaded torch."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    """The folder holding Set5/, Set14/, B100/, CBSD68/, Rain100L/ ... (as in ../shared/benchmarks)."""
    value = os.environ.get("IPTBENCH_DATA")
    if not value:
        pytest.skip("IPTBENCH_DATA is not set: real benchmark images unavailable (see README, Tests)")
    root = Path(value)
    if not root.is_dir():
        pytest.skip(f"IPTBENCH_DATA={value} is not a folder")
    return root


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread for one test, restored afterwards. Small tensors and steps on a shared
    2-core runner: a second thread mostly waits on the first (up to 10x slower); results do not change."""
    with _torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """`one_thread` for a whole module, so that module fixtures (a CLI run) get it too."""
    with _torch_threads(1):
        yield
