"""build-data throughput: pairs/s vs the decode-only floor, per-stage costs, file size and DataLoader reads.

Run: python benchmarks/bench_build_data.py [--quick] [--repeats 3]

Every time is the best of --repeats runs, and each ratio divides by a floor measured in the same run
(other processes on a shared machine slow some runs down; the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from iptbench.images import read_image
from iptbench.pairs.builder import BuildConfig, build, make_pairs
from iptbench.pairs.pairfile import ChunkEncoder
from iptbench.pairs.sources import generate_images, resolve_sources
from iptbench.tasks import TASK_NAMES, get_task

console = Console()
COMPRESSIONS = ("none", "lzf", "gzip")


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeats))


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
    """One fresh build (the old output is deleted first, as a first build would find no file)."""
    out.unlink(missing_ok=True)
    cfg = BuildConfig(TASK_NAMES, 48, k, 0, compression)
    t0 = time.perf_counter()
    s = build(cfg, paths, out, workers=workers, overwrite=True)
    return time.perf_counter() - t0, sum(s.pairs.values())


def stage_ms(paths: list[Path], k: int, repeats: int) -> dict[str, float]:
    """Milliseconds per image of each stage, in this process (one core): where the build time goes."""
    import torch

    torch.set_num_threads(1)
    cfg = BuildConfig(TASK_NAMES, 48, k, 0, "gzip")
    names = [str(p) for p in paths]
    n = len(names)

    def timed(fn: Callable[[], object]) -> float:
        def once() -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        return best_of(repeats, once) * 1000 / n

    images = [read_image(p) for p in names]
    out = {"decode": timed(lambda: [read_image(p) for p in names])}
    pairs = []
    for t in TASK_NAMES:
        task = get_task(t)
        out[f"pairs {t}"] = timed(
            lambda task=task: [make_pairs(im, i, task, cfg, None) for i, im in enumerate(images)]
        )
        pairs += [a for i, im in enumerate(images) for a in make_pairs(im, i, task, cfg, None)]
    out["sha256"] = timed(lambda: [hashlib.sha256(p).digest() for a in pairs for p in a])
    for c in COMPRESSIONS:
        enc = ChunkEncoder(c)
        out[f"encode {c}"] = timed(lambda enc=enc: [enc.encode(a) for a in pairs])
    return out


def loader_rate(path: Path, workers: int, batches: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from iptbench.pairs.patches import PatchDataset, TaskBatchSampler

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
    parser.add_argument("--quick", action="store_true", help="fewer images, one run each (< 60 s)")
    parser.add_argument("--images", type=int, default=200, help="generated 500x375 JPEGs")
    parser.add_argument("-k", type=int, default=2, help="patches per image and task")
    parser.add_argument("--repeats", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    n_images = 40 if args.quick else args.images
    reps = 1 if args.quick else args.repeats
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = sorted({1, min(2, cpus)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generated = generate_images(root / "jpegs", n_images, (500, 375), seed=0)
        sets = {"samples": resolve_sources("samples"), f"{n_images} JPEGs 500x375": generated}

        stages = stage_ms(generated, args.k, reps)
        st = Table(
            title=f"where the time goes: ms per image, one core ({n_images} JPEGs 500x375, k={args.k})"
        )
        st.add_column("stage")
        st.add_column("ms / image", justify="right")
        st.add_column("x decode", justify="right")
        for name, ms in stages.items():
            st.add_row(name, f"{ms:.2f}", f"{ms / stages['decode']:.2f}")
        work = sum(v for key, v in stages.items() if key.startswith(("decode", "pairs", "sha256")))
        for c in COMPRESSIONS:
            total = work + stages[f"encode {c}"]
            st.add_row(f"[b]all, {c}[/b]", f"{total:.2f}", f"{total / stages['decode']:.2f}")
        console.print(st)

        table = Table(
            title=f"build-data, all six tasks, {args.k} patches per image and task (best of {reps})"
        )
        for col in ("images", "workers", "compression", "pairs", "build s", "pairs/s", "decode-only s"):
            table.add_column(col, justify="left" if col in ("images", "compression") else "right")
        table.add_column("build / decode", justify="right")
        for name, paths in sets.items():
            for w in workers:
                dec = best_of(reps, lambda paths=paths, w=w: decode_seconds(paths, w))
                for c in COMPRESSIONS:
                    runs = [build_seconds(paths, root / "b.h5", w, c, args.k) for _ in range(reps)]
                    secs, pairs = min(runs)
                    table.add_row(
                        name,
                        str(w),
                        c,
                        f"{pairs:,}",
                        f"{secs:.2f}",
                        f"{pairs / secs:,.0f}",
                        f"{dec:.3f}",
                        f"{secs / dec:.1f}x",
                    )
        console.print(table)

        comp = Table(title=f"file size and reading ({n_images} JPEGs; DataLoader best of {reps})")
        for col in ("compression", "MB per 1,000 pairs", "size vs none", "DataLoader patches/s (2 workers)"):
            comp.add_column(col, justify="right")
        sizes: dict[str, float] = {}
        batches = 30 if args.quick else 150
        for c in COMPRESSIONS:
            out = root / f"{c}.h5"
            _, pairs = build_seconds(generated, out, workers[-1], c, args.k)
            sizes[c] = out.stat().st_size / pairs * 1000 / 1e6
            rate = max(loader_rate(out, 2, batches) for _ in range(reps))
            comp.add_row(c, f"{sizes[c]:.1f}", f"{sizes[c] / sizes['none']:.2f}", f"{rate:,.0f}")
        console.print(comp)
        console.print(
            "DataLoader: batch 64, one task per batch, random flips/rotations, fresh noise; goal >= 5,000/s."
        )


if __name__ == "__main__":
    main()
