"""Sources, runs, cursors and source health: what the harvester and `glas status` keep."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from crawler.model import SourceConfig
from crawler.secrets import redact
from storage.core import SqlCore
from storage.inbox import RunRecord
from storage.rows import UTC_FORMAT, decode_row, dumps, now_text


class SourceState(SqlCore):
    """The ``sources``, ``source_state`` and ``runs`` tables."""

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

    def cursor(self, source_id: str) -> dict[str, Any]:
        row = self._execute(
            "SELECT cursor FROM source_state WHERE source_id = ?", (source_id,)
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def source_state(self, source_id: str) -> dict[str, Any] | None:
        rows = self.query_dicts("SELECT * FROM source_state WHERE source_id = ?", (source_id,))
        return rows[0] if rows else None

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
