"""Lock files: one per source, so no source is collected twice at once, and one per daemon.

The locks of an inbox live in a directory beside it (``inbox.db.locks/<source_id>.lock``);
each is an exclusive ``flock`` with the holder's pid inside, released by the kernel even when
the holder is killed with SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

DAEMON = "_daemon"  # source ids cannot start with "_"


class LockHeld(Exception):
    """Another process holds the lock; ``pid`` is what it wrote into the file."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by pid {pid}")
        self.path = path
        self.pid = pid


def lock_dir(db: str) -> Path:
    """The directory of an inbox's lock files (beside a SQLite file, else the runtime dir)."""
    from storage import sqlite_path

    path = sqlite_path(db)
    if path is not None:
        path = path.resolve()
        return path.with_name(path.name + ".locks")
    return Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / "glas-locks"


class FileLock:
    """An exclusive ``flock`` on ``path``; the holder's pid is written into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class SourceLocks:
    """The locks of the sources one process collects: take what is free, report the rest."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.held: dict[str, FileLock] = {}

    def take(self, source_ids: Iterable[str]) -> dict[str, str]:
        """Lock every free source; return ``{source_id: holder pid}`` of those held elsewhere."""
        busy: dict[str, str] = {}
        for source_id in source_ids:
            lock = FileLock(self.directory / f"{source_id}.lock")
            try:
                lock.acquire()
            except LockHeld as exc:
                busy[source_id] = exc.pid
            else:
                self.held[source_id] = lock
        return busy

    def release(self) -> None:
        for lock in self.held.values():
            lock.release()
        self.held.clear()

    def __enter__(self) -> SourceLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
