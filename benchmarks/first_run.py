"""The first run, as a new user meets it: `iptbench eval --suite mini`, timed, and its goals checked.

    python benchmarks/first_run.py            # in a fresh temporary folder, no environment variables

Runs the README's main command with no `--model`, no data root, no `OMP_NUM_THREADS` and an empty
cache (so the mini crops and the rainy images are made as on a fresh machine), times it from the command
to the last file, and checks the goals of the bundled IPT against the baselines in its summary.csv:
beats bicubic at x2/x3/x4, beats `input` by at least 5 dB at sigma 30, beats `nlm` at sigma 30 and 50,
beats `input` on derain. Exits 1 when a goal is missed, the run is over three minutes, or a file is missing.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

LIMIT_S = 180.0
# (task, baseline, margin in dB the bundled IPT must beat the baseline by)
GOALS = (
    ("sr-x2", "bicubic", 0.0),
    ("sr-x3", "bicubic", 0.0),
    ("sr-x4", "bicubic", 0.0),
    ("denoise-30", "input", 5.0),
    ("denoise-30", "nlm", 0.0),
    ("denoise-50", "nlm", 0.0),
    ("derain", "input", 0.0),
)
FILES = ("summary.csv", "report.md", "manifest.json", "comparison.png")


def _run(workdir: Path) -> tuple[float, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "IPTBENCH_"))}
    env["IPTBENCH_CACHE"] = str(workdir / "cache")  # empty: made as on a fresh machine
    iptbench = shutil.which("iptbench") or "iptbench"
    start = time.perf_counter()
    subprocess.run([iptbench, "eval", "--suite", "mini"], cwd=workdir, env=env, check=True)
    seconds = time.perf_counter() - start
    (out,) = (workdir / "results").iterdir()
    return seconds, out


def _psnr(summary: Path) -> dict[tuple[str, str], float]:
    with summary.open(newline="") as handle:
        return {(r["model"], r["task"]): float(r["psnr"]) for r in csv.DictReader(handle)}


def _check(scores: dict[tuple[str, str], float], table: Table) -> bool:
    ok = True
    for task, baseline, margin in GOALS:
        ours = [(m, v) for (m, t), v in scores.items() if t == task and m.startswith("iptbench-")]
        base = scores.get((baseline, task))
        if not ours or base is None:
            table.add_row(task, "-", baseline, "-", "-", "missing")
            ok = False
            continue
        (model, value), *_ = ours
        won = value - base > margin
        ok &= won
        wanted = f"> {margin:.0f} dB" if margin else "> 0"
        table.add_row(
            task,
            model,
            baseline,
            f"{value:.2f} / {base:.2f}",
            f"{value - base:+.2f} ({wanted})",
            "met" if won else "MISSED",
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="copy the result folder here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, out = _run(Path(tmp))
        missing = [name for name in FILES if not (out / name).is_file()]
        table = Table(title=f"iptbench eval --suite mini: {seconds:.0f} s on {os.cpu_count()} cores")
        for column in ("task", "bundled", "baseline", "PSNR ours / baseline", "margin", "goal"):
            table.add_column(column)
        ok = _check(_psnr(out / "summary.csv"), table)
        if args.keep is not None:
            shutil.copytree(out, args.keep, dirs_exist_ok=True)
    console = Console()
    console.print(table)
    console.print(
        f"time {seconds:.1f} s (limit {LIMIT_S:.0f} s); missing files: {', '.join(missing) or 'none'}"
    )
    return 0 if ok and seconds < LIMIT_S and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
