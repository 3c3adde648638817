"""`iptbench weights convert|info`: official IPT_*.pt -> our safetensors, and what a weights file holds."""

from __future__ import annotations

from pathlib import Path

import typer

from iptbench.cli._common import console, user_errors

weights_app = typer.Typer(
    help="Convert official IPT checkpoints and inspect weights files.", no_args_is_help=True
)


@weights_app.command("convert")
@user_errors
def convert(
    official: Path = typer.Argument(
        ..., help="Official PyTorch checkpoint (IPT_pretrain.pt, IPT_sr2.pt, ...)."
    ),
    out: Path = typer.Argument(..., help="Output .safetensors file (weights + config + tasks)."),
    num_heads: int = typer.Option(
        12, "--num-heads", help="Attention heads (shapes cannot tell; the paper uses 12)."
    ),
    tasks: str | None = typer.Option(
        None,
        "--tasks",
        help="Comma-separated task names of the file's heads in index order (default: inferred from the "
        "tail scales and the file name; IPT_pretrain.pt -> sr-x2,sr-x3,sr-x4,derain,denoise-30,denoise-50).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Read an official checkpoint (torch.load weights_only), check it strictly, write our format."""
    from iptbench.errors import IptbenchError
    from iptbench.models.checkpoints import convert_official

    if out.exists() and not force:
        raise IptbenchError(f"{out} exists; pass --force to overwrite it")
    if out.suffix.lower() != ".safetensors":
        raise IptbenchError(f"output {out} should end in .safetensors")
    task_list = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    with console.status(f"converting {official.name}"):
        model = convert_official(official, out, num_heads=num_heads, tasks=task_list)
    console.print(
        f"wrote [bold]{out}[/] ({model.num_parameters():,} parameters; tasks {', '.join(model.tasks)}; "
        f"{'with' if model.config.out_proj_bias else 'no'} out_proj.bias)"
    )


@weights_app.command("info")
@user_errors
def info(
    file: Path = typer.Argument(..., help="Our .safetensors file or an official .pt file."),
    num_heads: int = typer.Option(12, "--num-heads", help="Heads assumed for an official .pt file."),
    tasks: str | None = typer.Option(
        None, "--tasks", help="Task names of an official file's heads, as for convert."
    ),
) -> None:
    """Print the config, tasks, parameter count and sha256 of a weights file."""
    from rich.table import Table

    from iptbench.models.checkpoints import checkpoint_info

    task_list = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    ci = checkpoint_info(file, num_heads=num_heads, tasks=task_list)
    cfg = ci.config
    table = Table(title=f"{file.name} ({ci.kind} format)", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("architecture", cfg.name)
    table.add_row("tasks", ", ".join(cfg.tasks))
    table.add_row("parameters", f"{ci.num_parameters:,}")
    for key, value in cfg.to_dict().items():
        if key not in ("tasks", "name"):
            table.add_row(key, str(value))
    table.add_row("embedding dim", str(cfg.embedding_dim))
    for key in ("source", "source_sha256"):
        if key in ci.metadata:
            table.add_row(key, ci.metadata[key])
    console.print(table)
    # Outside the table so it is never folded: people copy it into SHA256SUMS files.
    console.print(f"sha256 {ci.sha256}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
