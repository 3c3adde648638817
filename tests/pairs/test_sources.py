"""SOURCE resolution for build-data: folders, list files, `samples`, shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iptbench.errors import IptbenchError
from iptbench.images import read_image
from iptbench.pairs.sources import (
    Shard,
    generate_images,
    parse_shard,
    resolve_sources,
    sample_images,
    sources_digest,
)


def _touch_png(path: Path) -> None:
    from iptbench.images import write_png

    write_png(path, np.zeros((4, 4, 3), np.uint8))


def test_folder_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    for rel in ("b/2.JPEG", "a/1.png", "a/sub/0.webp", "c.txt", ".hidden/x.png", "a/.x.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in resolve_sources(tmp_path)]
    assert got == ["a/1.png", "a/sub/0.webp", "b/2.JPEG"]


def test_list_file_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    _touch_png(tmp_path / "imgs" / "x.png")
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\n\nimgs/x.png\n/abs/y.jpg\n")
    assert resolve_sources(lst) == [tmp_path / "imgs" / "x.png", Path("/abs/y.jpg")]


def test_samples_are_natural_rgb_photos() -> None:
    paths = resolve_sources("samples")
    assert len(paths) >= 6  # the scikit-image ones alone
    names = {p.stem for p in paths}
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= names
    assert not names & {"camera", "moon", "logo", "color", "hubble_deep_field", "retina"}
    for p in paths:
        img = read_image(p)
        assert img.ndim == 3 and min(img.shape[:2]) >= 192
    assert sample_images() == paths


@pytest.mark.parametrize("bad", ["nope/", "missing.txt"])
def test_missing_source_is_an_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(IptbenchError, match="not found"):
        resolve_sources(tmp_path / bad)


def test_empty_folder_and_empty_list(tmp_path: Path) -> None:
    with pytest.raises(IptbenchError, match="no images"):
        resolve_sources(tmp_path)
    (tmp_path / "l.txt").write_text("\n# nothing\n")
    with pytest.raises(IptbenchError, match="names no images"):
        resolve_sources(tmp_path / "l.txt")


def test_shards_are_disjoint_and_cover() -> None:
    for n in (1, 7, 100):
        for count in (1, 3, 8):
            bounds = [Shard(i, count).bounds(n) for i in range(count)]
            covered = [k for a, b in bounds for k in range(a, b)]
            assert covered == list(range(n))
    assert parse_shard("2/4") == Shard(2, 4)
    assert parse_shard(None) is None
    for bad in ("4/4", "-1/3", "a/b", "3", "1/0"):
        with pytest.raises(IptbenchError, match="--shard"):
            parse_shard(bad)


def test_digest_and_generated_images(tmp_path: Path) -> None:
    assert sources_digest(["a", "b"]) != sources_digest(["b", "a"])
    paths = generate_images(tmp_path, 3, (64, 48), seed=1)
    again = generate_images(tmp_path / "again", 3, (64, 48), seed=1)
    assert [read_image(p).shape for p in paths] == [(48, 64, 3)] * 3
    assert all(np.array_equal(read_image(a), read_image(b)) for a, b in zip(paths, again, strict=True))
