"""The polyphase fast path of imresize: when it applies, and that it equals the dense path and MATLAB's
per-output-pixel statement (test_resize._reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import iptbench.ops.resize as resize_module
from iptbench.ops import imresize
from iptbench.ops.polyphase import axis_plan
from tests.ops.test_resize import _reference, _to_numpy, _to_tensor


@pytest.mark.parametrize(
    ("in_len", "out_len", "scale", "applies"),
    [
        (96, 48, 1 / 2, True),
        (144, 48, 1 / 3, True),
        (192, 48, 1 / 4, True),
        (23, 12, 1 / 2, True),  # not a multiple: ceil(23 / 2), same kernel for every output
        (10, 2, 1 / 5, True),  # fewer outputs than rows per block
        (30, 20, 2 / 3, False),
        (30, 60, 2.0, False),
        (30, 30, 1.0, False),
    ],
)
def test_plan_applies_to_integer_downscales_only(
    in_len: int, out_len: int, scale: float, applies: bool
) -> None:
    assert (axis_plan(in_len, out_len, scale) is not None) is applies


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
@pytest.mark.parametrize("size", [(48, 40), (23, 31), (9, 14)])
def test_float64_equals_matlab_statement(factor: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(factor)
    img = rng.uniform(0, 255, size=size + (3,))
    assert axis_plan(size[0], -(-size[0] // factor), 1 / factor) is not None
    got = _to_numpy(imresize(_to_tensor(img), 1 / factor))
    np.testing.assert_allclose(got, _reference(img, 1 / factor), rtol=0, atol=1e-9)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_equals_dense_path(factor: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(10 + factor)
    hwc = rng.integers(0, 256, size=(3, 24 * factor, 20 * factor, 3), dtype=np.uint8)
    x = torch.from_numpy(hwc).permute(0, 3, 1, 2)  # channels-last: the float modes take the fast path
    fast = [imresize(x.float(), 1 / factor), imresize(x.double(), 1 / factor)]
    fast_u8 = imresize(x, 1 / factor, "matlab_uint8")
    monkeypatch.setattr(resize_module, "polyphase_plan", lambda *args: None)
    dense = [imresize(x.float(), 1 / factor), imresize(x.double(), 1 / factor)]
    assert fast[0].shape == dense[0].shape == (3, 3, 24, 20)
    torch.testing.assert_close(fast[0], dense[0], rtol=0, atol=2e-4)  # float32 sums in another grouping
    torch.testing.assert_close(fast[1], dense[1], rtol=0, atol=1e-10)
    assert torch.equal(fast_u8, imresize(x, 1 / factor, "matlab_uint8"))


def test_layout_and_batch_do_not_change_the_result() -> None:
    """build-data downsamples channels-last crop batches; the uint8 mode also gets contiguous images."""
    rng = np.random.default_rng(3)
    hwc = rng.integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)
    channels_last = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    contiguous = channels_last.contiguous()
    batch = imresize(channels_last, 1 / 2, size=(48, 48))
    for i in range(4):
        assert torch.equal(imresize(channels_last[i : i + 1], 1 / 2), batch[i : i + 1])
    # Contiguous float input takes the dense path: the same values up to float32 rounding.
    torch.testing.assert_close(imresize(contiguous, 1 / 2), batch, rtol=0, atol=2e-4)
    u8 = imresize(channels_last, 1 / 2, "matlab_uint8")
    assert torch.equal(u8, imresize(contiguous, 1 / 2, "matlab_uint8"))
    assert torch.equal(u8[1:2], imresize(contiguous[1:2], 1 / 2, "matlab_uint8"))
