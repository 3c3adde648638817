"""Speed of the exact measurement core against references measured in the same run.

* imresize x4 down, a batch of eight 1024x1024 RGB images: iptbench (float32 ``matlab`` and
  ``matlab_uint8``) vs Pillow's C bicubic (per image, reducing_gap=None) vs a direct NumPy gather.
* the polyphase CPU path of integer downscales vs the dense band-GEMM path it replaced, on the 1024 px
  batch and on build-data's patch batches (2 crops of 96/144/192 px down to 48 px).
* SSIM of a 512x512 RGB pair: iptbench vs skimage (values asserted equal within 1e-6).
Times are the best of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter
from skimage.metrics import structural_similarity

import iptbench.ops.resize as resize_module
from iptbench.metrics import ssim
from iptbench.ops import imresize
from iptbench.ops.resize import contributions


@contextlib.contextmanager
def dense_path_only() -> Iterator[None]:
    """imresize without its polyphase fast path: the dense band GEMMs every other case uses."""
    saved = resize_module.polyphase_plan
    resize_module.polyphase_plan = lambda *args: None
    try:
        yield
    finally:
        resize_module.polyphase_plan = saved


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Direct NumPy MATLAB bicubic on H x W x C float: gather the taps per axis, weight and sum."""
    out = img
    for axis in (0, 1):
        n = out.shape[axis]
        idx, w = contributions(n, math.ceil(n * scale), scale)
        taken = np.take(out, idx, axis=axis)  # axis expands to out_len x P
        if axis == 0:
            out = np.einsum("op...,op->o...", taken, w)
        else:
            out = np.einsum("hop...,op->ho...", taken, w)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats (finishes in well under a minute)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (best is kept)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's own; 1 on a busy machine)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeat = 1 if args.quick else args.repeat
    console = Console()
    rng = np.random.default_rng(0)

    # ---- imresize ---------------------------------------------------------------------------------
    n_img, side = 8, 1024
    batch_u8 = rng.integers(0, 256, size=(n_img, side, side, 3), dtype=np.uint8)
    batch_t = torch.from_numpy(batch_u8).permute(0, 3, 1, 2).contiguous()
    batch_f = batch_t.float()
    pil_images = [Image.fromarray(a) for a in batch_u8]
    small = side // 4

    t_pil = best_time(
        lambda: [im.resize((small, small), Image.Resampling.BICUBIC, reducing_gap=None) for im in pil_images],
        repeat,
    )
    t_ours = best_time(lambda: imresize(batch_f, 1 / 4), repeat)
    t_ours_u8 = best_time(lambda: imresize(batch_t, 1 / 4, "matlab_uint8"), repeat)
    one = batch_u8[0].astype(np.float64)
    t_np = best_time(lambda: numpy_imresize(one, 1 / 4), max(1, repeat // 2)) * n_img
    got = imresize(batch_t[:1].double(), 1 / 4)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - numpy_imresize(one, 1 / 4)).max() < 1e-9, "imresize disagrees with the NumPy version"

    batch_cl = torch.from_numpy(batch_u8).permute(0, 3, 1, 2).float()  # channels-last memory
    t_cl = best_time(lambda: imresize(batch_cl, 1 / 4), repeat)
    with dense_path_only():
        t_cl_dense = best_time(lambda: imresize(batch_cl, 1 / 4), repeat)
        t_u8_dense = best_time(lambda: imresize(batch_t, 1 / 4, "matlab_uint8"), repeat)

    t_cuda = None
    if torch.cuda.is_available():
        gpu = batch_f.cuda()
        t_cuda = best_time(lambda: (imresize(gpu, 1 / 4), torch.cuda.synchronize()), repeat)

    threads = torch.get_num_threads()
    table = Table(
        title=f"imresize x1/4: {n_img} RGB images {side}x{side} (ms per image, torch threads {threads})"
    )
    table.add_column("implementation")
    table.add_column("ms / image", justify="right")
    table.add_column("vs Pillow", justify="right")
    rows = [
        ("Pillow BICUBIC (C, uint8, reducing_gap=None)", t_pil),
        ("iptbench imresize matlab, float32, batched (dense band GEMMs)", t_ours),
        ("iptbench imresize matlab, float32, channels-last batch (polyphase)", t_cl),
        ("  same, polyphase off (dense band GEMMs)", t_cl_dense),
        ("iptbench imresize matlab_uint8, float64 inside (polyphase)", t_ours_u8),
        ("  same, polyphase off (dense band GEMMs)", t_u8_dense),
        ("direct NumPy gather (float64)", t_np),
    ]
    if t_cuda is not None:
        rows.append(("iptbench imresize matlab, float32, CUDA batched", t_cuda))
    for name, t in rows:
        table.add_row(name, f"{1000 * t / n_img:.2f}", f"{t / t_pil:.2f}x time")
    console.print(table)

    # ---- build-data's patch batches: polyphase vs dense ---------------------------------------------
    table = Table(title="imresize on build-data patches: 2 crops -> 2 x 48 x 48 x 3, float32 (ms per call)")
    for col in ("factor", "polyphase", "dense band GEMMs", "speed-up"):
        table.add_column(col, justify="right")
    calls = 20 if args.quick else 200
    for factor in (2, 3, 4):
        crops = torch.from_numpy(rng.integers(0, 256, (2, 48 * factor, 48 * factor, 3), dtype=np.uint8))
        view = crops.permute(0, 3, 1, 2)  # channels-last, as build-data passes them

        def run(view: torch.Tensor = view, factor: int = factor) -> None:
            for _ in range(calls):
                imresize(view, 1 / factor, size=(48, 48))

        t_fast = best_time(run, repeat) / calls
        with dense_path_only():
            t_slow = best_time(run, repeat) / calls
        table.add_row(
            f"1/{factor}", f"{1000 * t_fast:.3f}", f"{1000 * t_slow:.3f}", f"{t_slow / t_fast:.1f}x"
        )
    console.print(table)

    # ---- SSIM -------------------------------------------------------------------------------------
    a = rng.integers(0, 256, size=(512, 512, 3)).astype(np.float64)
    yy, xx = np.mgrid[0:512, 0:512]
    a = np.clip(np.round(0.5 * a + 60 * np.sin(xx / 9.0)[..., None] + 64), 0, 255)
    b = np.clip(np.round(a + rng.normal(0, 10, a.shape)), 0, 255)
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].contiguous()

    def sk() -> float:
        return structural_similarity(
            b,
            a,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )

    v_sk = float(sk())
    v_ours = ssim(tb, ta, channel="rgb").item()
    assert abs(v_sk - v_ours) < 1e-6, f"SSIM differs: {v_ours} vs skimage {v_sk}"
    t_sk = best_time(sk, repeat)
    t_ssim = best_time(lambda: ssim(tb, ta, channel="rgb"), repeat)
    table = Table(title="SSIM, 512x512 RGB pair (per-channel mean)")
    for col in ("implementation", "ms", "value", "speed-up vs skimage"):
        table.add_column(col, justify="left" if col == "implementation" else "right")
    table.add_row(
        "skimage structural_similarity (Wang settings)", f"{1000 * t_sk:.1f}", f"{v_sk:.10f}", "1.00x"
    )
    table.add_row(
        "iptbench ssim (torch float64)", f"{1000 * t_ssim:.1f}", f"{v_ours:.10f}", f"{t_sk / t_ssim:.2f}x"
    )
    console.print(table)
    console.print(
        f"goals: SSIM >= 5x skimage -> {t_sk / t_ssim:.2f}x; imresize <= 2x Pillow per image -> "
        f"{t_ours / t_pil:.2f}x (|SSIM diff| {abs(v_sk - v_ours):.1e})"
    )


if __name__ == "__main__":
    main()
