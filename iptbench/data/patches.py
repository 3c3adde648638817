"""Reading build-data files for training: a torch Dataset and a one-task-per-batch sampler.

Usage:

    ds = PatchDataset(["pairs.h5"], augment=True, fresh_noise=True)
    sampler = TaskBatchSampler(ds, batch_size=64, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=8, persistent_workers=True)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:  # batch["task"][0] is the one task of the whole batch, as IPT trains
            out = model(batch["input"].cuda().float(), batch["task"][0])

HDF5 handles are opened lazily in whichever process reads (h5py objects cannot cross a fork or a pickle),
and gzip/unfiltered chunks are read with read_direct_chunk and inflated here, which is several times faster
than h5py's general selection path for one-patch reads. Keys may be plain indices or (index, epoch) pairs;
the sampler yields pairs so that flips and fresh noise depend on (seed, epoch, index) only, not on which
worker happens to load a sample.
"""

from __future__ import annotations

import bisect
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from iptbench.data.pairfile import read_manifest
from iptbench.errors import IptbenchError
from iptbench.ops import quantize
from iptbench.tasks import TASK_NAMES, get_task

_DEFLATE = 1  # HDF5 filter id


class _Reader:
    """One dataset (input or target) of one file, in one process: picks the fastest way to read a row.

    A merged file's virtual dataset is resolved to its shard datasets, so the fast path still applies.
    """

    def __init__(self, dset: h5py.Dataset, opener: Any) -> None:
        self.dset = dset
        self.shape = dset.shape[1:]
        self.parts: list[tuple[int, int, _Reader]] = []
        self.mode = "h5py"
        if dset.is_virtual:
            base = Path(dset.file.filename).parent
            for vmap in dset.virtual_sources():
                lo, hi = vmap.vspace.get_select_bounds()
                src = vmap.src_space
                src_lo = (0,) if src.get_select_type() == h5py.h5s.SEL_ALL else src.get_select_bounds()[0]
                name = vmap.file_name
                path = Path(name) if Path(name).is_absolute() or name == "." else base / name
                sub = opener(path)[vmap.dset_name]
                self.parts.append((lo[0], lo[0] - src_lo[0], _Reader(sub, opener)))
            self.parts.sort(key=lambda p: p[0])
            self.mode = "virtual"
            return
        plist = dset.id.get_create_plist()
        ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        if dset.chunks is not None and dset.chunks[0] == 1:
            self.mode = "deflate" if ids == [_DEFLATE] else "raw" if not ids else "h5py"

    def __call__(self, row: int) -> np.ndarray:
        if self.mode == "virtual":
            k = bisect.bisect_right([p[0] for p in self.parts], row) - 1
            _, shift, sub = self.parts[k]
            return sub(row - shift)
        if self.mode == "h5py":
            return self.dset[row]
        _, data = self.dset.id.read_direct_chunk((row, 0, 0, 0))
        if self.mode == "deflate":
            data = zlib.decompress(data)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.shape)


class PatchDataset(Dataset):
    """All pairs of the selected tasks across one or more build-data files.

    Global index order: tasks in official order, then files in the given order, then rows.
    Items are dicts: input (3 x p x p uint8, float32 if as_float), target (3 x sp x sp), task (name),
    task_index (official index), source (index into that file's /sources).
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        tasks: Sequence[str] | None = None,
        *,
        augment: bool = True,
        fresh_noise: bool = False,
        seed: int = 0,
        as_float: bool = False,
    ) -> None:
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        self.files = [str(Path(p)) for p in files]
        if not self.files:
            raise IptbenchError("PatchDataset needs at least one file")
        self.augment, self.fresh_noise, self.seed, self.as_float = augment, fresh_noise, seed, as_float
        counts: list[dict[str, int]] = []
        for path in self.files:
            if not Path(path).is_file():
                raise IptbenchError(f"{path} not found")
            with h5py.File(path, "r") as f:
                manifest = read_manifest(f)
                if not manifest.get("complete"):
                    raise IptbenchError(f"{path} is unfinished: rerun its build-data command first")
                counts.append({t: int(f[t]["input"].shape[0]) for t in manifest["tasks"]})
        available = {t for c in counts for t in c}
        wanted = [get_task(t).name for t in tasks] if tasks is not None else list(TASK_NAMES)
        self.tasks = [t for t in TASK_NAMES if t in wanted and t in available]
        if not self.tasks:
            raise IptbenchError(f"none of the tasks {wanted} is in {', '.join(self.files)}")
        # (global start, task, file id, rows) blocks, in index order
        self._blocks: list[tuple[int, str, int, int]] = []
        self.task_ranges: dict[str, tuple[int, int]] = {}
        start = 0
        for t in self.tasks:
            first = start
            for fid, c in enumerate(counts):
                if c.get(t, 0):
                    self._blocks.append((start, t, fid, c[t]))
                    start += c[t]
            self.task_ranges[t] = (first, start)
        self._starts = [b[0] for b in self._blocks]
        self._len = start
        self._pid: int | None = None
        self._handles: dict[str, h5py.File] = {}
        self._readers: dict[tuple[int, str, str], Any] = {}

    def __len__(self) -> int:
        return self._len

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pid=None, _handles={}, _readers={})
        return state

    def locate(self, index: int) -> tuple[str, int, int]:
        """Global index -> (task, file id, row)."""
        if not 0 <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} pairs")
        b = bisect.bisect_right(self._starts, index) - 1
        start, task, fid, _ = self._blocks[b]
        return task, fid, index - start

    def _reader(self, fid: int, task: str, key: str) -> _Reader:
        if self._pid != os.getpid():  # first use in this process (or after a fork): fresh handles
            self._pid, self._handles, self._readers = os.getpid(), {}, {}
        reader = self._readers.get((fid, task, key))
        if reader is None:
            f = self._open(self.files[fid])
            if key == "source":
                self._readers[(fid, task, key)] = f[task]["source"][...]  # small: keep it in memory
            else:
                self._readers[(fid, task, key)] = _Reader(f[task][key], self._open)
            reader = self._readers[(fid, task, key)]
        return reader

    def _open(self, path: str | Path) -> h5py.File:
        key = str(Path(path).resolve())
        f = self._handles.get(key)
        if f is None:
            f = self._handles[key] = h5py.File(key, "r")
        return f

    def _rng(self, index: int, epoch: int | None) -> np.random.Generator:
        if epoch is None:
            # Plain indices: use the process's torch seed, which DataLoader reseeds per worker and epoch.
            return np.random.default_rng([torch.initial_seed() % 2**63, index])
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch, index])))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)
        task, fid, row = self.locate(index)
        inp = self._reader(fid, task, "input")(row)
        tgt = self._reader(fid, task, "target")(row)
        source = int(self._reader(fid, task, "source")[row])
        spec = get_task(task)
        rng = self._rng(index, epoch) if (self.augment or self.fresh_noise) else None
        if self.augment and rng is not None:
            op = int(rng.integers(0, 8))
            inp, tgt = _dihedral(inp, op), _dihedral(tgt, op)
        if self.fresh_noise and spec.kind == "denoise" and rng is not None:
            noise = rng.standard_normal(tgt.shape, dtype=np.float32) * np.float32(spec.sigma)
            inp = quantize(torch.from_numpy(tgt.astype(np.float32) + noise)).to(torch.uint8).numpy()
        x = torch.from_numpy(np.ascontiguousarray(inp.transpose(2, 0, 1)))
        y = torch.from_numpy(np.ascontiguousarray(tgt.transpose(2, 0, 1)))
        if self.as_float:
            x, y = x.float(), y.float()
        return {"input": x, "target": y, "task": task, "task_index": spec.official_index, "source": source}


def _dihedral(a: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 flips/rotations (op bits: horizontal flip, vertical flip, transpose)."""
    if op & 1:
        a = a[:, ::-1]
    if op & 2:
        a = a[::-1]
    if op & 4:
        a = a.transpose(1, 0, 2)
    return a


class TaskBatchSampler(Sampler[list[Any]]):
    """Batches that each hold one task, as IPT pre-trains; batch order mixes tasks at random.

    Every epoch reshuffles from (seed, epoch); call set_epoch (or just iterate again: the epoch advances
    after each full pass). Yields (index, epoch) keys so PatchDataset's random flips and fresh noise are
    reproducible whatever the number of DataLoader workers.
    """

    def __init__(
        self,
        dataset: PatchDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.ranges = list(dataset.task_ranges.values())
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches_per_task(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return sum(self._batches_per_task(b - a) for a, b in self.ranges)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        batches: list[np.ndarray] = []
        for a, b in self.ranges:
            idx = rng.permutation(np.arange(a, b)) if self.shuffle else np.arange(a, b)
            for k in range(self._batches_per_task(b - a)):
                batches.append(idx[k * self.batch_size : (k + 1) * self.batch_size])
        order = rng.permutation(len(batches)) if self.shuffle else np.arange(len(batches))
        for k in order:
            yield [(int(i), epoch) for i in batches[k]]
        self.epoch = epoch + 1
