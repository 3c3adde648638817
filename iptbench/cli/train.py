"""`iptbench train`: multi-task pre-training or single-task fine-tuning of IPT on build-data files.

Every option's default and help come from iptbench.train (TrainConfig, config_file.HELP); `--config`
files use the same names, and only the flags typed on the command line override them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from iptbench.cli._common import console, user_errors
from iptbench.train.config_file import HELP, defaults

D = defaults()  # TrainConfig's defaults: the single source of every default below
_TRAIN_OPTIONS = (
    "out", "model", "tasks", "init", "epochs", "steps", "batch_size", "lr", "lr_schedule", "lr_milestones",
    "lr_gamma", "warmup_steps", "ema", "contrastive", "temperature", "grad_clip", "val", "val_every",
    "data_root", "workers", "seed", "save_every", "log_every", "resume", "device", "fresh_noise", "augment",
    "amp", "channels_last", "compile", "verify_data",
)  # fmt: skip
_PATHS = ("out", "init", "data_root")


def _csv(values: tuple[Any, ...]) -> str:
    return ",".join(str(v) for v in values)


def _given(ctx: typer.Context, data: list[Path] | None, params: dict[str, Any]) -> dict[str, Any]:
    """The settings typed on the command line (not defaults), as TrainConfig field values."""
    from iptbench.train.config_file import coerce

    given: dict[str, Any] = {}
    for name in _TRAIN_OPTIONS:
        source = ctx.get_parameter_source(name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        value = params[name]
        if name in _PATHS and value is not None:
            value = str(value)
        elif name in ("tasks", "lr_milestones", "val"):
            value = coerce(name, value, f"--{name.replace('_', '-')}")
        given[name] = value
    if data:
        given["data"] = tuple(str(p) for p in data)
    return given


def _normalise_tasks(values: dict[str, Any]) -> None:
    from iptbench.errors import IptbenchError
    from iptbench.tasks import parse_tasks

    tasks = values.get("tasks")
    if tasks is None:
        return
    if not tasks:
        raise IptbenchError("--tasks is empty: name at least one task, e.g. --tasks sr-x2")
    chosen = parse_tasks(list(tasks))
    values["tasks"] = None if list(tasks) == ["all"] else tuple(t.name for t in chosen)


def train_command(
    ctx: typer.Context,
    data: list[Path] | None = typer.Argument(None, metavar="DATA.h5", help=HELP["data"], show_default=False),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Read settings from this TOML file; flags given here override it."
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the settings (defaults, --config, flags) as TOML and exit."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help=HELP["out"], show_default=False),
    model: str | None = typer.Option(D["model"], "--model", "-m", help=HELP["model"]),
    tasks: str | None = typer.Option(D["tasks"], "--tasks", "-t", help=HELP["tasks"]),
    init: Path | None = typer.Option(D["init"], "--init", help=HELP["init"]),
    epochs: int | None = typer.Option(D["epochs"], "--epochs", help=HELP["epochs"]),
    steps: int | None = typer.Option(D["steps"], "--steps", help=HELP["steps"]),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", "-b", help=HELP["batch_size"]),
    lr: float | None = typer.Option(D["lr"], "--lr", help=HELP["lr"]),
    lr_schedule: str = typer.Option(D["lr_schedule"], "--lr-schedule", help=HELP["lr_schedule"]),
    lr_milestones: str = typer.Option(
        _csv(D["lr_milestones"]), "--lr-milestones", help=HELP["lr_milestones"]
    ),
    lr_gamma: float = typer.Option(D["lr_gamma"], "--lr-gamma", help=HELP["lr_gamma"]),
    warmup_steps: int = typer.Option(D["warmup_steps"], "--warmup-steps", help=HELP["warmup_steps"]),
    ema: float | None = typer.Option(D["ema"], "--ema", metavar="DECAY", help=HELP["ema"]),
    contrastive: float | None = typer.Option(D["contrastive"], "--contrastive", help=HELP["contrastive"]),
    temperature: float = typer.Option(D["temperature"], "--temperature", help=HELP["temperature"]),
    grad_clip: float = typer.Option(D["grad_clip"], "--grad-clip", help=HELP["grad_clip"]),
    val: str = typer.Option(
        _csv(D["val"]), "--val", metavar="SET[,SET...]", help=HELP["val"], show_default=False
    ),
    val_every: int = typer.Option(D["val_every"], "--val-every", help=HELP["val_every"]),
    data_root: Path | None = typer.Option(D["data_root"], "--data-root", help=HELP["data_root"]),
    workers: int = typer.Option(D["workers"], "--workers", "-j", help=HELP["workers"]),
    seed: int = typer.Option(D["seed"], "--seed", help=HELP["seed"]),
    save_every: int = typer.Option(D["save_every"], "--save-every", help=HELP["save_every"]),
    log_every: int = typer.Option(D["log_every"], "--log-every", help=HELP["log_every"]),
    resume: bool = typer.Option(D["resume"], "--resume/--no-resume", help=HELP["resume"]),
    device: str = typer.Option(D["device"], "--device", help=HELP["device"]),
    fresh_noise: bool = typer.Option(
        D["fresh_noise"], "--fresh-noise/--no-fresh-noise", help=HELP["fresh_noise"]
    ),
    augment: bool = typer.Option(D["augment"], "--augment/--no-augment", help=HELP["augment"]),
    amp: bool = typer.Option(D["amp"], "--amp/--no-amp", help=HELP["amp"]),
    channels_last: bool = typer.Option(
        D["channels_last"], "--channels-last/--no-channels-last", help=HELP["channels_last"]
    ),
    compile: bool = typer.Option(D["compile"], "--compile/--no-compile", help=HELP["compile"]),
    verify_data: bool = typer.Option(D["verify_data"], "--verify-data", help=HELP["verify_data"]),
    stop_at: int | None = typer.Option(
        None,
        "--stop-at",
        help="Save and exit after this global step (>= 1; time-sliced jobs); rerun to continue.",
    ),
) -> None:
    """Pre-train IPT on several tasks (one task per batch, L1 + contrastive) or fine-tune one task.

    Writes OUT/config.json, OUT/config.toml, OUT/log.csv, OUT/last.pt (every --save-every steps), with
    --val OUT/val.csv and OUT/best.safetensors, and at the end OUT/model.safetensors (and
    OUT/model_ema.safetensors with --ema). Several processes: torchrun --nproc-per-node N -m iptbench train.

    Example: [bold]iptbench train pairs.h5 -o runs/tiny -m ipt-tiny --steps 20 -b 4 --val mini[/]

    Example: [bold]iptbench train --config configs/ipt-base-pretrain.toml --batch-size 32[/]

    Example: [bold]iptbench train --print-config > run.toml[/]
    """
    from iptbench.train.config_file import resolve, to_toml

    params = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS}
    given = _given(ctx, data, params)
    if print_config:
        from iptbench.train.config_file import load_toml

        values = {**D, **(load_toml(config) if config else {}), **given}
        _normalise_tasks(values)
        typer.echo(
            to_toml(values, "iptbench train settings (iptbench train --config FILE reads them)"), nl=False
        )
        return
    values = resolve(config, given)
    _normalise_tasks(values)
    _run(values, stop_at)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[what]}"),
        TimeRemainingColumn(),
        console=console,
    )


def _run(values: dict[str, Any], stop_at: int | None) -> None:
    from iptbench.train import ProgressInfo, StartInfo, TrainConfig, train

    cfg = TrainConfig(**values, extra={"command": ["iptbench", *sys.argv[1:]]})
    progress = _progress()
    bar: list[int] = []

    def on_start(info: StartInfo) -> None:
        kind = "fine-tuning" if cfg.init else "pre-training"
        extras = (
            f"; validating on {', '.join(info.val)} every {cfg.val_every} steps" if info.val else ""
        ) + (f"; EMA {info.ema:g}" if info.ema else "")
        console.print(
            f"{kind} {info.model} ({info.num_parameters / 1e6:.2f} M parameters) on {', '.join(info.tasks)}: "
            f"{info.total_steps} steps ({info.steps_per_epoch}/epoch), lr {info.lr:g}, contrastive "
            f"{info.contrastive:g}, {info.device} x {info.world_size}{extras}"
            + (f"; resuming at step {info.start_step}" if info.start_step else ""),
            highlight=False,
        )
        progress.start()
        bar.append(progress.add_task("train", total=info.total_steps, completed=info.start_step, what=""))

    def on_step(p: ProgressInfo) -> None:
        loss = "-" if p.record is None else f"{p.record.loss:.4g}"
        val = "-" if p.val_psnr is None else f"{p.val_psnr:.2f} dB"
        what = f"{p.task:<10} loss {loss}  lr {p.lr:.3g}  {p.patches_per_s:.1f} patches/s  val {val}"
        progress.update(bar[0], completed=p.step, what=what)

    try:
        result = train(cfg, on_start=on_start, on_step=on_step, stop_at=stop_at)
    finally:
        if bar:  # stopping a never-started Progress still prints its blank live area
            progress.stop()
    if not result.is_main:
        return
    _summary(result)


def _summary(result: Any) -> None:
    last = result.final
    summary = f"step {result.step}/{result.total_steps}, epoch {result.epoch}"
    if last is not None:
        summary += f", loss {last.loss:.4g} (l1 {last.l1:.4g}, contrastive {last.contrastive:.4g})"
    if result.best is not None:
        summary += f"; best validation {result.best[1]:.2f} dB at step {result.best[0]} (best.safetensors)"
    if result.model_path is not None:
        ema = f" and {result.ema_path.name}" if result.ema_path is not None else ""
        console.print(f"done: {summary}; weights {result.model_path}{ema}", highlight=False)
    else:
        console.print(
            f"stopped: {summary}; rerun the same command to continue from {result.run_dir / 'last.pt'}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("train")(user_errors(train_command))
