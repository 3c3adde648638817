"""`iptbench weights`: the zoo (list, verify, fetch), official IPT_*.pt -> our safetensors, and file info."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from iptbench.cli._common import console, parse_list, user_errors

weights_app = typer.Typer(
    help="Convert official IPT checkpoints and inspect weights files.", no_args_is_help=True
)


@weights_app.command("convert")
@user_errors
def convert(
    official: Path = typer.Argument(
        ..., help="Official PyTorch checkpoint (IPT_pretrain.pt, IPT_sr2.pt, ...) or our .safetensors."
    ),
    out: Path = typer.Argument(..., help="Output .safetensors file (weights + config + tasks)."),
    num_heads: int = typer.Option(
        12, "--num-heads", min=1, help="Attention heads (shapes cannot tell; the paper uses 12)."
    ),
    tasks: str | None = typer.Option(
        None,
        "--tasks",
        help="Comma-separated task names of the file's heads in index order (default: inferred from the "
        "tail scales and the file name; IPT_pretrain.pt -> sr-x2,sr-x3,sr-x4,derain,denoise-30,denoise-50).",
    ),
    force: bool = typer.Option(False, "--overwrite", "--force", help="Replace OUT if it exists."),
    half: bool = typer.Option(
        False, "--half", help="Store the weights in float16 (half the size; loading casts to float32)."
    ),
) -> None:
    """Read an official checkpoint (torch.load weights_only) or ours, check it strictly, write our format.

    Example: [bold]iptbench weights convert IPT_sr2.pt ipt_sr2.safetensors[/]
    """
    import torch

    from iptbench.errors import IptbenchError
    from iptbench.io import check_output
    from iptbench.models.checkpoints import convert_weights

    check_output(out, inputs=[official], overwrite=force, flag="--overwrite (or --force)")
    if out.suffix.lower() != ".safetensors":
        raise IptbenchError(f"output {out} should end in .safetensors")
    task_list = parse_list(tasks, "--tasks", "sr-x2")
    with console.status(f"converting {escape(official.name)}"):
        dtype = torch.float16 if half else None
        model = convert_weights(official, out, num_heads=num_heads, tasks=task_list, dtype=dtype)
    console.print(
        f"wrote [bold]{escape(str(out))}[/] ({model.num_parameters():,} parameters; "
        f"tasks {', '.join(model.tasks)}; "
        f"{'with' if model.config.out_proj_bias else 'no'} out_proj.bias)"
    )


@weights_app.command("info")
@user_errors
def info(
    file: Path = typer.Argument(..., help="Our .safetensors file or an official .pt file."),
    num_heads: int = typer.Option(12, "--num-heads", min=1, help="Heads assumed for an official .pt file."),
    tasks: str | None = typer.Option(
        None, "--tasks", help="Task names of an official file's heads, as for convert."
    ),
) -> None:
    """Print the config, tasks, parameter count and sha256 of a weights file."""
    from rich.table import Table

    from iptbench.models.checkpoints import checkpoint_info

    task_list = parse_list(tasks, "--tasks", "sr-x2")
    ci = checkpoint_info(file, num_heads=num_heads, tasks=task_list)
    cfg = ci.config
    table = Table(title=escape(f"{file.name} ({ci.kind} format)"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("architecture", cfg.name)
    table.add_row("tasks", ", ".join(cfg.tasks))
    table.add_row("parameters", f"{ci.num_parameters:,}")
    for key, value in cfg.to_dict().items():
        if key not in ("tasks", "name"):
            table.add_row(key, escape(str(value)))
    table.add_row("embedding dim", str(cfg.embedding_dim))
    for key in ("source", "source_sha256"):
        if key in ci.metadata:
            table.add_row(key, escape(ci.metadata[key]))
    console.print(table)
    # Outside the table so it is never folded: people copy it into SHA256SUMS files.
    console.print(f"sha256 {ci.sha256}", soft_wrap=True, highlight=False)


@weights_app.command("list")
@user_errors
def list_command() -> None:
    """Show the zoo (weights/zoo.toml): every named model, its tasks, and whether its file is present."""
    from rich.table import Table

    from iptbench.models import zoo

    table = Table(title="iptbench weights zoo")
    for column in ("name", "architecture", "tasks", "file", "present", "sha256", "training data"):
        table.add_column(column, overflow="fold")
    for entry in zoo.list_zoo():
        path = zoo.find(entry)
        table.add_row(
            entry.name,
            entry.architecture,
            ", ".join(entry.tasks),
            entry.filename,
            str(path) if path else "no",
            entry.sha256[:12] + ".." if entry.verified else "never verified",
            entry.data_licence,
        )
    console.print(table)


@weights_app.command("verify")
@user_errors
def verify_command() -> None:
    """Check the sha256 of every zoo file that is present; exit 1 when one does not match."""
    from iptbench.errors import IptbenchError
    from iptbench.models import zoo

    bad: list[str] = []
    present = 0
    for entry in zoo.list_zoo():
        path = zoo.find(entry)
        if path is None:
            continue
        present += 1
        verdict = zoo.verify(entry, path)
        status = {True: "ok", False: "MISMATCH", None: "present, no sha256 to check against"}[verdict]
        console.print(f"{entry.name}: {path}: {status}", markup=False, highlight=False)
        if verdict is False:
            bad.append(entry.name)
    if not present:
        raise IptbenchError("no zoo file is on disk; `iptbench weights list` says what to put where")
    if bad:
        raise IptbenchError(f"sha256 mismatch: {', '.join(bad)}; delete the file(s) and fetch them again")


@weights_app.command("fetch")
@user_errors
def fetch_command(
    name: str = typer.Argument(..., help="A zoo name (`iptbench weights list`)."),
    dest: Path | None = typer.Option(
        None, "--dest", help="Folder to write to (default: ~/.cache/iptbench/weights)."
    ),
) -> None:
    """Download a zoo file, check its sha256, and move it into place (nothing is kept on a mismatch)."""
    from iptbench.errors import IptbenchError
    from iptbench.models import zoo

    if name not in {e.name for e in zoo.list_zoo()}:
        names = ", ".join(e.name for e in zoo.list_zoo())
        raise IptbenchError(f"{name!r} is not in the zoo; known: {names}")
    entry = zoo.load_zoo()[name]
    present = zoo.find(entry)
    if present is not None and zoo.verify(entry, present) is not False:
        console.print(f"{name}: already present at {present}", markup=False, highlight=False)
        return
    path = zoo.fetch(name, dest)
    console.print(f"{name}: wrote {path} (sha256 checked)", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
