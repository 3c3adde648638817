"""Whole-image restore(): shapes for every task and odd sizes, self-ensemble, errors."""

from __future__ import annotations

import pytest
import torch

from iptbench.errors import IptbenchError
from iptbench.models import IPT, count_windows, create_model, restore
from iptbench.models.inference import ensemble_inputs, resolve_precision, undo_ensemble
from iptbench.tasks import OFFICIAL_TASK_NAMES


@pytest.fixture(scope="module")
def tiny() -> IPT:
    return create_model("ipt-tiny", seed=0).eval()


@pytest.mark.parametrize("task", OFFICIAL_TASK_NAMES)
def test_restore_shapes_every_task(tiny: IPT, task: str) -> None:
    s = tiny.scale_for(task)
    image = torch.rand(1, 3, 53, 49) * 255
    for mode in ("fast", "official"):
        out = restore(tiny, image, task, tile_mode=mode, window_batch=16)
        assert out.shape == (1, 3, 53 * s, 49 * s) and out.dtype == torch.float32
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(48, 48), (17, 30), (61, 48), (1, 5)])
def test_restore_odd_and_small_sizes(tiny: IPT, size: tuple[int, int]) -> None:
    out = restore(tiny, torch.rand(1, 3, *size) * 255, "sr-x3", tile_mode="fast")
    assert out.shape == (1, 3, 3 * size[0], 3 * size[1])
    out = restore(tiny, torch.rand(3, *size) * 255, "sr-x3", tile_mode="official")  # C x H x W accepted
    assert out.shape == (1, 3, 3 * size[0], 3 * size[1])


def test_window_sized_image_is_one_plain_forward(tiny: IPT) -> None:
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.inference_mode():
        want = tiny(x, "sr-x2")
    for mode in ("fast", "official"):
        torch.testing.assert_close(restore(tiny, x, "sr-x2", tile_mode=mode), want)


def test_progress_counts_windows(tiny: IPT) -> None:
    seen: list[int] = []
    restore(
        tiny,
        torch.rand(1, 3, 70, 90) * 255,
        "derain",
        tile_mode="official",
        window_batch=8,
        progress=seen.append,
    )
    assert sum(seen) == count_windows(tiny, 70, 90, tile_mode="official")
    assert max(seen) <= 8


def test_ensemble_transforms_invert() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    views = ensemble_inputs(x)
    assert len(views) == 8 and len({tuple(v.flatten().tolist()) for v in views}) == 8
    for i, v in enumerate(views):
        assert torch.equal(undo_ensemble(i, v), x)


def test_self_ensemble(tiny: IPT) -> None:
    x = torch.rand(1, 3, 48, 48) * 255
    plain = restore(tiny, x, "sr-x2")
    seen: list[int] = []
    ens = restore(tiny, x, "sr-x2", self_ensemble=True, progress=seen.append)
    assert ens.shape == plain.shape and not torch.allclose(ens, plain)
    assert sum(seen) == count_windows(tiny, 48, 48, self_ensemble=True) == 8
    # the ensemble is the mean of eight restorations, each undone: check one by hand
    manual = torch.stack(
        [undo_ensemble(i, restore(tiny, v, "sr-x2")) for i, v in enumerate(ensemble_inputs(x))]
    )
    torch.testing.assert_close(ens, manual.mean(dim=0), rtol=1e-5, atol=1e-4)


def test_grayscale_tensor_is_replicated(tiny: IPT) -> None:
    gray = torch.rand(1, 1, 48, 48) * 255
    torch.testing.assert_close(
        restore(tiny, gray, "derain"), restore(tiny, gray.expand(-1, 3, -1, -1), "derain")
    )


def test_errors_and_training_flag(tiny: IPT) -> None:
    one = create_model("ipt-tiny", tasks="sr-x2")
    one.train()
    with pytest.raises(IptbenchError, match="no 'derain' head.*hold: sr-x2"):
        restore(one, torch.rand(1, 3, 48, 48), "derain")
    with pytest.raises(IptbenchError, match="tile mode"):
        restore(one, torch.rand(1, 3, 48, 48), "sr-x2", tile_mode="bogus")  # type: ignore[arg-type]
    with pytest.raises(IptbenchError, match="RGB"):
        restore(one, torch.rand(1, 4, 48, 48), "sr-x2")
    restore(one, torch.rand(1, 3, 48, 48), "sr-x2")
    assert one.training  # restore() puts the model back the way it found it


@pytest.mark.gpu
def test_cuda_bf16_close_to_cpu_fp32(tiny: IPT) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.rand(1, 3, 70, 90) * 255
    want = restore(tiny, x, "sr-x2")
    gpu = create_model("ipt-tiny", seed=0).cuda()
    got = restore(gpu, x, "sr-x2").cpu()
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got - want).abs().mean() < 1.0  # bf16 autocast: small differences on the 0-255 scale


def test_precision_defaults_and_choices(tiny: IPT) -> None:
    assert resolve_precision(None, "cpu") == "fp32" and resolve_precision(None, "cuda") == "bf16"
    assert resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(IptbenchError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", "cpu")
    x = torch.rand(1, 3, 48, 48) * 255
    fp32 = restore(tiny, x, "sr-x2")
    torch.testing.assert_close(restore(tiny, x, "sr-x2", precision="fp32"), fp32)
    bf16 = restore(tiny, x, "sr-x2", precision="bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    diff = (bf16 - fp32).abs()
    # bf16 keeps 8 mantissa bits: visible but small differences on the 0-255 scale, never garbage
    assert 0 < diff.mean() < 2.0


@pytest.mark.gpu
def test_cuda_fp32_matches_cpu_fp32(tiny: IPT) -> None:
    """fp32 on CUDA (TF32 off) agrees with CPU fp32 within 1e-3 on the 0-255 scale."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0)) * 255
    want = restore(tiny, x, "sr-x2", precision="fp32")
    gpu = create_model("ipt-tiny", seed=0).cuda()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    got = restore(gpu, x, "sr-x2", precision="fp32").cpu()
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == tf32  # restored
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-3
