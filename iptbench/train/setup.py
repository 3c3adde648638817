"""What a run starts from: data files checked, the initial model, the data split, the budget, the identity.

`plan_run` does everything that can fail on bad input before the run folder is touched, so a typo costs
nothing and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from iptbench.errors import IptbenchError
from iptbench.io import sha256_file
from iptbench.models.checkpoints import keep_tasks, load_model
from iptbench.models.ipt import IPT
from iptbench.models.registry import create_model, model_config
from iptbench.pairs.patches import PatchDataset, TaskBatchSampler
from iptbench.tasks import get_task, task_names
from iptbench.train.data import RangeView, Split, holdout_count, read_manifests, split_holdout, verify_pixels
from iptbench.train.state import DEFAULT_MODEL, TrainConfig

PRETRAIN_LR, FINETUNE_LR = 5e-5, 2e-5
PRETRAIN_EPOCHS, FINETUNE_EPOCHS = 300, 30
DEFAULT_CONTRASTIVE = 0.1


def architecture(config: Any) -> dict[str, Any]:
    return {
        k: v for k, v in config.to_dict().items() if k not in ("tasks", "name", "out_proj_bias", "dropout")
    }


def build_model(
    cfg: TrainConfig, data_tasks: list[str]
) -> tuple[IPT, tuple[str, ...], dict[str, Any] | None]:
    """(model on CPU, its tasks in official order, identity of the --init file)."""
    wanted = [get_task(t).name for t in cfg.tasks] if cfg.tasks else None
    for t in wanted or []:
        if t not in data_tasks:
            raise IptbenchError(f"task {t} is not in the data files (they hold: {', '.join(data_tasks)})")
    if cfg.init is None:
        tasks = tuple(t for t in task_names() if t in (wanted or data_tasks))
        return create_model(cfg.model or DEFAULT_MODEL, tasks, seed=cfg.seed), tasks, None
    src = load_model(cfg.init)
    chosen = wanted or [t for t in data_tasks if t in src.tasks]
    missing = [t for t in chosen if t not in src.tasks]
    if missing or not chosen:
        raise IptbenchError(
            f"--init {cfg.init} has no head for {', '.join(missing or data_tasks)} (it holds "
            f"{', '.join(src.tasks)}); pick --tasks among those"
        )
    if cfg.model is not None:
        expected = architecture(model_config(cfg.model, src.tasks))
        if expected != architecture(src.config):
            diff = [
                f"{k} {src.config.to_dict()[k]} vs {v}"
                for k, v in expected.items()
                if src.config.to_dict()[k] != v
            ]
            raise IptbenchError(
                f"--init {cfg.init} is not shaped like {cfg.model} ({'; '.join(diff[:3])}); drop --model"
            )
    tasks = tuple(t for t in task_names() if t in chosen)
    init_id = {"file": Path(cfg.init).name, "sha256": sha256_file(cfg.init), "tasks": list(src.tasks)}
    return keep_tasks(src, tasks, cfg.init), tasks, init_id


@dataclass
class RunPlan:
    model: IPT  # on the CPU, not yet trained
    tasks: tuple[str, ...]
    lam: float  # contrastive weight
    base_lr: float
    dataset: PatchDataset
    split: Split
    sampler: TaskBatchSampler
    per_epoch: int
    total: int
    val_sets: list[Any]
    identity: dict[str, Any]
    details: dict[str, Any]


def _check_patch_size(cfg: TrainConfig, manifests: Sequence[dict[str, Any]], model: IPT) -> None:
    for path, m in zip(cfg.data, manifests, strict=True):
        if m.get("patch_size") != model.patch_size:
            raise IptbenchError(
                f"{path} holds {m.get('patch_size')}-pixel patches but the model takes {model.patch_size}x"
                f"{model.patch_size} windows; rebuild it with build-data --patch-size {model.patch_size}"
            )


def _budget(cfg: TrainConfig, per_epoch: int, finetune: bool) -> tuple[int | None, int]:
    """(epochs, total steps) of this start's budget."""
    epochs = cfg.epochs or (None if cfg.steps else FINETUNE_EPOCHS if finetune else PRETRAIN_EPOCHS)
    total = cfg.steps if cfg.steps is not None else int(epochs or 0) * per_epoch
    return epochs, total


def _sampler(cfg: TrainConfig, split: Split, rank: int, world_size: int) -> TaskBatchSampler:
    sampler = TaskBatchSampler(
        RangeView(split.train), cfg.batch_size, seed=cfg.seed, rank=rank, world_size=world_size
    )  # type: ignore[arg-type]  # the sampler reads task_ranges only
    if len(sampler) == 0:
        smallest = min(b - a for a, b in split.train.values())
        raise IptbenchError(
            f"no full batch: the smallest task has {smallest} training pairs, fewer than --batch-size "
            f"{cfg.batch_size} x {world_size} processes; lower --batch-size or add data"
        )
    return sampler


def plan_run(cfg: TrainConfig, rank: int, world_size: int, device: torch.device) -> RunPlan:
    """Check the inputs and work out the run; raises IptbenchError (one line) before anything is written."""
    from iptbench.benchmarks.registry import resolve_data_root
    from iptbench.train.validation import build_sets

    manifests = read_manifests(cfg.data)
    if cfg.verify_data:
        verify_pixels(cfg.data)  # every rank checks for itself: no collective waits on a long hash
    data_tasks = [t for t in task_names() if any(t in m["tasks"] for m in manifests)]
    model, tasks, init_id = build_model(cfg, data_tasks)
    _check_patch_size(cfg, manifests, model)
    finetune = cfg.init is not None
    lam = cfg.contrastive
    if lam is None:
        lam = 0.0 if finetune and len(tasks) == 1 else DEFAULT_CONTRASTIVE
    base_lr = cfg.lr if cfg.lr is not None else (FINETUNE_LR if finetune else PRETRAIN_LR)
    held = holdout_count(cfg.val)
    ds = PatchDataset(cfg.data, tasks, augment=cfg.augment, fresh_noise=cfg.fresh_noise, seed=cfg.seed)
    split = split_holdout(ds, held)
    sampler = _sampler(cfg, split, rank, world_size)
    val_sets = build_sets(cfg.val, tasks, resolve_data_root(cfg.data_root), cfg.data, split)
    epochs, total = _budget(cfg, len(sampler), finetune)
    amp = cfg.amp and device.type == "cuda"
    identity = {
        "model": model.config.to_dict(),
        "init": init_id,
        "data": [
            {k: m.get(k) for k in ("tasks", "counts", "hashes", "patch_size", "seed", "sources_sha256")}
            for m in manifests
        ],
        "tasks": list(tasks), "batch_size": cfg.batch_size, "world_size": world_size, "lr": base_lr,
        "lr_schedule": cfg.lr_schedule, "lr_milestones": list(cfg.lr_milestones), "lr_gamma": cfg.lr_gamma,
        "warmup_steps": cfg.warmup_steps,
        # cosine reads the budget at every step: only there is the budget part of what the run is
        "schedule_steps": total if cfg.lr_schedule == "cosine" else None,
        "ema": cfg.ema, "holdout": held, "contrastive": lam, "temperature": cfg.temperature,
        "grad_clip": cfg.grad_clip, "seed": cfg.seed, "fresh_noise": cfg.fresh_noise, "augment": cfg.augment,
        "precision": "bf16" if amp else "fp32", "channels_last": cfg.channels_last,
    }  # fmt: skip
    details = {
        "data": [str(Path(p).resolve()) for p in cfg.data], "init": cfg.init, "device": str(device),
        "workers": cfg.workers, "epochs": epochs, "steps": cfg.steps, "steps_per_epoch": len(sampler),
        "total_steps": total, "val": list(cfg.val), "val_every": cfg.val_every, "compile": cfg.compile,
        **cfg.extra,
    }  # fmt: skip
    return RunPlan(
        model, tasks, lam, base_lr, ds, split, sampler, len(sampler), total, val_sets, identity, details
    )
