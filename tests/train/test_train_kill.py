"""kill -9 in the middle of a run, then the same command again: same bytes as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iptbench.train import TrainConfig, train

ARGS = ["--model", "ipt-tiny", "--steps", "8", "--batch-size", "2", "--workers", "1", "--save-every", "1"]
ARGS += ["--log-every", "1", "--device", "cpu"]


@pytest.mark.slow
def test_kill_9_then_rerun_matches_uninterrupted(pairs_file: Path, tmp_path: Path) -> None:
    reference = train(
        TrainConfig(
            data=(str(pairs_file),), out=str(tmp_path / "ref"), model="ipt-tiny", steps=8, batch_size=2,
            workers=0, save_every=8, log_every=1, device="cpu",
        )
    )  # fmt: skip
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "iptbench", "train", str(pairs_file), "--out", str(out), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # land somewhere inside a later step or checkpoint write
    os.killpg(proc.pid, signal.SIGKILL)  # the DataLoader worker too
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the run finished before it could be killed"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming at step" in done.stdout
    assert reference.model_path is not None
    assert (out / "model.safetensors").read_bytes() == reference.model_path.read_bytes()


def test_ema_is_resumed_exactly_after_kill_9(pairs_file: Path, tmp_path: Path) -> None:
    """EMA weights live in last.pt beside the model: a killed run finishes with the same EMA bytes."""
    common = ["--model", "ipt-tiny", "--tasks", "sr-x2", "--steps", "6", "--batch-size", "2", "-j", "0"]
    common += ["--log-every", "1", "--device", "cpu", "--ema", "0.9", "--warmup-steps", "2", "--lr", "1e-3"]
    reference = train(
        TrainConfig(
            data=(str(pairs_file),), out=str(tmp_path / "ref"), model="ipt-tiny", tasks=("sr-x2",), steps=6,
            batch_size=2, workers=0, save_every=6, log_every=1, device="cpu", ema=0.9, warmup_steps=2,
            lr=1e-3,
        )
    )  # fmt: skip
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "iptbench", "train", str(pairs_file), "--out", str(out), *common]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*cmd, "--save-every", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)  # somewhere inside a later step or checkpoint write
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model_ema.safetensors").exists(), "the run finished before it could be killed"
    done = subprocess.run([*cmd, "--save-every", "1"], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming at step" in done.stdout
    assert reference.ema_path is not None and reference.model_path is not None
    assert (out / "model_ema.safetensors").read_bytes() == reference.ema_path.read_bytes()
    assert (out / "model.safetensors").read_bytes() == reference.model_path.read_bytes()
