"""The state of one training process and what it does at each step: update, log, validate, save.

Rank 0 writes every file; the other ranks take part in the collectives (DDP, loss averages, the validation
gather, the RNG-state gather of a checkpoint) at the same steps.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from iptbench.errors import IptbenchError
from iptbench.models.checkpoints import load_state_dict_strict, save_model
from iptbench.train import distributed
from iptbench.train.config_file import to_toml
from iptbench.train.ema import Ema
from iptbench.train.events import Events
from iptbench.train.setup import RunPlan
from iptbench.train.state import (
    BEST_MODEL,
    CHECKPOINT,
    CONFIG_TOML,
    EMA_MODEL,
    EVENTS,
    LOG,
    MODEL,
    VAL_FIELDS,
    VAL_LOG,
    CsvLog,
    RunLog,
    StepRecord,
    TrainConfig,
    atomic_write_bytes,
    load_checkpoint,
    prepare_run_dir,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_lr,
    write_run_config,
)  # fmt: skip
from iptbench.train.step import clip_per_tensor, step_losses
from iptbench.train.validation import Validator, mean_psnr

Progress = Callable[[str, float, float], None]  # (task, lr, patches/s) after each step


def _oom(cfg: TrainConfig, step: int, world_size: int, model: str) -> IptbenchError:
    return IptbenchError(
        f"CUDA ran out of memory at step {step + 1} with --batch-size {cfg.batch_size} per process ({model}, "
        f"{world_size} process(es)): lower --batch-size, or spread the batch over more GPUs with torchrun "
        "--nproc-per-node N"
    )


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: distributed.DistContext, plan: RunPlan) -> None:
        self.cfg, self.ctx, self.plan = cfg, ctx, plan
        self.run_dir = cfg.run_dir
        self.model = plan.model.to(ctx.device).train()
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=plan.base_lr, betas=(0.9, 0.999), eps=1e-8)
        self.ema = Ema(self.model, cfg.ema) if cfg.ema else None
        self.validator = (
            Validator(plan.val_sets, plan.tasks, ctx.rank, ctx.world_size) if plan.val_sets else None
        )
        self._copy: torch.nn.Module | None = None  # weights to validate or save, apart from training
        self.step = self.epoch = self.position = self.saved_step = 0
        self.seconds_before, self.t0, self.session_steps = 0.0, time.perf_counter(), 0
        self.resumed_from: int | None = None
        self.record: StepRecord | None = None
        self.best: tuple[int, float] | None = None
        self.last_val: float | None = None
        # Set on the device when a loss is not finite; read only where the run waits anyway (log, save,
        # validation), so the steps between never synchronise.
        self.bad = torch.zeros((), device=ctx.device)
        self.log: RunLog | None = None
        self.val_log: CsvLog | None = None
        self.events: Events | None = None

    @property
    def events_enabled(self) -> bool:
        return self.events is not None and self.events.enabled

    # -- the run folder ---------------------------------------------------------------------------------
    def open_run(self) -> None:
        """Create or check the folder, resume from last.pt, then record this start's settings."""
        plan, ctx = self.plan, self.ctx
        outcome: tuple[str | None, bool] = (None, False)
        if ctx.is_main:
            try:
                found = prepare_run_dir(
                    self.run_dir, plan.identity, plan.details, self.cfg.resume, self.cfg.data
                )
                outcome = (None, found)
            except IptbenchError as exc:
                outcome = (str(exc), False)
        error, has_checkpoint = distributed.broadcast(outcome, ctx)
        if error:
            raise IptbenchError(error)
        if has_checkpoint:
            self._resume(load_checkpoint(self.run_dir / CHECKPOINT))
        if self.step > plan.total:
            raise IptbenchError(
                f"{self.run_dir} is at step {self.step}, past this budget of {plan.total} steps; a budget "
                "can only grow (its weights are in model.safetensors), or start a new --out"
            )
        if ctx.is_main:
            self._record_start()
        self.t0 = time.perf_counter()  # seconds in log.csv count training, not setup

    def _record_start(self) -> None:
        from iptbench._version import __version__

        write_run_config(self.run_dir, self.plan.identity, self.plan.details)
        values = {k: v for k, v in asdict(self.cfg).items() if k != "extra"}
        header = f"iptbench {__version__}: the resolved settings of this run's latest start.\n"
        header += f"Rerun it: iptbench train --config {self.run_dir / CONFIG_TOML}"
        atomic_write_bytes(self.run_dir / CONFIG_TOML, to_toml(values, header).encode())
        self.log = RunLog(self.run_dir / LOG, self.resumed_from)
        if self.validator is not None:
            self.val_log = CsvLog(self.run_dir / VAL_LOG, VAL_FIELDS, self.resumed_from)
        self.events = Events(self.run_dir / EVENTS, self.resumed_from or 0)  # drop events past last.pt

    def _resume(self, ck: dict[str, Any]) -> None:
        load_state_dict_strict(self.model, ck["model"], source=str(self.run_dir / CHECKPOINT))
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.ema is not None:
            if ck.get("ema") is None:
                raise IptbenchError(
                    f"{self.run_dir / CHECKPOINT} has no EMA weights; start over with --no-resume"
                )
            self.ema.load(ck["ema"], self.model)
        self.step, self.epoch, self.position = int(ck["step"]), int(ck["epoch"]), int(ck["position"])
        self.saved_step = self.step
        self.seconds_before = float(ck["seconds"])
        best = ck.get("best")
        self.best = (int(best[0]), float(best[1])) if best else None
        set_rng_state(ck["rng"][self.ctx.rank])
        self.resumed_from = self.step

    # -- steps ------------------------------------------------------------------------------------------
    def run_epoch(self, net: torch.nn.Module, loader: Any, end: int, progress: Progress | None) -> None:
        """Steps from the current position to the end of the epoch, or to step `end`."""
        cfg, plan, device = self.cfg, self.plan, self.ctx.device
        for batch in loader:
            lr = step_lr(cfg, plan.base_lr, self.step, self.epoch, plan.total)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            try:
                loss, l1, con = step_losses(net, batch, device, plan.lam, cfg)
                loss.backward()
                clip_per_tensor(self.params, cfg.grad_clip)
                self.optimizer.step()
            except torch.OutOfMemoryError:
                raise _oom(cfg, self.step, self.ctx.world_size, plan.model.config.name) from None
            self.optimizer.zero_grad(set_to_none=True)  # unused heads keep grad None: Adam skips them
            self.bad = torch.maximum(self.bad, (~torch.isfinite(loss.detach())).float())
            if self.ema is not None:
                self.ema.update()
            self.step, self.position, self.session_steps = (
                self.step + 1,
                self.position + 1,
                self.session_steps + 1,
            )
            self._after_step(batch["task"][0], lr, (loss, l1, con), end)
            if progress is not None:
                elapsed = max(time.perf_counter() - self.t0, 1e-9)
                rate = self.session_steps * cfg.batch_size * self.ctx.world_size / elapsed
                progress(batch["task"][0], lr, rate)
            if self.step >= end:
                break

    def _after_step(self, task: str, lr: float, losses: tuple[torch.Tensor, ...], end: int) -> None:
        """Log, validate, save, at their steps; `end` (the budget, or --stop-at) always logs and saves."""
        cfg, total = self.cfg, self.plan.total
        if self.step % cfg.log_every == 0 or self.step == end:
            self._log(task, lr, losses)
        if self.position == self.plan.per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        if self.validator is not None and (self.step % cfg.val_every == 0 or self.step == total):
            self._check_finite(task)
            self.validate()
        if self.step % cfg.save_every == 0 or self.step == end:
            self._check_finite(task)
            self.checkpoint()

    def _log(self, task: str, lr: float, losses: tuple[torch.Tensor, ...]) -> None:
        # Reading the loss waits for the device and (with several ranks) all-reduces: only at log steps,
        # which every rank reaches together. The non-finite flag rides along in the same all-reduce.
        stacked = torch.stack([*(x.detach().float() for x in losses), self.bad])
        values = distributed.mean_over_ranks(stacked, self.ctx).tolist()
        seconds = self.seconds_before + time.perf_counter() - self.t0
        self.record = StepRecord(self.step, self.epoch, task, *values[:3], lr, seconds)
        if values[3] > 0 or not math.isfinite(values[0]):
            raise self._nonfinite(task, values[0])
        if self.log is not None:
            self.log.write(self.record)
        if self.events is not None:
            names = ("train/loss", "train/l1", "train/contrastive")
            self.events.scalars(self.step, {**dict(zip(names, values[:3], strict=True)), "train/lr": lr})

    def _check_finite(self, task: str) -> None:
        if distributed.mean_over_ranks(self.bad.reshape(1), self.ctx).item() > 0:
            raise self._nonfinite(task, math.nan)

    def _nonfinite(self, task: str, value: float) -> IptbenchError:
        kept = f"last.pt keeps step {self.saved_step}" if self.saved_step else "no checkpoint was written"
        what = "non-finite" if math.isfinite(value) else str(value)
        return IptbenchError(
            f"loss became {what} by step {self.step} ({task}); {kept}, the last with finite weights: "
            "lower --lr (in a new --out, or with --no-resume)"
        )

    # -- validation and checkpoints ---------------------------------------------------------------------
    def _weights(self) -> torch.nn.Module:
        """A copy of the model holding the weights to score or save: the EMA when on, else the live ones."""
        if self._copy is None:
            self._copy = copy.deepcopy(self.model).eval()
        source = self.ema.state if self.ema is not None else self.model.state_dict()
        load_state_dict_strict(self._copy, source, source="training weights")  # type: ignore[arg-type]
        return self._copy

    def validate(self) -> None:
        assert self.validator is not None
        saved = rng_state()  # put back afterwards: validation never moves the training RNG stream
        try:
            rows = self.validator.run(self._weights(), self.step)
        except torch.OutOfMemoryError:
            raise IptbenchError(
                f"CUDA ran out of memory validating at step {self.step}: validation restores whole images "
                "in 64-window batches; free memory with a smaller --batch-size"
            ) from None
        set_rng_state(saved)
        if not self.ctx.is_main:
            return
        mean = mean_psnr(rows)
        self.last_val = mean
        for row in rows:
            assert self.val_log is not None
            self.val_log.write(row.row())
        if self.events is not None:
            tags = {f"val/{r.task}/{r.set}/psnr": r.psnr for r in rows}
            self.events.scalars(self.step, {**tags, "val/mean_psnr": mean})
        if self.best is None or mean > self.best[1]:
            self.best = (self.step, mean)
            meta = {"trained_steps": str(self.step), "val_mean_psnr": repr(mean), "weights": self._kind()}
            save_model(self._copy, self.run_dir / BEST_MODEL, extra_metadata=meta)  # type: ignore[arg-type]

    def _kind(self) -> str:
        return f"ema {self.cfg.ema}" if self.ema is not None else "model"

    def checkpoint(self) -> None:
        states = distributed.gather(rng_state(), self.ctx)
        if self.ctx.is_main:
            save_checkpoint(
                self.run_dir / CHECKPOINT,
                {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "ema": self.ema.state if self.ema is not None else None,
                    "scheduler": {"schedule": self.cfg.lr_schedule, "base_lr": self.plan.base_lr},
                    "step": self.step,
                    "epoch": self.epoch,
                    "position": self.position,
                    "best": list(self.best) if self.best is not None else None,
                    "seconds": self.seconds_before + time.perf_counter() - self.t0,
                    "rng": states,
                },
            )
        self.saved_step = self.step

    def save_final(self) -> tuple[Path | None, Path | None]:
        """model.safetensors (and model_ema.safetensors) once the budget is reached."""
        paths: tuple[Path | None, Path | None] = (None, None)
        if self.step >= self.plan.total:
            total, tasks = str(self.plan.total), ",".join(self.plan.tasks)
            meta = {"trained_steps": total, "tasks_trained": tasks}
            paths = (self.run_dir / MODEL, self.run_dir / EMA_MODEL if self.ema is not None else None)
            if self.ctx.is_main:  # save_model writes atomically and byte-reproducibly
                save_model(self.model, self.run_dir / MODEL, extra_metadata=meta)
                if self.ema is not None:
                    meta = {**meta, "weights": self._kind()}
                    save_model(self._weights(), self.run_dir / EMA_MODEL, extra_metadata=meta)  # type: ignore[arg-type]
        distributed.barrier(self.ctx)
        return paths

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
