"""The task registry: task kinds (what a kind of restoration means everywhere) and the tasks themselves.

A `TaskKind` holds everything other modules used to decide by branching on the kind's name: the training
corruption, how a benchmark item becomes the model's evaluation input, the default metric profile, the
benchmark sets of its suite and its title in tables. An unknown kind or task is an error, never a fallback.
`OFFICIAL_TASKS` are the paper's six in the official index order of the MindSpore code (ipt-base's head
order); the known tasks (`TASKS`, `task_names()`) are those six plus any added with `register_task`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from iptbench.degradations.noise import NOISE_ALGORITHM
from iptbench.errors import IptbenchError

# How the evaluation input is made from a benchmark item:
#   "lr": the LR file next to the HR image, else MATLAB-style uint8 bicubic of the mod-cropped HR;
#   "noise": the clean image; the eval runner adds float Gaussian noise of the task's sigma (metric profile);
#   "paired": the item's own degraded file (rainy/clean pairs);
#   "clean": the kind's `corrupt` applied to the clean image (rng seeded with EVAL_SEED and the task's index).
EvalInput = Literal["lr", "noise", "paired", "clean"]
# (clean uint8 batch K x H x W x 3 or one H x W x 3 image, task, rng, the --rain-streaks StreakBank for a kind
# with uses_rain_streaks, else None) -> uint8 input
Corruption = Callable[[np.ndarray, "Task", np.random.Generator, Any], np.ndarray]
EVAL_SEED = 0


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # the name of a registered TaskKind
    scale: int  # output side / input side; 1 for denoise and derain
    sigma: int | None  # Gaussian noise level on the 0-255 scale, denoise only
    # Row of IPT_pretrain.pt's task embedding, head and tail lists, for the official six; a task added with
    # register_task takes the next free index. It also seeds the task's training crops.
    official_index: int

    @property
    def spec(self) -> TaskKind:
        return get_kind(self.kind)


@dataclass(frozen=True)
class TaskKind:
    name: str
    title: str  # table title; formatted with the task's name, scale and sigma
    corrupt: Corruption  # training corruption (iptbench.degradations); also eval input for "clean"
    eval_input: EvalInput
    profile: str  # default metric profile (iptbench.metrics.profiles)
    # Which per-kind settings of a metric profile score this kind: "sr", "denoise" or "derain".
    metric_column: str
    datasets: tuple[str, ...]  # benchmark sets in table order
    suite_required: tuple[str, ...] = ()  # of `datasets`, those always planned by its suite (rest: optional)
    folder_tags: tuple[str, ...] = ("{name}",)  # folder names of precomputed outputs, formatted like title
    # `corrupt` draws on `--rain-streaks` (its 4th argument is the StreakBank, or None for synthetic rain):
    # build-data loads the bank in its workers and records the rain in the pair file's identity.
    uses_rain_streaks: bool = False
    # Version of what makes the evaluation input from the clean image ("noise": the float noise; "clean":
    # `corrupt`), part of those kinds' cell identity: bump it whenever that function's output changes, so
    # results made from other inputs are never reused. Unused by "lr" and "paired" (their inputs are files).
    eval_version: str = "1"

    @property
    def suite_optional(self) -> tuple[str, ...]:
        return tuple(d for d in self.datasets if d not in self.suite_required)

    def title_for(self, task: Task) -> str:
        return self.title.format(name=task.name, scale=task.scale, sigma=task.sigma)

    def tags_for(self, task: Task) -> list[str]:
        return [t.format(name=task.name, scale=task.scale, sigma=task.sigma) for t in self.folder_tags]

    def eval_input_from_clean(self, clean: np.ndarray, task: Task) -> np.ndarray:
        """The evaluation input of a "clean" kind: its corruption of the clean image, seeded."""
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([EVAL_SEED, task.official_index])))
        return self.corrupt(clean, task, rng, None)


# -- the corruptions of the built-in kinds (deferred imports: iptbench.degradations pulls in torch) ------
def corrupt_sr(clean: np.ndarray, task: Task, rng: np.random.Generator, bank: Any = None) -> np.ndarray:
    from iptbench.degradations.bicubic import bicubic_lr

    return bicubic_lr(clean, task.scale)


def corrupt_denoise(clean: np.ndarray, task: Task, rng: np.random.Generator, bank: Any = None) -> np.ndarray:
    from iptbench.degradations.noise import add_noise_uint8

    return add_noise_uint8(clean, float(task.sigma or 0), rng)


def corrupt_derain(clean: np.ndarray, task: Task, rng: np.random.Generator, bank: Any = None) -> np.ndarray:
    from iptbench.degradations.rain import add_rain

    return add_rain(clean, rng, bank)


KINDS: dict[str, TaskKind] = {}
TASKS: dict[str, Task] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    if kind.name in KINDS:
        raise IptbenchError(f"task kind {kind.name!r} is already registered")
    if kind.eval_input not in ("lr", "noise", "paired", "clean"):
        raise IptbenchError(f"task kind {kind.name!r}: unknown eval_input {kind.eval_input!r}")
    KINDS[kind.name] = kind
    return kind


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise IptbenchError(f"task {task.name!r} is already registered")
    get_kind(task.kind)
    if any(t.official_index == task.official_index for t in TASKS.values()):
        raise IptbenchError(f"task {task.name!r}: index {task.official_index} is taken")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    if name in OFFICIAL_TASK_NAMES:
        raise IptbenchError(f"{name!r} is an official task")
    TASKS.pop(name, None)


def unregister_kind(name: str) -> None:
    if name in _BUILTIN_KINDS:
        raise IptbenchError(f"{name!r} is a built-in task kind")
    KINDS.pop(name, None)


def uses_rain_streaks(names: Iterable[str]) -> bool:
    """Whether any of these tasks' corruptions draws on `--rain-streaks`."""
    return any(get_task(n).spec.uses_rain_streaks for n in names)


Registrations = tuple[tuple[TaskKind, ...], tuple[Task, ...]]


def runtime_registrations(names: Iterable[str]) -> Registrations:
    """The kinds and tasks among `names` that a fresh interpreter would not know: those registered at runtime.

    Worker processes started with `spawn` (or `forkserver`) import iptbench anew and know only the
    built-ins; these travel to them pickled (see `restore_registrations`). Pickle stores functions by
    module and name, so a kind's functions must be module-level; anything else is refused here, in one
    line, rather than as a worker's traceback.
    """
    tasks = tuple(t for t in (get_task(n) for n in names) if t.name not in OFFICIAL_TASK_NAMES)
    kinds = tuple({t.kind: t.spec for t in tasks if t.kind not in _BUILTIN_KINDS}.values())
    for kind in kinds:
        try:
            pickle.dumps(kind)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise IptbenchError(
                f"task kind {kind.name!r} cannot reach worker processes: its functions must be "
                f"module-level (picklable) ({exc}); or use --workers 1"
            ) from None
    return kinds, tasks


def restore_registrations(registrations: Registrations) -> None:
    """Register in this process (a worker) what `runtime_registrations` sent and it does not know yet.

    A name this process already knows (forked workers inherit the registry; a module may register its kind
    when imported) is left as it is.
    """
    kinds, tasks = registrations
    for kind in kinds:
        if kind.name not in KINDS:
            register_kind(kind)
    for task in tasks:
        if task.name not in TASKS:
            register_task(task)


def next_index() -> int:
    return max(t.official_index for t in TASKS.values()) + 1


def get_kind(name: str) -> TaskKind:
    try:
        return KINDS[name]
    except KeyError:
        raise IptbenchError(f"unknown task kind {name!r}; known kinds: {', '.join(KINDS)}") from None


for _kind in (
    TaskKind(
        "sr", "Super-resolution ×{scale} ({name})", corrupt_sr, "lr", "sr", "sr",
        ("Set5", "Set14", "B100", "Urban100", "Manga109"), ("Set5", "Set14", "B100", "Urban100"),
        ("{name}", "x{scale}"),
    ),
    TaskKind(
        "denoise", "Colour denoising, σ = {sigma} ({name})", corrupt_denoise, "noise", "denoise", "denoise",
        ("CBSD68", "Kodak24", "McMaster", "Urban100"), ("CBSD68", "Urban100"),
        ("{name}", "sigma{sigma}", "s{sigma}", "noise{sigma}", "{sigma}"), eval_version=NOISE_ALGORITHM,
    ),
    TaskKind(
        "derain", "Deraining ({name})", corrupt_derain, "paired", "derain", "derain",
        ("Rain100L", "Rain100H"), ("Rain100L",), uses_rain_streaks=True,
    ),
):  # fmt: skip
    register_kind(_kind)
_BUILTIN_KINDS = tuple(KINDS)

OFFICIAL_TASKS: tuple[Task, ...] = (
    Task("sr-x2", "sr", 2, None, 0),
    Task("sr-x3", "sr", 3, None, 1),
    Task("sr-x4", "sr", 4, None, 2),
    Task("derain", "derain", 1, None, 3),
    Task("denoise-30", "denoise", 1, 30, 4),
    Task("denoise-50", "denoise", 1, 50, 5),
)
OFFICIAL_TASK_NAMES: tuple[str, ...] = tuple(t.name for t in OFFICIAL_TASKS)
for _task in OFFICIAL_TASKS:
    register_task(_task)


def task_names() -> tuple[str, ...]:
    """Every known task: the official six in head order, then registered ones in registration order."""
    return tuple(TASKS)


def tasks_in_table_order() -> tuple[str, ...]:
    """Every known task grouped by kind, kinds in registration order: the paper's tables (super-resolution,
    denoising, deraining), not the official head order (which puts deraining before denoising). Within a
    kind, and for kinds registered later, registration order."""
    kinds = list(KINDS)
    return tuple(sorted(TASKS, key=lambda name: kinds.index(TASKS[name].kind)))


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise IptbenchError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def parse_tasks(spec: str | list[str] | tuple[str, ...] | None) -> tuple[Task, ...]:
    """'sr-x2,denoise-30' or a list of names -> Tasks in known order; None or 'all' -> the official six."""
    if spec is None:
        return OFFICIAL_TASKS
    names = spec.split(",") if isinstance(spec, str) else [n for s in spec for n in s.split(",")]
    names = [n.strip() for n in names if n.strip()]
    if not names or names == ["all"]:
        return OFFICIAL_TASKS
    tasks = {get_task(n).name for n in names}
    return tuple(t for t in TASKS.values() if t.name in tasks)
