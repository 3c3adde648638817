"""The one thing every model is to iptbench: a `Restorer` (IPT, the baselines, external networks alike).

A restorer has a `name`, the `tasks` it does, `restore(image, task)` (N x 3 x H x W float on 0-255 ->
the restored batch, also on 0-255) and `identity()`: the JSON-able dict that decides its numbers, stored
in every eval cell (iptbench/evaluation/identity.py), so a rerun redoes a cell exactly when it changed.

`--model py:package.module:factory` (see `load_factory`) calls a factory found on PYTHONPATH. It returns a
Restorer, or a plain `torch.nn.Module` with a `tasks` attribute and `forward(x, task_name)`, which
`ModuleRestorer` wraps: the whole image at once (or overlapping tiles, `tile_size`), eval mode,
`torch.inference_mode`, values on 0-255 unless the module sets `data_range = 1.0`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from iptbench.errors import IptbenchError
from iptbench.tasks import Task


@runtime_checkable
class Restorer(Protocol):
    """What the eval runner needs of a model. Optional extras it reads when present: `description`,
    `kind`, `source` (what the row label stands for), `meta` (manifest fields) and `images`
    (precomputed restored images, iptbench.evaluation.precomputed)."""

    name: str
    tasks: tuple[str, ...]

    def restore(self, image: Tensor, task: Task) -> Tensor: ...

    def identity(self) -> dict[str, Any]: ...


def state_sha256(module: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes and bytes), so changed weights change it."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if not isinstance(value, Tensor):
            digest.update(f"{key}={value!r};".encode())
            continue
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}:{flat.dtype}:{tuple(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())  # bytes of any dtype, bf16 included
    return digest.hexdigest()


def _module_tasks(module: nn.Module) -> tuple[str, ...]:
    tasks = getattr(module, "tasks", None)
    if isinstance(tasks, str):
        return (tasks,)
    if not tasks or not all(isinstance(t, str) for t in tasks):
        raise IptbenchError(
            f"{type(module).__qualname__} needs a tasks attribute naming the tasks it does, "
            "e.g. tasks = ('sr-x2', 'denoise-30')"
        )
    return tuple(tasks)


class ModuleRestorer:
    """A plain `nn.Module` as a Restorer: `forward(x, task_name)` on an N x 3 x H x W batch.

    Precision defaults to fp32 on every device (an external network's numbers as written); `tile_size`
    (argument, else the module's own `tile_size` attribute) runs overlapping windows of that side
    through iptbench.models.tiling instead of the whole image, for networks that run out of memory.
    """

    kind = "module"

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        spec: str = "",
        device: str | torch.device = "cpu",
        precision: str | None = None,
        tile_size: int | None = None,
        tile_mode: str = "fast",
        window_batch: int = 64,
    ) -> None:
        self.module = module.to(device).eval()
        self.name, self.spec, self.source = name, spec, spec or type(module).__qualname__
        self.tasks = _module_tasks(module)
        from iptbench.models.inference import resolve_precision

        self.device = torch.device(device)
        self.precision = resolve_precision(precision or "fp32", self.device)  # an unknown one: one line
        self.data_range = float(getattr(module, "data_range", 255.0))
        self.tile_size = tile_size or getattr(module, "tile_size", None)
        self.tile_mode, self.window_batch = tile_mode, window_batch
        if self.tile_size and tile_mode == "official" and int(self.tile_size) % 4:
            raise IptbenchError(f"official tiling needs a tile_size divisible by 4, got {self.tile_size}")
        tiling = f", {self.tile_mode} tiles of {self.tile_size}" if self.tile_size else ", whole image"
        self.description = f"{type(module).__qualname__} from {spec or 'Python'}{tiling}, {self.precision}"

    def _run(self, x: Tensor, task: Task) -> Tensor:
        from iptbench.models.tiling import tile_fast, tile_official

        if not self.tile_size:
            return self.module(x, task.name).float()
        tile = tile_official if self.tile_mode == "official" else tile_fast
        fn: Callable[[Tensor], Tensor] = lambda batch: self.module(batch, task.name).float()  # noqa: E731
        size, batch = int(self.tile_size), self.window_batch
        return torch.cat([tile(fn, one, size, task.scale, window_batch=batch) for one in x.split(1)])

    def restore(self, image: Tensor, task: Task) -> Tensor:
        from iptbench.models.inference import precision_context

        # A copy: the eval loop hands the same input to every model, and a module may work in place.
        x = image.to(self.device, torch.float32, copy=True)
        if self.data_range != 255.0:
            x = x * (self.data_range / 255.0)
        with torch.inference_mode(), precision_context(self.device, self.precision):
            out = self._run(x, task)
        if self.data_range != 255.0:
            out = out * (255.0 / self.data_range)
        return out.float().cpu()

    def identity(self) -> dict[str, Any]:
        cls = type(self.module)
        tile = None
        if self.tile_size:
            tile = {"size": int(self.tile_size), "mode": self.tile_mode}
        return {
            "kind": "module",
            "spec": self.spec,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "weights_sha256": state_sha256(self.module),
            "data_range": self.data_range,
            "tile": tile,
            "precision": self.precision,
            "device": self.device.type,
        }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_factory(target: str) -> Callable[[], Any]:
    """'package.module:factory' -> the factory, imported from sys.path (PYTHONPATH, then the cwd)."""
    module_name, _, attr = target.rpartition(":")
    if not module_name or not attr:
        raise IptbenchError(f"py:{target} is not py:MODULE:FACTORY, e.g. --model mynet=py:mynets.srcnn:build")
    # The `iptbench` script's sys.path[0] is its bin folder: the current folder is appended (last, so it
    # never shadows an installed package) so that `py:mymodel:build` works where `python -m` would.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an error inside the user's module is still one line
        raise IptbenchError(
            f"py:{target}: cannot import {module_name!r} ({_one_line(exc)}); is its folder on PYTHONPATH?"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise IptbenchError(f"py:{target}: {module_name} has no callable {attr!r}")
    return factory


def from_factory(target: str, *, label: str | None, **module_options: Any) -> Restorer:
    """Call the factory of `py:target`; wrap a plain module, check anything else is a Restorer."""
    spec = f"py:{target}"
    try:
        made = load_factory(target)()
    except IptbenchError:
        raise
    except Exception as exc:
        raise IptbenchError(f"{spec}: the factory raised {_one_line(exc)}") from None
    if isinstance(made, Restorer) and not isinstance(made, type):
        return made  # the row label, if any, is the eval entry's (iptbench.evaluation.model_specs)
    if isinstance(made, nn.Module):
        return ModuleRestorer(made, name=label or target.rpartition(":")[2], spec=spec, **module_options)
    raise IptbenchError(
        f"{spec} returned {type(made).__qualname__}, not a Restorer (name, tasks, restore, identity) "
        "or a torch.nn.Module with a tasks attribute"
    )
