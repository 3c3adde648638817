"""`--model SPEC` -> a named restorer that knows which tasks it can do.

SPEC forms:
  bicubic | input | nlm | tv | wavelet | bm3d      built-in baselines (iptbench.models.baselines)
  ipt:PATH                                         our .safetensors or an official IPT_*.pt checkpoint
  PATH | NAME                                      a checkpoint file, or a zoo name (iptbench.models.zoo)
  NAME=images:DIR                                  restored images another method produced (precomputed.py)
  LABEL=SPEC                                       any of the above under another row name in the tables

Every restorer carries its identity (evaluation/identity.py): what decides its numbers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from iptbench.errors import IptbenchError
from iptbench.evaluation.precomputed import PrecomputedImages, parse_images_dir
from iptbench.models import baselines
from iptbench.tasks import TASK_NAMES, Task

RestoreFn = Callable[[torch.Tensor, Task], torch.Tensor]

BUILTIN = ("bicubic", "input", "nlm", "tv", "wavelet", "bm3d")
DENOISE_TASKS = tuple(t for t in TASK_NAMES if t.startswith("denoise"))
SR_TASKS = tuple(t for t in TASK_NAMES if t.startswith("sr"))


@dataclass
class Restorer:
    """A model the runner can score: `restore(input 1x3xhxw float 0-255, task) -> 1x3xHxW float 0-255`."""

    name: str
    tasks: tuple[str, ...]
    restore: RestoreFn
    description: str = ""
    spec: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)  # restorer part of every cell's identity
    kind: str = "baseline"  # "baseline", "ipt" (the IPT architecture) or "images"
    source: str = ""  # the file, folder or baseline behind the row label (two under one label: an error)
    images: PrecomputedImages | None = None

    def supports(self, task: Task | str) -> bool:
        return (task.name if isinstance(task, Task) else task) in self.tasks

    def covers(self, dataset: str, task: Task) -> bool:
        """Whether this restorer has anything for (dataset, task): precomputed images need a folder."""
        if self.images is not None:
            return bool(self.images.folders(dataset, task))
        return self.supports(task)

    def __call__(self, image: torch.Tensor, task: Task) -> torch.Tensor:
        return self.restore(image, task)


def _package(name: str) -> str:
    from importlib import metadata

    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return f"{name} (not installed)"


def _baseline(name: str, tasks: tuple[str, ...], fn: RestoreFn, description: str, **params: Any) -> Restorer:
    """A baseline's identity is its name and parameters (and the package whose code computes it)."""
    identity = {"kind": "baseline", "name": name, "params": params}
    return Restorer(name, tasks, fn, description, identity=identity, kind="baseline", source=name)


def _bicubic() -> Restorer:
    return _baseline(
        "bicubic",
        SR_TASKS,
        lambda x, task: baselines.bicubic_upscale(x, task.scale),
        "MATLAB bicubic upscaling of the uint8 LR (imresize matlab_uint8)",
        resize="iptbench imresize matlab_uint8 (rounded after each axis)",
    )


def _input() -> Restorer:
    return _baseline(
        "input",
        (*DENOISE_TASKS, "derain"),
        lambda x, task: baselines.identity(x),
        "the corrupted input itself (noisy image in float, or the rainy image)",
    )


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


def _denoiser(name: str) -> Restorer:
    baselines.require(name)
    fn = baselines.DENOISERS[name]

    def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
        assert task.sigma is not None
        return fn(x, float(task.sigma))

    descriptions = {
        "nlm": "scikit-image non-local means, h = 0.6 sigma, sigma given",
        "tv": "scikit-image TV (Chambolle), weight = sigma/255",
        "wavelet": "scikit-image BayesShrink wavelet denoising in YCbCr, sigma given",
        "bm3d": "CBM3D (bm3d package), sigma_psd = sigma/255",
    }
    # The package version is part of the identity: a new scikit-image may change a denoiser's output.
    packages = [_package(p) for p in _DENOISER_PACKAGES[name]]
    return _baseline(
        name, DENOISE_TASKS, restore, descriptions[name], **_DENOISER_PARAMS[name], packages=packages
    )


def _images(text: str, label: str | None) -> Restorer:
    if not label:
        raise IptbenchError(
            f"images:{text} needs a row name: --model NAME=images:{text} (e.g. SwinIR=images:{text})"
        )
    source = parse_images_dir(text)

    def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
        raise IptbenchError(f"{label} is a folder of restored images; the eval loop reads them itself")

    return Restorer(
        label,
        TASK_NAMES,
        restore,
        f"restored images in {source.root}",
        spec=f"images:{text}",
        identity={"kind": "images", "dir": str(source.root.resolve())},
        kind="images",
        source=str(source.root.resolve()),
        images=source,
    )


@dataclass(frozen=True)
class IptSettings:
    """How an IPT checkpoint is run; everything but window_batch is part of its cells' identity."""

    device: str | None = None
    tile_mode: str = "fast"
    window_batch: int = 64
    self_ensemble: bool = False
    precision: str | None = None  # None: fp32 on CPU, bf16 on CUDA


def _tile_identity(mode: str, patch: int) -> dict[str, Any]:
    from iptbench.models.tiling import default_stride

    if mode == "official":
        return {"patch": patch, "stride": patch // 4}
    return {"patch": patch, "stride": default_stride(patch), "stride_default": True}


def _ipt_identity(model: Any, sha256: str, settings: IptSettings, device: str, precision: str) -> dict:
    arch = json.loads(model.config.to_json())
    arch.pop("name", None)  # a registry name is a label; the fields are the architecture
    return {
        "kind": "ipt",
        "weights_sha256": sha256,
        "arch": arch,
        "tile_mode": settings.tile_mode,
        "tile": _tile_identity(settings.tile_mode, model.patch_size),
        "self_ensemble": settings.self_ensemble,
        "precision": precision,
        "device": torch.device(device).type,
    }


def _ipt(path: Path, label: str | None, settings: IptSettings) -> Restorer:
    from iptbench import models
    from iptbench.models.inference import resolve_precision

    if not path.is_file():
        raise IptbenchError(
            f"no checkpoint file at {path}: pass ipt:PATH with an existing .safetensors or .pt file"
        )
    device = settings.device or _auto_device()
    precision = resolve_precision(settings.precision, torch.device(device))
    model = models.load_model(path, device=device)
    model.eval()
    tasks = tuple(str(t) for t in model.tasks)

    def restore(x: torch.Tensor, task: Task) -> torch.Tensor:
        param = next(model.parameters(), None)
        dev = param.device if param is not None else x.device
        with torch.inference_mode():
            out = models.restore(
                model,
                x.to(dev),
                task.name,
                tile_mode=settings.tile_mode,  # type: ignore[arg-type]
                window_batch=settings.window_batch,
                self_ensemble=settings.self_ensemble,
                precision=precision,
            )
        return out.float().cpu()

    # `iptbench train` writes every run's weights as model.safetensors: its run folder names it better.
    stem = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    sha256 = _sha256(path)
    extra = (
        f"tile_mode={settings.tile_mode}, window_batch={settings.window_batch}, "
        f"self_ensemble={settings.self_ensemble}, precision={precision} on {torch.device(device).type}"
    )
    return Restorer(
        label or f"ipt:{stem}",
        tasks,
        restore,
        f"IPT checkpoint {path.name} ({extra})",
        spec=f"ipt:{path}",
        meta={"checkpoint": str(path), "sha256": sha256, "window_batch": settings.window_batch},
        identity=_ipt_identity(model, sha256, settings, device, precision),
        kind="ipt",
        source=str(path.resolve()),
    )


def _auto_device() -> str:
    """CUDA when present (under torchrun, this rank's GPU), else CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")
    return f"cuda:{local_rank}" if local_rank is not None else "cuda"


def _sha256(path: Path) -> str:
    from iptbench.evaluation.outputs import sha256_file

    return sha256_file(path)


def _zoo_path(name: str) -> Path | None:
    """A zoo name -> local checkpoint, through `iptbench.models.zoo.resolve(name)` when that module exists.

    No weights zoo ships yet; the hook lets one plug in without touching the eval code.
    """
    try:
        from iptbench.models import zoo  # type: ignore[attr-defined]
    except ImportError:
        return None
    resolve = getattr(zoo, "resolve", None)
    if not callable(resolve):
        return None
    try:
        found = resolve(name)
    except (KeyError, LookupError, ValueError):
        return None
    return Path(found) if found else None


_LABEL = re.compile(r"^([A-Za-z][\w .+()-]*)=(.+)$")


def parse_model_spec(
    spec: str,
    *,
    device: str | None = None,
    tile_mode: str = "fast",
    window_batch: int = 64,
    self_ensemble: bool = False,
    precision: str | None = None,
) -> Restorer:
    """Build the restorer a `--model` value names, or raise IptbenchError saying which forms exist."""
    settings = IptSettings(device, tile_mode, window_batch, self_ensemble, precision)
    spec = spec.strip()
    label: str | None = None
    match = _LABEL.match(spec)
    if match and not Path(spec).exists():
        label, spec = match.group(1).strip(), match.group(2).strip()
    lowered = spec.lower()
    restorer: Restorer
    if lowered.startswith("images:"):
        return _images(spec[len("images:") :], label)
    if lowered.startswith("ipt:"):
        return _ipt(Path(spec[4:]).expanduser(), label, settings)
    if lowered == "bicubic":
        restorer = _bicubic()
    elif lowered == "input":
        restorer = _input()
    elif lowered in baselines.CLASSIC_DENOISERS:
        restorer = _denoiser(lowered)
    else:
        path = Path(spec).expanduser()
        zoo_name = None
        if not path.is_file():
            path, zoo_name = _zoo_path(spec) or path, spec
        if not path.is_file():
            raise IptbenchError(
                f"unknown model {spec!r}: use one of {', '.join(BUILTIN)}, ipt:PATH to a checkpoint "
                "(.safetensors or official .pt), or NAME=images:DIR for restored images"
            )
        return _ipt(path, label or zoo_name, settings)
    if label:
        restorer.name = label
    restorer.spec = spec
    return restorer


def parse_model_specs(specs: list[str], **kwargs: object) -> list[Restorer]:
    restorers = [parse_model_spec(s, **kwargs) for s in specs]  # type: ignore[arg-type]
    names = [r.name for r in restorers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise IptbenchError(
            f"two --model values are both named {duplicates[0]!r}: "
            "give one a label, e.g. --model mine=ipt:PATH"
        )
    return restorers


DEFAULT_BASELINES = ("bicubic", "input", "nlm")  # bicubic for SR, input and nlm for denoising, input for rain


def default_model_specs() -> list[str]:
    """What `iptbench eval` runs with no --model: every bundled IPT of the zoo, then the baselines."""
    from iptbench.models import zoo

    return [entry.name for entry in zoo.bundled()] + list(DEFAULT_BASELINES)
