"""The eval loop: plan (datasets x tasks x models), score every image, write results, resume where it stopped.

Each (dataset, task) is loaded once and every model that still has to do it is run on the same input (same
noise), so adding a model to a finished run costs only that model. A cell (model, dataset, task) is recorded
as finished in state.json only after all its images are scored, and CSVs are rewritten after every
(dataset, task), so an interrupted run loses at most the pair in progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from iptbench.errors import IptbenchError
from iptbench.evaluation import outputs
from iptbench.evaluation.comparison import ComparisonCollector
from iptbench.evaluation.distributed import World, init_world
from iptbench.evaluation.model_specs import Restorer
from iptbench.evaluation.noise import NOISE_SEED, describe_noise, noise_digest, noise_for_profile
from iptbench.evaluation.scoring import Scorer, profiles_for
from iptbench.evaluation.suites import MissingDataset, PlanEntry, build_plan
from iptbench.images import image_to_tensor, tensor_to_image, write_png


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


@dataclass
class EvalResult:
    out: Path
    ran: list[tuple[str, str, str]] = field(default_factory=list)
    resumed: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[MissingDataset] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    images_scored: int = 0
    timing: dict[str, float] = field(default_factory=dict)  # model / load / metrics / write / total seconds


class ImagesPerSecond(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- img/s" if not speed else f"{speed:.2f} img/s", style="progress.data.speed")


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


class Runner:
    def __init__(self, config: EvalConfig, restorers: list[Restorer], console: Console | None = None) -> None:
        self.config = config
        self.restorers = restorers
        self.console = console or Console(stderr=True)
        self.world: World = init_world()
        self.result = EvalResult(config.out)
        self.timing = {"model": 0.0, "load": 0.0, "metrics": 0.0, "write": 0.0}

    def say(self, message: str) -> None:
        if self.world.is_main:
            self.console.print(message, highlight=False, soft_wrap=True)

    # -- planning -----------------------------------------------------------------------------------------
    def _plan(self) -> list[tuple[PlanEntry, Any, list]]:
        from iptbench.data.benchmarks import BenchmarkDataset

        cfg = self.config
        plan = build_plan(cfg.suite, cfg.datasets, cfg.data_root)
        self.result.missing = list(plan.missing)
        for miss in plan.missing:
            why = f" ({miss.detail})" if miss.detail else ""
            self.say(
                f"[yellow]missing[/] {miss.name} is {miss.state} under {cfg.data_root}{why}: "
                f"fetch it with `{miss.fetch_command}`"
            )
        if plan.missing and cfg.strict:
            names = ", ".join(m.name for m in plan.missing)
            commands = "; ".join(f"`{m.fetch_command}`" for m in plan.missing)
            raise IptbenchError(f"--strict: datasets missing under {cfg.data_root}: {names}; run {commands}")
        self.absent_optional = plan.absent_optional
        planned = []
        for entry in plan.entries:
            dataset = BenchmarkDataset(entry.dataset, cfg.data_root)
            try:
                items = dataset.items(entry.task)[: cfg.limit]
            except IptbenchError as exc:
                if cfg.strict:
                    raise
                self.result.missing.append(MissingDataset(entry.dataset, "incomplete", "", str(exc)))
                self.say(f"[yellow]skipped[/] {entry.dataset} {entry.task.name}: {exc}")
                continue
            planned.append((entry, dataset, items))
        return planned

    def _todo(self, entry: PlanEntry, done: set[tuple[str, str, str]]) -> list[Restorer]:
        todo = []
        for model in self.restorers:
            if not model.supports(entry.task):
                continue
            if (model.name, entry.dataset, entry.task.name) in done:
                self.result.resumed.append((model.name, entry.dataset, entry.task.name))
                continue
            todo.append(model)
        return todo

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> EvalResult:
        cfg = self.config
        start = time.perf_counter()
        torch.manual_seed(0)
        planned = self._plan()
        self.profiles = profiles_for([e.task for e, _, _ in planned] or [], cfg.profile)
        tasks_in_plan = {e.task.name: e.task for e, _, _ in planned}
        for model in self.restorers:
            lacking = [name for name in tasks_in_plan if not model.supports(name)]
            for name in lacking:
                reason = f"{model.name} has no {name} task (it does: {', '.join(model.tasks) or 'nothing'})"
                self.result.skipped.append({"model": model.name, "task": name, "reason": reason})
            if lacking:
                self.say(
                    f"[dim]skipped: {model.name} has no {', '.join(lacking)} task "
                    f"(it does: {', '.join(model.tasks) or 'nothing'})[/]"
                )

        state = outputs.RunState.load(cfg.out) if self.world.is_main else outputs.RunState()
        planned_keys = {
            (m.name, e.dataset, e.task.name)
            for e, _, _ in planned
            for m in self.restorers
            if m.supports(e.task)
        }
        redo = {
            k
            for k in planned_keys
            if k in state.cells
            and (
                cfg.overwrite
                or state.cells[k].profile != self.profiles[k[2]].name
                or state.cells[k].limit != cfg.limit
            )
        }
        done = self.world.broadcast(set(state.cells) - redo)
        rows = (
            [r for r in outputs.read_per_image(cfg.out / "per_image.csv") if r.cell() in done]
            if self.world.is_main
            else []
        )
        state.cells = {k: c for k, c in state.cells.items() if k in done}
        work = [(e, d, items, self._todo(e, done)) for e, d, items in planned]
        if self.result.resumed:
            self.say(
                f"resuming: {len(self.result.resumed)} finished cell(s) in {cfg.out} kept "
                "(pass --overwrite to redo them)"
            )
        self.scorer = Scorer(cfg.lpips) if any(t for *_, t in work) else None
        self.comparison = ComparisonCollector(cfg.comparison_rows)
        total = sum(len(self.world.shard(items)) * len(todo) for _, _, items, todo in work)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            ImagesPerSecond(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (cfg.progress and self.world.is_main),
            transient=False,
        )
        with progress:
            bar = progress.add_task("eval", total=total)
            for entry, dataset, items, todo in work:
                if not todo:
                    continue
                new_rows, errors = self._run_entry(entry, dataset, items, todo, state, progress, bar)
                if not self.world.is_main:
                    continue
                rows.extend(new_rows)
                self.result.images_scored += len(new_rows)
                self.result.errors.extend(errors)
                profile = self.profiles[entry.task.name]
                for model in todo:
                    key = (model.name, entry.dataset, entry.task.name)
                    n = sum(1 for r in new_rows if r.cell() == key)
                    state.cells[key] = outputs.CellRecord(
                        model.name,
                        entry.dataset,
                        entry.task.name,
                        profile.name,
                        profile.describe(),
                        profile.channel_for(entry.task),
                        int(profile.crop_for(entry.task)),
                        n,
                        model.spec,
                        errors,
                        cfg.limit,
                    )
                    self.result.ran.append(key)
                t0 = time.perf_counter()
                self._write_tables(state, rows)
                self.timing["write"] += time.perf_counter() - t0
        if self.world.is_main:
            self._finish(state, rows)
        self.timing["total"] = time.perf_counter() - start
        self.result.timing = dict(self.timing)
        return self.result

    def _run_entry(
        self,
        entry: PlanEntry,
        dataset: Any,
        items: list,
        todo: list[Restorer],
        state: outputs.RunState,
        progress: Progress,
        bar: Any,
    ) -> tuple[list, list]:
        cfg, task = self.config, entry.task
        profile = self.profiles[task.name]
        local: list[tuple[int, int, outputs.ImageRow]] = []
        errors: list[dict[str, str]] = []
        hashes: dict[str, str] = {}
        noise: dict[str, str] = {}
        for index, item in self.world.shard(items):
            t0 = time.perf_counter()
            try:
                lr, target = dataset.load(item, task)
            except IptbenchError as exc:  # ImageReadError included: report and go on
                reason = getattr(exc, "reason", None) or str(exc)
                path = getattr(exc, "path", None) or item.target
                errors.append(
                    {
                        "dataset": entry.dataset,
                        "task": task.name,
                        "image": item.name,
                        "path": str(path),
                        "reason": str(reason),
                    }
                )
                self.console.print(
                    f"[red]broken image[/] {entry.dataset}/{item.name} ({task.name}): {reason}",
                    highlight=False,
                    soft_wrap=True,
                )
                progress.advance(bar, len(todo))
                continue
            for p in (item.target, item.input):
                rel = _relative(p, cfg.data_root)
                if rel is not None and rel not in state.inputs and rel not in hashes:
                    hashes[rel] = outputs.sha256_file(p)
            if task.kind == "denoise":
                assert task.sigma is not None
                noisy = noise_for_profile(target, task.sigma, profile)
                noise[f"{entry.dataset}/{task.name}/{item.name}"] = noise_digest(noisy)
                inp = torch.from_numpy(noisy).permute(2, 0, 1).unsqueeze(0).contiguous()
            else:
                assert lr is not None
                inp = image_to_tensor(lr if lr.flags.writeable else lr.copy())
            if not target.flags.writeable:  # torch warns on read-only arrays; a copy is cheap next to a model
                target = target.copy()
            tgt = image_to_tensor(target)
            self.timing["load"] += time.perf_counter() - t0
            if index == 0 and self.comparison.wants(entry.dataset, task.name):
                shown = tensor_to_image(inp)
                in_psnr = self.scorer(inp, tgt, task, profile)[0] if inp.shape == tgt.shape else None
                self.comparison.start(entry.dataset, task.name, item.name, target, shown, task.scale, in_psnr)
            for order, model in enumerate(todo):
                progress.update(bar, description=f"{model.name} {entry.dataset} {task.name}")
                t0 = time.perf_counter()
                out = model(inp, task)
                seconds = time.perf_counter() - t0
                self.timing["model"] += seconds
                if tuple(out.shape[-2:]) != tuple(tgt.shape[-2:]):
                    raise IptbenchError(
                        f"{model.name} returned {tuple(out.shape[-2:])} for {entry.dataset}/{item.name} "
                        f"({task.name}) but the target is {tuple(tgt.shape[-2:])}: "
                        "the model does not fit the task"
                    )
                t0 = time.perf_counter()
                p, s, lp = self.scorer(out, tgt, task, profile)
                self.timing["metrics"] += time.perf_counter() - t0
                local.append(
                    (
                        order,
                        index,
                        outputs.ImageRow(model.name, entry.dataset, task.name, item.name, p, s, lp, seconds),
                    )
                )
                if cfg.save_images or index == 0:
                    t0 = time.perf_counter()
                    restored = tensor_to_image(out)
                    if cfg.save_images:
                        write_png(
                            outputs.restored_image_path(
                                cfg.out, model.name, entry.dataset, task.name, item.name
                            ),
                            restored,
                        )
                    if index == 0:
                        self.comparison.add(entry.dataset, task.name, model.name, restored, p)
                    self.timing["write"] += time.perf_counter() - t0
                progress.advance(bar)
        gathered = self.world.gather((local, errors, hashes, noise))
        merged = sorted((x for part in gathered for x in part[0]), key=lambda t: (t[0], t[1]))
        all_errors = sorted((e for part in gathered for e in part[1]), key=lambda e: e["image"])
        for part in gathered:
            state.inputs.update(part[2])
            state.noise.update(part[3])
        return [row for _, _, row in merged], all_errors

    # -- outputs ------------------------------------------------------------------------------------------
    def _write_tables(self, state: outputs.RunState, rows: list[outputs.ImageRow]) -> None:
        out = self.config.out
        cells = list(state.cells.values())
        keys = {c.key() for c in cells}
        kept = [r for r in rows if r.cell() in keys]
        outputs.write_per_image(out / "per_image.csv", kept)
        outputs.write_summary(out / "summary.csv", cells, kept)
        outputs.write_broken(out / "broken_images.csv", state.errors())
        state.save(out)

    def _finish(self, state: outputs.RunState, rows: list[outputs.ImageRow]) -> None:
        from iptbench.report.tables import render_report

        cfg = self.config
        cfg.out.mkdir(parents=True, exist_ok=True)
        self._write_tables(state, rows)
        if self.comparison.rows:
            self.comparison.render(cfg.out / "comparison.png")
        profiles = {
            name: {"name": p.name, "description": p.describe(), "noise": describe_noise(p)}
            for name, p in self.profiles.items()
        }
        outputs.write_manifest(
            cfg.out,
            {
                "suite": cfg.suite,
                "datasets": cfg.datasets,
                "data_root": str(cfg.data_root),
                "profile_option": cfg.profile,
                "profiles": profiles,
                "seeds": {"noise": f"numpy RandomState({NOISE_SEED}) per image (KAIR)", "torch": 0},
                "models": [
                    {
                        "name": m.name,
                        "spec": m.spec,
                        "tasks": list(m.tasks),
                        "description": m.description,
                        **m.meta,
                    }
                    for m in self.restorers
                ],
                "world_size": self.world.size,
                "missing": [
                    {"name": m.name, "state": m.state, "fetch": m.fetch_command, "detail": m.detail}
                    for m in self.result.missing
                ],
                "absent_optional": self.absent_optional,
                "skipped": self.result.skipped,
                "errors": state.errors(),
                "cells": [
                    {
                        "model": c.model,
                        "dataset": c.dataset,
                        "task": c.task,
                        "profile": c.profile,
                        "images": c.images,
                    }
                    for c in state.cells.values()
                ],
                "inputs_sha256": dict(sorted(state.inputs.items())),
                "noise_sha256": dict(sorted(state.noise.items())),
            },
        )
        text = render_report([cfg.out], fmt="md", published=True, missing=self.result.missing)
        outputs.atomic_write_text(cfg.out / "report.md", text)


def run_eval(config: EvalConfig, restorers: list[Restorer], console: Console | None = None) -> EvalResult:
    """Run (or resume) one evaluation; rank 0 writes everything under config.out."""
    if not restorers:
        raise IptbenchError("no model to evaluate: pass at least one --model (e.g. --model bicubic)")
    config.out.mkdir(parents=True, exist_ok=True)
    return Runner(config, restorers, console).run()
