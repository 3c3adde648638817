"""How fast `iptbench eval` is, and how much of its time is not the model.

1. bicubic baseline on B100 x4 through the whole eval loop (load, resize, PSNR/SSIM, CSVs), images/s;
2. PSNR + SSIM alone on the same B100 x4 pairs (the reference row of the table), images/s;
3. an IPT model (random weights) on a few small images: share of eval time spent outside the model
   (I/O, noise, metrics, writing), goal < 10 %.

B100 comes from --data-root / $IPTBENCH_DATA; without it a synthetic B100 (100 images of 481x321) is
generated so the benchmark still runs. `--quick` (< 60 s) uses 10 B100 images and ipt-small instead of
ipt-base.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from iptbench.benchmarks.registry import BenchmarkDataset, locate
from iptbench.evaluation.model_specs import Restorer, parse_model_spec
from iptbench.evaluation.runner import EvalConfig, run_eval
from iptbench.evaluation.scoring import Scorer
from iptbench.images import image_to_tensor, write_png
from iptbench.metrics import get_profile
from iptbench.models import baselines
from iptbench.tasks import get_task

console = Console(width=120)


def _synthetic(root: Path, name: str, count: int, size: tuple[int, int]) -> None:
    rng = np.random.RandomState(0)
    h, w = size
    for i in range(count):
        coarse = rng.randint(0, 256, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
        img = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 6, (h, w, 3))
        write_png(root / name / "HR" / f"{i:03d}.png", np.clip(img, 0, 255).astype(np.uint8))


def _data_root(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    root = Path(args.data_root or os.environ.get("IPTBENCH_DATA") or tmp / "none")
    if locate("B100", root).state == "found":
        return root, f"B100 from {root}"
    _synthetic(tmp / "synthetic", "B100", 100, (321, 481))
    return tmp / "synthetic", "synthetic B100 (no real data found)"


def _x4_only(restorer: Restorer) -> Restorer:
    return dataclasses.replace(restorer, tasks=("sr-x4",))  # identity and all, only x4


def bench_metrics(root: Path, limit: int) -> tuple[float, int]:
    dataset = BenchmarkDataset("B100", root)
    task = get_task("sr-x4")
    pairs = []
    for item in dataset.items(task)[:limit]:
        lr, hr = dataset.load(item, task)
        pairs.append((baselines.bicubic_upscale(image_to_tensor(lr), 4), image_to_tensor(hr)))
    scorer, profile = Scorer(lpips=False), get_profile("sr")
    start = time.perf_counter()
    for restored, target in pairs:
        scorer(restored, target, task, profile)  # exactly what the eval loop calls (Y, crop 4)
    return time.perf_counter() - start, len(pairs)


def bench_ipt(tmp: Path, quick: bool) -> dict[str, float]:
    from iptbench.models import create_model, save_model

    torch.manual_seed(0)
    name = "ipt-small" if quick else "ipt-base"
    path = tmp / f"{name}.safetensors"
    save_model(create_model(name, tasks="sr-x4"), path)
    _synthetic(tmp / "ipt", "Set5", 5, (288, 288))
    config = EvalConfig(
        suite="sr", data_root=tmp / "ipt", out=tmp / "ipt-out", datasets=["Set5"], progress=False
    )
    restorer = parse_model_spec(f"{name}=ipt:{path}", device="cpu")
    result = run_eval(config, [restorer], console=Console(quiet=True))
    return {**result.timing, "name": name}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument(
        "--data-root", type=Path, default=None, help="Folder holding B100/ (default $IPTBENCH_DATA)."
    )
    parser.add_argument("--quick", action="store_true", help="10 B100 images and ipt-small: under a minute.")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root, source = _data_root(args, tmp)
        limit = 10 if args.quick else 100
        metric_s, n_metric = bench_metrics(root, limit)
        config = EvalConfig(
            suite="sr", data_root=root, out=tmp / "bicubic", datasets=["B100"], progress=False, limit=limit
        )
        result = run_eval(config, [_x4_only(parse_model_spec("bicubic"))], console=Console(quiet=True))
        bicubic_s, n_images = result.timing["total"], result.images_scored
        ipt = bench_ipt(tmp, args.quick)
    metric_rate = n_metric / metric_s
    bicubic_rate = n_images / bicubic_s
    outside = 1.0 - ipt["model"] / ipt["total"]
    table = Table(
        title=f"iptbench eval speed ({source}, {torch.get_num_threads()} threads)", title_justify="left"
    )
    for column in ("measurement", "images/s", "ratio vs metrics alone", "note"):
        table.add_column(column, justify="left" if column in ("measurement", "note") else "right")
    table.add_row(
        "PSNR+SSIM alone, B100 x4 (reference)", f"{metric_rate:.1f}", "1.00", f"{n_metric} pairs, Y, crop 4"
    )
    table.add_row(
        f"eval loop, bicubic, B100 x4 ({n_images} images)",
        f"{bicubic_rate:.1f}",
        f"{bicubic_rate / metric_rate:.2f}",
        "load + resize + metrics + CSVs",
    )
    ipt_rate = 5 / ipt["total"]
    table.add_row(
        f"eval loop, {ipt['name']} (random weights), 5 images",
        f"{ipt_rate:.2f}",
        f"{ipt_rate / metric_rate:.3f}",
        f"outside the model: {outside:.1%} (goal < 10%) "
        f"[load {ipt['load']:.2f}s, metrics {ipt['metrics']:.2f}s, write {ipt['write']:.2f}s]",
    )
    console.print(table)


if __name__ == "__main__":
    main()
