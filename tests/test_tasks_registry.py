"""The proof of iptbench.tasks' registry: a seventh task, `jpeg-q10`, added from this file alone.

The kind "jpeg" has one degradation function (Pillow JPEG at quality 10, below), the metric profile RGB / no
crop (`denoise`'s settings), and makes its evaluation input from the clean image with that same function.
It is registered for the duration of each test only (fixture), then removed, so other tests never see it.
build-data runs in-process (`--workers 1`), so the registration is the one this process holds; with more
workers it would still reach them on Linux, where the pool forks after it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from iptbench import tasks as registry
from iptbench.benchmarks.registry import BenchmarkItem, load_item
from iptbench.cli import app
from iptbench.errors import IptbenchError
from iptbench.pairs.pair_worker import BuildConfig, make_pairs

MODULE = Path(__file__).stem  # imported by iptbench from this folder for `--model py:MODULE:make_blur`
runner = CliRunner()


def jpeg_q10(
    clean: np.ndarray, task: registry.Task, rng: np.random.Generator, bank: object = None
) -> np.ndarray:
    """Each uint8 H x W x 3 image (or K of them) through Pillow's JPEG encoder at quality 10 and back."""
    batch = clean[None] if clean.ndim == 3 else clean
    out = []
    for image in batch:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=10)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out.append(np.asarray(decoded.convert("RGB")))
    stacked = np.stack(out)
    return stacked[0] if clean.ndim == 3 else stacked


JPEG = registry.TaskKind(
    name="jpeg",
    title="JPEG artifact removal, q = 10 ({name})",
    corrupt=jpeg_q10,
    eval_input="clean",
    profile="denoise",  # RGB, no crop
    metric_column="denoise",
    datasets=("mini",),
)


class BoxBlur(nn.Module):
    """Restores by a fixed filter: a 3 x 3 mean per channel, borders replicated."""

    tasks = ("jpeg-q10",)

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        weight = torch.full((3, 1, 3, 3), 1.0 / 9.0, dtype=x.dtype)
        return nn.functional.conv2d(padded, weight, groups=3)


def make_blur() -> nn.Module:
    return BoxBlur()


@pytest.fixture
def jpeg_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[registry.Task]:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    registry.register_kind(JPEG)
    try:
        task = registry.register_task(registry.Task("jpeg-q10", "jpeg", 1, None, registry.next_index()))
        yield task
    finally:
        registry.unregister_task("jpeg-q10")
        registry.unregister_kind("jpeg")


def test_registry_basics() -> None:
    assert registry.OFFICIAL_TASK_NAMES == ("sr-x2", "sr-x3", "sr-x4", "derain", "denoise-30", "denoise-50")
    assert registry.task_names() == registry.OFFICIAL_TASK_NAMES
    with pytest.raises(IptbenchError, match="unknown task kind 'jpeg'"):
        registry.get_kind("jpeg")
    with pytest.raises(IptbenchError, match="unknown task kind"):
        registry.register_task(registry.Task("blur", "deblur", 1, None, 99))
    with pytest.raises(IptbenchError, match="already registered"):
        registry.register_task(registry.OFFICIAL_TASKS[0])
    stray = registry.Task("blur", "deblur", 1, None, 99)  # never registered: no code path falls back
    with pytest.raises(IptbenchError, match="unknown task kind 'deblur'"):
        make_pairs(np.zeros((8, 8, 3), np.uint8), 0, stray, BuildConfig(("sr-x2",), 4, 1), None)
    with pytest.raises(IptbenchError, match="unknown task kind 'deblur'"):
        load_item(BenchmarkItem("a", Path("a.png")), stray)


def test_jpeg_q10_builds_pairs_and_gets_an_eval_row(jpeg_task: registry.Task, tmp_path: Path) -> None:
    assert registry.task_names()[-1] == "jpeg-q10" and jpeg_task.official_index == 6
    out = tmp_path / "pairs.h5"
    args = ["build-data", "samples", str(out), "--tasks", "jpeg-q10", "--patch-size", "32", "-k", "2"]
    result = runner.invoke(app, [*args, "--limit", "4", "--workers", "1"])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        inputs, targets = f["jpeg-q10"]["input"][...], f["jpeg-q10"]["target"][...]
    assert inputs.shape == targets.shape == (8, 32, 32, 3)
    assert not np.array_equal(inputs, targets)
    np.testing.assert_array_equal(inputs, jpeg_q10(targets, jpeg_task, np.random.default_rng()))

    results = tmp_path / "eval"
    model = f"blur=py:{MODULE}:make_blur"
    result = runner.invoke(
        app, ["eval", "--suite", "mini", "-m", model, "--device", "cpu", "--out", str(results)]
    )
    assert result.exit_code == 0, result.output
    with (results / "summary.csv").open(newline="") as handle:
        rows = {(r["model"], r["dataset"], r["task"]): r for r in csv.DictReader(handle)}
    row = rows[("blur", "mini", "jpeg-q10")]
    assert row["images"] == "6" and row["profile"] == "denoise" and 20 < float(row["psnr"]) < 40
    assert "JPEG artifact removal, q = 10 (jpeg-q10)" in (results / "report.md").read_text()
