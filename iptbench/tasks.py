"""The six IPT tasks, in the official index order of the MindSpore code.

Everything that names a task (data files, checkpoints, eval tables) uses these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iptbench.errors import IptbenchError

TaskKind = Literal["sr", "denoise", "derain"]


@dataclass(frozen=True)
class Task:
    name: str
    kind: TaskKind
    scale: int  # output side / input side; 1 for denoise and derain
    sigma: int | None  # Gaussian noise level on the 0-255 scale, denoise only
    official_index: int  # row of IPT_pretrain.pt's task embedding, head and tail lists


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("sr-x2", "sr", 2, None, 0),
        Task("sr-x3", "sr", 3, None, 1),
        Task("sr-x4", "sr", 4, None, 2),
        Task("derain", "derain", 1, None, 3),
        Task("denoise-30", "denoise", 1, 30, 4),
        Task("denoise-50", "denoise", 1, 50, 5),
    )
}

TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise IptbenchError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}") from None


def parse_tasks(spec: str | list[str] | tuple[str, ...] | None) -> tuple[Task, ...]:
    """'sr-x2,denoise-30' or a list of names -> Tasks in official order; None or 'all' -> all six."""
    if spec is None:
        return tuple(TASKS.values())
    names = spec.split(",") if isinstance(spec, str) else [n for s in spec for n in s.split(",")]
    names = [n.strip() for n in names if n.strip()]
    if not names or names == ["all"]:
        return tuple(TASKS.values())
    tasks = {get_task(n).name for n in names}
    return tuple(t for t in TASKS.values() if t.name in tasks)
