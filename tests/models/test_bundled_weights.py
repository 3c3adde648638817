"""The weights iptbench ships: present, as the zoo describes them, small, and packaged into the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from iptbench.io import sha256_file
from iptbench.models import load_model, zoo

ROOT = Path(__file__).resolve().parents[2]
# weights/README.md: one fine-tuning per task group, sharing one six-task pre-training
BUNDLED = ("sr2", "sr34", "denoise", "derain")
SIZE_CAP = 40 * 1024 * 1024  # issue #12: at most 40 MB in all


def _entries() -> list[zoo.ZooEntry]:
    return [e for e in zoo.list_zoo() if e.name.startswith("iptbench-")]


def test_every_bundled_model_is_in_the_zoo_with_its_file() -> None:
    assert sorted(e.name for e in _entries()) == sorted(f"iptbench-tiny-{n}" for n in BUNDLED)
    assert sorted(e.name for e in zoo.bundled()) == sorted(e.name for e in _entries())
    total = sum((zoo.bundled_dir() / e.filename).stat().st_size for e in _entries())
    assert total <= SIZE_CAP


@pytest.mark.parametrize("name", [f"iptbench-tiny-{n}" for n in BUNDLED])
def test_bundled_file_matches_its_entry(name: str) -> None:
    entry = zoo.load_zoo()[name]
    path = zoo.bundled_dir() / entry.filename
    assert entry.verified and sha256_file(path) == entry.sha256
    model = load_model(path)
    assert model.tasks == entry.tasks and model.config.name == entry.architecture
    assert all(p.dtype == torch.float32 for p in model.parameters())  # stored fp16, run in fp32
    x = torch.full((1, 3, 48, 48), 128.0)
    with torch.inference_mode():
        out = model(x, entry.tasks[0])
    assert torch.isfinite(out).all()


def test_the_wheel_packs_the_zoo_and_every_bundled_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packed = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    wanted = {"weights/zoo.toml", *(f"weights/{e.filename}" for e in _entries())}
    assert wanted <= set(packed)
    assert all(packed[src] == f"iptbench/_weights/{Path(src).name}" for src in wanted)
    assert all((ROOT / src).is_file() for src in packed)
