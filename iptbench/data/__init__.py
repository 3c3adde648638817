"""Data: benchmark test sets (registry, discovery, loading, fetching) and training-data building.

Names are re-exported lazily so that `import iptbench.data` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BENCHMARKS": "iptbench.data.benchmarks",
    "Benchmark": "iptbench.data.benchmarks",
    "BenchmarkDataset": "iptbench.data.benchmarks",
    "BenchmarkItem": "iptbench.data.benchmarks",
    "DatasetStatus": "iptbench.data.benchmarks",
    "fetch_command": "iptbench.data.benchmarks",
    "get_benchmark": "iptbench.data.benchmarks",
    "locate": "iptbench.data.benchmarks",
    "resolve_data_root": "iptbench.data.benchmarks",
    "PatchDataset": "iptbench.data.patches",
    "TaskBatchSampler": "iptbench.data.patches",
    "BuildConfig": "iptbench.data.builder",
    "build": "iptbench.data.builder",
    "resolve_sources": "iptbench.data.sources",
    "generate_images": "iptbench.data.sources",
    "bicubic_lr": "iptbench.data.degradations",
    "add_gaussian_noise": "iptbench.data.degradations",
    "add_rain": "iptbench.data.degradations",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'iptbench.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
