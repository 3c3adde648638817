"""iptbench: the Image Processing Transformer end to end, with honest numbers next to it."""

from iptbench._version import __version__

__all__ = ["__version__"]
