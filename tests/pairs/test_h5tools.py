"""Shard merging (virtual and copied), info, verify and preview of build-data files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from iptbench.errors import IptbenchError
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.h5tools import info, merge, preview, verify
from iptbench.pairs.sources import Shard, generate_images, resolve_sources

CFG = BuildConfig(("sr-x2", "derain", "denoise-30"), patch_size=16, patches_per_image=2, seed=3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("h5tools")
    generate_images(root / "imgs", 7, (64, 48), seed=2)
    (root / "imgs" / "zz_broken.png").write_bytes(b"broken")
    sources = resolve_sources(root / "imgs")
    out = {"single": root / "single.h5"}
    build(CFG, sources, out["single"])
    for i in range(3):
        out[f"shard{i}"] = root / "shards" / f"s{i}.h5"
        build(CFG, sources, out[f"shard{i}"], shard=Shard(i, 3), workers=2 if i == 1 else 1)
    return out


def _content(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        d = {k: f[k][...] for k in ("sources", "status", "digests")}
        for t in CFG.tasks:
            d.update({f"{t}/{k}": f[t][k][...] for k in ("input", "target", "source")})
            d[f"hash/{t}"] = np.array(f.attrs[f"sha256_{t}"])
    return d


@pytest.mark.parametrize("copy", [False, True])
def test_merge_equals_single_build(built: dict[str, Path], tmp_path: Path, copy: bool) -> None:
    out = tmp_path / "merged.h5"
    shards = [built["shard2"], built["shard0"], built["shard1"]]  # any order
    manifest = merge(out, shards, copy=copy)
    a, b = _content(built["single"]), _content(out)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert manifest["skipped"] == {"unreadable": 1, "too small": 0}
    assert manifest["source_range"] == [0, 8] and manifest["complete"]
    assert verify(out) == dict.fromkeys(CFG.tasks, True)
    assert all(d["virtual"] is not copy for d in info(out)["tasks"].values())


def test_virtual_merge_survives_moving_the_folder(built: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "a"
    shutil.copytree(built["shard0"].parent, folder / "shards")
    merge(folder / "m.h5", sorted((folder / "shards").glob("*.h5")))
    moved = tmp_path / "b"
    folder.rename(moved)
    assert verify(moved / "m.h5") == dict.fromkeys(CFG.tasks, True)


def test_merge_refuses_overlap_unfinished_and_mismatch(built: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="overlap"):
        merge(tmp_path / "o.h5", [built["shard0"], built["single"]])
    other = BuildConfig(CFG.tasks, patch_size=16, patches_per_image=2, seed=4)
    odd = tmp_path / "odd.h5"
    build(other, resolve_sources(built["single"].parent / "imgs"), odd, shard=Shard(1, 3))
    with pytest.raises(IptbenchError, match="seed"):
        merge(tmp_path / "o.h5", [built["shard0"], odd])
    unfinished = tmp_path / "u.h5"
    unfinished.write_bytes(built["shard0"].read_bytes())
    with h5py.File(unfinished, "r+") as f:
        f.attrs["manifest"] = f.attrs["manifest"].replace('"complete": true', '"complete": false')
    with pytest.raises(IptbenchError, match="unfinished"):
        merge(tmp_path / "o.h5", [unfinished])
    (tmp_path / "exists.h5").write_bytes(b"x")
    with pytest.raises(IptbenchError, match="exists"):
        merge(tmp_path / "exists.h5", [built["shard0"]])


def test_info_and_verify_detects_tampering(built: dict[str, Path], tmp_path: Path) -> None:
    d = info(built["single"])
    assert d["tasks"]["sr-x2"] == {
        "pairs": 14,
        "input": [16, 16, 3],
        "target": [32, 32, 3],
        "virtual": False,
        "sha256": d["manifest"]["hashes"]["sr-x2"],
    }
    assert d["used"] == 7 and d["sources"] == 8
    bad = tmp_path / "bad.h5"
    bad.write_bytes(built["single"].read_bytes())
    with h5py.File(bad, "r+") as f:
        f["derain"]["target"][3, 0, 0, 0] ^= 1
    assert verify(bad) == {"sr-x2": True, "derain": False, "denoise-30": True}


def test_preview_grid(built: dict[str, Path], tmp_path: Path) -> None:
    png = preview(built["single"], "sr-x2", 5, tmp_path / "g.png")
    w, h = Image.open(png).size
    zoom = 4  # 32 px targets are enlarged to at least 128
    assert (w, h) == ((4 * (2 * 32 + 4 + 4) + 4) * zoom, (2 * (32 + 4) + 4) * zoom)
    with pytest.raises(IptbenchError, match="no sr-x4"):
        preview(built["single"], "sr-x4", 5, tmp_path / "g.png")
