"""The six corruptions: exact SR inputs, noise statistics, rain that looks like rain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iptbench.degradations.bicubic import bicubic_lr
from iptbench.degradations.noise import add_noise_uint8
from iptbench.degradations.rain import StreakBank, add_rain, draw_streaks, render_streaks, synth_rain_layers
from iptbench.images import write_png
from iptbench.ops import imresize, quantize


def _image(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_lr_is_quantised_matlab_imresize(scale: int) -> None:
    hr = _image(scale, (3, 48 * scale, 48 * scale, 3))
    lr = bicubic_lr(hr, scale)
    assert lr.shape == (3, 48, 48, 3) and lr.dtype == np.uint8
    for k in range(3):
        x = torch.from_numpy(hr[k]).permute(2, 0, 1)[None].float()
        ref = quantize(imresize(x, 1 / scale, "matlab", size=(48, 48)))[0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(lr[k], ref.astype(np.uint8))
    assert bicubic_lr(hr[0], scale).shape == (48, 48, 3)


def test_bicubic_lr_needs_multiples() -> None:
    with pytest.raises(ValueError, match="multiple"):
        bicubic_lr(_image(0, (50, 50, 3)), 3)


@pytest.mark.parametrize("sigma", [30, 50])
def test_noise_statistics(sigma: int) -> None:
    clean = np.full((4, 64, 64, 3), 128, np.uint8)
    noisy = add_noise_uint8(clean, sigma, np.random.default_rng(0))
    diff = noisy.astype(np.float64) - 128
    assert abs(diff.mean()) < 1.0
    # clipping at 0/255 is 3.3 sigma (sigma 50: 2.6 sigma) away and rounding adds 1/12: a few % at most
    assert abs(diff.std() - sigma) / sigma < 0.04
    dark = add_noise_uint8(np.zeros((8, 8, 3), np.uint8), sigma, np.random.default_rng(1))
    assert dark.min() == 0 and (dark == 0).mean() > 0.3  # clipped, not wrapped


def test_noise_is_seeded() -> None:
    clean = _image(0, (2, 16, 16, 3))
    a = add_noise_uint8(clean, 30, np.random.default_rng(5))
    b = add_noise_uint8(clean, 30, np.random.default_rng(5))
    c = add_noise_uint8(clean, 30, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_rain_layers_look_like_light_rain() -> None:
    layers = synth_rain_layers(np.random.default_rng(0), 16, 96)
    assert layers.shape == (16, 96, 96) and layers.min() >= 0
    # Rain100L (rainy - clean): mean 2-10 on 0-255, 5-30 % of pixels brighter by > 10
    assert 1.0 < layers.mean() < 15.0
    assert 0.03 < (layers > 10).mean() < 0.4
    # streaks are near vertical: intensity changes much more across x than along y
    gx = np.abs(np.diff(layers, axis=2)).mean()
    gy = np.abs(np.diff(layers, axis=1)).mean()
    assert gx > 2.5 * gy
    again = synth_rain_layers(np.random.default_rng(0), 16, 96)
    assert np.array_equal(layers, again)


def test_add_rain_clips_and_adds() -> None:
    clean = np.full((4, 48, 48, 3), 200, np.uint8)
    rainy = add_rain(clean, np.random.default_rng(3))
    assert rainy.dtype == np.uint8 and (rainy >= clean).all() and (rainy == 255).any()
    assert (rainy > clean).mean() > 0.02


def test_user_streak_maps(tmp_path: Path) -> None:
    streak = np.zeros((64, 80, 3), np.uint8)
    streak[:, ::7] = 90
    write_png(tmp_path / "rainstreak1.png", streak)
    bank = StreakBank(tmp_path)
    clean = np.full((3, 48, 48, 3), 100, np.uint8)
    rainy = add_rain(clean, np.random.default_rng(0), bank)
    assert set(np.unique(rainy)) <= {100, 190}
    assert (rainy == 190).any()


def _dense_streaks(streaks: tuple[np.ndarray, ...], size: int) -> np.ndarray:
    """The streak formula evaluated at every pixel centre of every patch, in float64."""
    cx, cy, a, half, sig, amp = (np.asarray(v, np.float64)[:, :, None, None] for v in streaks)
    centre = np.arange(size) + 0.5
    dx, dy = centre[None, None, None, :] - cx, centre[None, None, :, None] - cy
    along = (dx * np.sin(a) + dy * np.cos(a)) / half
    across = dx * np.cos(a) - dy * np.sin(a)
    return (amp * np.exp(-(across**2) / (2 * sig**2)) * np.clip(1 - along**2, 0, None)).sum(axis=1)


@pytest.mark.parametrize("size", [48, 96])
def test_rain_rendering_equals_the_dense_formula(size: int) -> None:
    streaks = draw_streaks(np.random.default_rng(size), 6, size)
    got = render_streaks(streaks, size)
    want = _dense_streaks(streaks, size)
    assert got.dtype == np.float32 and got.shape == (6, size, size)
    # float32 arithmetic, and tails cut 6 px from each centre line (under 1e-4 there)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-3)
    assert want.max() > 50
