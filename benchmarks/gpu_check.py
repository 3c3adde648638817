"""Every CUDA path of iptbench on one GPU, in one script (< 5 minutes), with one table at the end.

    python benchmarks/gpu_check.py                 # needs CUDA; on a CPU machine it exits at once
    python benchmarks/gpu_check.py --json gpu.json # the numbers for the README, as JSON too

What it runs, each through the code users run:
1. `iptbench.train` on ipt-base in bf16 autocast (TF32, channels-last), torch.compile off and on: steps/s,
   patches/s, and the achieved TFLOP/s (FLOPs of one step counted by torch's FlopCounterMode) against the
   device's bf16 dense peak; with EMA and validation on `mini` during the run.
2. `torchrun --nproc-per-node 1` with IPTBENCH_DDP=1: the nccl process group and DDP on one GPU, all six
   tasks, validation gathered through the group.
3. `iptbench.models.restore` in bf16 (what restore/eval do on CUDA) and in fp32 (tiling with fp32
   windows, TF32 off): windows/s, TFLOP/s, and how far bf16 moves the output (PSNR of bf16 vs fp32).
4. `iptbench eval` on a Set5-layout folder of generated images with the trained weights: on CUDA (bf16)
   and on the CPU (fp32), and the PSNR difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

PEAK_BF16_TFLOPS = (  # dense bf16 tensor-core peaks from the vendors' datasheets; first match wins
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0), ("A100", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("A10G", 70.0), ("A10", 125.0), ("L4", 121.0), ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
)  # fmt: skip
ROWS: list[dict[str, Any]] = []
# What the checks run on; --cpu-dry-run switches to the CPU and ipt-tiny to test the script's plumbing.
RUN: dict[str, Any] = {"device": "cuda", "model": "ipt-base", "backend": "nccl", "compile": (False, True)}


def sync() -> None:
    if RUN["device"] == "cuda":
        torch.cuda.synchronize()


def row(check: str, setting: str, result: str, seconds: float, **numbers: Any) -> None:
    ROWS.append(
        {"check": check, "setting": setting, "result": result, "seconds": round(seconds, 1), **numbers}
    )
    print(f"[gpu_check] {check} | {setting} | {result} | {seconds:.1f} s", flush=True)


def guarded(check: str, setting: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run a check; a failure becomes a FAILED row with its first line, and the script goes on."""

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            t0 = time.perf_counter()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - every failure is reported in the table
                traceback.print_exc()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                row(check, setting, f"FAILED: {type(exc).__name__}: {first}", time.perf_counter() - t0)

        return run

    return wrap


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for key, v in PEAK_BF16_TFLOPS if key in name), None)


def make_data(root: Path, tasks: tuple[str, ...], images: int) -> Path:
    from iptbench.pairs.builder import BuildConfig, build
    from iptbench.pairs.sources import generate_images, resolve_sources

    generate_images(root / f"imgs-{len(tasks)}", images, (192, 192), seed=0)
    out = root / f"pairs-{len(tasks)}.h5"
    build(BuildConfig(tasks, 48, 8, 0, "none"), resolve_sources(root / f"imgs-{len(tasks)}"), out, workers=4)
    return out


def step_flops(batch: int, task: str) -> float:
    """FLOPs of one training step (forward with tokens, L1 + contrastive, backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    from iptbench.models import create_model
    from iptbench.train import l1_loss, supcon_loss

    dev = RUN["device"]
    model = create_model(RUN["model"], task, device=dev)
    scale = int(task[-1]) if task.startswith("sr") else 1
    x = torch.rand(batch, 3, 48, 48, device=dev) * 255
    y = torch.rand(batch, 3, 48 * scale, 48 * scale, device=dev) * 255
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            out, tokens = model(x, task, return_features=True)
        loss = l1_loss(out, y) + 0.1 * supcon_loss(tokens, torch.arange(batch, device=dev) // 2)
        loss.backward()
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()
    return float(counter.get_total_flops())


def timed_train(cfg: Any, warmup: int) -> tuple[Any, float, float]:
    """(result, steps/s after `warmup` steps, seconds to the first step) of a real trainer run."""
    from iptbench.train import train

    stamps: list[float] = []
    t0 = time.perf_counter()
    result = train(cfg, on_step=lambda info: stamps.append(time.perf_counter()))
    sync()
    steady = stamps[warmup:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else float("nan")
    return result, rate, stamps[0] - t0


def check_training(args: argparse.Namespace, data: Path, root: Path, peak: float | None) -> None:
    from iptbench.train import TrainConfig

    flops = step_flops(args.batch, "sr-x2")
    for compiled in RUN["compile"]:
        setting = f"{RUN['model']} bf16, batch {args.batch}, compile {'on' if compiled else 'off'}"

        @guarded("train", setting)
        def run(compiled: bool = compiled, setting: str = setting) -> None:
            cfg = TrainConfig(
                data=(str(data),), out=str(root / f"train-{compiled}"), model=RUN["model"], tasks=("sr-x2",),
                steps=args.steps, batch_size=args.batch, workers=4, device=RUN["device"], compile=compiled,
                channels_last=True, ema=0.999, val=("mini",), val_every=args.steps, log_every=5,
                save_every=args.steps, resume=False,
            )  # fmt: skip
            t0 = time.perf_counter()
            result, rate, first = timed_train(cfg, warmup=3)
            tflops = flops * rate / 1e12
            share = f", {100 * tflops / peak:.1f} % of {peak:.0f}" if peak else ""
            loss = result.final.loss if result.final else float("nan")
            val = result.best[1] if result.best else float("nan")
            text = (
                f"{rate:.2f} steps/s, {rate * args.batch:.0f} patches/s, {tflops:.1f} TFLOP/s{share}; "
                f"first step {first:.1f} s; loss {loss:.3g}; mini val {val:.2f} dB (EMA)"
            )
            row("train", setting, text, time.perf_counter() - t0, steps_per_s=rate, tflops=tflops)

        run()


def check_ddp(args: argparse.Namespace, data6: Path, root: Path) -> None:
    setting = f"torchrun 1 process, {RUN['backend']}, 6 tasks"

    @guarded("ddp", setting)
    def run() -> None:
        out = root / "ddp"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m"]
        cmd += ["iptbench", "train", str(data6), "--out", str(out), "--model", RUN["model"], "--steps", "12"]
        cmd += [
            "--batch-size",
            str(args.batch),
            "--device",
            RUN["device"],
            "--val",
            "mini",
            "--val-every",
            "12",
        ]
        cmd += ["--workers", "4", "--log-every", "4"]
        env = {**os.environ, "IPTBENCH_DDP": "1", "COLUMNS": "200"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
        details = json.loads((out / "config.json").read_text())["details"]
        backend = details.get("process_group")
        if backend != RUN["backend"]:
            raise RuntimeError(f"the run joined process group {backend!r}, not {RUN['backend']}")
        last = [ln for ln in proc.stdout.splitlines() if ln.startswith("done:")] or ["(no done line)"]
        row("ddp", setting, f"ok, backend {backend}; {last[-1].split(';')[0]}", time.perf_counter() - t0)

    run()


def _fp32_restore(model: Any, image: torch.Tensor, task: str) -> torch.Tensor:
    """fp32 windows on CUDA (restore itself always uses bf16 there): the same tiling, TF32 off."""
    from iptbench.models.tiling import tile_fast

    index, prev = model.task_index(task), torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            return tile_fast(lambda b: model(b, index), image.to(RUN["device"]), 48, model.scale_for(index))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = prev


def check_restore(weights: Path, peak: float | None) -> None:
    size = 512 if RUN["device"] == "cuda" else 96

    @guarded("restore", f"{RUN['model']} sr-x2, {size}x{size}, fast tiling, bf16 vs fp32")
    def run() -> None:
        from torch.utils.flop_counter import FlopCounterMode

        from iptbench.metrics import psnr
        from iptbench.models import count_windows, load_model, restore

        dev = RUN["device"]
        model = load_model(weights, device=dev).eval()
        image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255
        windows = count_windows(model, size, size, tile_mode="fast")
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                model(torch.rand(8, 3, 48, 48, device=dev) * 255, "sr-x2")
        per_window = counter.get_total_flops() / 8
        results = {}
        for name, fn in (("bf16", lambda: restore(model, image, "sr-x2", window_batch=256)),
                         ("fp32", lambda: _fp32_restore(model, image, "sr-x2"))):  # fmt: skip
            fn()  # warm-up
            sync()
            t0 = time.perf_counter()
            out = fn()
            sync()
            results[name] = (out.float().cpu(), time.perf_counter() - t0)
        gap = float(psnr(results["bf16"][0], results["fp32"][0], crop=0, channel="rgb")[0])
        parts = []
        for name, (_, seconds) in results.items():
            rate = windows / seconds
            tflops = per_window * rate / 1e12
            share = f" ({100 * tflops / peak:.1f} % of peak)" if peak and name == "bf16" else ""
            parts.append(f"{name} {seconds:.2f} s, {rate:.0f} windows/s, {tflops:.1f} TFLOP/s{share}")
        text = "; ".join(parts) + f"; bf16 vs fp32 PSNR {gap:.1f} dB"
        row(
            "restore",
            f"{RUN['model']} sr-x2, {size}x{size}, fast tiling",
            text,
            sum(s for _, s in results.values()),
        )

    run()


def check_eval(weights: Path, root: Path) -> None:
    @guarded("eval", f"Set5-layout folder (generated), sr-x2, {RUN['device']} bf16 vs cpu fp32")
    def run() -> None:
        import csv

        from iptbench.evaluation import EvalConfig, parse_model_specs, run_eval
        from iptbench.pairs.sources import generate_images

        data_root = root / "bench"
        generate_images(data_root / "Set5" / "HR", 5, (144, 144), seed=1)
        means = {}
        t0 = time.perf_counter()
        for i, device in enumerate((RUN["device"], "cpu")):
            out = root / f"eval-{i}-{device}"
            cfg = EvalConfig(suite="sr", data_root=data_root, out=out, datasets=["Set5"], progress=False)
            run_eval(cfg, parse_model_specs([f"ipt:{weights}"], device=device))
            with open(out / "summary.csv", newline="") as f:
                means[device] = {r["task"]: float(r["psnr"]) for r in csv.DictReader(f)}
        dev = RUN["device"]
        delta = {t: means[dev][t] - means["cpu"][t] for t in means[dev]}
        text = ", ".join(
            f"{t} {means[dev][t]:.3f} vs {means['cpu'][t]:.3f} ({d:+.3f} dB)" for t, d in delta.items()
        )
        row(
            "eval",
            f"Set5-layout (generated), {RUN['device']} bf16 vs cpu fp32",
            text,
            time.perf_counter() - t0,
        )

    run()


def print_table(device: str, peak: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"gpu_check: {device}, torch {torch.__version__}, bf16 peak {peak or 'unknown'} TFLOP/s"
    )
    for column in ("check", "setting", "result", "s"):
        table.add_column(column, overflow="fold")
    for r in ROWS:
        table.add_row(r["check"], r["setting"], r["result"], f"{r['seconds']:.1f}")
    Console(width=200).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=30, help="training steps per run (default 30)")
    parser.add_argument("--batch", type=int, default=32, help="patches per step (default 32, the paper's)")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="bf16 dense peak, if not in the table"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="test this script's plumbing on the CPU (ipt-tiny, no numbers)",
    )
    args = parser.parse_args()
    if args.cpu_dry_run:
        RUN.update(device="cpu", model="ipt-tiny", backend="gloo", compile=(False,))
        args.steps, args.batch = min(args.steps, 6), min(args.batch, 2)
    elif not torch.cuda.is_available():
        print(
            "gpu_check.py needs CUDA: torch sees no GPU on this machine (run it where one is)",
            file=sys.stderr,
        )
        return 2
    device = torch.cuda.get_device_name(0) if RUN["device"] == "cuda" else "cpu (dry run)"
    peak = peak_tflops(device, args.peak_tflops) if RUN["device"] == "cuda" else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_data(root, ("sr-x2",), 16)
        data6 = make_data(root, ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50"), 8)
        check_training(args, data, root, peak)
        check_ddp(args, data6, root)
        weights = root / "train-False" / "model.safetensors"
        if weights.is_file():
            check_restore(weights, peak)
            check_eval(weights, root)
    print_table(device, peak)
    print(f"gpu_check: {time.perf_counter() - start:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "peak_tflops": peak, "rows": ROWS}, indent=1))
    return 1 if any(r["result"].startswith("FAILED") for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
