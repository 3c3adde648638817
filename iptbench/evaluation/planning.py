"""Before the eval loop: what there is to evaluate, and which checks make an empty run an error.

`plan_entries` finds the (dataset, task) pairs of a suite under the data root; `check_models` says which
model lacks which task. A run that would evaluate nothing stops here with one line saying what was missing
and what to do, instead of writing an empty table and exiting 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from iptbench.errors import IptbenchError
from iptbench.evaluation.suites import MissingDataset, PlanEntry, build_plan, suite_parts

Say = Callable[[str], None]


def resolve_eval_data_root(cli_value: str | Path | None) -> Path:
    """--data-root, else $IPTBENCH_DATA, else the default cache folder; an empty value is an error.

    An empty string must not mean the current folder: `--data-root "$IPTBENCH_DATA"` with the variable
    unset would otherwise scan ./ and report every dataset missing.
    """
    from iptbench.benchmarks.registry import DATA_ENV, resolve_data_root

    if cli_value is not None and not str(cli_value).strip():
        raise IptbenchError(
            f"--data-root is empty (is ${DATA_ENV} unset?): pass the folder holding Set5/, CBSD68/, ... "
            f"or set {DATA_ENV}"
        )
    if cli_value is None and DATA_ENV in os.environ and not os.environ[DATA_ENV].strip():
        raise IptbenchError(
            f"{DATA_ENV} is set but empty: point it at the folder holding Set5/, CBSD68/, ... "
            "or pass --data-root"
        )
    return resolve_data_root(cli_value)


@dataclass
class Planned:
    """One (dataset, task) to evaluate, with the dataset object and the items to score."""

    entry: PlanEntry
    dataset: Any  # iptbench.benchmarks.registry.BenchmarkDataset
    items: list[Any]


@dataclass
class PlanResult:
    planned: list[Planned] = field(default_factory=list)
    missing: list[MissingDataset] = field(default_factory=list)
    absent_optional: list[str] = field(default_factory=list)


def _missing_line(miss: MissingDataset, root: Path) -> str:
    why = f" ({miss.detail})" if miss.detail else ""
    return f"{miss.name} is {miss.state} under {root}{why}: fetch it with `{miss.fetch_command}`"


def _no_data_error(suite: str, root: Path) -> IptbenchError:
    first = suite_parts(suite)[0].datasets[0]
    return IptbenchError(
        f"no benchmark data of suite {suite!r} under {root}: pass --data-root, set IPTBENCH_DATA, "
        f"fetch a set (e.g. `iptbench datasets fetch {first}`), or try `iptbench eval --suite mini`"
    )


def plan_entries(
    suite: str, datasets: list[str] | None, root: Path, *, strict: bool, limit: int | None, say: Say
) -> PlanResult:
    """Datasets found under root, as (dataset, task) entries; named or --strict missing sets are errors."""
    from iptbench.benchmarks.mini import NAME as MINI
    from iptbench.benchmarks.mini import MiniDataset
    from iptbench.benchmarks.registry import BenchmarkDataset

    plan = build_plan(suite, datasets, root)
    result = PlanResult(missing=list(plan.missing), absent_optional=list(plan.absent_optional))
    if plan.missing and (strict or datasets):
        names = ", ".join(m.name for m in plan.missing)
        commands = "; ".join(f"`{m.fetch_command}`" for m in plan.missing)
        flag = "--strict" if strict and not datasets else "--datasets"
        raise IptbenchError(
            f"{flag}: datasets missing under {root}: {names}; run {commands} or fix --data-root"
        )
    for entry in plan.entries:
        dataset = MiniDataset() if entry.dataset == MINI else BenchmarkDataset(entry.dataset, root)
        try:
            items = dataset.items(entry.task)[:limit]
        except IptbenchError as exc:
            if strict or datasets:
                raise
            result.missing.append(MissingDataset(entry.dataset, "incomplete", "", str(exc)))
            say(f"[yellow]skipped[/] {escape(f'{entry.dataset} {entry.task.name}: {exc}')}")
            continue
        result.planned.append(Planned(entry, dataset, items))
    if not result.planned:
        raise _no_data_error(suite, root)  # one line: the per-set "missing" lines would only repeat it
    for miss in plan.missing:
        say(f"[yellow]missing[/] {escape(_missing_line(miss, root))}")
    return result


def check_models(planned: list[Planned], restorers: list[Any], say: Say) -> list[dict[str, str]]:
    """Skipped (model, task) records; an error when no model has anything to do in the whole plan."""
    skipped: list[dict[str, str]] = []
    tasks = list(dict.fromkeys(p.entry.task.name for p in planned))
    for model in restorers:
        if model.images is not None:
            lacking = [
                f"{p.entry.dataset} {p.entry.task.name}"
                for p in planned
                if not model.covers(p.entry.dataset, p.entry.task)
            ]
            what = f"no folder in {model.images.root} for"
        else:
            lacking = [t for t in tasks if not model.supports(t)]
            what = "no"
        for name in lacking:
            does = ", ".join(model.tasks) if model.images is None else "the folders it holds"
            reason = f"{model.name} has {what} {name} (it does: {does or 'nothing'})"
            skipped.append({"model": model.name, "task": name, "reason": reason})
        if lacking:
            suffix = "" if model.images is not None else " task"
            does = "" if model.images is not None else f" (it does: {', '.join(model.tasks) or 'nothing'})"
            line = f"skipped: {model.name} has {what} {', '.join(lacking)}{suffix}{does}"
            say(f"[dim]{escape(line)}[/]")
    if not any(m.covers(p.entry.dataset, p.entry.task) for m in restorers for p in planned):
        models = "; ".join(f"{m.name} does {', '.join(m.tasks) or 'nothing'}" for m in restorers)
        if any(m.images is not None for m in restorers):
            models += " (images: models need DIR/DATASET/TASK folders, e.g. DIR/Set5/x2/)"
        raise IptbenchError(
            f"no model does a task of this plan ({', '.join(tasks)}): {models}; "
            "choose another --suite or add a --model that does one"
        )
    return skipped
