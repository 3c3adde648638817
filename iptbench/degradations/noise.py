"""Gaussian noise, both variants: uint8 for training pairs, float (unrounded) for evaluation.

`add_noise_uint8` corrupts training crops: clean + N(0, sigma^2), clipped to [0, 255] and rounded to uint8
(what the HDF5 pair file stores). `add_noise_float` makes the evaluation inputs, reproducible bit for bit.
For evaluation two conventions exist and they give different numbers:

* literature default (KAIR / SwinIR / Restormer style; profiles `denoise`, `sr`, `derain`): for every image
  a fresh numpy legacy generator seeded with 0 draws N(0, sigma/255) for the H x W x 3 float32 image in
  [0, 1] (RGB order, as KAIR reads it), added in place; the noisy image is neither clipped nor rounded.
  iptbench works on the 0-255 scale, so the result is multiplied by 255 (in float32). A per-image seed
  means the noise does not depend on the order or the subset of images evaluated.
* `ipt-legacy` (the official IPT test code): noise of the same size, but the noisy image is clamped to
  [0, 255] (never rounded). The official code draws from torch's global generator seeded once (so its noise
  depends on the image order); we keep the per-image seed so the legacy profile is reproducible too.

SwinIR adds the same draw to a BGR image; the realisation therefore differs from KAIR's by a channel swap.
iptbench follows KAIR (RGB).
"""

from __future__ import annotations

import hashlib

import numpy as np

from iptbench.degradations.arrays import batched, to_uint8

NOISE_SEED = 0
# Version of the noise-making algorithm (not of its settings): part of every denoising cell's identity, so
# results made with other noise are never reused. Bump it whenever noise_for_profile's output changes.
NOISE_ALGORITHM = "kair-randomstate-float32-v1"


def kair_noisy01(clean: np.ndarray, sigma: float, seed: int = NOISE_SEED) -> np.ndarray:
    """KAIR's float32 noisy image on [0, 1]: `uint2single(img) += normal(0, sigma/255, shape)`, seeded."""
    if clean.dtype != np.uint8 or clean.ndim != 3:
        raise ValueError("kair_noisy01 expects a uint8 H x W x C image")
    noisy = np.float32(clean / 255.0)
    rng = np.random.RandomState(seed)
    # In-place float32 += float64 is KAIR's exact arithmetic (computed in float64, stored as float32).
    noisy += rng.normal(0.0, sigma / 255.0, noisy.shape)
    return noisy


def add_noise_float(
    clean: np.ndarray, sigma: float, *, clip: bool = False, seed: int = NOISE_SEED
) -> np.ndarray:
    """Noisy float32 H x W x 3 image on the 0-255 scale (never rounded; clipped to [0, 255] if `clip`)."""
    noisy = kair_noisy01(clean, sigma, seed) * np.float32(255.0)
    if clip:
        np.clip(noisy, 0.0, 255.0, out=noisy)
    return noisy


def noise_for_profile(clean: np.ndarray, sigma: float, profile: object) -> np.ndarray:
    """Apply the noise settings of a metric profile (`noise_clip`, optional `noise_seed`)."""
    clip = bool(getattr(profile, "noise_clip", False))
    seed = int(getattr(profile, "noise_seed", NOISE_SEED) or NOISE_SEED)
    noisy = add_noise_float(clean, sigma, clip=clip, seed=seed)
    return noisy


def describe_noise(profile: object) -> str:
    clip = bool(getattr(profile, "noise_clip", False))
    seed = int(getattr(profile, "noise_seed", NOISE_SEED) or NOISE_SEED)
    how = "clipped to [0, 255]" if clip else "not clipped"
    return (
        f"float Gaussian noise N(0, sigma) via numpy RandomState({seed}) per image on the [0, 1] RGB image "
        f"(KAIR), scaled to 0-255, {how}, not rounded"
    )


def noise_digest(noisy: np.ndarray) -> str:
    """sha256 of the float32 bytes; recorded so two runs (or machines) can prove they saw the same noise."""
    return hashlib.sha256(np.ascontiguousarray(noisy, dtype=np.float32).tobytes()).hexdigest()


def add_noise_uint8(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """clean + N(0, sigma^2) on the 0-255 scale, clipped to [0, 255] and rounded to uint8."""
    batch, single = batched(clean)
    noise = rng.standard_normal(batch.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    noise += batch
    out = to_uint8(noise)
    return out[0] if single else out
