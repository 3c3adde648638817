"""Reference restorers that need no training: the rows every table starts from.

All functions take and return float tensors 1 x 3 x H x W on the 0-255 scale (RGB), like IPT itself.

* `bicubic_upscale`: MATLAB `imresize(lr, s, 'bicubic')` on the uint8 LR (iptbench.ops.imresize,
  mode `matlab_uint8`), i.e. the "Bicubic" row of the SR tables.
* `identity`: the corrupted input itself (the "Input" row of denoising/deraining tables).
* scikit-image denoisers, run on the [0, 1] scale with their noise-level parameters derived from the known
  sigma (s = sigma / 255), so no parameter is tuned on the test set:
  - `nlm`: `denoise_nl_means(h=0.6 s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True)`: the
    scikit-image gallery recipe for fast mode (h below sigma because passing sigma already subtracts the
    noise variance from patch distances).
  - `tv`: `denoise_tv_chambolle(weight=s)`: Chambolle's TV with the regularisation weight equal to the noise
    standard deviation, the usual rule of thumb for images on [0, 1].
  - `wavelet`: `denoise_wavelet(sigma=s, method='BayesShrink', mode='soft', wavelet='db1',
    convert2ycbcr=True)`: the scikit-image gallery recipe (thresholds in YCbCr work better on colour
    images than per RGB channel: +1.5 dB on CBSD68 at sigma 30); needs PyWavelets.
* `bm3d_denoise`: CBM3D (`bm3d.bm3d_rgb(z, sigma_psd=s)`) from the optional `bm3d` package.

`make(name)` gives each as a Restorer (iptbench.models.restorer) whose identity is its name and parameters.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from iptbench.errors import IptbenchError
from iptbench.tasks import OFFICIAL_TASKS, Task

CLASSIC_DENOISERS = ("nlm", "tv", "wavelet", "bm3d")


def _to_unit_hwc(image: torch.Tensor) -> np.ndarray:
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError("baselines take one image, 1 x 3 x H x W")
    return (image[0].detach().to(torch.float64).permute(1, 2, 0).cpu().numpy()) / 255.0


def _from_unit_hwc(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    out = torch.from_numpy(np.ascontiguousarray(array * 255.0)).permute(2, 0, 1).unsqueeze(0)
    return out.to(device=like.device, dtype=torch.float32)


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic upscaling of an integral-valued LR (rounded after each axis, as MATLAB on uint8)."""
    from iptbench.ops import imresize

    quantised = lr.detach().round().clamp(0, 255).to(torch.uint8)
    return imresize(quantised, float(scale), mode="matlab_uint8").to(torch.float32)


def identity(image: torch.Tensor) -> torch.Tensor:
    return image.clone()


def nlm_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    from skimage.restoration import denoise_nl_means

    s = sigma / 255.0
    out = denoise_nl_means(
        _to_unit_hwc(noisy),
        h=0.6 * s,
        sigma=s,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
        channel_axis=-1,
    )
    return _from_unit_hwc(out, noisy)


def tv_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    from skimage.restoration import denoise_tv_chambolle

    out = denoise_tv_chambolle(_to_unit_hwc(noisy), weight=sigma / 255.0, channel_axis=-1)
    return _from_unit_hwc(out, noisy)


def wavelet_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    require("wavelet")
    from skimage.restoration import denoise_wavelet

    out = denoise_wavelet(
        _to_unit_hwc(noisy),
        sigma=sigma / 255.0,
        wavelet="db1",
        mode="soft",
        method="BayesShrink",
        channel_axis=-1,
        convert2ycbcr=True,
        rescale_sigma=True,
    )
    return _from_unit_hwc(out, noisy)


def bm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    require("bm3d")
    import bm3d

    out = bm3d.bm3d_rgb(_to_unit_hwc(noisy), sigma_psd=sigma / 255.0)
    return _from_unit_hwc(np.asarray(out, dtype=np.float64), noisy)


_REQUIREMENTS = {
    "wavelet": ("pywt", "PyWavelets", "pip install 'iptbench[baselines]'"),
    "bm3d": ("bm3d", "bm3d", "pip install 'iptbench[baselines]'"),
}


def available(name: str) -> bool:
    if name not in _REQUIREMENTS:
        return True
    return importlib.util.find_spec(_REQUIREMENTS[name][0]) is not None


def require(name: str) -> None:
    if not available(name):
        module, package, command = _REQUIREMENTS[name]
        raise IptbenchError(
            f"the {name!r} baseline needs the {package} package, which is not installed: {command}"
        )


DENOISERS = {"nlm": nlm_denoise, "tv": tv_denoise, "wavelet": wavelet_denoise, "bm3d": bm3d_denoise}


# --------------------------------------------------------------------------- the baselines as Restorers

SR_TASKS = tuple(t.name for t in OFFICIAL_TASKS if t.kind == "sr")
DENOISE_TASKS = tuple(t.name for t in OFFICIAL_TASKS if t.kind == "denoise")
BUILTIN = ("bicubic", "input", *CLASSIC_DENOISERS)


class BaselineRestorer:
    """A baseline as a Restorer; its identity is its name and parameters (with the computing package)."""

    kind = "baseline"

    def __init__(
        self,
        name: str,
        tasks: tuple[str, ...],
        fn: Callable[[torch.Tensor, Task], torch.Tensor],
        description: str,
        **params: Any,
    ) -> None:
        self.name, self.tasks, self.fn, self.description = name, tasks, fn, description
        self.params = params
        self.source = name  # two baselines under one row label in one folder are an error

    def restore(self, image: torch.Tensor, task: Task) -> torch.Tensor:
        return self.fn(image, task)

    def identity(self) -> dict[str, Any]:
        return {"kind": "baseline", "name": self.name, "params": self.params}


_DENOISER_PARAMS: dict[str, dict[str, Any]] = {
    "nlm": {"h": "0.6 sigma", "sigma": "sigma", "patch_size": 5, "patch_distance": 6, "fast_mode": True},
    "tv": {"weight": "sigma/255", "method": "chambolle"},
    "wavelet": {"wavelet": "db1", "mode": "soft", "method": "BayesShrink", "ycbcr": True, "sigma": "sigma"},
    "bm3d": {"sigma_psd": "sigma/255", "profile": "bm3d_rgb default"},
}
_DENOISER_PACKAGES = {
    "nlm": ("scikit-image",),
    "tv": ("scikit-image",),
    "wavelet": ("scikit-image", "PyWavelets"),
    "bm3d": ("bm3d",),
}
_DESCRIPTIONS = {
    "bicubic": "MATLAB bicubic upscaling of the uint8 LR (imresize matlab_uint8)",
    "input": "the corrupted input itself (noisy image in float, or the rainy image)",
    "nlm": "scikit-image non-local means, h = 0.6 sigma, sigma given",
    "tv": "scikit-image TV (Chambolle), weight = sigma/255",
    "wavelet": "scikit-image BayesShrink wavelet denoising in YCbCr, sigma given",
    "bm3d": "CBM3D (bm3d package), sigma_psd = sigma/255",
}


def _package(name: str) -> str:
    from importlib import metadata

    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name} (not installed)"


def _denoiser(name: str) -> BaselineRestorer:
    require(name)
    fn = DENOISERS[name]

    def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
        assert task.sigma is not None
        return fn(x, float(task.sigma))

    # The package version is part of the identity: a new scikit-image may change a denoiser's output.
    packages = [_package(p) for p in _DENOISER_PACKAGES[name]]
    params = {**_DENOISER_PARAMS[name], "packages": packages}
    return BaselineRestorer(name, DENOISE_TASKS, restore, _DESCRIPTIONS[name], **params)


def make(name: str) -> BaselineRestorer:
    """The built-in baseline `name` (one of BUILTIN) as a Restorer."""
    if name == "bicubic":
        resize = "iptbench imresize matlab_uint8 (rounded after each axis)"
        upscale = lambda x, task: bicubic_upscale(x, task.scale)  # noqa: E731
        return BaselineRestorer(name, SR_TASKS, upscale, _DESCRIPTIONS[name], resize=resize)
    if name == "input":
        tasks = (*DENOISE_TASKS, "derain")
        return BaselineRestorer(name, tasks, lambda x, task: identity(x), _DESCRIPTIONS[name])
    if name in CLASSIC_DENOISERS:
        return _denoiser(name)
    raise IptbenchError(f"unknown baseline {name!r}; use one of {', '.join(BUILTIN)}")
