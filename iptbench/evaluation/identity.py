"""A cell's identity: everything that decides its numbers, and nothing that does not.

A cell is (row label, dataset, task). Its identity is a small JSON object:

* ``restorer``: for IPT the sha256 of the weights, the architecture (the model config), the tile mode and
  its geometry, self-ensemble, precision and device kind; for a baseline its name and parameters; for
  precomputed images the folder they came from (their bytes are in ``restored_sha256``);
* ``task`` and ``profile`` (channel, crop, grey rule of the metric profile for this task);
* ``inputs_sha256``: one sha256 over the sha256 of every input file of the cell (ground truth, LR/rainy);
* ``noise``: seed, clipping and the noise algorithm version (kinds whose eval input is "noise" only);
* ``corruption``: for kinds whose eval input is their corruption of the clean image ("clean"), the kind,
  its ``eval_version`` and the seed of that corruption (absent for the other kinds);
* ``scoring_version``: bumped whenever a metric's result changes, so old numbers are never reused;
* ``limit`` and ``lpips``: a first-N smoke run or a run without LPIPS has other columns.

The window batch and the number of ranks are deliberately absent: they do not change the numbers (the
metrics run on one thread, and window batches only change how windows are grouped).
A rerun reuses a finished cell only when the digest of its identity is equal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from iptbench.tasks import EVAL_SEED, Task

# 1: grey ground truth replicated to RGB under every profile. 2: literature profiles score grey images on
# their grey values (Set14's bridge.png moved by 1.32 dB), and grey images also get IPT's replicated PSNR.
SCORING_VERSION = 2

Identity = dict[str, Any]


def digest(identity: Identity) -> str:
    """sha256 of the canonical JSON of an identity (sorted keys, no spaces)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_text(parts: list[list[str]]) -> str:
    """One sha256 over a list of string tuples (e.g. image name + file hashes), order included."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode("utf-8")).hexdigest()


def profile_identity(profile: Any, task: Task) -> Identity:
    return {
        "name": profile.name,
        "channel": profile.channel_for(task),
        "crop": int(profile.crop_for(task)),
        "grey_target": getattr(profile, "grey_target", "replicate"),
    }


def noise_identity(profile: Any, task: Task) -> Identity | None:
    if task.spec.eval_input != "noise":
        return None
    return {
        "algorithm": task.spec.eval_version,
        "seed": int(getattr(profile, "noise_seed", 0)),
        "sigma": task.sigma,
        "clip": bool(getattr(profile, "noise_clip", False)),
    }


def corruption_identity(task: Task) -> Identity | None:
    """What makes a "clean" kind's eval input: its corruption (by version) and the corruption's seed."""
    kind = task.spec
    if kind.eval_input != "clean":
        return None
    return {"kind": kind.name, "version": kind.eval_version, "seed": [EVAL_SEED, task.official_index]}


def cell_identity(
    restorer: Identity,
    task: Task,
    profile: Any,
    inputs_sha256: str,
    *,
    lpips: str | None,
    limit: int | None,
    restored_sha256: str | None = None,
) -> Identity:
    identity: Identity = {
        "restorer": restorer,
        "task": task.name,
        "profile": profile_identity(profile, task),
        "inputs_sha256": inputs_sha256,
        "noise": noise_identity(profile, task),
        "scoring_version": SCORING_VERSION,
        "lpips": lpips,
        "limit": limit,
    }
    corruption = corruption_identity(task)
    if corruption is not None:  # only when present, so the other kinds' digests stay what they were
        identity["corruption"] = corruption
    if restored_sha256 is not None:
        identity["restored_sha256"] = restored_sha256
    return identity


def flatten(identity: Identity, prefix: str = "") -> dict[str, Any]:
    """{'restorer.tile_mode': 'fast', ...}: nested objects become dotted field names."""
    flat: dict[str, Any] = {}
    for key, value in identity.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "arch":  # the architecture is one field, not forty
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differing_fields(old: Identity | None, new: Identity | None) -> list[str]:
    """Dotted names of the fields that differ (both sides' fields, sorted)."""
    a, b = flatten(old or {}), flatten(new or {})
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value)
    return f"{text[:8]}.." if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


_PHRASES = {
    "restorer.weights_sha256": "weights changed",
    "restorer.arch": "architecture changed",
    "inputs_sha256": "input images changed",
    "restored_sha256": "restored images changed",
    "scoring_version": "scoring code changed",
    "corruption.version": "eval input corruption changed",
}


def _phrase(name: str, before: Any, after: Any) -> str:
    if name == "restorer.arch":
        return _PHRASES[name]
    if name in _PHRASES:
        what = "sha256" if name.endswith("sha256") else "version"
        return f"{_PHRASES[name]} ({what} {_short(before)} -> {_short(after)})"
    label = (
        name.removeprefix("restorer.")
        .replace("_", " ")
        .replace(".", " ")
        .replace("self ensemble", "self-ensemble")
    )
    return f"{label} {_short(before)} -> {_short(after)}"


def describe_change(old: Identity | None, new: Identity) -> str:
    """Why a cell is redone, in a few words: 'weights changed (sha256 3f2a1b2c.. -> 91bc0d1e..)'."""
    if not old:
        return "no identity recorded (finished by an older iptbench)"
    a, b = flatten(old), flatten(new)
    names = differing_fields(old, new)
    if "restorer.tile_mode" in names:  # the tile geometry follows the mode: saying the mode is enough
        names = [n for n in names if not n.startswith("restorer.tile.")]
    if "profile.name" in names:  # likewise a profile's channel, crop, grey rule and noise settings
        names = [n for n in names if n == "profile.name" or not n.startswith(("profile.", "noise."))]
    return "; ".join(_phrase(n, a.get(n), b.get(n)) for n in names) or "identity changed"


def default_precision(device: str) -> str:
    """fp32 on CPU (the official code's precision), bf16 on CUDA (tensor cores)."""
    return "bf16" if device == "cuda" else "fp32"


def settings_text(restorer: Identity) -> str:
    """Restorer settings that differ from the defaults, for row labels: 'official tiling, x8, fp16'."""
    if restorer.get("kind") != "ipt":
        return ""
    parts = []
    if restorer.get("tile_mode") == "official":
        parts.append("official tiling")
    elif restorer.get("tile", {}).get("stride_default") is False:
        parts.append(f"stride {restorer['tile']['stride']}")
    if restorer.get("self_ensemble"):
        parts.append("x8")
    device = str(restorer.get("device", "cpu"))
    precision = restorer.get("precision")
    if precision and precision != default_precision(device):
        parts.append(f"{precision} on {device}" if device != "cpu" else str(precision))
    return ", ".join(parts)
