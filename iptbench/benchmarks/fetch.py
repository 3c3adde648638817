"""Getting benchmark sets onto disk: download, archive sha256, safe extraction (iptbench.benchmarks.extract),
arrangement into a recognised layout. Checking a folder afterwards is iptbench.benchmarks.verify.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
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

from iptbench.benchmarks.extract import safe_extract
from iptbench.benchmarks.layouts import child_dir, detect_layout
from iptbench.benchmarks.registry import (
    Benchmark,
    get_benchmark,
    locate,
    manual_hint,
    resolve_data_root,
)
from iptbench.errors import IptbenchError
from iptbench.io import sha256_file

DOWNLOAD_DIR = ".downloads"
_CHUNK = 1 << 20
_stderr = Console(stderr=True)


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
            archive = _download_archive(bench, root, url, show_progress)
        elif not archive.is_file():
            raise IptbenchError(f"--archive {archive} is not a file")
        digest = sha256_file(archive)
        if expected is not None and digest != expected:
            raise IptbenchError(
                f"{archive} has sha256 {digest}, expected {expected}; delete it and fetch again"
            )
        final = _extract_and_arrange(archive, root, bench)
    except PermissionError as exc:
        raise IptbenchError(
            f"cannot write to {exc.filename or root}: permission denied; pass --data-root"
        ) from None
    return FetchResult(bench.name, final, archive, digest, expected is not None)


def _download_archive(bench: Benchmark, root: Path, url: str | None, show_progress: bool) -> Path:
    """The benchmark's archive under root/DOWNLOAD_DIR, downloaded from `url` (or its own) unless there."""
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
            raise  # the caller says which folder cannot be written
        except (OSError, urllib.error.URLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise IptbenchError(
                f"cannot download {bench.name} from {url} ({reason}); {manual_hint(bench.name, root)}"
                " or pass --archive FILE"
            ) from None
    return archive


def _extract_and_arrange(archive: Path, root: Path, bench: Benchmark) -> Path:
    """Extract into a scratch folder under root, arrange the benchmark's folder and move it into place."""
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
    return final
