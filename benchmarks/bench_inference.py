"""IPT inference speed: windows/s, official vs fast tiling on a 256 x 256 x4 input, their PSNR gap, and
what bf16 (fp16 on CUDA) costs and gains against fp32 on a briefly trained model (Set5 x2).

Reference (not measured here): the official PyTorch code (huawei-noah/Pretrained-IPT) on a 2-core CPU
takes about 0.5 s per 48 x 48 window in fp32 and 250 s for a 256 x 256 x4 input (397 windows).
Measured in the same run: our official-mode reproduction, against which fast mode's ratio is reported.

    python benchmarks/bench_inference.py            # full: ipt-base everywhere (a few minutes on 2 cores)
    python benchmarks/bench_inference.py --quick    # < 60 s: ipt-base batch 1/8, ipt-tiny 128x128 tiling
    python benchmarks/bench_inference.py --precision-only --train-seconds 120   # only the precision table
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

from iptbench.models import IPT, IPTConfig, count_windows, create_model, list_models, restore
from iptbench.models.tiling import official_window_count

console = Console(width=130)  # tables stay readable when piped into a log
OFFICIAL_S_PER_WINDOW = 0.5  # official code, 2-core CPU, fp32
OFFICIAL_256_X4_S = 250.0
BF16_PEAK_H200 = 989e12  # dense bf16 TFLOP/s of an H200 SXM (the 40% goal is ~396 TFLOP/s)


def window_macs(cfg: IPTConfig, scale: int) -> float:
    """Multiply-accumulates of one forward on one window (heads, body, tail), counted from the config."""
    c, p, pd = cfg.n_feats, cfg.patch_size, cfg.patch_dim
    e, n = cfg.embedding_dim, (p // pd) ** 2
    hid = 4 * e
    head = p * p * (3 * c * 9 + 4 * c * c * 25)
    attn = 4 * n * e * e + 2 * n * n * e
    ffn = 2 * n * e * hid
    body = n * e * e + 2 * n * e * hid + cfg.num_layers * (attn + ffn) + cfg.num_layers * (2 * attn + ffn)
    if scale in (2, 4):
        up = sum((p * 2**k) ** 2 * c * 4 * c * 9 for k in range(scale.bit_length() - 1))
    elif scale == 3:
        up = p * p * c * 9 * c * 9
    else:
        up = 0
    return float(head + body + up + (p * scale) ** 2 * c * 3 * 9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def throughput(model: IPT, task: str, batches: list[int], device: torch.device, repeats: int) -> Table:
    cuda = device.type == "cuda"
    macs = window_macs(model.config, model.scale_for(task))
    table = Table(
        title=f"{model.config.name} windows/s, {task}, {'bf16 autocast' if cuda else 'fp32'} on {device}"
    )
    for col in ("window batch", "s / window", "windows/s", "TFLOP/s", "vs official code (0.5 s/window)"):
        table.add_column(col, justify="right")
    for b in batches:
        x = torch.rand(b, 3, model.patch_size, model.patch_size, device=device) * 255
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)

        def step(x: torch.Tensor = x) -> None:
            with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
                model(x, task)

        if cuda or b == batches[0]:
            step()  # warm-up (allocator, kernels); on CPU once is enough
        sec = timed(step, device, repeats if b <= 8 else 1) / b
        flops = 2 * macs / sec
        ref = f"{OFFICIAL_S_PER_WINDOW / sec:.2f}x faster" if not cuda else "-"
        table.add_row(str(b), f"{sec:.4f}", f"{1 / sec:,.1f}", f"{flops / 1e12:.3f}", ref)
        if cuda:
            table.caption = f"40% of H200 bf16 peak = {0.4 * BF16_PEAK_H200 / 1e12:.0f} TFLOP/s"
    return table


def zoo_table(device: torch.device, quick: bool) -> Table:
    """Parameters and windows/s (batch 8) of every registered model."""
    cuda = device.type == "cuda"
    table = Table(title=f"model zoo, window batch 8, {'bf16 autocast' if cuda else 'fp32'} on {device}")
    for col in ("model", "params (sr-x2)", "params (6 tasks)", "GMAC / window (x2)", "windows/s"):
        table.add_column(col, justify="right")
    for name in list_models():
        single = create_model(name, tasks="sr-x2", device="meta")
        six = create_model(name, device="meta").num_parameters()
        macs = window_macs(single.config, 2) / 1e9
        if quick and name == "ipt-base":
            speed = "see above"
        else:
            model = create_model(name, tasks="sr-x2", seed=0).to(device).eval()
            x = torch.rand(8, 3, 48, 48, device=device) * 255

            def step(model: IPT = model, x: torch.Tensor = x) -> None:
                with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
                    model(x, "sr-x2")

            step()
            speed = f"{8 / timed(step, device, 1 if quick else 2):,.1f}"
        table.add_row(name, f"{single.num_parameters():,}", f"{six:,}", f"{macs:.2f}", speed)
    return table


def _vm_hwm() -> int:
    """Peak RSS of this process image (VmHWM); unlike ru_maxrss it is not inherited from the parent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _tiling_child(
    name: str, size: int, mode: str, batch: int, device: str, threads: int, queue: mp.Queue
) -> None:
    """Runs in a fresh interpreter so its peak RSS belongs to this mode alone."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = create_model(name, tasks="sr-x4", seed=0).to(dev).eval()
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255
    restore(model, image[..., :48, :48], "sr-x4", tile_mode="fast")  # warm-up
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    restore(model, image, "sr-x4", tile_mode=mode, window_batch=batch)  # type: ignore[arg-type]
    _sync(dev)
    sec = time.perf_counter() - t0
    if dev.type == "cuda":
        peak = f"{torch.cuda.max_memory_allocated(dev) / 2**20:,.0f} MiB CUDA max allocated"
    else:
        peak = f"{_vm_hwm() / 2**20:,.0f} MiB peak RSS"
    queue.put((sec, peak))


def tiling_table(name: str, size: int, batch: int, device: torch.device) -> Table:
    ctx = mp.get_context("spawn")
    table = Table(title=f"{name}, {size}x{size} input at x4, window batch {batch}, {device}")
    for col in ("mode", "windows run", "seconds", "s / window", "peak memory (own process)", "speed-up"):
        table.add_column(col, justify="right")
    model = create_model(name, tasks="sr-x4", device="meta")
    results: dict[str, float] = {}
    for mode in ("official", "fast"):
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_tiling_child, args=(name, size, mode, batch, str(device), torch.get_num_threads(), queue)
        )
        proc.start()
        sec, peak = queue.get()
        proc.join()
        n = count_windows(model, size, size, tile_mode=mode)  # type: ignore[arg-type]
        results[mode] = sec
        table.add_row(mode, str(n), f"{sec:.1f}", f"{sec / n:.3f}", peak, f"{results['official'] / sec:.2f}x")
    table.caption = (
        f"official code: {official_window_count(size, size)} windows (its top/left strips repeat "
        "grid windows; "
        f"run once here); reference {OFFICIAL_256_X4_S:.0f} s for 256x256 x4 with ipt-base on 2 cores. "
        "Peak RSS includes the interpreter, torch and the weights."
    )
    return table


def _psnr_pairs(root: Path, split: str, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from iptbench.images import read_image

    pairs = []
    for hr_path in sorted((root / split / "HR").glob("*.png")):
        lr = read_image(root / split / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        hr = read_image(hr_path)[: lr.shape[0] * scale, : lr.shape[1] * scale]
        pairs.append((lr, hr))
    return pairs


def train_tiny(root: Path, seconds: float, device: torch.device) -> tuple[IPT, int]:
    """ipt-tiny (sr-x2) trained `seconds` on B100 x2 patches: a model whose outputs mean something."""
    from iptbench.images import image_to_tensor

    scale, patch = 2, 48
    train = _psnr_pairs(root, "B100", scale)
    torch.manual_seed(0)
    rng = random.Random(0)
    model = create_model("ipt-tiny", tasks="sr-x2", seed=0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        lrs, hrs = [], []
        for _ in range(8):
            lr, hr = train[rng.randrange(len(train))]
            y, x = rng.randrange(lr.shape[0] - patch + 1), rng.randrange(lr.shape[1] - patch + 1)
            lrs.append(image_to_tensor(lr[y : y + patch, x : x + patch]))
            hrs.append(image_to_tensor(hr[y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]))
        loss = torch.nn.functional.l1_loss(
            model(torch.cat(lrs).to(device), "sr-x2"), torch.cat(hrs).to(device)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return model.eval(), steps


def psnr_gap(root: Path, model: IPT, title: str, device: torch.device) -> Table:
    """Score Set5 x2 in both tiling modes with the briefly trained model."""
    from iptbench.images import image_to_tensor
    from iptbench.metrics import psnr

    scale = 2
    test = _psnr_pairs(root, "Set5", scale)
    table = Table(title=f"Set5 x2 Y-PSNR (crop 2) of {title}")
    for col in ("image", "official (dB)", "fast (dB)", "fast - official", "windows official/fast"):
        table.add_column(col, justify="right")
    gaps, win_o, win_f = [], 0, 0
    for (lr, hr), name in zip(
        test, sorted(p.stem for p in (root / "Set5" / "HR").glob("*.png")), strict=True
    ):
        x, target = image_to_tensor(lr), image_to_tensor(hr)
        vals = {}
        for mode in ("official", "fast"):
            out = restore(model, x, "sr-x2", tile_mode=mode).cpu()  # type: ignore[arg-type]
            vals[mode] = psnr(out, target, crop=scale, channel="y").item()
        n_o = count_windows(model, *lr.shape[:2], tile_mode="official")
        n_f = count_windows(model, *lr.shape[:2], tile_mode="fast")
        win_o, win_f = win_o + n_o, win_f + n_f
        gaps.append(vals["fast"] - vals["official"])
        table.add_row(
            name, f"{vals['official']:.3f}", f"{vals['fast']:.3f}", f"{gaps[-1]:+.3f}", f"{n_o}/{n_f}"
        )
    table.add_row("mean", "", "", f"{np.mean(gaps):+.3f}", f"{win_o}/{win_f} = {win_o / win_f:.1f}x")
    return table


def cpu_flags() -> str:
    """The CPU features that decide whether bf16 pays off on CPU (AMX / AVX512-BF16), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?"
    )
    flags = set(next((ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("flags")), "").split())
    wanted = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}; {', '.join(wanted) or 'no AVX-512 / AMX'}"


def precision_cost(root: Path, model: IPT, title: str, device: torch.device, quick: bool) -> Table:
    """Model time and Set5 x2 PSNR at every precision against fp32, same weights, fast tiling."""
    from iptbench.images import image_to_tensor
    from iptbench.metrics import psnr

    test = _psnr_pairs(root, "Set5", 2)
    if quick:  # the two smallest images
        test = sorted(test, key=lambda pair: pair[0].size)[:2]
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    windows = sum(count_windows(model, *lr.shape[:2]) for lr, _ in test)
    results: dict[str, tuple[float, list[float]]] = {}
    for precision in precisions:
        restore(model, image_to_tensor(test[0][0][:48, :48]), "sr-x2", precision=precision)  # warm-up
        seconds, values = 0.0, []
        for lr, hr in test:
            x = image_to_tensor(lr)
            _sync(device)
            t0 = time.perf_counter()
            out = restore(model, x, "sr-x2", precision=precision)
            _sync(device)
            seconds += time.perf_counter() - t0
            values.append(psnr(out.cpu(), image_to_tensor(hr), crop=2, channel="y").item())
        results[precision] = (seconds, values)
    where = cpu_flags() if device.type == "cpu" else torch.cuda.get_device_name(device)
    table = Table(
        title=f"precision on {device} ({where}): {title}, Set5 x2 ({len(test)} images, {windows} windows)"
    )
    for col in (
        "precision",
        "model seconds",
        "s / window",
        "speed vs fp32",
        "mean PSNR",
        "PSNR - fp32",
        "max |per-image diff|",
    ):
        table.add_column(col, justify="right")
    ref_s, ref_v = results["fp32"]
    for precision, (seconds, values) in results.items():
        diffs = [a - b for a, b in zip(values, ref_v, strict=True)]
        table.add_row(
            precision,
            f"{seconds:.2f}",
            f"{seconds / windows:.4f}",
            f"{ref_s / seconds:.2f}x",
            f"{np.mean(values):.4f}",
            f"{np.mean(diffs):+.4f}",
            f"{max(abs(d) for d in diffs):.4f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="under 60 s: fewer repeats, ipt-tiny for tiling")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument(
        "--data-root", type=Path, default=None, help="benchmark images (default $IPTBENCH_DATA)"
    )
    parser.add_argument(
        "--train-seconds", type=float, default=None, help="ipt-tiny training time for the PSNR check"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--precision-only", action="store_true", help="only train ipt-tiny and measure fp32 vs bf16 (fp16)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}")

    if not args.precision_only:
        speed_tables(device, args.quick)
    root = args.data_root or (Path(os.environ["IPTBENCH_DATA"]) if os.environ.get("IPTBENCH_DATA") else None)
    if root is None or not (root / "Set5" / "LR_bicubic" / "X2").is_dir() or not (root / "B100").is_dir():
        console.print(
            "[yellow]PSNR checks skipped: set IPTBENCH_DATA (or --data-root) to a folder with Set5, B100[/]"
        )
        return
    seconds = args.train_seconds if args.train_seconds is not None else (6.0 if args.quick else 120.0)
    model, steps = train_tiny(root, seconds, device)
    title = f"ipt-tiny trained {seconds:.0f} s ({steps} steps x 8 patches, B100)"
    if not args.precision_only:
        console.print(psnr_gap(root, model, title, device))
    console.print(precision_cost(root, model, title, device, args.quick))


def speed_tables(device: torch.device, quick: bool) -> None:
    cuda = device.type == "cuda"
    base = create_model("ipt-base", tasks="sr-x4", seed=0).to(device).eval()
    if cuda:
        base.to(memory_format=torch.channels_last)
        batches = [1, 8, 64] if quick else [1, 8, 64, 256, 512]
    else:
        batches = [1, 8] if quick else [1, 8, 64]
    console.print(throughput(base, "sr-x4", batches, device, repeats=1 if quick else 2))
    del base
    console.print(zoo_table(device, quick))
    if quick and not cuda:
        console.print(tiling_table("ipt-tiny", 128, 64, device))
    else:
        console.print(tiling_table("ipt-base", 256, 64, device))


if __name__ == "__main__":
    main()
