"""Writing output files safely: never half a file under the final name, never over an input or silently.

Every file the CLI writes goes through `atomic_path`: the content is written to a hidden temporary name in
the destination folder (same file system, so the final rename is atomic), flushed to disk, and only then
renamed over the destination. A crash, a full disk or Ctrl-C leaves either the old file or the new one,
and at worst a stray `.NAME.tmp-PID` file, never a truncated output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from iptbench.errors import IptbenchError


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some file systems (and Windows) refuse to open folders: best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a finished file to disk before it is renamed into place (HDF5's close only reaches the cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The temporary sibling that `atomic_path` writes first (hidden, unique per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed onto `path`.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path` is untouched.
    Writers that pick a format from the suffix must name the format explicitly: the temporary name ends
    in `.tmp-PID`.
    """
    final = Path(path)
    if make_parents:
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(final)  # writers through file objects (PIL) lose the name: say which file
        raise
    _fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8, newlines written as given (no platform translation), so CSV bytes are the same everywhere."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both paths name one existing file (hard links, symlinks and `..` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output(
    output: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    overwrite: bool = False,
    flag: str = "--overwrite",
) -> None:
    """Refuse an output that is one of the inputs (always), or that exists (unless `overwrite`)."""
    out = Path(output)
    for item in inputs:
        if same_file(out, item):
            raise IptbenchError(f"the output {out} is also an input ({item}): write the result elsewhere")
    if out.is_dir():
        raise IptbenchError(f"the output {out} is a folder: give a file name")
    if out.exists() and not overwrite:
        raise IptbenchError(f"{out} exists: pass {flag} to replace it, or choose another name")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
