"""torchrun with two CPU processes (gloo): the run trains, logs the averaged loss, validates with the images
split across the ranks (same numbers as one process), and only rank 0 writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import iptbench
from iptbench.models import create_model
from iptbench.pairs.patches import PatchDataset
from iptbench.train import TrainConfig, train
from iptbench.train.data import split_holdout
from iptbench.train.validation import HoldoutSet, Validator
from tests.subprocesses import run_in_new_session

COMMON = ["--model", "ipt-tiny", "--steps", "6", "--batch-size", "2", "--workers", "0", "--log-every", "1"]
COMMON += ["--device", "cpu", "--lr", "1e-3", "--save-every", "4"]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_in_new_session(cmd, env=env, cwd=cwd, timeout=240)


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_two_process_gloo_run(pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "iptbench", "train", str(pairs_file), "--out", str(out), *COMMON, "--val", "holdout:2"]
    cmd += ["--val-every", "6"]
    proc = _run(cmd, env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.count("done: step 6/6") == 1  # rank 1 prints nothing
    assert "cpu x 2" in proc.stdout
    files = ["best.safetensors", "config.json", "config.toml", "last.pt", "log.csv", "model.safetensors"]
    assert sorted(p.name for p in out.iterdir()) == [*files, "val.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # no stray files from rank 1 either
    losses = _losses(out)
    assert len(losses) == 6 and losses[-1] < losses[0]

    # same curve shape as one process on the same data: falls from about the same start
    single = train(
        TrainConfig(
            data=(str(pairs_file),), out=str(tmp_path / "single"), model="ipt-tiny", steps=6, batch_size=2,
            workers=0, log_every=1, device="cpu", lr=1e-3, save_every=4, val=("holdout:2",), val_every=6,
        )
    ).run_dir  # fmt: skip
    one = _losses(single)
    assert one[-1] < one[0]
    assert abs(losses[0] - one[0]) < 0.25 * one[0]

    trained = iptbench.load_model(out / "model.safetensors")
    fresh = create_model("ipt-tiny", trained.tasks, seed=0)
    assert not trained.body.query_embed.weight.equal(fresh.body.query_embed.weight)

    # the last validation (step 6, the held-out pairs dealt to 2 ranks) equals one process scoring the
    # final weights
    with open(out / "val.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["step"] == "6"]
    split = split_holdout(PatchDataset(pairs_file, trained.tasks), 2)
    held = HoldoutSet("holdout:2", [str(pairs_file)], trained.tasks, split)
    alone = Validator([held], trained.tasks, rank=0, world_size=1).run(trained, 6)
    assert [(r["task"], r["set"], r["psnr"], r["ssim"]) for r in rows] == [
        (v.task, v.set, repr(v.psnr), repr(v.ssim)) for v in alone
    ]


def test_one_process_group_run_equals_a_plain_run(pairs_file: Path, tmp_path: Path) -> None:
    """IPTBENCH_DDP=1 joins the group and wraps DDP with one process (gpu_check's nccl path): averaging
    gradients over one rank changes nothing, so the weights are the plain run's, byte for byte."""
    args = ["--model", "ipt-tiny", "--tasks", "sr-x2", "--steps", "3", "--batch-size", "2", "-j", "0"]
    args += ["--device", "cpu", "--save-every", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IPTBENCH_DDP": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    proc = _run(
        [*cmd, "-m", "iptbench", "train", str(pairs_file), "--out", str(tmp_path / "g"), *args], env, tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    details = json.loads((tmp_path / "g" / "config.json").read_text())["details"]
    assert details["process_group"] == "gloo"
    plain = train(
        TrainConfig(
            data=(str(pairs_file),), out=str(tmp_path / "p"), model="ipt-tiny", tasks=("sr-x2",), steps=3,
            batch_size=2, workers=0, device="cpu", save_every=2,
        )
    )  # fmt: skip
    assert plain.model_path is not None
    assert (tmp_path / "g" / "model.safetensors").read_bytes() == plain.model_path.read_bytes()
