"""PSNR/SSIM against skimage and plain formulas; the Set5 bicubic baseline with the `sr` profile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from iptbench.metrics import default_profile_for, psnr, ssim
from iptbench.ops import imresize, modcrop
from iptbench.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")


def _y_numpy(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _sk_ssim(a: np.ndarray, b: np.ndarray, rgb: bool) -> float:
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if rgb else None,
        )
    )


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).unsqueeze(0)


def _pair(seed: int, h: int = 61, w: int = 47) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Smooth structure plus noise, so SSIM is neither ~0 nor ~1.
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 90 * np.sin(xx[..., None] / 5.0 + np.arange(3)) * np.cos(yy[..., None] / 7.0)
    target = np.clip(np.round(base + rng.normal(0, 8, (h, w, 3))), 0, 255).astype(np.uint8)
    restored = np.clip(target + rng.normal(0, 12, (h, w, 3)), -20, 280)  # float, out of range on purpose
    return restored, target


@pytest.mark.parametrize("crop", [0, 3])
def test_psnr_matches_formula(crop: int) -> None:
    restored, target = _pair(0)
    q = np.clip(np.sign(restored) * np.floor(np.abs(restored) + 0.5), 0, 255)
    sl = (slice(crop, q.shape[0] - crop), slice(crop, q.shape[1] - crop))
    for channel in ("y", "rgb"):
        a, b = (q[sl], target[sl].astype(np.float64))
        if channel == "y":
            a, b = _y_numpy(a), _y_numpy(b)
        want = 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))
        got = psnr(_t(restored), _t(target), crop=crop, channel=channel)
        assert got.dtype == torch.float64 and got.shape == (1,)
        assert got.item() == pytest.approx(want, abs=1e-9)


def test_psnr_identical_is_inf_and_batched() -> None:
    restored, target = _pair(1)
    batch_r = torch.cat([_t(restored), _t(target.astype(np.float64))])
    batch_t = torch.cat([_t(target), _t(target)])
    values = psnr(batch_r, batch_t)
    assert values.shape == (2,) and math.isfinite(values[0].item()) and math.isinf(values[1].item())
    assert values[0].item() == pytest.approx(psnr(_t(restored), _t(target)).item(), abs=1e-12)


@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_ssim_equals_skimage_on_synthetic(crop: int, channel: str) -> None:
    for seed in range(3):
        restored, target = _pair(seed)
        q = np.clip(np.sign(restored) * np.floor(np.abs(restored) + 0.5), 0, 255)
        sl = (slice(crop, q.shape[0] - crop), slice(crop, q.shape[1] - crop))
        a, b = q[sl], target[sl].astype(np.float64)
        want = _sk_ssim(_y_numpy(a), _y_numpy(b), False) if channel == "y" else _sk_ssim(a, b, True)
        got = ssim(_t(restored), _t(target), crop=crop, channel=channel)
        assert got.dtype == torch.float64
        assert abs(got.item() - want) < 1e-6, (seed, got.item(), want)


def test_ssim_identical_and_grayscale() -> None:
    _, target = _pair(5)
    assert ssim(_t(target), _t(target)).item() == pytest.approx(1.0, abs=1e-12)
    gray = _t(target[..., :1])
    assert ssim(gray, gray, channel="rgb").item() == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs() -> None:
    restored, target = _pair(6)
    with pytest.raises(ValueError):
        psnr(_t(restored), _t(target[:-1]))
    with pytest.raises(ValueError):
        ssim(_t(restored), _t(target), crop=30)
    with pytest.raises(ValueError):
        psnr(_t(restored), _t(target), channel="lab")  # type: ignore[arg-type]


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_ssim_equals_skimage_on_real_images(benchmark_root: Path) -> None:
    paths = (
        sorted((benchmark_root / "Set5" / "HR").glob("*.png"))
        + sorted((benchmark_root / "Set14" / "HR").glob("*.png"))[:3]
    )
    assert paths
    for path in paths:
        hr = modcrop(_read(path), 4)
        lr = _read(benchmark_root / path.parent.parent.name / "LR_bicubic" / "X4" / f"{path.stem}x4.png")
        up = imresize(_t(lr), 4, "matlab_uint8")
        up_np = up[0].permute(1, 2, 0).numpy()
        c = 4
        a, b = up_np[c:-c, c:-c].astype(np.float64), hr[c:-c, c:-c].astype(np.float64)
        assert abs(ssim(up, _t(hr), crop=c).item() - _sk_ssim(_y_numpy(a), _y_numpy(b), False)) < 1e-6
        assert abs(ssim(up, _t(hr), crop=c, channel="rgb").item() - _sk_ssim(a, b, True)) < 1e-6


# A float resize rounded once at the end gives 33.6779/0.9304, 30.4043/0.8690, 28.4305/0.8113;
# matlab_uint8 (rounded after each axis) is ~0.005 dB lower.
BICUBIC_SET5 = {2: (33.67, 0.9303), 3: (30.40, 0.8689), 4: (28.43, 0.8111)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_baseline(benchmark_root: Path, scale: int) -> None:
    task = get_task(f"sr-x{scale}")
    profile = default_profile_for(task)
    assert profile.name == "sr"
    ps, ss = [], []
    for path in sorted((benchmark_root / "Set5" / "HR").glob("*.png")):
        hr = _t(modcrop(_read(path), scale))
        lr = _t(_read(benchmark_root / "Set5" / "LR_bicubic" / f"X{scale}" / f"{path.stem}x{scale}.png"))
        up = imresize(lr, scale, "matlab_uint8")
        crop, channel = profile.crop_for(task), profile.channel_for(task)
        ps.append(psnr(up, hr, crop=crop, channel=channel).item())
        ss.append(ssim(up, hr, crop=crop, channel=channel).item())
    mean_psnr, mean_ssim = float(np.mean(ps)), float(np.mean(ss))
    print(f"Set5 x{scale} bicubic: PSNR {mean_psnr:.4f} dB, SSIM {mean_ssim:.4f}")
    want_psnr, want_ssim = BICUBIC_SET5[scale]
    assert abs(mean_psnr - want_psnr) <= 0.01
    assert abs(mean_ssim - want_ssim) <= 0.0005
