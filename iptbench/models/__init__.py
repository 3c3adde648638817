"""The IPT model: architecture, registry, checkpoints (state-dict surgery too), tiled inference, zoo.

May import ops, io, tasks and errors only; never evaluation, train or the data packages.
"""

from iptbench.models.checkpoints import (
    checkpoint_info,
    convert_weights,
    load_model,
    load_state_dict_strict,
    read_official_state_dict,
    save_model,
)
from iptbench.models.inference import count_windows, restore
from iptbench.models.ipt import IPT, IPTConfig
from iptbench.models.registry import create_model, list_models, model_config, register_model

__all__ = [
    "IPT",
    "IPTConfig",
    "checkpoint_info",
    "convert_weights",
    "count_windows",
    "create_model",
    "list_models",
    "load_model",
    "load_state_dict_strict",
    "model_config",
    "read_official_state_dict",
    "register_model",
    "restore",
    "save_model",
]
