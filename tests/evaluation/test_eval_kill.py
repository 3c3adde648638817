"""kill -9 during `iptbench eval`: the rerun's CSVs equal an uninterrupted run's, no cell is half-written."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _table(path: Path) -> list[dict[str, str]]:
    """CSV rows without the timing column, the one thing that differs between two honest runs."""
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _cells(out: Path) -> list[dict]:
    try:
        return json.loads((out / "state.json").read_text())["cells"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet (a torn read would fail the test)
        return []


def _command(root: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "iptbench", "eval", "--suite", "sr", "--datasets", "Set5,Set14",
        "--model", "bicubic", "--model", "input", "--model", "b2=bicubic",
        "--data-root", str(root), "--out", str(out),
    ]  # fmt: skip


def _run_and_kill(root: Path, out: Path, when: Callable[[Path], bool]) -> bool:
    """Start a real eval process and SIGKILL it as soon as `when(out)` holds; False if it finished first."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _command(root, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if when(out):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def _check_consistent(out: Path) -> None:
    """Every recorded cell is whole, and the CSVs never hold a row of a cell the state lacks."""
    cells = _cells(out)
    for cell in cells:
        assert cell["identity_digest"] and len(cell["rows"]) == cell["images"] == cell["expected_images"]
    keys = {(c["model"], c["dataset"], c["task"]) for c in cells}
    if (out / "per_image.csv").exists():
        assert {(r["model"], r["dataset"], r["task"]) for r in _table(out / "per_image.csv")} <= keys


# Not marked slow on purpose: this is the only check of kill -9 safety (~25 s on two busy cores).
def test_killed_eval_resumes_to_the_same_tables(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5", "Set14", size=(96, 120))
    whole = tmp_path / "whole"
    subprocess.run(
        _command(root, whole), check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )

    out = tmp_path / "killed"
    kills = [
        lambda o: (o / "per_image.csv").exists(),  # right after the first write
        lambda o: len(_cells(o)) >= 5,  # in the middle of a (dataset, task)
        lambda o: len(_cells(o)) >= 11,
    ]
    killed = 0
    for when in kills:
        killed += _run_and_kill(root, out, when)
        _check_consistent(out)
    assert killed >= 2, "the eval finished before it could be killed: make the data larger"
    done = subprocess.run(
        _command(root, out), capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming:" in done.stderr
    for name in ("summary.csv", "per_image.csv"):
        assert _table(out / name) == _table(whole / name), name
    assert not list(out.glob(".*.tmp*")), "temporary files left behind"
