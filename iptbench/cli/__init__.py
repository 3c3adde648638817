"""The `iptbench` command line: a thin layer that parses, calls the library, and prints."""

from __future__ import annotations

import sys

import typer

from iptbench._version import __version__
from iptbench.cli import (
    build_data,
    datasets,
    evaluate,
    lpips_weights,
    metrics,
    report,
    restore,
    train,
    weights,
)
from iptbench.cli._common import err_console
from iptbench.errors import IptbenchError

app = typer.Typer(
    name="iptbench",
    help="The Image Processing Transformer (IPT) end to end: data, models, checkpoints and honest numbers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        print(f"iptbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """The Image Processing Transformer (IPT) end to end: data, models, checkpoints and honest numbers."""


for _module in (metrics, lpips_weights, datasets, build_data, weights, restore, evaluate, report, train):
    _module.register(app)


def main() -> None:
    try:
        app()
    except IptbenchError as exc:  # backstop for errors raised outside a command body
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
