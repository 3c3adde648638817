"""Training speed: steps/s of `iptbench.train` for ipt-tiny / ipt-small, and the contrastive loss.

Both references are measured in the same run:
- a bare step (forward, L1 + contrastive, backward, clip, Adam on one in-memory batch) for each model, so
  the ratio shows what the trainer adds (HDF5 reads, augmentation, logging, checkpoints);
- the per-anchor Python loop statement of SupCon, against which the vectorised loss's speed-up is given.

    python benchmarks/bench_train.py            # full: batch 8, 12 steps, 2048 tokens (a few minutes)
    python benchmarks/bench_train.py --quick    # < 60 s: batch 4, 6 steps, 512 tokens, 1 thread
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from iptbench.models import create_model
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.sources import generate_images, resolve_sources
from iptbench.train import (
    ProgressInfo,
    TrainConfig,
    clip_per_tensor,
    l1_loss,
    supcon_loss,
    supcon_loss_reference,
    train,
)

console = Console()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_steps_per_s(name: str, batch: int, steps: int, device: torch.device) -> float:
    """Steps/s of the model update alone on a fixed random sr-x2 batch (first step excluded)."""
    model = create_model(name, "sr-x2,denoise-30", device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=5e-5)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, 48, 48, generator=g) * 255).to(device)
    y = (torch.rand(batch, 3, 96, 96, generator=g) * 255).to(device)
    labels = torch.arange(batch, device=device)
    amp = device.type == "cuda"
    start = 0.0
    for k in range(steps + 1):
        if k == 1:
            _sync(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out, tokens = model(x, "sr-x2", return_features=True)
        loss = l1_loss(out, y) + 0.1 * supcon_loss(tokens, labels)
        loss.backward()
        clip_per_tensor(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return steps / (time.perf_counter() - start)


def trainer_steps_per_s(name: str, data: Path, root: Path, batch: int, steps: int, device: str) -> float:
    """Steps/s of the real trainer (CLI path minus printing), from step 2 to the end."""
    stamps: list[float] = []
    cfg = TrainConfig(
        data=(str(data),),
        out=str(root / name),
        model=name,
        steps=steps + 1,
        batch_size=batch,
        workers=1,
        save_every=max(steps // 2, 1),
        log_every=1,
        device=device,
        resume=False,
    )

    def on_step(info: ProgressInfo) -> None:
        stamps.append(time.perf_counter())

    train(cfg, on_step=on_step)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def contrastive_times(n_tokens: int, dim: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """(vectorised s, loop s) for forward + backward on n_tokens tokens of 256-token windows."""
    g = torch.Generator().manual_seed(1)
    images = max(n_tokens // 256, 2)
    feats = torch.randn(images, n_tokens // images, dim, generator=g).to(device).requires_grad_()
    labels = (torch.arange(images) // 2).to(device)  # pairs of windows share a source image

    def run(fn: object) -> float:
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            fn(feats, labels).backward()  # type: ignore[operator]
            _sync(device)
            best = min(best, time.perf_counter() - t)
        return best

    return run(supcon_loss), run(supcon_loss_reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches and fewer steps (< 60 s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1 with --quick, torch's default otherwise; on a busy 2-core "
        "machine two threads spin on each other and steps get ~10x slower)",
    )
    parser.add_argument("--models", default="ipt-tiny,ipt-small", help="comma list of registered models")
    args = parser.parse_args()
    threads = args.threads if args.threads is not None else (1 if args.quick else 0)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(args.device)
    batch, steps, tokens = (4, 6, 512) if args.quick else (8, 12, 2048)

    table = Table(title=f"training steps/s ({device}, {torch.get_num_threads()} threads, batch {batch})")
    for col in ("model", "bare step/s", "trainer step/s", "trainer / bare", "patches/s"):
        table.add_column(col, justify="right" if col != "model" else "left")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_images(root / "imgs", 8, (128, 128), seed=0)
        data = root / "pairs.h5"
        build(BuildConfig(("sr-x2", "denoise-30"), 48, 2, 0, "none"), resolve_sources(root / "imgs"), data)
        for name in args.models.split(","):
            bare = bare_steps_per_s(name, batch, steps, device)
            full = trainer_steps_per_s(name, data, root, batch, steps, args.device)
            table.add_row(name, f"{bare:.2f}", f"{full:.2f}", f"{full / bare:.2f}x", f"{full * batch:.1f}")
    console.print(table)

    vec, loop = contrastive_times(tokens, 144, 3 if args.quick else 5, device)
    t2 = Table(title="supervised-contrastive loss, forward + backward (ipt-tiny width E=144)")
    for col in ("tokens", "vectorised ms", "per-anchor loop ms", "speed-up"):
        t2.add_column(col, justify="right")
    t2.add_row(str(tokens), f"{vec * 1e3:.1f}", f"{loop * 1e3:.1f}", f"{loop / vec:.0f}x")
    console.print(t2)


if __name__ == "__main__":
    main()
