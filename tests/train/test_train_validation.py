"""Validation while training: same weights as without, the right best.safetensors, eval's numbers, curves."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from typer.testing import CliRunner

import iptbench
from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.models import save_model
from iptbench.pairs.patches import PatchDataset, TaskBatchSampler
from iptbench.train import TrainConfig, train
from iptbench.train.data import RangeView, split_holdout
from iptbench.train.validation import BenchmarkSet, Validator, ValRow, build_sets, mean_psnr

runner = CliRunner()
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def _config(data: Path, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        data=(str(data),), out=str(out), model="ipt-tiny", tasks=("sr-x2",), steps=4, batch_size=2, workers=0,
        log_every=1, device="cpu", lr=1e-3,
    )  # fmt: skip
    return replace(base, **changes)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(pairs_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 4 steps without and with validation on eval's `mini` at the last step (mini's whole photos
    take seconds per validation on a CPU: once is enough here; the scripted test below covers `best`)."""
    root = tmp_path_factory.mktemp("val-runs")
    plain = train(_config(pairs_file, root / "plain")).run_dir
    checked = train(_config(pairs_file, root / "val", val=("mini",), val_every=4)).run_dir
    return plain, checked


def test_validation_does_not_change_training(runs: tuple[Path, Path]) -> None:
    plain, checked = runs
    assert (checked / "model.safetensors").read_bytes() == (plain / "model.safetensors").read_bytes()
    assert _rows(checked / "log.csv") == _rows(plain / "log.csv")
    assert not (plain / "val.csv").exists() and not (plain / "best.safetensors").exists()
    assert (checked / "tb").is_dir() == HAS_TENSORBOARD  # events only with the optional package


def test_best_holds_the_validated_weights(runs: tuple[Path, Path]) -> None:
    plain, checked = runs
    with open(checked / "val.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["step"], row["task"], row["set"]) == ("4", "sr-x2", "mini")
    with safe_open(str(checked / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["trained_steps"] == "4" and float(meta["val_mean_psnr"]) == float(row["psnr"])
    best = iptbench.load_model(checked / "best.safetensors").state_dict()
    for key, value in iptbench.load_model(plain / "model.safetensors").state_dict().items():
        assert torch.equal(best[key], value), key


def test_best_tracks_the_highest_mean_not_the_last(
    pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iptbench.train import runner as trainer_module

    scripted = {1: 20.0, 2: 25.0, 3: 25.0, 4: 21.0}  # best at 2; the tie at 3 keeps the earlier step

    class Scripted:
        def __init__(self, *args: object) -> None:
            pass

        def run(self, model: object, step: int) -> list[ValRow]:
            return [ValRow(step, "sr-x2", "mini", scripted[step], 0.5, 0.0)]

    monkeypatch.setattr(trainer_module, "Validator", Scripted)
    result = train(_config(pairs_file, tmp_path / "v", val=("mini",), val_every=1))
    assert result.best == (2, 25.0)
    with safe_open(str(tmp_path / "v" / "best.safetensors"), "pt") as f:
        assert f.metadata()["trained_steps"] == "2"
    straight = train(_config(pairs_file, tmp_path / "s", steps=2)).run_dir
    best = iptbench.load_model(tmp_path / "v" / "best.safetensors").state_dict()
    for key, value in iptbench.load_model(straight / "model.safetensors").state_dict().items():
        assert torch.equal(best[key], value), key


def test_mini_numbers_equal_iptbench_eval_suite_mini(runs: tuple[Path, Path], tmp_path: Path) -> None:
    from iptbench.evaluation import EvalConfig, parse_model_specs, run_eval

    _, checked = runs
    config = EvalConfig(suite="mini", data_root=tmp_path, out=tmp_path / "eval", progress=False)
    run_eval(config, parse_model_specs([f"ipt:{checked / 'model.safetensors'}"], device="cpu"))
    with open(tmp_path / "eval" / "summary.csv", newline="") as f:
        (summary,) = [r for r in csv.DictReader(f) if r["task"] == "sr-x2"]
    with open(checked / "val.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["psnr"], row["ssim"]) == (summary["psnr"], summary["ssim"])  # to the last digit


def test_mean_psnr_averages_sets_within_a_task_then_tasks() -> None:
    rows = [
        ValRow(1, "sr-x2", "Set5", 30.0, 0.9, 1.0), ValRow(1, "sr-x2", "Set14", 28.0, 0.8, 1.0),
        ValRow(1, "derain", "mini", 35.0, 0.9, 1.0),
    ]  # fmt: skip
    assert mean_psnr(rows) == (29.0 + 35.0) / 2


def test_holdout_keeps_held_images_out_of_training(pairs_file: Path) -> None:
    ds = PatchDataset(pairs_file)
    split = split_holdout(ds, 2)
    for task, (a, b) in ds.task_ranges.items():
        lo, hi = split.held[task]
        assert (lo, hi) == (b - 2, b) and split.train[task][0] == a and split.train[task][1] <= lo
        held_sources = {ds[i]["source"] for i in range(lo, hi)}
        trained = {i for batch in TaskBatchSampler(RangeView(split.train), 1) for i, _ in batch}
        assert all(ds[i]["source"] not in held_sources for i in trained if a <= i < b)
        assert not trained & set(range(lo, hi))
    with pytest.raises(IptbenchError, match="holds out every pair"):
        split_holdout(ds, 8)


def test_holdout_run_scores_the_held_pairs(pairs_file: Path, tmp_path: Path) -> None:
    result = train(_config(pairs_file, tmp_path / "h", steps=2, val=("holdout:2",), val_every=2))
    identity = json.loads((result.run_dir / "config.json").read_text())["identity"]
    assert identity["holdout"] == 2  # held-out pairs do not train: part of what the run is
    with open(result.run_dir / "val.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["set"] == "holdout:2" and math.isfinite(float(row["psnr"]))


def test_bad_val_sets_are_refused_before_training(pairs_file: Path, tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="names a set twice"):
        build_sets(["mini", "MINI"], ("sr-x2",), tmp_path, (), split_holdout(PatchDataset(pairs_file), None))
    with pytest.raises(IptbenchError, match="Set5 not found under") as info:
        train(_config(pairs_file, tmp_path / "r", val=("Set5",), data_root=str(tmp_path)))
    assert "\n" not in str(info.value) and not (tmp_path / "r").exists()
    with pytest.raises(IptbenchError, match="holdout takes a number"):
        train(_config(pairs_file, tmp_path / "r", val=("holdout:x",)))


def _set5_root() -> Path | None:
    import os

    root = os.environ.get("IPTBENCH_DATA")
    return Path(root) if root and (Path(root) / "Set5").is_dir() else None


@pytest.mark.skipif(_set5_root() is None, reason="needs Set5 under $IPTBENCH_DATA")
def test_validation_numbers_equal_iptbench_eval(tmp_path: Path, pairs_file: Path) -> None:
    from iptbench.evaluation import EvalConfig, parse_model_specs, run_eval

    root = _set5_root()
    model = iptbench.create_model("ipt-tiny", "sr-x2", seed=0)
    weights = tmp_path / "w.safetensors"
    save_model(model, weights)
    rows = Validator([BenchmarkSet("Set5", root)], ("sr-x2",), rank=0, world_size=1).run(model, 0)
    run_eval(
        EvalConfig(suite="sr", data_root=root, out=tmp_path / "eval", datasets=["Set5"], progress=False),
        parse_model_specs([f"ipt:{weights}"], device="cpu"),
    )
    with open(tmp_path / "eval" / "summary.csv", newline="") as f:
        (summary,) = [r for r in csv.DictReader(f) if r["task"] == "sr-x2"]
    assert (summary["psnr"], summary["ssim"]) == (repr(rows[0].psnr), repr(rows[0].ssim))
    with pytest.raises(IptbenchError, match="no set for denoise-30"):
        build_sets(["Set5"], ("sr-x2", "denoise-30"), root, (), split_holdout(PatchDataset(pairs_file), None))


def test_report_curves_writes_a_png(runs: tuple[Path, Path], tmp_path: Path) -> None:
    plain, checked = runs
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["report", "--curves", str(plain), str(checked), "-o", str(out)])
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] >= 440
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # axes, text and two run colours, not blank
    first = out.read_bytes()
    again = runner.invoke(
        app, ["report", "--curves", str(plain), str(checked), "-o", str(out), "--overwrite"]
    )
    assert again.exit_code == 0 and out.read_bytes() == first  # same runs, same bytes
    bad = runner.invoke(app, ["report", "--curves", str(tmp_path), "-o", str(tmp_path / "x.png")])
    assert bad.exit_code == 1 and "has no log.csv" in bad.output
