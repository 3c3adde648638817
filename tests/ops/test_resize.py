"""imresize against a plain NumPy statement of MATLAB's algorithm, and against the EDSR LR files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iptbench.ops import imresize, modcrop
from iptbench.ops.color import round_half_away


def _keys_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _ref_axis(img: np.ndarray, out_len: int, scale: float, round_uint8: bool) -> np.ndarray:
    """Resize axis 0 of a float64 array, one output sample at a time, as MATLAB's imresize does."""
    in_len = img.shape[0]
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros((out_len,) + img.shape[1:])
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        if scale < 1:
            w = [scale * _keys_cubic(scale * (u - j)) for j in taps]
        else:
            w = [_keys_cubic(u - j) for j in taps]
        total = sum(w)
        acc = np.zeros(img.shape[1:])
        for j, wj in zip(taps, w, strict=True):
            # 1-based MATLAB index j mirrored into 1..in_len (symmetric padding, edge repeated).
            m = j
            while m < 1 or m > in_len:
                m = 1 - m if m < 1 else 2 * in_len + 1 - m
            acc = acc + (wj / total) * img[m - 1]
        out[i - 1] = acc
    if round_uint8:
        out = np.clip(np.sign(out) * np.floor(np.abs(out) + 0.5), 0, 255)
    return out


def _reference(img: np.ndarray, scale: float, round_uint8: bool = False) -> np.ndarray:
    """H x W x C float64; rows first, then columns."""
    h, w = img.shape[:2]
    out_h, out_w = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    rows = _ref_axis(img.astype(np.float64), out_h, scale, round_uint8)
    cols = _ref_axis(rows.transpose(1, 0, 2), out_w, scale, round_uint8)
    return cols.transpose(1, 0, 2)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("size", [(23, 17), (31, 29), (9, 14)])
def test_float_matches_numpy_reference(scale: float, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, size=size + (3,))
    got = _to_numpy(imresize(_to_tensor(img), scale, "matlab"))
    want = _reference(img, scale)
    assert (
        got.shape == want.shape == (math.ceil(size[0] * scale - 1e-9), math.ceil(size[1] * scale - 1e-9), 3)
    )
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", SCALES)
def test_uint8_mode_matches_reference_with_per_axis_rounding(scale: float) -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(27, 19, 3), dtype=np.uint8)
    got = imresize(_to_tensor(img), scale, "matlab_uint8")
    assert got.dtype == torch.uint8
    want = _reference(img, scale, round_uint8=True)
    np.testing.assert_array_equal(_to_numpy(got).astype(np.float64), want)
    # Integral floats in give floats out with the same values.
    got_f = imresize(_to_tensor(img).to(torch.float32), scale, "matlab_uint8")
    assert got_f.dtype == torch.float32
    np.testing.assert_array_equal(_to_numpy(got_f).astype(np.float64), want)


def test_float32_batched_and_unbatched_agree() -> None:
    rng = np.random.default_rng(3)
    batch = torch.from_numpy(rng.uniform(0, 255, size=(4, 3, 150, 130)))
    out64 = imresize(batch, 1 / 3)
    out32 = imresize(batch.float(), 1 / 3)
    assert out32.dtype == torch.float32 and out32.shape == (4, 3, 50, 44)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-3)
    for i in range(4):
        torch.testing.assert_close(imresize(batch[i], 1 / 3), out64[i], rtol=0, atol=1e-9)
    # uint8 input in float mode is converted to float32.
    assert imresize(batch.round().to(torch.uint8), 2).dtype == torch.float32


def test_large_axes_use_banded_blocks_exactly() -> None:
    """Axes longer than one block (64 outputs) are split into bands: results must not change."""
    rng = np.random.default_rng(4)
    img = rng.uniform(0, 255, size=(200, 7, 1))
    for scale in (1 / 2, 3):
        got = _to_numpy(imresize(_to_tensor(img), scale))
        np.testing.assert_allclose(got, _reference(img, scale), rtol=0, atol=1e-6)


def test_explicit_size_and_axis_order() -> None:
    rng = np.random.default_rng(5)
    img = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 24, 30)))
    out = imresize(img, 0, size=(12, 45))
    assert out.shape == (1, 3, 12, 45)
    # Equal per-axis scales through `size` are the same as the scalar scale.
    torch.testing.assert_close(imresize(img, 0, size=(8, 10)), imresize(img, 1 / 3), rtol=0, atol=1e-9)


def test_identity_and_constant_images() -> None:
    img = torch.full((2, 3, 11, 13), 77.0, dtype=torch.float64)
    for scale in SCALES:
        torch.testing.assert_close(imresize(img, scale), torch.full_like(imresize(img, scale), 77.0))
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 9, 9)))
    torch.testing.assert_close(imresize(x, 1), x, rtol=0, atol=1e-12)


def test_bad_arguments() -> None:
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError):
        imresize(x, 2, "bilinear")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        imresize(x, -1)
    with pytest.raises(ValueError):
        imresize(torch.zeros(8, 8), 2)


def test_round_half_away_from_zero() -> None:
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999997, 254.5], dtype=torch.float32)
    assert round_half_away(x).tolist() == [1.0, 2.0, 3.0, -1.0, -2.0, 0.0, 255.0]


def test_modcrop_tensor_and_numpy() -> None:
    t = torch.arange(2 * 3 * 13 * 10).reshape(2, 3, 13, 10)
    assert modcrop(t, 4).shape == (2, 3, 12, 8)
    assert torch.equal(modcrop(t, 4), t[..., :12, :8])
    a = np.zeros((13, 10, 3))
    assert modcrop(a, 3).shape == (12, 9, 3)
    assert modcrop(np.zeros((13, 10)), 3).shape == (12, 9)


def _read_rgb(path: Path) -> np.ndarray:
    # bridge.png and its LR files are mode L: compare after replicating channels.
    return np.asarray(Image.open(path).convert("RGB"))


def test_reproduces_every_benchmark_lr_file(benchmark_root: Path) -> None:
    checked = 0
    mismatched: list[str] = []
    for name in ("Set5", "Set14", "B100"):
        hr_files = sorted((benchmark_root / name / "HR").glob("*.png"))
        assert hr_files, f"no HR images under {benchmark_root / name}"
        for hr_path in hr_files:
            hr = _read_rgb(hr_path)
            for s in (2, 3, 4):
                lr_path = benchmark_root / name / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png"
                lr = _read_rgb(lr_path)
                got = _to_numpy(imresize(_to_tensor(modcrop(hr, s)), 1 / s, "matlab_uint8"))
                checked += 1
                if got.shape != lr.shape or int((got != lr).sum()):
                    mismatched.append(f"{lr_path.name}")
    assert checked == 3 * (5 + 14 + 100)
    assert not mismatched, f"{len(mismatched)} LR files differ: {mismatched[:10]}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.integers(0, 256, size=(3, 3, 96, 80), dtype=np.uint8))
    for scale in (1 / 4, 3):
        torch.testing.assert_close(
            imresize(x.cuda(), scale, "matlab_uint8").cpu(), imresize(x, scale, "matlab_uint8")
        )
        torch.testing.assert_close(
            imresize(x.cuda().double(), scale).cpu(), imresize(x.double(), scale), rtol=0, atol=1e-9
        )
