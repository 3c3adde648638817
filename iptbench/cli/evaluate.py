"""`iptbench eval`: score models on the benchmark suites with the literature's exact protocol."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import typer
from rich.table import Table

from iptbench.cli._common import console, err_console, user_errors

SUITE_HELP = "Benchmark suite: sr (Set5, Set14, B100, Urban100, +Manga109), denoise (CBSD68, Urban100, "
SUITE_HELP += "+Kodak24, +McMaster at sigma 30/50), derain (Rain100L, +Rain100H), all (those three), or mini "
SUITE_HELP += "(six bundled photos at all six tasks: no download). '+' = when present."
MODEL_HELP = (
    "Model to score (repeatable): bicubic, input, nlm, tv, wavelet, bm3d, ipt:PATH (ours or an official "
    "IPT_*.pt) or a checkpoint path; LABEL=SPEC names the row; NAME=images:DIR scores restored images "
    "another method produced (DIR/Set5/x2/, DIR/Set5_x2/, ...); py:MODULE:FACTORY runs any network "
    "FACTORY() returns (a Restorer, or an nn.Module with tasks and forward(x, task) on 0-255)."
)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


@user_errors
def eval_command(
    model: list[str] | None = typer.Option(
        None, "--model", "-m", help=MODEL_HELP + " Default: the bundled IPT, bicubic, input and nlm."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Result folder; a rerun resumes finished cells (default: a new results/ folder).",
    ),
    suite: str = typer.Option("all", "--suite", help=SUITE_HELP),
    datasets: str | None = typer.Option(
        None, "--datasets", help="Only these datasets of the suite: Set5,Set14."
    ),
    data_root: str | None = typer.Option(
        None, "--data-root", help="Folder holding Set5/, CBSD68/, ... (default: $IPTBENCH_DATA)."
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="Metric profile for every task (sr, denoise, derain, ipt-legacy); "
        "default: each task's literature profile.",
    ),
    lpips: bool = typer.Option(False, "--lpips", help="Also compute LPIPS (AlexNet; needs its weights)."),
    save_images: bool = typer.Option(False, "--save-images", help="Write every restored image as PNG."),
    self_ensemble: bool = typer.Option(False, "--self-ensemble", help="x8 self-ensemble for IPT models."),
    strict: bool = typer.Option(False, "--strict", help="Fail when a dataset of the suite is missing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo cells already finished in --out."),
    tile_mode: str = typer.Option("fast", "--tile-mode", help="IPT tiling: fast or official (forward_chop)."),
    window_batch: int = typer.Option(64, "--window-batch", min=1, help="IPT windows per forward pass."),
    device: str | None = typer.Option(
        None, "--device", help="Device for IPT models (cpu, cuda); default: auto."
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="IPT inference precision: fp32, bf16 or fp16 (default: fp32 on CPU, bf16 on CUDA).",
    ),
    allow_partial: bool = typer.Option(
        False,
        "--allow-partial",
        help="Score an images: folder that lacks some images (the cell says how many).",
    ),
) -> None:
    """Score models on the benchmark suites; writes summary.csv, per_image.csv, report.md, manifest.json.

    Example: [bold]iptbench eval -m bicubic -m ipt:ipt_sr2.safetensors --suite sr --datasets Set5,Set14 -o results/[/]
    """  # noqa: E501 - one example line, so it can be copied whole
    from iptbench.cli._common import parse_list
    from iptbench.errors import IptbenchError
    from iptbench.evaluation.model_specs import default_model_specs, parse_model_specs
    from iptbench.evaluation.planning import resolve_eval_data_root
    from iptbench.evaluation.runner import EvalConfig, run_eval
    from iptbench.evaluation.suites import SUITE_NAMES
    from iptbench.report.tables import write_eval_report

    if suite not in SUITE_NAMES:
        raise IptbenchError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITE_NAMES)}")
    if tile_mode not in ("fast", "official"):
        raise IptbenchError(f"--tile-mode must be fast or official, not {tile_mode!r}")
    if precision is not None:  # checked even when no IPT model would use it
        from iptbench.models.inference import resolve_precision

        resolve_precision(precision, "cpu")
    if profile is not None:
        from iptbench.metrics import get_profile

        get_profile(profile)  # fail before loading any model
    root = resolve_eval_data_root(data_root)  # before loading any model: an empty value is an error
    out = out or _new_results_folder(suite)
    restorers = parse_model_specs(
        model or default_model_specs(),
        device=device,
        tile_mode=tile_mode,
        window_batch=window_batch,
        self_ensemble=self_ensemble,
        precision=precision,
    )
    config = EvalConfig(
        suite=suite,
        data_root=root,
        out=out,
        datasets=parse_list(datasets, "--datasets", "Set5,Set14"),
        profile=profile,
        lpips=lpips,
        save_images=save_images,
        strict=strict,
        overwrite=overwrite,
        allow_partial=allow_partial,
        progress=err_console.is_terminal,  # a bar's last frame would be a stray line in a log
    )
    from iptbench import threads

    threads.use_idle_cores()
    result = run_eval(config, restorers, console=err_console)
    if int(os.environ.get("RANK", "0") or 0) != 0:  # torchrun: rank 0 reports
        return
    write_eval_report(out, result.missing)  # the report layer renders report.md, never the eval runner
    _print_summary(out, {(m, d, t) for m, d, t in result.ran + result.resumed})
    if result.errors:
        err_console.print(
            f"[red]{len(result.errors)} broken image(s)[/] listed in {out / 'broken_images.csv'}"
        )
    for miss in result.missing:
        fetch = f"; fetch it with `{miss.fetch_command}`" if miss.fetch_command else ""
        err_console.print(f"[yellow]missing:[/] {miss.name} ({miss.state}){fetch}", highlight=False)
    console.print(
        f"results in {out}: summary.csv, per_image.csv, report.md, manifest.json",
        highlight=False,
        markup=False,
    )


def _new_results_folder(suite: str) -> Path:
    """results/SUITE-YYYYmmdd-HHMMSS (a suffix when two runs start in the same second): never a rerun."""
    import time

    base = Path("results") / f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _print_summary(out: Path, cells: set[tuple[str, str, str]]) -> None:
    path = out / "summary.csv"
    if not path.is_file():
        return
    table = Table(title="iptbench eval", title_justify="left")
    for column in ("model", "dataset", "task", "profile", "images", "PSNR", "SSIM", "s/img"):
        table.add_column(column, justify="right" if column in ("images", "PSNR", "SSIM", "s/img") else "left")
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if (row["model"], row["dataset"], row["task"]) not in cells:
                continue
            table.add_row(
                row["model"],
                row["dataset"],
                row["task"],
                row["profile"],
                row["images"],
                f"{float(row['psnr']):.2f}",
                f"{float(row['ssim']):.4f}",
                f"{float(row['seconds']):.3f}",
            )
    if table.row_count:
        console.print(table)
