"""The official IPT checkpoints by name, found on disk (they cannot be fetched by a script).

The released PyTorch files live in one Google Drive folder linked from huawei-noah/Pretrained-IPT's
readme; Drive folders have no stable per-file URLs, so iptbench never downloads them. A zoo name resolves
to the first match of its file name (the official ``.pt`` or a converted ``.safetensors`` with the same
stem) in: ``$IPTBENCH_WEIGHTS`` (``os.pathsep``-separated folders), ``./weights``, and
``~/.cache/iptbench/weights``. A known name that is not on disk is a one-line error saying what to put where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from iptbench.errors import IptbenchError

OFFICIAL_FOLDER = "https://drive.google.com/drive/folders/1MVSdUX0YBExauG0fFz4ANiWTrq9xZEj7"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    filename: str
    tasks: tuple[str, ...]
    note: str


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "ipt-pretrain",
            "IPT_pretrain.pt",
            ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50"),
            "ImageNet multi-task pre-training, six heads/tails (num_queries 6)",
        ),
        ZooEntry("ipt-sr2", "IPT_sr2.pt", ("sr-x2",), "fine-tuned for x2 super-resolution"),
        ZooEntry("ipt-sr3", "IPT_sr3.pt", ("sr-x3",), "fine-tuned for x3 super-resolution (name inferred)"),
        ZooEntry("ipt-sr4", "IPT_sr4.pt", ("sr-x4",), "fine-tuned for x4 super-resolution"),
        ZooEntry("ipt-denoise30", "IPT_denoise30.pt", ("denoise-30",), "fine-tuned for sigma 30 denoising"),
        ZooEntry("ipt-denoise50", "IPT_denoise50.pt", ("denoise-50",), "fine-tuned for sigma 50 denoising"),
        ZooEntry("ipt-derain", "IPT_derain.pt", ("derain",), "fine-tuned for deraining (Rain100L)"),
    )
}


def search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("IPTBENCH_WEIGHTS", "").split(os.pathsep) if p]
    dirs += [Path("weights"), Path.home() / ".cache" / "iptbench" / "weights"]
    return dirs


def list_zoo() -> list[ZooEntry]:
    return list(ZOO.values())


def find(entry: ZooEntry) -> Path | None:
    stem = Path(entry.filename).stem
    for folder in search_dirs():
        for candidate in (folder / entry.filename, folder / f"{stem}.safetensors"):
            if candidate.is_file():
                return candidate
    return None


def resolve(name: str) -> Path:
    """Zoo name -> checkpoint path on disk. KeyError for names that are not in the zoo."""
    entry = ZOO[name]
    path = find(entry)
    if path is None:
        where = search_dirs()[0] if os.environ.get("IPTBENCH_WEIGHTS") else Path("weights")
        raise IptbenchError(
            f"{entry.name}: {entry.filename} is not on disk; download it from the official folder "
            f"{OFFICIAL_FOLDER} and put it in {where.resolve()} (or set IPTBENCH_WEIGHTS)"
        )
    return path
