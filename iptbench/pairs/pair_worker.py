"""The worker side of `iptbench build-data`: decode one source, crop, corrupt, hash and encode its pairs.

Every random choice comes from Generator(PCG64(SeedSequence([seed, source index, task index]))), never
from worker state, so a source's pairs do not depend on which process makes them or in what order.
Workers return the exact chunk bytes HDF5 will store; iptbench.pairs.builder is the single writer.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iptbench.degradations.arrays import to_uint8
from iptbench.degradations.rain import DEFAULT_RANGES, StreakBank
from iptbench.errors import ImageReadError, IptbenchError
from iptbench.images import read_image
from iptbench.pairs.pairfile import (
    STATUS_TOO_SMALL,
    STATUS_UNREADABLE,
    STATUS_USED,
    ChunkEncoder,
    SourceResult,
    TaskPayload,
    h5_compression,
)
from iptbench.tasks import (
    Registrations,
    Task,
    get_task,
    restore_registrations,
    runtime_registrations,
    uses_rain_streaks,
)

DEFAULT_PATCHES_PER_IMAGE = 2  # 1.28 M ImageNet images x 2 x 6 tasks ~ 15 M pairs, the paper's "over 10 M"


@dataclass(frozen=True)
class BuildConfig:
    tasks: tuple[str, ...]
    patch_size: int = 48
    patches_per_image: int = DEFAULT_PATCHES_PER_IMAGE
    seed: int = 0
    compression: str = "none"  # fastest to build and to read; gzip saves 29 % of the disk (README)
    rain_streaks: str | None = None
    # Shrink sources whose longer side is above this (MATLAB bicubic, antialiased) before cropping: a 48 px
    # crop of a 2560 px photo is nearly flat, while ImageNet-sized images (~500 px) and the test sets
    # have the texture the model must learn. None keeps every source at its own size.
    max_side: int | None = None

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.patches_per_image < 1:
            raise IptbenchError("--patch-size and --patches-per-image must be at least 1")
        if self.max_side is not None and self.max_side < self.min_side:
            raise IptbenchError(
                f"--max-side {self.max_side} is below the {self.min_side} px crop of the selected tasks"
            )
        if not self.tasks:
            raise IptbenchError("no tasks selected")
        h5_compression(self.compression)

    @property
    def min_side(self) -> int:
        """Images need this many pixels on each side: the largest crop of the selected tasks."""
        return self.patch_size * max(get_task(t).scale for t in self.tasks)


def rain_identity(cfg: BuildConfig) -> dict[str, Any]:
    if cfg.rain_streaks is None:
        return {"mode": "synthetic", "version": DEFAULT_RANGES.version, "ranges": asdict(DEFAULT_RANGES)}
    bank = StreakBank(Path(cfg.rain_streaks))
    h = hashlib.sha256()
    for path in bank.files:
        h.update(path.read_bytes())
    return {
        "mode": "streak-maps",
        "folder": str(cfg.rain_streaks),
        "files": len(bank.files),
        "sha256": h.hexdigest(),
    }


# -- worker side ----------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(cfg: BuildConfig) -> None:
    torch.set_num_threads(1)  # one image per process; intra-op threads would only oversubscribe the cores
    _WORKER["cfg"] = cfg
    _WORKER["encoder"] = ChunkEncoder(cfg.compression)
    _WORKER["bank"] = (
        StreakBank(Path(cfg.rain_streaks)) if cfg.rain_streaks and uses_rain_streaks(cfg.tasks) else None
    )


def task_rng(seed: int, source_index: int, task: Task) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, source_index, task.official_index]))
    )


def make_pairs(image: np.ndarray, index: int, task: Task, cfg: BuildConfig, bank: StreakBank | None):
    """(inputs K x p x p x 3, targets K x sp x sp x 3) for one image and task, uint8."""
    rng = task_rng(cfg.seed, index, task)
    side = cfg.patch_size * task.scale
    k = cfg.patches_per_image
    h, w = image.shape[:2]
    ys = rng.integers(0, h - side + 1, size=k)
    xs = rng.integers(0, w - side + 1, size=k)
    targets = np.stack([image[y : y + side, x : x + side] for y, x in zip(ys, xs, strict=True)])
    kind = task.spec  # the kind's corruption (iptbench.tasks); only a rain kind is handed the streak bank
    inputs = kind.corrupt(targets, task, rng, bank if kind.uses_rain_streaks else None)
    return inputs, targets


def _payload(index: int, inputs: np.ndarray, targets: np.ndarray, encoder: ChunkEncoder) -> TaskPayload:
    inputs, targets = np.ascontiguousarray(inputs), np.ascontiguousarray(targets)
    h = hashlib.sha256()
    tag = np.int64(index).astype("<i8").tobytes()
    for a, b in zip(inputs, targets, strict=True):
        h.update(a)  # contiguous rows: hashed through the buffer protocol, no copies
        h.update(b)
        h.update(tag)
    ins, in_masks = encoder.encode(inputs)
    tgs, tg_masks = encoder.encode(targets)
    masks = None if in_masks is None or tg_masks is None else in_masks + tg_masks
    return TaskPayload(len(inputs), ins, tgs, h.digest(), masks)


def shrink_to_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """uint8 H x W x 3 with its longer side cut to `max_side` by MATLAB's antialiased bicubic imresize,
    aspect ratio kept (sizes rounded), rounded once to uint8; unchanged when already small enough."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    from iptbench.ops import imresize

    factor = max_side / max(h, w)
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    chw = torch.tensor(image).permute(2, 0, 1).float()  # a copy: decoded arrays may be read-only
    small = imresize(chw, factor, "matlab", size=size).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(to_uint8(small))


def process_source(index: int, path: str) -> SourceResult:
    cfg: BuildConfig = _WORKER["cfg"]
    try:
        image = shrink_to_max_side(read_image(path), cfg.max_side)
    except ImageReadError as exc:
        return SourceResult(index, STATUS_UNREADABLE, exc.reason)
    h, w = image.shape[:2]
    if min(h, w) < cfg.min_side:
        return SourceResult(index, STATUS_TOO_SMALL, f"{w}x{h} is smaller than the {cfg.min_side} px crop")
    result = SourceResult(index, STATUS_USED)
    for name in cfg.tasks:
        inputs, targets = make_pairs(image, index, get_task(name), cfg, _WORKER["bank"])
        result.payloads[name] = _payload(index, inputs, targets, _WORKER["encoder"])
    return result


def _process_chunk(items: list[tuple[int, str]]) -> list[SourceResult]:
    results = [process_source(i, p) for i, p in items]
    # These go back to the writer through a pipe. NumPy arrays pickle (protocol 4) through an extra
    # copy and cost 4x what their bytes do: about 0.4 ms per 500x375 image, a third of its decode.
    for result in results:
        for payload in result.payloads.values():
            payload.inputs = [c if isinstance(c, bytes) else c.tobytes() for c in payload.inputs]
            payload.targets = [c if isinstance(c, bytes) else c.tobytes() for c in payload.targets]
    return results


def _init_pool_worker(cfg: BuildConfig, registrations: Registrations = ((), ())) -> None:
    # Ctrl-C reaches the whole process group. The parent alone handles it (rolls the file back, says one
    # line); a worker that raised KeyboardInterrupt too would print its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _block_sigint(False)  # make_pool blocked it while we started
    # A spawned worker knows only the built-in tasks; forked ones already hold these (a no-op for them).
    restore_registrations(registrations)
    _init_worker(cfg)


def default_start_method() -> str:
    # fork: workers start instantly and nothing torch-parallel has run in this process yet.
    return "fork" if sys.platform.startswith("linux") else "spawn"


def make_pool(cfg: BuildConfig, workers: int, start_method: str | None = None) -> ProcessPoolExecutor | None:
    """Start the workers before the output is opened, so no child inherits the HDF5 file or its lock."""
    if workers <= 1:
        return None
    ctx = mp.get_context(start_method or default_start_method())
    registrations = runtime_registrations(cfg.tasks)
    # SIGINT is blocked while the workers start: a child inherits the mask, so a Ctrl-C cannot reach it
    # before its initializer ignores it, and one pressed meanwhile reaches this process when unblocked
    # (ignoring it instead would drop it, and the build would run on).
    main = threading.current_thread() is threading.main_thread()
    if main:
        _block_sigint(True)
    try:
        pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_pool_worker, initargs=(cfg, registrations)
        )
        try:
            pool.submit(int).result()  # with fork, the first submit starts every worker: do it now
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise IptbenchError(
                f"build-data workers ({ctx.get_start_method()}) failed to start (their error is above); "
                "--workers 1 builds in this process"
            ) from None
    except BaseException:
        if main:
            _block_sigint(False)
        raise
    if main:
        try:
            _block_sigint(False)  # a Ctrl-C pressed while the workers started is raised here
        except KeyboardInterrupt:
            shutdown_pool(pool)
            raise
    return pool


def shutdown_pool(pool: ProcessPoolExecutor) -> None:
    """Stop the workers with Ctrl-C ignored: the build is over (finished, or already interrupted and rolled
    back), and a SIGINT landing in the executor's weakref callbacks would only print a traceback."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _block_sigint(block: bool) -> None:
    if hasattr(signal, "pthread_sigmask"):  # POSIX; elsewhere workers are spawned and ignore it themselves
        signal.pthread_sigmask(signal.SIG_BLOCK if block else signal.SIG_UNBLOCK, {signal.SIGINT})


def results_in_order(
    items: list[tuple[int, str]], cfg: BuildConfig, pool: ProcessPoolExecutor | None, workers: int, chunk: int
) -> Iterator[SourceResult]:
    """Results in source order. With a pool, a bounded window of chunks is in flight at a time."""
    if pool is None:
        threads = torch.get_num_threads()
        _init_worker(cfg)
        try:
            for i, p in items:
                yield process_source(i, p)
        finally:
            torch.set_num_threads(threads)
        return
    chunks = (items[i : i + chunk] for i in range(0, len(items), chunk))
    pending: deque[Future[list[SourceResult]]] = deque()
    for c in chunks:
        pending.append(pool.submit(_process_chunk, c))
        if len(pending) >= 4 * workers:
            break
    while pending:
        done = pending.popleft().result()
        nxt = next(chunks, None)
        if nxt is not None:
            pending.append(pool.submit(_process_chunk, nxt))
        yield from done
