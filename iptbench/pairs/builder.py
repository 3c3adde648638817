"""`iptbench build-data`: images -> corrupted/clean patch pairs for the six IPT tasks, in one HDF5 file.

Parallel and deterministic: worker processes (iptbench.pairs.pair_worker) decode, crop, corrupt, hash and
encode (to the exact chunk bytes HDF5 stores) one source at a time; this, the main process, is the only
writer: it takes results strictly in source order through a bounded window of in-flight chunks and only
calls write_direct_chunk, so the file's datasets are the same whatever --workers is.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iptbench._version import __version__
from iptbench.errors import Interrupted, IptbenchError, describe_os_error
from iptbench.interrupts import ctrl_c_checkpoints
from iptbench.io import fsync_path, same_file
from iptbench.pairs.pair_worker import (
    BuildConfig,
    make_pairs,
    make_pool,
    process_source,
    rain_identity,
    results_in_order,
    shutdown_pool,
)
from iptbench.pairs.pairfile import (
    FORMAT,
    FORMAT_VERSION,
    PairWriter,
    SourceResult,
    is_disk_full,
    open_h5,
    read_manifest,
)
from iptbench.pairs.sources import Shard, sources_digest
from iptbench.tasks import uses_rain_streaks

__all__ = ["BuildConfig", "BuildSummary", "build", "check_build_output", "make_pairs", "process_source"]


# -- main side ------------------------------------------------------------------------------------------
@dataclass
class BuildSummary:
    output: Path
    sources: int
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    new_pairs: int = 0
    resumed_from: int | None = None
    already_complete: bool = False


def _created() -> str:
    # SOURCE_DATE_EPOCH (reproducible-builds convention) pins the only time stamp in the file.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = time.gmtime(int(epoch)) if epoch else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


def _identity(m: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "format",
        "format_version",
        "iptbench_version",
        "tasks",
        "seed",
        "patch_size",
        "patches_per_image",
    )
    keys += ("num_sources", "sources_sha256", "source_range", "shard", "compression", "rain", "max_side")
    return {k: m.get(k) for k in keys}


def _mismatch(a: dict[str, Any], b: dict[str, Any]) -> str:
    diffs = [f"{k} {a[k]!r} vs {b[k]!r}" for k in a if a[k] != b.get(k)]
    return "; ".join(diffs[:3])


def check_build_output(
    output: Path,
    source: str | os.PathLike[str],
    sources: Sequence[str | os.PathLike[str]],
    rain_streaks: str | os.PathLike[str] | None = None,
) -> None:
    """Refuse an OUTPUT that is SOURCE itself (a list file), one of its images, or a rain-streak folder.

    --overwrite would otherwise replace an input with the HDF5 file. Only sources with OUTPUT's file name
    are compared on disk, so a list of a million images costs a string scan.
    """
    output = Path(output)
    candidates = [source, *(s for s in sources if os.path.basename(s) == output.name)]
    if rain_streaks is not None:
        candidates.append(rain_streaks)
    for item in candidates:
        if same_file(output, item):
            raise IptbenchError(f"the output {output} is also an input ({item}): write it elsewhere")


def _manifest(
    cfg: BuildConfig, names: list[str], bounds: tuple[int, int], shard: Shard | None, command: Any
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "iptbench_version": __version__,
        "tasks": list(cfg.tasks),
        "seed": cfg.seed,
        "patch_size": cfg.patch_size,
        "patches_per_image": cfg.patches_per_image,
        "num_sources": len(names),
        "sources_sha256": sources_digest(names),
        "source_range": list(bounds),
        "shard": [shard.index, shard.count] if shard else None,
        "compression": cfg.compression,
        "rain": rain_identity(cfg) if uses_rain_streaks(cfg.tasks) else None,
        "command": list(command) if command is not None else None,
        "created": _created(),
        "complete": False,
    }
    if cfg.max_side is not None:  # absent otherwise: files built without it keep their bytes
        manifest["max_side"] = cfg.max_side
    return json.loads(json.dumps(manifest))  # tuples -> lists, as read back from the file


def build(
    cfg: BuildConfig,
    sources: Sequence[str | os.PathLike[str]],
    output: Path,
    *,
    workers: int = 1,
    shard: Shard | None = None,
    resume: bool = False,
    overwrite: bool = False,
    commit_every: int = 0,
    command: Sequence[str] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[SourceResult, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    start_method: str | None = None,
) -> BuildSummary:
    """Build (or resume) OUTPUT from sources. commit_every: sources per commit (0: about every 5 s).

    start_method: how worker processes start ("fork", "spawn", "forkserver"; None: fork on Linux).

    Ctrl-C raises Interrupted (exit status 130) after rolling OUTPUT.partial back to its last commit.
    """
    output = Path(output)
    names = [str(s) for s in sources]
    n = len(names)
    start, stop = shard.bounds(n) if shard else (0, n)
    if start >= stop:
        raise IptbenchError(f"shard {shard} of {n} sources is empty: use fewer shards")
    partial = output.with_name(output.name + ".partial")
    manifest = _manifest(cfg, names, (start, stop), shard, command)
    summary = BuildSummary(output, stop - start)
    if overwrite:
        partial.unlink(missing_ok=True)
    elif output.exists():
        return _finished(output, manifest, summary, resume)
    output.parent.mkdir(parents=True, exist_ok=True)
    pool = make_pool(cfg, workers, start_method)
    try:
        writer = _open_writer(partial, manifest, names, log)
        try:
            run = (pool, workers), commit_every, on_start, on_result
            return _run(cfg, names, writer, summary, output, partial, *run)
        except BaseException as exc:
            writer.abort()  # back to the last commit: what a resume starts from, nothing orphaned
            if isinstance(exc, KeyboardInterrupt):
                done = writer.committed_source - writer.start
                raise Interrupted(
                    f"interrupted: {partial} keeps {done:,} finished sources; rerun the command to resume"
                ) from None
            raise
        finally:
            writer.close()
    finally:
        if pool is not None:
            shutdown_pool(pool)


def _finished(output: Path, manifest: dict[str, Any], summary: BuildSummary, resume: bool) -> BuildSummary:
    """The summary of an OUTPUT that already exists: only --resume accepts it, and only if built alike."""
    if not resume:
        raise IptbenchError(f"{output} exists: pass --overwrite to rebuild it (or --resume to check it)")
    with open_h5(output, "r") as f:
        done = read_manifest(f)
    if _identity(done) != _identity(manifest):
        raise IptbenchError(
            f"{output} was built with other options ({_mismatch(_identity(done), _identity(manifest))})"
        )
    summary.already_complete = True
    summary.pairs, summary.hashes = done["counts"], done["hashes"]
    return summary


def _open_writer(
    partial: Path, manifest: dict[str, Any], names: list[str], log: Callable[[str], None] | None
) -> PairWriter:
    if partial.exists():
        try:
            writer = PairWriter.open(partial)
        except OSError as exc:
            if is_disk_full(exc) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise  # the file is fine; the CLI says what stands in the way
            reason = describe_os_error(exc, partial)  # damaged, truncated: starting over is the way out
            raise IptbenchError(f"cannot resume {reason}; pass --overwrite to start again") from None
        except (KeyError, ValueError, RuntimeError) as exc:
            raise IptbenchError(f"cannot resume {partial} ({exc}); pass --overwrite to start again") from None
        old = _identity(writer.manifest)
        if old != _identity(manifest):
            writer.close()
            raise IptbenchError(
                f"{partial} was started with other options ({_mismatch(old, _identity(manifest))}); "
                "rerun with those options to finish it, or pass --overwrite"
            )
        if log:
            log(f"resuming {partial} at source {writer.next_source}")
        return writer
    partial.with_name(partial.name + ".tmp").unlink(missing_ok=True)
    try:
        return PairWriter.create(partial, manifest, names)
    except OSError as exc:
        partial.with_name(partial.name + ".tmp").unlink(missing_ok=True)
        if is_disk_full(exc):
            raise IptbenchError(f"disk full while creating {partial}: free some space and rerun") from None
        raise


def _run(
    cfg: BuildConfig,
    names: list[str],
    writer: PairWriter,
    summary: BuildSummary,
    output: Path,
    partial: Path,
    pool_workers: tuple[ProcessPoolExecutor | None, int],
    commit_every: int,
    on_start: Callable[[int, int], None] | None,
    on_result: Callable[[SourceResult, int], None] | None,
) -> BuildSummary:
    t0 = time.perf_counter()
    first = writer.next_source
    if first != writer.start:
        summary.resumed_from = first
    items = [(i, names[i]) for i in range(first, writer.stop)]
    if on_start:
        on_start(writer.stop - writer.start, first - writer.start)
    last_commit, since = time.monotonic(), 0
    pool, workers = pool_workers
    chunk = max(1, min(8, len(items) // (8 * max(workers, 1)) or 1))
    try:
        with ctrl_c_checkpoints() as check:
            for result in results_in_order(items, cfg, pool, workers, chunk):
                check()  # before the write: an interrupted build keeps what was committed
                writer.append(result)
                new = sum(p.count for p in result.payloads.values())
                summary.new_pairs += new
                since += 1
                if on_result:
                    on_result(result, new)
                now = time.monotonic()
                if (commit_every and since >= commit_every) or (not commit_every and now - last_commit > 5.0):
                    writer.commit()
                    last_commit, since = now, 0
            check()
        skipped = writer.status_counts()
        hashes = writer.finish({"skipped": skipped, "build_seconds": round(time.perf_counter() - t0, 3)})
    except OSError as exc:
        if is_disk_full(exc):
            raise IptbenchError(
                f"disk full while writing {partial}: free space and rerun the same command to resume"
            ) from None
        raise
    writer.close()
    if sum(writer.counts.values()) == 0:
        partial.unlink()
        raise IptbenchError(
            f"no usable image among {summary.sources} sources (skipped: {skipped}; need {cfg.min_side} px "
            "per side): nothing written"
        )
    fsync_path(partial)  # the data reaches the disk before the name says the build is complete
    os.replace(partial, output)
    summary.skipped = skipped
    summary.pairs = dict(writer.counts)
    summary.used = summary.sources - sum(skipped.values())
    summary.hashes = hashes
    summary.seconds = time.perf_counter() - t0
    return summary
