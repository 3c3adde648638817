"""The proof of iptbench.tasks' registry: a seventh task, `jpeg-q10`, added from this file alone.

The kind "jpeg" has one degradation function (Pillow JPEG at quality 10, below), the metric profile RGB / no
crop (`denoise`'s settings), and makes its evaluation input from the clean image with that same function.
It is registered for the duration of each test only (fixture), then removed, so other tests never see it.
build-data runs in-process (`--workers 1`), so the registration is the one this process holds; worker
processes get it from the pool initializer, also when they are spawned (a fresh interpreter: tested below).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import pickle
import subprocess
import sys
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
from iptbench.images import write_png
from iptbench.pairs.builder import build
from iptbench.pairs.pair_worker import BuildConfig, make_pairs
from iptbench.pairs.pairfile import open_h5, read_manifest
from iptbench.pairs.sources import generate_images

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


def _pairs(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {f"{t}/{k}": f[t][k][...] for t in f if isinstance(f[t], h5py.Group) for k in f[t]}


def test_registrations_reach_spawned_workers(jpeg_task: registry.Task, tmp_path: Path) -> None:
    """Spawned workers import iptbench afresh: jpeg-q10 reaches them through the pool initializer."""
    sources = generate_images(tmp_path / "imgs", 3, (40, 36), seed=0)
    cfg = BuildConfig(("sr-x2", "jpeg-q10"), patch_size=16, patches_per_image=2)
    build(cfg, sources, tmp_path / "one.h5", workers=1)
    build(cfg, sources, tmp_path / "spawn.h5", workers=2, start_method="spawn")
    one, spawned = _pairs(tmp_path / "one.h5"), _pairs(tmp_path / "spawn.h5")
    assert one.keys() == spawned.keys() and "jpeg-q10/input" in one
    for key in one:
        np.testing.assert_array_equal(one[key], spawned[key], err_msg=key)


def test_registrations_travel_pickled_and_restore(jpeg_task: registry.Task) -> None:
    sent = registry.runtime_registrations(["sr-x2", "jpeg-q10", "derain"])
    assert sent == ((JPEG,), (jpeg_task,))  # the official tasks and built-in kinds every process knows
    assert registry.runtime_registrations(registry.OFFICIAL_TASK_NAMES) == ((), ())
    blob = pickle.dumps(sent)
    registry.unregister_task("jpeg-q10")  # what a spawned worker knows: the built-ins only
    registry.unregister_kind("jpeg")
    registry.restore_registrations(pickle.loads(blob))
    assert registry.get_task("jpeg-q10") == jpeg_task and registry.get_kind("jpeg").corrupt is jpeg_q10
    registry.restore_registrations(sent)  # already known (a forked worker): left as it is


def test_unpicklable_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    local = dataclasses.replace(JPEG, name="jpeg-local", corrupt=lambda clean, task, rng, bank=None: clean)
    registry.register_kind(local)
    try:
        registry.register_task(registry.Task("jpeg-local-q", "jpeg-local", 1, None, registry.next_index()))
        sources = generate_images(tmp_path / "imgs", 2, (32, 32), seed=0)
        cfg = BuildConfig(("jpeg-local-q",), patch_size=16, patches_per_image=1)
        with pytest.raises(
            IptbenchError, match="task kind 'jpeg-local' cannot reach worker processes"
        ) as exc:
            build(cfg, sources, tmp_path / "o.h5", workers=2)
        assert "\n" not in str(exc.value) and "module-level" in str(exc.value)
        build(cfg, sources, tmp_path / "o.h5", workers=1)  # in-process: nothing to pickle
    finally:
        registry.unregister_task("jpeg-local-q")
        registry.unregister_kind("jpeg-local")


def test_rain_streak_bank_is_a_kind_property(tmp_path: Path) -> None:
    """A second rain kind gets the --rain-streaks bank by its flag, not by its name; other kinds never do."""
    rain2 = dataclasses.replace(registry.get_kind("derain"), name="rain2")
    assert rain2.uses_rain_streaks and not registry.get_kind("sr").uses_rain_streaks
    registry.register_kind(rain2)
    try:
        registry.register_task(registry.Task("rain2-a", "rain2", 1, None, registry.next_index()))
        assert registry.uses_rain_streaks(["sr-x2", "rain2-a"]) and not registry.uses_rain_streaks(["sr-x2"])
        streaks = tmp_path / "streaks"
        streaks.mkdir()
        write_png(streaks / "s.png", np.full((40, 40, 3), 50, np.uint8))
        sources = generate_images(tmp_path / "imgs", 2, (40, 40), seed=0)
        cfg = BuildConfig(("rain2-a", "sr-x2"), patch_size=16, patches_per_image=2, rain_streaks=str(streaks))
        build(cfg, sources, tmp_path / "o.h5", workers=1)
        with open_h5(tmp_path / "o.h5") as f:
            assert read_manifest(f)["rain"]["mode"] == "streak-maps"
        pairs = _pairs(tmp_path / "o.h5")
        target = pairs["rain2-a/target"].astype(int)
        np.testing.assert_array_equal(pairs["rain2-a/input"], np.minimum(target + 50, 255))
        no_rain = BuildConfig(("sr-x2",), patch_size=16, patches_per_image=2)
        build(no_rain, sources, tmp_path / "sr.h5", workers=1)
        with open_h5(tmp_path / "sr.h5") as f:
            assert read_manifest(f)["rain"] is None
    finally:
        registry.unregister_task("rain2-a")
        registry.unregister_kind("rain2")


def test_registry_import_stays_light() -> None:
    """iptbench.tasks reads the noise version from iptbench.degradations.noise without loading torch."""
    code = "import sys, iptbench.tasks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
