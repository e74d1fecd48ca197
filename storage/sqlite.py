"""The SQLite inbox (default): one file, WAL, one writer at a time, readers never blocked."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawler.filemode import create_file
from storage.inbox import InboxError
from storage.migrations import Migration
from storage.sql import SqlInbox

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 65_536  # page cache per connection: the indexes of a large inbox's hot pages
# Pages written to the WAL before it is copied into the database (SQLite's default: 1,000).
# The write path touches the same index pages batch after batch; copying them back ten times
# less often took a third off the commits' cost on the 59,889 appeals (0.85 s → 0.55 s).
WAL_CHECKPOINT_PAGES = 10_000
WAL_KEPT_BYTES = 64 * 1024 * 1024  # a longer WAL is cut back to this after a checkpoint


class SqliteInbox(SqlInbox):
    """An inbox in one SQLite file (the standard ``sqlite3`` module).

    ``BEGIN IMMEDIATE`` takes the file's write lock at the start of every write transaction,
    so writers (several ``glas run`` processes) are serialised and ``seq`` order is commit
    order; WAL lets readers go on meanwhile.
    """

    migrations_table_sql = (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )

    def __init__(self, path: Path, *, create: bool = True, check_schema: bool = True) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        if not self.path.exists():
            if not create:
                raise InboxError(
                    f"{self.path}: no inbox here (run `glas run` or `glas db upgrade`)"
                )
            self._create_file()
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,  # used by one thread at a time: the writer lane
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
        except sqlite3.DatabaseError as exc:
            directory = self.path.absolute().parent
            if self.path.is_file() and not os.access(directory, os.W_OK):
                raise InboxError(
                    f"{self.path} is read-only (its directory {directory} is read-only, and "
                    f"SQLite needs to create {self.path.name}-wal and -shm there: {exc})"
                ) from None
            raise InboxError(f"{self.path}: not a usable SQLite database ({exc})") from None
        self.conn = conn
        self._init_state(check_schema, create)

    def _create_file(self) -> None:
        """An empty inbox file with the mode of :mod:`crawler.filemode` (SQLite gives its
        ``-wal`` and ``-shm`` files the same mode); its directory must exist."""
        directory = self.path.parent
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise InboxError(f"{self.path}: directory {directory} {problem}")
        try:
            os.close(create_file(self.path))
        except FileExistsError:
            pass  # another process created it just now
        except OSError as exc:
            raise InboxError(f"{self.path}: cannot create the inbox ({exc.strerror})") from None

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
                raise InboxError(f"{self.path} is read-only ({exc})") from None
            raise

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
                raise InboxError(f"{self.path} is read-only ({exc})") from None
            raise

    def _begin_write(self) -> None:
        self._execute("BEGIN IMMEDIATE")

    def _has_table(self, name: str) -> bool:
        found = self._execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return found is not None

    def _migration_sql(self, migration: Migration) -> str:
        return migration.sqlite

    def _epoch(self, expr: str) -> str:
        return f"CAST(strftime('%s', {expr}) AS INTEGER)"

    def _hours_before(self, expr: str, hours: int) -> str:
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', {expr}, '-{int(hours)} hours')"

    def _utc_day(self, expr: str) -> str:
        return f"substr({expr}, 1, 10)"

    def close(self) -> None:
        self.conn.close()
