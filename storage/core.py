"""The core every SQL inbox shares: dialect hooks, schema upgrades, transactions and ``seq``.

A backend (:mod:`storage.sqlite`, :mod:`storage.postgres`) connects and supplies the few
things that differ between SQLite and PostgreSQL: how a write transaction starts, SQL
parameter marks, time arithmetic and the migration scripts. Every query of the mixins built
on this class (:mod:`storage.posts`, :mod:`storage.cases`, :mod:`storage.answers`,
:mod:`storage.state`, :mod:`storage.reads`) is written once, in the SQL both understand, with
``?`` marks (the PostgreSQL backend turns them into ``%s``).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from storage.inbox import Inbox, InboxError, SchemaOutdated
from storage.migrations import LATEST, MIGRATIONS, Migration
from storage.rows import now_text

KEYS_PER_QUERY = 400  # keys per lookup query of a batch (indexed ``IN`` lists)


class SqlCore(Inbox):
    """Connection-level logic; subclasses connect and implement the dialect hooks below."""

    url: str

    def _init_state(self, check_schema: bool, create: bool) -> None:
        self._depth = 0
        self._seq: int | None = None
        self._seq_start: int | None = None
        self._stamped: set[tuple[str, int]] = set()  # rows given a seq in this transaction
        self._next_ids: dict[str, int] = {}  # next free id per table in this transaction
        if check_schema:
            self._check_schema(create)

    # -- dialect hooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` marks); return a DB-API cursor."""

    @abc.abstractmethod
    def _begin_write(self) -> None:
        """Start a write transaction that no other writer can interleave with."""

    @abc.abstractmethod
    def _has_table(self, name: str) -> bool:
        """Whether the table exists."""

    @abc.abstractmethod
    def _migration_sql(self, migration: Migration) -> str:
        """The migration's script in this backend's SQL."""

    migrations_table_sql: str  # CREATE TABLE IF NOT EXISTS schema_migrations (...)

    @abc.abstractmethod
    def _epoch(self, expr: str) -> str:
        """SQL for the POSIX seconds (integer) of a time expression."""

    @abc.abstractmethod
    def _hours_before(self, expr: str, hours: int) -> str:
        """SQL for a time expression moved ``hours`` earlier (comparable with the column)."""

    @abc.abstractmethod
    def _utc_day(self, expr: str) -> str:
        """SQL for the UTC day (``YYYY-MM-DD`` text) of a time expression."""

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement (``?`` marks) once per row of parameters, as one batch."""
        for params in rows:
            self._execute(sql, params)

    def _reserve_ids(self, table: str, key: str, count: int) -> list[int]:
        """Ids for ``count`` rows about to be inserted into ``table``, so that a batch can be
        inserted at once and refer to its rows. Writers are serialised, so the default takes
        the ids above the table's largest inside the write transaction."""
        if count <= 0:
            return []
        start = self._next_ids.get(table)
        if start is None:
            found = self._execute(f"SELECT coalesce(max({key}), 0) FROM {table}").fetchone()
            start = found[0] + 1
        self._next_ids[table] = start + count
        return list(range(start, start + count))

    def _insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert many rows at once (PostgreSQL streams them with ``COPY``)."""
        self._executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            rows,
        )

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query as dicts (``?`` marks; see :meth:`query`)."""
        cur = self._execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query in the SQL both backends understand (``?`` marks);
        times and JSON come back as text in both (for tests and ad hoc checks)."""
        return [tuple(row) for row in self._execute(sql, params).fetchall()]

    # -- schema ---------------------------------------------------------------------------
    def _check_schema(self, create: bool) -> None:
        version = self.schema_version()
        if version == 0 and create:
            self.upgrade()
        elif version < LATEST:
            raise SchemaOutdated(
                f"{self.url}: inbox schema is version {version}, this Glas needs {LATEST}: "
                "run `glas db upgrade`"
            )
        elif version > LATEST:
            raise InboxError(self._too_new(version))

    def _too_new(self, version: int) -> str:
        return (
            f"{self.url}: inbox schema is version {version}, newer than this Glas knows "
            f"({LATEST}): upgrade Glas"
        )

    def schema_version(self) -> int:
        if not self._has_table("schema_migrations"):
            return 0
        row = self._execute("SELECT max(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    def upgrade(self, up_to: int | None = None) -> list[str]:
        current = self.schema_version()
        if current > LATEST:
            raise InboxError(self._too_new(current))
        if current >= (up_to or LATEST):
            return []  # nothing to write (a read-only inbox stays usable)
        applied: list[str] = []
        with self.transaction():
            self._execute(self.migrations_table_sql)
            current = self.schema_version()
            for migration in MIGRATIONS:
                if migration.version <= current or migration.version > (up_to or LATEST):
                    continue
                for statement in statements(self._migration_sql(migration)):
                    self._execute(statement)
                self._execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now_text()),
                )
                applied.append(f"{migration.version}: {migration.name}")
        return applied

    # -- transactions and seq -------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin_write()
        self._depth = 1
        try:
            yield
            self._save_seq()
        except BaseException:
            self._execute("ROLLBACK")
            raise
        else:
            self._execute("COMMIT")
        finally:
            self._depth = 0
            self._seq = self._seq_start = None
            self._stamped.clear()
            self._next_ids.clear()

    def _current_seq(self) -> int:
        """The last ``seq`` taken (read once per write transaction)."""
        if self._seq is None:
            row = self._execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
            self._seq = self._seq_start = row[0]
        return self._seq

    def _next_seq(self) -> int:
        """Take the next ``seq``; writers are serialised, so commit order is seq order."""
        self._seq = self._current_seq() + 1
        return self._seq

    def _stamp(self, table: str, row_id: int) -> int | None:
        """A new seq for a row, or None when it already got one in this transaction."""
        if (table, row_id) in self._stamped:
            return None
        self._stamped.add((table, row_id))
        return self._next_seq()

    def _save_seq(self) -> None:
        if self._seq is not None and self._seq != self._seq_start:
            self._execute("UPDATE counters SET value = ? WHERE name = 'seq'", (self._seq,))

    def last_seq(self) -> int:
        """The last ``seq`` taken; inside a write transaction, taken so far (not yet saved)."""
        if self._seq is not None:
            return self._seq
        return self._execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]


def by_platform(keys: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """``(platform, ids)`` groups of at most ``KEYS_PER_QUERY`` ids, for indexed ``IN`` lookups."""
    grouped: dict[str, list[str]] = {}
    for platform, native_id in sorted(keys):
        grouped.setdefault(platform, []).append(native_id)
    for platform, ids in grouped.items():
        for start in range(0, len(ids), KEYS_PER_QUERY):
            yield platform, ids[start : start + KEYS_PER_QUERY]


def statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]
