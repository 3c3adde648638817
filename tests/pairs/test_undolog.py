"""The undo log that makes build-data's commits atomic: unit behaviour, and kill -9 at chosen disk writes.

The second test kills a build at its N-th pwrite64 (strace fault injection), for several N spread over the
whole build, and checks that rerunning the command ends with the uninterrupted build's content. Without
the undo log some of these points leave a torn HDF5 file (found by benchmarks/stress_kill_resume.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from iptbench.pairs.sources import generate_images
from iptbench.pairs.undolog import UndoFile, recover
from iptbench.tasks import OFFICIAL_TASK_NAMES


def _write(f: UndoFile, offset: int, data: bytes) -> None:
    f.seek(offset)
    f.write(data)


def test_uncommitted_overwrites_and_appends_roll_back(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    f = UndoFile(path)
    _write(f, 10, b"b" * 20)
    f.commit()  # committed: 10 b's at 10..29
    _write(f, 0, b"c" * 50)  # overwrites committed bytes
    _write(f, 120, b"d" * 30)  # grows the file past its committed size
    f.close()  # a kill: no commit
    assert (tmp_path / "f.bin.undo").exists()
    assert recover(path) is True
    assert path.read_bytes() == b"a" * 10 + b"b" * 20 + b"a" * 70
    assert not (tmp_path / "f.bin.undo").exists()
    assert recover(path) is False


def test_commit_keeps_everything_and_truncate_is_logged(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(64)))
    f = UndoFile(path)
    f.truncate(16)
    _write(f, 16, b"x" * 8)
    f.close()
    recover(path)
    assert path.read_bytes() == bytes(range(64))  # the cut-off tail came back
    f = UndoFile(path)
    f.truncate(16)
    f.commit()
    f.close()
    assert path.read_bytes() == bytes(range(16))


def test_torn_log_record_is_ignored(tmp_path: Path) -> None:
    """A kill while the log record is being written: the overwrite it guards never started."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 64)
    f = UndoFile(path)
    _write(f, 0, b"b" * 8)
    f.commit()
    _write(f, 8, b"c" * 8)
    f.close()
    log = tmp_path / "f.bin.undo"
    data = log.read_bytes()
    log.write_bytes(data[:-3])  # the old bytes of the record are cut short
    path.write_bytes(b"b" * 8 + b"a" * 56)  # and the overwrite did not happen
    recover(path)
    assert path.read_bytes() == b"b" * 8 + b"a" * 56


def _content(path: Path) -> dict[str, np.ndarray | str]:
    with h5py.File(path, "r") as f:
        out: dict[str, np.ndarray | str] = {
            f"sha256_{t}": str(f.attrs[f"sha256_{t}"]) for t in OFFICIAL_TASK_NAMES
        }
        for t in OFFICIAL_TASK_NAMES:
            for key in ("input", "target", "source"):
                out[f"{t}/{key}"] = f[t][key][...]
    return out


def _same(a: dict[str, np.ndarray | str], b: dict[str, np.ndarray | str]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace for fault injection")
def test_kill_at_chosen_disk_writes_then_rerun(tmp_path: Path) -> None:
    src = tmp_path / "imgs"
    generate_images(src, 20, (200, 200), seed=3)
    out = tmp_path / "out.h5"
    cmd = [sys.executable, "-m", "iptbench", "build-data", str(src), str(out), "--patch-size", "24"]
    cmd += ["-k", "6", "--seed", "1", "-j", "1", "--commit-every", "1", "--compression", "gzip"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    trace = tmp_path / "trace.txt"
    strace = ["strace", "-f", "-qq", "-e", "trace=pwrite64"]
    # seccomp-bpf makes the tracing run fast; it does not deliver injected signals, so the kills go without.
    subprocess.run(
        [*strace, "--seccomp-bpf", "-o", str(trace), *cmd], env=env, check=True, capture_output=True
    )
    reference = _content(out)
    # Writes below the highest offset written so far rewrite metadata in place: they come in bursts at
    # each commit's flush (object headers, index nodes, then the superblock last). A kill inside a burst
    # is what tore files before the undo log; kill at such writes spread over the build.
    offsets = [int(m.group(1)) for m in re.finditer(r"pwrite64\(.*, (\d+)\) += \d+", trace.read_text())]
    in_place = [i + 1 for i, off in enumerate(offsets) if off < max(offsets[:i], default=0)]
    assert len(in_place) > 20, "no metadata rewrites found in the trace"
    picks = sorted({in_place[round(q * (len(in_place) - 1))] for q in np.linspace(0.02, 0.98, 8)})
    failures, killed = [], 0
    for n in picks:
        for p in tmp_path.glob("out.h5*"):
            p.unlink()
        inject = [*strace, "-o", os.devnull, "-e", f"inject=pwrite64:signal=KILL:when={n}"]
        subprocess.run([*inject, *cmd], env=env, capture_output=True)
        if out.exists():
            continue  # the kill landed after the final rename
        killed += 1
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"kill at write {n}: rerun failed: {done.stderr.strip().splitlines()[-1:]}")
        elif not _same(_content(out), reference):
            failures.append(f"kill at write {n}: rerun differs from the uninterrupted build")
    assert killed >= len(picks) // 2, f"only {killed} of {len(picks)} injected kills happened"
    assert not failures, failures
