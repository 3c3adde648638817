"""BT.601 studio-range colour conversion (MATLAB rgb2ycbcr constants) and uint8 quantisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr

from iptbench.ops import quantize, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def test_known_values() -> None:
    rgb = torch.tensor([[0.0, 255.0, 255.0, 0.0], [0.0, 255.0, 0.0, 0.0], [0.0, 255.0, 0.0, 255.0]]).view(
        1, 3, 1, 4
    )
    y = rgb_to_y(rgb.double())
    assert y.shape == (1, 1, 1, 4)
    # Black 16, white 235, pure red 16 + 65.481, pure blue 16 + 24.966 (MATLAB rgb2ycbcr).
    torch.testing.assert_close(y.flatten(), torch.tensor([16.0, 235.0, 81.481, 40.966], dtype=torch.float64))
    ycc = rgb_to_ycbcr(rgb.double())
    torch.testing.assert_close(ycc[0, 1:, 0, 0], torch.tensor([128.0, 128.0], dtype=torch.float64))
    torch.testing.assert_close(ycc[0, 1:, 0, 1], torch.tensor([128.0, 128.0], dtype=torch.float64))


def test_matches_skimage_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(17, 23, 3)).astype(np.float64)
    t = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)
    ycc = rgb_to_ycbcr(t)
    want = rgb2ycbcr(img / 255.0)  # skimage uses the same ITU-R BT.601 studio-range matrix
    np.testing.assert_allclose(ycc[0].permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-9)
    torch.testing.assert_close(rgb_to_y(t), ycc[:, :1], rtol=0, atol=1e-9)
    torch.testing.assert_close(ycbcr_to_rgb(ycc), t, rtol=0, atol=1e-9)


def test_dtypes_and_shapes() -> None:
    u8 = torch.randint(0, 256, (3, 5, 6), dtype=torch.uint8)
    assert rgb_to_y(u8).dtype == torch.float32 and rgb_to_y(u8).shape == (1, 5, 6)
    assert rgb_to_ycbcr(u8.double()).dtype == torch.float64
    with pytest.raises(ValueError):
        rgb_to_y(torch.zeros(1, 4, 5, 5))


def test_quantize() -> None:
    x = torch.tensor([-3.0, -0.5, 0.4, 0.5, 1.5, 2.5, 127.49, 254.5, 255.4, 300.0], dtype=torch.float64)
    q = quantize(x)
    assert q.dtype == torch.float64
    assert q.tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 127.0, 255.0, 255.0, 255.0]
    # float32 value just below a tie must not be pushed over it by adding 0.5.
    assert quantize(torch.tensor([0.49999997], dtype=torch.float32)).item() == 0.0
    u8 = torch.tensor([0, 7, 255], dtype=torch.uint8)
    assert torch.equal(quantize(u8), u8)
