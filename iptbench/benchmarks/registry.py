"""Benchmark test sets: the registry (as data), where they live on disk, and loading (input, target) pairs.

A dataset is looked up under the data root (`--data-root`, else `$IPTBENCH_DATA`, else
`~/.cache/iptbench/datasets`) by its name or an alias, case-insensitively; its layout is recognised by
`iptbench.benchmarks.layouts`. Archive hashes are filled in only when they were verified: `None` means
"unknown", and `iptbench datasets verify/fetch` say so instead of pretending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from iptbench.benchmarks.layouts import Layout, detect_layout, find_dataset_dir, find_lr_file
from iptbench.errors import IptbenchError
from iptbench.images import list_images, read_image
from iptbench.tasks import Task, get_kind

DATA_ENV = "IPTBENCH_DATA"
DEFAULT_DATA_ROOT = Path("~/.cache/iptbench/datasets")

EDSR_BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
FFDNET_ARCHIVE = "https://github.com/cszn/FFDNet/archive/e787f46df2f374ff3591186706229cb9a0591fea.zip"
SWINIR_ARCHIVE = "https://github.com/JingyunLiang/SwinIR/archive/6545850fbf8df298df73d81f3e8cba638787c8bd.zip"
KODAK_ARCHIVE = "https://github.com/Zelex/images/archive/0b8a89db599a384124fb991b85d40cfd63c73d58.zip"
RAIN2AVOID_ARCHIVE = (
    "https://github.com/ytpeng-aimlab/Rain2Avoid-Self-Supervised-Single-Image-Deraining-with-Non-local-"
    "Stochastic-Sampling/archive/22bf3a7075a3484cdcdca903508b7eedcfd30c05.zip"
)
MSPFN_ARCHIVE = "https://github.com/kuijiang94/MSPFN/archive/26e6073b163ac4f087d6c57bf55eba7ed20751d7.zip"


@dataclass(frozen=True)
class FetchSource:
    """Where `iptbench datasets fetch` gets a dataset.

    member: path of the dataset folder inside the archive, matched as a suffix of the extracted paths
    (GitHub archives add a `<repo>-<commit>/` top folder); None means "any folder named like the dataset".
    rename: sub-folder renames applied after extraction, so the result is a layout iptbench recognises.
    """

    url: str
    sha256: str | None = None
    member: str | None = None
    rename: tuple[tuple[str, str], ...] = ()
    into_hr: bool = False  # the archive holds a flat folder of images: move them into HR/


@dataclass(frozen=True)
class Benchmark:
    name: str
    count: int  # images (pairs for deraining) in the standard test split
    kinds: tuple[str, ...]  # names of task kinds (iptbench.tasks)
    aliases: tuple[str, ...] = ()
    source: str = ""  # the canonical public source, for humans
    fetch: FetchSource | None = None
    manual: str = "HR/*.png"  # what a user puts under <root>/<name>/ by hand
    notes: str = ""
    size_variants: tuple[tuple[tuple[int, int], str], ...] = field(
        default=()
    )  # (W, H) of every image -> label

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


_SR_MANUAL = "HR/*.png (optionally LR_bicubic/X{s}/{stem}x{s}.png)"

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "Set5",
            5,
            ("sr",),
            aliases=("CSet5",),
            source="EDSR benchmark package (EDSR-PyTorch README), benchmark/Set5",
            fetch=FetchSource(EDSR_BENCHMARK_URL, member="benchmark/Set5"),
            manual=_SR_MANUAL,
        ),
        Benchmark(
            "Set14",
            14,
            ("sr",),
            aliases=("CSet14",),
            source="EDSR benchmark package, benchmark/Set14",
            fetch=FetchSource(EDSR_BENCHMARK_URL, member="benchmark/Set14"),
            manual=_SR_MANUAL,
            notes="bridge.png is grayscale; it is replicated to three channels",
        ),
        Benchmark(
            "B100",
            100,
            ("sr",),
            aliases=("BSD100", "BSDS100"),
            source="EDSR benchmark package, benchmark/B100 (BSD300 test split)",
            fetch=FetchSource(EDSR_BENCHMARK_URL, member="benchmark/B100"),
            manual=_SR_MANUAL,
            notes="EDSR PNGs differ from a fresh decode of the BSDS JPEGs by +-1 in ~10% of values",
        ),
        Benchmark(
            "Urban100",
            100,
            ("sr", "denoise"),
            source="EDSR benchmark package, benchmark/Urban100",
            fetch=FetchSource(EDSR_BENCHMARK_URL, member="benchmark/Urban100"),
            manual=_SR_MANUAL,
            notes="the SelfExSR zip's HR images look bicubic-upscaled; use the EDSR/VDSR copies",
        ),
        Benchmark(
            "Manga109",
            109,
            ("sr",),
            source="manga109.org (academic use only; redistribution forbidden)",
            fetch=None,
            manual=_SR_MANUAL,
            notes="request it from manga109.org; iptbench cannot download it for you",
        ),
        Benchmark(
            "CBSD68",
            68,
            ("denoise",),
            source="cszn/FFDNet testsets/CBSD68",
            fetch=FetchSource(FFDNET_ARCHIVE, member="testsets/CBSD68", into_hr=True),
            notes="equals the Pillow decode of the BSDS300 test JPEGs",
        ),
        Benchmark(
            "Kodak24",
            24,
            ("denoise",),
            aliases=("Kodak",),
            source="Kodak PhotoCD set, full size 768x512 (copy: Zelex/images kodak/)",
            fetch=FetchSource(KODAK_ARCHIVE, member="kodak", into_hr=True),
            notes="full-size images (SwinIR/Restormer); FFDNet/DnCNN report on 500x500 centre crops",
            size_variants=(
                ((500, 500), "FFDNet 500x500 centre crops (not comparable with full-size Kodak24)"),
            ),
        ),
        Benchmark(
            "McMaster",
            18,
            ("denoise",),
            aliases=("McMaster18",),
            source="cszn/FFDNet or JingyunLiang/SwinIR testsets/McMaster (TIFF)",
            fetch=FetchSource(SWINIR_ARCHIVE, member="testsets/McMaster", into_hr=True),
            manual="HR/*.tif",
        ),
        Benchmark(
            "Rain100L",
            100,
            ("derain",),
            aliases=("R100L",),
            source="JORDER (Yang et al.), old version as used by PReNet and IPT",
            fetch=FetchSource(
                RAIN2AVOID_ARCHIVE,
                member="dataset/Rain100L",
                rename=(("input", "rainy"), ("target", "norain")),
            ),
            manual="rainy/*.png + norain/*.png (same file names)",
            notes="old version (PReNet/IPT); the JORDER authors later replaced the set",
        ),
        Benchmark(
            "Rain100H",
            100,
            ("derain",),
            aliases=("R100H",),
            source="JORDER (Yang et al.), old version; copy in kuijiang94/MSPFN test_data/R100H",
            fetch=FetchSource(
                MSPFN_ARCHIVE,
                member="test_data/R100H",
                rename=(("inputcrop", "rainy"), ("cleancrop", "norain")),
            ),
            manual="rainy/*.png + norain/*.png (same file names)",
            notes="old version; its training set overlaps the test set (PReNet drops 546 images)",
        ),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """Look a benchmark up by name or alias, case-insensitively (`bsd100` -> B100)."""
    wanted = name.strip().lower()
    for bench in BENCHMARKS.values():
        if wanted in (n.lower() for n in bench.names):
            return bench
    raise IptbenchError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")


def fetch_command(name: str) -> str:
    return f"iptbench datasets fetch {get_benchmark(name).name}"


def manual_hint(name: str, root: Path) -> str:
    """Where to put a dataset by hand, for one-line error messages."""
    bench = get_benchmark(name)
    return f"put {bench.name} under {root / bench.name}/{bench.manual}"


def resolve_data_root(cli_value: Path | str | None = None) -> Path:
    """--data-root, else $IPTBENCH_DATA, else ~/.cache/iptbench/datasets (the folder need not exist yet).

    An empty value is an error, never the current folder: it is what an unset variable expands to in
    `--data-root "$IPTBENCH_DATA"`, and it used to make every benchmark quietly "missing".
    """
    if cli_value is not None:
        if str(cli_value).strip() == "":
            raise IptbenchError("--data-root is empty: give the folder holding Set5/, Set14/, ...")
        return Path(cli_value).expanduser()
    env = os.environ.get(DATA_ENV)
    if env is not None:
        if env.strip() == "":
            raise IptbenchError(
                f"{DATA_ENV} is set but empty: point it at the folder holding Set5/, Set14/, ... "
                "(or unset it, or pass --data-root)"
            )
        return Path(env).expanduser()
    return DEFAULT_DATA_ROOT.expanduser()


State = Literal["found", "missing", "incomplete"]


@dataclass
class DatasetStatus:
    benchmark: Benchmark
    state: State
    path: Path | None = None
    found: int = 0
    layout: Layout | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.benchmark.name

    @property
    def expected(self) -> int:
        return self.benchmark.count

    @property
    def layout_name(self) -> str:
        return self.layout.description if self.layout is not None else ""


def _layout_problems(bench: Benchmark, layout: Layout) -> list[str]:
    problems = list(layout.problems)
    if any(get_kind(k).eval_input == "paired" for k in bench.kinds) and not layout.is_paired:
        problems.append(f"expected rainy/clean pairs, found {layout.description}; layout: {bench.manual}")
    if layout.count != bench.count:
        unit = "pairs" if layout.is_paired else "images"
        problems.append(f"{layout.count} {unit} found, {bench.count} expected")
    if layout.kind == "hr":
        for scale in layout.lr_scales():
            lr_dir = layout.lr_dir(scale)
            n_lr = len(list_images(lr_dir)) if lr_dir is not None else 0
            if n_lr != len(layout.targets):
                problems.append(f"LR_bicubic/X{scale} has {n_lr} images for {len(layout.targets)} HR images")
    return problems


def locate(name: str, root: Path | str | None = None) -> DatasetStatus:
    """Find a benchmark under the data root and say whether it is complete (names only, nothing decoded)."""
    bench = get_benchmark(name)
    root = resolve_data_root(root)
    folder = find_dataset_dir(root, bench.names)
    if folder is None:
        return DatasetStatus(bench, "missing")
    layout = detect_layout(folder)
    if layout is None:
        return DatasetStatus(
            bench, "incomplete", folder, problems=[f"no images in a recognised layout in {folder}"]
        )
    problems = _layout_problems(bench, layout)
    state: State = "incomplete" if problems else "found"
    return DatasetStatus(bench, state, folder, layout.count, layout, problems)


@dataclass(frozen=True)
class BenchmarkItem:
    """One test image: `name` is the stem results are reported under; `input` is None when made on the fly."""

    name: str
    target: Path
    input: Path | None = None


class BenchmarkDataset:
    """A located benchmark folder; `items(task)` lists its images and `load(item, task)` decodes one.

    strict=True (the default) refuses incomplete folders, because a partial test set gives numbers that
    look comparable with published ones but are not.
    """

    def __init__(self, name: str, root: Path | str | None = None, *, strict: bool = True) -> None:
        self.root = resolve_data_root(root)
        self.status = locate(name, self.root)
        self.benchmark = self.status.benchmark
        if self.status.state == "missing" or self.status.layout is None or self.status.path is None:
            if self.status.path is not None:
                raise IptbenchError(f"{self.status.problems[0]}; {manual_hint(name, self.root)}")
            raise IptbenchError(
                f"{self.benchmark.name} not found under {self.root}; run `{fetch_command(name)}`"
                f" or {manual_hint(name, self.root)}"
            )
        if strict and self.status.state == "incomplete":
            raise IptbenchError(
                f"{self.benchmark.name} at {self.status.path} is incomplete: "
                f"{'; '.join(self.status.problems)}"
                f" (see `iptbench datasets verify {self.benchmark.name}`)"
            )
        self.path: Path = self.status.path
        self.layout: Layout = self.status.layout

    @property
    def name(self) -> str:
        return self.benchmark.name

    def __len__(self) -> int:
        return self.layout.count

    def __repr__(self) -> str:
        return f"BenchmarkDataset({self.name!r}, path={str(self.path)!r}, layout={self.layout.description!r})"

    def items(self, task: Task) -> list[BenchmarkItem]:
        how = task.spec.eval_input  # an unknown kind raises here
        if how == "paired":
            if not self.layout.is_paired:
                raise IptbenchError(
                    f"{self.name} holds single images ({self.layout.description}), not rainy/clean pairs;"
                    " deraining needs a Rain100L/Rain100H-style folder"
                )
            return [BenchmarkItem(p.name, p.clean, p.rainy) for p in self.layout.pairs]
        if self.layout.is_paired:
            raise IptbenchError(f"{self.name} holds rainy/clean pairs; it can only be used for deraining")
        if how != "lr":  # "noise" and "clean": the input is made from the clean image
            return [BenchmarkItem(p.stem, p) for p in self.layout.targets]
        lr_dir = self.layout.lr_dir(task.scale) if self.layout.kind == "hr" else None
        items = []
        for path in self.layout.targets:
            lr_path = None
            if lr_dir is not None:
                lr_path = find_lr_file(lr_dir, path.stem, task.scale)
                if lr_path is None:
                    raise IptbenchError(
                        f"{lr_dir} has no LR file for {path.name} (expected {path.stem}x{task.scale}.png);"
                        f" restore it, or remove {lr_dir} to make LR images on the fly"
                    )
            items.append(BenchmarkItem(path.stem, path, lr_path))
        return items

    def load(self, item: BenchmarkItem, task: Task) -> tuple[np.ndarray | None, np.ndarray]:
        return load_item(item, task)


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def load_item(item: BenchmarkItem, task: Task) -> tuple[np.ndarray | None, np.ndarray]:
    """Decode one item into (input uint8 HWC or None, target uint8 HWC) for a task.

    SR: the target is HR mod-cropped to the scale; the input is the LR file, or MATLAB-style uint8 bicubic of
    the cropped HR (what produced the distributed LR files). Denoise: (None, clean), the caller adds noise.
    Derain: (rainy, clean). A kind whose eval input is "clean": (its corruption of the clean image, clean).
    """
    how = task.spec.eval_input  # an unknown kind raises before anything is decoded
    target = read_image(item.target)
    if how == "noise":
        return None, target
    if how == "clean":
        return task.spec.eval_input_from_clean(target, task), target
    if how == "paired":
        if item.input is None:
            raise IptbenchError(f"deraining item {item.name} has no rainy image")
        rainy = read_image(item.input)
        if rainy.shape != target.shape:
            raise IptbenchError(
                f"{item.input.name} is {_size(rainy)} but its clean image {item.target.name} is "
                f"{_size(target)}"
            )
        return rainy, target
    from iptbench.degradations.bicubic import bicubic_lr_matlab_uint8  # deferred: keeps `datasets list` light
    from iptbench.ops import modcrop

    scale = task.scale
    target = np.array(modcrop(target, scale))  # a writable copy: read_image's arrays may be read-only
    if item.input is not None:
        lr = read_image(item.input)
        if lr.shape[0] * scale != target.shape[0] or lr.shape[1] * scale != target.shape[1]:
            raise IptbenchError(
                f"LR {item.input.name} is {_size(lr)}, but HR {item.target.name} mod-cropped to x{scale} is "
                f"{_size(target)} (expected LR {target.shape[1] // scale}x{target.shape[0] // scale})"
            )
        return lr, target
    return bicubic_lr_matlab_uint8(target, scale), target
