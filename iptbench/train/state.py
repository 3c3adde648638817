"""A training run's inputs and folder: data manifests, the initial model, settings, checkpoints, log.

    runs/NAME/config.json      what the run is (compared on every restart: a different run is refused)
    runs/NAME/last.pt          model, optimiser, schedule, step, epoch, sampler position, RNG states
    runs/NAME/log.csv          step, epoch, task, loss, l1, contrastive, lr, seconds
    runs/NAME/model.safetensors  the final weights, loadable by `iptbench restore/eval --weights`

last.pt is written to a temporary file, fsynced and renamed over the old one, so a kill -9 at any moment
leaves either the previous or the new checkpoint. It is read back with torch.load(weights_only=True):
only tensors and plain Python containers are stored, never pickled objects.
"""

from __future__ import annotations

import csv
import json
import os
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from iptbench._version import __version__
from iptbench.data.pairfile import read_manifest
from iptbench.errors import IptbenchError
from iptbench.models.checkpoints import load_model, load_state_dict_strict, sha256_file
from iptbench.models.ipt import IPT
from iptbench.models.registry import create_model, model_config
from iptbench.tasks import TASK_NAMES, get_task

CHECKPOINT = "last.pt"
CONFIG = "config.json"
LOG = "log.csv"
MODEL = "model.safetensors"
LOG_FIELDS = ("step", "epoch", "task", "loss", "l1", "contrastive", "lr", "seconds")
CHECKPOINT_FORMAT = "iptbench-train-1"
DEFAULT_MODEL = "ipt-base"


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
    lr_milestones: tuple[int, ...] = (200,)  # epochs
    lr_gamma: float = 0.5
    contrastive: float | None = None  # None: 0.1, or 0 when fine-tuning one task
    temperature: float = 0.07
    grad_clip: float = 1.0  # per-tensor L2 norm, as the MindSpore code; 0 disables
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


# --------------------------------------------------------------------------- data files


def read_manifests(files: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for path in files:
        if not Path(path).is_file():
            raise IptbenchError(f"data file {path} not found; build one with `iptbench build-data`")
        try:
            with h5py.File(path, "r") as f:
                manifest = read_manifest(f)
        except OSError as exc:
            raise IptbenchError(f"{path} is not a readable HDF5 build-data file ({exc})") from None
        if not manifest.get("complete"):
            raise IptbenchError(f"{path} is unfinished: rerun its build-data command first")
        out.append(manifest)
    return out


# --------------------------------------------------------------------------- what a run starts from


def architecture(config: Any) -> dict[str, Any]:
    return {
        k: v for k, v in config.to_dict().items() if k not in ("tasks", "name", "out_proj_bias", "dropout")
    }


def keep_tasks(src: IPT, tasks: Sequence[str], source: str) -> IPT:
    """A copy of `src` with only `tasks`' heads, tails and task-embedding rows (the body is shared)."""
    idx = [src.task_index(t) for t in tasks]
    with torch.device("meta"):
        model = IPT(src.config.replace(tasks=tuple(tasks)))
    model = model.to_empty(device="cpu")
    state: dict[str, torch.Tensor] = {}
    for key, value in src.state_dict().items():
        part, _, rest = key.partition(".")
        if part in ("head", "tail"):
            i, _, tail = rest.partition(".")
            if int(i) in idx:
                state[f"{part}.{idx.index(int(i))}.{tail}"] = value
        elif key == "body.query_embed.weight":
            state[key] = value[idx]
        else:
            state[key] = value
    load_state_dict_strict(model, state, source=source)
    return model


def build_model(
    cfg: TrainConfig, data_tasks: list[str]
) -> tuple[IPT, tuple[str, ...], dict[str, Any] | None]:
    """(model on CPU, its tasks in official order, identity of the --init file)."""
    wanted = [get_task(t).name for t in cfg.tasks] if cfg.tasks else None
    for t in wanted or []:
        if t not in data_tasks:
            raise IptbenchError(f"task {t} is not in the data files (they hold: {', '.join(data_tasks)})")
    if cfg.init is None:
        tasks = tuple(t for t in TASK_NAMES if t in (wanted or data_tasks))
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
    tasks = tuple(t for t in TASK_NAMES if t in chosen)
    init_id = {"file": Path(cfg.init).name, "sha256": sha256_file(cfg.init), "tasks": list(src.tasks)}
    return keep_tasks(src, tasks, cfg.init), tasks, init_id


# --------------------------------------------------------------------------- config.json


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    diffs = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
    return "; ".join(diffs[:3]) + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "")


def prepare_run_dir(run_dir: Path, identity: dict[str, Any], details: dict[str, Any], resume: bool) -> bool:
    """Create or check the run folder; True when a checkpoint exists to resume from.

    `identity` holds what determines the weights (compared on restart); `details` is informational.
    """
    identity = json.loads(json.dumps(identity))  # tuples -> lists, as read back
    cfg_path, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    if resume and cfg_path.is_file():
        try:
            stored = json.loads(cfg_path.read_text())["identity"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise IptbenchError(f"{cfg_path} is not an iptbench run config; pick another --out") from None
        if stored != identity:
            raise IptbenchError(
                f"{run_dir} holds a run with other settings ({_differences(stored, identity)}); "
                "use another --out, or --no-resume to start it over"
            )
        return ckpt.is_file()
    if run_dir.exists() and not run_dir.is_dir():
        raise IptbenchError(f"--out {run_dir} exists and is not a folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (ckpt, run_dir / LOG, run_dir / MODEL):
        stale.unlink(missing_ok=True)  # --no-resume starts over: nothing of the old run may survive
    payload = {"iptbench_version": __version__, "identity": identity, "details": details}
    atomic_write_bytes(cfg_path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
    return False


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


class RunLog:
    """Append-only CSV, flushed per row. On resume, rows past the checkpoint (written after the last save
    by the killed process) are dropped, so the log matches an uninterrupted run step for step."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        if resume_step is None or not path.is_file():
            with open(path, "w", newline="") as f:
                csv.DictWriter(f, LOG_FIELDS).writeheader()
            return
        with open(path, newline="") as f:
            rows = [
                r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step
            ]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def write(self, record: StepRecord) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(record.row())
