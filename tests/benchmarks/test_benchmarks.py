"""Benchmark registry, layout discovery and loading: generated folders for every layout, then real sets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iptbench.benchmarks.layouts import detect_layout
from iptbench.benchmarks.registry import (
    BENCHMARKS,
    BenchmarkDataset,
    get_benchmark,
    locate,
    resolve_data_root,
)
from iptbench.errors import IptbenchError
from iptbench.images import natural_sorted, read_image, write_png
from iptbench.tasks import get_task


def _img(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_sr_set(
    folder: Path, stems: list[str], *, size=(24, 20), scales=(2,), lr_names="{stem}x{s}.png"
) -> None:
    for i, stem in enumerate(stems):
        hr = _img(size[1], size[0], i)
        write_png(folder / "HR" / f"{stem}.png", hr)
        for s in scales:
            lr = _img(size[1] // s, size[0] // s, 100 + i)
            write_png(folder / "LR_bicubic" / f"X{s}" / lr_names.format(stem=stem, s=s), lr)


def make_pairs(folder: Path, n: int, rainy: str, clean: str, rainy_name: str, clean_name: str) -> None:
    for i in range(1, n + 1):
        write_png(folder / rainy / rainy_name.format(i=i), _img(8, 10, i))
        write_png(folder / clean / clean_name.format(i=i), _img(8, 10, 500 + i))


def test_registry_counts_kinds_and_aliases() -> None:
    expected = {
        "Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100, "Manga109": 109,
        "CBSD68": 68, "Kodak24": 24, "McMaster": 18, "Rain100L": 100, "Rain100H": 100,
    }  # fmt: skip
    assert {name: b.count for name, b in BENCHMARKS.items()} == expected
    assert get_benchmark("Urban100").kinds == ("sr", "denoise")
    assert get_benchmark("rain100h").kinds == ("derain",)
    assert {get_benchmark(a).name for a in ("bsd100", "BSDS100", "b100")} == {"B100"}
    for bench in BENCHMARKS.values():  # a hash is either unknown or a real sha256, never a placeholder
        if bench.fetch is not None and bench.fetch.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{64}", bench.fetch.sha256)
    with pytest.raises(IptbenchError, match="unknown benchmark 'Set6'"):
        get_benchmark("Set6")


def test_natural_sort() -> None:
    names = ["10.png", "2.png", "1.png", "img10.png", "img9.png"]
    assert [p.name for p in natural_sorted(Path(n) for n in names)] == [
        "1.png", "2.png", "10.png", "img9.png", "img10.png"
    ]  # fmt: skip


def test_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IPTBENCH_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "cli") == tmp_path / "cli"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("IPTBENCH_DATA")
    assert resolve_data_root(None) == Path("~/.cache/iptbench/datasets").expanduser()


def test_hr_lr_layout_items_and_load(tmp_path: Path) -> None:
    make_sr_set(tmp_path / "Set5", ["a", "b", "c", "d", "e"], size=(25, 21), scales=(2, 3))
    status = locate("Set5", tmp_path)
    assert status.state == "found" and status.found == 5
    assert status.layout_name == "HR/ + LR_bicubic/X2,X3"
    ds = BenchmarkDataset("set5", tmp_path)
    items = ds.items(get_task("sr-x3"))
    assert [i.name for i in items] == ["a", "b", "c", "d", "e"]
    assert items[0].input == tmp_path / "Set5" / "LR_bicubic" / "X3" / "ax3.png"
    lr, hr = ds.load(items[0], get_task("sr-x3"))
    assert hr.shape == (21, 24, 3) and lr.shape == (7, 8, 3)  # HR mod-cropped to 3: 25x21 -> 24x21
    np.testing.assert_array_equal(hr, read_image(items[0].target)[:21, :24])
    np.testing.assert_array_equal(lr, read_image(items[0].input))
    clean_only = ds.items(get_task("denoise-50"))
    assert clean_only[0].input is None and ds.load(clean_only[0], get_task("denoise-50"))[0] is None


def test_lr_made_on_the_fly_without_lr_folder(tmp_path: Path) -> None:
    from iptbench.ops import imresize

    make_sr_set(tmp_path / "Set5", list("abcde"), size=(26, 18), scales=())
    ds = BenchmarkDataset("Set5", tmp_path)
    item = ds.items(get_task("sr-x4"))[0]
    assert item.input is None
    lr, hr = ds.load(item, get_task("sr-x4"))
    assert hr.shape == (16, 24, 3) and lr.shape == (4, 6, 3) and lr.dtype == np.uint8
    import torch

    ref = imresize(torch.from_numpy(hr).permute(2, 0, 1)[None], 0.25, mode="matlab_uint8")[0]
    np.testing.assert_array_equal(lr, ref.permute(1, 2, 0).numpy())


def test_lr_size_mismatch_and_missing_lr_file(tmp_path: Path) -> None:
    make_sr_set(tmp_path / "Set5", list("abcde"), size=(24, 20), scales=(2,))
    write_png(tmp_path / "Set5" / "LR_bicubic" / "X2" / "ax2.png", _img(9, 12, 0))  # should be 10 x 12
    ds = BenchmarkDataset("Set5", tmp_path)
    task = get_task("sr-x2")
    with pytest.raises(IptbenchError, match=r"LR ax2.png is 12x9, but HR a.png mod-cropped to x2 is 24x20"):
        ds.load(ds.items(task)[0], task)
    (tmp_path / "Set5" / "LR_bicubic" / "X2" / "bx2.png").unlink()
    assert locate("Set5", tmp_path).state == "incomplete"
    ds = BenchmarkDataset("Set5", tmp_path, strict=False)
    with pytest.raises(IptbenchError, match="has no LR file for b.png"):
        ds.items(task)


def test_flat_alias_case_insensitive_and_tiff(tmp_path: Path) -> None:
    for i in range(100):
        write_png(tmp_path / "benchmark" / "bsds100" / f"{i}.png", _img(6, 6, i))
    status = locate("B100", tmp_path)
    assert status.state == "found" and status.path == tmp_path / "benchmark" / "bsds100"
    assert status.layout_name == "flat folder (png)"
    mcm = tmp_path / "mcmaster" / "HR"
    mcm.mkdir(parents=True)
    for i in range(1, 19):
        Image.fromarray(_img(5, 5, i)).save(mcm / f"{i}.tif")
    ds = BenchmarkDataset("McMaster", tmp_path)
    items = ds.items(get_task("denoise-30"))
    assert [i.name for i in items][:3] == ["1", "2", "3"] and items[-1].name == "18"
    assert ds.load(items[0], get_task("denoise-30"))[1].shape == (5, 5, 3)


def test_grayscale_becomes_three_channels(tmp_path: Path) -> None:
    folder = tmp_path / "Kodak24"
    folder.mkdir()
    for i in range(24):
        Image.fromarray(_img(4, 4, i)[..., 0]).save(folder / f"kodim{i + 1:02d}.png")
    ds = BenchmarkDataset("Kodak24", tmp_path)
    _, clean = ds.load(ds.items(get_task("denoise-30"))[0], get_task("denoise-30"))
    assert clean.shape == (4, 4, 3) and (clean[..., 0] == clean[..., 2]).all()


@pytest.mark.parametrize(
    ("rainy", "clean", "rainy_name", "clean_name", "layout"),
    [
        ("rainy", "norain", "{i}.png", "{i}.png", "rainy/ + norain/ paired by name"),
        ("rainy", ".", "rain-{i:03d}.png", "norain-{i:03d}.png", "rainy/rain-NNN + norain-NNN beside it"),
        ("input", "target", "{i}.png", "{i}.png", "input/ + target/ paired by name"),
        ("rain", "norain", "rain-{i:03d}.png", "norain-{i:03d}.png", "rain/ + norain/ paired by name"),
    ],
)
def test_rain_layouts(
    tmp_path: Path, rainy: str, clean: str, rainy_name: str, clean_name: str, layout: str
) -> None:
    make_pairs(tmp_path / "Rain100L", 100, rainy, clean, rainy_name, clean_name)
    status = locate("rain100l", tmp_path)
    assert (status.state, status.found, status.layout_name) == ("found", 100, layout)
    ds = BenchmarkDataset("Rain100L", tmp_path)
    items = ds.items(get_task("derain"))
    assert len(items) == 100
    third = items[2]  # natural order: 1, 2, 3 (not 1, 10, 100)
    assert third.input is not None and third.input.name == rainy_name.format(i=3)
    assert third.target.name == clean_name.format(i=3)
    rain, gt = ds.load(third, get_task("derain"))
    np.testing.assert_array_equal(rain, _img(8, 10, 3))
    np.testing.assert_array_equal(gt, _img(8, 10, 503))
    with pytest.raises(IptbenchError, match="only be used for deraining"):
        ds.items(get_task("sr-x2"))


def test_rain_problems(tmp_path: Path) -> None:
    make_pairs(tmp_path / "Rain100H", 100, "rainy", "norain", "{i}.png", "{i}.png")
    write_png(tmp_path / "Rain100H" / "norain" / "5.png", _img(9, 10, 0))
    (tmp_path / "Rain100H" / "norain" / "7.png").unlink()
    status = locate("Rain100H", tmp_path)
    assert status.state == "incomplete"
    assert "rainy/7.png has no partner in norain/" in status.problems
    with pytest.raises(IptbenchError, match="incomplete: rainy/7.png has no partner"):
        BenchmarkDataset("Rain100H", tmp_path)
    ds = BenchmarkDataset("Rain100H", tmp_path, strict=False)
    item = next(i for i in ds.items(get_task("derain")) if i.name == "5")
    with pytest.raises(IptbenchError, match=r"5.png is 10x8 but its clean image 5.png is 10x9"):
        ds.load(item, get_task("derain"))
    assert "holds single images" in _error(lambda: _single_image_derain(tmp_path))


def _single_image_derain(root: Path) -> None:
    make_sr_set(root / "Set5", list("abcde"), scales=())
    BenchmarkDataset("Set5", root).items(get_task("derain"))


def _error(fn) -> str:
    with pytest.raises(IptbenchError) as info:
        fn()
    return str(info.value)


def test_missing_and_incomplete_messages(tmp_path: Path) -> None:
    message = _error(lambda: BenchmarkDataset("Urban100", tmp_path))
    assert "iptbench datasets fetch Urban100" in message and str(tmp_path / "Urban100") in message
    make_sr_set(tmp_path / "Set14", ["a", "b"], scales=())
    assert locate("Set14", tmp_path).problems == ["2 images found, 14 expected"]
    (tmp_path / "Manga109").mkdir()
    status = locate("Manga109", tmp_path)
    assert status.state == "incomplete" and "no images in a recognised layout" in status.problems[0]
    assert detect_layout(tmp_path / "Manga109") is None


# ---- the real benchmark images (IPTBENCH_DATA) ---------------------------------------------------------


def test_real_sets_located(benchmark_root: Path) -> None:
    states = {name: locate(name, benchmark_root).state for name in BENCHMARKS}
    for name in ("Set5", "Set14", "B100", "CBSD68", "Kodak24", "McMaster", "Rain100L"):
        assert states[name] == "found", name
    assert states["Urban100"] == "missing"


def test_real_set5_x4_loads_lr_file(benchmark_root: Path) -> None:
    ds = BenchmarkDataset("Set5", benchmark_root)
    task = get_task("sr-x4")
    items = ds.items(task)
    assert [i.name for i in items] == ["baby", "bird", "butterfly", "head", "woman"]
    for item in items:
        assert item.input is not None and item.input.name == f"{item.name}x4.png"
        lr, hr = ds.load(item, task)
        assert lr.shape[0] * 4 == hr.shape[0] and lr.shape[1] * 4 == hr.shape[1]
    lr, hr = ds.load(items[-1], task)  # woman is 228x344: mod-crop 4 keeps 228x344
    assert hr.shape == (344, 228, 3) and lr.shape == (86, 57, 3)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_real_on_the_fly_lr_equals_distributed_files(
    benchmark_root: Path, tmp_path: Path, scale: int
) -> None:
    (tmp_path / "Set5").mkdir()
    (tmp_path / "Set5" / "HR").symlink_to(benchmark_root / "Set5" / "HR")
    task = get_task(f"sr-x{scale}")
    made = BenchmarkDataset("Set5", tmp_path)
    shipped = BenchmarkDataset("Set5", benchmark_root)
    for a, b in zip(made.items(task), shipped.items(task), strict=True):
        np.testing.assert_array_equal(made.load(a, task)[0], shipped.load(b, task)[0])


def test_real_rain100l_pairs(benchmark_root: Path) -> None:
    ds = BenchmarkDataset("Rain100L", benchmark_root)
    items = ds.items(get_task("derain"))
    assert len(items) == 100 and [i.name for i in items[:3]] == ["1", "2", "3"]
    rainy, clean = ds.load(items[0], get_task("derain"))
    assert rainy.shape == clean.shape and not np.array_equal(rainy, clean)
