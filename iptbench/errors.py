"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import errno
import os
import re


class IptbenchError(Exception):
    """A problem the user can fix (bad path, wrong layout, incompatible checkpoint...).

    The message must be a single line that says what is wrong and what to do about it.
    """

    exit_code = 1


class ImageReadError(IptbenchError):
    """An image file that cannot be decoded (corrupt, truncated, unsupported)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path
        self.reason = reason


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a note on what was kept (e.g. the committed part of a build): exit status 130.

    Still a KeyboardInterrupt, so callers that stop on Ctrl-C keep doing so; the CLI prints the note.
    """


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OS_CAUSES: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "choose a location you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose a location you can write to, or fix its permissions"),
    errno.EROFS: ("read-only file system", "write somewhere else"),
    errno.ENOSPC: ("no space left on the device", "free some space and rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free some space and rerun"),
    errno.EFBIG: ("file too large for this file system", "write to another file system"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.EISDIR: ("is a folder, not a file", "give a file name"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists", "remove it or choose another name"),
    errno.ENAMETOOLONG: ("name too long", "choose a shorter path"),
    errno.ELOOP: ("too many levels of symbolic links", "check the links in the path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer workers"),
    errno.EIO: ("input/output error", "check the disk or network mount"),
    errno.ENOMEM: ("out of memory", "use fewer workers or a smaller batch"),
    errno.EXDEV: ("cannot move across file systems", "write the output next to its final place"),
}
# h5py reports failed opens as "(unable to open file: name = 'x.h5', errno = 13, ...)"; other HDF5 failures
# carry the library's wording, mapped here to what it means for the user.
_H5_NAME = re.compile(r"name = '([^']*)'")
_H5_ERRNO = re.compile(r"errno = (\d+)")
_H5_CAUSES = (
    ("file signature not found", "not an HDF5 file (or its beginning is damaged)"),
    ("truncated file", "the HDF5 file is truncated: it was not written or copied completely"),
    (
        "unable to lock file",
        "another process holds the file open for writing (or the file system cannot "
        "lock: set HDF5_USE_FILE_LOCKING=FALSE)",
    ),
    ("addr overflow", "the HDF5 file is damaged"),
    ("bad object header", "the HDF5 file is damaged"),
    ("wrong B-tree signature", "the HDF5 file is damaged"),
    ("bad symbol table", "the HDF5 file is damaged"),
    ("can't decompress", "the HDF5 file is damaged (a compressed chunk does not decode)"),
)


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """`FILE: cause; what to do` for permissions, full disks, paths under files, HDF5 open failures..."""
    text = _ANSI.sub("", str(exc))
    code, name = exc.errno, exc.filename if exc.filename is not None else path
    if name is None and (m := _H5_NAME.search(text)):
        name = m.group(1)
    if code is None and (m := _H5_ERRNO.search(text)):
        code = int(m.group(1))
    if code is None and "No space left" in text:
        code = errno.ENOSPC
    where = f"{os.fsdecode(name)}: " if name is not None else ""
    if exc.filename2 is not None:
        where = f"{os.fsdecode(name)} -> {os.fsdecode(exc.filename2)}: "
    for fragment, meaning in _H5_CAUSES:
        if fragment.lower() in text.lower():
            return f"{where}{meaning}"
    if code == errno.EEXIST and name is not None and os.path.isfile(name):
        # mkdir of an output folder whose name is taken by a file (`-o results/a.png/x`)
        return f"{where}is a file where a folder is needed; choose another path"
    if code in _OS_CAUSES:
        cause, advice = _OS_CAUSES[code]
        return f"{where}{cause}; {advice}"
    reason = exc.strerror or (text.strip().splitlines() or [type(exc).__name__])[0]
    return f"{where}{' '.join(reason.split())}"


def torch_load_error(path: str | os.PathLike[str], exc: Exception) -> IptbenchError:
    """What a failed torch.load(weights_only=True) means for the user; torch's own text is not passed on.

    Its advice ("re-run with weights_only=False") is one the CLI cannot follow: unpickling runs code.
    """
    text = str(exc)
    if "Unsupported global" in text or "Unsupported class" in text or "two options" in text:
        return IptbenchError(
            f"{path} is not a checkpoint iptbench can load safely (it needs code to unpickle); convert it "
            "where you trust it, or export a state dict"
        )
    if "central directory" in text or "PytorchStreamReader" in text or isinstance(exc, EOFError):
        return IptbenchError(f"cannot load {path}: it is truncated or damaged; copy or download it again")
    return IptbenchError(f"cannot load {path}: not a PyTorch checkpoint (nor a safetensors file)")
