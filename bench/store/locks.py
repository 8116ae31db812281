"""One writer per folder: an OS lock (``fcntl.flock``) on a lock file, released when its holder dies.

The lock file also names its holder (host, pid, command), so a refusal can say who writes.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from types import TracebackType

from bench.core.errors import UserError

LOCK_FILE = ".bench.lock"


class FolderLocked(UserError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (a context manager; re-entrant per object)."""

    def __init__(self, folder: Path, what: str = "folder", name: str = LOCK_FILE) -> None:
        self.folder = Path(folder)
        self.what = what
        self.name = name
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / self.name

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderLocked` naming the holder."""
        if self._fd is not None:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"cannot lock {str(self.folder)!r}: {exc.strerror}; choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FolderLocked(f"{self.what} {str(self.folder)!r} is being written by {holder}; wait for it to finish "
                               "(bench status) or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv[:3])})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
