"""Validation while training (`--val SET[,SET...] --val-every N`): scored exactly as `iptbench eval` scores.

A SET is a benchmark set under the data root (`Set5`, `CBSD68`, `Rain100L`, ...), `mini` (eval's
no-download set: the six photos bundled with scikit-image, at every task), or `holdout:N` (the last N pairs
of every task of the training files, which then do not train). Every task of the run is scored on each
set that serves its kind, with the task's literature metric profile, by the code `iptbench eval` runs: the
same image loading and KAIR noise (iptbench.degradations.noise), whole images restored by fast tiling
(iptbench.models.restore), the same Scorer, and the same fsum mean. Under torchrun the images are dealt
to the ranks (iptbench.evaluation.distributed.World) and gathered in image order, so the numbers equal a
one-process run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from iptbench.errors import IptbenchError
from iptbench.tasks import Task, get_task
from iptbench.train.data import HOLDOUT_PREFIX, Split

MINI = "mini"
WINDOW_BATCH = 64  # `iptbench eval --window-batch` default


class ValSet(Protocol):
    name: str

    def serves(self, task: Task) -> bool: ...

    def items(self, task: Task) -> list[Any]: ...

    def load(self, item: Any, task: Task, profile: Any) -> tuple[torch.Tensor, torch.Tensor]: ...

    def grey(self, item: Any) -> bool: ...


def _tensor(image: np.ndarray) -> torch.Tensor:
    from iptbench.images import image_to_tensor

    return image_to_tensor(image if image.flags.writeable else image.copy())


def _eval_input(lr: np.ndarray | None, target: np.ndarray, task: Task, profile: Any) -> torch.Tensor:
    """The model input exactly as the eval runner makes it (noise per image from the profile)."""
    if task.spec.eval_input == "noise":
        from iptbench.degradations.noise import noise_for_profile

        assert task.sigma is not None
        noisy = noise_for_profile(target, task.sigma, profile)
        return torch.from_numpy(noisy).permute(2, 0, 1).unsqueeze(0).contiguous()
    assert lr is not None
    return _tensor(lr)


class BenchmarkSet:
    """A benchmark test set under the data root, loaded by iptbench.benchmarks.registry as eval loads it."""

    def __init__(self, name: str, root: Any) -> None:
        from iptbench.benchmarks.registry import BenchmarkDataset

        self.dataset = BenchmarkDataset(name, root)  # one line naming the fetch command when missing
        self.name = self.dataset.name

    def serves(self, task: Task) -> bool:
        return task.kind in self.dataset.benchmark.kinds

    def items(self, task: Task) -> list[Any]:
        return list(self.dataset.items(task))

    def load(self, item: Any, task: Task, profile: Any) -> tuple[torch.Tensor, torch.Tensor]:
        lr, target = self.dataset.load(item, task)
        return _eval_input(lr, target, task, profile), _tensor(target)

    def grey(self, item: Any) -> bool:
        """A ground truth stored with one channel is scored by the profile's grey rule, as eval does."""
        from iptbench.images import is_grey_file

        return is_grey_file(item.target)


class MiniSet(BenchmarkSet):
    """`mini` exactly as `iptbench eval --suite mini` has it (iptbench.benchmarks.mini): the six photos
    bundled with scikit-image, whole, at every task; no download."""

    def __init__(self) -> None:
        from iptbench.benchmarks.mini import NAME, MiniDataset

        self.dataset = MiniDataset()  # type: ignore[assignment]
        self.name = NAME

    def serves(self, task: Task) -> bool:
        return True


class HoldoutSet:
    """The held-out pairs of the training files, as stored (no flips, the stored noise)."""

    def __init__(self, name: str, files: Sequence[str], tasks: Sequence[str], split: Split) -> None:
        from iptbench.pairs.patches import PatchDataset

        self.name = name
        self.dataset = PatchDataset(list(files), list(tasks), augment=False, fresh_noise=False)
        self.held = split.held

    def serves(self, task: Task) -> bool:
        return task.name in self.held

    def items(self, task: Task) -> list[Any]:
        return list(range(*self.held[task.name]))

    def load(self, item: Any, task: Task, profile: Any) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.dataset[int(item)]
        return pair["input"].float().unsqueeze(0), pair["target"].float().unsqueeze(0)

    def grey(self, item: Any) -> bool:
        return False  # build-data stores every patch as RGB


def build_sets(
    names: Sequence[str], tasks: Sequence[str], data_root: Any, files: Sequence[str], split: Split
) -> list[ValSet]:
    """The --val sets, checked against the run's tasks: every task gets a set and every set a task."""
    sets: list[ValSet] = []
    for raw in names:
        name = raw.strip()
        if name.lower() == MINI:
            sets.append(MiniSet())
        elif name.lower().startswith(HOLDOUT_PREFIX):
            sets.append(HoldoutSet(name.lower(), files, tasks, split))
        else:
            sets.append(BenchmarkSet(name, data_root))
    if len({s.name for s in sets}) != len(sets):
        raise IptbenchError(f"--val names a set twice ({', '.join(names)})")
    for s in sets:
        if not any(s.serves(get_task(t)) for t in tasks):
            raise IptbenchError(f"--val {s.name} serves none of this run's tasks ({', '.join(tasks)})")
    for t in tasks:
        if sets and not any(s.serves(get_task(t)) for s in sets):
            raise IptbenchError(
                f"--val {','.join(names)} has no set for {t}: add one (mini, holdout:N, or a {t} benchmark)"
            )
    return sets


@dataclass(frozen=True)
class ValRow:
    step: int
    task: str
    set: str
    psnr: float
    ssim: float
    seconds: float

    def row(self) -> dict[str, str]:
        # repr: full precision, the same text eval's summary.csv writes for the same mean
        return {
            "step": str(self.step), "task": self.task, "set": self.set, "psnr": repr(self.psnr),
            "ssim": repr(self.ssim), "seconds": f"{self.seconds:.2f}",
        }  # fmt: skip


def mean_psnr(rows: Sequence[ValRow]) -> float:
    """The number `best` is chosen by: per task the mean over its sets, then the mean over tasks."""
    by_task: dict[str, list[float]] = {}
    for r in rows:
        by_task.setdefault(r.task, []).append(r.psnr)
    return math.fsum(math.fsum(v) / len(v) for v in by_task.values()) / len(by_task)


class Validator:
    """Scores a model on every (task, set) pair; every rank calls `run`, rank 0 gets the rows."""

    def __init__(self, sets: Sequence[ValSet], tasks: Sequence[str], rank: int, world_size: int) -> None:
        from iptbench.evaluation.distributed import World
        from iptbench.evaluation.scoring import Scorer, profiles_for

        self.world = World(rank, world_size)
        task_objs = [get_task(t) for t in tasks]
        self.pairs = [(t, s) for t in task_objs for s in sets if s.serves(t)]
        self.profiles = profiles_for(task_objs, None)
        self.scorer = Scorer(lpips=False)

    def _score(self, model: Any, task: Task, vset: ValSet) -> list[tuple[int, float, float]]:
        from iptbench.models import restore

        profile = self.profiles[task.name]
        scores = []
        for index, item in self.world.shard(vset.items(task)):
            inp, target = vset.load(item, task, profile)
            out = restore(model, inp, task.name, tile_mode="fast", window_batch=WINDOW_BATCH)
            grey = vset.grey(item)
            score = self.scorer(out.float().cpu(), target, task, profile, *((grey,) if grey else ()))
            scores.append((index, float(score[0]), float(score[1])))  # (psnr, ssim, ...) as eval's Score
        return scores

    def run(self, model: Any, step: int) -> list[ValRow]:
        rows = []
        for task, vset in self.pairs:
            t0 = time.perf_counter()
            parts = self.world.gather(self._score(model, task, vset))
            if not self.world.is_main:
                continue
            scores = sorted((x for part in parts for x in part), key=lambda x: x[0])
            n = len(scores)
            psnr = math.fsum(p for _, p, _ in scores) / n
            ssim = math.fsum(s for _, _, s in scores) / n
            rows.append(ValRow(step, task.name, vset.name, psnr, ssim, time.perf_counter() - t0))
        return rows
