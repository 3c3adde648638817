"""Safe extraction against crafted archives, fetch from local archives, the offline message, and verify."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from iptbench.benchmarks.extract import safe_extract
from iptbench.benchmarks.fetch import fetch_dataset
from iptbench.benchmarks.registry import locate
from iptbench.benchmarks.verify import read_sha256sums, verify_dataset
from iptbench.errors import IptbenchError
from iptbench.images import write_png


def _png_bytes(h: int, w: int, seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                tf.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    ("files", "links", "message"),
    [
        ({"../evil.txt": b"x"}, None, "contains '..'"),
        ({"ok/../../evil.txt": b"x"}, None, "contains '..'"),
        ({"/tmp/evil.txt": b"x"}, None, "absolute path"),
        ({"C:/evil.txt": b"x"}, None, "absolute path"),
        ({"a.txt": b"x"}, {"link": "../../etc/passwd"}, "link pointing outside"),
        ({"a.txt": b"x"}, {"link": "/etc/passwd"}, "link pointing outside"),
    ],
)
def test_zip_rejects_escapes(tmp_path: Path, files: dict[str, bytes], links, message: str) -> None:
    archive = _zip(tmp_path / "bad.zip", files, links)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(IptbenchError, match=message):
        safe_extract(archive, dest)
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert list(dest.rglob("*")) == []  # refused before anything was written


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_info("../evil.txt"), "contains '..'"),
        (_info("/tmp/evil.txt"), "absolute path"),
        (_info("link", tarfile.SYMTYPE, "../../outside"), "symlink pointing outside"),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "symlink pointing outside"),
        (_info("sub/hard", tarfile.LNKTYPE, "../outside"), "hard link pointing outside"),
        (_info("dev", tarfile.CHRTYPE), "device or special file"),
        (_info("fifo", tarfile.FIFOTYPE), "device or special file"),
    ],
)
def test_tar_rejects_escapes(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    data = {"../evil.txt": b"x", "/tmp/evil.txt": b"x"}
    archive = _tar(tmp_path / "bad.tar.gz", [_info("fine.txt"), member], {"fine.txt": b"ok", **data})
    dest = tmp_path / "dest"
    with pytest.raises(IptbenchError, match=message):
        safe_extract(archive, dest)
    assert list(dest.rglob("*")) == [] and not (tmp_path / "evil.txt").exists()


def test_good_archives_extract(tmp_path: Path) -> None:
    _zip(tmp_path / "ok.zip", {"top/a.txt": b"A", "top/sub/b.txt": b"B"})
    safe_extract(tmp_path / "ok.zip", tmp_path / "z")
    assert (tmp_path / "z" / "top" / "sub" / "b.txt").read_bytes() == b"B"
    members = [_info("top/a.txt"), _info("top/alias", tarfile.SYMTYPE, "a.txt")]
    safe_extract(_tar(tmp_path / "ok.tgz", members, {"top/a.txt": b"A"}), tmp_path / "t")
    assert (tmp_path / "t" / "top" / "alias").read_bytes() == b"A"  # links inside the tree are fine
    (tmp_path / "junk.bin").write_bytes(b"not an archive")
    with pytest.raises(IptbenchError, match="neither a zip nor a tar"):
        safe_extract(tmp_path / "junk.bin", tmp_path / "j")


def test_fetch_edsr_style_tar_arranges_and_verifies(tmp_path: Path) -> None:
    data = {}
    for i, stem in enumerate(["baby", "bird", "butterfly", "head", "woman"]):
        data[f"benchmark/Set5/HR/{stem}.png"] = _png_bytes(16, 12, i)
        data[f"benchmark/Set5/LR_bicubic/X2/{stem}x2.png"] = _png_bytes(8, 6, 10 + i)
        data[f"benchmark/Set14/HR/{stem}.png"] = _png_bytes(4, 4, i)
    archive = _tar(tmp_path / "benchmark.tar.gz", [_info(n) for n in data], data)
    root = tmp_path / "root"
    result = fetch_dataset("Set5", root, archive=archive, show_progress=False)
    assert result.path == root / "Set5" and not result.sha256_known
    assert result.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert locate("Set5", root).layout_name == "HR/ + LR_bicubic/X2"
    assert verify_dataset("Set5", root, show_progress=False).ok
    assert [p.name for p in root.iterdir()] == ["Set5"]  # the extraction folder is cleaned up
    assert fetch_dataset("Set5", root, archive=archive, show_progress=False).already_present


def test_fetch_flat_and_renamed_layouts(tmp_path: Path) -> None:
    flat = {f"FFDNet-abc/testsets/CBSD68/{i}.png": _png_bytes(4, 4, i) for i in range(68)}
    flat["FFDNet-abc/testsets/Set12/01.png"] = _png_bytes(4, 4, 0)
    root = tmp_path / "root"
    fetch_dataset("CBSD68", root, archive=_zip(tmp_path / "ffdnet.zip", flat), show_progress=False)
    assert locate("CBSD68", root).layout_name == "HR/" and len(list((root / "CBSD68" / "HR").iterdir())) == 68
    rain = {}
    for i in range(1, 101):
        rain[f"repo-1/Rain2Avoid(Multiple)/dataset/Rain100L/input/{i}.png"] = _png_bytes(4, 6, i)
        rain[f"repo-1/Rain2Avoid(Multiple)/dataset/Rain100L/target/{i}.png"] = _png_bytes(4, 6, 200 + i)
    fetch_dataset("Rain100L", root, archive=_zip(tmp_path / "r.zip", rain), show_progress=False)
    status = locate("Rain100L", root)
    assert (status.state, status.layout_name) == ("found", "rainy/ + norain/ paired by name")


def test_fetch_offline_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(IptbenchError) as info:
        fetch_dataset("Set5", root, url="http://127.0.0.1:9/x.zip", show_progress=False)
    message = str(info.value)
    assert "\n" not in message and "cannot download Set5 from http://127.0.0.1:9/x.zip" in message
    assert f"put Set5 under {root / 'Set5'}/HR/*.png" in message and "--archive" in message
    assert not root.exists()  # offline leaves no trace (no root, no .downloads, no .part)
    with pytest.raises(IptbenchError, match=r"Manga109 has no public download .* or pass --archive FILE"):
        fetch_dataset("Manga109", root, show_progress=False)


def test_fetch_refuses_incomplete_existing_folder(tmp_path: Path) -> None:
    write_png(tmp_path / "Set5" / "HR" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(IptbenchError, match="exists but is incomplete .*move it away"):
        fetch_dataset("Set5", tmp_path, archive=tmp_path / "none.zip", show_progress=False)


def _set5(root: Path) -> None:
    for i, stem in enumerate("abcde"):
        write_png(root / "Set5" / "HR" / f"{stem}.png", np.full((12, 10, 3), i, np.uint8))
        write_png(root / "Set5" / "LR_bicubic" / "X2" / f"{stem}x2.png", np.full((6, 5, 3), i, np.uint8))


def test_verify_checks_sha_sizes_and_decoding(tmp_path: Path) -> None:
    _set5(tmp_path)
    report = verify_dataset("Set5", tmp_path, show_progress=False)
    assert report.ok and report.checks[-1].ok is None and "not checked" in report.checks[-1].detail
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(tmp_path).as_posix()}"
        for p in sorted((tmp_path / "Set5").rglob("*.png"))
    ]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    assert len(read_sha256sums(tmp_path / "SHA256SUMS")) == 10
    report = verify_dataset("Set5", tmp_path, show_progress=False)
    assert report.ok and report.checks[-1].detail.startswith("10/10 files match")

    write_png(tmp_path / "Set5" / "LR_bicubic" / "X2" / "bx2.png", np.zeros((5, 5, 3), np.uint8))
    (tmp_path / "Set5" / "HR" / "c.png").write_bytes(b"\x89PNG broken")
    report = verify_dataset("Set5", tmp_path, show_progress=False)
    failed = {c.name for c in report.checks if c.ok is False}
    assert failed == {"readable", "sizes", "sha256"}
    assert any("bx2.png is 5x5 but b.png (10x12) mod-cropped to x2 is 10x12" in p for p in report.problems)
    assert any(p.startswith("cannot read image") and "c.png" in p for p in report.problems)
    assert "LR_bicubic/X2/bx2.png does not match its sha256 in SHA256SUMS" in report.problems


def test_verify_missing_dataset_message(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="Urban100 not found under .*iptbench datasets fetch Urban100"):
        verify_dataset("Urban100", tmp_path, show_progress=False)


def test_verify_real_set5_with_sha256sums(benchmark_root: Path) -> None:
    report = verify_dataset("Set5", benchmark_root, show_progress=False)
    assert report.ok, report.problems
    assert [c.ok for c in report.checks] == [True, True, True, True]
    assert report.checks[-1].detail.startswith("20/20 files match")


def test_download_from_local_server_checks_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The download path end to end, served from 127.0.0.1 (no outside network)."""
    import dataclasses
    import functools
    import http.server
    import threading

    from iptbench.benchmarks import registry as benchmarks

    files = {f"Set5/HR/{s}.png": _png_bytes(8, 8, i) for i, s in enumerate("abcde")}
    served = tmp_path / "served"
    served.mkdir()
    _zip(served / "set5.zip", files)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/set5.zip"
        digest = hashlib.sha256((served / "set5.zip").read_bytes()).hexdigest()
        original = benchmarks.BENCHMARKS["Set5"]
        wrong = dataclasses.replace(original, fetch=benchmarks.FetchSource(url, sha256="0" * 64))
        monkeypatch.setitem(benchmarks.BENCHMARKS, "Set5", wrong)
        with pytest.raises(IptbenchError, match=f"has sha256 {digest}, expected 0000"):
            fetch_dataset("Set5", tmp_path / "a", show_progress=False)
        right = dataclasses.replace(original, fetch=benchmarks.FetchSource(url, sha256=digest))
        monkeypatch.setitem(benchmarks.BENCHMARKS, "Set5", right)
        result = fetch_dataset("Set5", tmp_path / "b", show_progress=False)
        assert result.sha256_known and result.sha256 == digest
        assert (tmp_path / "b" / ".downloads" / "set5.zip").is_file()
        assert locate("Set5", tmp_path / "b").state == "found"
    finally:
        server.shutdown()
        server.server_close()
