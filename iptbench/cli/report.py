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
) -> None:
    """Tables laid out like the papers' (rows = methods, columns = datasets), metric profile under each."""
    from iptbench.evaluation.outputs import atomic_write_text
    from iptbench.report.tables import render_report

    text = render_report(results, fmt=fmt, published=published)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    atomic_write_text(output, text if text.endswith("\n") else text + "\n")
    console.print(f"wrote {output}", highlight=False)
