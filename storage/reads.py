"""Reading the inbox: export pages, posts by key, recent posts, statistics."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from storage.core import KEYS_PER_QUERY, SqlCore, by_platform
from storage.inbox import EXPORT_TABLES, InboxError
from storage.rows import UTC_FORMAT, decode_row

INTERNAL_POST_COLUMNS = ("content_hash", "collected_hash")  # never exported
EXPORT_CHUNK = 1000  # rows read per query when exporting (keyset pages on seq)


class InboxReads(SqlCore):
    """Reading what the writers stored."""

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
        if complaints_only and table != "alerts":
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
        for platform, ids in by_platform(set(keys)):
            marks = ", ".join("?" for _ in ids)
            for row in self.query_dicts(
                f"SELECT * FROM posts WHERE platform = ? AND native_id IN ({marks})",
                [platform, *ids],
            ):
                for name in INTERNAL_POST_COLUMNS:
                    row.pop(name, None)
                found[(row["platform"], row["native_id"])] = decode_row(row)
        return found

    def case_points(self, cluster_ids: Iterable[int]) -> dict[int, tuple[float, float]]:
        """``(lat, lon)`` of each case that has coordinates: its canonical post's ``geo``,
        else that of its earliest post with one (posts deleted on their platform left out)."""
        ids = sorted(set(cluster_ids))
        found: dict[int, tuple[float, float]] = {}
        for start in range(0, len(ids), KEYS_PER_QUERY):
            chunk = ids[start : start + KEYS_PER_QUERY]
            rows = self._execute(
                "SELECT cluster_id, geo FROM posts WHERE geo IS NOT NULL AND deleted_at IS NULL "
                f"AND cluster_id IN ({', '.join('?' for _ in chunk)}) "
                "ORDER BY cluster_id, is_canonical DESC, coalesce(published_at, first_seen_at), id",
                chunk,
            ).fetchall()
            for cluster_id, geo in rows:
                if cluster_id in found:
                    continue
                point = _point(json.loads(geo) if isinstance(geo, str) else geo)
                if point is not None:
                    found[cluster_id] = point
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


def _point(geo: Any) -> tuple[float, float] | None:
    """``(lat, lon)`` of a post's ``geo`` when both are numbers in range, else None."""
    if not isinstance(geo, dict):
        return None
    lat, lon = geo.get("lat"), geo.get("lon", geo.get("long"))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
    if not numbers or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if lat == 0 and lon == 0:  # "null island": a platform's placeholder, not a place
        return None
    return float(lat), float(lon)


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
