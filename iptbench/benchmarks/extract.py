"""Safe archive extraction for benchmark downloads (zip and tar).

Extraction never writes outside its target folder: absolute paths, `..` components, links that point
outside and device files are refused before anything is written (tar additionally goes through
tarfile's "data" filter).
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from iptbench.errors import IptbenchError


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
