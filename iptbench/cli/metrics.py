"""`iptbench metrics GT_DIR RESTORED_DIR`: score a folder of restored images, as with BasicSR's scripts."""

from __future__ import annotations

import csv
import io
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from iptbench.cli._common import console, err_console, print_note, user_errors
from iptbench.errors import IptbenchError

if TYPE_CHECKING:
    from iptbench.metrics.folders import FolderScores
    from iptbench.tasks import Task


class ProfileName(StrEnum):
    sr = "sr"
    denoise = "denoise"
    derain = "derain"
    ipt_legacy = "ipt-legacy"


class Channel(StrEnum):
    y = "y"
    rgb = "rgb"


class LpipsNet(StrEnum):
    alex = "alex"
    vgg = "vgg"


def _own_tasks(profile: str) -> list[Task]:
    """The known tasks whose kind defaults to this profile (iptbench.tasks), in registry order."""
    from iptbench.tasks import TASKS

    return [t for t in TASKS.values() if t.spec.profile == profile]


def _scaled_only(profile: str) -> bool:
    """Whether only scaled kinds default to the profile (sr): its crop rule then needs the scale."""
    own = _own_tasks(profile)
    return bool(own) and all(t.scale > 1 for t in own)


def _profile_task(profile: str, scale: int | None) -> Task:
    """The task a profile is applied to, asked of the registry (iptbench.tasks).

    With --scale N > 1, the known task of that scale (or one of the scaled kind made up for N); otherwise
    the first unscaled task of the kind whose default profile this is, or the first unscaled task when no
    kind defaults to it (ipt-legacy).
    """
    from iptbench.tasks import TASKS, Task

    known = list(TASKS.values())
    if scale is not None and scale > 1:
        at_scale = next((t for t in known if t.scale == scale), None)
        if at_scale is not None:
            return at_scale
        kind = next(t.kind for t in known if t.scale > 1)
        return Task(f"{kind}-x{scale}", kind, scale, None, -1)
    if _scaled_only(profile):
        raise IptbenchError(
            f"--profile {profile} needs --scale N (its border crop equals the scale), or pass --crop"
        )
    unscaled = [t for t in known if t.scale == 1]
    return next((t for t in _own_tasks(profile) if t.scale == 1), unscaled[0])


KNOWN_SCALES = (1, 2, 3, 4)  # the SR tasks' scales; 1 = not super-resolution, no border crop


def resolve_settings(
    profile: str | None, scale: int | None, crop: int | None, channel: str | None
) -> tuple[int, str, str]:
    """(crop, channel, description line) from a profile plus explicit overrides, which always win."""
    if scale is not None and scale < 1:
        raise IptbenchError(f"--scale must be >= 1, got {scale}")
    if scale is not None and scale not in KNOWN_SCALES and crop is None:
        # A profile's crop rule is only defined (and published) for these scales; any other must be said.
        raise IptbenchError(
            f"--scale {scale} is not a scale the metric profiles know (2, 3, 4; 1 = no crop): "
            f"pass --crop N explicitly to score x{scale} results"
        )
    if profile is None and scale is not None and scale > 1:
        profile = _profile_task("", scale).spec.profile  # --scale alone: the scaled kind's own profile
    if profile is None:
        crop_v, channel_v = crop or 0, channel or "y"
        return crop_v, channel_v, f"no profile: {channel_v.upper()} channel, border crop {crop_v} px"
    from iptbench.metrics import get_profile

    prof = get_profile(profile)
    if scale is None and crop is not None and _scaled_only(profile):
        # An explicit crop stands in for the scale; the channel is the one of the profile's own kind.
        crop_v, channel_v = crop, channel or prof.channel_for(_own_tasks(profile)[0].kind)
    else:
        task = _profile_task(profile, scale)
        crop_v = crop if crop is not None else prof.crop_for(task)
        channel_v = channel if channel is not None else prof.channel_for(task)
    overrides = [f"{k} {v}" for k, v in (("crop", crop), ("channel", channel)) if v is not None]
    line = prof.describe()
    if overrides:
        line += f" [overridden: {', '.join(overrides)}]"
    return crop_v, channel_v, line


def _table(scores: FolderScores, gt_dir: Path, restored_dir: Path) -> Table:
    table = Table(title=escape(f"{restored_dir} vs {gt_dir}"), title_justify="left")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    if scores.lpips_net:
        table.add_column(f"LPIPS ({scores.lpips_net})", justify="right")
    rows = [*scores.rows, scores.mean()]
    for i, row in enumerate(rows):
        cells = [escape(row.name), f"{row.psnr:.2f}", f"{row.ssim:.4f}"]
        if scores.lpips_net:
            cells.append(f"{row.lpips:.4f}")
        table.add_row(*cells, style="bold" if i == len(rows) - 1 else None, end_section=i == len(rows) - 2)
    return table


def write_csv(path: Path, scores: FolderScores) -> None:
    """One row per image, full precision (repr of the float), no mean row; written atomically."""
    from iptbench.io import atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)  # csv's own \r\n line ends, as before
    writer.writerow(["image", "psnr", "ssim"] + (["lpips"] if scores.lpips_net else []))
    for row in scores.rows:
        writer.writerow(
            [row.name, repr(row.psnr), repr(row.ssim)] + ([repr(row.lpips)] if scores.lpips_net else [])
        )
    atomic_write_text(path, buffer.getvalue())


@user_errors
def metrics(
    gt_dir: Path = typer.Argument(..., help="Folder of ground-truth images."),
    restored_dir: Path = typer.Argument(
        ..., help="Folder of restored images (names may carry _x4, _SwinIR...)."
    ),
    profile: ProfileName | None = typer.Option(
        None,
        "--profile",
        help="Metric profile; sr = Y channel, crop = scale (default when --scale is given).",
    ),
    scale: int | None = typer.Option(
        None, "--scale", min=1, help="SR scale 2, 3 or 4: the sr profile's border crop (others need --crop)."
    ),
    crop: int | None = typer.Option(
        None, "--crop", min=0, help="Border crop in pixels (overrides the profile)."
    ),
    channel: Channel | None = typer.Option(
        None, "--channel", help="Score on Y or RGB (overrides the profile)."
    ),
    lpips: bool = typer.Option(False, "--lpips", help="Also compute LPIPS (full RGB images, as BasicSR)."),
    lpips_net: LpipsNet = typer.Option(LpipsNet.alex, "--lpips-net", help="LPIPS backbone."),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write per-image scores to this CSV file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --csv file if it exists."),
) -> None:
    """Score RESTORED_DIR against GT_DIR: PSNR / SSIM (and LPIPS) per image and the mean.

    Example: iptbench metrics Set5/HR results/Set5_x4 --profile sr --scale 4 --csv set5_x4.csv
    """
    from rich.progress import Progress

    from iptbench.io import check_output
    from iptbench.metrics.folders import score_folder

    crop_v, channel_v, description = resolve_settings(
        profile.value if profile else None, scale, crop, channel.value if channel else None
    )
    if csv_file is not None:  # before scoring: a refused --csv should not cost the whole run
        from iptbench.images import is_image_file

        inside = [gt_dir / csv_file.name, restored_dir / csv_file.name]
        inputs = [p for p in inside if p.is_file() and is_image_file(p)]
        check_output(csv_file, inputs=inputs, overwrite=overwrite)
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("scoring", total=None)
        scores = score_folder(
            gt_dir,
            restored_dir,
            crop=crop_v,
            channel=channel_v,  # type: ignore[arg-type]
            scale=scale,
            lpips_net=lpips_net.value if lpips else None,
            on_image=lambda _name: bar.advance(task),
        )
    console.print(_table(scores, gt_dir, restored_dir))
    scored = f"scored: {channel_v.upper()} channel, border crop {crop_v} px, {len(scores.rows)} images"
    if scores.lpips_net:
        scored += f"; LPIPS {scores.lpips_net} on uncropped RGB"
    console.print(description, highlight=False, markup=False)  # "[overridden: ...]" is text
    console.print(scored, highlight=False, markup=False)
    if scores.modcropped:
        console.print(
            f"ground truth mod-cropped to x{scale} to match the outputs: {', '.join(scores.modcropped)}",
            highlight=False,
            markup=False,
        )
    if scores.unused:
        names = ", ".join(p.name for p in scores.unused[:8]) + (" ..." if len(scores.unused) > 8 else "")
        print_note(f"ignored {len(scores.unused)} restored file(s) with no match: {names}")
    if csv_file is not None:
        write_csv(csv_file, scores)
        console.print(f"wrote {csv_file}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
