"""The HDF5 layout of a build-data file, and the crash-safe appending writer behind `iptbench build-data`.

Layout (see README, build-data, for a plain-h5py reading example):

    /sources                 (S,) UTF-8 strings: every source path of the (limited) source list
    /status                  (stop - start,) int8: per source of this file's slice: 0 pending, 1 used,
                             2 unreadable, 3 too small
    /digests                 (stop - start, T, 32) uint8: sha256 of each source's pairs, per task
    /<task>/input            (N, p, p, 3) uint8, one patch per chunk
    /<task>/target           (N, s*p, s*p, 3) uint8, one patch per chunk
    /<task>/source           (N,) int64: index into /sources
    root attributes          manifest (JSON), sha256_<task> (content hash), next_source, counts (JSON)

Content hash of a task: sha256 over the concatenation, in source order, of one digest per source of the
slice, each digest being sha256(input bytes, target bytes, source index as int64 little-endian, for every
pair of that source in order). Two levels make it mergeable: a merged file's hash is computed from the
shards' stored digests, so it equals the single-build hash without reading the pixels again.

Resumability: chunks are appended (as stored bytes, encoded by the workers), and at each commit the
per-source digests, status and row sources are written and flushed, and only then are `next_source` and
`counts` advanced and flushed again. A killed writer leaves a file whose attributes describe a
consistent prefix; resuming shrinks every dataset back to that prefix and carries on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from iptbench.errors import IptbenchError, describe_os_error
from iptbench.pairs.undolog import UndoFile
from iptbench.tasks import get_task

FORMAT = "iptbench-pairs"
FORMAT_VERSION = 1
STATUS_PENDING, STATUS_USED, STATUS_UNREADABLE, STATUS_TOO_SMALL = 0, 1, 2, 3
STATUS_NAMES = {STATUS_UNREADABLE: "unreadable", STATUS_TOO_SMALL: "too small"}
GZIP_LEVEL = 1  # 30 % smaller than raw, and levels 2-9 gain under 1 % on patches (measured with h5py)
Chunk = bytes | np.ndarray  # stored chunk bytes, or (for unfiltered data) the contiguous patch itself
_GROW = 4096  # rows added per resize, so resizing is not per source


def empty_digest() -> bytes:
    return hashlib.sha256(b"").digest()


def combine_digests(digests: np.ndarray) -> str:
    """Task hash from per-source digests (n, 32) uint8, in source order."""
    return hashlib.sha256(np.ascontiguousarray(digests, dtype=np.uint8).tobytes()).hexdigest()


def h5_compression(name: str) -> dict[str, Any]:
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL}
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "none":
        return {}
    raise IptbenchError(f"unknown compression {name!r}; use lzf, gzip or none")


def is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)


def open_h5(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> h5py.File:
    """h5py.File, with a failure (missing, truncated, not HDF5, locked...) as one IptbenchError line."""
    try:
        return h5py.File(path, mode, **kwargs)
    except OSError as exc:
        raise IptbenchError(f"cannot open {describe_os_error(exc, path)}") from None


def counts_attr(counts: dict[str, int]) -> np.bytes_:
    """The `counts` attribute (JSON) as a fixed-length string: it is rewritten at every commit.

    A variable-length string lives in HDF5's global heap; each rewrite takes a new 4 KB heap collection,
    and the old one is forgotten when the file closes (every commit), so files grew by 4 KB per commit.
    Readers see bytes, which json.loads takes as it is.
    """
    return np.bytes_(json.dumps(counts).encode("utf-8"))


def read_manifest(f: h5py.File) -> dict[str, Any]:
    raw = f.attrs.get("manifest")
    if raw is None:
        raise IptbenchError(f"{f.filename} is not an iptbench build-data file (no manifest attribute)")
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT:
        raise IptbenchError(
            f"{f.filename} is not an iptbench build-data file (format {manifest.get('format')})"
        )
    return manifest


def require_complete(path: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Refuse a build-data file whose build has not finished (its manifest is not marked complete)."""
    if not manifest.get("complete"):
        raise IptbenchError(f"{path} is unfinished: rerun its build-data command to complete it")


@dataclass
class TaskPayload:
    """One source's pairs for one task, as the stored chunk bytes (already compressed by a worker).

    masks: HDF5 filter masks per chunk, inputs then targets (None: all 0, every filter applied); lzf skips
    incompressible chunks, which HDF5 records with mask bit 0 set.
    """

    count: int
    inputs: list[Chunk]
    targets: list[Chunk]
    digest: bytes
    masks: list[int] | None = None


class ChunkEncoder:
    """Encodes patches into the exact chunk bytes HDF5's filter would store, in the calling process.

    Workers encode, so the single writer only calls write_direct_chunk. gzip is zlib level GZIP_LEVEL
    (what HDF5's deflate filter calls: compress2 with the default window and memory level); lzf has no
    Python binding, so it goes through h5py's own filter on an in-memory file and reads the stored chunk
    back (with its filter mask: lzf leaves incompressible chunks raw).
    """

    def __init__(self, compression: str) -> None:
        h5_compression(compression)
        self.compression = compression
        self._mem: h5py.File | None = None
        self._dsets: dict[tuple[int, ...], h5py.Dataset] = {}

    def encode(self, patches: np.ndarray) -> tuple[list[Chunk], list[int] | None]:
        """Chunk bytes (one per patch of a K x H x W x C uint8 array) and filter masks (None: all 0)."""
        if self.compression == "gzip":
            return [zlib.compress(p, GZIP_LEVEL) for p in np.ascontiguousarray(patches)], None
        if self.compression == "none":
            # The stored chunk is the raw patch: its (contiguous) rows go to write_direct_chunk as they are.
            return list(np.ascontiguousarray(patches)), None
        dset = self._dataset(patches.shape[1:])
        chunks: list[Chunk] = []
        masks: list[int] = []
        for p in patches:
            dset.write_direct(np.ascontiguousarray(p[None]))
            mask, data = dset.id.read_direct_chunk((0,) * patches.ndim)
            chunks.append(bytes(data))
            masks.append(int(mask))
        return chunks, masks

    def _dataset(self, shape: tuple[int, ...]) -> h5py.Dataset:
        dset = self._dsets.get(shape)
        if dset is None:
            if self._mem is None:
                self._mem = h5py.File(
                    f"chunks-{os.getpid()}-{id(self)}", "w", driver="core", backing_store=False
                )
            dset = self._dsets[shape] = self._mem.create_dataset(
                "x".join(map(str, shape)),
                shape=(1, *shape),
                chunks=(1, *shape),
                dtype=np.uint8,
                **h5_compression(self.compression),
            )
        return dset


@dataclass
class SourceResult:
    index: int
    status: int
    reason: str = ""
    payloads: dict[str, TaskPayload] = field(default_factory=dict)


class PairWriter:
    """Appends SourceResults in source order to OUTPUT.h5.partial and commits them atomically enough."""

    def __init__(self, f: h5py.File, manifest: dict[str, Any], journal: UndoFile) -> None:
        self._journal = journal
        self.manifest = manifest
        self.tasks: list[str] = list(manifest["tasks"])
        self.start, self.stop = manifest["source_range"]
        self.counts: dict[str, int] = json.loads(f.attrs["counts"])
        self.next_source: int = int(f.attrs["next_source"])
        self._sources: dict[str, list[int]] = {t: [] for t in self.tasks}
        # Per-source rows since the last commit; written in one slice each at commit time.
        self._digests: list[np.ndarray] = []
        self._status: list[int] = []
        self._rows = {t: self.counts[t] for t in self.tasks}  # next row to write, committed or not
        self._attach(f)
        self._capacity = {t: f[t]["input"].shape[0] for t in self.tasks}

    def _attach(self, f: h5py.File) -> None:
        # Without evictions, HDF5 writes metadata only when we flush: between commits the file on disk
        # keeps describing the last commit (new chunks land past its end-of-allocation and are ignored).
        # With evictions, a chunk-index node could reach the disk early and point past that end,
        # which makes a resumed file fail with "addr overflow".
        config = f.id.get_mdc_config()
        config.evictions_enabled = False
        config.incr_mode = config.decr_mode = config.flash_incr_mode = 0  # required with evictions off
        f.id.set_mdc_config(config)
        self.f = f
        self._dsets = {t: (f[t]["input"], f[t]["target"], f[t]["source"]) for t in self.tasks}
        self._chunk_writers = {
            t: (self._dsets[t][0].id.write_direct_chunk, self._dsets[t][1].id.write_direct_chunk)
            for t in self.tasks
        }
        self._digest_dset, self._status_dset = f["digests"], f["status"]

    # -- creation and reopening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, manifest: dict[str, Any], sources: Sequence[str]) -> PairWriter:
        """Write the empty skeleton to path.tmp, then rename, so `path` always opens."""
        tmp = path.with_name(path.name + ".tmp")
        p = manifest["patch_size"]
        start, stop = manifest["source_range"]
        comp = h5_compression(manifest["compression"])
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_dataset("sources", data=list(sources), dtype=h5py.string_dtype("utf-8"))
            n_local = stop - start
            f.create_dataset("status", shape=(n_local,), dtype=np.int8, fillvalue=STATUS_PENDING)
            f.create_dataset(
                "digests",
                shape=(n_local, len(manifest["tasks"]), 32),
                dtype=np.uint8,
                chunks=(max(1, min(n_local, 4096)), len(manifest["tasks"]), 32),
            )
            for name in manifest["tasks"]:
                task = get_task(name)
                g = f.create_group(name)
                g.attrs.update(
                    kind=task.kind, scale=task.scale, sigma=task.sigma or 0, index=task.official_index
                )
                for key, side in (("input", p), ("target", p * task.scale)):
                    g.create_dataset(
                        key,
                        shape=(0, side, side, 3),
                        maxshape=(None, side, side, 3),
                        chunks=(1, side, side, 3),
                        dtype=np.uint8,
                        track_times=False,
                        **comp,
                    )
                g.create_dataset("source", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.int64)
            f.attrs["manifest"] = json.dumps(manifest)
            f.attrs["next_source"] = start
            f.attrs["counts"] = counts_attr({t: 0 for t in manifest["tasks"]})
        # A stale log (from a partial deleted by --overwrite) must never be applied to the new file.
        path.with_name(path.name + ".undo").unlink(missing_ok=True)
        os.replace(tmp, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> PairWriter:
        journal = UndoFile(path)  # rolls a torn commit back first
        try:
            f = h5py.File(journal, "r+")
        except Exception:
            journal.close()
            raise
        try:
            writer = cls(f, read_manifest(f), journal)
            writer._truncate_to_commit()
        except Exception:
            f.close()
            journal.close()
            raise
        return writer

    def _truncate_to_commit(self) -> None:
        # Rows and digests past the last commit may hold data of a killed run: cut them off.
        for t in self.tasks:
            n = self.counts[t]
            for d in self._dsets[t]:
                if d.shape[0] != n:
                    d.resize(n, axis=0)
            self._capacity[t] = n
        status = self.f["status"]
        done = self.next_source - self.start
        if done < status.shape[0]:
            status[done:] = STATUS_PENDING
        self.f.flush()

    # -- appending ---------------------------------------------------------------------------------------
    def append(self, result: SourceResult) -> None:
        """Write the source's chunks; its digests, status and row sources wait for the next commit."""
        if result.index != self.next_source:
            raise RuntimeError(f"source {result.index} arrived out of order (expected {self.next_source})")
        digests = np.empty((len(self.tasks), 32), dtype=np.uint8)
        for j, t in enumerate(self.tasks):
            payload = result.payloads.get(t)
            if payload is None:
                digests[j] = np.frombuffer(empty_digest(), dtype=np.uint8)
                continue
            self._write_task(t, payload)
            self._sources[t].extend([result.index] * payload.count)
            digests[j] = np.frombuffer(payload.digest, dtype=np.uint8)
        self._digests.append(digests)
        self._status.append(result.status)
        self.next_source += 1

    def _write_task(self, t: str, payload: TaskPayload) -> None:
        row = self._rows[t]
        end = row + payload.count
        if end > self._capacity[t]:
            self._capacity[t] = end + _GROW
            self._dsets[t][0].resize(self._capacity[t], axis=0)
            self._dsets[t][1].resize(self._capacity[t], axis=0)
        write_in, write_tg = self._chunk_writers[t]
        masks = payload.masks or [0] * (2 * payload.count)
        for k, chunk in enumerate(payload.inputs):
            write_in((row + k, 0, 0, 0), chunk, masks[k])
        for k, chunk in enumerate(payload.targets):
            write_tg((row + k, 0, 0, 0), chunk, masks[payload.count + k])
        self._rows[t] = end

    def commit(self) -> None:
        """Flush the data, then advance the committed prefix and flush again."""
        if self._status:
            lo = self.next_source - len(self._status) - self.start
            hi = self.next_source - self.start
            self._digest_dset[lo:hi] = np.stack(self._digests)
            self._status_dset[lo:hi] = np.asarray(self._status, dtype=np.int8)
            self._digests, self._status = [], []
        for t in self.tasks:
            new = self._sources[t]
            if new:
                ds = self._dsets[t][2]
                n = self.counts[t]
                ds.resize(n + len(new), axis=0)
                ds[n:] = np.asarray(new, dtype=np.int64)
                self.counts[t] = n + len(new)
                self._sources[t] = []
        self.f.flush()
        self.f.attrs["counts"] = counts_attr(self.counts)
        self.f.attrs["next_source"] = self.next_source
        # Closing empties the (eviction-free) metadata cache, so memory stays bounded on huge builds.
        self.f.close()
        self._journal.commit()  # the commit point: before it, a kill rolls back to the previous commit
        self._attach(h5py.File(self._journal, "r+"))

    def finish(self, extra: dict[str, Any]) -> dict[str, str]:
        """Commit, trim to exact sizes, write hashes and the completed manifest; returns the hashes."""
        self.commit()
        for t in self.tasks:
            for d in self._dsets[t][:2]:
                d.resize(self.counts[t], axis=0)
        digests = self.f["digests"][...]
        hashes = {t: combine_digests(digests[:, j]) for j, t in enumerate(self.tasks)}
        for t, h in hashes.items():
            self.f.attrs[f"sha256_{t}"] = h
        self.manifest.update(extra, complete=True, counts=self.counts, hashes=hashes)
        self.f.attrs["manifest"] = json.dumps(self.manifest)
        self.f.flush()
        return hashes

    def status_counts(self) -> dict[str, int]:
        committed = self.next_source - len(self._status) - self.start
        status = np.concatenate([self._status_dset[:committed], np.asarray(self._status, dtype=np.int8)])
        return {name: int((status == code).sum()) for code, name in STATUS_NAMES.items()}

    @property
    def committed_source(self) -> int:
        """Sources before this index are in the file for good (a resume starts here)."""
        return self.next_source - len(self._status)

    def close(self) -> None:
        if self._journal.closed:  # closed already, or aborted: the file is at its last commit
            return
        if self.f.id.valid:
            self.f.close()
            self._journal.commit()  # a clean close is consistent: finish()'s hashes become durable here
        self._journal.close()

    def abort(self) -> None:
        """Close after a failure or Ctrl-C: the file goes back to the last commit, byte for byte.

        Closing normally would keep the chunks written since then; resuming cuts them out of the datasets
        but not out of the file, which is how an interrupted and resumed build used to end up larger.
        """
        try:
            if self.f.id.valid:
                self.f.close()
        except Exception:  # a close that fails (disk full) is undone by the rollback below
            pass
        self._journal.rollback()
