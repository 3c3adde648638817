"""Exact image operations: MATLAB bicubic resize, mod-crop, BT.601 colour conversion, quantisation.

Imports no other iptbench module.
"""

from iptbench.ops.color import quantize, quantize_array, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from iptbench.ops.resize import imresize, modcrop

__all__ = ["imresize", "modcrop", "quantize", "quantize_array", "rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]
