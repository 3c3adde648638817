"""Scoring one restored image under a metric profile (PSNR, SSIM, optional LPIPS), grey images included."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from iptbench.images import is_grey_file
from iptbench.tasks import Task

__all__ = ["Score", "Scorer", "is_grey_file", "profiles_for"]


def profiles_for(tasks: list[Task], profile: str | None) -> dict[str, Any]:
    from iptbench.metrics import default_profile_for, get_profile

    fixed = get_profile(profile) if profile else None
    return {t.name: fixed or default_profile_for(t) for t in tasks}


class Score(NamedTuple):
    psnr: float
    ssim: float
    lpips: float | None
    psnr_replicated: float | None  # grey ground truth under the grey rule: PSNR as IPT computes it


class Scorer:
    """PSNR/SSIM (and LPIPS) of one restored image under a profile; metric time is accounted separately."""

    def __init__(self, lpips: bool) -> None:
        from iptbench import metrics

        self.metrics = metrics
        self.lpips = metrics.Lpips(net="alex") if lpips else None

    def __call__(
        self, restored: torch.Tensor, target: torch.Tensor, task: Task, profile: Any, grey: bool = False
    ) -> Score:
        # One thread: the metrics are chains of small float64 elementwise ops where thread hand-offs cost
        # more than they save (20-70x slower with 2 threads on a busy 2-core machine), and a fixed
        # thread count keeps reductions in one order, so the bytes don't depend on OMP_NUM_THREADS.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._score(restored, target, task, profile, grey)
        finally:
            torch.set_num_threads(threads)

    def _score(
        self, restored: torch.Tensor, target: torch.Tensor, task: Task, profile: Any, grey: bool
    ) -> Score:
        crop, channel = profile.crop_for(task), profile.channel_for(task)
        on_grey = grey and getattr(profile, "grey_target", "replicate") == "grey"
        # Under the grey rule the target keeps one channel; psnr/ssim then score grey values.
        scored = target[:, :1] if on_grey else target
        p = float(self.metrics.psnr(restored, scored, crop=crop, channel=channel)[0])
        s = float(self.metrics.ssim(restored, scored, crop=crop, channel=channel)[0])
        # IPT's published rows replicate a grey image to RGB first: kept so Δ rows compare like with like.
        rep = float(self.metrics.psnr(restored, target, crop=crop, channel=channel)[0]) if on_grey else None
        lp = None
        if self.lpips is not None:
            from iptbench.ops import quantize

            lp = float(self.lpips(quantize(restored.float()), target.float())[0])
        return Score(p, s, lp, rep)
