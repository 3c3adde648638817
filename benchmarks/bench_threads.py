"""iptbench's thread choice against torch's default (one thread per core), idle and under load.

    python benchmarks/bench_threads.py            # idle, then with one busy process per core
    python benchmarks/bench_threads.py --quick

Three workloads, each timed in a fresh process per setting (torch fixes its pool at first use):
- `bicubic`: what `iptbench eval --model bicubic` does per image (MATLAB imresize down and up, Y PSNR),
  on the cores iptbench measures idle when the command starts;
- `ipt-tiny eval`: one batch of 64 48x48 windows through ipt-tiny (what eval and restore run), on all
  cores whatever the load (`threads.for_network`);
- `ipt-tiny train`: a training step (forward, L1, backward, Adam) on a batch of 16 48x48 windows, which
  iptbench keeps on one thread so that the same command gives the same weights whatever the load.
"Loaded" starts one busy-looping process per core for the run, as a shared CI runner or a laptop compiling
in the background would. The ratio is default time / iptbench time: above 1 means iptbench's choice wins.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys

from rich.console import Console
from rich.table import Table

CHILD = r"""
import contextlib, sys, time, torch
from iptbench import threads
mode, work, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "iptbench":
    threads.configure(None)  # what every command does first
    if work != "ipt-tiny train":
        threads.use_idle_cores()  # what eval and restore do next
torch.manual_seed(0)
if work == "bicubic":
    from iptbench.metrics.psnr_ssim import psnr
    from iptbench.ops import imresize
    img = torch.rand(1, 3, 256, 256, dtype=torch.float64) * 255
    def step():
        lr = imresize(img, 0.5, "matlab")
        sr = imresize(lr, 2.0, "matlab")
        psnr(sr, img, crop=2, channel="y")
elif work == "ipt-tiny eval":
    from iptbench.models import create_model
    model = create_model("ipt-tiny", "denoise-30").eval()
    x = torch.rand(64, 3, 48, 48) * 255
    def step():
        with threads.for_network(), torch.inference_mode():
            model(x, "denoise-30")
else:
    from iptbench.models import create_model
    model = create_model("ipt-tiny", "sr-x2")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = torch.rand(16, 3, 48, 48) * 255, torch.rand(16, 3, 96, 96) * 255
    def step():
        opt.zero_grad()
        (model(x, "sr-x2") - y).abs().mean().backward()
        opt.step()
step()
t = time.perf_counter()
for _ in range(reps):
    step()
with threads.for_network() if work == "ipt-tiny eval" else contextlib.nullcontext():
    used = torch.get_num_threads()
print((time.perf_counter() - t) / reps, used)
"""


def _busy() -> None:
    while True:
        pass


def _time(mode: str, work: str, reps: int) -> tuple[float, int]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, work, str(reps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    reps = {"bicubic": 10 if args.quick else 40, "ipt-tiny eval": 2 if args.quick else 5}
    reps["ipt-tiny train"] = 2 if args.quick else 5
    table = Table(title=f"thread choice, {len(os.sched_getaffinity(0))} cores (seconds per unit, best of 2)")
    for column in ("load", "workload", "torch default", "iptbench", "default / iptbench"):
        table.add_column(column)
    for loaded in (False, True):
        busy = [
            mp.Process(target=_busy, daemon=True)
            for _ in range(len(os.sched_getaffinity(0)) if loaded else 0)
        ]
        for p in busy:
            p.start()
        try:
            for work, n in reps.items():
                default = min(_time("default", work, n) for _ in range(2))
                chosen = min(_time("iptbench", work, n) for _ in range(2))
                table.add_row(
                    "loaded" if loaded else "idle",
                    work,
                    f"{default[0]:.4f} ({default[1]} thr)",
                    f"{chosen[0]:.4f} ({chosen[1]} thr)",
                    f"{default[0] / chosen[0]:.2f}x",
                )
        finally:
            for p in busy:
                p.terminate()
    Console().print(table)


if __name__ == "__main__":
    main()
