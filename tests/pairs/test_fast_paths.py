"""The speed paths of build-data must not change a byte: worker-side chunk encoding, NumPy rounding,
in-place rain rendering and whole-batch reads."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from iptbench.degradations.arrays import to_uint8
from iptbench.degradations.rain import synth_rain_layers
from iptbench.ops import quantize
from iptbench.pairs.builder import BuildConfig, build
from iptbench.pairs.h5tools import merge
from iptbench.pairs.pairfile import ChunkEncoder
from iptbench.pairs.patches import PatchDataset
from iptbench.pairs.sources import Shard, generate_images, resolve_sources


def _patches() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
    return {
        "noise": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),  # incompressible: lzf stores it raw
        "flat": np.full((2, 32, 32, 3), 77, np.uint8),
        "smooth": np.stack([smooth, smooth[::-1], smooth[:, ::-1]]),
    }


@pytest.mark.parametrize("compression", ["gzip", "lzf", "none"])
def test_encoder_gives_the_chunks_hdf5_would_store(compression: str, tmp_path: Path) -> None:
    from iptbench.pairs.pairfile import h5_compression

    encoder = ChunkEncoder(compression)
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        for name, patches in _patches().items():
            d = f.create_dataset(
                name, data=patches, chunks=(1, *patches.shape[1:]), **h5_compression(compression)
            )
            chunks, masks = encoder.encode(patches)
            for k in range(len(patches)):
                mask, stored = d.id.read_direct_chunk((k, 0, 0, 0))
                assert bytes(chunks[k]) == stored, (name, k)
                assert (masks[k] if masks else 0) == mask, (name, k)
    if compression == "lzf":
        assert encoder.encode(_patches()["noise"])[1] == [1, 1, 1]  # raw, with the filter skipped


def test_numpy_rounding_equals_ops_quantize() -> None:
    rng = np.random.default_rng(1)
    ties = np.arange(-3, 260, dtype=np.float32) + np.float32(0.5)
    near = np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))
    values = np.concatenate([ties, *near, rng.uniform(-50, 300, 5000).astype(np.float32)])
    expected = quantize(torch.from_numpy(values)).to(torch.uint8).numpy()
    np.testing.assert_array_equal(to_uint8(values.copy()), expected)


def test_rain_layers_are_reproducible_and_batch_independent() -> None:
    a = synth_rain_layers(np.random.default_rng(3), 4, 48)
    b = synth_rain_layers(np.random.default_rng(3), 4, 48)
    assert a.dtype == np.float32 and np.array_equal(a, b) and a.min() >= 0 and a.max() > 20


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fast")
    sources = resolve_sources(generate_images(root / "imgs", 5, (64, 64), seed=2)[0].parent)
    tasks = ("sr-x2", "denoise-30", "derain")
    out: dict[str, Path] = {}
    for comp in ("gzip", "lzf", "none"):
        out[comp] = root / f"{comp}.h5"
        build(BuildConfig(tasks, 16, 3, 0, comp), sources, out[comp], workers=1)
    shards = [root / f"s{i}.h5" for i in range(2)]
    for i, s in enumerate(shards):
        build(BuildConfig(tasks, 16, 3, 0, "lzf"), sources, s, shard=Shard(i, 2))
    out["virtual"] = root / "merged.h5"
    merge(out["virtual"], shards)
    return out


def test_compressions_store_the_same_pairs(files: dict[str, Path]) -> None:
    with h5py.File(files["gzip"]) as g, h5py.File(files["lzf"]) as z, h5py.File(files["none"]) as n:
        for t in ("sr-x2", "denoise-30", "derain"):
            assert g.attrs[f"sha256_{t}"] == z.attrs[f"sha256_{t}"] == n.attrs[f"sha256_{t}"]
            for key in ("input", "target"):
                np.testing.assert_array_equal(g[t][key][...], z[t][key][...])
                np.testing.assert_array_equal(g[t][key][...], n[t][key][...])


@pytest.mark.parametrize("kind", ["gzip", "lzf", "none", "virtual"])
@pytest.mark.parametrize(
    "options", [{"augment": False}, {"fresh_noise": True, "seed": 4}, {"as_float": True}]
)
def test_batch_reads_equal_item_reads(files: dict[str, Path], kind: str, options: dict) -> None:
    ds = PatchDataset(files[kind], **options)
    rng = np.random.default_rng(0)
    # mixed tasks, repeated indices, plain and (index, epoch) keys in one call
    keys: list = [
        (int(i), int(e)) for i, e in zip(rng.integers(0, len(ds), 20), rng.integers(0, 3, 20), strict=True)
    ]
    keys += [keys[0], 0, len(ds) - 1]
    batch = ds.__getitems__(keys)
    assert len(batch) == len(keys)
    for key, got in zip(keys, batch, strict=True):
        want = ds[key]
        assert got.keys() == want.keys()
        for name, value in want.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(got[name], value) and got[name].dtype == value.dtype, (key, name)
                assert got[name].is_contiguous()
            else:
                assert got[name] == value, (key, name)
