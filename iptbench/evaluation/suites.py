"""Benchmark suites: which datasets are scored at which tasks, as in the IPT paper's tables.

Optional datasets (Manga109, Kodak24, McMaster, Rain100H) join a suite only when they are present under the
data root, because the IPT paper did not report them; the core ones are always planned and, when absent,
listed as missing with the command that fetches them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iptbench.errors import IptbenchError
from iptbench.tasks import Task, get_kind, get_task, tasks_in_table_order


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    datasets: tuple[str, ...]  # always planned
    optional: tuple[str, ...] = ()  # planned only when present


def _kind_suite(kind: str, tasks: tuple[str, ...]) -> Suite:
    """A paper suite: the kind's benchmark sets (iptbench.tasks), the always-planned ones first."""
    k = get_kind(kind)
    return Suite(kind, tasks, k.suite_required, k.suite_optional)


SUITES: dict[str, Suite] = {
    "sr": _kind_suite("sr", ("sr-x2", "sr-x3", "sr-x4")),
    "denoise": _kind_suite("denoise", ("denoise-30", "denoise-50")),
    "derain": _kind_suite("derain", ("derain",)),
    # No download, no data root: six bundled photos (iptbench.benchmarks.mini) at the six official tasks, and
    # at every task added with iptbench.tasks.register_task (suite_parts reads the registry when asked).
    "mini": Suite("mini", tasks_in_table_order(), ("mini",)),
}
PAPER_SUITES = ("sr", "denoise", "derain")  # what `all` runs
SUITE_NAMES: tuple[str, ...] = (*SUITES, "all")


def suite_parts(name: str) -> list[Suite]:
    if name == "all":
        return [SUITES[n] for n in PAPER_SUITES]
    if name not in SUITES:
        raise IptbenchError(f"unknown suite {name!r}; choose one of: {', '.join(SUITE_NAMES)}")
    if name == "mini":
        return [Suite("mini", tasks_in_table_order(), SUITES["mini"].datasets)]
    return [SUITES[name]]


@dataclass(frozen=True)
class PlanEntry:
    """One (dataset, task) pair of the plan; every model that supports the task is scored on it."""

    dataset: str
    task: Task


@dataclass(frozen=True)
class MissingDataset:
    name: str
    state: str  # "missing" or "incomplete"
    fetch_command: str
    detail: str = ""


@dataclass
class SuitePlan:
    entries: list[PlanEntry] = field(default_factory=list)
    missing: list[MissingDataset] = field(default_factory=list)
    absent_optional: list[str] = field(default_factory=list)


def _canonical(name: str, known: list[str]) -> str | None:
    for k in known:
        if k.lower() == name.lower():
            return k
    return None


def select_datasets(suite: str, datasets: list[str] | None) -> list[tuple[Suite, str, bool]]:
    """(suite part, dataset, required) in suite order; `datasets` restricts and makes those required."""
    parts = suite_parts(suite)
    chosen: list[tuple[Suite, str, bool]] = []
    wanted = [d.strip() for d in datasets or [] if d.strip()]
    every = [d for p in parts for d in (*p.datasets, *p.optional)]
    for name in wanted:
        if _canonical(name, every) is None:
            raise IptbenchError(
                f"dataset {name!r} is not part of suite {suite!r}; "
                f"its datasets are: {', '.join(dict.fromkeys(every))}"
            )
    wanted_canon = {_canonical(n, every) for n in wanted}
    for part in parts:
        for name in part.datasets:
            if not wanted or name in wanted_canon:
                chosen.append((part, name, True))
        for name in part.optional:
            if not wanted:
                chosen.append((part, name, False))
            elif name in wanted_canon:
                chosen.append((part, name, True))
    return chosen


def build_plan(suite: str, datasets: list[str] | None, root: Path) -> SuitePlan:
    """Look every dataset up under `root`; present ones become entries in suite order (tasks, then sets)."""
    from iptbench.benchmarks import registry as benchmarks

    plan = SuitePlan()
    found: dict[Suite, list[str]] = {}
    for part, name, required in select_datasets(suite, datasets):
        if name == "mini":  # bundled with the package: always present
            found.setdefault(part, []).append(name)
            continue
        status = benchmarks.locate(name, root)
        state = str(getattr(status, "state", "missing"))
        if state == "found":
            found.setdefault(part, []).append(name)
        elif required and name not in {m.name for m in plan.missing}:
            plan.missing.append(
                MissingDataset(
                    name, state, benchmarks.fetch_command(name), "; ".join(getattr(status, "problems", []))
                )
            )
        elif not required and name not in plan.absent_optional:
            plan.absent_optional.append(name)
    for part, names in found.items():
        for task_name in part.tasks:
            for name in names:
                plan.entries.append(PlanEntry(name, get_task(task_name)))
    return plan
