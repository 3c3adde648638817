"""The IPT trainer: multi-task pre-training and single-task fine-tuning, resumable and deterministic.

One step = one batch of one task (TaskBatchSampler), loss = L1 + lambda * SupCon over decoder tokens,
Adam, per-tensor gradient clipping, step lr decay at epoch milestones. Everything a step depends on is
either in last.pt (weights, Adam moments, step, epoch, batch position in the epoch, RNG states) or a pure
function of (seed, epoch, index) (batch order, flips, fresh noise), so a resumed run replays exactly the
batches an uninterrupted run would have seen and, on CPU, ends with the same bytes.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from iptbench.data.patches import PatchDataset, TaskBatchSampler
from iptbench.errors import IptbenchError
from iptbench.models.checkpoints import load_state_dict_strict, save_model
from iptbench.tasks import TASK_NAMES
from iptbench.train import distributed
from iptbench.train.losses import l1_loss, supcon_loss
from iptbench.train.state import (
    CHECKPOINT,
    LOG,
    MODEL,
    RunLog,
    StepRecord,
    TrainConfig,
    build_model,
    epoch_lr,
    load_checkpoint,
    prepare_run_dir,
    read_manifests,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

PRETRAIN_LR, FINETUNE_LR = 5e-5, 2e-5
PRETRAIN_EPOCHS, FINETUNE_EPOCHS = 300, 30
DEFAULT_CONTRASTIVE = 0.1


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


# --------------------------------------------------------------------------- data


class _Tagged(Dataset):
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


class _Positioned(Sampler[list[Any]]):
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


# --------------------------------------------------------------------------- one step


def clip_per_tensor(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale each gradient to L2 norm <= max_norm on its own (MindSpore ClipByNorm per tensor)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or max_norm <= 0:
        return
    norms = torch._foreach_norm(grads)
    torch._foreach_mul_(grads, [max_norm / torch.clamp(n, min=max_norm) for n in norms])


def _step(
    model: torch.nn.Module, batch: dict[str, Any], device: torch.device, lam: float, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    task = batch["task"][0]
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    x = batch["input"].to(device, non_blocking=True).float().contiguous(memory_format=fmt)
    y = batch["target"].to(device, non_blocking=True).float()
    amp = cfg.amp and device.type == "cuda"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        if lam > 0:
            out, tokens = model(x, task, return_features=True)
        else:
            out, tokens = model(x, task), None
    l1 = l1_loss(out, y)
    if tokens is not None:
        labels = batch["file"].to(device).long() * (1 << 40) + batch["source"].to(device).long()
        con = supcon_loss(tokens, labels, cfg.temperature)
    else:
        con = torch.zeros((), device=device)
    return l1 + lam * con, l1, con


# --------------------------------------------------------------------------- the run


def train(
    cfg: TrainConfig,
    *,
    on_start: Callable[[StartInfo], None] | None = None,
    on_step: Callable[[int, StepRecord | None, float], None] | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train (or continue) the run in cfg.out. stop_at: save and return after that global step, as a
    time-sliced job would. Callbacks run on rank 0 only; on_step gets the step, the record of the last
    log step (its loss; None before the first) and steps/s."""
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


def _train(
    cfg: TrainConfig,
    ctx: distributed.DistContext,
    on_start: Callable[[StartInfo], None] | None,
    on_step: Callable[[int, StepRecord | None, float], None] | None,
    stop_at: int | None,
) -> TrainResult:
    torch.manual_seed(cfg.seed + ctx.rank)
    np.random.seed(cfg.seed + ctx.rank)
    random.seed(cfg.seed + ctx.rank)
    device = ctx.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for what autocast leaves in fp32
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: not reproducible

    manifests = read_manifests(cfg.data)
    data_tasks = [t for t in TASK_NAMES if any(t in m["tasks"] for m in manifests)]
    model, tasks, init_id = build_model(cfg, data_tasks)
    for path, m in zip(cfg.data, manifests, strict=True):
        if m.get("patch_size") != model.patch_size:
            raise IptbenchError(
                f"{path} holds {m.get('patch_size')}-pixel patches but the model takes {model.patch_size}x"
                f"{model.patch_size} windows; rebuild it with build-data --patch-size {model.patch_size}"
            )
    finetune = cfg.init is not None
    lam = (
        cfg.contrastive
        if cfg.contrastive is not None
        else (0.0 if finetune and len(tasks) == 1 else DEFAULT_CONTRASTIVE)
    )
    base_lr = cfg.lr if cfg.lr is not None else (FINETUNE_LR if finetune else PRETRAIN_LR)
    ds = PatchDataset(cfg.data, tasks, augment=cfg.augment, fresh_noise=cfg.fresh_noise, seed=cfg.seed)
    sampler = TaskBatchSampler(ds, cfg.batch_size, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size)
    per_epoch = len(sampler)
    if per_epoch == 0:
        smallest = min(b - a for a, b in ds.task_ranges.values())
        raise IptbenchError(
            f"no full batch: the smallest task has {smallest} pairs, fewer than --batch-size {cfg.batch_size}"
            f" x {ctx.world_size} processes; lower --batch-size or add data"
        )
    epochs = cfg.epochs or (None if cfg.steps else FINETUNE_EPOCHS if finetune else PRETRAIN_EPOCHS)
    total = cfg.steps if cfg.steps is not None else int(epochs or 0) * per_epoch
    amp = cfg.amp and device.type == "cuda"
    identity = {
        "model": model.config.to_dict(),
        "init": init_id,
        "data": [
            {k: m.get(k) for k in ("tasks", "counts", "hashes", "patch_size", "seed", "sources_sha256")}
            for m in manifests
        ],
        "tasks": list(tasks),
        "epochs": epochs,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "world_size": ctx.world_size,
        "lr": base_lr,
        "lr_milestones": list(cfg.lr_milestones),
        "lr_gamma": cfg.lr_gamma,
        "contrastive": lam,
        "temperature": cfg.temperature,
        "grad_clip": cfg.grad_clip,
        "seed": cfg.seed,
        "fresh_noise": cfg.fresh_noise,
        "augment": cfg.augment,
        "precision": "bf16" if amp else "fp32",
        "channels_last": cfg.channels_last,
    }
    details = {
        "data": [str(Path(p).resolve()) for p in cfg.data],
        "init": cfg.init,
        "device": str(device),
        "workers": cfg.workers,
        "steps_per_epoch": per_epoch,
        "total_steps": total,
        **cfg.extra,
    }
    run_dir = cfg.run_dir
    outcome: tuple[str | None, bool] = (None, False)
    if ctx.is_main:
        try:
            outcome = (None, prepare_run_dir(run_dir, identity, details, cfg.resume))
        except IptbenchError as exc:
            outcome = (str(exc), False)
    error, has_checkpoint = distributed.broadcast(outcome, ctx)
    if error:
        raise IptbenchError(error)

    model.to(device).train()
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=base_lr, betas=(0.9, 0.999), eps=1e-8)
    step = epoch = position = 0
    seconds_before = 0.0
    resumed_from: int | None = None
    if has_checkpoint:
        ck = load_checkpoint(run_dir / CHECKPOINT)
        load_state_dict_strict(model, ck["model"], source=str(run_dir / CHECKPOINT))
        optimizer.load_state_dict(ck["optimizer"])
        step, epoch, position = int(ck["step"]), int(ck["epoch"]), int(ck["position"])
        seconds_before = float(ck["seconds"])
        set_rng_state(ck["rng"][ctx.rank])
        resumed_from = step
    net = distributed.wrap(model, ctx)
    positioned = _Positioned(sampler)
    loader = DataLoader(
        _Tagged(ds),
        batch_sampler=positioned,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(cfg.seed + ctx.rank),
    )
    log = RunLog(run_dir / LOG, resumed_from) if ctx.is_main else None
    if ctx.is_main and on_start is not None:
        on_start(
            StartInfo(
                total,
                step,
                per_epoch,
                tasks,
                model.config.name,
                model.num_parameters(),
                str(device),
                ctx.world_size,
                base_lr,
                lam,
            )
        )

    def checkpoint() -> None:
        states = distributed.gather(rng_state(), ctx)
        if ctx.is_main:
            save_checkpoint(
                run_dir / CHECKPOINT,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {
                        "base_lr": base_lr,
                        "milestones": list(cfg.lr_milestones),
                        "gamma": cfg.lr_gamma,
                        "epoch": epoch,
                    },
                    "step": step,
                    "epoch": epoch,
                    "position": position,
                    "seconds": seconds_before + time.perf_counter() - t0,
                    "rng": states,
                },
            )

    t0 = time.perf_counter()
    session_steps = 0
    record: StepRecord | None = None
    end = total if stop_at is None else min(total, stop_at)
    while step < end:
        positioned.set_position(epoch, position)
        lr = epoch_lr(base_lr, cfg.lr_milestones, cfg.lr_gamma, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for batch in loader:
            loss, l1, con = _step(net, batch, device, lam, cfg)
            loss.backward()
            clip_per_tensor(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # unused heads keep grad None: Adam skips them
            step, position, session_steps = step + 1, position + 1, session_steps + 1
            if step % cfg.log_every == 0 or step == end:
                # Reading the loss waits for the device and (with several ranks) all-reduces: only at log
                # steps, which every rank reaches together, so the steps between run without a sync.
                losses = torch.stack([loss, l1, con]).detach().float()
                values = distributed.mean_over_ranks(losses, ctx).tolist()
                record = StepRecord(
                    step, epoch, batch["task"][0], *values, lr, seconds_before + time.perf_counter() - t0
                )
                if not math.isfinite(values[0]):
                    raise IptbenchError(f"loss became {values[0]} by step {step} ({record.task}); lower --lr")
                if log is not None:
                    log.write(record)
            if position == per_epoch:
                epoch, position = epoch + 1, 0
            if step % cfg.save_every == 0 or step == end:
                checkpoint()
            if ctx.is_main and on_step is not None:
                on_step(step, record, session_steps / max(time.perf_counter() - t0, 1e-9))
            if step >= end:
                break
    model_path: Path | None = None
    if step >= total:
        model_path = run_dir / MODEL
        if ctx.is_main:  # save_model writes atomically and byte-reproducibly
            save_model(
                model,
                model_path,
                extra_metadata={"trained_steps": str(total), "tasks_trained": ",".join(tasks)},
            )
    distributed.barrier(ctx)
    return TrainResult(run_dir, model_path, step, total, epoch, resumed_from, record, ctx.is_main)
