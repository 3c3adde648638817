"""Report rows say what produced them: identity-checked merges, restorer settings, Δ rows for every IPT."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.evaluation.runner import EvalConfig, run_eval
from iptbench.images import read_image, write_png
from iptbench.report.loading import Measured, load_results
from iptbench.report.tables import build_blocks, render_report

HERE = Path(__file__).parent
LEGACY = [HERE / "data" / "run_a", HERE / "data" / "run_b"]


def _eval(root: Path, out: Path, specs: list[str], **ipt: object) -> None:
    cfg = EvalConfig(suite="sr", data_root=root, out=out, datasets=["Set5"], progress=False)
    run_eval(cfg, [parse_model_spec(s, device="cpu", **ipt) for s in specs])  # type: ignore[arg-type]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    from iptbench.models import create_model, save_model

    path = tmp_path / "w" / "tiny.safetensors"
    path.parent.mkdir()
    save_model(create_model("ipt-tiny", tasks="sr-x2", seed=0), path)
    return path


def test_same_identity_merges_silently_other_identity_is_refused(
    make_root: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_root("Set5")
    a, b = tmp_path / "a", tmp_path / "b"
    _eval(root, a, ["bicubic"])
    _eval(root, b, ["bicubic"])
    measured, warnings = load_results([a, b])
    assert len(measured) == 3 and warnings == []
    other_root = tmp_path / "other"
    shutil.copytree(root, other_root)
    image = other_root / "Set5" / "HR" / "img001.png"
    write_png(image, np.ascontiguousarray(read_image(image)[::-1]))
    c = tmp_path / "c"
    _eval(other_root, c, ["bicubic"])
    with pytest.raises(
        IptbenchError, match=r"bicubic/Set5/sr-x2 \(sr\) is in .* different identities \(inputs_sha256\)"
    ):
        load_results([a, c])
    measured, warnings = load_results([a, c], prefer_later=True)
    assert len(warnings) == 3 and "--prefer-later" in warnings[0]
    assert {m.folder for m in measured} == {str(c)}
    refused = CliRunner().invoke(app, ["report", str(a), str(c)])
    assert refused.exit_code == 1 and "--prefer-later" in refused.output and "inputs_sha256" in refused.output
    kept = CliRunner().invoke(app, ["report", str(a), str(c), "--prefer-later"])
    assert kept.exit_code == 0, kept.output


def test_legacy_summaries_still_merge_with_a_warning() -> None:
    measured, warnings = load_results(LEGACY)
    assert not warnings and all(not m.identity for m in measured)
    # a label starting with "ipt" was the only sign of an IPT model before identities were recorded
    assert {m.model for m in measured if m.is_ipt} == {"ipt:IPT_sr2", "ipt:IPT_denoise30", "ipt:IPT_derain"}


def test_rows_carry_non_default_settings_and_every_ipt_gets_a_delta(
    make_root: Callable[..., Path], tmp_path: Path, tiny: Path
) -> None:
    root = make_root("Set5", size=(24, 30))
    out = tmp_path / "run"
    _eval(root, out, [f"ours=ipt:{tiny}"], tile_mode="official", self_ensemble=True)
    _eval(root, out, [f"plain=ipt:{tiny}"])
    text = render_report([out], published=True)
    assert "| ours (official tiling, x8) |" in text and "| plain |" in text
    assert "| Δ ours (official tiling, x8) vs IPT |" in text and "| Δ plain vs IPT |" in text
    latex = render_report([out], fmt="latex", published=True)
    assert (
        r"ours (official tiling, x8) &" in latex and r"$\Delta$ ours (official tiling, x8) vs IPT &" in latex
    )


def _measured(
    dataset: str, psnr: float, replicated: float | None, arch: str = "ipt", model: str = "m"
) -> Measured:
    return Measured(
        model, dataset, "sr-x2", "sr", 14, psnr, math.nan, "y", 2, "profile sr", 14, replicated, arch
    )


def test_set14_delta_uses_ipts_grey_convention() -> None:
    rows = [
        _measured("Set5", 38.40, None),
        _measured("Set14", 34.30, 34.40),
        _measured("Set14", 30.23, 30.32, "baseline", "b"),
    ]
    block = build_blocks(rows, published=True)[0]
    delta = next(r for r in block.rows if r.kind == "delta")
    assert delta.label == "Δ m vs IPT"
    assert delta.cells == {"Set5": "+0.03", "Set14": "-0.03"}  # 38.40 - 38.37; 34.40 (replicated) - 34.43
    assert any(n.startswith("Δ on Set14 uses IPT's convention for grey images") for n in block.notes)
    assert sum(r.kind == "delta" for r in block.rows) == 1  # the baseline row gets none


def test_rain100l_delta_names_the_mindspore_row() -> None:
    text = render_report(LEGACY, published=True)
    assert "| Δ ipt:IPT_derain vs IPT (MindSpore) | -0.38 |" in text  # 41.70 - 42.08, the confirmed row
