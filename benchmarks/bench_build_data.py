"""build-data throughput: pairs/s vs the decode-only floor, file size per compression, DataLoader reads.

Run: python benchmarks/bench_build_data.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from iptbench.data.builder import BuildConfig, build
from iptbench.data.sources import generate_images, resolve_sources
from iptbench.images import read_image
from iptbench.tasks import TASK_NAMES

console = Console()


def _decode_all(paths: list[str]) -> int:
    return sum(read_image(p).shape[0] for p in paths)


def decode_seconds(paths: list[Path], workers: int) -> float:
    """The floor: only decoding the same images with the same number of processes."""
    names = [str(p) for p in paths]
    t0 = time.perf_counter()
    if workers <= 1:
        _decode_all(names)
    else:
        parts = [names[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            pool.submit(int).result()  # start the workers outside the timed region
            t0 = time.perf_counter()
            list(pool.map(_decode_all, parts))
    return time.perf_counter() - t0


def build_seconds(paths: list[Path], out: Path, workers: int, compression: str, k: int) -> tuple[float, int]:
    cfg = BuildConfig(TASK_NAMES, 48, k, 0, compression)
    t0 = time.perf_counter()
    s = build(cfg, paths, out, workers=workers, overwrite=True)
    return time.perf_counter() - t0, sum(s.pairs.values())


def loader_rate(path: Path, workers: int, batches: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from iptbench.data.patches import PatchDataset, TaskBatchSampler

    torch.set_num_threads(1)
    ds = PatchDataset(path, augment=True, fresh_noise=True)
    sampler = TaskBatchSampler(ds, 64, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += batch["input"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images (finishes in < 60 s)")
    parser.add_argument("--images", type=int, default=200, help="generated 500x375 JPEGs")
    parser.add_argument("-k", type=int, default=2, help="patches per image and task")
    args = parser.parse_args()
    n_images = 40 if args.quick else args.images
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = sorted({1, min(2, cpus)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generated = generate_images(root / "jpegs", n_images, (500, 375), seed=0)
        sets = {"samples": resolve_sources("samples"), f"{n_images} JPEGs 500x375": generated}

        table = Table(title=f"build-data, all six tasks, {args.k} patches per image and task, gzip")
        for col in ("images", "workers", "pairs", "build s", "pairs/s", "decode-only s", "build / decode"):
            table.add_column(col, justify="right" if col != "images" else "left")
        for name, paths in sets.items():
            for w in workers:
                dec = decode_seconds(paths, w)
                secs, pairs = build_seconds(paths, root / "b.h5", w, "gzip", args.k)
                table.add_row(
                    name,
                    str(w),
                    f"{pairs:,}",
                    f"{secs:.2f}",
                    f"{pairs / secs:,.0f}",
                    f"{dec:.3f}",
                    f"{secs / dec:.1f}x",
                )
        console.print(table)

        comp = Table(title=f"compression ({n_images} JPEGs, {workers[-1]} workers)")
        for col in (
            "compression",
            "pairs/s",
            "MB per 1,000 pairs",
            "size vs none",
            "DataLoader patches/s (2 workers)",
        ):
            comp.add_column(col, justify="right")
        sizes: dict[str, float] = {}
        for c in ("none", "lzf", "gzip"):
            out = root / f"{c}.h5"
            secs, pairs = build_seconds(generated, out, workers[-1], c, args.k)
            sizes[c] = out.stat().st_size / pairs * 1000 / 1e6
            rate = loader_rate(out, 2, 30 if args.quick else 150)
            comp.add_row(
                c,
                f"{pairs / secs:,.0f}",
                f"{sizes[c]:.1f}",
                f"{sizes[c] / sizes['none']:.2f}",
                f"{rate:,.0f}",
            )
        console.print(comp)
        console.print(
            "DataLoader: batch 64, one task per batch, random flips/rotations, fresh noise; goal >= 5,000/s."
        )


if __name__ == "__main__":
    main()
