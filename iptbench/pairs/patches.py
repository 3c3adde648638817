"""Reading build-data files for training: a torch Dataset and a one-task-per-batch sampler.

Usage:

    ds = PatchDataset(["pairs.h5"], augment=True, fresh_noise=True)
    sampler = TaskBatchSampler(ds, batch_size=64, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=8, persistent_workers=True)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader:  # batch["task"][0] is the one task of the whole batch, as IPT trains
            out = model(batch["input"].cuda().float(), batch["task"][0])

HDF5 handles are opened lazily in whichever process reads (h5py objects cannot cross a fork or a pickle).
DataLoader fetches a whole batch through __getitems__: gzip and unfiltered chunks are read with
read_direct_chunk and inflated straight into views (lzf goes through HDF5 one row at a time), then each
pair is flipped and transposed to C x H x W in one copy, and fresh noise is added to the batch at once.
Keys may be plain indices or (index, epoch) pairs; the sampler yields pairs so that flips and fresh noise
depend on (seed, epoch, index) only, not on which worker happens to load a sample.
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

from iptbench.errors import IptbenchError
from iptbench.ops import quantize
from iptbench.pairs.pairfile import read_manifest, require_complete
from iptbench.tasks import get_task, task_names

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
        return self.rows(np.array([row]))[0]

    def rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """The patches of a batch of rows (H x W x C uint8 each, possibly read-only views of the chunk)."""
        if self.mode == "virtual":
            starts = np.array([p[0] for p in self.parts])
            part = np.searchsorted(starts, rows, side="right") - 1
            out: list[np.ndarray] = [np.empty(0, np.uint8)] * len(rows)
            for k in np.unique(part).tolist():
                sel = np.nonzero(part == k)[0]
                _, shift, sub = self.parts[k]
                for j, arr in zip(sel.tolist(), sub.rows(rows[sel] - shift), strict=True):
                    out[j] = arr
            return out
        if self.mode == "h5py":
            buf = np.empty((len(rows), *self.shape), dtype=np.uint8)
            self._read_selection(rows, buf)
            return list(buf)
        read = self.dset.id.read_direct_chunk
        # Inflate with the exact output size as the buffer size (no regrowing), then view it in place:
        # the only copy left is the caller's flip-and-transpose into the batch.
        size = int(np.prod(self.shape))
        shape = self.shape
        if self.mode == "deflate":
            return [
                np.frombuffer(zlib.decompress(read((r, 0, 0, 0))[1], bufsize=size), np.uint8).reshape(shape)
                for r in rows.tolist()
            ]
        return [np.frombuffer(read((r, 0, 0, 0))[1], np.uint8).reshape(shape) for r in rows.tolist()]

    def _read_selection(self, rows: np.ndarray, out: np.ndarray) -> None:
        # Any other filter (lzf): HDF5 decodes in C, one row per H5Dread. (A single read of the union of
        # the rows is far slower: HDF5 walks the union selection once per chunk.)
        fspace = self.dset.id.get_space()
        mspace = h5py.h5s.create_simple((1, *self.shape))
        count = (1, *self.shape)
        zeros = (0,) * len(self.shape)
        for k, row in enumerate(rows.tolist()):
            fspace.select_hyperslab((row, *zeros), count)
            self.dset.id.read(mspace, fspace, out[k : k + 1])


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
                require_complete(path, manifest)
                counts.append({t: int(f[t]["input"].shape[0]) for t in manifest["tasks"]})
        available = {t for c in counts for t in c}
        known = task_names()
        wanted = [get_task(t).name for t in tasks] if tasks is not None else list(known)
        self.tasks = [t for t in known if t in wanted and t in available]
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
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[dict[str, Any]]:
        """A whole batch in one call (DataLoader uses this): rows of one task and file are read together
        and flipped, noised and transposed as arrays; items equal __getitem__ of each key."""
        parsed = [(int(k[0]), int(k[1])) if isinstance(k, (tuple, list)) else (int(k), None) for k in keys]
        groups: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for pos, (index, _) in enumerate(parsed):
            task, fid, row = self.locate(index)
            groups.setdefault((task, fid), []).append((pos, row))
        items: list[dict[str, Any]] = [{} for _ in keys]
        for (task, fid), members in groups.items():
            pos = [m[0] for m in members]
            x, y, sources = self._read_batch(
                task, fid, np.array([m[1] for m in members]), [parsed[p] for p in pos]
            )
            index = get_task(task).official_index
            for k, p in enumerate(pos):
                items[p] = {
                    "input": x[k],
                    "target": y[k],
                    "task": task,
                    "task_index": index,
                    "source": sources[k],
                }
        return items

    def _read_batch(
        self, task: str, fid: int, rows: np.ndarray, keys: list[tuple[int, int | None]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(inputs n x 3 x p x p, targets n x 3 x sp x sp, sources) for rows of one task and file."""
        n = len(rows)
        r_in, r_tg = self._reader(fid, task, "input"), self._reader(fid, task, "target")
        inp, tgt = r_in.rows(rows), r_tg.rows(rows)
        sources = self._reader(fid, task, "source")[rows].tolist()
        spec = get_task(task)
        noisy = self.fresh_noise and spec.spec.eval_input == "noise"  # Gaussian-noise kinds
        ops = [0] * n
        p_in, p_tg = r_in.shape, r_tg.shape
        noise = np.empty((n, *p_tg), dtype=np.float32) if noisy else None
        if self.augment or self.fresh_noise:
            # One generator per item, drawn in the same order as a single-item read, so results depend on
            # (seed, epoch, index) only, not on how keys are grouped into batches.
            for k, (index, epoch) in enumerate(keys):
                rng = self._rng(index, epoch)
                if self.augment:
                    ops[k] = int(rng.integers(0, 8))
                if noise is not None:
                    noise[k] = rng.standard_normal(p_tg, dtype=np.float32)
        x = np.empty((n, p_in[2], p_in[0], p_in[1]), dtype=np.uint8)
        y = np.empty((n, p_tg[2], p_tg[0], p_tg[1]), dtype=np.uint8)
        for k, op in enumerate(ops):
            # flip/rotate as views, then one strided copy each into the CHW batch
            x[k] = _dihedral(inp[k], op).transpose(2, 0, 1)
            y[k] = _dihedral(tgt[k], op).transpose(2, 0, 1)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        if noise is not None:
            noise *= np.float32(spec.sigma)
            noisy_in = ty.to(torch.float32) + torch.from_numpy(noise.transpose(0, 3, 1, 2))
            tx = quantize(noisy_in).to(torch.uint8)
        if self.as_float:
            tx, ty = tx.float(), ty.float()
        return tx, ty, sources


def _dihedral(a: np.ndarray, op: int) -> np.ndarray:
    """One of the 8 flips/rotations of H x W x C, as a view (op bits: horizontal flip, vertical flip,
    transpose)."""
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

    With `world_size` > 1 (one sampler per torchrun rank, same seed everywhere), each task's batches are
    dealt in groups of `world_size` consecutive batches and the groups are shuffled: at every step all
    ranks hold disjoint batches of the same task, so the global batch is still one task, as in the paper.
    Every rank yields the same number of batches; the batches of an incomplete last group are dropped.
    """

    def __init__(
        self,
        dataset: PatchDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.ranges = list(dataset.task_ranges.values())
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches_per_task(self, n: int) -> int:
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        return sum(self._batches_per_task(b - a) // self.world_size for a, b in self.ranges)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, w = self.epoch, self.world_size
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
        # groups of w batches of one task; with w = 1 this is exactly the unsharded batch list and order
        groups: list[list[np.ndarray]] = []
        for a, b in self.ranges:
            idx = rng.permutation(np.arange(a, b)) if self.shuffle else np.arange(a, b)
            batches = [
                idx[k * self.batch_size : (k + 1) * self.batch_size]
                for k in range(self._batches_per_task(b - a))
            ]
            groups += [batches[g * w : (g + 1) * w] for g in range(len(batches) // w)]
        order = rng.permutation(len(groups)) if self.shuffle else np.arange(len(groups))
        for k in order:
            yield [(int(i), epoch) for i in groups[k][self.rank]]
        self.epoch = epoch + 1
