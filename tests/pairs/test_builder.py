"""build-data's builder: determinism, resumability after kill -9, bad input, exact corruptions."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from iptbench.errors import IptbenchError
from iptbench.ops import imresize, quantize
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.h5tools import verify
from iptbench.pairs.pairfile import PairWriter
from iptbench.pairs.sources import generate_images, resolve_sources
from iptbench.tasks import OFFICIAL_TASK_NAMES

CFG = BuildConfig(OFFICIAL_TASK_NAMES, patch_size=16, patches_per_image=3, seed=7)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    generate_images(root / "jpg", 6, (96, 80), seed=0)
    generate_images(root / "png", 4, (72, 90), seed=1, suffix=".png")
    return root


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    build(CFG, resolve_sources(folder), out, workers=1)
    return out


def _datasets(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"sources": f["sources"][...], "status": f["status"][...], "digests": f["digests"][...]}
        for t in f.keys():
            if isinstance(f[t], h5py.Group):
                out.update({f"{t}/{k}": f[t][k][...] for k in ("input", "target", "source")})
        out["hashes"] = np.array(sorted((k, f.attrs[k]) for k in f.attrs if k.startswith("sha256_")))
    return out


def _assert_same(a: Path, b: Path) -> None:
    da, db = _datasets(a), _datasets(b)
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


def test_layout_counts_and_hashes(reference: Path) -> None:
    with h5py.File(reference, "r") as f:
        assert len(f["sources"]) == 10 and (f["status"][...] == 1).all()
        for t in OFFICIAL_TASK_NAMES:
            s = f[t].attrs["scale"]
            assert f[t]["input"].shape == (30, 16, 16, 3)
            assert f[t]["target"].shape == (30, 16 * s, 16 * s, 3)
            assert f[t]["input"].chunks == (1, 16, 16, 3) and f[t]["input"].dtype == np.uint8
            assert list(f[t]["source"][...]) == [i for i in range(10) for _ in range(3)]
    assert verify(reference) == dict.fromkeys(OFFICIAL_TASK_NAMES, True)
    assert not reference.with_name("ref.h5.partial").exists()


def test_same_dataset_whatever_the_worker_count(folder: Path, reference: Path, tmp_path: Path) -> None:
    build(CFG, resolve_sources(folder), tmp_path / "w2.h5", workers=2)
    _assert_same(reference, tmp_path / "w2.h5")


def test_seed_changes_content(folder: Path, reference: Path, tmp_path: Path) -> None:
    other = BuildConfig(OFFICIAL_TASK_NAMES, patch_size=16, patches_per_image=3, seed=8)
    s = build(other, resolve_sources(folder), tmp_path / "s8.h5")
    with h5py.File(reference, "r") as f:
        assert all(s.hashes[t] != f.attrs[f"sha256_{t}"] for t in OFFICIAL_TASK_NAMES)


def test_sr_inputs_are_exact_bicubic(reference: Path) -> None:
    with h5py.File(reference, "r") as f:
        for t, s in (("sr-x2", 2), ("sr-x3", 3), ("sr-x4", 4)):
            hr = torch.from_numpy(f[t]["target"][...]).permute(0, 3, 1, 2).float()
            ref = quantize(imresize(hr, 1 / s, "matlab", size=(16, 16))).permute(0, 2, 3, 1).numpy()
            np.testing.assert_array_equal(f[t]["input"][...], ref.astype(np.uint8))
        for t, sigma in (("denoise-30", 30), ("denoise-50", 50)):
            d = f[t]["input"][...].astype(float) - f[t]["target"][...]
            assert abs(d.std() - sigma) / sigma < 0.15  # clipping at dark/bright pixels lowers it a little
        d = f["derain"]["input"][...].astype(int) - f["derain"]["target"][...]
        assert d.min() >= 0 and (d > 10).mean() > 0.02


def test_max_side_crops_come_from_the_shrunk_source(folder: Path, reference: Path, tmp_path: Path) -> None:
    """--max-side: each target is a crop of the source shrunk by MATLAB bicubic (long side 48), found by
    exhaustive search in an independently shrunk copy; without the option the manifest has no such key."""
    from iptbench.images import read_image
    from iptbench.pairs.pairfile import read_manifest

    cfg = BuildConfig(("denoise-30",), patch_size=16, patches_per_image=3, seed=7, max_side=48)
    sources = resolve_sources(folder)
    build(cfg, sources, tmp_path / "small.h5", workers=1)
    with h5py.File(tmp_path / "small.h5", "r") as f:
        assert read_manifest(f)["max_side"] == 48
        targets, owners = f["denoise-30"]["target"][...], f["denoise-30"]["source"][...]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["sources"][...]]
    with h5py.File(reference, "r") as f:
        assert "max_side" not in read_manifest(f)
    for target, owner in zip(targets[::4], owners[::4], strict=True):
        image = read_image(next(p for p in sources if str(p).endswith(names[owner])))
        h, w = image.shape[:2]
        size = (round(h * 48 / max(h, w)), round(w * 48 / max(h, w)))
        chw = torch.tensor(image).permute(2, 0, 1).float()
        small = quantize(imresize(chw, 48 / max(h, w), "matlab", size=size)).permute(1, 2, 0).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(small.astype(np.uint8), (16, 16, 3))
        assert (windows == target).all(axis=(-3, -2, -1)).any()
    with pytest.raises(IptbenchError, match="--max-side"):
        BuildConfig(("sr-x4",), patch_size=16, max_side=60)  # below the 64 px crop of x4


def test_bad_inputs_are_converted_or_skipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb).save(tmp_path / "ok.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image at all")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(rgb[:40]).save(tmp_path / "small.png")
    s = build(CFG, resolve_sources(tmp_path), tmp_path / "out" / "b.h5")
    assert s.sources == 8 and s.used == 5
    assert s.skipped == {"unreadable": 2, "too small": 1}
    assert s.pairs == dict.fromkeys(OFFICIAL_TASK_NAMES, 15)


def test_no_usable_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    with pytest.raises(IptbenchError, match="no usable image"):
        build(CFG, resolve_sources(tmp_path), tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.partial").exists()


def test_existing_output_and_resume_flags(folder: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    with pytest.raises(IptbenchError, match="exists: pass --overwrite"):
        build(CFG, resolve_sources(folder), out)
    assert out.read_bytes() == b"keep me"
    build(CFG, resolve_sources(folder), out, overwrite=True)
    _assert_same(reference, out)
    s = build(CFG, resolve_sources(folder), out, resume=True)
    assert s.already_complete and s.hashes == build(CFG, resolve_sources(folder), out, overwrite=True).hashes
    other = BuildConfig(OFFICIAL_TASK_NAMES, patch_size=16, patches_per_image=2, seed=7)
    with pytest.raises(IptbenchError, match="other options"):
        build(other, resolve_sources(folder), out, resume=True)


def test_partial_with_other_options_is_refused(folder: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "p.h5"
    _interrupt_after(monkeypatch, 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        build(CFG, resolve_sources(folder), out, commit_every=1)
    monkeypatch.undo()
    other = BuildConfig(OFFICIAL_TASK_NAMES, patch_size=16, patches_per_image=3, seed=99)
    with pytest.raises(IptbenchError, match="other options.*seed"):
        build(other, resolve_sources(folder), out)
    assert out.with_name("p.h5.partial").exists()


def _interrupt_after(monkeypatch, n: int, exc: BaseException) -> None:
    original = PairWriter.append
    calls = {"n": 0}

    def append(self, result):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > n:
            raise exc
        original(self, result)

    monkeypatch.setattr(PairWriter, "append", append)


def test_disk_full_keeps_the_partial_for_resume(
    folder: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "full.h5"
    _interrupt_after(monkeypatch, 4, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(IptbenchError, match="disk full.*rerun the same command"):
        build(CFG, resolve_sources(folder), out, commit_every=2)
    monkeypatch.undo()
    assert out.with_name("full.h5.partial").exists() and not out.exists()
    s = build(CFG, resolve_sources(folder), out)
    assert s.resumed_from == 4
    _assert_same(reference, out)


def test_kill_9_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    src = tmp_path / "imgs"
    generate_images(src, 40, (200, 200), seed=3)
    cfg = BuildConfig(OFFICIAL_TASK_NAMES, patch_size=24, patches_per_image=6, seed=1)
    ref = build(cfg, resolve_sources(src), tmp_path / "ref.h5", workers=1)
    out = tmp_path / "k.h5"
    partial = tmp_path / "k.h5.partial"
    cmd = [sys.executable, "-m", "iptbench", "build-data", str(src), str(out), "--patch-size", "24"]
    cmd += ["-k", "6", "--seed", "1", "-j", "2", "--commit-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size > 3_000_000):  # some sources committed
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert partial.exists() and not out.exists()
    with h5py.File(partial, "r") as f:
        assert 0 < int(f.attrs["next_source"]) < 40
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    with h5py.File(out, "r") as f:
        assert {t: f.attrs[f"sha256_{t}"] for t in OFFICIAL_TASK_NAMES} == ref.hashes
    _assert_same(tmp_path / "ref.h5", out)
    assert out.stat().st_size <= 1.05 * (tmp_path / "ref.h5").stat().st_size  # no orphaned chunks
