"""Checkpoints: iptbench's safetensors format and the official IPT_*.pt files.

Our format is a safetensors file whose metadata holds the full model config (JSON, tasks included), so
the file alone rebuilds the model. Official files are plain PyTorch state dicts with the official keys;
their architecture is inferred from tensor shapes (heads cannot be: 12 by default), and loading is
strict: leftover or missing keys and wrong shapes are errors that name them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from iptbench.errors import IptbenchError, torch_load_error
from iptbench.io import sha256_file
from iptbench.models.ipt import IPT, IPTConfig
from iptbench.tasks import OFFICIAL_TASK_NAMES, get_task

FORMAT_NAME = "iptbench-ipt"
FORMAT_VERSION = "1"
SAFETENSORS_SUFFIXES = (".safetensors",)
_OFFICIAL_SIX = OFFICIAL_TASK_NAMES  # sr-x2, sr-x3, sr-x4, derain, denoise-30, denoise-50 (MindSpore order)
_POSITION_IDS = "body.position_encoding.position_ids"


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    kind: str  # "iptbench" or "official"
    config: IPTConfig
    num_parameters: int
    sha256: str
    metadata: dict[str, str]


def _short(keys: Sequence[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict_strict(model: IPT, state: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """Copy `state` into `model`, refusing any unused key, missing key or shape mismatch (all listed)."""
    expected = model.state_dict()
    unused = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if unused:
        problems.append(f"{len(unused)} unused keys: {_short(unused)}")
    if missing:
        problems.append(f"{len(missing)} missing keys: {_short(missing)}")
    if shapes:
        problems.append(f"wrong shapes: {_short(shapes, 4)}")
    if problems:
        raise IptbenchError(
            f"{source} does not match the {model.config.name} architecture: {'; '.join(problems)}; "
            "check --num-heads/--tasks or that the file is an IPT checkpoint"
        )
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(state[k].to(dtype=v.dtype) if v.is_floating_point() else state[k])


# --------------------------------------------------------------------------- our format


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


def save_model(
    model: IPT,
    path: str | os.PathLike[str],
    *,
    extra_metadata: Mapping[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write weights + config to a .safetensors file (tensors made contiguous; floating-point tensors
    stored as `dtype` when given, e.g. float16 to halve a shipped file; loading casts back to float32).

    Atomic (a temporary file, then a rename) and byte-reproducible: safetensors writes its header map in
    hash order, which changes from process to process, so the header is rewritten with sorted keys.
    Tensor offsets count from the end of the header, so only the header changes.
    """
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach()
        .cpu()
        .to(dtype=dtype if dtype is not None and v.is_floating_point() else v.dtype)
        .contiguous()
        .clone()
        for k, v in model.state_dict().items()
    }
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "tasks": json.dumps(list(model.tasks)),
        **(extra_metadata or {}),
    }
    data = save(tensors, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        f.write(memoryview(data)[8 + size :])
    os.replace(tmp, path)
    return path


def _read_safetensors(path: Path) -> tuple[IPTConfig, dict[str, Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise IptbenchError(f"cannot read {path} as safetensors: {str(exc).splitlines()[0]}") from None
    if metadata.get("format") != FORMAT_NAME or "config" not in metadata:
        raise IptbenchError(
            f"{path} is a safetensors file without iptbench model metadata; convert official weights "
            "with `iptbench weights convert`"
        )
    try:
        config = IPTConfig.from_dict(json.loads(metadata["config"]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise IptbenchError(f"{path}: corrupt config metadata ({exc})") from None
    return config, state, metadata


# --------------------------------------------------------------------------- official format


def read_official_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """torch.load(weights_only=True) of an official file; unwraps {'state_dict': ...} and 'model.'."""
    path = Path(path)
    if not path.is_file():
        raise IptbenchError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # permissions, I/O: the CLI names the file and the cause
    except Exception as exc:  # torch raises many types for foreign or unsafe pickles
        raise torch_load_error(path, exc) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise IptbenchError(f"{path} does not hold a plain state dict of tensors")
    state = dict(obj)
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    return state


def _indices(state: Mapping[str, Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := rx.match(k))})


def _tail_scale(state: Mapping[str, Tensor], t: int, n_feats: int) -> int:
    if f"tail.{t}.0.0.weight" not in state:
        return 1
    out = state[f"tail.{t}.0.0.weight"].shape[0]
    if out == 9 * n_feats:
        return 3
    if out == 4 * n_feats:
        return 4 if f"tail.{t}.0.2.weight" in state else 2
    raise IptbenchError(f"tail {t} has an upsampler of {out} channels, which matches no IPT scale")


def _task_hint_from_name(path: Path) -> str | None:
    stem = path.stem.lower().replace("_", "").replace("-", "")
    for pattern, task in (("denoise30", "denoise-30"), ("denoise50", "denoise-50"), ("derain", "derain")):
        if pattern in stem:
            return task
    return None


def infer_official_config(
    state: Mapping[str, Tensor],
    *,
    num_heads: int = 12,
    tasks: Sequence[str] | None = None,
    path: Path | None = None,
) -> IPTConfig:
    """Recover the architecture from tensor shapes; `tasks` names the file's heads in index order."""
    if "head.0.0.weight" not in state:
        raise IptbenchError("no head.0.0.weight key: this is not an official IPT state dict")
    n_feats, n_colors = state["head.0.0.weight"].shape[:2]
    heads = _indices(state, r"head\.(\d+)\.")
    tails = _indices(state, r"tail\.(\d+)\.")
    if heads != list(range(len(heads))) or tails != heads:
        raise IptbenchError(f"head indices {heads} and tail indices {tails} do not form one task list")
    layers = _indices(state, r"body\.encoder\.layers\.(\d+)\.")
    dec_layers = _indices(state, r"body\.decoder\.layers\.(\d+)\.")
    if not layers or len(layers) != len(dec_layers):
        raise IptbenchError(f"{len(layers)} encoder vs {len(dec_layers)} decoder layers: not an IPT body")
    dim = state["body.encoder.layers.0.self_attn.in_proj_weight"].shape[1]
    patch_dim = round((dim / n_feats) ** 0.5)
    if patch_dim * patch_dim * n_feats != dim:
        raise IptbenchError(f"embedding dim {dim} is not n_feats ({n_feats}) times a square")
    no_mlp = "body.linear_encoding.weight" not in state
    no_pos = "body.position_encoding.pe.weight" not in state
    if not no_pos:
        seq = state["body.position_encoding.pe.weight"].shape[0]
    elif not no_mlp:
        seq = state["body.query_embed.weight"].shape[1] // dim
    else:
        raise IptbenchError("neither a position table nor a task embedding: cannot infer the patch size")
    grid = round(seq**0.5)
    if grid * grid != seq:
        raise IptbenchError(f"{seq} tokens per window is not a square grid")
    n_rows = state["body.query_embed.weight"].shape[0] if not no_mlp else len(heads)
    if n_rows != len(heads):
        raise IptbenchError(
            f"the task embedding has {n_rows} rows but the file has {len(heads)} heads; iptbench needs one "
            "row per head (IPT_pretrain.pt: 6 and 6)"
        )
    scales = [_tail_scale(state, t, n_feats) for t in heads]
    task_names = _name_tasks(scales, tasks, path)
    return IPTConfig(
        tasks=task_names,
        n_feats=int(n_feats),
        n_colors=int(n_colors),
        patch_size=grid * patch_dim,
        patch_dim=patch_dim,
        num_heads=num_heads,
        num_layers=len(layers),
        no_mlp=no_mlp,
        no_pos=no_pos,
        no_norm="body.encoder.layers.0.norm1.weight" not in state,
        out_proj_bias="body.encoder.layers.0.self_attn.out_proj.bias" in state,
        name="ipt-base"
        if (n_feats, dim, len(layers), grid * patch_dim) == (64, 576, 12, 48)
        else "ipt-custom",
    )


def _name_tasks(scales: list[int], tasks: Sequence[str] | None, path: Path | None) -> tuple[str, ...]:
    if tasks:
        names = tuple(get_task(t).name for t in tasks)
        if len(names) != len(scales):
            raise IptbenchError(f"--tasks names {len(names)} tasks but the file has {len(scales)} heads")
        wrong = [
            f"{n} (file scale x{s})" for n, s in zip(names, scales, strict=True) if get_task(n).scale != s
        ]
        if wrong:
            raise IptbenchError(f"--tasks does not match the tails' scales: {', '.join(wrong)}")
        return names
    if scales == [get_task(t).scale for t in _OFFICIAL_SIX]:
        return _OFFICIAL_SIX
    if len(scales) == 1 and scales[0] > 1:
        return (f"sr-x{scales[0]}",)
    if len(scales) == 1:
        hint = _task_hint_from_name(path) if path is not None else None
        if hint:
            return (hint,)
        raise IptbenchError(
            "a scale-1 checkpoint could be derain, denoise-30 or denoise-50 and the file name does not say; "
            "pass --tasks"
        )
    raise IptbenchError(f"cannot name tasks for tail scales {scales}; pass --tasks with one name per head")


def official_to_model(
    state: Mapping[str, Tensor],
    *,
    num_heads: int = 12,
    tasks: Sequence[str] | None = None,
    path: Path | None = None,
) -> IPT:
    config = infer_official_config(state, num_heads=num_heads, tasks=tasks, path=path)
    state = dict(state)
    if _POSITION_IDS not in state and not config.no_pos:
        # Some PyTorch versions save buffers non-persistently; the ids are always 0..L-1.
        state[_POSITION_IDS] = torch.arange((config.patch_size // config.patch_dim) ** 2).expand(1, -1)
    with torch.device("meta"):
        model = IPT(config)
    model = model.to_empty(device="cpu")
    load_state_dict_strict(model, state, source=str(path) if path else "official state dict")
    return model.eval()


def convert_weights(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    num_heads: int = 12,
    tasks: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
) -> IPT:
    """Official .pt (or our .safetensors) -> our .safetensors, optionally in another float dtype."""
    src = Path(src)
    if not src.is_file():
        raise IptbenchError(f"weights file {src} does not exist")
    if is_safetensors(src):
        model = load_model(src)
    else:
        state = read_official_state_dict(src)
        model = official_to_model(state, num_heads=num_heads, tasks=tasks, path=src)
    metadata = {"source": src.name, "source_sha256": sha256_file(src)}
    save_model(model, dst, extra_metadata=metadata, dtype=dtype)
    return model


# --------------------------------------------------------------------------- any weights path


def is_safetensors(path: Path) -> bool:
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors starts with a little-endian u64 header length followed by '{'
    return len(head) == 9 and head[8:9] == b"{"


def load_model(
    path: str | os.PathLike[str],
    device: torch.device | str | None = None,
    *,
    num_heads: int = 12,
    tasks: Sequence[str] | None = None,
) -> IPT:
    """Our .safetensors or an official IPT_*.pt -> IPT in eval mode on `device` (default CPU)."""
    path = Path(path)
    if not path.is_file():
        raise IptbenchError(f"weights file {path} does not exist")
    if is_safetensors(path):
        config, state, _ = _read_safetensors(path)
        with torch.device("meta"):
            model = IPT(config)
        model = model.to_empty(device="cpu")
        load_state_dict_strict(model, state, source=str(path))
    else:
        model = official_to_model(read_official_state_dict(path), num_heads=num_heads, tasks=tasks, path=path)
    return model.eval().to(device or "cpu")


def checkpoint_info(
    path: str | os.PathLike[str], *, num_heads: int = 12, tasks: Sequence[str] | None = None
) -> CheckpointInfo:
    path = Path(path)
    if not path.is_file():
        raise IptbenchError(f"weights file {path} does not exist")
    if is_safetensors(path):
        config, state, metadata = _read_safetensors(path)
        kind = "iptbench"
    else:
        state = read_official_state_dict(path)
        config = infer_official_config(state, num_heads=num_heads, tasks=tasks, path=path)
        metadata = {}
        kind = "official"
    n_params = sum(v.numel() for k, v in state.items() if k != _POSITION_IDS)
    return CheckpointInfo(path, kind, config, n_params, sha256_file(path), metadata)
