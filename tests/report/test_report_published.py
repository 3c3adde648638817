"""The packaged published numbers: well-formed, sourced, and honest about their protocol."""

from __future__ import annotations

from iptbench.report.published import published_for, published_rows
from iptbench.tasks import OFFICIAL_TASK_NAMES


def test_rows_are_well_formed() -> None:
    rows = published_rows()
    assert len(rows) > 100
    seen = set()
    for r in rows:
        assert r.task in OFFICIAL_TASK_NAMES
        assert r.channel in ("y", "rgb")
        assert r.source and r.table and r.protocol
        assert 10 < r.psnr < 50
        assert r.ssim is None or 0 < r.ssim < 1
        key = (r.method, r.task, r.dataset, r.channel)
        assert key not in seen, key
        seen.add(key)


def test_issue_methods_are_present() -> None:
    methods = {(r.method, r.task.split("-")[0]) for r in published_rows()}
    for m in ("Bicubic", "EDSR", "RDN", "RCAN", "SwinIR", "IPT"):
        assert (m, "sr") in methods
    for m in ("CBM3D", "DnCNN", "FFDNet", "SwinIR", "IPT"):
        assert (m, "denoise") in methods
    for m in ("PReNet", "RCDNet", "IPT"):
        assert (m, "derain") in methods


def test_ipt_protocol_is_recorded() -> None:
    # IPT's code scores denoising on Y; the denoising literature on RGB.
    ipt = [r for r in published_for("denoise-50") if r.method == "IPT"]
    assert ipt and all(r.channel == "y" for r in ipt)
    swinir = [r for r in published_for("denoise-50") if r.method == "SwinIR"]
    assert swinir and all(r.channel == "rgb" for r in swinir)
    # the IPT code computes no SSIM, so no SSIM may be attributed to it for SR
    assert all(r.ssim is None for r in published_for("sr-x2") if r.method == "IPT")


def test_known_values_and_unconfirmed_marking() -> None:
    rows = {(r.method, r.task, r.dataset): r for r in published_rows()}
    assert rows[("IPT", "sr-x2", "Set5")].psnr == 38.37
    assert rows[("Bicubic", "sr-x4", "Set5")].ssim == 0.8104
    assert rows[("IPT", "denoise-50", "CBSD68")].confirmed
    assert not rows[("IPT", "derain", "Rain100L")].confirmed  # Papers with Code only
    assert rows[("IPT (MindSpore)", "derain", "Rain100L")].confirmed
