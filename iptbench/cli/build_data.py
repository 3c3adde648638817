"""`iptbench build-data` and the `iptbench data` sub-app (merge, info, preview) for patch-pair HDF5 files."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from iptbench.cli._common import console, err_console, parse_list, print_note, user_errors
from iptbench.errors import IptbenchError

data_app = typer.Typer(
    help="Inspect, merge and preview the HDF5 pair files that build-data writes.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@user_errors
def build_data(
    source: str = typer.Argument(
        ..., help="A folder (searched recursively), a text file with one image path per line, or `samples`."
    ),
    output: Path = typer.Argument(
        ..., help="The HDF5 file to write (built as OUTPUT.partial, renamed at the end)."
    ),
    tasks: str = typer.Option(
        "all", "--tasks", help="Comma-separated: sr-x2,sr-x3,sr-x4,derain,denoise-30,denoise-50, or all."
    ),
    patch_size: int = typer.Option(
        48, "--patch-size", min=1, help="Side of the input patch; the target is patch x scale."
    ),
    patches_per_image: int = typer.Option(
        2, "--patches-per-image", "-k", min=1, help="Random crops per image and task."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Every crop, noise and rain draw derives from (seed, image, task)."
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        "-j",
        min=0,
        help="Worker processes (0: one per CPU core). The result does not depend on it.",
    ),
    compression: str = typer.Option(
        "none", "--compression", help="none (fastest to build and read), gzip (level 1, 29 % smaller) or lzf."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N images of SOURCE."),
    shard: str | None = typer.Option(
        None, "--shard", help="I/N: build the I-th (0-based) of N contiguous slices of the sources."
    ),
    rain_streaks: Path | None = typer.Option(
        None,
        "--rain-streaks",
        help="Folder of rain-streak maps (e.g. RainTrainL rainstreak*.png) to add instead.",
    ),
    max_side: int | None = typer.Option(
        None,
        "--max-side",
        min=1,
        help="Shrink sources whose longer side is above this many pixels (MATLAB bicubic) before "
        "cropping, so that large photos give crops with ImageNet-like texture (e.g. 640). Default: keep.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue OUTPUT.partial (also automatic), or check OUTPUT."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard OUTPUT.partial and replace OUTPUT."),
    commit_every: int = typer.Option(
        0, "--commit-every", min=0, hidden=True, help="Sources per commit (0: every 5 s)."
    ),
) -> None:
    """Turn images into corrupted/clean patch pairs for the six IPT tasks, in one HDF5 file.

    Example: [bold]iptbench build-data samples pairs.h5 --patches-per-image 4[/]

    Ctrl-C, kill or a full disk keep OUTPUT.partial: rerun the same command to resume it.
    """
    from iptbench.pairs.builder import BuildConfig, build, check_build_output
    from iptbench.pairs.sources import parse_shard, resolve_sources
    from iptbench.tasks import parse_tasks

    if resume and overwrite:
        raise IptbenchError("--resume and --overwrite exclude each other: pick one")
    if compression not in ("lzf", "gzip", "none"):
        raise IptbenchError(f"--compression must be lzf, gzip or none, not {compression!r}")
    selected = tuple(t.name for t in parse_tasks(parse_list(tasks, "--tasks", "sr-x2,denoise-30")))
    streaks = _streak_dir(rain_streaks, selected)
    cfg = BuildConfig(selected, patch_size, patches_per_image, seed, compression, streaks, max_side)
    sources = resolve_sources(source)
    if limit is not None:
        sources = sources[:limit]
    check_build_output(output, source, sources, rain_streaks)
    if workers == 0:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    log = _Log()
    with _progress() as progress:
        bar = progress.add_task("sources", total=None, pairs="")
        rate = _Rate()

        def on_start(total: int, done: int) -> None:
            progress.update(bar, total=total, completed=done)

        def on_result(result: Any, pairs: int) -> None:
            if result.reason:
                log.skip(sources[result.index], result.reason)
            progress.update(bar, advance=1, pairs=rate.add(pairs))

        summary = build(
            cfg,
            sources,
            output,
            workers=workers,
            shard=parse_shard(shard),
            resume=resume,
            overwrite=overwrite,
            commit_every=commit_every,
            command=["iptbench", *sys.argv[1:]],
            on_start=on_start,
            on_result=on_result,
            log=lambda msg: print_note(msg, style=""),
        )
    _print_summary(summary, workers)


def _streak_dir(path: Path | None, tasks: tuple[str, ...]) -> str | None:
    if path is None:
        return None
    from iptbench.tasks import uses_rain_streaks

    if not uses_rain_streaks(tasks):
        raise IptbenchError(
            "--rain-streaks only matters with a rain task (derain); add it to --tasks or drop the flag"
        )
    return str(path)


class _Rate:
    """Pairs per second over the last few seconds, for the progress bar."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.pairs = 0

    def add(self, pairs: int) -> str:
        self.pairs += pairs
        dt = time.monotonic() - self.t0
        return f"{self.pairs / dt:,.0f} pairs/s" if dt > 0.2 else ""


class _Log:
    def __init__(self) -> None:
        self.count = 0

    def skip(self, path: str, reason: str) -> None:
        self.count += 1
        print_note(f"skipped {path}: {reason}")


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pairs]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,  # a log file gets no bar (and no blank line when it ends)
    )


def _print_summary(summary: Any, workers: int) -> None:
    from rich.table import Table

    if summary.already_complete:
        console.print(f"{summary.output} is already complete; nothing to do.", markup=False)
    table = Table(title=escape(str(summary.output)), title_justify="left")
    table.add_column("task")
    table.add_column("pairs", justify="right")
    table.add_column("sha256 (content)")
    for t, count in summary.pairs.items():
        table.add_row(t, f"{count:,}", summary.hashes.get(t, "")[:16] + "...")
    console.print(table)
    if summary.already_complete:
        return
    skipped = ", ".join(f"{v} {k}" for k, v in summary.skipped.items() if v) or "none"
    speed = summary.new_pairs / summary.seconds if summary.seconds else 0.0
    resumed = f", resumed at source {summary.resumed_from}" if summary.resumed_from is not None else ""
    console.print(
        f"{summary.used:,} of {summary.sources:,} sources used; skipped: {skipped}. "
        f"{summary.new_pairs:,} pairs in {summary.seconds:.1f} s "
        f"({speed:,.0f} pairs/s, {workers} workers{resumed}).",
        highlight=False,
    )


@data_app.command("merge")
@user_errors
def merge_cmd(
    output: Path = typer.Argument(..., help="The merged file to write."),
    shards: list[Path] = typer.Argument(..., help="Finished shard files (any order; they must not overlap)."),
    copy: bool = typer.Option(
        False, "--copy", help="Copy the pairs instead of linking them (virtual datasets)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Join `build-data --shard I/N` outputs into one file (virtual datasets by default).

    Example: [bold]iptbench data merge imagenet.h5 shard-*.h5[/]
    """
    from iptbench.pairs.h5tools import merge

    manifest = merge(output, list(shards), copy=copy, overwrite=overwrite)
    kind = "copied" if copy else "virtual (keep the shard files next to it)"
    counts = ", ".join(f"{t} {n:,}" for t, n in manifest["counts"].items())
    console.print(f"wrote {output}: {len(shards)} shards, {kind}; pairs: {counts}", markup=False)


@data_app.command("info")
@user_errors
def info_cmd(
    file: Path = typer.Argument(..., help="A build-data HDF5 file."),
    verify: bool = typer.Option(
        False, "--verify", help="Recompute the content hashes from the stored pixels."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Print a build-data file's manifest, pair counts and content hashes.

    Example: [bold]iptbench data info pairs.h5 --verify[/]
    """
    from rich.table import Table

    from iptbench.pairs.h5tools import info
    from iptbench.pairs.h5tools import verify as verify_file

    details = info(file)
    if verify:
        details["verified"] = verify_file(file)
    if as_json:
        console.print_json(json.dumps(details))
        return
    m = details["manifest"]
    state = (
        "complete" if m.get("complete") else f"UNFINISHED (committed up to source {details['next_source']})"
    )
    size = f"{details['bytes'] / 1e6:,.1f} MB"
    console.print(f"[bold]{escape(str(file))}[/]  {size}, {escape(state)}", highlight=False)
    for key in (
        "iptbench_version",
        "created",
        "seed",
        "patch_size",
        "patches_per_image",
        "compression",
        "shard",
    ):
        console.print(f"  {key}: {m.get(key)}", highlight=False, markup=False)
    console.print(
        f"  sources: {details['sources']:,} listed, range {m['source_range']}, {details['used']:,} used",
        highlight=False,
        markup=False,
    )
    if m.get("skipped"):
        console.print(f"  skipped: {m['skipped']}", highlight=False, markup=False)
    if m.get("rain"):
        console.print(f"  rain: {m['rain'].get('mode')}", highlight=False)
    if m.get("command"):
        console.print(f"  command: {' '.join(m['command'])}", highlight=False, markup=False)
    table = Table()
    for col in ("task", "pairs", "input", "target", "storage", "sha256"):
        table.add_column(col)
    if verify:
        table.add_column("verified")
    for t, d in details["tasks"].items():
        row = [t, f"{d['pairs']:,}", "x".join(map(str, d["input"])), "x".join(map(str, d["target"]))]
        row += ["virtual" if d["virtual"] else "stored", (d["sha256"] or "-")[:16]]
        if verify:
            row.append("[green]ok[/]" if details["verified"][t] else "[red]MISMATCH[/]")
        table.add_row(*row)
    console.print(table)
    if verify and not all(details["verified"].values()):
        raise IptbenchError(f"{file}: stored pixels do not match the content hash; rebuild it")


@data_app.command("preview")
@user_errors
def preview_cmd(
    file: Path = typer.Argument(..., help="A build-data HDF5 file."),
    task: str = typer.Option("derain", "--task", help="Which task's pairs to show."),
    n: int = typer.Option(8, "-n", min=1, help="Number of pairs (evenly spaced through the file)."),
    output: Path = typer.Option(Path("preview.png"), "-o", "--output", help="PNG to write."),
    zoom: int = typer.Option(
        0, "--zoom", min=0, max=64, help="Integer enlargement (0: at least 128 px per patch)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the PNG if it exists."),
) -> None:
    """Write a PNG grid of input | target pairs (SR inputs enlarged by pixel repetition).

    Example: [bold]iptbench data preview pairs.h5 --task derain -n 8 -o grid.png[/]
    """
    from iptbench.pairs.h5tools import preview

    path = preview(file, task, n, output, zoom=zoom, overwrite=overwrite)
    console.print(f"wrote {path}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("build-data")(build_data)
    app.add_typer(data_app, name="data")
