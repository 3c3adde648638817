"""`iptbench restore`: PNGs out with the input names, clear messages for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.models import create_model, save_model

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_model(create_model("ipt-tiny", tasks="sr-x2,denoise-30", seed=0), path)
    return path


def _images(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    rgb = folder / "colour.png"
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(rgb)
    gray = folder / "gray.jpg"
    Image.fromarray(rng.integers(0, 256, (50, 20), dtype=np.uint8)).save(gray)
    return rgb, gray


def test_restore_writes_pngs(tmp_path: Path, weights: Path) -> None:
    rgb, gray = _images(tmp_path)
    out = tmp_path / "out"
    args = ["restore", str(rgb), str(gray), "--weights", str(weights), "--task", "sr-x2", "-o", str(out)]
    result = runner.invoke(app, [*args, "--window-batch", "2", "--tile-mode", "official"])
    assert result.exit_code == 0, result.output
    assert "grayscale" in result.output
    assert Image.open(out / "colour.png").size == (106, 74)
    assert Image.open(out / "gray.png").size == (40, 100)
    first = (out / "colour.png").read_bytes()
    refused = runner.invoke(app, args)  # existing PNGs are only replaced with --overwrite
    assert refused.exit_code == 1 and "pass --overwrite" in refused.output
    assert (out / "colour.png").read_bytes() == first
    again = runner.invoke(app, [*args, "--overwrite"])  # fast mode into the same folder
    assert again.exit_code == 0, again.output
    assert Image.open(out / "colour.png").size == (106, 74)
    assert (out / "colour.png").read_bytes() != first  # the tiling differs, the file was rewritten


def test_restore_folder_input_denoise(tmp_path: Path, weights: Path) -> None:
    _images(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["restore", str(tmp_path), "-w", str(weights), "-t", "denoise-30", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["colour.png", "gray.png"]
    assert Image.open(out / "gray.png").mode == "RGB"


def test_restore_bad_input(tmp_path: Path, weights: Path) -> None:
    rgb, _ = _images(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = str(tmp_path / "out")
    bad = runner.invoke(app, ["restore", str(broken), "-w", str(weights), "-t", "sr-x2", "-o", out])
    assert bad.exit_code == 1 and "cannot read image" in bad.output and "broken.png" in bad.output
    no_head = runner.invoke(app, ["restore", str(rgb), "-w", str(weights), "-t", "derain", "-o", out])
    assert (
        no_head.exit_code == 1
        and "no 'derain' head" in no_head.output
        and "sr-x2, denoise-30" in no_head.output
    )
    unknown = runner.invoke(app, ["restore", str(rgb), "-w", str(weights), "-t", "sr-x5", "-o", out])
    assert unknown.exit_code == 1 and "unknown task" in unknown.output
    mode = runner.invoke(
        app, ["restore", str(rgb), "-w", str(weights), "-t", "sr-x2", "-o", out, "--tile-mode", "x"]
    )
    assert mode.exit_code == 1 and "--tile-mode" in mode.output
    missing = runner.invoke(
        app, ["restore", str(rgb), "-w", str(tmp_path / "none.safetensors"), "-t", "sr-x2", "-o", out]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
