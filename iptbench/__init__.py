"""iptbench: the Image Processing Transformer end to end, with honest numbers next to it."""

from iptbench._version import __version__

__all__ = ["__version__"]


def __getattr__(name: str) -> object:  # lazy: importing iptbench must not import torch
    if name in ("restore", "load_model", "create_model"):
        import iptbench.models as models

        return getattr(models, name)
    raise AttributeError(f"module 'iptbench' has no attribute {name!r}")
