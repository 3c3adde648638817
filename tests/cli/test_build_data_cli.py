"""`iptbench build-data` and `iptbench data merge|info|preview` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from PIL import Image
from typer.testing import CliRunner

from iptbench.cli import app
from iptbench.pairs.sources import generate_images

runner = CliRunner()


def _run(*args: str):  # noqa: ANN202
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result) -> str:  # noqa: ANN001
    assert result.exit_code == 1, result.output
    text = result.stderr if hasattr(result, "stderr") else result.output
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error:"), text
    return " ".join(lines)


def test_build_from_samples_info_preview(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    r = _run("build-data", "samples", out, "-k", "1", "-j", "1", "--tasks", "sr-x4,derain")
    assert r.exit_code == 0, r.output
    assert "sources used; skipped: none" in r.output and "sr-x4" in r.output
    with h5py.File(out, "r") as f:
        m = json.loads(f.attrs["manifest"])
        assert m["tasks"] == ["sr-x4", "derain"] and m["complete"] and m["num_sources"] >= 6
        assert m["command"][0] == "iptbench"  # sys.argv of this process (pytest's, here)
        assert f["derain"]["input"].shape[0] == m["num_sources"]
    r = _run("data", "info", out, "--verify")
    assert r.exit_code == 0 and "complete" in r.output and "ok" in r.output, r.output
    r = _run("data", "info", out, "--json")
    assert json.loads(r.output)["tasks"]["sr-x4"]["target"] == [192, 192, 3]
    r = _run("data", "preview", out, "--task", "derain", "-n", "8", "-o", tmp_path / "grid.png")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "grid.png").size[0] > 0


def test_shards_and_merge(tmp_path: Path) -> None:
    generate_images(tmp_path / "imgs", 5, (64, 64), seed=0)
    common = ["--tasks", "sr-x2,denoise-30", "--patch-size", "16", "-j", "1"]
    assert _run("build-data", tmp_path / "imgs", tmp_path / "all.h5", *common).exit_code == 0
    for i in range(2):
        r = _run("build-data", tmp_path / "imgs", tmp_path / f"s{i}.h5", *common, "--shard", f"{i}/2")
        assert r.exit_code == 0, r.output
    r = _run("data", "merge", tmp_path / "m.h5", tmp_path / "s1.h5", tmp_path / "s0.h5", "--copy")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "all.h5", "r") as a, h5py.File(tmp_path / "m.h5", "r") as b:
        assert a.attrs["sha256_sr-x2"] == b.attrs["sha256_sr-x2"]
        assert a.attrs["sha256_denoise-30"] == b.attrs["sha256_denoise-30"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build-data", "{tmp}/missing", "{tmp}/o.h5"], "not found"),
        (["build-data", "{tmp}/empty", "{tmp}/o.h5"], "no images"),
        (["build-data", "{tmp}/junk", "{tmp}/o.h5", "-j", "1"], "no usable image"),
        (["build-data", "samples", "{tmp}/exists.h5"], "exists: pass --overwrite"),
        (["build-data", "samples", "{tmp}/o.h5", "--resume", "--overwrite"], "exclude each other"),
        (["build-data", "samples", "{tmp}/o.h5", "--compression", "zstd"], "--compression"),
        (["build-data", "samples", "{tmp}/o.h5", "--shard", "3/3"], "--shard"),
        (["build-data", "samples", "{tmp}/o.h5", "--tasks", "sr-x5"], "unknown task"),
        (["build-data", "samples", "{tmp}/o.h5", "--tasks", "sr-x2", "--rain-streaks", "{tmp}"], "derain"),
        (["data", "info", "{tmp}/missing.h5"], "not found"),
        (["data", "info", "{tmp}/exists.h5"], "cannot open"),
        (["data", "merge", "{tmp}/m.h5", "{tmp}/missing.h5"], "not found"),
    ],
)
def test_error_paths_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "exists.h5").write_bytes(b"precious")
    r = _run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert message in _one_line_error(r)
    assert (tmp_path / "exists.h5").read_bytes() == b"precious"
    assert not (tmp_path / "o.h5").exists()
