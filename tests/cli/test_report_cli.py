"""`iptbench report` from fixed summary.csv files (the same golden files as tests/report)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from iptbench.cli import app

runner = CliRunner()
REPORT = Path(__file__).parents[1] / "report"
RUNS = [str(REPORT / "data" / "run_a"), str(REPORT / "data" / "run_b")]


def test_report_markdown_to_stdout_matches_golden() -> None:
    result = runner.invoke(app, ["report", *RUNS, "--published"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (REPORT / "golden" / "report_published.md").read_text(encoding="utf-8")


def test_report_to_file_in_each_format(tmp_path: Path) -> None:
    for fmt, golden in (("latex", "report_published.tex"), ("csv", "report_published.csv")):
        target = tmp_path / f"table.{fmt}"
        result = runner.invoke(app, ["report", *RUNS, "--published", "--format", fmt, "-o", str(target)])
        assert result.exit_code == 0, result.output
        assert target.read_text(encoding="utf-8") == (REPORT / "golden" / golden).read_text(encoding="utf-8")


def test_report_without_published_rows() -> None:
    result = runner.invoke(app, ["report", *RUNS])
    assert result.exit_code == 0
    assert "(published)" not in result.stdout and "Δ" not in result.stdout


def test_report_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "error:" in result.output and "no summary.csv" in result.output
    bad = runner.invoke(app, ["report", *RUNS, "--format", "html"])
    assert bad.exit_code == 1 and "unknown report format" in bad.output
