"""`iptbench train`: multi-task pre-training or single-task fine-tuning of IPT on build-data files."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from iptbench.cli._common import console, user_errors


def _milestones(text: str) -> tuple[int, ...]:
    from iptbench.errors import IptbenchError

    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise IptbenchError(
            f"--lr-milestones takes epochs separated by commas (200,250), got {text!r}"
        ) from None


def train_command(
    data: list[Path] = typer.Argument(
        ..., metavar="DATA.h5", help="Build-data files (`iptbench build-data`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (runs/NAME); rerunning continues it."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="ipt-base (default), ipt-small or ipt-tiny; with --init: checked only."
    ),
    tasks: str | None = typer.Option(
        None, "--tasks", "-t", help="Comma list, e.g. sr-x2 (default: every task in the data)."
    ),
    init: Path | None = typer.Option(
        None, "--init", help="Fine-tune from these weights (our .safetensors or an official IPT_*.pt)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Default 300 (pre-training) / 30 (fine-tuning)."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Train this many steps instead of --epochs."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Patches per step, per process."),
    lr: float | None = typer.Option(None, "--lr", help="Default 5e-5 (pre-training) / 2e-5 (fine-tuning)."),
    lr_milestones: str = typer.Option("200", "--lr-milestones", help="Epochs at which lr *= --lr-gamma."),
    lr_gamma: float = typer.Option(0.5, "--lr-gamma"),
    contrastive: float | None = typer.Option(
        None, "--contrastive", help="Weight of the contrastive loss (default 0.1; 0 fine-tuning one task)."
    ),
    temperature: float = typer.Option(0.07, "--temperature", help="Contrastive softmax temperature."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Per-tensor gradient L2 clip; 0 disables."),
    workers: int = typer.Option(2, "--workers", "-j", help="DataLoader worker processes (0: in-process)."),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(1000, "--save-every", help="Steps between last.pt checkpoints."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between log.csv rows."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue the run in --out, or start over."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (torchrun: cuda:LOCAL_RANK)."),
    fresh_noise: bool = typer.Option(
        True, "--fresh-noise/--no-fresh-noise", help="Draw new Gaussian noise for denoise pairs each epoch."
    ),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Random flips/transposes."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast and TF32 on CUDA (CPU is fp32)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
    stop_at: int | None = typer.Option(
        None, "--stop-at", help="Save and exit after this global step (time-sliced jobs); rerun to go on."
    ),
) -> None:
    """Pre-train IPT on several tasks (one task per batch, L1 + contrastive) or fine-tune one task.

    Writes OUT/config.json, OUT/log.csv, OUT/last.pt (every --save-every steps) and, at the end,
    OUT/model.safetensors. Multi-process: torchrun --nproc-per-node N -m iptbench train ...
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from iptbench.tasks import parse_tasks
    from iptbench.train import StartInfo, StepRecord, TrainConfig, train

    cfg = TrainConfig(
        data=tuple(str(p) for p in data),
        out=str(out),
        model=model,
        tasks=tuple(t.name for t in parse_tasks(tasks)) if tasks else None,
        init=str(init) if init else None,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        lr_milestones=_milestones(lr_milestones),
        lr_gamma=lr_gamma,
        contrastive=contrastive,
        temperature=temperature,
        grad_clip=grad_clip,
        workers=workers,
        seed=seed,
        save_every=save_every,
        log_every=log_every,
        resume=resume,
        device=device,
        fresh_noise=fresh_noise,
        augment=augment,
        amp=amp,
        channels_last=channels_last,
        extra={"command": ["iptbench", *sys.argv[1:]]},
    )
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} steps/s  loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
    )
    bar: list[int] = []

    def on_start(info: StartInfo) -> None:
        kind = "fine-tuning" if cfg.init else "pre-training"
        console.print(
            f"{kind} {info.model} ({info.num_parameters / 1e6:.2f} M parameters) on {', '.join(info.tasks)}: "
            f"{info.total_steps} steps ({info.steps_per_epoch}/epoch), lr {info.lr:g}, contrastive "
            f"{info.contrastive:g}, {info.device} x {info.world_size}"
            + (f"; resuming at step {info.start_step}" if info.start_step else "")
        )
        progress.start()
        bar.append(
            progress.add_task("train", total=info.total_steps, completed=info.start_step, rate="-", loss="-")
        )

    def on_step(step: int, record: StepRecord | None, rate: float) -> None:
        loss = "-" if record is None else f"{record.loss:.4g}"
        progress.update(bar[0], completed=step, rate=f"{rate:.2f}", loss=loss)

    try:
        result = train(cfg, on_start=on_start, on_step=on_step, stop_at=stop_at)
    finally:
        if bar:  # stopping a never-started Progress still prints its blank live area
            progress.stop()
    if not result.is_main:
        return
    last = result.final
    summary = f"step {result.step}/{result.total_steps}, epoch {result.epoch}"
    if last is not None:
        summary += f", loss {last.loss:.4g} (l1 {last.l1:.4g}, contrastive {last.contrastive:.4g})"
    if result.model_path is not None:
        console.print(f"done: {summary}; weights {result.model_path}")
    else:
        console.print(
            f"stopped: {summary}; rerun the same command to continue from {result.run_dir / 'last.pt'}"
        )


def register(app: typer.Typer) -> None:
    app.command("train")(user_errors(train_command))
