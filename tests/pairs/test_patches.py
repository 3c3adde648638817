"""PatchDataset / TaskBatchSampler: reading pairs back for training."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from iptbench.errors import IptbenchError
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.h5tools import merge
from iptbench.pairs.patches import PatchDataset, TaskBatchSampler
from iptbench.pairs.sources import Shard, generate_images, resolve_sources

TASKS = ("sr-x2", "denoise-50", "derain")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("patches")
    sources = resolve_sources(generate_images(root / "imgs", 6, (64, 64), seed=5)[0].parent)
    out = {}
    for comp in ("gzip", "lzf", "none"):
        out[comp] = root / f"{comp}.h5"
        build(BuildConfig(TASKS, 16, 3, 0, comp), sources, out[comp])
    shards = [root / f"s{i}.h5" for i in range(2)]
    for i, s in enumerate(shards):
        build(BuildConfig(TASKS, 16, 3, 0, "gzip"), sources, s, shard=Shard(i, 2))
    out["virtual"] = root / "merged.h5"
    merge(out["virtual"], shards)
    return out


@pytest.mark.parametrize("kind", ["gzip", "lzf", "none", "virtual"])
def test_items_match_the_file(files: dict[str, Path], kind: str) -> None:
    ds = PatchDataset(files[kind], augment=False)
    assert len(ds) == 3 * 18 and ds.tasks == ["sr-x2", "derain", "denoise-50"]
    with h5py.File(files["gzip"], "r") as f:
        for i in range(0, len(ds), 5):
            task, _, row = ds.locate(i)
            item = ds[i]
            assert item["task"] == task
            np.testing.assert_array_equal(item["input"].permute(1, 2, 0).numpy(), f[task]["input"][row])
            np.testing.assert_array_equal(item["target"].permute(1, 2, 0).numpy(), f[task]["target"][row])
            assert item["source"] == f[task]["source"][row]


def test_augmentation_is_one_shared_dihedral_transform(files: dict[str, Path]) -> None:
    plain = PatchDataset(files["gzip"], augment=False)
    aug = PatchDataset(files["gzip"], augment=True, seed=1)
    seen = set()
    for i in range(18):  # the sr-x2 block
        p, a = plain[i], aug[(i, 0)]
        for op in range(8):
            t_in, t_tg = _apply(p["input"], op), _apply(p["target"], op)
            if torch.equal(t_in, a["input"]) and torch.equal(t_tg, a["target"]):
                seen.add(op)
                break
        else:
            raise AssertionError(f"pair {i} is not a consistent flip/rotation")
        assert torch.equal(aug[(i, 0)]["input"], a["input"])  # same key, same result
    assert len(seen) > 2


def _apply(x: torch.Tensor, op: int) -> torch.Tensor:
    if op & 1:
        x = x.flip(2)
    if op & 2:
        x = x.flip(1)
    if op & 4:
        x = x.transpose(1, 2)
    return x


def test_fresh_noise(files: dict[str, Path]) -> None:
    ds = PatchDataset(files["gzip"], ["denoise-50"], augment=False, fresh_noise=True)
    stored = PatchDataset(files["gzip"], ["denoise-50"], augment=False)
    a, b, c = ds[(0, 0)], ds[(0, 0)], ds[(0, 1)]
    assert torch.equal(a["input"], b["input"]) and not torch.equal(a["input"], c["input"])
    assert not torch.equal(a["input"], stored[0]["input"])
    items = [ds[(i, 2)] for i in range(18)]
    diffs = torch.cat([(it["input"].float() - it["target"].float()).flatten() for it in items])
    assert 40 < diffs.std().item() < 52  # sigma 50, lowered a little by clipping


def test_sampler_one_task_per_batch_and_epochs(files: dict[str, Path]) -> None:
    ds = PatchDataset(files["gzip"])
    s = TaskBatchSampler(ds, 4, drop_last=False, seed=3)
    e0 = list(s)
    e1 = list(s)  # the epoch advances by itself
    assert len(e0) == len(s) == 3 * 5
    assert sorted(i for b in e0 for i, _ in b) == list(range(len(ds)))
    for batch in e0:
        assert len({ds.locate(i)[0] for i, _ in batch}) == 1
    assert e0 != e1 and {e for b in e1 for _, e in b} == {1}
    s.set_epoch(0)
    assert list(s) == e0


def test_dataloader_two_workers(files: dict[str, Path]) -> None:
    ds = PatchDataset(files["virtual"], fresh_noise=True)
    s = TaskBatchSampler(ds, 6, seed=0)
    first = [b for b in DataLoader(ds, batch_sampler=s, num_workers=2)]
    s.set_epoch(0)
    again = [b for b in DataLoader(ds, batch_sampler=s, num_workers=0)]
    assert len(first) == 9
    for a, b in zip(first, again, strict=True):
        assert len(set(a["task"])) == 1 and a["input"].dtype == torch.uint8
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])


def test_errors(tmp_path: Path, files: dict[str, Path]) -> None:
    with pytest.raises(IptbenchError, match="not found"):
        PatchDataset(tmp_path / "nope.h5")
    with pytest.raises(IptbenchError, match="none of the tasks"):
        PatchDataset(files["gzip"], ["sr-x4"])
