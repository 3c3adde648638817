"""Metrics with the literature's conventions: PSNR, SSIM, LPIPS, named metric profiles, folder scoring.

May import ops, images, tasks and errors only.
"""

from iptbench.metrics.lpips import Lpips
from iptbench.metrics.profiles import PROFILES, MetricProfile, default_profile_for, get_profile
from iptbench.metrics.psnr_ssim import psnr, ssim

__all__ = ["PROFILES", "Lpips", "MetricProfile", "default_profile_for", "get_profile", "psnr", "ssim"]
