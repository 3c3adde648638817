"""`--model NAME=images:DIR`: precomputed restored images scored beside the models, in every layout."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.evaluation.runner import EvalConfig, EvalResult, run_eval
from iptbench.images import read_image, write_png
from iptbench.io import sha256_file


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _scores(out: Path, model: str) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (r["dataset"], r["task"]): (r["psnr"], r["ssim"])
        for r in _csv(out / "summary.csv")
        if r["model"] == model
    }


def _run(root: Path, out: Path, specs: list[str], **kw: object) -> tuple[EvalResult, str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=400)
    datasets = kw.pop("datasets", ["Set5"])
    cfg = EvalConfig(suite="sr", data_root=root, out=out, datasets=datasets, progress=False, **kw)  # type: ignore[arg-type]
    return run_eval(cfg, [parse_model_spec(s) for s in specs], console=console), buffer.getvalue()


@pytest.fixture
def saved(make_root: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    """Bicubic run with --save-images: (data root, its result folder)."""
    root, out = make_root("Set5"), tmp_path / "bicubic"
    _run(root, out, ["bicubic"], save_images=True)
    return root, out


def _layout(src: Path, dst: Path, layout: str) -> Path:
    """Copy iptbench's DIR/Set5/sr-xS layout into another common layout."""
    for task_dir in (src / "Set5").iterdir():
        scale = task_dir.name.split("x")[-1]
        target = {
            "Set5/xS": dst / "Set5" / f"x{scale}",
            "Set5_xS": dst / f"Set5_x{scale}",
            "xS/Set5": dst / f"x{scale}" / "Set5",
        }[layout]
        target.mkdir(parents=True)
        for image in task_dir.iterdir():  # suffixed names, as other methods write them
            shutil.copy(image, target / f"{image.stem}_x{scale}_method.png")
    return dst


@pytest.mark.parametrize("layout", ["own", "Set5/xS", "Set5_xS", "xS/Set5"])
def test_saved_bicubic_images_reproduce_the_bicubic_rows(
    saved: tuple[Path, Path], tmp_path: Path, layout: str
) -> None:
    root, bic = saved
    images = bic / "images" / "bicubic"
    if layout != "own":
        images = _layout(images, tmp_path / "dir", layout)
    out = tmp_path / "rescored"
    result, _ = _run(root, out, [f"again=images:{images}"])
    assert len(result.ran) == 3
    assert _scores(out, "again") == _scores(bic, "bicubic")  # to the last digit
    per_image = {(r["task"], r["image"]): (r["psnr"], r["ssim"]) for r in _csv(out / "per_image.csv")}
    assert per_image == {(r["task"], r["image"]): (r["psnr"], r["ssim"]) for r in _csv(bic / "per_image.csv")}
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = manifest["restored_sha256"]
    assert len(recorded) == 15
    name, sha = next(iter(recorded.items()))
    assert name.startswith("again/Set5/sr-x2/")
    first = sorted((images / "Set5" / "sr-x2").glob("*.png"))[0] if layout == "own" else None
    if first is not None:
        assert recorded[f"again/Set5/sr-x2/{first.stem}"] == sha256_file(first)
    summary = _csv(out / "summary.csv")[0]
    assert (
        summary["arch"] == "images" and json.loads(summary["identity_json"])["restorer"]["kind"] == "images"
    )
    assert sha


def test_missing_wrong_size_and_ambiguous_images_refuse_the_cell(
    saved: tuple[Path, Path], tmp_path: Path
) -> None:
    root, bic = saved
    images = tmp_path / "dir"
    shutil.copytree(bic / "images" / "bicubic", images)
    (images / "Set5" / "sr-x2" / "img002.png").unlink()  # missing
    x3 = images / "Set5" / "sr-x3"
    write_png(x3 / "img001.png", read_image(x3 / "img001.png")[:-3])  # wrong size
    x4 = images / "Set5" / "sr-x4"
    (x4 / "img004.png").rename(x4 / "img004_a.png")
    shutil.copy(x4 / "img004_a.png", x4 / "img004_b.png")  # two candidates, no exact name
    out = tmp_path / "out"
    with pytest.raises(IptbenchError, match="nothing to evaluate"):
        _run(root, out, [f"m=images:{images}"])
    result, text = _run(root, out, ["bicubic", f"m=images:{images}"])
    assert {k[0] for k in result.ran} == {"bicubic"}
    lines = [line for line in text.splitlines() if line.startswith("m Set5")]
    assert len(lines) == 3 and all("cell not written" in line for line in lines)
    assert "no restored image for 1 of 5 images: img002" in lines[0]
    assert "wrong size: img001.png is 36x27, ground truth 36x30" in lines[1]
    assert "ambiguous names: img004 <- img004_a.png / img004_b.png" in lines[2]
    assert {r["model"] for r in _csv(out / "summary.csv")} == {"bicubic"}


def test_allow_partial_scores_what_is_there_and_says_how_many(
    saved: tuple[Path, Path], tmp_path: Path
) -> None:
    from iptbench.report.tables import render_report

    root, bic = saved
    images = tmp_path / "dir"
    shutil.copytree(bic / "images" / "bicubic", images)
    (images / "Set5" / "sr-x2" / "img002.png").unlink()
    out = tmp_path / "out"
    result, text = _run(root, out, [f"m=images:{images}"], allow_partial=True)
    assert "scoring 4 of 5 images" in text
    row = next(r for r in _csv(out / "summary.csv") if r["task"] == "sr-x2")
    assert (row["images"], row["expected_images"]) == ("4", "5")
    assert "(4/5 images)" in render_report([out])


def test_dataset_or_task_without_folder_is_skipped(saved: tuple[Path, Path], tmp_path: Path) -> None:
    root, bic = saved
    images = tmp_path / "dir"
    shutil.copytree(bic / "images" / "bicubic" / "Set5" / "sr-x2", images / "Set5_x2")
    result, text = _run(root, tmp_path / "out", [f"m=images:{images}"])
    assert result.ran == [("m", "Set5", "sr-x2")]
    assert "skipped: m has no folder in" in text and "Set5 sr-x3, Set5 sr-x4" in text


def test_changed_restored_image_redoes_the_cell(saved: tuple[Path, Path], tmp_path: Path) -> None:
    root, bic = saved
    images = tmp_path / "dir"
    shutil.copytree(bic / "images" / "bicubic", images)
    out = tmp_path / "out"
    _run(root, out, [f"m=images:{images}"])
    image = images / "Set5" / "sr-x3" / "img001.png"
    write_png(image, 255 - read_image(image))
    result, text = _run(root, out, [f"m=images:{images}"])
    assert result.ran == [("m", "Set5", "sr-x3")] and "m Set5 sr-x3: restored images changed" in text


def test_images_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="needs a row name"):
        parse_model_spec(f"images:{tmp_path}")
    with pytest.raises(IptbenchError, match="is not a folder"):
        parse_model_spec(f"x=images:{tmp_path / 'none'}")


def test_set14_bicubic_grey_rule_and_images_round_trip(benchmark_root: Path, tmp_path: Path) -> None:
    """Set14 from its LR files under the grey rule (bridge.png scored on grey values), as the MATLAB scripts
    behind the RCAN table do (published 30.24/0.8688, 27.55/0.7742, 26.00/0.7027); then the saved images
    rescored through images: give the same bytes."""
    out = tmp_path / "set14"
    _run(benchmark_root, out, ["bicubic"], datasets=["Set14"], save_images=True)
    rows = {r["task"]: r for r in _csv(out / "summary.csv")}
    expected = {"sr-x2": (30.2302, 0.8691), "sr-x3": (27.5367, 0.7745), "sr-x4": (25.9940, 0.7029)}
    for task, (psnr, ssim) in expected.items():
        assert (round(float(rows[task]["psnr"]), 4), round(float(rows[task]["ssim"]), 4)) == (psnr, ssim)
    # IPT's convention (bridge replicated to RGB, then Y) is kept beside it for the Δ rows: +0.094 dB
    assert round(float(rows["sr-x2"]["psnr_replicated"]), 4) == 30.3246
    again = tmp_path / "again"
    _run(benchmark_root, again, [f"bicubic=images:{out / 'images' / 'bicubic'}"], datasets=["Set14"])
    assert _scores(again, "bicubic") == _scores(out, "bicubic")
