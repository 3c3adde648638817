"""The eval loop: plan (datasets x tasks x models), score every image, write results, reuse what is equal.

Each (dataset, task) is loaded once and every model that still has to do it runs on the same input (same
noise), so adding a model to a finished run costs only that model. A cell (model, dataset, task) enters
state.json, with all its rows, only after all its images are scored; the state is replaced atomically and
the CSVs are rebuilt from it after every (dataset, task). A killed run loses at most the pair in progress,
and a rerun reuses a finished cell only when its identity (evaluation/identity.py) is unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from iptbench import threads
from iptbench.degradations.noise import noise_digest, noise_for_profile
from iptbench.errors import IptbenchError
from iptbench.evaluation import outputs
from iptbench.evaluation.cells import (
    Hasher,
    PlannedCell,
    add_identities,
    decide,
    match_images,
    record,
    reuse_line,
)
from iptbench.evaluation.comparison import ComparisonCollector
from iptbench.evaluation.distributed import World, init_world
from iptbench.evaluation.manifest import manifest_payload
from iptbench.evaluation.model_specs import ModelEntry, Restorer, as_entry
from iptbench.evaluation.planning import Planned, check_models, plan_entries
from iptbench.evaluation.scoring import Scorer, is_grey_file, profiles_for
from iptbench.evaluation.state import ImageRow, RunState
from iptbench.evaluation.suites import MissingDataset
from iptbench.images import image_to_tensor, read_image, tensor_to_image, write_png


@dataclass
class EvalConfig:
    suite: str
    data_root: Path
    out: Path
    datasets: list[str] | None = None
    profile: str | None = None  # one profile for every task; None: each task's literature default
    lpips: bool = False
    save_images: bool = False
    strict: bool = False
    overwrite: bool = False
    comparison_rows: int = 8
    limit: int | None = None  # first N images per dataset: smoke tests and benchmarks only, not comparable
    progress: bool = True
    allow_partial: bool = False  # score an `images:` cell that lacks some images (the cell says how many)


@dataclass
class EvalResult:
    out: Path
    ran: list[tuple[str, str, str]] = field(default_factory=list)
    resumed: list[tuple[str, str, str]] = field(default_factory=list)  # reused: identity unchanged
    redone: list[str] = field(default_factory=list)  # one line per reason a finished cell was redone
    missing: list[MissingDataset] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    images_scored: int = 0
    timing: dict[str, float] = field(default_factory=dict)  # model / load / metrics / write / total seconds


class ImagesPerSecond(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- img/s" if not speed else f"{speed:.2f} img/s", style="progress.data.speed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Runner:
    def __init__(self, config: EvalConfig, restorers: list[ModelEntry], console: Console | None = None):
        self.config = config
        self.restorers = restorers
        self.console = console or Console(stderr=True)
        self.world: World = init_world()
        self.result = EvalResult(config.out)
        self.timing = {"model": 0.0, "load": 0.0, "metrics": 0.0, "write": 0.0}

    def say(self, message: str) -> None:
        if self.world.is_main:
            self.console.print(message, highlight=False, soft_wrap=True)

    # -- before the loop ----------------------------------------------------------------------------------
    def _prepare(self) -> tuple[list[PlannedCell], RunState]:
        cfg = self.config
        plan = plan_entries(
            cfg.suite, cfg.datasets, cfg.data_root, strict=cfg.strict, limit=cfg.limit, say=self.say
        )
        self.planned, self.absent_optional = plan.planned, plan.absent_optional
        self.result.missing = plan.missing
        self.profiles = profiles_for([p.entry.task for p in plan.planned], cfg.profile)
        self.result.skipped = check_models(plan.planned, self.restorers, self.say)
        cells = match_images(plan.planned, self.restorers, cfg.allow_partial, self.say)
        if not cells:
            raise IptbenchError("nothing to evaluate: every cell was refused (see the lines above)")
        state = RunState()
        if self.world.is_main:
            outputs.remove_stale_temporaries(cfg.out)
            state = RunState.load(cfg.out)
            self.hasher = Hasher(cfg.data_root)
            add_identities(cells, self.profiles, self.hasher, cfg)
            state.inputs.update(self.hasher.seen)
        decision = self.world.broadcast(
            decide(state, cells, cfg.out, cfg.overwrite) if self.world.is_main else None
        )
        for key in (*decision.dropped, *decision.todo):
            state.cells.pop(key, None)
        for line in decision.lines:
            self.say(f"[yellow]{escape(line)}[/]")
        self.result.redone = list(decision.lines)
        self.result.resumed = list(decision.reused)
        if decision.reused:
            self.say(escape(reuse_line(state, decision.reused, cfg.out)))
        self.plan_keys = [c.key for c in cells]
        return [c for c in cells if c.key in decision.todo], state

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self) -> EvalResult:
        cfg = self.config
        start = time.perf_counter()
        torch.manual_seed(0)
        todo, state = self._prepare()
        by_entry: dict[int, list[PlannedCell]] = {}
        for cell in todo:
            by_entry.setdefault(id(cell.planned), []).append(cell)
        work = [(p, by_entry[id(p)]) for p in self.planned if id(p) in by_entry]
        self.scorer = Scorer(cfg.lpips) if work else None
        self.comparison = ComparisonCollector(cfg.comparison_rows)
        total = sum(
            sum(1 for c in cells for _, item in self.world.shard(p.items) if c.wants(item.name))
            for p, cells in work
        )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            ImagesPerSecond(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (cfg.progress and self.world.is_main and total > 0),  # never a 0/0 bar
            transient=False,
        )
        with progress:
            bar = progress.add_task("eval", total=total)
            for planned, cells in work:
                rows, errors = self._run_entry(planned, cells, state, progress, bar)
                if self.world.is_main:
                    self._record(planned, cells, rows, errors, state)
        if self.world.is_main:
            if not any(c.rows for c in state.cells.values()):
                raise IptbenchError(self._nothing_scored())
            self._finish(state)
        self.timing["total"] = time.perf_counter() - start
        self.result.timing = dict(self.timing)
        return self.result

    def _nothing_scored(self) -> str:
        if self.result.errors:
            return (
                f"no result row written to {self.config.out}: every image to score was unreadable "
                f"({len(self.result.errors)} listed in broken_images.csv)"
            )
        return f"no result row written to {self.config.out}: nothing was scored"

    def _record(
        self, planned: Planned, cells: list[PlannedCell], rows: list[ImageRow], errors: list, state: RunState
    ) -> None:
        self.result.images_scored += len(rows)
        self.result.errors.extend(errors)
        profile = self.profiles[planned.entry.task.name]
        finished = _now()
        for cell in cells:
            mine = [r for r in rows if r.cell() == cell.key]
            state.cells[cell.key] = record(cell, profile, mine, errors, self.config, finished)
            self.result.ran.append(cell.key)
        t0 = time.perf_counter()
        self._write_tables(state)
        self.timing["write"] += time.perf_counter() - t0

    def _load(self, planned: Planned, item: Any) -> tuple[torch.Tensor, Any, torch.Tensor] | None:
        """(model input, target array, target tensor), or None for a broken image (recorded)."""
        task, profile = planned.entry.task, self.profiles[planned.entry.task.name]
        try:
            lr, target = planned.dataset.load(item, task)
        except IptbenchError as exc:  # ImageReadError included: report and go on
            reason = getattr(exc, "reason", None) or str(exc)
            path = getattr(exc, "path", None) or item.target
            self._errors.append(
                {"dataset": planned.entry.dataset, "task": task.name, "image": item.name,
                 "path": str(path), "reason": str(reason)}
            )  # fmt: skip
            self.console.print(
                f"[red]broken image[/] {planned.entry.dataset}/{item.name} ({task.name}): {reason}",
                highlight=False,
                soft_wrap=True,
            )
            return None
        if task.spec.eval_input == "noise":
            assert task.sigma is not None
            noisy = noise_for_profile(target, task.sigma, profile)
            self._noise[f"{planned.entry.dataset}/{task.name}/{item.name}"] = noise_digest(noisy)
            inp = torch.from_numpy(noisy).permute(2, 0, 1).unsqueeze(0).contiguous()
        else:
            assert lr is not None
            inp = image_to_tensor(lr if lr.flags.writeable else lr.copy())
        if not target.flags.writeable:  # torch warns on read-only arrays; a copy is cheap next to a model
            target = target.copy()
        return inp, target, image_to_tensor(target)

    def _restore(self, cell: PlannedCell, inp: torch.Tensor, item: Any) -> torch.Tensor:
        if cell.images is not None:
            return image_to_tensor(read_image(cell.images.files[item.name]))
        if cell.model.runs_a_network:
            with threads.for_network():
                return cell.model(inp, cell.planned.entry.task)
        return cell.model(inp, cell.planned.entry.task)

    def _run_entry(
        self, planned: Planned, cells: list[PlannedCell], state: RunState, progress: Progress, bar: Any
    ) -> tuple[list[ImageRow], list]:
        task, dataset = planned.entry.task, planned.entry.dataset
        profile = self.profiles[task.name]
        local: list[tuple[int, int, ImageRow]] = []
        self._errors: list[dict[str, str]] = []
        self._noise: dict[str, str] = {}
        for index, item in self.world.shard(planned.items):
            wanting = [(order, c) for order, c in enumerate(cells) if c.wants(item.name)]
            t0 = time.perf_counter()
            loaded = self._load(planned, item)
            self.timing["load"] += time.perf_counter() - t0
            if loaded is None:
                progress.advance(bar, len(wanting))
                continue
            inp, target, tgt = loaded
            grey = is_grey_file(item.target)
            if index == 0 and self.comparison.wants(dataset, task.name):
                shown = tensor_to_image(inp)
                in_psnr = self.scorer(inp, tgt, task, profile, grey).psnr if inp.shape == tgt.shape else None
                self.comparison.start(dataset, task.name, item.name, target, shown, task.scale, in_psnr)
            for order, cell in wanting:
                progress.update(bar, description=f"{cell.model.name} {dataset} {task.name}")
                row = self._score_one(cell, inp, tgt, item, index, grey)
                local.append((order, index, row))
                progress.advance(bar)
        gathered = self.world.gather((local, self._errors, self._noise))
        merged = sorted((x for part in gathered for x in part[0]), key=lambda t: (t[0], t[1]))
        all_errors = sorted((e for part in gathered for e in part[1]), key=lambda e: e["image"])
        for part in gathered:
            state.noise.update(part[2])
        return [row for _, _, row in merged], all_errors

    def _score_one(
        self, cell: PlannedCell, inp: torch.Tensor, tgt: torch.Tensor, item: Any, index: int, grey: bool
    ) -> ImageRow:
        task, dataset = cell.planned.entry.task, cell.planned.entry.dataset
        t0 = time.perf_counter()
        out = self._restore(cell, inp, item)
        seconds = time.perf_counter() - t0
        self.timing["model"] += seconds
        if tuple(out.shape[-2:]) != tuple(tgt.shape[-2:]):
            raise IptbenchError(
                f"{cell.model.name} returned {tuple(out.shape[-2:])} for {dataset}/{item.name} "
                f"({task.name}) but the target is {tuple(tgt.shape[-2:])}: the model does not fit the task"
            )
        t0 = time.perf_counter()
        score = self.scorer(out, tgt, task, self.profiles[task.name], grey)
        self.timing["metrics"] += time.perf_counter() - t0
        if self.config.save_images or index == 0:
            t0 = time.perf_counter()
            restored = tensor_to_image(out)
            if self.config.save_images:
                path = outputs.restored_image_path(
                    self.config.out, cell.model.name, dataset, task.name, item.name
                )
                write_png(path, restored)
            if index == 0:
                self.comparison.add(dataset, task.name, cell.model.name, restored, score.psnr)
            self.timing["write"] += time.perf_counter() - t0
        return ImageRow(
            cell.model.name, dataset, task.name, item.name, score.psnr, score.ssim, score.lpips, seconds,
            score.psnr_replicated,
        )  # fmt: skip

    # -- outputs ------------------------------------------------------------------------------------------
    def _write_tables(self, state: RunState) -> None:
        """state.json first, then the CSVs derived from it (a rerun rebuilds CSVs a kill left stale)."""
        out = self.config.out
        state.order(self.plan_keys)
        state.save(out)
        cells = list(state.cells.values())
        outputs.write_per_image(out / "per_image.csv", cells)
        outputs.write_summary(out / "summary.csv", cells)
        outputs.write_broken(out / "broken_images.csv", state.errors())

    def _finish(self, state: RunState) -> None:
        cfg = self.config
        cfg.out.mkdir(parents=True, exist_ok=True)
        self._write_tables(state)
        if self.comparison.rows:
            self.comparison.render(cfg.out / "comparison.png")
        payload = manifest_payload(
            cfg, self.profiles, self.restorers, self.result, state, self.world.size, self.absent_optional
        )
        outputs.write_manifest(cfg.out, payload)


def run_eval(
    config: EvalConfig, restorers: list[ModelEntry] | list[Restorer], console: Console | None = None
) -> EvalResult:
    """Run (or resume) one evaluation; rank 0 writes the results under config.out (report.md: report layer).

    `restorers` are `--model` entries (parse_model_specs) or any Restorer, under its own name.
    """
    if not restorers:
        raise IptbenchError("no model to evaluate: pass at least one --model (e.g. --model bicubic)")
    config.out.mkdir(parents=True, exist_ok=True)
    return Runner(config, [as_entry(r) for r in restorers], console).run()
