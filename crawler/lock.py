"""Locks: one per source, so no source is collected twice at once, and one per daemon.

For a SQLite inbox they are files in a directory beside it (``inbox.db.locks/<id>.lock``);
each is an exclusive ``flock`` with the holder's pid inside, released by the kernel even when
the holder is killed with SIGKILL. For a PostgreSQL inbox, which processes on several machines
may share, they are session advisory locks in that database, released by the server when the
holder's connection ends (killed process included).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from crawler.filemode import make_dir, open_file

DAEMON = "_daemon"  # source ids cannot start with "_"


class LockHeld(Exception):
    """Another process holds the lock; ``pid`` is what it wrote into the file."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by pid {pid}")
        self.path = path
        self.pid = pid


class Lock(Protocol):
    """An exclusive lock; ``where`` names it in messages."""

    where: str

    def acquire(self) -> None: ...

    def release(self) -> None: ...


class Locks(Protocol):
    """The locks of the sources one process collects."""

    held: dict[str, Any]

    def take(self, source_ids: Iterable[str]) -> dict[str, str]: ...

    def release_one(self, source_id: str) -> None: ...

    def release(self) -> None: ...

    def __enter__(self) -> Locks: ...

    def __exit__(self, *exc: object) -> None: ...


def lock_dir(db: str) -> Path:
    """The directory of a SQLite inbox's lock files (beside the file)."""
    from storage import sqlite_path

    path = sqlite_path(db)
    if path is None:
        raise ValueError(f"{db} is not a SQLite inbox: its locks live in the database")
    path = path.resolve()
    return path.with_name(path.name + ".locks")


def source_locks(db: str) -> Locks:
    """The per-source locks of the inbox at ``db``."""
    from storage import sqlite_path

    if sqlite_path(db) is None:
        return AdvisoryLocks(db)
    return SourceLocks(lock_dir(db))


def daemon_lock(db: str) -> Lock:
    """The lock a daemon holds on the inbox at ``db`` (one daemon per inbox)."""
    from storage import sqlite_path

    if sqlite_path(db) is None:
        return AdvisoryLock(db, DAEMON)
    return FileLock(lock_dir(db) / f"{DAEMON}.lock")


class FileLock:
    """An exclusive ``flock`` on ``path``; the holder's pid is written into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"lock {path}"
        self._fd: int | None = None

    def acquire(self) -> None:
        make_dir(self.path.parent)
        fd = open_file(self.path, os.O_RDWR)
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

    def release_one(self, source_id: str) -> None:
        """Release one source's lock (its collection ended); the others stay held."""
        lock = self.held.pop(source_id, None)
        if lock is not None:
            lock.release()

    def release(self) -> None:
        for lock in self.held.values():
            lock.release()
        self.held.clear()

    def __enter__(self) -> SourceLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``glas:<name>``."""
    digest = hashlib.blake2b(f"glas:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def control_connection(url: str) -> Any:
    """A PostgreSQL connection of this process for locks and counters: autocommit, named
    after the process in ``pg_stat_activity``."""
    import psycopg

    from storage.postgres import CONNECT_TIMEOUT

    return psycopg.connect(
        url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name=holder_name()
    )


def holder_name() -> str:
    """What a lock holder calls itself in ``pg_stat_activity.application_name``."""
    return f"glas pid {os.getpid()} on {socket.gethostname()}"[:63]


class AdvisoryLocks:
    """Per-source PostgreSQL session advisory locks on one connection of this process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.held: dict[str, int] = {}
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = control_connection(self.url)
        return self._conn

    def _try(self, name: str) -> bool:
        key = _advisory_key(name)
        got = self._connection().execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if got[0]:
            self.held[name] = key
        return bool(got[0])

    def _holder(self, name: str) -> str:
        """The application name of the session holding the lock (``?`` if it just ended)."""
        key = _advisory_key(name) & 0xFFFFFFFFFFFFFFFF
        row = (
            self._connection()
            .execute(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid LIMIT 1",
                (key >> 32, key & 0xFFFFFFFF),
            )
            .fetchone()
        )
        name = row[0] if row and row[0] else "?"
        return name.removeprefix("glas pid ")  # "123 on host", read as "pid 123 on host"

    def take(self, source_ids: Iterable[str]) -> dict[str, str]:
        busy: dict[str, str] = {}
        for source_id in source_ids:
            if not self._try(source_id):
                busy[source_id] = self._holder(source_id)
        return busy

    def release_one(self, source_id: str) -> None:
        key = self.held.pop(source_id, None)
        if key is not None and self._conn is not None:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session: the server drops every lock it held
            self._conn = None
        self.held.clear()

    def __enter__(self) -> AdvisoryLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AdvisoryLock:
    """One named PostgreSQL advisory lock (the daemon's), held on its own connection."""

    def __init__(self, url: str, name: str) -> None:
        from storage.postgres import display_url

        self.name = name
        self.where = f"advisory lock glas:{name} in {display_url(url)}"
        self._locks = AdvisoryLocks(url)

    def acquire(self) -> None:
        busy = self._locks.take([self.name])
        if busy:
            raise LockHeld(Path(self.where), busy[self.name])

    def release(self) -> None:
        self._locks.release()
