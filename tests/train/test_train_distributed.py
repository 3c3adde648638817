"""torchrun with two CPU processes (gloo): the run trains, logs the averaged loss, and only rank 0 writes."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import iptbench
from iptbench.models import create_model
from iptbench.train import TrainConfig, train

COMMON = ["--model", "ipt-tiny", "--steps", "6", "--batch-size", "2", "--workers", "0", "--log-every", "1"]
COMMON += ["--device", "cpu", "--lr", "1e-3", "--save-every", "4"]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run in a new session so a hang kills the torchrun workers too, not only their launcher."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_two_process_gloo_run(pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "iptbench", "train", str(pairs_file), "--out", str(out), *COMMON]
    proc = _run(cmd, env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("done: step 6/6") == 1  # rank 1 prints nothing
    assert "cpu x 2" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "last.pt", "log.csv", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # no stray files from rank 1 either
    losses = _losses(out)
    assert len(losses) == 6 and losses[-1] < losses[0]

    # same curve shape as one process on the same data: falls from about the same start
    single = train(
        TrainConfig(
            data=(str(pairs_file),), out=str(tmp_path / "single"), model="ipt-tiny", steps=6, batch_size=2,
            workers=0, log_every=1, device="cpu", lr=1e-3, save_every=4,
        )
    ).run_dir  # fmt: skip
    one = _losses(single)
    assert one[-1] < one[0]
    assert abs(losses[0] - one[0]) < 0.25 * one[0]

    trained = iptbench.load_model(out / "model.safetensors")
    fresh = create_model("ipt-tiny", trained.tasks, seed=0)
    assert not trained.body.query_embed.weight.equal(fresh.body.query_embed.weight)
