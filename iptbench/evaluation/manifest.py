"""The manifest.json payload of an eval folder: what was run, on what, and every cell's identity."""

from __future__ import annotations

from typing import Any

from iptbench.degradations.noise import NOISE_ALGORITHM, NOISE_SEED, describe_noise
from iptbench.evaluation.state import CellRecord, RunState


def _cell(c: CellRecord) -> dict[str, object]:
    return {
        "model": c.model,
        "dataset": c.dataset,
        "task": c.task,
        "profile": c.profile,
        "images": c.images,
        "expected_images": c.expected_images,
        "settings": c.settings,
        "finished_at": c.finished_at,
        "identity_digest": c.identity_digest,
        "identity": c.identity,
    }


def _model(m: Any) -> dict[str, object]:
    return {
        "name": m.name,
        "spec": m.spec,
        "tasks": list(m.tasks),
        "description": m.description,
        "kind": m.kind,
        "source": m.source,
        "identity": m.identity,
        **m.meta,
    }


def manifest_payload(
    cfg: Any,
    profiles: dict[str, Any],
    restorers: list[Any],
    result: Any,
    state: RunState,
    world_size: int,
    absent_optional: list[str],
) -> dict[str, object]:
    restored = {
        f"{c.model}/{c.dataset}/{c.task}/{image}": sha
        for c in state.cells.values()
        for image, sha in c.restored_sha256.items()
    }
    return {
        "suite": cfg.suite,
        "datasets": cfg.datasets,
        "data_root": str(cfg.data_root),
        "profile_option": cfg.profile,
        "profiles": {
            name: {"name": p.name, "description": p.describe(), "noise": describe_noise(p)}
            for name, p in profiles.items()
        },
        "seeds": {
            "noise": f"numpy RandomState({NOISE_SEED}) per image (KAIR)",
            "noise_algorithm": NOISE_ALGORITHM,
            "torch": 0,
        },
        "models": [_model(m) for m in restorers],
        "world_size": world_size,
        "missing": [
            {"name": m.name, "state": m.state, "fetch": m.fetch_command, "detail": m.detail}
            for m in result.missing
        ],
        "absent_optional": absent_optional,
        "skipped": result.skipped,
        "reruns": result.redone,
        "errors": state.errors(),
        "cells": [_cell(c) for c in state.cells.values()],
        "inputs_sha256": dict(sorted(state.inputs.items())),
        "noise_sha256": dict(sorted(state.noise.items())),
        "restored_sha256": dict(sorted(restored.items())),
    }
