"""The training data: build-data files checked before a step is taken, and the held-out validation slice.

Every start reads each file's manifest and stored content hashes and refuses a file that is unfinished or
whose manifest disagrees with the file (pair counts, per-source digests, hash attributes): such a file was
edited or truncated after build-data finished, and its identity in config.json would be a lie.
`--verify-data` goes further and recomputes the hashes from the pixels (`iptbench data info --verify`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from iptbench.errors import IptbenchError
from iptbench.pairs.pairfile import combine_digests, read_manifest, require_complete

HOLDOUT_PREFIX = "holdout:"


def _inconsistent(path: str, why: str) -> IptbenchError:
    return IptbenchError(
        f"{path} has an inconsistent manifest ({why}); the file changed after build-data finished: "
        "rebuild it with its build-data command"
    )


def _check_task(f: h5py.File, path: str, manifest: dict[str, Any], j: int, task: str) -> None:
    """One task of one file: counts, stored hash attribute and per-source digests agree with the manifest."""
    if task not in f:
        raise _inconsistent(path, f"no /{task} group for a task it lists")
    rows = {k: int(f[task][k].shape[0]) for k in ("input", "target", "source")}
    expected = (manifest.get("counts") or {}).get(task)
    if len(set(rows.values())) != 1 or expected != rows["input"]:
        raise _inconsistent(path, f"{task}: manifest says {expected} pairs, file holds {rows}")
    stored = (manifest.get("hashes") or {}).get(task)
    attribute = f.attrs.get(f"sha256_{task}")
    if not stored or stored != attribute:
        raise _inconsistent(path, f"{task}: manifest hash {stored} but attribute {attribute}")
    if combine_digests(f["digests"][:, j]) != stored:
        raise _inconsistent(path, f"{task}: per-source digests do not give the stored hash {stored[:12]}")


def check_data_file(path: str) -> dict[str, Any]:
    """The manifest of a finished, self-consistent build-data file, or a one-line IptbenchError."""
    if not Path(path).is_file():
        raise IptbenchError(f"data file {path} not found; build one with `iptbench build-data`")
    try:
        with h5py.File(path, "r") as f:
            manifest = read_manifest(f)
            require_complete(path, manifest)
            counts = json.loads(f.attrs.get("counts", "null"))
            if counts != manifest.get("counts"):
                raise _inconsistent(path, f"pair counts {counts} vs manifest {manifest.get('counts')}")
            for j, task in enumerate(manifest["tasks"]):
                _check_task(f, path, manifest, j, task)
    except (OSError, KeyError, ValueError) as exc:  # h5py: truncated file, missing dataset, bad JSON
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IptbenchError(f"{path} is not a readable build-data file ({first}); rebuild it") from None
    return manifest


def read_manifests(files: Sequence[str]) -> list[dict[str, Any]]:
    return [check_data_file(path) for path in files]


def verify_pixels(files: Sequence[str]) -> None:
    """Recompute every task's content hash from the stored pixels (--verify-data); one line on a mismatch."""
    from iptbench.pairs.h5tools import verify

    for path in files:
        bad = [task for task, ok in verify(Path(path)).items() if not ok]
        if bad:
            raise IptbenchError(
                f"{path}: the pixels of {', '.join(bad)} do not match the stored content hash (the file was "
                "modified or is corrupt); rebuild it with its build-data command"
            )


# --------------------------------------------------------------------------- holdout:N


def holdout_count(val: Sequence[str]) -> int | None:
    """N of the one `holdout:N` entry of --val (None without one)."""
    counts = []
    for entry in val:
        name = entry.strip()
        if name.lower().startswith(HOLDOUT_PREFIX):
            text = name[len(HOLDOUT_PREFIX) :]
            if not text.isdigit() or int(text) < 1:
                raise IptbenchError(
                    f"--val {name}: holdout takes a number of pairs per task, e.g. holdout:200"
                )
            counts.append(int(text))
    if len(counts) > 1:
        raise IptbenchError("--val names holdout:N more than once; give one held-out slice")
    return counts[0] if counts else None


@dataclass(frozen=True)
class Split:
    """Per task: the global index range that trains, and the held-out indices that validate."""

    train: dict[str, tuple[int, int]]
    held: dict[str, tuple[int, int]]


def _source_of(ds: Any, index: int, cache: dict[tuple[str, int], np.ndarray]) -> tuple[int, int]:
    task, fid, row = ds.locate(index)
    if (task, fid) not in cache:
        with h5py.File(ds.files[fid], "r") as f:
            cache[(task, fid)] = f[task]["source"][...]
    return fid, int(cache[(task, fid)][row])


def split_holdout(ds: Any, n: int | None) -> Split:
    """The last n pairs of every task are held out; training pairs cut from the same source image as a
    held-out pair are dropped too, so no image is seen in training and validation. build-data writes rows
    in source order, so this removes at most one image's other patches per task."""
    ranges = dict(ds.task_ranges)
    if n is None:
        return Split(ranges, {})
    train, held, cache = {}, {}, {}
    for task, (a, b) in ranges.items():
        if b - a <= n:
            raise IptbenchError(f"--val holdout:{n} holds out every pair of {task} ({b - a}); take fewer")
        cut = b - n
        first = _source_of(ds, cut, cache)
        while cut > a and _source_of(ds, cut - 1, cache) == first:
            cut -= 1
        if cut == a:
            raise IptbenchError(f"--val holdout:{n} leaves {task} no pair from another image; take fewer")
        train[task], held[task] = (a, cut), (b - n, b)
    return Split(train, held)


class RangeView:
    """What TaskBatchSampler reads of a dataset (its task ranges), restricted to the training split."""

    def __init__(self, ranges: dict[str, tuple[int, int]]) -> None:
        self.task_ranges = ranges
