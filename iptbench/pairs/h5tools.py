"""Working with finished build-data files: merge shards, describe, verify, and preview pairs as a PNG."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from iptbench._version import __version__
from iptbench.errors import IptbenchError
from iptbench.images import write_png
from iptbench.io import check_output, fsync_path
from iptbench.pairs.pairfile import (
    STATUS_NAMES,
    STATUS_USED,
    combine_digests,
    empty_digest,
    h5_compression,
    open_h5,
    read_manifest,
    require_complete,
)
from iptbench.tasks import get_task

_SHARD_FREE = ("source_range", "shard", "command", "created", "complete", "counts", "hashes", "skipped")
_SHARD_FREE += ("build_seconds", "merged_from")


def _open_complete(path: Path) -> tuple[h5py.File, dict[str, Any]]:
    f, manifest = _open_any(path)
    try:
        require_complete(path, manifest)
    except IptbenchError:
        f.close()
        raise
    return f, manifest


def merge(output: Path, shards: list[Path], *, copy: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Join shard files into one (virtual datasets unless copy); returns its manifest."""
    output = Path(output)
    if not shards:
        raise IptbenchError("give at least one shard file to merge")
    check_output(output, inputs=shards, overwrite=overwrite)
    opened = [_open_complete(Path(s)) for s in shards]
    try:
        return _merge(output, [Path(s) for s in shards], opened, copy)
    except BaseException:
        # A merge is quick to redo and cannot resume: leave no half-written OUTPUT.partial behind.
        output.with_name(output.name + ".partial").unlink(missing_ok=True)
        raise
    finally:
        for f, _ in opened:
            f.close()


def _merge(output: Path, paths: list[Path], opened: list[tuple[h5py.File, dict[str, Any]]], copy: bool):
    base = {k: v for k, v in opened[0][1].items() if k not in _SHARD_FREE}
    for (_f, m), p in zip(opened, paths, strict=True):
        other = {k: v for k, v in m.items() if k not in _SHARD_FREE}
        if other != base:
            bad = [k for k in base if base[k] != other.get(k)]
            raise IptbenchError(f"{p} was built with other options than {paths[0]} ({', '.join(bad)} differ)")
    order = sorted(range(len(paths)), key=lambda i: opened[i][1]["source_range"][0])
    ranges = [opened[i][1]["source_range"] for i in order]
    for (a0, a1), (b0, b1) in zip(ranges, ranges[1:], strict=False):
        if b0 < a1:
            raise IptbenchError(
                f"shards overlap: sources {a0}-{a1} and {b0}-{b1}; merge disjoint shards only"
            )
    tasks: list[str] = base["tasks"]
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    comp = h5_compression(base["compression"])
    counts = {t: 0 for t in tasks}
    with h5py.File(partial, "w", track_order=True) as out:
        first = opened[order[0]][0]
        out.create_dataset("sources", data=first["sources"][...], dtype=h5py.string_dtype("utf-8"))
        out.create_dataset("status", data=np.concatenate([opened[i][0]["status"][...] for i in order]))
        digests = np.concatenate([opened[i][0]["digests"][...] for i in order])
        out.create_dataset("digests", data=digests, chunks=(min(4096, len(digests)), len(tasks), 32))
        for t in tasks:
            g = out.create_group(t)
            g.attrs.update(dict(first[t].attrs))
            for key in ("input", "target"):
                _merge_dataset(out, g, t, key, [(paths[i], opened[i][0]) for i in order], copy, comp)
            g.create_dataset("source", data=np.concatenate([opened[i][0][t]["source"][...] for i in order]))
            counts[t] = g["input"].shape[0]
        hashes = {t: combine_digests(digests[:, j]) for j, t in enumerate(tasks)}
        status = out["status"][...]
        manifest = dict(base)
        manifest.update(
            source_range=[ranges[0][0], ranges[-1][1]],
            shard=None,
            merged_from=[
                {"file": str(paths[i]), "source_range": opened[i][1]["source_range"]} for i in order
            ],
            virtual=not copy,
            command=None,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            merged_by=__version__,
            complete=True,
            counts=counts,
            hashes=hashes,
            skipped={name: int((status == code).sum()) for code, name in STATUS_NAMES.items()},
        )
        for t, h in hashes.items():
            out.attrs[f"sha256_{t}"] = h
        out.attrs["manifest"] = json.dumps(manifest)
        out.attrs["counts"] = json.dumps(counts)
        out.attrs["next_source"] = ranges[-1][1]
    fsync_path(partial)
    os.replace(partial, output)
    return manifest


def _merge_dataset(out: h5py.File, g: h5py.Group, t: str, key: str, parts, copy: bool, comp) -> None:
    shapes = [f[t][key].shape for _, f in parts]
    total = sum(s[0] for s in shapes)
    tail = shapes[0][1:]
    if copy or total == 0:
        dst = g.create_dataset(key, shape=(total, *tail), chunks=(1, *tail), dtype=np.uint8, **comp)
        row = 0
        for _, f in parts:
            src = f[t][key]
            if src.is_virtual:
                for i in range(src.shape[0]):
                    dst[row + i] = src[i]
            else:
                # Chunks move as stored bytes: no decompression, no recompression.
                for i in range(src.shape[0]):
                    mask, data = src.id.read_direct_chunk((i, 0, 0, 0))
                    dst.id.write_direct_chunk((row + i, 0, 0, 0), data, mask)
            row += src.shape[0]
        return
    layout = h5py.VirtualLayout(shape=(total, *tail), dtype=np.uint8)
    row = 0
    for (path, _f), shape in zip(parts, shapes, strict=True):
        if shape[0]:
            # Relative to the merged file, so the folder of shards + merged file can move as a whole.
            name = os.path.relpath(Path(path).resolve(), Path(out.filename).resolve().parent)
            layout[row : row + shape[0]] = h5py.VirtualSource(name, f"{t}/{key}", shape=shape)
            row += shape[0]
    g.create_virtual_dataset(key, layout, fillvalue=0)


def info(path: Path) -> dict[str, Any]:
    f, manifest = _open_any(path)
    with f:
        tasks: dict[str, Any] = {}
        for t in manifest["tasks"]:
            g = f[t]
            tasks[t] = {
                "pairs": int(g["input"].shape[0]),
                "input": list(g["input"].shape[1:]),
                "target": list(g["target"].shape[1:]),
                "virtual": bool(g["input"].is_virtual),
                "sha256": f.attrs.get(f"sha256_{t}"),
            }
        status = f["status"][...]
        return {
            "file": str(path),
            "bytes": os.path.getsize(path),
            "manifest": manifest,
            "tasks": tasks,
            "sources": int(f["sources"].shape[0]),
            "used": int((status == STATUS_USED).sum()),
            "next_source": int(f.attrs.get("next_source", -1)),
        }


def _open_any(path: Path) -> tuple[h5py.File, dict[str, Any]]:
    if not Path(path).is_file():
        raise IptbenchError(f"{path} not found")
    f = open_h5(path, "r")
    try:
        return f, read_manifest(f)
    except BaseException:
        f.close()
        raise


def verify(path: Path, block: int = 512) -> dict[str, bool]:
    """Recompute every task's content hash from the stored pixels; True where it matches the attribute."""
    f, manifest = _open_complete(path)
    with f:
        start, stop = manifest["source_range"]
        ok: dict[str, bool] = {}
        for j, t in enumerate(manifest["tasks"]):
            inputs, targets, source = f[t]["input"], f[t]["target"], f[t]["source"][...]
            digests = np.tile(np.frombuffer(empty_digest(), np.uint8), (stop - start, 1))
            h, current = None, None
            for lo in range(0, len(source), block):
                ins, tgs = inputs[lo : lo + block], targets[lo : lo + block]
                for k in range(len(ins)):
                    s = int(source[lo + k])
                    if s != current:
                        if h is not None:
                            digests[current - start] = np.frombuffer(h.digest(), np.uint8)
                        h, current = hashlib.sha256(), s
                    h.update(ins[k].tobytes())
                    h.update(tgs[k].tobytes())
                    h.update(np.int64(s).astype("<i8").tobytes())
            if h is not None:
                digests[current - start] = np.frombuffer(h.digest(), np.uint8)
            stored = f["digests"][:, j]
            ok[t] = (
                bool(np.array_equal(digests, stored)) and combine_digests(digests) == f.attrs[f"sha256_{t}"]
            )
        return ok


def preview(path: Path, task: str, n: int, output: Path, *, zoom: int = 0, overwrite: bool = True) -> Path:
    """PNG grid of n (input | target) pairs, evenly spaced through the task; SR inputs pixel-repeated."""
    get_task(task)
    if n < 1:
        raise IptbenchError(f"-n must be at least 1, got {n}")
    check_output(output, inputs=[path], overwrite=overwrite)
    f, manifest = _open_any(path)
    with f:
        if task not in manifest["tasks"]:
            raise IptbenchError(f"{path} has no {task} pairs (it has {', '.join(manifest['tasks'])})")
        total = f[task]["input"].shape[0]
        if total == 0:
            raise IptbenchError(f"{path} has 0 {task} pairs")
        idx = np.unique(np.linspace(0, total - 1, num=max(1, min(n, total))).round().astype(int))
        ins = np.stack([f[task]["input"][i] for i in idx])
        tgs = np.stack([f[task]["target"][i] for i in idx])
    side = tgs.shape[1]
    up = side // ins.shape[1]
    ins = ins.repeat(up, axis=1).repeat(up, axis=2)
    zoom = zoom or max(1, math.ceil(128 / side))
    gap = 4
    cols = min(len(idx), 4)
    rows = math.ceil(len(idx) / cols)
    tile_w = 2 * side + gap
    grid = np.full((rows * (side + gap) + gap, cols * (tile_w + gap) + gap, 3), 255, dtype=np.uint8)
    for k in range(len(idx)):
        r, c = divmod(k, cols)
        y, x = gap + r * (side + gap), gap + c * (tile_w + gap)
        grid[y : y + side, x : x + side] = ins[k]
        grid[y : y + side, x + side + gap : x + tile_w] = tgs[k]
    grid = grid.repeat(zoom, axis=0).repeat(zoom, axis=1)
    write_png(output, grid)
    return Path(output)
