"""Named metric profiles: which channel, which border crop, which grey-image rule and which noise convention.

A profile is data (one frozen record per name), printed under every table via ``describe()`` so
readers know exactly how a number was computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iptbench.errors import IptbenchError
from iptbench.tasks import Task, get_kind

Channel = Literal["y", "rgb"]
CropRule = Literal["scale", "none"]
GreyRule = Literal["grey", "replicate"]

# How each rule reads under a table: the rule moves Set14 (grey bridge.png) by ~0.09 dB, so it is always said.
_GREY_TEXT: dict[str, str] = {
    "grey": "grey ground truth scored on its grey values (a 3-channel output reduced by full-range luma "
    "0.299/0.587/0.114)",
    "replicate": "grey ground truth replicated to RGB, then scored like a colour image (IPT's set_channel)",
}


@dataclass(frozen=True)
class MetricProfile:
    """How PSNR/SSIM are computed for each task kind, and how synthetic noisy inputs are made.

    ``crop`` per kind is "scale" (crop = the task's scale, 0 when the scale is 1) or "none".
    ``grey_target``: "grey" scores a grey ground-truth image on its grey values, as the MATLAB scripts behind
    the published SR tables do; "replicate" copies it to three channels first, as the official IPT code does.
    Models always receive three channels. Noise is Gaussian in float on the 0-255 scale, seeded per image
    with ``noise_seed``.
    """

    name: str
    description: str
    channel_sr: Channel
    channel_denoise: Channel
    channel_derain: Channel
    crop_sr: CropRule
    crop_denoise: CropRule
    crop_derain: CropRule
    noise_clip: bool  # clamp the noisy input to 0..255 (IPT's trainer does; the literature does not)
    grey_target: GreyRule = "grey"
    noise_seed: int = 0  # per-image seed of the Gaussian noise

    def channel_for(self, task: Task | str) -> Channel:
        """Channel for a task or a kind name; a kind is scored by its `metric_column`'s settings."""
        column = get_kind(task.kind if isinstance(task, Task) else task).metric_column
        return {"sr": self.channel_sr, "denoise": self.channel_denoise, "derain": self.channel_derain}[column]

    def crop_for(self, task: Task | int) -> int:
        """Border crop in pixels; an int is read as an SR scale (``--scale N`` in the metrics command)."""
        if isinstance(task, Task):
            column, scale = get_kind(task.kind).metric_column, task.scale
        else:
            column, scale = ("sr" if int(task) > 1 else "denoise"), int(task)
        rule = {"sr": self.crop_sr, "denoise": self.crop_denoise, "derain": self.crop_derain}[column]
        return scale if rule == "scale" and scale > 1 else 0

    def _kinds_text(self, attr: str) -> str:
        values = {k: getattr(self, f"{attr}_{k}") for k in ("sr", "denoise", "derain")}
        if len(set(values.values())) == 1:
            return str(next(iter(values.values())))
        return ", ".join(f"{k} {v}" for k, v in values.items())

    def describe(self) -> str:
        """One line for under a table."""
        channel = self._kinds_text("channel").replace("rgb", "RGB").replace("y", "Y (BT.601 studio)")
        crop = self._kinds_text("crop").replace("scale", "crop = scale").replace("none", "crop 0")
        noise = "clipped to 0..255" if self.noise_clip else "not clipped"
        noise += ", not rounded"
        return (
            f"profile {self.name}: {channel}; {crop}; Y rounding: none; "
            f"{_GREY_TEXT[self.grey_target]}; "
            f"output quantised to uint8 (round half away from zero); noise: float Gaussian, per-image seed "
            f"{self.noise_seed}, {noise}"
        )


PROFILES: dict[str, MetricProfile] = {
    p.name: p
    for p in (
        MetricProfile(
            "sr",
            "super-resolution literature (MATLAB/BasicSR): Y float, crop = scale, grey images on grey values",
            "y",
            "y",
            "y",
            "scale",
            "scale",
            "scale",
            noise_clip=False,
        ),  # fmt: skip
        MetricProfile(
            "denoise",
            "colour denoising literature (KAIR/SwinIR/Restormer): RGB, no crop, grey images on grey values",
            "rgb",
            "rgb",
            "rgb",
            "none",
            "none",
            "none",
            noise_clip=False,
        ),  # fmt: skip
        MetricProfile(
            "derain",
            "deraining literature (PReNet/RCDNet MATLAB): Y float, no crop, grey images on grey values",
            "y",
            "y",
            "y",
            "none",
            "none",
            "none",
            noise_clip=False,
        ),  # fmt: skip
        MetricProfile(
            "ipt-legacy",
            "official IPT code: Y for every task, crop = scale for SR and 0 otherwise, noisy input clipped, "
            "grey images replicated to RGB",
            "y",
            "y",
            "y",
            "scale",
            "none",
            "none",
            noise_clip=True,
            grey_target="replicate",
        ),  # fmt: skip
    )
}


def get_profile(name: str) -> MetricProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise IptbenchError(
            f"unknown metric profile {name!r}; valid profiles: {', '.join(PROFILES)}"
        ) from None


def default_profile_for(task: Task | str) -> MetricProfile:
    """The default profile of the task's kind (iptbench.tasks): the literature's convention for it."""
    return get_profile(get_kind(task.kind if isinstance(task, Task) else task).profile)
