"""Cells of a plan with their identities, and the rerun rule: reuse a finished cell only when it is equal.

Hashing happens before anything is evaluated: the sha256 of every input file (ground truth, LR or rainy
image) and, for `images:` models, of every restored file. A rerun compares identities and says in one line
why each redone cell is redone; two different models under one row label in one folder are an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from iptbench.errors import IptbenchError
from iptbench.evaluation import identity as ident
from iptbench.evaluation.planning import Planned
from iptbench.evaluation.precomputed import CellImages
from iptbench.evaluation.state import CellKey, CellRecord, RunState
from iptbench.io import sha256_file


@dataclass
class PlannedCell:
    key: CellKey
    planned: Planned
    model: Any  # Restorer
    images: CellImages | None = None  # the restored files of an `images:` model
    identity: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    restored_sha256: dict[str, str] = field(default_factory=dict)

    def wants(self, item_name: str) -> bool:
        """Whether this cell scores the item (a partial `images:` cell skips the files it lacks)."""
        return self.images is None or item_name in self.images.files


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


class Hasher:
    """sha256 of files, each file read once per run; keys are paths relative to the data root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, str] = {}

    def __call__(self, path: Path) -> tuple[str, str]:
        rel = _relative(path, self.root)
        if rel not in self.seen:
            self.seen[rel] = sha256_file(path)
        return rel, self.seen[rel]


def inputs_digest(planned: Planned, hasher: Hasher) -> str:
    parts = []
    for item in planned.items:
        target = hasher(item.target)[1]
        source = hasher(item.input)[1] if item.input is not None else ""
        parts.append([item.name, target, source])
    return ident.sha256_text(parts)


def match_images(planned: list[Planned], restorers: list[Any], allow_partial: bool, say: Callable) -> list:
    """The cells of the plan, in plan order; `images:` cells with problems are dropped with one line each."""
    cells = []
    for p in planned:
        for model in restorers:
            if not model.covers(p.entry.dataset, p.entry.task):
                continue
            key = (model.name, p.entry.dataset, p.entry.task.name)
            found = model.images.match(p.entry.dataset, p.entry.task, p.items) if model.images else None
            if found is not None and found.problems:
                # file names and folders may hold brackets: escaped, so rich prints them as they are
                where = escape(f"{model.name} {p.entry.dataset} {p.entry.task.name} ({found.folder})")
                problems = escape("; ".join(found.problems))
                if not allow_partial or not found.files:
                    say(f"[red]{where}: {problems}; cell not written (--allow-partial scores the rest)[/]")
                    continue
                say(f"[yellow]{where}: {problems}; scoring {len(found.files)} of {found.expected} images[/]")
            cells.append(PlannedCell(key, p, model, found))
    return cells


def add_identities(cells: list[PlannedCell], profiles: dict[str, Any], hasher: Hasher, config: Any) -> None:
    lpips = "alex" if config.lpips else None
    for cell in cells:
        task = cell.planned.entry.task
        restored = None
        if cell.images is not None:
            cell.restored_sha256 = {n: sha256_file(p) for n, p in cell.images.files.items()}
            restored = ident.sha256_text([[n, h] for n, h in cell.restored_sha256.items()])
        cell.identity = ident.cell_identity(
            cell.model.identity,
            task,
            profiles[task.name],
            inputs_digest(cell.planned, hasher),
            lpips=lpips,
            limit=config.limit,
            restored_sha256=restored,
        )
        cell.digest = ident.digest(cell.identity)


def _core(record_identity: dict[str, Any]) -> tuple:
    """What names the model itself (not its settings): weights, baseline and parameters, image folder."""
    r = record_identity.get("restorer", {})
    return (r.get("kind"), r.get("weights_sha256"), r.get("name"), r.get("params"), r.get("dir"))


@dataclass
class Decision:
    todo: set[CellKey] = field(default_factory=set)
    reused: list[CellKey] = field(default_factory=list)
    dropped: set[CellKey] = field(
        default_factory=set
    )  # stored cells that must go (label reused, --overwrite)
    lines: list[str] = field(default_factory=list)


def _label_conflicts(state: RunState, cells: list[PlannedCell], out: Path, overwrite: bool) -> Decision:
    decision = Decision()
    models = {c.model.name: c for c in cells}
    for key, stored in state.cells.items():
        cell = models.get(key[0])
        if cell is None or not stored.identity or not stored.source or stored.source == cell.model.source:
            continue
        if _core(stored.identity) == _core(cell.identity):
            continue  # the same weights copied elsewhere: one model, one label
        if not overwrite:
            raise IptbenchError(
                f"row {key[0]!r} in {out} already holds results of {stored.source}; {cell.model.source} is "
                f"a different model: give it its own row name, e.g. --model {_suggest(key[0])}="
                f"{cell.model.spec}, or use another --out (--overwrite replaces the old results)"
            )
        decision.dropped.add(key)
    if decision.dropped:
        names = sorted({k[0] for k in decision.dropped})
        decision.lines.append(
            f"--overwrite: dropped {len(decision.dropped)} cell(s) of {', '.join(names)} from another model"
        )
    return decision


def _suggest(label: str) -> str:
    base = label.split(":", 1)[-1] or "model"
    return f"{base}-2"


def decide(state: RunState, cells: list[PlannedCell], out: Path, overwrite: bool) -> Decision:
    """Which planned cells to (re)do, which finished ones to reuse, and one line per reason."""
    decision = _label_conflicts(state, cells, out, overwrite)
    reasons: dict[tuple[str, str], list[CellKey]] = {}
    for cell in cells:
        stored = state.cells.get(cell.key)
        if stored is None or cell.key in decision.dropped:
            decision.todo.add(cell.key)
        elif overwrite:
            decision.todo.add(cell.key)
            reasons.setdefault((cell.key[0], "--overwrite"), []).append(cell.key)
        elif stored.identity_digest == cell.digest:
            decision.reused.append(cell.key)
        else:
            decision.todo.add(cell.key)
            why = ident.describe_change(stored.identity, cell.identity)
            reasons.setdefault((cell.key[0], why), []).append(cell.key)
    for (model, why), keys in reasons.items():
        if len(keys) == 1:
            decision.lines.append(f"{model} {keys[0][1]} {keys[0][2]}: {why}, re-evaluating")
        else:
            shown = ", ".join(f"{d} {t}" for _, d, t in keys[:4]) + (" ..." if len(keys) > 4 else "")
            decision.lines.append(f"{model} {len(keys)} cells ({shown}): {why}, re-evaluating")
    return decision


def reuse_line(state: RunState, reused: list[CellKey], out: Path) -> str:
    """'resuming: 3 finished cell(s) reused ...' with when they were finished."""
    times = sorted(t for t in (state.cells[k].finished_at for k in reused) if t)
    when = ""
    if times:
        first, last = (t.replace("T", " ").replace("+00:00", " UTC") for t in (times[0], times[-1]))
        when = f", finished {first}" + (f" to {last}" if last != first else "")
    return (
        f"resuming: {len(reused)} finished cell(s) in {out} reused (same identity{when}); "
        "--overwrite redoes them"
    )


def record(
    cell: PlannedCell, profile: Any, rows: list, errors: list, config: Any, finished_at: str
) -> CellRecord:
    """The state record of a finished cell."""
    task = cell.planned.entry.task
    model = cell.model
    return CellRecord(
        model.name,
        cell.key[1],
        task.name,
        profile.name,
        profile.describe(),
        profile.channel_for(task),
        int(profile.crop_for(task)),
        len(rows),
        model.spec,
        errors,
        config.limit,
        identity=cell.identity,
        identity_digest=cell.digest,
        finished_at=finished_at,
        source=model.source,
        expected_images=len(cell.planned.items),
        arch=model.kind,
        settings=ident.settings_text(model.identity),
        restored_sha256=cell.restored_sha256,
        rows=rows,
    )
