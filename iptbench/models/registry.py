"""Named model configurations in the style of timm: a name maps to a function returning an IPTConfig.

`ipt-base` is the paper's model. `ipt-small` and `ipt-tiny` keep IPT's structure and 48x48 windows but
shrink the width and depth so they train and run on a laptop CPU (ipt-tiny trains at tens of 48x48
patches per second on 2 cores).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

import torch

from iptbench.errors import IptbenchError
from iptbench.models.ipt import IPT, IPTConfig
from iptbench.tasks import parse_tasks

ConfigFn = Callable[..., IPTConfig]
_REGISTRY: dict[str, ConfigFn] = {}


def register_model(name: str) -> Callable[[ConfigFn], ConfigFn]:
    def decorator(fn: ConfigFn) -> ConfigFn:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return decorator


@register_model("ipt-base")
def ipt_base(**overrides: Any) -> IPTConfig:
    """The paper's IPT: C=64, 48x48 windows, 3x3 token patches (E=576), 12 heads, 12+12 layers."""
    return IPTConfig(
        **{"n_feats": 64, "patch_size": 48, "patch_dim": 3, "num_heads": 12, "num_layers": 12, **overrides},
        name="ipt-base",
    )


@register_model("ipt-small")
def ipt_small(**overrides: Any) -> IPTConfig:
    """C=32 (E=288), 6 heads of 48, 4+4 layers: about a tenth of ipt-base, for CPU experiments."""
    return IPTConfig(
        **{"n_feats": 32, "patch_size": 48, "patch_dim": 3, "num_heads": 6, "num_layers": 4, **overrides},
        name="ipt-small",
    )


@register_model("ipt-tiny")
def ipt_tiny(**overrides: Any) -> IPTConfig:
    """C=16 (E=144), 4 heads of 36, 2+2 layers: trains on 2 CPU cores, used by tests and demos."""
    return IPTConfig(
        **{"n_feats": 16, "patch_size": 48, "patch_dim": 3, "num_heads": 4, "num_layers": 2, **overrides},
        name="ipt-tiny",
    )


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def model_config(name: str, tasks: str | Sequence[str] | None = None, **overrides: Any) -> IPTConfig:
    """The config of a registered model; `tasks` as for parse_tasks (None = all six, official order)."""
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise IptbenchError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    task_names = tuple(
        t.name for t in parse_tasks(tasks if tasks is None or isinstance(tasks, str) else list(tasks))
    )
    return fn(tasks=task_names, **overrides)


def create_model(
    name: str,
    tasks: str | Sequence[str] | None = None,
    *,
    device: torch.device | str | None = None,
    seed: int | None = 0,
    **overrides: Any,
) -> IPT:
    """A freshly initialised model (seeded, so two calls give the same weights); eval mode off.

    `device="meta"` builds it without allocating weights (for counting parameters).
    """
    config = model_config(name, tasks, **overrides)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.device(device or "cpu"):
            return IPT(config)
