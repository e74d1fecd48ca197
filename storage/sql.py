"""The inbox logic shared by the SQL backends: upsert, cases, answers, seq, health, export.

A backend subclass connects and supplies the few things that differ between SQLite and
PostgreSQL: how a write transaction starts, SQL parameter marks, time arithmetic and the
migration scripts. Every query here is written once, in the SQL both understand, with ``?``
marks (the PostgreSQL backend turns them into ``%s``).
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from crawler.model import Post, SourceConfig
from crawler.secrets import redact
from storage.inbox import EXPORT_TABLES, Inbox, InboxError, RunRecord, SchemaOutdated, StoreResult
from storage.migrations import LATEST, MIGRATIONS, Migration
from storage.rows import (
    ANSWER_COLUMNS,
    CONTENT_COLUMNS,
    UTC_FORMAT,
    decode_row,
    dumps,
    now_text,
    post_row,
)

INTERNAL_POST_COLUMNS = ("content_hash",)
KEYS_PER_QUERY = 400  # (platform, native_id) pairs per lookup query of a batch
EXPORT_CHUNK = 1000  # rows read per query when exporting (keyset pages on seq)


class SqlInbox(Inbox):
    """The shared logic; subclasses connect and implement the dialect hooks below."""

    url: str

    def _init_state(self, check_schema: bool, create: bool) -> None:
        self._depth = 0
        self._seq: int | None = None
        self._seq_start: int | None = None
        self._stamped: set[tuple[str, int]] = set()  # rows given a seq in this transaction
        self._merged = False
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

    def _reserve_id(self, table: str, key: str) -> int | None:
        """An id for a row about to be inserted, or None to let the insert return one.

        A backend far from its client reserves ids in blocks so that inserts need no answer
        and can be sent without waiting (PostgreSQL's pipeline mode)."""
        return None

    def _pipelined(self) -> AbstractContextManager[Any]:
        """Around the statements of one ``store``: send without waiting where possible."""
        return nullcontext()

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
                for statement in _statements(self._migration_sql(migration)):
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

    def _next_seq(self) -> int:
        """Take the next ``seq``; writers are serialised, so commit order is seq order."""
        if self._seq is None:
            row = self._execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
            self._seq = self._seq_start = row[0]
        self._seq += 1
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
        return self._execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]

    # -- posts and clusters ---------------------------------------------------------------
    def store(
        self,
        source_id: str,
        posts: Sequence[Post],
        *,
        cursor: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> StoreResult:
        result = StoreResult()
        now = now_text()
        with self.transaction(), self._pipelined():
            self._merged = False  # set when cases merge: rows read before may be stale
            moved: list[tuple[int, int | None, dict[str, Any], Post]] = []
            touched: set[int] = set()
            edited: set[int] = set()
            answered: set[tuple[str, str]] = set()  # posts an official reply may answer
            rows = [post_row(post) for post in posts]
            known = self._find_posts({(row["platform"], row["native_id"]) for row in rows})
            seen: set[tuple[str, str]] = set()
            for post, row in zip(posts, rows, strict=True):
                deleted = row.pop("deleted")
                if not row["source_id"]:
                    row["source_id"] = source_id
                key = (row["platform"], row["native_id"])
                if key in seen or self._merged:  # read what this batch already wrote
                    found = self._find_posts({key}).get(key)
                else:
                    found = known.get(key)
                seen.add(key)
                if row["author_is_official"] and row["parent"]:
                    answered.add((row["platform"], row["parent"]))
                elif found is None:
                    answered.add((row["platform"], row["native_id"]))  # replied to earlier?
                if deleted:
                    row["deleted_at"] = now
                    if found is not None:  # keep what was collected; only mark it deleted
                        if found[5] is None:
                            self._mark_deleted(found[0], now)
                            result.updated += 1
                        else:
                            result.unchanged += 1
                        continue
                elif found is not None and found[1] == row["content_hash"] and found[5] is None:
                    result.unchanged += 1
                    continue
                if found is None:
                    targets = self._link_targets(row, post.duplicate_of)
                    if not targets:
                        row["cluster_id"], row["is_canonical"] = self._open_cluster(row, now), 1
                    else:
                        row["cluster_id"], row["is_canonical"] = targets[0], 0
                        touched.add(targets[0])
                    post_id = self._insert_post(row, now, self._next_seq())
                    self._stamped.add(("posts", post_id))
                    self._merge_clusters(targets, touched, now)
                    result.new += 1
                    continue
                post_id, _, old_key, cluster_id, canonical, _ = found
                self._update_post(post_id, row, now, self._stamp("posts", post_id))
                result.updated += 1
                if old_key != row["dedupe_key"] or cluster_id is None:
                    moved.append((post_id, cluster_id, row, post))
                else:
                    touched.add(cluster_id)
                    if canonical:  # the case shows this post's text: readers must see the edit
                        edited.add(cluster_id)
            for post_id, old_cluster, row, post in moved:
                targets = self._link_targets(row, post.duplicate_of, exclude=post_id)
                self._assign_cluster(post_id, old_cluster, targets, touched, now)
            self._record_answers(answered, touched, now)
            self._refresh_clusters(touched, now, edited)
            if cursor is not None:
                self._save_cursor(source_id, cursor, now)
            if title:
                self._execute(
                    "UPDATE sources SET title = ? WHERE source_id = ? AND title IS DISTINCT FROM ?",
                    (title, source_id, title),
                )
        return result

    def _find_posts(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
        """Stored posts by key: ``(id, content_hash, dedupe_key, cluster_id, is_canonical,
        deleted_at)``, read in a few queries for a whole batch."""
        found: dict[tuple[str, str], tuple] = {}
        for group, ids in _by_platform(keys):
            for platform, native_id, *rest in self._execute(
                "SELECT platform, native_id, id, content_hash, dedupe_key, cluster_id, "
                "is_canonical, deleted_at FROM posts WHERE platform = ? "
                f"AND native_id IN ({', '.join('?' for _ in ids)})",
                [group, *ids],
            ).fetchall():
                found[(platform, native_id)] = tuple(rest)
        return found

    def _insert_post(self, row: dict[str, Any], now: str, seq: int) -> int:
        values = {**row, "first_seen_at": now, "updated_at": now, "seq": seq}
        return self._insert("posts", "id", values)

    def _insert(self, table: str, key: str, values: dict[str, Any]) -> int:
        """Insert a row; return its id (reserved beforehand where the backend can)."""
        reserved = self._reserve_id(table, key)
        if reserved is not None:
            values = {key: reserved, **values}
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if reserved is not None:
            self._execute(sql, tuple(values.values()))
            return reserved
        return int(self._execute(f"{sql} RETURNING {key}", tuple(values.values())).fetchone()[0])

    def _update_post(self, post_id: int, row: dict[str, Any], now: str, seq: int | None) -> None:
        sets = [f"{name} = ?" for name in (*CONTENT_COLUMNS, "raw", "content_hash")]
        sets += [f"{name} = coalesce(?, {name})" for name in ANSWER_COLUMNS]
        names = (*CONTENT_COLUMNS, "raw", "content_hash", *ANSWER_COLUMNS)
        self._execute(
            f"UPDATE posts SET {', '.join(sets)}, deleted_at = NULL, updated_at = ?, "
            "seq = coalesce(?, seq) WHERE id = ?",
            (*(row[name] for name in names), now, seq, post_id),
        )

    def _mark_deleted(self, post_id: int, now: str) -> None:
        self._execute(
            "UPDATE posts SET deleted_at = ?, updated_at = ?, seq = coalesce(?, seq) WHERE id = ?",
            (now, now, self._stamp("posts", post_id), post_id),
        )

    def _record_answers(self, keys: set[tuple[str, str]], touched: set[int], now: str) -> None:
        """Set ``answered_at/by`` and ``response_seconds`` from the earliest official reply.

        Runs for the parents of official replies stored now and for new posts (an official
        reply may have been collected before the post it answers). Posts by official accounts
        are never "answered".
        """
        replies: dict[tuple[str, str], tuple[str, str]] = {}
        for group, parents in _by_platform(keys):
            for platform, parent, *reply in self._execute(
                "SELECT platform, parent, published_at, "
                "coalesce(author_name, author_id, source_id) FROM posts "
                "WHERE author_is_official = 1 AND parent IS NOT NULL AND platform = ? "
                f"AND parent IN ({', '.join('?' for _ in parents)}) "
                "AND published_at IS NOT NULL ORDER BY published_at DESC, id DESC",
                [group, *parents],
            ).fetchall():
                replies[(platform, parent)] = tuple(reply)  # the earliest comes last
        for platform, native_id in sorted(replies):
            reply = replies[(platform, native_id)]
            target = self._execute(
                "SELECT id, published_at, author_is_official, answered_at, answered_by, "
                "response_seconds, cluster_id FROM posts WHERE platform = ? AND native_id = ?",
                (platform, native_id),
            ).fetchone()
            if target is None or target[2]:
                continue
            post_id, published, _, *old, cluster_id = target
            seconds = _seconds_between(published, reply[0])
            new = [reply[0], reply[1], seconds]
            if old == new:
                continue
            self._execute(
                "UPDATE posts SET answered_at = ?, answered_by = ?, response_seconds = ?, "
                "updated_at = ?, seq = coalesce(?, seq) WHERE id = ?",
                (*new, now, self._stamp("posts", post_id), post_id),
            )
            if cluster_id is not None:
                touched.add(cluster_id)

    def _link_targets(
        self, row: dict[str, Any], links: list[tuple[str, str]] | None, exclude: int = -1
    ) -> list[int]:
        """Cases a post belongs to, oldest first: those of the posts it copies (near-duplicate
        or repost links), of stored posts with the same exact text, and of stored reposts of
        it (an original collected after its reposts)."""
        parts = [
            "SELECT cluster_id FROM posts WHERE platform = ? AND repost_of = ? "
            "AND id != ? AND cluster_id IS NOT NULL"
        ]
        params: list[Any] = [row["platform"], row["native_id"], exclude]
        for platform, native_id in links or ():
            parts.append(
                "SELECT cluster_id FROM posts WHERE platform = ? AND native_id = ? "
                "AND id != ? AND cluster_id IS NOT NULL"
            )
            params += [platform, native_id, exclude]
        if row["dedupe_key"] is not None:
            parts.append(
                "SELECT cluster_id FROM (SELECT cluster_id FROM posts WHERE dedupe_key = ? "
                "AND id != ? AND cluster_id IS NOT NULL LIMIT 1) AS same_text"
            )
            params += [row["dedupe_key"], exclude]
        hits = self._execute(" UNION ".join(parts), params).fetchall()
        return sorted({hit[0] for hit in hits})

    def _merge_clusters(self, targets: list[int], touched: set[int], now: str) -> None:
        """Move every post of ``targets[1:]`` into ``targets[0]`` (the oldest case).

        Each moved post and each emptied case gets a new seq; the emptied case keeps
        ``merged_into`` so routing tools can carry their status over.
        """
        if len(targets) < 2:
            return
        self._merged = True
        into = targets[0]
        for other in targets[1:]:
            ids = self._execute("SELECT id FROM posts WHERE cluster_id = ?", (other,))
            for (post_id,) in ids.fetchall():
                self._execute(
                    "UPDATE posts SET cluster_id = ?, seq = coalesce(?, seq) WHERE id = ?",
                    (into, self._stamp("posts", post_id), post_id),
                )
            merged = self._execute(
                "SELECT cluster_id FROM clusters WHERE cluster_id = ? OR merged_into = ?",
                (other, other),
            ).fetchall()
            for (cluster_id,) in merged:
                self._execute(
                    "UPDATE clusters SET merged_into = ?, updated_at = ?, seq = coalesce(?, seq) "
                    "WHERE cluster_id = ?",
                    (into, now, self._stamp("clusters", cluster_id), cluster_id),
                )
            touched.add(other)
        touched.add(into)

    def recent_posts(
        self, after_seq: int, window_seconds: float
    ) -> tuple[int, list[tuple[int, str, str, int | None, str, int | None]]]:
        last = self.last_seq()
        at = "coalesce(published_at, first_seen_at)"
        columns = f"seq, platform, native_id, cluster_id, text, {self._epoch(at)}"
        if after_seq:
            rows = self._execute(
                f"SELECT {columns} FROM posts WHERE seq > ? ORDER BY seq", (after_seq,)
            ).fetchall()
            return last, rows
        newest = self._execute(f"SELECT {self._epoch(f'max({at})')} FROM posts").fetchone()[0]
        if newest is None:
            return last, []
        newest = min(newest, int(datetime.now(UTC).timestamp()))
        cutoff = datetime.fromtimestamp(newest - window_seconds, UTC).strftime(UTC_FORMAT)
        rows = self._execute(
            f"SELECT {columns} FROM posts WHERE {at} >= ? AND seq <= ? ORDER BY seq",
            (cutoff, last),
        ).fetchall()
        return last, rows

    def _open_cluster(self, row: dict[str, Any], now: str) -> int:
        """A new cluster whose only member (and canonical post) is ``row``."""
        member = Member(
            **{name: row[name] for name in Member._fields if name in row},
            id=None,
            is_canonical=1,
            at=row["published_at"] or now,
        )
        summary = _cluster_summary([member])
        values = {**summary, "updated_at": now, "seq": self._next_seq()}
        cluster_id = self._insert("clusters", "cluster_id", values)
        self._stamped.add(("clusters", cluster_id))
        return cluster_id

    def _assign_cluster(
        self, post_id: int, old: int | None, targets: list[int], touched: set[int], now: str
    ) -> None:
        """Join the oldest of ``targets`` (merging the others into it), else keep or open one."""
        target = targets[0] if targets else None
        if target is None and old is not None:
            others = self._execute(
                "SELECT count(*) FROM posts WHERE cluster_id = ? AND id != ?", (old, post_id)
            ).fetchone()[0]
            target = old if others == 0 else None
        if target is None:
            values = {"updated_at": now, "seq": self._next_seq()}
            target = self._insert("clusters", "cluster_id", values)
            self._stamped.add(("clusters", target))
        if target != old:
            self._execute("UPDATE posts SET cluster_id = ? WHERE id = ?", (target, post_id))
            if old is not None:
                touched.add(old)
        touched.add(target)
        self._merge_clusters(targets, touched, now)

    def _refresh_clusters(
        self, cluster_ids: Iterable[int], now: str, edited: set[int] | frozenset = frozenset()
    ) -> None:
        """Recompute each cluster's summary; stamp seq on rows whose values changed.

        Clusters in ``edited`` are stamped even when the summary is equal: their canonical
        post's content changed, and the ``inbox`` view shows it.
        """
        for cluster_id in sorted(cluster_ids):
            members = [
                Member(*values) for values in self._execute(MEMBERS_QUERY, (cluster_id,)).fetchall()
            ]
            summary = _cluster_summary(members)
            old = self._execute(
                f"SELECT {', '.join(summary)} FROM clusters WHERE cluster_id = ?", (cluster_id,)
            ).fetchone()
            if (
                cluster_id not in edited
                and old is not None
                and tuple(old) == tuple(summary.values())
            ):
                continue
            sets = ", ".join(f"{name} = ?" for name in summary)
            self._execute(
                f"UPDATE clusters SET {sets}, updated_at = ?, seq = coalesce(?, seq) "
                "WHERE cluster_id = ?",
                (*summary.values(), now, self._stamp("clusters", cluster_id), cluster_id),
            )
            for member in members:
                flag = int(member is members[0])
                if member.is_canonical != flag:
                    self._execute(
                        "UPDATE posts SET is_canonical = ?, seq = coalesce(?, seq) WHERE id = ?",
                        (flag, self._stamp("posts", member.id), member.id),
                    )

    # -- sources and runs -----------------------------------------------------------------
    def _save_cursor(self, source_id: str, cursor: dict[str, Any], now: str) -> None:
        self._execute(
            "INSERT INTO source_state (source_id, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor, "
            "updated_at = excluded.updated_at",
            (source_id, dumps(cursor), now),
        )

    def sync_sources(self, sources: Iterable[SourceConfig]) -> None:
        now = now_text()
        with self.transaction():
            ids = []
            for source in sources:
                ids.append(source.id)
                self._execute(
                    "INSERT INTO sources (source_id, type, platform, municipality, enabled, "
                    "config, in_config, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) "
                    "ON CONFLICT (source_id) DO UPDATE SET type = excluded.type, "
                    "platform = excluded.platform, municipality = excluded.municipality, "
                    "enabled = excluded.enabled, config = excluded.config, in_config = 1, "
                    "updated_at = excluded.updated_at",
                    (
                        source.id,
                        source.type,
                        source.platform,
                        source.municipality,
                        int(source.enabled),
                        source.model_dump_json(),
                        now,
                    ),
                )
            if ids:
                marks = ", ".join("?" for _ in ids)
                self._execute(
                    f"UPDATE sources SET in_config = 0 WHERE source_id NOT IN ({marks})", ids
                )
            else:
                self._execute("UPDATE sources SET in_config = 0")

    def start_run(self, source_id: str) -> int:
        with self.transaction():
            cur = self._execute(
                "INSERT INTO runs (source_id, started_at, status, pid) "
                "VALUES (?, ?, 'running', ?) RETURNING run_id",
                (source_id, now_text(), os.getpid()),
            )
            run_id = int(cur.fetchone()[0])
        return run_id

    def finish_run(self, run_id: int, record: RunRecord) -> None:
        now = now_text()
        error = redact(record.error) if record.error else None
        warnings = [redact(w) for w in record.warnings]
        with self.transaction():
            self._execute(
                "UPDATE runs SET finished_at = ?, status = ?, new = ?, updated = ?, unchanged = ?, "
                "invalid = ?, warnings = ?, error = ?, duration_seconds = ? WHERE run_id = ?",
                (
                    now, record.status, record.stored.new, record.stored.updated,
                    record.stored.unchanged, record.invalid,
                    dumps(warnings) if warnings else None,
                    error, round(record.duration, 3), run_id,
                ),
            )  # fmt: skip
            self._execute(
                "INSERT INTO source_state (source_id, updated_at) VALUES (?, ?) "
                "ON CONFLICT (source_id) DO NOTHING",
                (record.source_id, now),
            )
            if record.stored.new:
                self._execute(
                    "UPDATE source_state SET last_new_at = ? WHERE source_id = ?",
                    (now, record.source_id),
                )
            if record.status not in ("ok", "failed"):
                return  # an interrupted run says nothing about the source's health
            ok = record.status == "ok"
            self._execute(
                "UPDATE source_state SET last_run_at = ?, last_status = ?, "
                "last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END, "
                "consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures + 1 END, "
                "last_error = CASE WHEN ? THEN NULL ELSE ? END, "
                "gone = ?, updated_at = ? WHERE source_id = ?",
                (
                    now, record.status, ok, now, ok, ok, error, int(record.gone), now,
                    record.source_id,
                ),
            )  # fmt: skip

    def close_interrupted_runs(self, source_ids: Iterable[str] | None = None) -> int:
        where, params = "status = 'running'", []
        if source_ids is not None:
            ids = list(source_ids)
            if not ids:
                return 0
            where += f" AND source_id IN ({', '.join('?' for _ in ids)})"
            params = ids
        with self.transaction():
            cur = self._execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                f"error = 'the run was stopped before it finished' WHERE {where}",
                (now_text(), *params),
            )
        return cur.rowcount

    # -- reading --------------------------------------------------------------------------
    def cursor(self, source_id: str) -> dict[str, Any]:
        row = self._execute(
            "SELECT cursor FROM source_state WHERE source_id = ?", (source_id,)
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def source_state(self, source_id: str) -> dict[str, Any] | None:
        rows = self.query_dicts("SELECT * FROM source_state WHERE source_id = ?", (source_id,))
        return rows[0] if rows else None

    def export(
        self,
        *,
        table: str = "posts",
        since_seq: int = 0,
        complaints_only: bool = False,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        if table not in EXPORT_TABLES:
            raise InboxError(f"cannot export {table!r}: choose one of {', '.join(EXPORT_TABLES)}")
        where = "seq > ?"
        if complaints_only:
            where += " AND coalesce(is_complaint, 1) = 1"
            if table == "clusters":
                where += " AND size > 0"
        left = limit
        while left is None or left > 0:
            chunk = EXPORT_CHUNK if left is None else min(EXPORT_CHUNK, left)
            rows = self.query_dicts(
                f"SELECT * FROM {table} WHERE {where} ORDER BY seq LIMIT {chunk}", (since_seq,)
            )
            for row in rows:
                for name in INTERNAL_POST_COLUMNS:
                    row.pop(name, None)
                yield decode_row(row)
            if len(rows) < chunk:
                return
            since_seq = rows[-1]["seq"]
            if left is not None:
                left -= len(rows)

    def posts_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for platform, ids in _by_platform(set(keys)):
            marks = ", ".join("?" for _ in ids)
            for row in self.query_dicts(
                f"SELECT * FROM posts WHERE platform = ? AND native_id IN ({marks})",
                [platform, *ids],
            ):
                for name in INTERNAL_POST_COLUMNS:
                    row.pop(name, None)
                found[(row["platform"], row["native_id"])] = decode_row(row)
        return found

    def export_columns(self, table: str = "posts") -> list[str]:
        if table not in EXPORT_TABLES:
            raise InboxError(f"cannot export {table!r}: choose one of {', '.join(EXPORT_TABLES)}")
        cur = self._execute(f"SELECT * FROM {table} LIMIT 0")
        cur.fetchall()
        return [d[0] for d in cur.description if d[0] not in INTERNAL_POST_COLUMNS]

    def stats(self) -> dict[str, Any]:
        def count(sql: str) -> int:
            return self._execute(sql).fetchone()[0]

        result: dict[str, Any] = {
            "posts": count("SELECT count(*) FROM posts"),
            "clusters": count("SELECT count(*) FROM clusters WHERE size > 0"),
            "clusters_repeated": count("SELECT count(*) FROM clusters WHERE size > 1"),
            "last_seq": self.last_seq(),
        }
        for name, sql in STATS_QUERIES.items():
            sql = sql.replace("{day}", self._utc_day("published_at"))
            result[name] = [decode_row(row) for row in self.query_dicts(sql)]
        return result

    # -- health (the daemon and `glas status`) ----------------------------------------------
    def abandon_runs(self, source_id: str, pid: int, error: str, since: datetime) -> None:
        now = now_text()
        error = redact(error)
        with self.transaction():
            cur = self._execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? "
                "WHERE source_id = ? AND pid = ? AND started_at >= ? "
                "AND status IN ('running', 'interrupted')",
                (now, error, source_id, pid, since.strftime(UTC_FORMAT)),
            )
            if not cur.rowcount:  # stopped before it opened its run: record one all the same
                self._execute(
                    "INSERT INTO runs (source_id, started_at, finished_at, status, error, pid) "
                    "VALUES (?, ?, ?, 'failed', ?, ?)",
                    (source_id, since.strftime(UTC_FORMAT), now, error, pid),
                )
            self._execute(
                "INSERT INTO source_state (source_id, updated_at) VALUES (?, ?) "
                "ON CONFLICT (source_id) DO NOTHING",
                (source_id, now),
            )
            self._execute(
                "UPDATE source_state SET last_run_at = ?, last_status = 'failed', "
                "consecutive_failures = consecutive_failures + 1, last_error = ?, gone = 0, "
                "updated_at = ? WHERE source_id = ?",
                (now, error, now, source_id),
            )

    def runs_of(self, source_id: str, pid: int, since: datetime) -> list[dict[str, Any]]:
        return [
            decode_row(row)
            for row in self.query_dicts(
                "SELECT * FROM runs WHERE source_id = ? AND pid = ? AND started_at >= ? "
                "ORDER BY run_id",
                (source_id, pid, since.strftime(UTC_FORMAT)),
            )
        ]

    def source_health(
        self, now: datetime, window_days: int = 30, source_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        day = (now - timedelta(hours=24)).strftime(UTC_FORMAT)
        where, params = "", [day]
        if source_ids is not None:
            ids = list(source_ids)
            if not ids:
                return []
            where = f"WHERE ids.source_id IN ({', '.join('?' for _ in ids)})"
            params += ids
        rows = self.query_dicts(
            f"""
            SELECT ids.source_id, src.in_config, src.enabled, st.last_run_at,
                   st.last_success_at, st.last_status, coalesce(st.consecutive_failures, 0)
                       AS consecutive_failures, st.last_error, coalesce(st.gone, 0) AS gone,
                   (SELECT min(r2.started_at) FROM runs r2
                      WHERE r2.run_id BETWEEN last.run_id - 1000 AND last.run_id
                        AND r2.pid = last.pid
                        AND r2.started_at >= {self._hours_before("last.started_at", 12)})
                       AS last_started_at,
                   (SELECT count(*) FROM posts p WHERE p.source_id = ids.source_id
                      AND coalesce(p.published_at, p.first_seen_at) >= ?) AS posts_24h,
                   (SELECT max(coalesce(p.published_at, p.first_seen_at)) FROM posts p
                      WHERE p.source_id = ids.source_id) AS last_post_at
            FROM (SELECT source_id FROM sources UNION SELECT source_id FROM source_state) ids
            LEFT JOIN sources src ON src.source_id = ids.source_id
            LEFT JOIN source_state st ON st.source_id = ids.source_id
            LEFT JOIN runs last ON last.run_id = (
                SELECT max(r.run_id) FROM runs r WHERE r.source_id = ids.source_id
                  AND r.status IN ('ok', 'failed'))
            {where}
            ORDER BY ids.source_id""",
            params,
        )
        result = []
        for row in rows:
            row["post_times"] = []
            if row["last_post_at"]:
                last = datetime.strptime(row["last_post_at"], UTC_FORMAT)
                start = (last - timedelta(days=window_days)).strftime(UTC_FORMAT)
                row["post_times"] = [
                    r[0]
                    for r in self._execute(
                        "SELECT coalesce(published_at, first_seen_at) AS t FROM posts "
                        "WHERE source_id = ? AND coalesce(published_at, first_seen_at) >= ? "
                        "ORDER BY t",
                        (row["source_id"], start),
                    )
                ]
            result.append(row)
        return result


STATS_QUERIES = {
    "by_source": """
        SELECT p.source_id, p.platform, count(*) AS posts, max(p.published_at) AS newest,
               s.last_status, s.last_run_at
        FROM posts p LEFT JOIN source_state s ON s.source_id = p.source_id
        GROUP BY p.source_id, p.platform, s.last_status, s.last_run_at
        ORDER BY p.source_id""",
    "by_platform": "SELECT platform, count(*) AS posts FROM posts GROUP BY platform ORDER BY 1",
    "by_day": """
        SELECT {day} AS day, count(*) AS posts FROM posts
        WHERE published_at IS NOT NULL GROUP BY day ORDER BY day DESC LIMIT 14""",
    "largest_clusters": """
        SELECT c.cluster_id, c.size, c.sources, p.title, substr(p.text, 1, 80) AS text
        FROM clusters c JOIN posts p
          ON p.platform = c.canonical_platform AND p.native_id = c.canonical_native_id
        WHERE c.size > 1 ORDER BY c.size DESC, c.cluster_id LIMIT 5""",
    "last_runs": """
        SELECT source_id, started_at, status, new, updated, unchanged, error, duration_seconds
        FROM runs ORDER BY run_id DESC LIMIT 10""",
}


class Member(NamedTuple):
    """What a cluster's summary needs of one of its posts."""

    id: int | None
    platform: str
    native_id: str
    source_id: str
    author_id: str | None
    is_canonical: int | None
    at: str  # published_at, else first_seen_at
    is_complaint: int | None
    complaint_score: float | None
    answered_at: str | None
    topics: str | None
    municipality: str | None


_MEMBER_COLUMNS = {"at": "coalesce(published_at, first_seen_at) AS at"}
MEMBERS_QUERY = (
    f"SELECT {', '.join(_MEMBER_COLUMNS.get(f, f) for f in Member._fields)} "
    "FROM posts WHERE cluster_id = ? ORDER BY at, id"
)


def _cluster_summary(members: list[Member]) -> dict[str, Any]:
    if not members:
        return {
            "canonical_platform": None,
            "canonical_native_id": None,
            "size": 0,
            "authors": 0,
            "platforms": None,
            "sources": None,
            "first_seen": None,
            "last_seen": None,
            "topics": None,
            "municipality": None,
            "complaint_score": None,
            "is_complaint": None,
            "answered_at": None,
        }
    first = members[0]
    flags = [m.is_complaint for m in members if m.is_complaint is not None]
    scores = [m.complaint_score for m in members if m.complaint_score is not None]
    answers = [m.answered_at for m in members if m.answered_at is not None]
    return {
        "canonical_platform": first.platform,
        "canonical_native_id": first.native_id,
        "size": len(members),
        "authors": len({m.author_id for m in members if m.author_id}),
        "platforms": dumps(sorted({m.platform for m in members})),
        "sources": dumps(sorted({m.source_id for m in members})),
        "first_seen": first.at,
        "last_seen": members[-1].at,
        "topics": first.topics,
        "municipality": next((m.municipality for m in members if m.municipality), None),
        "complaint_score": max(scores) if scores else None,
        "is_complaint": max(flags) if flags else None,
        "answered_at": min(answers) if answers else None,
    }


def _seconds_between(start: str | None, end: str) -> int | None:
    """Whole seconds from ``start`` to ``end`` (UTC texts), never negative; None if unknown."""
    if start is None:
        return None
    began = datetime.strptime(start, UTC_FORMAT)
    answered = datetime.strptime(end, UTC_FORMAT)
    return max(0, int((answered - began).total_seconds()))


def _by_platform(keys: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """``(platform, ids)`` groups of at most ``KEYS_PER_QUERY`` ids, for indexed ``IN`` lookups."""
    grouped: dict[str, list[str]] = {}
    for platform, native_id in sorted(keys):
        grouped.setdefault(platform, []).append(native_id)
    for platform, ids in grouped.items():
        for start in range(0, len(ids), KEYS_PER_QUERY):
            yield platform, ids[start : start + KEYS_PER_QUERY]


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our DDL strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]
