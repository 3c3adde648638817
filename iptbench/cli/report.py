"""`iptbench report`: merge eval result folders into paper-style tables (md, csv or LaTeX)."""

from __future__ import annotations

from pathlib import Path

import typer

from iptbench.cli._common import console, user_errors


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)


@user_errors
def report_command(
    results: list[Path] = typer.Argument(..., help="One or more folders written by `iptbench eval --out`."),
    fmt: str = typer.Option("md", "--format", "-f", help="md, csv or latex."),
    published: bool = typer.Option(
        False, "--published", help="Add the published rows (IPT, EDSR, RCAN, SwinIR, ...) and IPT's Δ rows."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --output file if it exists."),
    prefer_later: bool = typer.Option(
        False,
        "--prefer-later",
        help="A cell in several folders with different identities: keep the later folder's (else an error).",
    ),
    curves: bool = typer.Option(
        False, "--curves", help="RESULTS are `iptbench train` runs: loss and validation PSNR to the -o PNG."
    ),
) -> None:
    """Tables laid out like the papers' (rows = methods, columns = datasets), metric profile under each.

    Example: [bold]iptbench report results/ --published --format latex -o table.tex[/]
    """
    from iptbench.io import atomic_write_text, check_output
    from iptbench.report.tables import render_report

    if curves:
        _curves(results, output, overwrite)
        return
    if output is not None:  # eval's own files in a results folder are inputs: never written over
        eval_files = ("summary.csv", "per_image.csv", "manifest.json")
        inputs = [*results, *(r / name for r in results if r.is_dir() for name in eval_files)]
        check_output(output, inputs=inputs, overwrite=overwrite)
    text = render_report(results, fmt=fmt, published=published, prefer_later=prefer_later)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    atomic_write_text(output, text if text.endswith("\n") else text + "\n")
    console.print(f"wrote {output}", highlight=False, markup=False)


def _curves(runs: list[Path], output: Path | None, overwrite: bool) -> None:
    """`--curves`: training runs' log.csv / val.csv as one PNG, a panel per task."""
    from iptbench.errors import IptbenchError
    from iptbench.io import check_output
    from iptbench.report.curves import render_curves

    if output is None:
        raise IptbenchError("--curves draws a PNG: give its path with -o curves.png")
    logs = [r / name for r in runs for name in ("log.csv", "val.csv")]
    check_output(output, inputs=[*runs, *logs], overwrite=overwrite)
    render_curves(runs, output)
    console.print(f"wrote {output}", highlight=False, markup=False)
