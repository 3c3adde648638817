"""`--model SPEC` -> a named restorer that knows which tasks it can do.

SPEC forms:
  bicubic | input | nlm | tv | wavelet | bm3d      built-in baselines (iptbench.models.baselines)
  ipt:PATH                                         our .safetensors or an official IPT_*.pt checkpoint
  PATH | NAME                                      a checkpoint file, or a zoo name (iptbench.models.zoo)
  LABEL=SPEC                                       any of the above under another row name in the tables
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from iptbench.errors import IptbenchError
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

    def supports(self, task: Task | str) -> bool:
        return (task.name if isinstance(task, Task) else task) in self.tasks

    def __call__(self, image: torch.Tensor, task: Task) -> torch.Tensor:
        return self.restore(image, task)


def _bicubic() -> Restorer:
    return Restorer(
        "bicubic",
        SR_TASKS,
        lambda x, task: baselines.bicubic_upscale(x, task.scale),
        "MATLAB bicubic upscaling of the uint8 LR (imresize matlab_uint8)",
    )


def _input() -> Restorer:
    return Restorer(
        "input",
        (*DENOISE_TASKS, "derain"),
        lambda x, task: baselines.identity(x),
        "the corrupted input itself (noisy image in float, or the rainy image)",
    )


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
    return Restorer(name, DENOISE_TASKS, restore, descriptions[name])


def _ipt(
    path: Path,
    label: str | None,
    *,
    device: str | None,
    tile_mode: str,
    window_batch: int,
    self_ensemble: bool,
) -> Restorer:
    from iptbench import models

    if not path.is_file():
        raise IptbenchError(
            f"no checkpoint file at {path}: pass ipt:PATH with an existing .safetensors or .pt file"
        )
    model = models.load_model(path, device=device or _auto_device())
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
                tile_mode=tile_mode,
                window_batch=window_batch,
                self_ensemble=self_ensemble,
            )
        return out.float().cpu()

    # `iptbench train` writes every run's weights as model.safetensors: its run folder names it better.
    stem = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    name = label or f"ipt:{stem}"
    extra = f"tile_mode={tile_mode}, window_batch={window_batch}, self_ensemble={self_ensemble}"
    return Restorer(
        name,
        tasks,
        restore,
        f"IPT checkpoint {path.name} ({extra})",
        spec=f"ipt:{path}",
        meta={"checkpoint": str(path), "sha256": _sha256(path)},
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
) -> Restorer:
    """Build the restorer a `--model` value names, or raise IptbenchError saying which forms exist."""
    spec = spec.strip()
    label: str | None = None
    match = _LABEL.match(spec)
    if match and not Path(spec).exists():
        label, spec = match.group(1).strip(), match.group(2).strip()
    lowered = spec.lower()
    restorer: Restorer
    if lowered == "bicubic":
        restorer = _bicubic()
    elif lowered == "input":
        restorer = _input()
    elif lowered in baselines.CLASSIC_DENOISERS:
        restorer = _denoiser(lowered)
    elif lowered.startswith("ipt:"):
        return _ipt(
            Path(spec[4:]).expanduser(),
            label,
            device=device,
            tile_mode=tile_mode,
            window_batch=window_batch,
            self_ensemble=self_ensemble,
        )
    else:
        path = Path(spec).expanduser()
        zoo_name = None
        if not path.is_file():
            path, zoo_name = _zoo_path(spec) or path, spec
        if not path.is_file():
            raise IptbenchError(
                f"unknown model {spec!r}: use one of {', '.join(BUILTIN)}, or ipt:PATH to a checkpoint "
                "(.safetensors or official .pt)"
            )
        return _ipt(
            path,
            label or zoo_name,
            device=device,
            tile_mode=tile_mode,
            window_batch=window_batch,
            self_ensemble=self_ensemble,
        )
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
