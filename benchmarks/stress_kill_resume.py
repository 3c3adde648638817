"""Stress test: `iptbench build-data` SIGKILLed at random moments, then rerun, equals an uninterrupted build.

Run: nice -n 19 python benchmarks/stress_kill_resume.py [--quick] [--cycles 50] [--keep failing/]

Each cycle starts the CLI build in a new session and kills its whole process group after a seeded random
delay (during start-up, anywhere in the build, or around the final rename), sometimes kills the resumed run
again, then reruns the same command to completion. The result must exit 0 and hold exactly the reference
datasets and sha256_<task> hashes of an uninterrupted build made in the same run. Before every rerun the
.partial file is snapshotted, so a failing cycle keeps the very files its rerun choked on (--keep).

The package is copied once at start and every build (reference and CLI runs) uses that copy, so edits made
to the working tree during a long run cannot show up as spurious failures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table
from rich_argparse import RichHelpFormatter

console = Console()
# The six task names; fixed here (not imported) because iptbench is imported from the frozen copy in main.
TASK_NAMES = ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50")
PATCH, K, BUILD_SEED, IMAGE_SEED = 24, 6, 1, 3
RUN_TIMEOUT = 300.0
OK, BEFORE, FINISHED, FAIL = "ok", "killed-before-partial", "finished-before-kill", "FAIL"


@dataclass
class KillPlan:
    phase: (
        str  # "startup": delay from process start; "build" / "end": delay after the writer touches the file
    )
    delay: float


@dataclass
class RunOutcome:
    killed: bool
    rc: int | None
    message: str  # last non-empty stderr line


@dataclass
class Cycle:
    index: int
    kind: str = OK
    kill_points: list[str] = field(default_factory=list)
    message: str = ""
    kept: list[str] = field(default_factory=list)


@dataclass
class Timing:
    """When an uninterrupted CLI run first touches the partial, and how long its build then takes."""

    to_writer: float
    build: float


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


ENV: dict[str, str] = {}  # subprocess environment, set in main (frozen package first on PYTHONPATH)
CWD: list[Path] = []  # subprocess working directory: not the repo, whose iptbench would shadow the copy


def freeze_package(dest: Path) -> None:
    """Copy the iptbench package to dest/iptbench and make this process and its children import it."""
    spec = importlib.util.find_spec("iptbench")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("iptbench is not importable: activate the project's virtual environment")
    shutil.copytree(
        spec.submodule_search_locations[0], dest / "iptbench", ignore=shutil.ignore_patterns("__pycache__")
    )
    sys.path.insert(0, str(dest))
    CWD.append(dest)
    path = os.pathsep.join(filter(None, [str(dest), os.environ.get("PYTHONPATH")]))
    # Wide columns: rich would otherwise wrap the error line at 80 characters when stderr is a file.
    ENV.update(os.environ, PYTHONPATH=path, COLUMNS="1000")
    probe = [sys.executable, "-c", "import iptbench; print(iptbench.__file__)"]
    where = subprocess.run(
        probe, env=ENV, cwd=CWD[0], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not where.startswith(str(dest)):
        raise SystemExit(f"the CLI runs would import {where}, not the frozen copy in {dest}")


def run_build(cmd: list[str], partial: Path, err_path: Path, kill: KillPlan | None) -> RunOutcome:
    """One CLI run; with a plan, SIGKILL its process group at the planned moment unless it ended first."""
    before = _stamp(partial)
    killed = False
    with err_path.open("w") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=ENV, cwd=CWD[0]
        )
    try:
        if kill is not None:
            if kill.phase == "startup":
                deadline = t0 + kill.delay
            else:
                # A resumed run rewrites the partial at open; a fresh one creates it.
                while _stamp(partial) == before and proc.poll() is None:
                    if time.monotonic() - t0 > RUN_TIMEOUT:
                        break
                    time.sleep(0.0005)
                deadline = time.monotonic() + kill.delay
            while proc.poll() is None and (now := time.monotonic()) < deadline:
                time.sleep(min(0.001, deadline - now))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
        rc = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return RunOutcome(True, None, f"timeout after {RUN_TIMEOUT:.0f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return RunOutcome(killed, rc, _last_line(err_path))


def kill_point(partial: Path, out: Path, n: int) -> tuple[str, float]:
    """Where a kill landed, read from what it left on disk, and the fraction of sources still to build."""
    if out.exists():
        return "after rename", 0.0
    if not partial.exists():
        tmp = partial.with_name(partial.name + ".tmp")
        return ("creating (.tmp only)" if tmp.exists() else "before partial"), 1.0
    try:
        with h5py.File(partial, "r") as f:
            done = int(f.attrs["next_source"])
            complete = bool(json.loads(f.attrs["manifest"]).get("complete"))
    except Exception as exc:  # a torn file is exactly what this stress test looks for
        return f"unreadable partial ({type(exc).__name__}: {exc})", 1.0
    if complete:
        return "finished, before rename", 0.0
    if done == 0:
        return "committed 0 sources", 1.0
    if done >= n:
        return "all committed, finishing", 0.0
    quarter = min(3, 4 * done // n)
    return f"committed {25 * quarter}-{25 * quarter + 25} %", 1 - done / n


def load_content(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        hashes = {t: str(f.attrs[f"sha256_{t}"]) for t in TASK_NAMES}
        arrays = {f"/{t}/{k}": f[t][k][...] for t in TASK_NAMES for k in ("input", "target", "source")}
        arrays.update({"/status": f["status"][...], "/digests": f["digests"][...]})
    return hashes, arrays


def compare(ref: tuple[dict[str, str], dict[str, np.ndarray]], out: Path) -> str | None:
    """None when out equals the reference, else what differs first."""
    try:
        hashes, arrays = load_content(out)
    except Exception as exc:
        return f"cannot read {out.name}: {type(exc).__name__}: {exc}"
    ref_hashes, ref_arrays = ref
    bad = [t for t in TASK_NAMES if hashes[t] != ref_hashes[t]]
    if bad:
        return f"sha256 differs for {', '.join(bad)}"
    for key, want in ref_arrays.items():
        got = arrays[key]
        if got.shape != want.shape:
            return f"{key}: shape {got.shape} != reference {want.shape}"
        if not np.array_equal(got, want):
            rows = np.flatnonzero((got != want).reshape(len(got), -1).any(axis=1))
            return f"{key}: {len(rows)} rows differ from the reference (first {int(rows[0])})"
    return None


def plan_kills(rng: random.Random, timing: Timing, remaining: float, first: bool) -> KillPlan:
    """Start-up 15 %, uniform over the (remaining) build 70 %, around the final commit and rename 15 %."""
    build_time = timing.build * max(remaining, 0.05)
    u = rng.random()
    if u < 0.15 and first:
        return KillPlan("startup", rng.uniform(0.0, timing.to_writer * 1.1))
    if u < 0.85:
        return KillPlan("build", rng.uniform(0.0, build_time * 1.1))
    return KillPlan("end", rng.uniform(build_time * 0.85, build_time * 1.2))


def calibrate(cmd: list[str], out: Path) -> Timing:
    """Time one uninterrupted CLI run: start to first write of the partial, then the build to the rename."""
    partial = out.with_name(out.name + ".partial")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=CWD[0])
    t_writer = t_out = None
    while proc.poll() is None:
        now = time.monotonic()
        if t_writer is None and partial.exists():
            t_writer = now
        if t_out is None and out.exists():
            t_out = now
        time.sleep(0.0005)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"calibration build failed (exit {proc.returncode}): {' '.join(cmd)}")
    end = time.monotonic()
    t_writer = t_writer or t0
    return Timing(to_writer=t_writer - t0, build=max((t_out or end) - t_writer, 0.05))


def run_cycle(
    index: int,
    rng: random.Random,
    cmd: list[str],
    out: Path,
    n: int,
    timing: Timing,
    ref: tuple[dict[str, str], dict[str, np.ndarray]],
    keep: Path | None,
    work: Path,
) -> Cycle:
    partial = out.with_name(out.name + ".partial")
    for p in (out, partial, partial.with_name(partial.name + ".tmp")):
        p.unlink(missing_ok=True)
    snaps = work / "snapshots"
    shutil.rmtree(snaps, ignore_errors=True)
    snaps.mkdir()
    cycle = Cycle(index)
    cycle.kind = FINISHED  # until a kill lands before the end
    # 60 % one kill, 25 % two, 15 % three: later kills hit the resumed run itself.
    n_kills = 1 + (rng.random() > 0.6) + (rng.random() > 0.625)
    remaining, interrupted, finished = 1.0, False, False
    taken: list[Path] = []

    def snapshot(tag: str) -> None:
        if partial.exists():
            dst = snaps / f"cycle{index:04d}-{tag}.partial"
            shutil.copyfile(partial, dst)
            taken.append(dst)

    def fail(message: str) -> Cycle:
        cycle.kind, cycle.message = FAIL, message
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for snap in taken:
                shutil.copyfile(snap, keep / snap.name)
                cycle.kept.append(str(keep / snap.name))
            if partial.exists():
                dst = keep / f"cycle{index:04d}-after-rerun.partial"
                shutil.copyfile(partial, dst)
                cycle.kept.append(str(dst))
        return cycle

    for k in range(n_kills):
        plan = plan_kills(rng, timing, remaining, first=k == 0)
        snapshot(f"before-run{k}")
        res = run_build(cmd, partial, work / f"stderr{k}.txt", plan)
        if not res.killed:
            if res.rc != 0:
                return fail(f"run {k} (to be killed) exit {res.rc}: {res.message}")
            finished = True
            break
        point, remaining = kill_point(partial, out, n)
        cycle.kill_points.append(point)
        if point == "after rename":
            finished = True
            break
        if partial.exists():
            interrupted = True
        elif cycle.kind == FINISHED:
            cycle.kind = BEFORE
    if not finished:
        snapshot("before-final")
        res = run_build(cmd, partial, work / "stderr-final.txt", None)
        if res.rc != 0:
            return fail(f"final run exit {res.rc}: {res.message}")
    if partial.exists() or not out.exists():
        return fail(f"after the build: output exists {out.exists()}, partial left {partial.exists()}")
    diff = compare(ref, out)
    if diff is not None:
        return fail(diff)
    if interrupted:
        cycle.kind = OK
    return cycle


def report(cycles: list[Cycle], seconds: float) -> None:
    kinds = Counter(c.kind for c in cycles)
    table = Table(title=f"{len(cycles)} kill/resume cycles in {seconds / 60:.1f} min")
    table.add_column("class")
    table.add_column("cycles", justify="right")
    table.add_column("share", justify="right")
    for kind in (OK, BEFORE, FINISHED, FAIL):
        share = f"{100 * kinds[kind] / max(len(cycles), 1):.0f} %"
        table.add_row(kind if kind != FAIL else "[red]FAIL[/]", str(kinds[kind]), share)
    console.print(table)
    points = Counter(p for c in cycles for p in c.kill_points)
    kills = Table(title="where the kills landed (state on disk right after SIGKILL)")
    kills.add_column("kill point")
    kills.add_column("kills", justify="right")
    for point, count in sorted(points.items()):
        kills.add_row(point, str(count))
    multi = Counter(len(c.kill_points) for c in cycles)
    kills.caption = "kills per cycle: " + ", ".join(f"{m}: {multi[m]}" for m in sorted(multi))
    console.print(kills)
    failed = [c for c in cycles if c.kind == FAIL]
    if failed:
        ft = Table(title="[red]failures[/]")
        for col in ("cycle", "kill points", "message", "kept"):
            ft.add_column(col, overflow="fold")
        for c in failed:
            ft.add_row(str(c.index), "; ".join(c.kill_points), c.message, "\n".join(c.kept) or "-")
        console.print(ft)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=RichHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50, help="kill/resume cycles")
    parser.add_argument("--images", type=int, default=40, help="generated 200x200 JPEG sources")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill plan (delays, kills per cycle)")
    parser.add_argument(
        "--commit-every", type=int, default=1, help="sources per commit (small: many flushes)"
    )
    parser.add_argument("--compression", default=None, help="none, gzip or lzf (default: BuildConfig's)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy the .partial files of failing cycles here"
    )
    parser.add_argument("--max-minutes", type=float, default=None, help="stop starting cycles after this")
    parser.add_argument("--quick", action="store_true", help="5 cycles on 16 images (< 60 s)")
    args = parser.parse_args()
    cycles_wanted = 5 if args.quick else args.cycles
    n_images = 16 if args.quick else args.images
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stress-kill-") as tmp:
        work = Path(tmp)
        freeze_package(work / "code")
        from iptbench.pairs.builder import BuildConfig, build
        from iptbench.pairs.sources import generate_images, resolve_sources
        from iptbench.tasks import TASK_NAMES as names

        if tuple(names) != TASK_NAMES:
            raise SystemExit(f"the task list changed to {names}: update TASK_NAMES here")
        src = work / "src"
        generate_images(src, n_images, (200, 200), seed=IMAGE_SEED)
        cfg = BuildConfig(TASK_NAMES, patch_size=PATCH, patches_per_image=K, seed=BUILD_SEED)
        if args.compression is not None:
            cfg = BuildConfig(TASK_NAMES, PATCH, K, BUILD_SEED, args.compression)
        ref_path = work / "ref.h5"
        build(cfg, resolve_sources(src), ref_path, workers=1)
        ref = load_content(ref_path)
        out = work / "out.h5"
        cmd = [sys.executable, "-m", "iptbench", "build-data", str(src), str(out), "--patch-size", str(PATCH)]
        cmd += ["-k", str(K), "--seed", str(BUILD_SEED), "-j", "2", "--commit-every", str(args.commit_every)]
        cmd += ["--compression", cfg.compression]
        timing = calibrate(cmd, out)
        if (diff := compare(ref, out)) is not None:
            raise SystemExit(f"an uninterrupted CLI build differs from the library build: {diff}")
        console.print(
            f"compression {cfg.compression}; calibration: the writer starts {timing.to_writer:.2f} s "
            f"after launch, the build then takes {timing.build:.2f} s"
        )
        rng = random.Random(args.seed)
        cycles: list[Cycle] = []
        for i in range(cycles_wanted):
            if args.max_minutes is not None and time.monotonic() - t_start > 60 * args.max_minutes:
                break
            c = run_cycle(i, rng, cmd, out, n_images, timing, ref, args.keep, work)
            cycles.append(c)
            mark = "[red]FAIL[/]" if c.kind == FAIL else c.kind
            console.print(f"cycle {i}: {mark} ({'; '.join(c.kill_points) or 'no kill'}) {c.message}")
    report(cycles, time.monotonic() - t_start)
    return 1 if any(c.kind == FAIL for c in cycles) else 0


if __name__ == "__main__":
    sys.exit(main())
