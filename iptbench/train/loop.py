"""The IPT trainer: multi-task pre-training and single-task fine-tuning, resumable and deterministic.

One step = one batch of one task (TaskBatchSampler), loss = L1 + lambda * SupCon over decoder tokens,
Adam, per-tensor gradient clipping, the lr of `state.step_lr` (step decay at epoch milestones or cosine,
optional warm-up), optional EMA of the weights. Everything a step depends on is either in last.pt
(weights, Adam moments, EMA, step, epoch, batch position in the epoch, RNG states) or a pure function of
(seed, epoch, index) (batch order, flips, fresh noise), so a resumed run replays exactly the batches an
uninterrupted run would have seen and, on CPU, ends with the same bytes. Validation runs on a copy of the
weights and puts every RNG state back, so it never changes what training does.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from iptbench.errors import IptbenchError
from iptbench.pairs.patches import PatchDataset, TaskBatchSampler
from iptbench.train import distributed
from iptbench.train.runner import Trainer
from iptbench.train.setup import plan_run
from iptbench.train.state import StepRecord, TrainConfig


@dataclass(frozen=True)
class StartInfo:
    total_steps: int
    start_step: int
    steps_per_epoch: int
    tasks: tuple[str, ...]
    model: str
    num_parameters: int
    device: str
    world_size: int
    lr: float
    contrastive: float
    val: tuple[str, ...] = ()
    ema: float | None = None
    events: bool = False  # TensorBoard events are being written


@dataclass(frozen=True)
class ProgressInfo:
    """What the progress bar shows after every step (rank 0; nothing here waits for the device)."""

    step: int
    total: int
    epoch: int
    task: str
    lr: float
    patches_per_s: float
    record: StepRecord | None  # the last log step's losses (None before the first)
    val_psnr: float | None  # the last validation's mean PSNR


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path | None  # None when stopped early (stop_at)
    step: int
    total_steps: int
    epoch: int
    resumed_from: int | None
    final: StepRecord | None
    is_main: bool
    best: tuple[int, float] | None = None  # (step, mean validation PSNR) of best.safetensors
    ema_path: Path | None = None


# --------------------------------------------------------------------------- data


class Tagged(Dataset):
    """PatchDataset items plus the id of their file: source ids restart at 0 in every file, so the
    contrastive positives are (file, source) pairs, never two files' images that share an id."""

    def __init__(self, ds: PatchDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[Any]) -> list[dict[str, Any]]:
        items = self.ds.__getitems__(keys)
        for key, item in zip(keys, items, strict=True):
            item["file"] = self.ds.locate(int(key[0]) if isinstance(key, (tuple, list)) else int(key))[1]
        return items


class Positioned(Sampler[list[Any]]):
    """TaskBatchSampler started at (epoch, batch): the resume point, without loading skipped batches."""

    def __init__(self, inner: TaskBatchSampler) -> None:
        self.inner, self.epoch, self.skip = inner, 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return len(self.inner) - self.skip

    def __iter__(self) -> Iterator[list[Any]]:
        self.inner.set_epoch(self.epoch)
        return itertools.islice(iter(self.inner), self.skip, None)


def _seed_worker(worker_id: int) -> None:
    # Items draw from (seed, epoch, index) generators only; this pins anything else a worker might touch.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(ds: PatchDataset, sampler: Positioned, cfg: TrainConfig, rank: int, cuda: bool) -> DataLoader:
    return DataLoader(
        Tagged(ds),
        batch_sampler=sampler,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        pin_memory=cuda,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(cfg.seed + rank),
    )


# --------------------------------------------------------------------------- the run


def train(
    cfg: TrainConfig,
    *,
    on_start: Callable[[StartInfo], None] | None = None,
    on_step: Callable[[ProgressInfo], None] | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train (or continue) the run in cfg.out. stop_at: save and return after that global step, as a
    time-sliced job would. Callbacks run on rank 0 only."""
    ctx = distributed.setup(cfg.device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    if ctx.device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        return _train(cfg, ctx, on_start, on_step, stop_at)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        distributed.cleanup(ctx)


def _seed_and_flags(seed: int, device: torch.device) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for what autocast leaves in fp32
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: not reproducible


def _train(
    cfg: TrainConfig,
    ctx: distributed.DistContext,
    on_start: Callable[[StartInfo], None] | None,
    on_step: Callable[[ProgressInfo], None] | None,
    stop_at: int | None,
) -> TrainResult:
    if stop_at is not None and stop_at < 1:
        raise IptbenchError(f"--stop-at must be a step of at least 1, got {stop_at}")
    _seed_and_flags(cfg.seed + ctx.rank, ctx.device)
    plan = plan_run(cfg, ctx.rank, ctx.world_size, ctx.device)
    plan.details["process_group"] = ctx.backend  # informational: gpu_check reads it
    trainer = Trainer(cfg, ctx, plan)
    trainer.open_run()
    net = distributed.wrap(trainer.model, ctx)
    if cfg.compile:
        net = torch.compile(net)  # after DDP wrapping, as torch's DDP + compile guide does
    positioned = Positioned(plan.sampler)
    loader = make_loader(plan.dataset, positioned, cfg, ctx.rank, ctx.device.type == "cuda")
    if ctx.is_main and on_start is not None:
        model = plan.model
        on_start(
            StartInfo(
                plan.total, trainer.step, plan.per_epoch, plan.tasks, model.config.name,
                model.num_parameters(), str(ctx.device), ctx.world_size, plan.base_lr, plan.lam,
                tuple(v.name for v in plan.val_sets), cfg.ema, trainer.events_enabled,
            )
        )  # fmt: skip

    def progress(task: str, lr: float, rate: float) -> None:
        if on_step is not None:
            t = trainer
            on_step(ProgressInfo(t.step, plan.total, t.epoch, task, lr, rate, t.record, t.last_val))

    end = plan.total if stop_at is None else min(plan.total, stop_at)
    try:
        while trainer.step < end:
            positioned.set_position(trainer.epoch, trainer.position)
            trainer.run_epoch(net, loader, end, progress if ctx.is_main else None)
        return _finish(trainer)
    finally:
        trainer.close()


def _finish(trainer: Trainer) -> TrainResult:
    paths = trainer.save_final()
    t, plan = trainer, trainer.plan
    return TrainResult(
        t.run_dir, paths[0], t.step, plan.total, t.epoch, t.resumed_from, t.record, t.ctx.is_main,
        t.best, paths[1],
    )  # fmt: skip
