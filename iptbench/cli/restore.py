"""`iptbench restore`: run an IPT checkpoint over images of any size and write PNGs."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from iptbench import threads
from iptbench.cli._common import console, err_console, user_errors


def _collect_inputs(inputs: list[Path]) -> list[Path]:
    from iptbench.errors import IptbenchError
    from iptbench.images import is_image_file

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise IptbenchError(f"folder {item} holds no images ({', '.join(('.png', '.jpg', '...'))})")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise IptbenchError(f"input {item} does not exist")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise IptbenchError(f"{stems[f.stem]} and {f} would both be written as {f.stem}.png; rename one")
        stems[f.stem] = f
    return files


def _check_outputs(files: list[Path], output: Path, overwrite: bool) -> None:
    """Before any model work: no output may be an input (even with --overwrite), none may exist silently."""
    from iptbench.io import check_output

    for f in files:
        check_output(output / f"{f.stem}.png", inputs=files, overwrite=overwrite)


def _probe(path: Path) -> tuple[int, int, bool]:
    """(height, width, grayscale) from the header, so sizes are known before any model work."""
    from PIL import Image

    from iptbench.images import read_image

    try:
        with Image.open(path) as img:
            return img.height, img.width, img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L")
    except Exception:
        read_image(path)  # raises ImageReadError with the reason
        raise


def restore_command(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders of images."),
    weights: Path | None = typer.Option(
        None, "--weights", "-w", help="Our .safetensors or an official IPT_*.pt."
    ),
    task: str = typer.Option(
        ..., "--task", "-t", help="sr-x2, sr-x3, sr-x4, derain, denoise-30 or denoise-50."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the PNGs (created)."),
    tile_mode: str = typer.Option("fast", "--tile-mode", help="fast (ours, ~8x fewer windows) or official."),
    window_batch: int = typer.Option(64, "--window-batch", min=1, help="Windows per forward; bounds memory."),
    self_ensemble: bool = typer.Option(False, "--self-ensemble", help="Average the 8 flips/transposes."),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if present)."
    ),
    num_heads: int = typer.Option(12, "--num-heads", min=1, help="Heads assumed for an official .pt file."),
    precision: str | None = typer.Option(
        None, "--precision", help="fp32, bf16 or fp16 (default: fp32 on CPU, bf16 on CUDA)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace PNGs already in OUTPUT (an input is never replaced)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Instead of --weights: any eval --model spec, e.g. py:MODULE:FACTORY."
    ),
) -> None:
    """Restore images with an IPT checkpoint (or any --model); writes OUTPUT/<input name>.png (uint8).

    Example: [bold]iptbench restore photos/ -w ipt_sr2.safetensors -t sr-x2 -o restored/[/]
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from iptbench.devices import choose_device
    from iptbench.errors import IptbenchError
    from iptbench.images import image_to_tensor, read_image, tensor_to_image, write_png
    from iptbench.models import count_windows, load_model, restore
    from iptbench.models.inference import TILE_MODES
    from iptbench.tasks import get_task

    get_task(task)
    if tile_mode not in TILE_MODES:
        raise IptbenchError(f"--tile-mode must be one of {', '.join(TILE_MODES)}, got {tile_mode!r}")
    if window_batch < 1:
        raise IptbenchError(f"--window-batch must be at least 1, got {window_batch}")
    files = _collect_inputs(inputs)
    _check_outputs(files, output, overwrite)
    probes = {f: _probe(f) for f in files}
    dev = choose_device(device)
    from iptbench.models.inference import resolve_precision

    if (weights is None) == (model is None):
        raise IptbenchError("pass either --weights (an IPT checkpoint) or --model SPEC (any restorer)")
    if model is not None:  # through the Restorer protocol, like iptbench eval
        threads.use_idle_cores()  # for a baseline; a network's pass takes all cores (threads.for_network)
        settings = {"tile_mode": tile_mode, "window_batch": window_batch, "self_ensemble": self_ensemble}
        _restore_with_spec(model, files, task, output, device=str(dev), precision=precision, **settings)
        return
    assert weights is not None
    precision = resolve_precision(precision, dev)  # checked before the weights are loaded
    ipt = load_model(weights, device=dev, num_heads=num_heads)
    ipt.task_index(task)  # clear error if the weights lack this task
    total = sum(
        count_windows(ipt, h, w, tile_mode=tile_mode, self_ensemble=self_ensemble)  # type: ignore[arg-type]
        for h, w, _ in probes.values()
    )
    output.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        job = bar.add_task("windows", total=total)
        for f in files:
            if probes[f][2]:
                note = f"note: {f.name} is grayscale; replicated to RGB, output is RGB"
                err_console.print(note, markup=False)
            bar.update(job, description=f.name)
            image = image_to_tensor(read_image(f))
            with threads.for_network():
                out = restore(
                    ipt,
                    image,
                    task,
                    tile_mode=tile_mode,  # type: ignore[arg-type]
                    window_batch=window_batch,
                    self_ensemble=self_ensemble,
                    precision=precision,
                    progress=lambda n: bar.advance(job, n),
                )
            write_png(output / f"{f.stem}.png", tensor_to_image(out.cpu()))
    console.print(
        f"wrote {len(files)} image(s) to {output} ({task}, {tile_mode} tiling, {precision} on {dev.type}, "
        f"{total} windows)",
        markup=False,
    )


def _restore_with_spec(spec: str, files: list[Path], task: str, output: Path, **options: object) -> None:
    """`--model SPEC`: any Restorer (iptbench.models.restorer), one image at a time."""
    from iptbench.errors import IptbenchError
    from iptbench.evaluation.model_specs import parse_model_spec
    from iptbench.images import image_to_tensor, read_image, tensor_to_image, write_png
    from iptbench.tasks import get_task

    entry = parse_model_spec(spec, **options)  # type: ignore[arg-type]
    if not entry.supports(task) or entry.images is not None:
        does = ", ".join(entry.tasks) or "nothing"
        raise IptbenchError(f"{entry.name} does not do {task} (it does: {does})")
    output.mkdir(parents=True, exist_ok=True)
    for f in files:
        with threads.for_network() if entry.runs_a_network else nullcontext():
            out = entry(image_to_tensor(read_image(f)), get_task(task))
        write_png(output / f"{f.stem}.png", tensor_to_image(out.cpu()))
    console.print(f"wrote {len(files)} image(s) to {output} ({task}, {entry.name})", markup=False)


def register(app: typer.Typer) -> None:
    app.command("restore")(user_errors(restore_command))
