"""The README's tour runs: every command of its marked bash blocks, at smoke size, in an empty folder.

A block belongs to the tour when the line before its ```bash fence is `<!-- tour -->` (laptop scale: run as
written, only smaller) or `<!-- tour: full-scale -->` (ImageNet, torchrun, official checkpoints: run against
stand-ins). Commands are extracted (backslash continuations joined, comments dropped) and run one by one with
bash, in order, in one temporary folder per scale, with the venv's `iptbench`, `python` and `torchrun` first
on PATH and OMP_NUM_THREADS=1. Sizes are rewritten by the regexes of SMOKE (fewer steps, patches, batches,
shards...); nothing else is changed, so a command added to a marked block runs here too, and a command whose
program the test does not know (KNOWN_PROGRAMS) fails the test instead of being skipped.

Expected failures are the tour's own, and they are checked: a zoo model whose file is not on disk is dropped
from an `eval` that names other models too, and an `eval` with only such models, or a `weights fetch` of one,
must fail with exactly one stderr line that says where the file goes.

The laptop tour runs in the default suite; the full-scale one (two 2-process torchrun trainings) is marked
slow, and test_every_tour_command_is_one_this_test_can_run checks its commands in the default suite too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.subprocesses import run_in_new_session

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LAPTOP = "<!-- tour -->"
FULL = "<!-- tour: full-scale -->"

# the first word of every simple command in a tour block
KNOWN_PROGRAMS = {"iptbench", "torchrun", "python"}

# (pattern, replacement): the smoke-size rewrite of every command, applied in this order
SMOKE: list[tuple[str, str]] = [
    (r"--steps \d+", "--steps 2"),
    (r"(?<!\S)(--patches-per-image|-k) \d+", "--patches-per-image 1"),
    (r"(?<!\S)(--batch-size|-b) \d+", "--batch-size 2"),
    (r"(?<!\S)(--workers|-j) \d+", "--workers 1"),
    (r"holdout:\d+", "holdout:1"),
    # ImageNet -> a folder of generated images; 16 shards -> 2
    (r"/data/imagenet/train\b", "imagenet/train"),
    (r"\$\(seq 0 15\)", "$(seq 0 1)"),
    (r"(--shard \S+)/16\b", r"\1/2"),
    # a photo from skimage.data -> its top-left 96 x 96 corner
    (r"(\bdata\.\w+\(\))", r"\1[:96, :96]"),
    # 8 GPUs -> 2 CPU processes (gloo) on a free port
    (r"torchrun --nproc-per-node \d+", "torchrun --standalone --nproc-per-node 2"),
    # a recipe file's ipt-base at full budget -> ipt-tiny, one epoch of the stand-in pairs, validated on one
    # held-out image's pairs (--epochs, not --steps: the recipes set epochs, and train takes one budget)
    (
        r"(iptbench train --config \S+)",
        r"\1 --model ipt-tiny --epochs 1 --batch-size 2 --workers 0 --val holdout:1 --device cpu",
    ),
]


TIMEOUT_S = 600  # per command; generous for a loaded machine


@dataclass
class Step:
    command: str  # as in the README
    run: str  # what runs
    fails_with: str = ""  # "": must succeed; else: must fail with one stderr line containing this


def tour_blocks(text: str, marker: str) -> list[list[str]]:
    """The bodies of the ```bash blocks whose fence follows a line holding exactly `marker`."""
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != marker:
            continue
        fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
        assert fence == "```bash", f"README.md:{i + 1}: {marker} is not on the line before a ```bash fence"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        blocks.append(lines[i + 2 : end])
    return blocks


def _strip_comment(line: str) -> str:
    """`line` up to a `#` that starts a comment (at the start or after a blank, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def commands(block: list[str]) -> list[str]:
    """One string per command: continuations joined, comments and blank lines dropped."""
    out, pending = [], ""
    for raw in block:
        line = _strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line.strip()).strip()
        pending = ""
        if line:
            out.append(re.sub(r"\s+", " ", line))
    assert not pending, f"a continuation runs off the end of a tour block: {pending!r}"
    return out


def programs(command: str) -> list[str]:
    """The first word of each simple command (after ;, &&, ||, |, do, then), loop keywords skipped."""
    words = shlex.split(command.replace(";", " ; "), posix=True)
    found, start = [], True
    for w in words:
        if w in (";", "&&", "||", "|", "do", "then", "else"):
            start = True
        elif start:
            if w in ("done", "fi"):
                continue
            if w == "for":  # for VAR in WORDS; do
                found.append("for")
                start = False
                continue
            found.append(w)
            start = False
    return [p for p in found if p != "for"]


def tour(marker: str) -> list[str]:
    return [c for b in tour_blocks(README.read_text(encoding="utf-8"), marker) for c in commands(b)]


def smoke(command: str) -> str:
    for pattern, repl in SMOKE:
        command = re.sub(pattern, repl, command)
    return command


def _absent_zoo_names(cwd: Path) -> set[str]:
    """Zoo names whose file is not on disk as seen from `cwd` (`./weights` is one place the zoo looks)."""
    from iptbench.models import zoo

    here = Path.cwd()
    os.chdir(cwd)
    try:
        absent = {e.name for e in zoo.list_zoo() if zoo.find(e) is None}
    finally:
        os.chdir(here)
    return absent


def plan(command: str, absent: set[str]) -> Step:
    """The smoke-size command, and whether it must succeed or fail for a missing zoo file."""
    run = smoke(command)
    words = shlex.split(run)
    if words[:3] == ["iptbench", "weights", "fetch"] and len(words) > 3 and words[3] in absent:
        return Step(command, run, fails_with="put it in")
    if words[:2] == ["iptbench", "eval"]:
        flags = re.findall(r"(?:--model|-m) (\S+)", run)
        missing = [m for m in flags if m in absent]
        if missing and len(missing) == len(flags):
            return Step(command, run, fails_with="is not on disk")
        for m in missing:
            run = re.sub(rf"(?:--model|-m) {re.escape(m)}(?=\s|$)", "", run)
        run = re.sub(r"\s+", " ", run).strip()
    return Step(command, run)


def _bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_in_new_session(
        ["bash", "-e", "-o", "pipefail", "-c", command], env=env, cwd=cwd, timeout=TIMEOUT_S
    )


def _outputs(run: str) -> list[str]:
    """The files or folders a command names as its output (-o/--out/--output), when it names one."""
    return re.findall(r"(?:^|\s)(?:-o|--out|--output) (\S+)", run)


def run_tour(marker: str, cwd: Path, env_extra: dict[str, str] | None = None) -> list[tuple[str, float]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env_extra or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    absent = _absent_zoo_names(cwd)
    times = []
    cmds = tour(marker)
    assert cmds, f"README.md has no block marked {marker}"
    for command in cmds:
        step = plan(command, absent)
        start = time.perf_counter()
        proc = _bash(step.run, cwd, env)
        times.append((step.run, time.perf_counter() - start))
        said = f"README: {command}\nran: {step.run}\nexit {proc.returncode}\n"
        said += f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        if step.fails_with:
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode != 0, said
            assert len(lines) == 1 and step.fails_with in lines[0], said
            assert "Traceback" not in proc.stderr, said
            continue
        assert proc.returncode == 0, said
        for path in _outputs(step.run):
            assert (cwd / path).exists(), f"{said}\nno {path} after it"
    return times


def test_extraction() -> None:
    block = [
        "# a comment",
        "iptbench train a.h5 --out runs/x \\",
        "    --steps 300   # trailing comment",
        "",
        "python -c \"print('#not a comment')\"",
        "for I in $(seq 0 15); do iptbench build-data src s-$I.h5 --shard $I/16 --workers 32; done",
    ]
    cmds = commands(block)
    assert cmds == [
        "iptbench train a.h5 --out runs/x --steps 300",
        "python -c \"print('#not a comment')\"",
        "for I in $(seq 0 15); do iptbench build-data src s-$I.h5 --shard $I/16 --workers 32; done",
    ]
    assert programs(cmds[2]) == ["iptbench"]
    assert programs("a && b | c") == ["a", "b", "c"]
    assert smoke(cmds[0]) == "iptbench train a.h5 --out runs/x --steps 2"
    loop = smoke(cmds[2])
    assert loop.startswith("for I in $(seq 0 1); do") and "--shard $I/2 --workers 1;" in loop
    absent = {"ipt-sr2", "z"}
    assert plan("iptbench eval --model m=a.safetensors --model ipt-sr2 -m bicubic", absent).run == (
        "iptbench eval --model m=a.safetensors -m bicubic"
    )
    assert plan("iptbench eval --suite all --model ipt-sr2", absent).fails_with
    assert plan("iptbench weights fetch ipt-sr2", absent).fails_with
    assert not plan("iptbench weights fetch other", absent).fails_with


@pytest.mark.parametrize("marker", [LAPTOP, FULL])
def test_every_tour_command_is_one_this_test_can_run(marker: str) -> None:
    cmds = tour(marker)
    assert cmds, f"README.md has no block marked {marker}"
    for command in cmds:
        unknown = set(programs(command)) - KNOWN_PROGRAMS
        assert not unknown, f"the tour test does not know how to run {sorted(unknown)}: {command}"
        run = smoke(command)
        for flag in ("--steps", "--batch-size", "--patches-per-image"):
            for n in re.findall(rf"{flag} (\d+)", run):
                assert int(n) <= 2, f"{flag} {n} survived the smoke rewrite: {run}"


def test_laptop_tour(tmp_path: Path) -> None:
    """Every command of the laptop tour succeeds in an empty folder and makes what the next one reads."""
    times = run_tour(LAPTOP, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"pairs-tour.h5", "photo.png"} <= names, names
    print("\n".join(f"{t:6.1f} s  {c}" for c, t in times))


@pytest.mark.slow
def test_full_scale_tour(tmp_path: Path) -> None:
    """The full-scale tour against stand-ins: generated images for ImageNet, 2 gloo processes for 8 GPUs,
    ipt-tiny for ipt-base, no official checkpoint on disk (`weights fetch` and `eval` say where it goes)."""
    from iptbench.pairs.sources import generate_images

    generate_images(tmp_path / "imagenet" / "train", 8, (200, 200), seed=5)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "data").mkdir()
    times = run_tour(FULL, tmp_path, {"IPTBENCH_DATA": str(tmp_path / "data")})
    print("\n".join(f"{t:6.1f} s  {c}" for c, t in times))
