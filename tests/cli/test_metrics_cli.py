"""`iptbench metrics GT_DIR RESTORED_DIR`: exit codes, one-line errors, profiles, CSV, and bicubic Set5 x4."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import iptbench.metrics
from iptbench import tasks as registry
from iptbench.cli import app
from iptbench.cli.metrics import _profile_task, resolve_settings
from iptbench.errors import IptbenchError
from iptbench.images import read_image, write_png

runner = CliRunner(env={"COLUMNS": "200"})


def _folders(tmp_path: Path, names: dict[str, str], size=(24, 20)) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for gt_name, out_name in names.items():
        img = rng.integers(20, 230, (size[1], size[0], 3), dtype=np.uint8)
        write_png(tmp_path / "gt" / gt_name, img)
        if out_name:
            noisy = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
            write_png(tmp_path / "out" / out_name, noisy)
    return tmp_path / "gt", tmp_path / "out"


def test_scores_table_and_csv(tmp_path: Path) -> None:
    gt, out = _folders(
        tmp_path, {"baby.png": "baby_x4_SwinIR.png", "bird.png": "birdx4.png", "10.png": "10_x4.png"}
    )
    csv_file = tmp_path / "scores.csv"
    result = runner.invoke(
        app, ["metrics", str(gt), str(out), "--crop", "2", "--channel", "rgb", "--csv", str(csv_file)]
    )
    assert result.exit_code == 0, result.output
    assert "no profile: RGB channel, border crop 2 px" in result.stdout
    assert "scored: RGB channel, border crop 2 px, 3 images" in result.stdout
    with open(csv_file, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["image", "psnr", "ssim"]
    assert [r[0] for r in rows[1:]] == ["10", "baby", "bird"]  # one row per image, no mean row
    psnr = [float(r[1]) for r in rows[1:]]
    assert all(20 < p < 60 for p in psnr) and any(len(r[1]) > 12 for r in rows[1:])  # full precision
    mean_line = next(line for line in result.stdout.splitlines() if "mean" in line)
    assert f"{np.mean(psnr):.2f}" in mean_line


def test_missing_pair_is_one_line(tmp_path: Path) -> None:
    gt, out = _folders(tmp_path, {"a.png": "a_x2.png", "b.png": "", "c.png": ""})
    result = runner.invoke(app, ["metrics", str(gt), str(out)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "for 2 of 3 ground-truth images: b, c" in result.stderr


def test_size_mismatch_is_one_line(tmp_path: Path) -> None:
    gt, out = _folders(tmp_path, {"a.png": "a_x2.png"})
    write_png(out / "a_x2.png", np.zeros((19, 24, 3), np.uint8))
    result = runner.invoke(app, ["metrics", str(gt), str(out), "--scale", "2"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "size mismatch for a: ground truth a.png is 24x20, restored a_x2.png is 24x19" in result.stderr


def test_profile_resolution() -> None:
    crop, channel, line = resolve_settings("sr", 4, None, None)
    assert (crop, channel) == (4, "y") and line == iptbench.metrics.get_profile("sr").describe()
    assert resolve_settings(None, 3, None, None)[:2] == (3, "y")  # --scale alone means the sr profile
    crop, channel, line = resolve_settings("sr", 4, 0, "rgb")
    assert (crop, channel) == (0, "rgb") and line.endswith("[overridden: crop 0, channel rgb]")
    assert resolve_settings("denoise", None, None, None)[:2] == (0, "rgb")
    assert resolve_settings("derain", None, None, None)[:2] == (0, "y")
    assert resolve_settings("ipt-legacy", 2, None, None)[:2] == (2, "y")
    assert resolve_settings("ipt-legacy", None, None, None)[:2] == (0, "y")
    with pytest.raises(IptbenchError, match="--profile sr needs --scale"):
        resolve_settings("sr", None, None, None)


def test_profiles_find_their_task_in_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _profile_task("derain", None).name == "derain"  # the first task of the kind it is the default of
    assert _profile_task("denoise", None).name == "denoise-30"
    assert _profile_task("ipt-legacy", None).scale == 1  # no kind defaults to it: an unscaled task
    assert _profile_task("sr", 3).name == "sr-x3" and _profile_task("ipt-legacy", 2).name == "sr-x2"
    made_up = _profile_task("sr", 8)  # no x8 task: one of the scaled kind, for its crop and channel rules
    assert (made_up.kind, made_up.scale) == ("sr", 8)
    assert resolve_settings("sr", None, 2, None)[:2] == (2, "y")  # an explicit crop stands in for the scale
    assert resolve_settings("sr", 8, 8, None)[:2] == (8, "y")
    # Which profile needs --scale follows the kinds' default profiles, not the profile's name.
    monkeypatch.setitem(
        registry.KINDS, "sr", dataclasses.replace(registry.get_kind("sr"), profile="ipt-legacy")
    )
    with pytest.raises(IptbenchError, match="--profile ipt-legacy needs --scale"):
        resolve_settings("ipt-legacy", None, None, None)
    assert resolve_settings("sr", None, None, None)[:2] == (0, "y")


def test_lpips_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The LPIPS plumbing (column, CSV); LPIPS values themselves are tested with the metrics."""

    class FakeLpips:
        def __init__(self, net: str = "alex", device=None) -> None:
            assert net == "vgg"

        def __call__(self, restored: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return (restored - target).abs().mean(dim=(1, 2, 3)).double() / 255

    monkeypatch.setattr(iptbench.metrics, "Lpips", FakeLpips)
    gt, out = _folders(tmp_path, {"a.png": "a.png", "b.png": "b.png"})
    csv_file = tmp_path / "s.csv"
    args = ["metrics", str(gt), str(out), "--lpips", "--lpips-net", "vgg", "--csv", str(csv_file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "LPIPS (vgg)" in result.stdout and "LPIPS vgg on uncropped RGB" in result.stdout
    with open(csv_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "psnr", "ssim", "lpips"] and 0 < float(rows[0]["lpips"]) < 0.02


def test_real_set5_bicubic_x4(benchmark_root: Path, tmp_path: Path) -> None:
    from iptbench.ops import imresize

    out = tmp_path / "bicubic"
    for lr_path in sorted((benchmark_root / "Set5" / "LR_bicubic" / "X4").glob("*.png")):
        lr = torch.from_numpy(read_image(lr_path).copy()).permute(2, 0, 1)[None]
        sr = imresize(lr, 4, mode="matlab_uint8")[0].permute(1, 2, 0).numpy()
        write_png(out / f"{lr_path.stem}_bicubic.png", sr)  # babyx4_bicubic.png pairs with baby.png
    csv_file = tmp_path / "set5.csv"
    hr = benchmark_root / "Set5" / "HR"
    result = runner.invoke(
        app, ["metrics", str(hr), str(out), "--profile", "sr", "--scale", "4", "--csv", str(csv_file)]
    )
    assert result.exit_code == 0, result.output
    with open(csv_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == ["baby", "bird", "butterfly", "head", "woman"]
    mean_psnr = float(np.mean([float(r["psnr"]) for r in rows]))
    mean_ssim = float(np.mean([float(r["ssim"]) for r in rows]))
    assert mean_psnr == pytest.approx(28.43, abs=0.01) and not math.isnan(mean_ssim)
    assert mean_ssim == pytest.approx(0.8111, abs=0.0005)
    assert "scored: Y channel, border crop 4 px, 5 images" in result.stdout
