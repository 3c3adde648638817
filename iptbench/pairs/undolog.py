"""A file object for h5py's fileobj driver that makes each commit atomic against kill -9 (undo log)."""

from __future__ import annotations

import errno
import io
import os
import struct
from pathlib import Path

_MAGIC = b"IPTUNDO1"
_REC = struct.Struct("<QQ")  # offset, length; the old bytes follow


class UndoFile(io.RawIOBase):
    """HDF5 flushes several metadata blocks (and the superblock's end-of-allocation last), so a kill inside
    a flush leaves a torn file. Before the first overwrite, since the last commit, of bytes that the last
    commit left on disk, their old contents go to PATH.undo; commit() deletes the log (the atomic step).
    recover() puts the old bytes back and cuts the file to its committed size."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.log_path = self.path.with_name(self.path.name + ".undo")
        recover(self.path)
        self._fd = os.open(self.path, os.O_RDWR)
        self._pos = 0
        self._committed = os.fstat(self._fd).st_size
        self._log: int | None = None
        self._saved: list[tuple[int, int]] = []  # ranges logged in this epoch (few: metadata blocks)

    # -- io.RawIOBase ---------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _check_open(self) -> None:
        # After close the descriptor number may belong to another file: never touch it again (h5py may
        # still hold this object when closing the HDF5 file failed, e.g. on a full disk).
        if self.closed:
            raise ValueError(f"{self.path}: I/O on a closed undo-logged file")

    def seek(self, pos: int, whence: int = 0) -> int:
        self._check_open()
        self._pos = os.lseek(self._fd, pos, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        self._check_open()
        n = os.preadv(self._fd, [buf], self._pos)
        self._pos += n
        return n

    def write(self, buf) -> int:  # type: ignore[no-untyped-def]
        self._check_open()
        view = memoryview(buf).cast("B")
        if self._pos < self._committed:
            self._save(self._pos, min(self._pos + len(view), self._committed))
        n = _pwrite_all(self._fd, view, self._pos)
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        self._check_open()
        size = self._pos if size is None else size
        if size < self._committed:
            self._save(size, self._committed)
        os.ftruncate(self._fd, size)
        return size

    def flush(self) -> None:
        pass  # every write is a system call already; kill -9 keeps what reached the page cache

    def fileno(self) -> int:
        return self._fd

    # -- journal ------------------------------------------------------------------------------------------
    def _save(self, lo: int, hi: int) -> None:
        for a, b in _uncovered(lo, hi, self._saved):
            if self._log is None:
                self._log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                _write_all(self._log, _MAGIC + struct.pack("<Q", self._committed))
            old = os.pread(self._fd, b - a, a)
            # Logged in full before the caller overwrites it; a short write (full disk) raises here, so
            # the overwrite never starts and recover() drops the torn record.
            _write_all(self._log, _REC.pack(a, len(old)) + old)
            self._saved.append((a, b))

    def commit(self) -> None:
        """Everything written so far becomes the state recover() returns to."""
        self._check_open()
        if self._log is not None:
            os.close(self._log)
            self._log = None
            os.unlink(self.log_path)
        self._saved.clear()
        self._committed = os.fstat(self._fd).st_size

    def rollback(self) -> None:
        """Close, and put the file back to its last commit now: what the next open would do after a kill.

        Bytes appended since the commit are cut off here too, so an interrupted build leaves no orphaned
        chunks behind (HDF5 forgets freed space when it closes a file, so a resumed file could only grow).
        """
        if self.closed:
            return
        committed = self._committed
        self.close()
        if not recover(self.path):
            os.truncate(self.path, committed)

    def close(self) -> None:
        if not self.closed:
            if self._log is not None:
                os.close(self._log)  # uncommitted: recover() rolls it back at the next open
            os.close(self._fd)
        super().close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def _pwrite_all(fd: int, view: memoryview, offset: int) -> int:
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n
    return done


def _uncovered(lo: int, hi: int, saved: list[tuple[int, int]]) -> list[tuple[int, int]]:
    parts = [(lo, hi)]
    for a, b in saved:
        parts = [piece for x, y in parts for piece in ((x, min(y, a)), (max(x, b), y)) if piece[0] < piece[1]]
    return parts


def recover(path: Path) -> bool:
    """Roll PATH back to its last commit if a kill left an undo log; True when it did."""
    log_path = Path(path).with_name(Path(path).name + ".undo")
    try:
        data = log_path.read_bytes()
    except FileNotFoundError:
        return False
    if len(data) >= len(_MAGIC) + 8 and data.startswith(_MAGIC):
        (committed,) = struct.unpack_from("<Q", data, len(_MAGIC))
        fd = os.open(path, os.O_RDWR)
        try:
            pos = len(_MAGIC) + 8
            while pos + _REC.size <= len(data):
                off, n = _REC.unpack_from(data, pos)
                old = data[pos + _REC.size : pos + _REC.size + n]
                if len(old) < n:
                    break  # torn last record: its overwrite never started
                os.pwrite(fd, old, off)
                pos += _REC.size + n
            os.ftruncate(fd, committed)
        finally:
            os.close(fd)
    log_path.unlink()  # a torn header means no byte was overwritten yet
    return True
