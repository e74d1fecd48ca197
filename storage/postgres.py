"""The PostgreSQL inbox (psycopg 3): the same tables, meaning and ``seq`` as the SQLite one.

Differences a reader of the database sees: times are ``timestamptz`` and JSON is ``jsonb``
(so routing tools can query them natively). Glas itself reads them back in the SQLite shape
(ISO 8601 UTC text with ``Z``, compact key-sorted JSON text), so every code path above the
backend behaves identically on both.

``seq`` is a counter row updated inside the write transaction, not a PostgreSQL SEQUENCE: a
SEQUENCE hands out numbers in call order, not commit order, and a reader tailing ``seq > N``
could skip a row whose writer committed late. Every write transaction first takes one
transaction-scoped advisory lock, so writers (several daemons on several machines) are
serialised like SQLite's ``BEGIN IMMEDIATE`` and ``seq`` order is commit order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from storage.inbox import InboxError, StoreResult
from storage.migrations import Migration
from storage.rows import dumps
from storage.sql import SqlInbox

WRITE_LOCK = 0x474C4153  # "GLAS": the advisory lock every write transaction takes first
ID_BLOCK = 100  # ids reserved at a time per table (see PostgresInbox._reserve_ids)
ANALYZE_EVERY = 5000  # new posts stored by this process before it first runs ANALYZE
# The columns the write path looks rows up by: ANALYZE reads only these (0.12 s instead of
# 0.68 s for 30,000 posts; text, raw and the JSON columns are most of a row).
ANALYZE_SQL = (
    "ANALYZE posts (platform, native_id, dedupe_key, cluster_id, repost_of, parent, "
    "author_is_official, seq), clusters (cluster_id, merged_into)"
)
CONNECT_TIMEOUT = 10


def _loaders() -> tuple[type, type]:
    """psycopg loaders giving times and JSON the SQLite backend's text shape."""
    from psycopg.adapt import Loader

    class UtcText(Loader):
        """``2024-05-01 10:00:00+00`` (session time zone UTC) → ``2024-05-01T10:00:00Z``."""

        def load(self, data: Any) -> str:
            text = bytes(data).decode()
            return f"{text[:10]}T{text[11:19]}Z"

    class CompactJson(Loader):
        """jsonb → the compact, key-sorted JSON text the rest of Glas compares and hashes."""

        def load(self, data: Any) -> str | None:
            return dumps(json.loads(bytes(data)))

    return UtcText, CompactJson


_MARK = re.compile(r"\?")


class PostgresInbox(SqlInbox):
    """An inbox in a PostgreSQL database, given by a libpq URL (``postgresql://…``)."""

    dialect = "postgresql"

    migrations_table_sql = (
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
    )

    def __init__(self, url: str, *, create: bool = True, check_schema: bool = True) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg is a dependency
            raise InboxError(
                "the PostgreSQL inbox needs psycopg: pip install 'psycopg[binary]'"
            ) from None
        self.url = display_url(url)
        try:
            self.conn = psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, options="-c TimeZone=UTC"
            )
        except psycopg.Error as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(exc).__name__
            raise InboxError(f"{self.url}: cannot connect to PostgreSQL ({reason})") from None
        utc_text, compact_json = _loaders()
        for name in ("timestamptz", "timestamp"):
            self.conn.adapters.register_loader(name, utc_text)
        for name in ("jsonb", "json"):
            self.conn.adapters.register_loader(name, compact_json)
        self._sql: dict[str, str] = {}
        self._ids: dict[str, list[int]] = {}
        self._unanalysed = 0  # new posts stored since the last ANALYZE
        self._analysed = 0  # new posts stored by this process before it
        self._init_state(check_schema, create)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = _MARK.sub("%s", sql.replace("%", "%%"))
        return self.conn.execute(query, _clean(params))

    def store(self, source_id: str, posts: Any, **kwargs: Any) -> StoreResult:
        """As in every backend; after a bulk of new posts, refresh the planner's statistics.

        A big first harvest or import into a new table otherwise leaves the planner without
        statistics until autovacuum comes by, and a batch's key lookup then scans every post
        of the platform (measured: 190 ms instead of 3 ms per batch at 20,000 posts). The
        statistics are refreshed after 5,000 new posts, then each time the posts this process
        stored grew by a fifth, as autovacuum would (so a long import analyses a few times).
        """
        result = super().store(source_id, posts, **kwargs)
        self._unanalysed += result.new
        if self._unanalysed >= max(ANALYZE_EVERY, self._analysed // 5):
            self.conn.execute(ANALYZE_SQL)
            self._analysed += self._unanalysed
            self._unanalysed = 0
        return result

    def _reserve_ids(self, table: str, key: str, count: int) -> list[int]:
        """Ids from the table's sequence, taken in blocks (several writers may each hold
        some: ids are unique, not gap-free or in commit order)."""
        free = self._ids.setdefault(table, [])
        if len(free) < count:
            rows = self.conn.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                (table, key, max(ID_BLOCK, count - len(free))),
            ).fetchall()
            free[:0] = sorted((row[0] for row in rows), reverse=True)
        taken = free[-count:][::-1] if count else []
        del free[len(free) - count :]
        return taken

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """psycopg sends the rows in pipeline mode: one round trip for all of them."""
        if not rows:
            return
        query = self._sql.get(sql)
        if query is None:
            query = self._sql[sql] = _MARK.sub("%s", sql.replace("%", "%%"))
        with self.conn.cursor() as cur:
            cur.executemany(query, [_clean(params) for params in rows])

    def _insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if not rows:
            return
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(_clean(row))

    def _begin_write(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def _has_table(self, name: str) -> bool:
        found = self.conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        return found is not None and found[0] is not None

    def _migration_sql(self, migration: Migration) -> str:
        return migration.postgres

    def _epoch(self, expr: str) -> str:
        return f"CAST(extract(epoch FROM {expr}) AS bigint)"

    def _hours_before(self, expr: str, hours: int) -> str:
        return f"({expr} - interval '{int(hours)} hours')"

    def _utc_day(self, expr: str) -> str:
        return f"to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def close(self) -> None:
        self.conn.close()


def _clean(params: Sequence[Any]) -> Sequence[Any]:
    """PostgreSQL text cannot hold NUL: drop it (raw and JSON escapes included)."""
    for v in params:
        if v.__class__ is str and ("\x00" in v or "\\u0000" in v):
            break
    else:
        return params
    return [
        v.replace("\x00", "").replace("\\u0000", "") if isinstance(v, str) else v for v in params
    ]


def display_url(url: str) -> str:
    """The URL as shown in messages: a password in it is masked."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
