"""`iptbench datasets list|verify|fetch`: where the benchmark sets are, are they intact, getting them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from iptbench.cli._common import console, err_console, user_errors

if TYPE_CHECKING:
    from iptbench.benchmarks.verify import VerifyReport

datasets_app = typer.Typer(
    name="datasets",
    help="Benchmark test sets (Set5 ... Rain100H): list what is on disk, verify it, fetch it.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

DATA_ROOT_HELP = (
    "Folder holding Set5/, Set14/, ... (default: $IPTBENCH_DATA, else ~/.cache/iptbench/datasets)."
)
_STATE_STYLE = {
    "found": "[green]found[/]",
    "missing": "[red]missing[/]",
    "incomplete": "[yellow]incomplete[/]",
}
_MARK = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]not checked[/]"}


@datasets_app.command("list")
@user_errors
def list_datasets(
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
) -> None:
    """Every registered benchmark: found / missing / incomplete, image counts, path and layout."""
    from iptbench.benchmarks.registry import BENCHMARKS, fetch_command, locate, resolve_data_root

    root = resolve_data_root(data_root)
    table = Table(title=escape(f"Benchmarks under {root}"), title_justify="left")
    for column in ("dataset", "tasks", "state", "images", "path", "layout / how to get it"):
        table.add_column(column, overflow="fold", justify="right" if column == "images" else "left")
    for bench in BENCHMARKS.values():
        status = locate(bench.name, root)
        if status.state == "missing":
            how = escape(fetch_command(bench.name) if bench.fetch else f"by hand: {bench.manual}")
            table.add_row(
                bench.name, ", ".join(bench.kinds), _STATE_STYLE["missing"], f"-/{bench.count}", "", how
            )
            continue
        layout = status.layout_name or "unrecognised"
        if status.problems:
            layout += f" [yellow]({escape(status.problems[0])})[/]"
        table.add_row(
            bench.name,
            ", ".join(bench.kinds),
            _STATE_STYLE[status.state],
            f"{status.found}/{bench.count}",
            escape(str(status.path)),
            layout,
        )
    console.print(table)


def _print_report(report: VerifyReport) -> None:
    table = Table(title=escape(f"{report.name} at {report.path} ({report.layout})"), title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, _MARK[check.ok], escape(check.detail))
    console.print(table)
    problems = report.problems
    for problem in problems[:20]:
        err_console.print(f"  [red]-[/] {escape(problem)}", highlight=False)
    if len(problems) > 20:
        err_console.print(f"  ... and {len(problems) - 20} more", highlight=False)
    if report.ok:
        console.print(f"[green]{report.name}: all checks passed[/]", highlight=False)
    else:
        failed = ", ".join(c.name for c in report.checks if c.ok is False)
        err_console.print(f"[red]{report.name}: {len(problems)} problem(s) ({failed})[/]", highlight=False)


@datasets_app.command("verify")
@user_errors
def verify(
    name: str = typer.Argument(..., help="Benchmark name or alias, e.g. Set5, BSD100, rain100l."),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
) -> None:
    """Counts, every image decodes, LR/HR and rainy/clean sizes agree, sha256 (SHA256SUMS in data root)."""
    from iptbench.benchmarks.verify import verify_dataset

    report = verify_dataset(name, data_root, show_progress=err_console.is_terminal)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@datasets_app.command("fetch")
@user_errors
def fetch(
    name: str = typer.Argument(..., help="Benchmark name or alias."),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_ROOT_HELP),
    url: str | None = typer.Option(None, "--url", help="Download from this URL instead of the registry's."),
    archive: Path | None = typer.Option(
        None,
        "--archive",
        help="Use this local zip/tar instead of downloading (e.g. a copy you fetched by hand).",
    ),
) -> None:
    """Download the canonical archive, check its sha256, extract it safely, arrange and verify the set."""
    from iptbench.benchmarks.fetch import fetch_dataset
    from iptbench.benchmarks.verify import verify_dataset

    result = fetch_dataset(name, data_root, url=url, archive=archive, show_progress=err_console.is_terminal)
    if result.already_present:
        console.print(f"{result.name} is already complete at {result.path}; verifying", markup=False)
    else:
        if result.sha256_known:
            console.print(f"archive sha256 {result.sha256} [green]matches the registry[/]", highlight=False)
        else:
            console.print(
                f"archive sha256 {result.sha256} (no verified hash in the registry; not checked)",
                highlight=False,
            )
        console.print(f"{result.name} extracted to {result.path}", highlight=False, markup=False)
    report = verify_dataset(result.name, data_root, show_progress=err_console.is_terminal)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
