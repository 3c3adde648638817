"""A training run's settings and folder: the initial model, identity, checkpoints, CSV logs.

    runs/NAME/config.json      what the run is (compared on every restart: a different run is refused)
    runs/NAME/config.toml      the resolved settings of the latest start (`--config` reruns it)
    runs/NAME/last.pt          model, optimiser, EMA, step, epoch, sampler position, best, RNG states
    runs/NAME/log.csv          step, epoch, task, loss, l1, contrastive, lr, seconds
    runs/NAME/val.csv          step, task, set, psnr, ssim, seconds (with --val)
    runs/NAME/model.safetensors  the final weights, loadable by `iptbench restore/eval --weights`
    runs/NAME/model_ema.safetensors, best.safetensors  the EMA weights (--ema), the best validated weights

last.pt is written to a temporary file, fsynced and renamed over the old one, so a kill -9 at any moment
leaves either the previous or the new checkpoint. It is read back with torch.load(weights_only=True):
only tensors and plain Python containers are stored, never pickled objects.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iptbench._version import __version__
from iptbench.errors import IptbenchError

CHECKPOINT = "last.pt"
CONFIG = "config.json"
CONFIG_TOML = "config.toml"
LOG = "log.csv"
VAL_LOG = "val.csv"
MODEL = "model.safetensors"
EMA_MODEL = "model_ema.safetensors"
BEST_MODEL = "best.safetensors"
EVENTS = "tb"
LOG_FIELDS = ("step", "epoch", "task", "loss", "l1", "contrastive", "lr", "seconds")
VAL_FIELDS = ("step", "task", "set", "psnr", "ssim", "seconds")
CHECKPOINT_FORMAT = "iptbench-train-1"
DEFAULT_MODEL = "ipt-base"
LR_SCHEDULES = ("step", "cosine")
# Keys of config.json's identity that are budgets, not identity: a finished run rerun with a larger budget
# continues. Old run folders stored them; they are ignored when comparing.
BUDGET_KEYS = ("epochs", "steps")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `iptbench train` takes. None means "the default for this kind of run" (see resolve)."""

    data: tuple[str, ...]
    out: str
    model: str | None = None  # None: ipt-base, or the --init checkpoint's architecture
    tasks: tuple[str, ...] | None = None  # None: every task in the data (and in --init)
    init: str | None = None
    epochs: int | None = None  # None (and no steps): 300 pre-training, 30 fine-tuning (paper)
    steps: int | None = None
    batch_size: int = 64  # per process
    lr: float | None = None  # None: 5e-5 pre-training, 2e-5 fine-tuning (paper)
    lr_schedule: str = "step"  # step: x lr_gamma at each milestone epoch; cosine: to 0 over the budget
    lr_milestones: tuple[int, ...] = (200,)  # epochs
    lr_gamma: float = 0.5
    warmup_steps: int = 0  # linear warm-up from lr/warmup_steps to lr
    ema: float | None = None  # EMA decay of the weights (e.g. 0.999); None: no EMA
    contrastive: float | None = None  # None: 0.1, or 0 when fine-tuning one task
    temperature: float = 0.07
    grad_clip: float = 1.0  # per-tensor L2 norm, as the MindSpore code; 0 disables
    val: tuple[str, ...] = ()  # benchmark sets, "mini", "holdout:N"
    val_every: int = 1000
    data_root: str | None = None  # None: $IPTBENCH_DATA, as `iptbench eval`
    workers: int = 2
    seed: int = 0
    save_every: int = 1000
    log_every: int = 10
    resume: bool = True
    device: str = "auto"
    fresh_noise: bool = True
    augment: bool = True
    amp: bool = True  # bf16 autocast on CUDA; CPU always runs fp32 (deterministic)
    channels_last: bool = False
    compile: bool = False  # torch.compile the training model
    verify_data: bool = False  # recompute the data files' content hashes from the pixels first
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        checks = [
            (bool(self.data), "give at least one DATA.h5 file"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be at least 1"),
            (self.steps is None or self.steps >= 1, "--steps must be at least 1"),
            (self.epochs is None or self.steps is None, "give --epochs or --steps, not both"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.lr is None or self.lr > 0, "--lr must be positive"),
            (self.lr_gamma > 0, "--lr-gamma must be positive"),
            (all(m >= 1 for m in self.lr_milestones), "--lr-milestones are epochs, each at least 1"),
            (self.contrastive is None or self.contrastive >= 0, "--contrastive must be 0 or more"),
            (self.temperature > 0, "--temperature must be positive"),
            (self.grad_clip >= 0, "--grad-clip must be 0 (off) or positive"),
            (self.workers >= 0, "--workers must be 0 or more"),
            (self.save_every >= 1 and self.log_every >= 1, "--save-every and --log-every must be at least 1"),
            (
                self.lr_schedule in LR_SCHEDULES,
                f"--lr-schedule must be step or cosine, not {self.lr_schedule!r}",
            ),
            (self.warmup_steps >= 0, "--warmup-steps must be 0 or more"),
            (self.ema is None or 0 < self.ema < 1, "--ema is a decay between 0 and 1 (e.g. 0.999)"),
            (self.val_every >= 1, "--val-every must be at least 1"),
            (all(v.strip() for v in self.val), "--val takes set names separated by commas (Set5,mini)"),
        ]
        for ok, message in checks:
            if not ok:
                raise IptbenchError(message)

    @property
    def run_dir(self) -> Path:
        return Path(self.out)


def epoch_lr(base_lr: float, milestones: tuple[int, ...] | list[int], gamma: float, epoch: int) -> float:
    """Step decay by `gamma` at each milestone epoch (official `--decay 200 --gamma 0.5`)."""
    return base_lr * gamma ** sum(1 for m in milestones if epoch >= m)


def step_lr(cfg: TrainConfig, base_lr: float, step: int, epoch: int, total: int) -> float:
    """The lr of the step that follows `step` steps (0-based), in epoch `epoch`, of a `total`-step budget.

    A pure function of its arguments, so a resumed run sets exactly the lr an uninterrupted one did. Only
    cosine reads `total`: that is why a cosine run's budget is part of its identity.
    """
    if cfg.lr_schedule == "cosine":
        span = max(total - cfg.warmup_steps, 1)
        done = min(max(step - cfg.warmup_steps, 0), span)
        lr = base_lr * 0.5 * (1.0 + math.cos(math.pi * done / span))
    else:
        lr = epoch_lr(base_lr, cfg.lr_milestones, cfg.lr_gamma, epoch)
    if step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr


# --------------------------------------------------------------------------- config.json


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    diffs = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
    return "; ".join(diffs[:3]) + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "")


# What runs made before these settings existed used; filled in so that such a run still continues.
_ADDED_DEFAULTS = {"lr_schedule": "step", "warmup_steps": 0, "schedule_steps": None, "ema": None}
_ADDED_DEFAULTS |= {"holdout": None}


def _comparable(stored: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in stored.items() if k not in BUDGET_KEYS}
    for key, value in _ADDED_DEFAULTS.items():
        out.setdefault(key, value)
    return out


def _refusal(run_dir: Path, stored: dict[str, Any], identity: dict[str, Any], files: Sequence[str]) -> str:
    """The one line that says why a run folder cannot be continued with these settings."""
    cosine = stored.get("lr_schedule") == identity.get("lr_schedule") == "cosine"
    if cosine and stored.get("schedule_steps") != identity.get("schedule_steps"):
        return (
            f"{run_dir} is a cosine-schedule run of {stored.get('schedule_steps')} steps: its lr at every "
            f"step depends on that budget, so continuing it to {identity.get('schedule_steps')} steps would "
            "not equal a straight run; keep the budget, or start a new --out (a step schedule can grow)"
        )
    old, new = stored.get("data"), identity.get("data")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old != new:
        for path, a, b in zip(files, old, new, strict=False):
            if a != b:
                return (
                    f"{path} is not the data file this run started with (its content hashes differ: "
                    f"{_differences(a, b)}); pass the original file, or use another --out"
                )
    return (
        f"{run_dir} holds a run with other settings ({_differences(stored, identity)}); "
        "use another --out, or --no-resume to start it over"
    )


STALE = (CHECKPOINT, LOG, VAL_LOG, MODEL, EMA_MODEL, BEST_MODEL, CONFIG_TOML)


def prepare_run_dir(
    run_dir: Path,
    identity: dict[str, Any],
    details: dict[str, Any],
    resume: bool,
    files: Sequence[str] = (),
) -> bool:
    """Create or check the run folder; True when a checkpoint exists to resume from.

    `identity` holds what determines the weights (compared on restart); `details` is informational.
    Nothing is written when resuming: the caller checks the checkpoint against the budget first, then
    calls write_run_config. `files` names the data files in messages.
    """
    identity = json.loads(json.dumps(identity))  # tuples -> lists, as read back
    cfg_path, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    if resume and cfg_path.is_file():
        try:
            stored = _comparable(json.loads(cfg_path.read_text())["identity"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise IptbenchError(f"{cfg_path} is not an iptbench run config; pick another --out") from None
        if stored != identity:
            raise IptbenchError(_refusal(run_dir, stored, identity, files))
        return ckpt.is_file()
    if run_dir.exists() and not run_dir.is_dir():
        raise IptbenchError(f"--out {run_dir} exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in STALE:
        (run_dir / stale).unlink(
            missing_ok=True
        )  # --no-resume starts over: nothing of the old run may survive
    shutil.rmtree(run_dir / EVENTS, ignore_errors=True)
    write_run_config(run_dir, identity, details)
    return False


def write_run_config(run_dir: Path, identity: dict[str, Any], details: dict[str, Any]) -> None:
    """config.json: the identity, and this start's details (a continued run has a new budget)."""
    payload = {"iptbench_version": __version__, "identity": identity, "details": details}
    atomic_write_bytes(run_dir / CONFIG, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


# --------------------------------------------------------------------------- checkpoints


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def _atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def rng_state() -> dict[str, Any]:
    """Every generator a step may draw from, as tensors / plain containers (weights_only-loadable)."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    _atomic(path, lambda f: torch.save({"format": CHECKPOINT_FORMAT, **payload}, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IptbenchError(
            f"cannot read {path} as a training checkpoint: {first}; delete it to start over"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise IptbenchError(f"{path} is not an iptbench training checkpoint; delete it or pick another --out")
    return obj


# --------------------------------------------------------------------------- CSV log


@dataclass
class StepRecord:
    step: int
    epoch: int
    task: str
    loss: float
    l1: float
    contrastive: float
    lr: float
    seconds: float

    def row(self) -> dict[str, str]:
        d = asdict(self)
        return {
            k: (
                f"{v:.6g}"
                if isinstance(v, float) and k != "seconds"
                else f"{v:.1f}"
                if k == "seconds"
                else str(v)
            )
            for k, v in d.items()
        }


class CsvLog:
    """Append-only CSV, flushed per row. On resume, rows past the checkpoint (written after the last save
    by the killed process) are dropped, so the log matches an uninterrupted run step for step."""

    def __init__(self, path: Path, fields: Sequence[str], resume_step: int | None) -> None:
        self.path, self.fields = path, tuple(fields)
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [
                    r
                    for r in csv.DictReader(f)
                    if r.get("step", "").isdigit() and int(r["step"]) <= resume_step
                ]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: Mapping[str, str]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow(row)


class RunLog(CsvLog):
    """log.csv: one StepRecord per log step."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        super().__init__(path, LOG_FIELDS, resume_step)

    def write(self, record: StepRecord | Mapping[str, str]) -> None:  # type: ignore[override]
        super().write(record.row() if isinstance(record, StepRecord) else record)
