"""Shared fixtures. Tests that need the real benchmark images skip unless IPTBENCH_DATA is set."""

from __future__ import annotations

import os
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
