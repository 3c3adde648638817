"""`--model SPEC` -> a Restorer (iptbench.models.restorer) under its row label, through one registry.

SPEC forms (each one `register_spec` entry; a new form is one more):
  bicubic | input | nlm | tv | wavelet | bm3d      built-in baselines (iptbench.models.baselines)
  ipt:PATH                                         our .safetensors or an official IPT_*.pt checkpoint
  py:MODULE:FACTORY                                any network: FACTORY() from MODULE on PYTHONPATH
  NAME=images:DIR                                  restored images another method produced (precomputed.py)
  PATH | NAME                                      a checkpoint file, or a zoo name (iptbench.models.zoo)
  LABEL=SPEC                                       any of the above under another row name in the tables

The eval loop sees only a `ModelEntry`: the row label, the spec, and what the Restorer protocol gives
(tasks, restore, identity) plus the optional attributes it reads when present (description, kind, source,
meta, images). IPT, the baselines and external networks get there the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from iptbench.devices import auto_device
from iptbench.errors import IptbenchError
from iptbench.evaluation.precomputed import PrecomputedImages, parse_images_dir
from iptbench.io import sha256_file
from iptbench.models import baselines
from iptbench.models.restorer import Restorer, from_factory
from iptbench.tasks import Task, task_names

__all__ = ["ModelEntry", "Restorer", "SpecOptions", "parse_model_spec", "parse_model_specs", "register_spec"]

RestoreFn = Callable[[torch.Tensor, Task], torch.Tensor]
BUILTIN = baselines.BUILTIN


@dataclass
class ModelEntry:
    """One row of the eval tables: `restore(input 1x3xhxw float 0-255, task) -> 1x3xHxW float 0-255`."""

    name: str
    tasks: tuple[str, ...]
    restore: RestoreFn
    description: str = ""
    spec: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)  # restorer part of every cell's identity
    kind: str = "baseline"  # "baseline", "ipt" (the IPT architecture), "images", "module", ...
    source: str = ""  # the file, folder or baseline behind the row label (two under one label: an error)
    images: PrecomputedImages | None = None

    @classmethod
    def of(cls, restorer: Restorer, label: str | None = None, spec: str = "") -> ModelEntry:
        """The entry of any Restorer; its identity is taken once, when the model is loaded."""
        spec = getattr(restorer, "spec", "") or spec
        return cls(
            label or restorer.name,
            tuple(restorer.tasks),
            restorer.restore,
            getattr(restorer, "description", ""),
            spec,
            dict(getattr(restorer, "meta", None) or {}),
            restorer.identity(),
            getattr(restorer, "kind", "external"),
            getattr(restorer, "source", "") or spec or restorer.name,
            getattr(restorer, "images", None),
        )

    @property
    def runs_a_network(self) -> bool:
        """IPT and wrapped torch modules: their forward pass takes all cores (threads.for_network)."""
        return self.kind in ("ipt", "module")

    def supports(self, task: Task | str) -> bool:
        return (task.name if isinstance(task, Task) else task) in self.tasks

    def covers(self, dataset: str, task: Task) -> bool:
        """Whether this restorer has anything for (dataset, task): precomputed images need a folder."""
        if self.images is not None:
            return bool(self.images.folders(dataset, task))
        return self.supports(task)

    def __call__(self, image: torch.Tensor, task: Task) -> torch.Tensor:
        return self.restore(image, task)


def as_entry(model: ModelEntry | Restorer) -> ModelEntry:
    """What run_eval takes: an entry as is, any other Restorer under its own name."""
    return model if isinstance(model, ModelEntry) else ModelEntry.of(model)


@dataclass(frozen=True)
class SpecOptions:
    """The row label and the run settings a spec builder may use (the IPT ones are part of its identity)."""

    label: str | None = None
    device: str | None = None
    tile_mode: str = "fast"
    window_batch: int = 64
    self_ensemble: bool = False
    precision: str | None = None


SpecBuilder = Callable[[str, SpecOptions], Restorer]
_PREFIXES: dict[str, SpecBuilder] = {}  # "ipt:" -> builder of the text after the prefix
_NAMES: dict[str, SpecBuilder] = {}  # "bicubic" -> builder (called with the name)
_USAGE: list[str] = []  # how each form is written, for the unknown-model error


def register_spec(key: str, usage: str | None = None) -> Callable[[SpecBuilder], SpecBuilder]:
    """Register a spec form: `key` ending in ':' is a prefix ('py:'), anything else an exact name."""

    def add(builder: SpecBuilder) -> SpecBuilder:
        table = _PREFIXES if key.endswith(":") else _NAMES
        table[key.lower()] = builder
        _USAGE.append(usage or key)
        return builder

    return add


for _name in BUILTIN:
    register_spec(_name)(lambda name, options: baselines.make(name.lower()))


@register_spec("images:", "NAME=images:DIR")
def _images(text: str, options: SpecOptions) -> Restorer:
    return ImagesRestorer(text, options.label)


@register_spec("ipt:", "ipt:PATH")
def _ipt_prefix(text: str, options: SpecOptions) -> Restorer:
    return _ipt(Path(text).expanduser(), options)


@register_spec("py:", "py:MODULE:FACTORY")
def _python(text: str, options: SpecOptions) -> Restorer:
    return from_factory(
        text,
        label=options.label,
        device=options.device or auto_device(),
        precision=options.precision,
        tile_mode=options.tile_mode,
        window_batch=options.window_batch,
    )


class ImagesRestorer:
    """Restored images another method produced; the eval loop reads them itself (cells.py, runner.py)."""

    kind = "images"

    @property
    def tasks(self) -> tuple[str, ...]:
        return task_names()

    def __init__(self, text: str, label: str | None) -> None:
        if not label:
            raise IptbenchError(
                f"images:{text} needs a row name: --model NAME=images:{text} (e.g. SwinIR=images:{text})"
            )
        self.images = parse_images_dir(text)
        self.name, self.spec = label, f"images:{text}"
        self.source = str(self.images.root.resolve())
        self.description = f"restored images in {self.images.root}"

    def restore(self, image: torch.Tensor, task: Task) -> torch.Tensor:
        raise IptbenchError(f"{self.name} is a folder of restored images; the eval loop reads them itself")

    def identity(self) -> dict[str, Any]:
        return {"kind": "images", "dir": self.source}


def _ipt(path: Path, options: SpecOptions) -> Restorer:
    from iptbench import models
    from iptbench.models.inference import IptRestorer, IptSettings

    if not path.is_file():
        raise IptbenchError(
            f"no checkpoint file at {path}: pass ipt:PATH with an existing .safetensors or .pt file"
        )
    settings = IptSettings(
        options.device, options.tile_mode, options.window_batch, options.self_ensemble, options.precision
    )
    device = settings.device or auto_device()
    model = models.load_model(path, device=device)
    return IptRestorer(model, path, sha256_file(path), settings, device)


def _zoo_path(name: str) -> Path | None:
    """A zoo name -> its local checkpoint (iptbench.models.zoo), or None when the zoo does not know it."""
    from iptbench.models import zoo

    try:
        found = zoo.resolve(name)
    except (KeyError, LookupError, ValueError):
        return None
    return Path(found) if found else None


def _checkpoint_or_zoo(spec: str, options: SpecOptions) -> Restorer | None:
    """The last resort: SPEC as a checkpoint path, else as a zoo name (labelled by it); None: neither."""
    path = Path(spec).expanduser()
    if path.is_file():
        return _ipt(path, options)
    found = _zoo_path(spec)
    if found is None or not found.is_file():
        return None
    restorer = _ipt(found, options)
    restorer.name = spec
    return restorer


_LABEL = re.compile(r"^([A-Za-z][\w .+()-]*)=(.+)$")


def _build(spec: str, options: SpecOptions) -> Restorer:
    lowered = spec.lower()
    if lowered in _NAMES:
        return _NAMES[lowered](spec, options)
    for prefix, builder in _PREFIXES.items():
        if lowered.startswith(prefix):
            return builder(spec[len(prefix) :], options)
    restorer = _checkpoint_or_zoo(spec, options)
    if restorer is None:
        raise IptbenchError(
            f"unknown model {spec!r}: use one of {', '.join(_USAGE)}, a checkpoint file "
            "(.safetensors or official .pt) or a zoo name (iptbench weights list)"
        )
    return restorer


def parse_model_spec(
    spec: str,
    *,
    device: str | None = None,
    tile_mode: str = "fast",
    window_batch: int = 64,
    self_ensemble: bool = False,
    precision: str | None = None,
) -> ModelEntry:
    """Build the entry a `--model` value names, or raise IptbenchError saying which forms exist."""
    spec = spec.strip()
    label: str | None = None
    match = _LABEL.match(spec)
    if match and not Path(spec).exists():
        label, spec = match.group(1).strip(), match.group(2).strip()
    options = SpecOptions(label, device, tile_mode, window_batch, self_ensemble, precision)
    return ModelEntry.of(_build(spec, options), label, spec)


def parse_model_specs(specs: list[str], **kwargs: object) -> list[ModelEntry]:
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
