"""Metric profiles are data: channels, crops and noise conventions per task kind."""

from __future__ import annotations

import dataclasses

import pytest

from iptbench.errors import IptbenchError
from iptbench.metrics import PROFILES, MetricProfile, default_profile_for, get_profile
from iptbench.tasks import TASKS, get_task


def test_names_and_table() -> None:
    assert list(PROFILES) == ["sr", "denoise", "derain", "ipt-legacy"]
    assert all(isinstance(p, MetricProfile) for p in PROFILES.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["sr"].noise_clip = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("profile", "task", "channel", "crop"),
    [
        ("sr", "sr-x2", "y", 2),
        ("sr", "sr-x4", "y", 4),
        ("denoise", "denoise-30", "rgb", 0),
        ("denoise", "sr-x3", "rgb", 0),
        ("derain", "derain", "y", 0),
        ("ipt-legacy", "sr-x3", "y", 3),
        ("ipt-legacy", "denoise-50", "y", 0),
        ("ipt-legacy", "derain", "y", 0),
    ],
)
def test_channel_and_crop(profile: str, task: str, channel: str, crop: int) -> None:
    p = get_profile(profile)
    assert p.channel_for(get_task(task)) == channel
    assert p.crop_for(get_task(task)) == crop


def test_crop_for_plain_scale() -> None:
    assert get_profile("sr").crop_for(4) == 4
    assert get_profile("sr").crop_for(1) == 0
    assert get_profile("denoise").crop_for(4) == 0


def test_noise_conventions() -> None:
    for name in ("sr", "denoise", "derain"):
        p = get_profile(name)
        assert (p.noise_clip, p.noise_seed) == (False, 0)
    legacy = get_profile("ipt-legacy")
    assert legacy.noise_clip


def test_defaults_per_task() -> None:
    expected = {"sr": "sr", "denoise": "denoise", "derain": "derain"}
    for task in TASKS.values():
        assert default_profile_for(task).name == expected[task.kind]
    assert default_profile_for("derain").name == "derain"


def test_describe_is_one_complete_line() -> None:
    for p in PROFILES.values():
        text = p.describe()
        assert "\n" not in text and text.startswith(f"profile {p.name}:")
        for part in ("Y rounding: none", "uint8", "half away from zero", "per-image seed 0", "not rounded"):
            assert part in text
    assert "RGB" in get_profile("denoise").describe() and "crop 0" in get_profile("denoise").describe()
    assert "crop = scale" in get_profile("sr").describe()
    assert "clipped to 0..255" in get_profile("ipt-legacy").describe()
    assert "not clipped" in get_profile("sr").describe()


def test_unknown_profile() -> None:
    with pytest.raises(IptbenchError, match="valid profiles"):
        get_profile("bogus")


def test_grey_rule_is_data_and_stated_in_every_description() -> None:
    for name in ("sr", "denoise", "derain"):
        p = get_profile(name)
        assert p.grey_target == "grey"
        assert "grey ground truth scored on its grey values" in p.describe()
        assert "0.299/0.587/0.114" in p.describe() and "grey values" in p.description
    legacy = get_profile("ipt-legacy")
    assert legacy.grey_target == "replicate"
    assert "grey ground truth replicated to RGB" in legacy.describe() and "replicated" in legacy.description
