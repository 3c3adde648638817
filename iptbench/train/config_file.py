"""Run settings as TOML (`iptbench train --config run.toml`), resolved against TrainConfig's defaults.

Keys are the long option names without the dashes, with `_` or `-` (`batch_size = 4`, `batch-size = 4`).
Resolution: TrainConfig's defaults, then the file, then the flags given on the command line. Lists may be
TOML arrays or comma strings (`tasks = ["sr-x2"]` or `tasks = "sr-x2"`). Paths are read as on the
command line, relative to the current folder. The resolved settings are written to the run folder as
config.toml, which `--config` reads back as it is.

HELP is the one description of every setting: the CLI's `--help` and the comments of the TOML files
print it.
"""

from __future__ import annotations

import difflib
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from iptbench.errors import IptbenchError
from iptbench.train.state import TrainConfig

HELP: dict[str, str] = {
    "data": "Build-data files (`iptbench build-data`).",
    "out": "Run folder (runs/NAME); rerunning continues it.",
    "model": "ipt-base (default), ipt-small or ipt-tiny; with --init: checked only.",
    "tasks": "Comma list, e.g. sr-x2 (default: every task in the data).",
    "init": "Fine-tune from these weights (our .safetensors or an official IPT_*.pt).",
    "epochs": "Budget in epochs (>= 1), default 300 pre-training / 30 fine-tuning; a larger one continues.",
    "steps": "Budget in steps (>= 1) instead of --epochs; a larger one continues a finished run.",
    "batch_size": "Patches per step, per process (>= 1).",
    "lr": "Learning rate (> 0), default 5e-5 (pre-training) / 2e-5 (fine-tuning).",
    "lr_schedule": "step (x --lr-gamma at each milestone epoch) or cosine (to 0 over the budget).",
    "lr_milestones": "Epochs (>= 1) at which lr *= --lr-gamma (step schedule).",
    "lr_gamma": "Factor (> 0) of the step schedule at each milestone.",
    "warmup_steps": "Linear lr warm-up over this many steps (>= 0; 0: none).",
    "ema": "Keep an EMA of the weights with this decay (0 < DECAY < 1, e.g. 0.999); validation scores it.",
    "contrastive": "Weight (>= 0) of the contrastive loss (default 0.1; 0 fine-tuning one task).",
    "temperature": "Contrastive softmax temperature (> 0).",
    "grad_clip": "Per-tensor gradient L2 clip (>= 0; 0 disables).",
    "val": "Validate on these sets: benchmark names (Set5,CBSD68), mini, holdout:N.",
    "val_every": "Steps (>= 1) between validations, and one at the end of the budget.",
    "data_root": "Folder holding the benchmark sets for --val (default: $IPTBENCH_DATA).",
    "workers": "DataLoader worker processes (>= 0; 0: in-process).",
    "seed": "Seed of the weights, batch order, flips and noise.",
    "save_every": "Steps (>= 1) between last.pt checkpoints.",
    "log_every": "Steps (>= 1) between log.csv rows.",
    "resume": "Continue the run in --out, or start over.",
    "device": "auto, cpu or cuda (torchrun: cuda:LOCAL_RANK).",
    "fresh_noise": "Draw new Gaussian noise for denoise pairs each epoch.",
    "augment": "Random flips/transposes.",
    "amp": "bf16 autocast and TF32 on CUDA (CPU is fp32).",
    "channels_last": "channels_last memory format.",
    "compile": "torch.compile the model (CUDA; a first step that compiles).",
    "verify_data": "Recompute the data files' content hashes from the pixels before the first step.",
}
KEYS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.name != "extra")
_HINTS = typing.get_type_hints(TrainConfig)


def defaults() -> dict[str, Any]:
    """TrainConfig's own defaults (data and out have none: they are required)."""
    out: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.name != "extra" and f.default is not MISSING:
            out[f.name] = f.default
    return out


def _kind(hint: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of a field's annotation."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _split(value: Any) -> list[Any] | None:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, list) else None


def coerce(key: str, value: Any, source: str) -> Any:
    """A TOML (or CLI) value as the field's type, or a one-line error naming the key and the source."""
    hint, _ = _kind(_HINTS[key])
    if typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        items = _split(value)
        if items is not None and all(isinstance(v, element) and not isinstance(v, bool) for v in items):
            return tuple(items)
        if items is not None and element is int and all(isinstance(v, str) and v.isdigit() for v in items):
            return tuple(int(v) for v in items)
        what = "integers" if element is int else "strings"
        raise IptbenchError(f"{source}: {key} must be a list of {what} (or a comma string), got {value!r}")
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        raise IptbenchError(f"{source}: {key} must be {names[hint]}, got {value!r}")
    return float(value) if hint is float else value


def load_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file, keys normalised to field names and values checked."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IptbenchError(f"--config {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IptbenchError(f"cannot read --config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise IptbenchError(f"--config {path} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in KEYS:
            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise IptbenchError(f"{path}: unknown key {key!r}; {hint}keys are the long option names of train")
        if name in out:
            raise IptbenchError(f"{path}: {name} is set twice (as {name} and with dashes)")
        out[name] = coerce(name, value, str(path))
    return out


def resolve(config_file: Path | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, then the file, then `given` (the flags typed on the command line), as field -> value."""
    values = defaults()
    if config_file is not None:
        values.update(load_toml(config_file))
    flags = {k: v for k, v in given.items() if k in KEYS}
    # --epochs and --steps are one budget in two units: a flag for either replaces the file's budget.
    for budget, other in (("epochs", "steps"), ("steps", "epochs")):
        if flags.get(budget) is not None and other not in flags:
            values[other] = None
    values.update(flags)
    if not values.get("data"):
        raise IptbenchError("give at least one DATA.h5 file (argument, or data = [...] in --config)")
    if not values.get("out"):
        raise IptbenchError('give the run folder with --out (or out = "runs/NAME" in --config)')
    return values


# --------------------------------------------------------------------------- writing TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's; DEL is the one control character JSON leaves raw and TOML forbids.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(values: Mapping[str, Any], header: str = "") -> str:
    """Every setting in field order, its help as a comment; unset ones (None) commented out."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in KEYS:
        lines.append(f"# {HELP[key]}")
        value = values.get(key)
        if value is None:
            lines.append(f"# {key} =")
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
