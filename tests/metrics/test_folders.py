"""Pairing ground-truth and restored files by stem, and scoring a folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from iptbench.errors import IptbenchError
from iptbench.images import write_png
from iptbench.metrics.folders import matches_stem, pair_folders, score_folder


def _touch(folder: Path, names: list[str], size: tuple[int, int] = (16, 16)) -> None:
    for i, name in enumerate(names):
        write_png(folder / name, np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("restored", "gt", "ok"),
    [
        ("baby", "baby", True),
        ("baby_x4", "baby", True),
        ("babyx4", "baby", True),
        ("baby_x4_SwinIR", "baby", True),
        ("baby_SwinIR", "baby", True),
        ("BABY_IPT_x2", "baby", True),
        ("baby-out", "baby", True),
        ("babyx4_SR", "baby", True),
        ("babyface", "baby", False),
        ("baby4", "baby", False),
        ("10", "1", False),
        ("100_derain", "10", False),
        ("bab", "baby", False),
    ],
)
def test_matches_stem(restored: str, gt: str, ok: bool) -> None:
    assert matches_stem(restored, gt) is ok


def test_pairs_with_suffixes_and_longest_stem(tmp_path: Path) -> None:
    _touch(tmp_path / "gt", ["baby.png", "bird.png", "img_1.png", "img.png", "1.png", "10.png"])
    restored = [
        "baby_x4_SwinIR.png",
        "birdx4.png",
        "img_1_x4.png",
        "img_x4.png",
        "1_IPT_x2.png",
        "10_IPT_x2.png",
    ]
    _touch(tmp_path / "out", [*restored, "notes_x4.png"])
    pairing = pair_folders(tmp_path / "gt", tmp_path / "out")
    got = {p.name: p.restored.name for p in pairing.pairs}
    assert got == {
        "1": "1_IPT_x2.png", "10": "10_IPT_x2.png", "baby": "baby_x4_SwinIR.png", "bird": "birdx4.png",
        "img": "img_x4.png", "img_1": "img_1_x4.png",
    }  # fmt: skip
    assert [p.name for p in pairing.pairs] == ["1", "10", "baby", "bird", "img", "img_1"]  # natural GT order
    assert [p.name for p in pairing.unused] == ["notes_x4.png"]


def test_exact_name_beats_suffixed(tmp_path: Path) -> None:
    _touch(tmp_path / "gt", ["a.png"])
    _touch(tmp_path / "out", ["a.png", "a_x4.png"])
    pairing = pair_folders(tmp_path / "gt", tmp_path / "out")
    assert pairing.pairs[0].restored.name == "a.png" and [p.name for p in pairing.unused] == ["a_x4.png"]


def test_missing_and_ambiguous_messages(tmp_path: Path) -> None:
    _touch(tmp_path / "gt", ["baby.png", "bird.png", "head.png"])
    _touch(tmp_path / "out", ["baby_x4.png"])
    with pytest.raises(IptbenchError) as info:
        pair_folders(tmp_path / "gt", tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and "for 2 of 3 ground-truth images: bird, head" in message
    _touch(tmp_path / "out2", ["baby_x4_A.png", "baby_x4_B.png", "bird.png", "head.png"])
    with pytest.raises(IptbenchError, match=r"ambiguous pairs .*baby <- baby_x4_A.png / baby_x4_B.png"):
        pair_folders(tmp_path / "gt", tmp_path / "out2")
    with pytest.raises(IptbenchError, match="restored folder .*nope does not exist"):
        pair_folders(tmp_path / "gt", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IptbenchError, match="no images in restored folder"):
        pair_folders(tmp_path / "gt", tmp_path / "empty")
    _touch(tmp_path / "gt2", ["a.png", "a.bmp"])
    with pytest.raises(IptbenchError, match="two images with stem 'a'"):
        pair_folders(tmp_path / "gt2", tmp_path / "out")


def test_score_identical_and_known_mse(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(10, 240, (32, 40, 3), dtype=np.uint8)
    write_png(tmp_path / "gt" / "a.png", img)
    write_png(tmp_path / "out" / "a_x2.png", img)
    write_png(tmp_path / "gt" / "b.png", img)
    write_png(tmp_path / "out" / "b_x2.png", (img.astype(np.int16) + 2).astype(np.uint8))  # MSE 4 on RGB
    scores = score_folder(tmp_path / "gt", tmp_path / "out", crop=2, channel="rgb")
    assert math.isinf(scores.rows[0].psnr) and scores.rows[0].ssim == pytest.approx(1.0)
    assert scores.rows[1].psnr == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-9)
    assert [r.name for r in scores.rows] == ["a", "b"]


def test_size_mismatch_and_modcrop(tmp_path: Path) -> None:
    _touch(tmp_path / "gt", ["woman.png"], size=(34, 23))  # H x W
    _touch(tmp_path / "out", ["woman_x4.png"], size=(32, 20))
    with pytest.raises(IptbenchError) as info:
        score_folder(tmp_path / "gt", tmp_path / "out", crop=4)
    assert str(info.value) == (
        "size mismatch for woman: ground truth woman.png is 23x34, restored woman_x4.png is 20x32"
    )
    scores = score_folder(tmp_path / "gt", tmp_path / "out", crop=4, scale=4)  # GT mod-cropped to 20x32
    assert scores.modcropped == ["woman"]
    with pytest.raises(IptbenchError, match="--crop 6 leaves less than 11 px"):
        score_folder(tmp_path / "gt", tmp_path / "out", crop=6, scale=4)


def test_grey_ground_truth_is_scored_on_grey_values(tmp_path: Path) -> None:
    """The MATLAB rule: a one-channel ground truth is compared with the restored image's luma, not with Y."""
    from PIL import Image

    from iptbench.metrics.folders import score_folder

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    noisy = np.clip(grey.astype(int) + rng.integers(-6, 7, grey.shape), 0, 255).astype(np.uint8)
    (tmp_path / "gt").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(grey, "L").save(tmp_path / "gt" / "a.png")
    Image.fromarray(np.repeat(noisy[..., None], 3, axis=2)).save(tmp_path / "out" / "a.png")
    mse = np.mean((noisy.astype(np.float64) - grey) ** 2)  # luma of equal channels is the grey value
    expected = 10 * np.log10(255.0**2 / mse)
    got = score_folder(tmp_path / "gt", tmp_path / "out").rows[0].psnr
    assert abs(got - expected) < 1e-9
