"""Synthetic denoising noise: KAIR's exact draw, reproducible across runs and machines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iptbench.degradations.noise import add_noise_float, kair_noisy01, noise_digest, noise_for_profile


def _gradient() -> np.ndarray:
    y, x = np.mgrid[0:16, 0:20]
    return np.stack([y * 16, x * 12, (x + y) * 7], -1).clip(0, 255).astype(np.uint8)


def _kair_statement(clean: np.ndarray, sigma: float) -> np.ndarray:
    """KAIR main_test_ffdnet.py, restated: uint2single, np.random.seed(0), += normal(0, sigma/255)."""
    img_l = np.float32(clean / 255.0)
    np.random.seed(seed=0)
    img_l += np.random.normal(0, sigma / 255.0, img_l.shape)
    return img_l


@pytest.mark.parametrize("sigma", [30, 50])
def test_noise_equals_kair_statement(sigma: int) -> None:
    clean = _gradient()
    expected = _kair_statement(clean, sigma)
    np.testing.assert_array_equal(kair_noisy01(clean, sigma), expected)
    np.testing.assert_array_equal(add_noise_float(clean, sigma), expected * np.float32(255.0))


def test_noise_is_float_not_clipped_not_rounded() -> None:
    clean = _gradient()
    noisy = add_noise_float(clean, 50)
    assert noisy.dtype == np.float32
    assert noisy.min() < 0 and noisy.max() > 255  # literature default keeps the tails
    assert not np.allclose(noisy, np.round(noisy))
    clipped = add_noise_float(clean, 50, clip=True)
    assert clipped.min() == 0 and clipped.max() == 255
    np.testing.assert_array_equal(clipped, np.clip(noisy, 0, 255))


def test_noise_is_per_image_and_identical_between_runs() -> None:
    clean = _gradient()
    first = noise_digest(add_noise_float(clean, 30))
    np.random.seed(123)  # global numpy state must not matter
    assert noise_digest(add_noise_float(clean, 30)) == first
    # frozen values: numpy's legacy RandomState stream is stable across versions and machines
    assert first == "83ffb456e12e8422605766434d5cd7d9ebfad091b5f1da707b4083c4a49bd176"
    assert noise_digest(add_noise_float(clean, 50, clip=True)) == (
        "1bc492201f8afb2932e56869ac8132da769581a13587fcb685c237eb3a8f80fc"
    )


def test_profile_noise_settings() -> None:
    class Legacy:
        noise_clip = True

    class Default:
        noise_clip = False

    clean = _gradient()
    assert noise_for_profile(clean, 50, Legacy()).max() == 255
    assert noise_for_profile(clean, 50, Default()).max() > 255


def test_noise_on_real_cbsd68_image(benchmark_root: Path) -> None:
    from iptbench.images import read_image

    path = sorted((benchmark_root / "CBSD68" / "HR").glob("*.png"))[0]
    clean = read_image(path)
    np.testing.assert_array_equal(add_noise_float(clean, 30), _kair_statement(clean, 30) * np.float32(255.0))
