"""Budgets, schedules, EMA and failures: a run continued to a larger budget equals a straight run."""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.sources import generate_images, resolve_sources
from iptbench.train import TrainConfig, load_checkpoint, step_lr, train
from iptbench.train import runner as trainer_module
from iptbench.train.data import check_data_file, verify_pixels

cli = CliRunner()


def _config(data: Path, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        data=(str(data),), out=str(out), model="ipt-tiny", tasks=("sr-x2",), steps=6, batch_size=2, workers=0,
        save_every=100, log_every=1, device="cpu", lr=1e-3,
    )  # fmt: skip
    return replace(base, **changes)


def test_lr_schedules_are_pure_functions_of_the_step() -> None:
    step = TrainConfig(data=("x",), out="o", lr_milestones=(1,), warmup_steps=2)
    assert [step_lr(step, 1.0, s, e, 10) for s, e in ((0, 0), (1, 0), (2, 0), (3, 1))] == [0.5, 1.0, 1.0, 0.5]
    cos = replace(step, lr_schedule="cosine")
    values = [step_lr(cos, 1.0, s, 0, 10) for s in range(10)]
    assert values[:3] == [0.5, 1.0, 1.0] and values[6] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    assert all(a >= b for a, b in zip(values[1:], values[2:], strict=False)) and values[-1] > 0
    assert step_lr(cos, 1.0, 5, 0, 10) != step_lr(cos, 1.0, 5, 0, 20)  # why a cosine budget is identity


def test_continued_run_equals_straight_run_ema_included(pairs_file: Path, tmp_path: Path) -> None:
    # 4 steps per epoch (8 sr-x2 pairs, batch 2): 6 -> 12 continues across epoch boundaries
    straight = train(_config(pairs_file, tmp_path / "straight", steps=12, ema=0.9, warmup_steps=3))
    assert straight.ema_path is not None and straight.ema_path.name == "model_ema.safetensors"
    short = _config(pairs_file, tmp_path / "continued", ema=0.9, warmup_steps=3)
    first = train(short)
    assert first.model_path is not None and first.step == 6
    second = train(replace(short, steps=12))
    assert second.resumed_from == 6 and second.step == 12 and second.ema_path is not None
    for name in ("model.safetensors", "model_ema.safetensors"):
        assert (tmp_path / "continued" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()
    ema = load_checkpoint(tmp_path / "continued" / "last.pt")["ema"]
    live = load_checkpoint(tmp_path / "continued" / "last.pt")["model"]
    assert not torch.equal(ema["body.query_embed.weight"], live["body.query_embed.weight"])
    with pytest.raises(IptbenchError, match="past this budget of 8 steps"):
        train(replace(short, steps=8))
    assert (tmp_path / "continued" / "model.safetensors").read_bytes() == (
        tmp_path / "straight" / "model.safetensors"
    ).read_bytes()  # the refused run changed nothing


def test_cosine_run_with_a_changed_budget_is_refused(pairs_file: Path, tmp_path: Path) -> None:
    cfg = _config(pairs_file, tmp_path / "cos", steps=2, lr_schedule="cosine")
    train(cfg)
    result = cli.invoke(
        app,
        [
            "train",
            str(pairs_file),
            "-o",
            str(tmp_path / "cos"),
            "-m",
            "ipt-tiny",
            "-t",
            "sr-x2",
            "--steps",
            "3",
        ]
        + ["-b", "2", "-j", "0", "--device", "cpu", "--lr", "1e-3", "--lr-schedule", "cosine"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1
    assert "cosine-schedule run of 2 steps: its lr at every step depends on that budget" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert train(cfg).step == 2  # the same budget still reruns


def test_nonfinite_loss_keeps_the_last_good_checkpoint(
    pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer_module.step_losses
    calls = {"n": 0}

    def poisoned(*args: object, **kwargs: object) -> tuple[torch.Tensor, ...]:
        calls["n"] += 1
        loss, l1, con = real(*args, **kwargs)  # type: ignore[arg-type]
        return (loss * math.nan if calls["n"] == 3 else loss), l1, con

    monkeypatch.setattr(trainer_module, "step_losses", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(IptbenchError, match=r"loss became .* by step 3 \(sr-x2\); last.pt keeps step 2"):
        train(_config(pairs_file, out, save_every=1, log_every=5))
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 2 and all(torch.isfinite(v).all() for v in ck["model"].values())
    assert not (out / "model.safetensors").exists()


def test_cuda_out_of_memory_is_one_line_naming_the_batch_size(
    pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(trainer_module, "step_losses", oom)
    args = ["train", str(pairs_file), "-o", str(tmp_path / "oom"), "-m", "ipt-tiny", "-t", "sr-x2", "-b", "2"]
    result = cli.invoke(app, [*args, "-j", "0", "--device", "cpu"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    (line,) = [ln for ln in result.output.splitlines() if ln.strip()][-1:]
    assert "out of memory at step 1 with --batch-size 2 per process" in line
    assert "lower --batch-size" in line and "--nproc-per-node" in line and "Traceback" not in result.output


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def test_damaged_or_edited_data_files_are_refused(pairs_file: Path, tmp_path: Path) -> None:
    check_data_file(str(pairs_file))
    edited = _copy(pairs_file, tmp_path / "edited.h5")
    with h5py.File(edited, "r+") as f:
        f.attrs["sha256_sr-x2"] = "0" * 64
    with pytest.raises(IptbenchError, match="inconsistent manifest .*sr-x2: manifest hash"):
        train(_config(edited, tmp_path / "r"))
    short = _copy(pairs_file, tmp_path / "short.h5")
    with h5py.File(short, "r+") as f:
        f["sr-x2"]["source"].resize((7,))
    with pytest.raises(IptbenchError, match="manifest says 8 pairs"):
        check_data_file(str(short))
    assert not (tmp_path / "r").exists()


def test_verify_data_recomputes_the_hashes_from_pixels(pairs_file: Path, tmp_path: Path) -> None:
    flipped = _copy(pairs_file, tmp_path / "flipped.h5")
    with h5py.File(flipped, "r+") as f:
        patch = f["sr-x2"]["input"][3]
        patch[0, 0, 0] ^= 1
        f["sr-x2"]["input"][3] = patch
    check_data_file(str(flipped))  # the stored hashes still agree with each other: only pixels tell
    verify_pixels([str(pairs_file)])
    with pytest.raises(IptbenchError, match=r"pixels of sr-x2 do not match the stored content hash") as info:
        train(_config(flipped, tmp_path / "r", verify_data=True))
    assert "\n" not in str(info.value) and not (tmp_path / "r").exists()


def test_data_file_changed_under_a_run_is_refused(tmp_path: Path) -> None:
    generate_images(tmp_path / "imgs", 4, (128, 128), seed=3)
    data = tmp_path / "pairs.h5"
    build(BuildConfig(("sr-x2",), 48, 2, 0, "none"), resolve_sources(tmp_path / "imgs"), data)
    train(_config(data, tmp_path / "run", steps=1))
    data.unlink()
    build(BuildConfig(("sr-x2",), 48, 2, 1, "none"), resolve_sources(tmp_path / "imgs"), data)  # seed 1
    with pytest.raises(IptbenchError, match="is not the data file this run started with"):
        train(_config(data, tmp_path / "run", steps=2))


def test_log_rows_of_a_continued_run_match(pairs_file: Path, tmp_path: Path) -> None:
    cfg = _config(pairs_file, tmp_path / "a", steps=2, log_every=1)
    train(cfg)
    train(replace(cfg, steps=3))
    with open(tmp_path / "a" / "log.csv", newline="") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]


def test_a_run_folder_from_before_budgets_and_schedules_continues(pairs_file: Path, tmp_path: Path) -> None:
    """config.json of older runs holds epochs/steps and lacks the schedule, EMA and holdout keys."""
    import json

    cfg = _config(pairs_file, tmp_path / "old", steps=2)
    train(cfg)
    stored = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in ("lr_schedule", "warmup_steps", "schedule_steps", "ema", "holdout"):
        del stored["identity"][key]
    stored["identity"].update(epochs=None, steps=2)
    (tmp_path / "old" / "config.json").write_text(json.dumps(stored))
    assert train(replace(cfg, steps=3)).resumed_from == 2
