"""Placeholder until this subcommand's owner lands it."""

import typer


def register(app: typer.Typer) -> None:
    return None
