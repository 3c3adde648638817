"""Getting benchmark sets onto disk and checking them: download, sha256, safe extraction, arrangement, verify.

Extraction never writes outside its target folder: absolute paths, `..` components, links that point
outside and device files are refused before anything is written (tar additionally goes through
tarfile's "data" filter).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from iptbench.data.benchmark_layouts import child_dir, detect_layout, find_lr_file
from iptbench.data.benchmarks import (
    Benchmark,
    fetch_command,
    get_benchmark,
    locate,
    manual_hint,
    resolve_data_root,
)
from iptbench.errors import ImageReadError, IptbenchError
from iptbench.images import read_image

DOWNLOAD_DIR = ".downloads"
SUMS_FILE = "SHA256SUMS"
_CHUNK = 1 << 20
_stderr = Console(stderr=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, *, show_progress: bool = True, timeout: float = 30.0) -> Path:
    """Stream `url` to `dest` (via a .part file, so an interrupted download never looks complete).

    Network failures raise OSError subclasses (URLError, TimeoutError); the caller words the message.
    """
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "iptbench"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            dest.parent.mkdir(parents=True, exist_ok=True)  # only once connected: offline leaves no trace
            total = int(response.headers.get("Content-Length") or 0) or None
            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
            progress = Progress(*columns, TimeRemainingColumn(), console=_stderr, disable=not show_progress)
            with open(part, "wb") as out, progress as bar:
                task = bar.add_task(f"download {dest.name}", total=total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def _unsafe(archive: Path, member: str, why: str) -> IptbenchError:
    return IptbenchError(f"refusing to extract {archive.name}: member {member!r} {why}")


def _check_name(archive: Path, name: str) -> PurePosixPath:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise _unsafe(archive, name, "has an absolute path")
    path = PurePosixPath(posix)
    if ".." in path.parts:
        raise _unsafe(archive, name, "contains '..'")
    return path


def _inside(dest: Path, relative: PurePosixPath) -> bool:
    resolved = os.path.normpath(os.path.join(dest, *relative.parts)) if relative.parts else str(dest)
    return os.path.commonpath([str(dest), resolved]) == str(dest)


def _link_target_ok(dest: Path, member: PurePosixPath, target: str, *, relative_to_member: bool) -> bool:
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return False
    base = member.parent if relative_to_member else PurePosixPath()
    joined = os.path.normpath(os.path.join(dest, *base.parts, target))
    return os.path.commonpath([str(dest), joined]) == str(dest)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        regular = []
        for info in zf.infolist():
            path = _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                if not _link_target_ok(dest, path, target, relative_to_member=True):
                    raise _unsafe(archive, info.filename, f"is a link pointing outside ({target})")
                continue  # links inside the archive are not needed by any benchmark layout
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise _unsafe(archive, info.filename, "is a device or special file")
            if not _inside(dest, path):
                raise _unsafe(archive, info.filename, "would land outside the target folder")
            regular.append(info)
        for info in regular:
            zf.extract(info, dest)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for member in members:
            path = _check_name(archive, member.name)
            if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
                raise _unsafe(archive, member.name, "is a device or special file")
            if member.issym() and not _link_target_ok(dest, path, member.linkname, relative_to_member=True):
                raise _unsafe(archive, member.name, f"is a symlink pointing outside ({member.linkname})")
            if member.islnk() and not _link_target_ok(dest, path, member.linkname, relative_to_member=False):
                raise _unsafe(archive, member.name, f"is a hard link pointing outside ({member.linkname})")
            if not _inside(dest, path):
                raise _unsafe(archive, member.name, "would land outside the target folder")
        try:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # Python without PEP 706: the checks above are the guard
                tf.extractall(dest, members=members)
        except tarfile.FilterError as exc:
            raise IptbenchError(f"refusing to extract {archive.name}: {exc}") from None


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) into `dest`, refusing unsafe members."""
    dest.mkdir(parents=True, exist_ok=True)
    dest = Path(os.path.realpath(dest))
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        raise IptbenchError(f"{archive} is neither a zip nor a tar archive")


def _find_dataset_folder(tree: Path, bench: Benchmark) -> Path | None:
    """The extracted folder holding the dataset: the registry's member path, else a folder named like it."""
    dirs = sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: (len(p.parts), str(p)))
    source = bench.fetch
    if source is not None and source.member:
        wanted = tuple(part.lower() for part in PurePosixPath(source.member).parts)
        for d in dirs:
            if tuple(part.lower() for part in d.relative_to(tree).parts[-len(wanted) :]) == wanted:
                return d
    names = {n.lower() for n in bench.names}
    for d in dirs:
        if d.name.lower() in names:
            return d
    # An archive of just the dataset: its content, or its single top folder, is the dataset.
    top = [p for p in tree.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    for candidate in (tree, top[0] if len(top) == 1 and top[0].is_dir() else None):
        if candidate is not None and detect_layout(candidate) is not None:
            return candidate
    return None


def _arrange(folder: Path, bench: Benchmark) -> None:
    """Bring an extracted folder into a recognised layout: registry renames, flat images into HR/."""
    renames = bench.fetch.rename if bench.fetch is not None else ()
    for old, new in renames:
        src = child_dir(folder, old)
        if src is not None and child_dir(folder, new) is None:
            src.rename(folder / new)
    layout = detect_layout(folder)
    if layout is not None and layout.kind == "flat":
        hr = folder / "HR"
        hr.mkdir()
        for path in layout.targets:
            path.rename(hr / path.name)


@dataclass
class FetchResult:
    name: str
    path: Path
    archive: Path | None
    sha256: str | None  # of the archive, as downloaded
    sha256_known: bool
    already_present: bool = False


def fetch_dataset(
    name: str,
    root: Path | str | None = None,
    *,
    url: str | None = None,
    archive: Path | None = None,
    show_progress: bool = True,
) -> FetchResult:
    """Download (or take `archive`), check, extract safely and arrange a benchmark under the data root."""
    bench = get_benchmark(name)
    root = resolve_data_root(root)
    status = locate(bench.name, root)
    if status.state == "found" and status.path is not None:
        return FetchResult(bench.name, status.path, None, None, False, already_present=True)
    if status.path is not None:
        raise IptbenchError(
            f"{status.path} exists but is incomplete ({'; '.join(status.problems)});"
            " move it away and fetch again"
        )
    expected = bench.fetch.sha256 if bench.fetch is not None and url is None and archive is None else None
    try:
        if archive is None:
            url = url or (bench.fetch.url if bench.fetch is not None else None)
            if url is None:
                raise IptbenchError(
                    f"{bench.name} has no public download ({bench.notes or bench.source});"
                    f" {manual_hint(bench.name, root)} or pass --archive FILE"
                )
            filename = Path(urllib.parse.urlparse(url).path).name or f"{bench.name}.archive"
            archive = root / DOWNLOAD_DIR / filename
            if not archive.is_file():
                try:
                    download(url, archive, show_progress=show_progress)
                except PermissionError:
                    raise
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    reason = getattr(exc, "reason", None) or exc
                    raise IptbenchError(
                        f"cannot download {bench.name} from {url} ({reason}); {manual_hint(bench.name, root)}"
                        " or pass --archive FILE"
                    ) from None
        elif not archive.is_file():
            raise IptbenchError(f"--archive {archive} is not a file")
        digest = sha256_file(archive)
        if expected is not None and digest != expected:
            raise IptbenchError(
                f"{archive} has sha256 {digest}, expected {expected}; delete it and fetch again"
            )
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
            safe_extract(archive, work)
            folder = _find_dataset_folder(work, bench)
            if folder is None:
                raise IptbenchError(
                    f"{archive.name} holds no folder for {bench.name}; {manual_hint(bench.name, root)}"
                )
            _arrange(folder, bench)
            final = root / bench.name
            shutil.move(str(folder), str(final))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    except PermissionError as exc:
        raise IptbenchError(
            f"cannot write to {exc.filename or root}: permission denied; pass --data-root"
        ) from None
    return FetchResult(bench.name, final, archive, digest, expected is not None)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not be checked (said why in detail)
    detail: str
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    name: str
    path: Path
    layout: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [p for c in self.checks for p in c.problems]


def read_sha256sums(path: Path) -> dict[Path, str]:
    """`sha256sum` output (`<hex>  <relative path>`, optionally `*` for binary) -> absolute path -> hex."""
    sums: dict[Path, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if match:
            sums[Path(os.path.normpath(path.parent / match.group(2)))] = match.group(1).lower()
    return sums


def _size_summary(sizes: list[tuple[int, int]]) -> str:
    counts = Counter(sizes).most_common()
    shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in counts[:5])
    return shown + (f", {len(counts) - 5} more sizes" if len(counts) > 5 else "")


def _sha_check(root: Path, folder: Path, bench: Benchmark) -> Check:
    sums: dict[Path, str] = {}
    used = []
    for candidate in (root / SUMS_FILE, folder / SUMS_FILE):
        if candidate.is_file():
            found = {p: h for p, h in read_sha256sums(candidate).items() if p.is_relative_to(folder)}
            if found:
                sums.update(found)
                used.append(str(candidate))
    if not sums:
        archive_note = "known" if bench.fetch is not None and bench.fetch.sha256 else "unknown"
        return Check(
            "sha256",
            None,
            f"not checked: no {SUMS_FILE} listing these files in {root} or {folder}, and iptbench knows no"
            f" per-file hashes for {bench.name} (archive hash: {archive_note})",
        )
    problems = []
    for path, expected in sorted(sums.items()):
        if not path.is_file():
            problems.append(f"{path.relative_to(folder)} is listed in {SUMS_FILE} but missing")
        elif sha256_file(path) != expected:
            problems.append(f"{path.relative_to(folder)} does not match its sha256 in {SUMS_FILE}")
    detail = f"{len(sums) - len(problems)}/{len(sums)} files match {', '.join(used)}"
    return Check("sha256", not problems, detail, problems)


def verify_dataset(name: str, root: Path | str | None = None, *, show_progress: bool = True) -> VerifyReport:
    """Check a benchmark folder: counts, every image decodes, LR/HR and rainy/clean sizes agree, sha256."""
    bench = get_benchmark(name)
    root = resolve_data_root(root)
    status = locate(bench.name, root)
    if status.path is None:
        raise IptbenchError(
            f"{bench.name} not found under {root}; run `{fetch_command(bench.name)}`"
            f" or {manual_hint(bench.name, root)}"
        )
    folder, layout = status.path, status.layout
    unit = "pairs" if layout is not None and layout.is_paired else "images"
    checks = [
        Check("count", not status.problems, f"{status.found} / {bench.count} {unit}", list(status.problems))
    ]
    report = VerifyReport(bench.name, folder, status.layout_name or "unrecognised", checks)
    if layout is None:
        return report

    lr_files: dict[int, dict[Path, Path | None]] = {}
    for scale in layout.lr_scales():
        lr_dir = layout.lr_dir(scale)
        lr_files[scale] = {t: find_lr_file(lr_dir, t.stem, scale) if lr_dir else None for t in layout.targets}
    files = [f for p in layout.pairs for f in (p.rainy, p.clean)] + list(layout.targets)
    files += [f for by_target in lr_files.values() for f in by_target.values() if f is not None]

    sizes: dict[Path, tuple[int, int]] = {}
    unreadable = []
    with Progress(console=_stderr, disable=not show_progress, transient=True) as bar:
        for path in bar.track(files, description=f"reading {bench.name}"):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                unreadable.append(str(exc))
                continue
            sizes[path] = (image.shape[1], image.shape[0])
    checks.append(Check("readable", not unreadable, f"{len(sizes)}/{len(files)} files decode", unreadable))

    size_problems = []
    for scale, by_target in lr_files.items():
        for target, lr in by_target.items():
            if lr is None:
                size_problems.append(f"LR_bicubic/X{scale} has no file for {target.name}")
            elif target in sizes and lr in sizes:
                (w, h), (lw, lh) = sizes[target], sizes[lr]
                if (lw * scale, lh * scale) != (w - w % scale, h - h % scale):
                    size_problems.append(
                        f"{lr.name} is {lw}x{lh} but {target.name} ({w}x{h}) mod-cropped to x{scale} is"
                        f" {w - w % scale}x{h - h % scale}"
                    )
    for pair in layout.pairs:
        if pair.rainy in sizes and pair.clean in sizes and sizes[pair.rainy] != sizes[pair.clean]:
            (rw, rh), (cw, ch) = sizes[pair.rainy], sizes[pair.clean]
            size_problems.append(f"{pair.rainy.name} is {rw}x{rh} but {pair.clean.name} is {cw}x{ch}")
    target_sizes = [sizes[t] for t in (layout.targets or [p.clean for p in layout.pairs]) if t in sizes]
    detail = _size_summary(target_sizes)
    for variant_size, label in bench.size_variants:
        if target_sizes and all(s == variant_size for s in target_sizes):
            detail += f"; this is the {label}"
    if lr_files:
        detail += "; LR x" + "/".join(str(s) for s in lr_files) + " consistent" if not size_problems else ""
    checks.append(Check("sizes", not size_problems, detail, size_problems))
    checks.append(_sha_check(root, folder, bench))
    return report
