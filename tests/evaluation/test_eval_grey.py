"""Grey ground truth: scored on its grey values by the literature profiles, replicated by ipt-legacy."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.evaluation.runner import EvalConfig, run_eval
from iptbench.evaluation.scoring import Scorer, is_grey_file
from iptbench.metrics import get_profile, psnr, ssim
from iptbench.tasks import get_task


def _grey_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.RandomState(seed)
    grey = rng.randint(0, 256, size=(1, 1, 40, 44)).astype(np.float64)
    noisy = np.clip(grey + rng.normal(0, 6, grey.shape), 0, 255).round()
    return torch.from_numpy(noisy), torch.from_numpy(grey)


def test_grey_target_is_scored_on_grey_values() -> None:
    restored, target = _grey_pair()
    mse = float(((restored - target) ** 2).mean())
    want = 10 * math.log10(255**2 / mse)  # the plain definition on grey values
    for channel in ("y", "rgb"):
        assert psnr(restored.expand(-1, 3, -1, -1), target, channel=channel).item() == pytest.approx(
            want, abs=1e-9
        )
        assert psnr(restored, target, channel=channel).item() == pytest.approx(want, abs=1e-9)


def test_replicated_grey_gains_20log10_255_over_219() -> None:
    """Y of a replicated grey image is 16 + 219/255 g: every error shrinks by 219/255, +1.322 dB."""
    restored, target = _grey_pair(1)
    rgb = (restored.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1))
    gain = psnr(*rgb, channel="y").item() - psnr(restored, target).item()
    assert gain == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_colour_output_of_a_grey_image_is_reduced_by_full_range_luma() -> None:
    from skimage.metrics import structural_similarity

    restored, target = _grey_pair(2)
    colour = restored.expand(-1, 3, -1, -1).clone()
    colour[:, 0] += 10.4  # a colour cast; the output is quantised to uint8 values before anything else
    colour[:, 2] -= 10
    q = colour.clamp(0, 255).round()
    luma = (0.299 * q[0, 0] + 0.587 * q[0, 1] + 0.114 * q[0, 2]).numpy()  # MATLAB rgb2gray weights, float
    grey = target[0, 0].numpy()
    want = 10 * math.log10(255**2 / float(((luma - grey) ** 2).mean()))
    assert psnr(colour, target).item() == pytest.approx(want, abs=1e-9)
    want_ssim = structural_similarity(
        luma, grey, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(colour, target).item() == pytest.approx(want_ssim, abs=1e-9)


def test_grey_file_detection(tmp_path: Path) -> None:
    grey, rgb = tmp_path / "g.png", tmp_path / "c.png"
    Image.fromarray(np.full((8, 8), 100, np.uint8), "L").save(grey)
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8), "RGB").save(rgb)  # equal channels, still RGB
    assert is_grey_file(grey) and not is_grey_file(rgb)


def test_scorer_follows_the_profile_rule() -> None:
    restored, target = _grey_pair(3)
    task = get_task("sr-x2")
    rgb_restored, rgb_target = restored.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    scorer = Scorer(lpips=False)
    lit = scorer(rgb_restored, rgb_target, task, get_profile("sr"), grey=True)
    legacy = scorer(rgb_restored, rgb_target, task, get_profile("ipt-legacy"), grey=True)
    colour = scorer(rgb_restored, rgb_target, task, get_profile("sr"), grey=False)
    assert lit.psnr == pytest.approx(psnr(restored, target, crop=2).item(), abs=1e-12)
    assert lit.psnr_replicated == pytest.approx(legacy.psnr, abs=1e-12) == colour.psnr
    assert legacy.psnr_replicated is None and colour.psnr_replicated is None
    for name in ("sr", "denoise", "derain"):
        assert "grey ground truth scored on its grey values" in get_profile(name).describe()
    assert "grey ground truth replicated to RGB" in get_profile("ipt-legacy").describe()


def test_eval_scores_a_grey_image_by_the_profile(make_root: Callable[..., Path], tmp_path: Path) -> None:
    root = make_root("Set5")
    hr = root / "Set5" / "HR" / "img003.png"
    Image.open(hr).convert("L").save(hr)  # one grey image in the set, like Set14's bridge.png
    rows = {}
    for profile in ("sr", "ipt-legacy"):
        out = tmp_path / profile
        cfg = EvalConfig(
            suite="sr", data_root=root, out=out, datasets=["Set5"], profile=profile, progress=False
        )
        run_eval(cfg, [parse_model_spec("bicubic")])
        with (out / "per_image.csv").open() as handle:
            rows[profile] = {(r["task"], r["image"]): r for r in csv.DictReader(handle)}
    for key, lit in rows["sr"].items():
        legacy = rows["ipt-legacy"][key]
        if key[1] == "img003":  # the same bicubic output, scored on grey values vs replicated
            assert float(legacy["psnr"]) - float(lit["psnr"]) == pytest.approx(
                20 * math.log10(255 / 219), abs=1e-6
            )
            assert lit["psnr_replicated"] == legacy["psnr"]
        else:
            assert (lit["psnr"], lit["psnr_replicated"]) == (legacy["psnr"], "")
