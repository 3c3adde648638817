from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iptbench.benchmarks import mini
from iptbench.cli import app
from iptbench.images import read_image
from iptbench.tasks import get_task


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPTBENCH_CACHE", str(tmp_path / "cache"))


def test_six_colour_photos_serve_every_task() -> None:
    dataset = mini.MiniDataset()
    assert len(dataset) == 6
    for task in ("sr-x2", "sr-x3", "sr-x4", "denoise-30", "denoise-50", "derain"):
        items = dataset.items(get_task(task))
        assert [i.name for i in items] == [Path(p).stem for p in mini.PHOTOS]
    assert all(read_image(p).ndim == 3 for p in mini.photo_paths())


def test_photos_are_centre_crops_of_the_installed_samples() -> None:
    from PIL import Image

    for source, cropped in zip(mini.source_paths(), mini.photo_paths(), strict=True):
        whole = np.asarray(Image.open(source).convert("RGB"))
        top, left = (whole.shape[0] - 288) // 2, (whole.shape[1] - 288) // 2
        assert (read_image(cropped) == whole[top : top + 288, left : left + 288]).all(), source.name
    assert mini.photo_paths() == mini.photo_paths()  # cached: the same files the second time


def test_sr_input_is_matlab_bicubic_of_the_modcropped_photo() -> None:
    """`matlab_uint8` is the mode that reproduces the published LR files (tests/ops checks all 357)."""
    from iptbench.ops import imresize, modcrop

    dataset = mini.MiniDataset()
    task = get_task("sr-x3")
    item = dataset.items(task)[1]
    lr, target = dataset.load(item, task)
    hr = np.array(modcrop(read_image(item.target), 3))
    assert target.shape == hr.shape and (target == hr).all()
    import torch

    expected = imresize(torch.from_numpy(hr).permute(2, 0, 1), 1 / 3, "matlab_uint8")
    assert lr is not None and lr.shape == (hr.shape[0] // 3, hr.shape[1] // 3, 3)
    assert (torch.from_numpy(lr).permute(2, 0, 1) == expected).all()


def test_rain_is_seeded_cached_and_visible(tmp_path: Path) -> None:
    clean = mini.photo_paths()[0]
    first = mini.rainy_path(clean, 0)
    data = first.read_bytes()
    first.unlink()
    assert mini.rainy_path(clean, 0).read_bytes() == data  # the same bytes when made again
    rainy, target = read_image(first).astype(int), read_image(clean).astype(int)
    added = rainy - target
    assert added.min() >= 0 and 1.0 < added.mean() < 20.0  # streaks only brighten, and there are some
    other = mini.photo_paths()[2]
    added_other = read_image(mini.rainy_path(other, 2)).astype(int) - read_image(other).astype(int)
    h, w = min(added.shape[0], added_other.shape[0]), min(added.shape[1], added_other.shape[1])
    assert (added[:h, :w] != added_other[:h, :w]).any()  # each photo gets its own seed


def test_eval_suite_mini_needs_no_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPTBENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--suite", "mini", "-m", "bicubic", "-m", "input"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "results").iterdir()
    assert folder.name.startswith("mini-")
    with (folder / "summary.csv").open() as handle:
        rows = {(r["model"], r["task"]) for r in csv.DictReader(handle)}
    assert ("bicubic", "sr-x4") in rows and ("input", "derain") in rows and ("input", "denoise-50") in rows
    assert (folder / "comparison.png").is_file()
