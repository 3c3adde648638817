"""Baselines (bicubic, input, scikit-image denoisers, bm3d) and `--model` spec parsing."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from iptbench.degradations.noise import add_noise_float
from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import parse_model_spec, parse_model_specs
from iptbench.models import baselines
from iptbench.tasks import get_task


def _clean() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:48]
    img = np.stack([128 + 80 * np.sin(x / 5.0), 128 + 80 * np.cos(y / 7.0), (x * 3 + y * 2) % 256], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def _mse(a: torch.Tensor, b: np.ndarray) -> float:
    return float(((a.round().clamp(0, 255) - _t(b)) ** 2).mean())


def test_bicubic_is_matlab_uint8_resize() -> None:
    from iptbench.ops import imresize

    lr = torch.from_numpy(_clean()).permute(2, 0, 1).unsqueeze(0)
    out = baselines.bicubic_upscale(lr.float(), 3)
    assert out.shape == (1, 3, 120, 144) and out.dtype == torch.float32
    assert torch.equal(out, imresize(lr, 3.0, mode="matlab_uint8").float())
    assert torch.equal(out, out.round())  # integral, as MATLAB on uint8


def test_input_baseline_is_identity() -> None:
    x = _t(add_noise_float(_clean(), 30))
    restorer = parse_model_spec("input")
    assert torch.equal(restorer(x, get_task("denoise-30")), x)
    assert restorer.supports("derain") and not restorer.supports("sr-x2")


@pytest.mark.parametrize("name", ["nlm", "tv", "wavelet", "bm3d"])
def test_classic_denoisers_reduce_the_error(name: str) -> None:
    if not baselines.available(name):
        pytest.skip(f"{name} needs an optional package")
    clean = _clean()
    noisy = _t(add_noise_float(clean, 30))
    restorer = parse_model_spec(name)
    assert set(restorer.tasks) == {"denoise-30", "denoise-50"}
    out = restorer(noisy, get_task("denoise-30"))
    assert out.shape == noisy.shape
    assert _mse(out, clean) < 0.6 * _mse(noisy, clean)


def test_missing_optional_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "bm3d" else real(n, *a))
    with pytest.raises(IptbenchError, match=r"bm3d.*not installed.*pip install 'iptbench\[baselines\]'"):
        parse_model_spec("bm3d")


def test_spec_labels_and_errors(tmp_path: Path) -> None:
    assert parse_model_spec("Bicubic").name == "bicubic"
    assert parse_model_spec("MATLAB=bicubic").name == "MATLAB"
    with pytest.raises(IptbenchError, match="unknown model 'srcnn'"):
        parse_model_spec("srcnn")
    with pytest.raises(IptbenchError, match="no checkpoint file"):
        parse_model_spec(f"ipt:{tmp_path / 'none.pt'}")
    with pytest.raises(IptbenchError, match="both named 'bicubic'"):
        parse_model_specs(["bicubic", "bicubic"])


def test_a_new_spec_form_is_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    from iptbench.evaluation import model_specs

    for table in ("_PREFIXES", "_NAMES", "_USAGE"):  # registered for this test only
        monkeypatch.setattr(model_specs, table, copy.copy(getattr(model_specs, table)))

    @model_specs.register_spec("sharp:", "sharp:AMOUNT")
    def _sharp(text: str, options: model_specs.SpecOptions) -> baselines.BaselineRestorer:
        return baselines.BaselineRestorer("sharp", ("derain",), lambda x, t: x * float(text), "scaled")

    entry = parse_model_spec("s2=sharp:2")
    assert entry.name == "s2" and entry.spec == "sharp:2" and entry.kind == "baseline"
    assert entry.identity == {"kind": "baseline", "name": "sharp", "params": {}}
    assert torch.equal(entry(torch.ones(1, 3, 2, 2), get_task("derain")), torch.full((1, 3, 2, 2), 2.0))
    with pytest.raises(IptbenchError, match=r"unknown model 'blur:1': use one of bicubic, .*sharp:AMOUNT"):
        parse_model_spec("blur:1")


def test_checkpoint_path_without_prefix(tmp_path: Path) -> None:
    from iptbench.models import create_model, save_model

    path = tmp_path / "mine.safetensors"
    save_model(create_model("ipt-tiny", tasks="derain"), path)
    restorer = parse_model_spec(str(path))
    assert restorer.tasks == ("derain",) and restorer.name == "ipt:mine"
    labelled = parse_model_spec(f"ours=ipt:{path}")
    assert labelled.name == "ours"
    out = labelled(torch.full((1, 3, 20, 24), 100.0), get_task("derain"))
    assert out.shape == (1, 3, 20, 24)
