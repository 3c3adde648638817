"""Report tables from fixed summary.csv files vs golden files (IPTBENCH_UPDATE_GOLDEN=1 refreshes them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iptbench.errors import IptbenchError
from iptbench.report.tables import build_blocks, latex_escape, load_results, render_report

HERE = Path(__file__).parent
RUNS = [HERE / "data" / "run_a", HERE / "data" / "run_b"]
GOLDEN = HERE / "golden"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("IPTBENCH_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


@pytest.mark.parametrize(
    ("fmt", "published", "golden"),
    [
        ("md", True, "report_published.md"),
        ("md", False, "report_measured.md"),
        ("csv", True, "report_published.csv"),
        ("latex", True, "report_published.tex"),
    ],
)
def test_report_matches_golden(fmt: str, published: bool, golden: str) -> None:
    _check_golden(golden, render_report(RUNS, fmt=fmt, published=published))


def test_blocks_follow_paper_order_and_layout() -> None:
    measured, warnings = load_results(RUNS)
    assert not warnings
    blocks = build_blocks(measured, published=True)
    assert [b.task for b in blocks] == ["sr-x2", "sr-x4", "denoise-30", "denoise-50", "derain"]
    sr2 = blocks[0]
    assert sr2.datasets == ["Set5", "Set14"]
    labels = [r.label for r in sr2.rows]
    # published rows first, then measured ones, with IPT's difference right under the IPT row
    assert labels.index("IPT (published)") < labels.index("bicubic") < labels.index("ipt:IPT_sr2")
    delta = sr2.rows[labels.index("ipt:IPT_sr2") + 1]
    assert delta.kind == "delta"
    assert delta.cells == {"Set5": "+0.02", "Set14": "-0.03"}  # 38.391 - 38.37, 34.40 - 34.43
    assert any(n.startswith("Metric profile sr: Y (BT.601 studio)") for n in sr2.notes)


def test_ipt_delta_compares_like_with_like() -> None:
    measured, _ = load_results(RUNS)
    blocks = {b.task: b for b in build_blocks(measured, published=True)}
    # ipt-legacy scores denoising on Y: compared with a Y number, never with an RGB one
    dn30 = blocks["denoise-30"]
    delta = next(r for r in dn30.rows if r.kind == "delta")
    assert delta.cells["CBSD68"] == "+0.06"  # 32.415 - 32.35 (MindSpore, the confirmed Y number)
    assert any("IPT (MindSpore) CBSD68 32.35 (Y)" in n for n in dn30.notes)
    # the RGB-scored `input` row gets no delta; Y-scored published rows are labelled as such
    dn50 = blocks["denoise-50"]
    assert not any(r.kind == "delta" for r in dn50.rows)
    assert "IPT (published, Y)" in [r.label for r in dn50.rows]


def test_unconfirmed_published_numbers_are_flagged() -> None:
    text = render_report(RUNS, published=True)
    assert "41.62 / 0.9880†" in text
    assert "† not confirmed from a primary source." in text


def test_later_folder_wins_with_a_warning(tmp_path: Path) -> None:
    dup = tmp_path / "dup"
    dup.mkdir()
    lines = (RUNS[0] / "summary.csv").read_text().splitlines()
    (dup / "summary.csv").write_text(
        "\n".join([lines[0], lines[1].replace("33.67789021373523", "33.0")]) + "\n"
    )
    measured, warnings = load_results([RUNS[0], dup])
    assert len(warnings) == 1 and "bicubic/Set5/sr-x2" in warnings[0]
    cell = next(m for m in measured if m.model == "bicubic" and m.dataset == "Set5" and m.task == "sr-x2")
    assert cell.psnr == 33.0


def test_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="no summary.csv"):
        render_report([tmp_path])
    with pytest.raises(IptbenchError, match="unknown report format"):
        render_report(RUNS, fmt="html")


def test_latex_escape() -> None:
    assert latex_escape("ipt:IPT_sr2 & 50% †") == r"ipt:IPT\_sr2 \& 50\% $^\dagger$"
