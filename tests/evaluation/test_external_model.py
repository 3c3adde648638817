"""An external network through `--model py:MODULE:FACTORY`, defined here and touching no iptbench file.

The CNN below has three convolutions and two ReLUs and is exactly the identity: the first layer makes
[x, -x], both survive the ReLUs as [relu(x), relu(-x)], and the last layer takes their difference. For SR
it first upscales with MATLAB bicubic, so its rows must equal the `bicubic` baseline's and, on Set5, a
PSNR computed here with NumPy from the image files.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.evaluation.model_specs import parse_model_spec
from iptbench.ops import imresize
from iptbench.tasks import OFFICIAL_TASK_NAMES, get_task

MODULE = Path(__file__).stem  # imported by iptbench from this folder (monkeypatch.syspath_prepend)
GAIN = "IPTBENCH_TEST_CNN_GAIN"  # read by the factory: this module is imported twice (pytest, iptbench)
runner = CliRunner()


class ThreeLayerCNN(nn.Module):
    tasks = OFFICIAL_TASK_NAMES

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.conv3 = nn.Conv2d(6, 3, 3, padding=1)
        eye = torch.eye(3)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2, self.conv3):
                conv.weight.zero_()
                conv.bias.zero_()
            self.conv1.weight[:, :, 1, 1] = torch.cat([eye, -eye])
            self.conv2.weight[:, :, 1, 1] = torch.eye(6)
            self.conv3.weight[:, :, 1, 1] = gain * torch.cat([eye, -eye], dim=1)

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        scale = get_task(task).scale
        if scale > 1:
            x = imresize(x.round().clamp(0, 255).to(torch.uint8), float(scale), mode="matlab_uint8").float()
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


def make_cnn() -> nn.Module:
    return ThreeLayerCNN(float(os.environ.get(GAIN, "1")))


def make_sr2_cnn() -> nn.Module:
    model = make_cnn()
    model.tasks = ("sr-x2",)  # one cell per mini run
    return model


class HalfOnUnitRange(nn.Module):
    """Works on [0, 1] (data_range = 1.0) and halves its input; records the largest value it saw."""

    tasks = ("denoise-30",)
    data_range = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.seen_max = 0.0

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        self.seen_max = max(self.seen_max, float(x.max()))
        return 0.5 * x


def make_unit_range() -> nn.Module:
    return HalfOnUnitRange()


def make_tiled_cnn() -> nn.Module:
    model = make_cnn()
    model.tile_size = 16  # type: ignore[assignment]
    return model


class Brighten:
    """A Restorer of its own (no nn.Module): adds a constant, which is all its identity."""

    name, tasks = "brighten", ("derain",)

    def restore(self, image: torch.Tensor, task: object) -> torch.Tensor:
        return image + 1

    def identity(self) -> dict[str, object]:
        return {"kind": "brighten", "add": 1}


def make_restorer() -> Brighten:
    return Brighten()


def make_junk() -> int:
    return 42


def make_taskless() -> nn.Module:
    return nn.Conv2d(3, 3, 1)


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delenv(GAIN, raising=False)


def _eval(out: Path, *args: str) -> str:
    result = runner.invoke(app, ["eval", "--out", str(out), "--device", "cpu", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _rows(out: Path, name: str = "summary.csv") -> dict[tuple[str, ...], dict[str, str]]:
    with (out / name).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if name == "summary.csv":
        return {(r["model"], r["dataset"], r["task"]): r for r in rows}
    return {(r["model"], r["dataset"], r["task"], r["image"]): r for r in rows}


def test_cnn_on_mini_equals_the_baselines(tmp_path: Path) -> None:
    out = tmp_path / "mini"
    cnn = f"cnn=py:{MODULE}:make_cnn"
    _eval(out, "--suite", "mini", "--model", cnn, "--model", "bicubic", "--model", "input")
    rows = _rows(out)
    for task in OFFICIAL_TASK_NAMES:
        mine = rows[("cnn", "mini", task)]
        theirs = rows[("bicubic" if task.startswith("sr") else "input", "mini", task)]
        assert mine["images"] == theirs["images"] == "6"
        assert (mine["psnr"], mine["ssim"]) == (theirs["psnr"], theirs["ssim"]), task
        assert mine["arch"] == "module"


def _y(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def test_cnn_on_set5_x2_matches_numpy(benchmark_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "set5"
    spec = f"cnn=py:{MODULE}:make_cnn"
    _eval(out, "--suite", "sr", "--datasets", "Set5", "--model", spec, "--data-root", str(benchmark_root))
    rows = _rows(out, "per_image.csv")
    set5 = benchmark_root / "Set5"
    for hr_path in sorted((set5 / "HR").glob("*.png")):
        hr = np.asarray(Image.open(hr_path).convert("RGB"))
        lr = np.asarray(Image.open(set5 / "LR_bicubic" / "X2" / f"{hr_path.stem}x2.png").convert("RGB"))
        up = imresize(torch.from_numpy(lr.copy()).permute(2, 0, 1)[None], 2.0, mode="matlab_uint8")
        sr = up[0].permute(1, 2, 0).numpy()
        hr = hr[: sr.shape[0], : sr.shape[1]]
        diff = (_y(sr) - _y(hr))[2:-2, 2:-2]  # Y, a border of `scale` pixels cropped
        expected = 10 * np.log10(255.0**2 / np.mean(diff**2))
        measured = float(rows[("cnn", "Set5", "sr-x2", hr_path.stem)]["psnr"])
        assert measured == pytest.approx(expected, abs=1e-6)
    assert float(_rows(out)[("cnn", "Set5", "sr-x2")]["psnr"]) == pytest.approx(33.67, abs=0.01)


def test_module_on_unit_range_and_tiled() -> None:
    x = torch.rand(1, 3, 20, 24) * 255
    entry = parse_model_spec(f"py:{MODULE}:make_unit_range", device="cpu")
    assert entry.name == "make_unit_range" and entry.tasks == ("denoise-30",)
    assert entry.identity["data_range"] == 1.0 and entry.identity["kind"] == "module"
    assert torch.allclose(entry(x, get_task("denoise-30")), 0.5 * x, atol=1e-4)
    tiled = parse_model_spec(f"tiled=py:{MODULE}:make_tiled_cnn", device="cpu")
    whole = parse_model_spec(f"py:{MODULE}:make_cnn", device="cpu")
    assert tiled.identity["tile"] == {"size": 16, "mode": "fast"} and whole.identity["tile"] is None
    noisy = torch.rand(1, 3, 37, 45) * 255
    task = get_task("denoise-30")
    assert torch.allclose(tiled(noisy, task), whole(noisy, task), atol=1e-3)  # same up to tile blending
    assert tiled(noisy.round(), get_task("sr-x2")).shape == (1, 3, 74, 90)


def test_factory_returning_a_restorer() -> None:
    entry = parse_model_spec(f"b=py:{MODULE}:make_restorer")
    assert (entry.name, entry.tasks, entry.kind) == ("b", ("derain",), "external")
    assert entry.identity == {"kind": "brighten", "add": 1} and entry.spec == f"py:{MODULE}:make_restorer"
    assert torch.equal(entry(torch.zeros(1, 3, 2, 2), get_task("derain")), torch.ones(1, 3, 2, 2))


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("make_junk", f"py:{MODULE}:make_junk returned int, not a Restorer"),
        ("make_taskless", "Conv2d needs a tasks attribute"),
        ("no_such_factory", f"{MODULE} has no callable 'no_such_factory'"),
    ],
)
def test_bad_factories_are_one_line_errors(tmp_path: Path, factory: str, message: str) -> None:
    with pytest.raises(IptbenchError, match=message):
        parse_model_spec(f"py:{MODULE}:{factory}")
    args = ["eval", "--suite", "mini", "--model", f"x=py:{MODULE}:{factory}", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_import_errors_are_one_line() -> None:
    with pytest.raises(
        IptbenchError, match=r"cannot import 'no_such_pkg_xyz\.net'.*No module named.*PYTHONPATH"
    ):
        parse_model_spec("py:no_such_pkg_xyz.net:build")
    with pytest.raises(IptbenchError, match="not py:MODULE:FACTORY"):
        parse_model_spec("py:just_a_module")
    with pytest.raises(IptbenchError, match=r"unknown model 'srcnn'.*py:MODULE:FACTORY"):
        parse_model_spec("srcnn")
    assert "no_such_pkg_xyz" not in sys.modules


def test_changed_weights_redo_the_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, spec = tmp_path / "run", f"cnn=py:{MODULE}:make_sr2_cnn"
    args = ("--suite", "mini", "--model", spec)
    _eval(out, *args)
    first = _rows(out)[("cnn", "mini", "sr-x2")]
    assert "resuming: 1 finished cell(s)" in _eval(out, *args)  # same weights: reused
    monkeypatch.setenv(GAIN, "0.5")
    output = _eval(out, *args)
    assert "weights changed" in output and "re-evaluating" in output
    second = _rows(out)[("cnn", "mini", "sr-x2")]
    assert float(second["psnr"]) < float(first["psnr"]) - 3  # half the brightness: far worse
    assert second["identity"] != first["identity"]


def test_restore_cli_takes_a_py_model(tmp_path: Path) -> None:
    from iptbench.images import read_image, write_png

    lr = np.random.RandomState(0).randint(0, 256, size=(12, 14, 3)).astype(np.uint8)
    write_png(tmp_path / "in" / "a.png", lr)
    args = ["restore", str(tmp_path / "in"), "-m", f"py:{MODULE}:make_cnn", "-t", "sr-x2"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    expected = imresize(torch.from_numpy(lr).permute(2, 0, 1)[None], 2.0, mode="matlab_uint8")
    assert np.array_equal(read_image(tmp_path / "out" / "a.png"), expected[0].permute(1, 2, 0).numpy())
