"""The figures of ``glas report``, counted in SQL on both backends.

One scan of ``posts`` over the period and the one before it fills a narrow temporary table of
residents' complaints (``report_posts``); the topic and place arrays are unfolded once into
two more (``report_topics``, ``report_places``), and every section is a ``GROUP BY`` over
them, so Python only ever sees aggregates and a few dozen rows. Cases for the answer figures
come from one scan of ``clusters``. The temporary tables live in the connection's own temp
space (SQLite's temp database, PostgreSQL's ``pg_temp`` schema): the inbox is not written.

A resident is ``platform:author_id`` of a post not written by an official account (the same
number on two platforms is two people). Topics of a post without any count as ``other``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from storage.core import SqlCore

PG_WORK_MEM = "64MB"  # PostgreSQL: per sort or hash of the report's session
PG_TEMP_BUFFERS = "256MB"  # PostgreSQL: the session's temporary tables in memory
TEMP_CACHE_KIB = 262_144  # SQLite: cache of the temporary tables when they are in a file
MEMORY_POSTS = 1_200_000  # SQLite: posts in the two periods up to which they stay in memory
PLACE_KINDS = ("address", "street", "district")  # settlements are the municipality's level


@dataclass(frozen=True)
class Window:
    """The report's period ``[since, until)``, the one before it ``[previous, since)``, the
    end of the recurrence window before ``since``, the local day's offset from UTC and an
    optional municipality (UTC texts)."""

    previous: str
    since: str
    until: str
    now: int  # POSIX seconds: unanswered cases older than their norm then are overdue
    recurrence_from: str
    recurrence_days: int
    offset_seconds: int = 0
    municipality: str | None = None


@dataclass(frozen=True)
class _Dialect:
    """What differs between the backends in these queries."""

    each_text: str  # unfold a JSON array of texts: {0} the array, {1} the alias (value)
    each_object: str  # unfold a JSON array of objects: {0} the array, {1} the alias (value)
    field: str  # a text field of an unfolded object: {0} alias, {1} key
    topics: str  # a post's topics, ["other"] when none
    day: str  # local day (YYYY-MM-DD) of a time {0} shifted by {1} seconds
    text: str  # a JSON column as text
    c: str  # the byte-order collation of grouped text (PostgreSQL sorts it several times faster)


SQLITE = _Dialect(
    each_text="json_each({0}) AS {1}",
    each_object="json_each(CASE WHEN json_type({0}) = 'array' THEN {0} ELSE '[]' END) AS {1}",
    field="json_extract({0}.value, '$.{1}')",
    topics="coalesce(nullif(nullif({0}, '[]'), 'null'), '[\"other\"]')",
    day="date({0}, '{1} seconds')",
    text="{0}",
    c="",
)
POSTGRES = _Dialect(
    each_text="LATERAL jsonb_array_elements_text({0}) AS {1}(value)",
    each_object="LATERAL jsonb_array_elements("
    "CASE WHEN jsonb_typeof({0}) = 'array' THEN {0} ELSE '[]'::jsonb END) AS {1}(value)",
    field="{0}.value ->> '{1}'",
    topics="coalesce(nullif({0}, '[]'::jsonb), '[\"other\"]'::jsonb)",
    day="to_char(({0} + interval '{1} seconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    text="CAST({0} AS text)",
    c=' COLLATE "C"',
)

TEMP_TABLES = (
    "report_posts",
    "report_topics",
    "report_places",
    "report_cases",
    "report_routes",
    "report_answered",
    "report_points",
    "report_chosen",
)


class ReportReads(SqlCore):
    """Aggregates for the situation report (``glas report``); read-only on the inbox."""

    dialect: str = "sqlite"

    @property
    def _report_dialect(self) -> _Dialect:
        return POSTGRES if self.dialect == "postgresql" else SQLITE

    def report_figures(
        self,
        window: Window,
        route: Callable[[list[str], str | None, str | None], tuple[str | None, int]],
        *,
        top: int = 15,
    ) -> dict[str, Any]:
        """Every aggregate of the report over ``window``; ``route(topics, municipality,
        platform)`` gives a case's responsible body and its answer norm in seconds."""
        self._drop_report_tables()
        inside = self._posts_inside(window) if self.dialect == "sqlite" else 0
        if self.dialect == "postgresql":
            self._pg_report_settings()
        if self.dialect == "sqlite":
            # The temporary tables take about 0.7 KiB per post of the two periods: in memory
            # up to MEMORY_POSTS of them (a fifth faster), else in a file behind a cache.
            store = "MEMORY" if inside <= MEMORY_POSTS else "FILE"
            self._execute(f"PRAGMA temp_store = {store}")
            self._execute(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")
        try:
            self._fill_posts(window, inside)
            self._fill_cases(window, route)
            return {
                "totals": self._totals(),
                "heat_map": self._heat_map(),
                "trend": self._trend(),
                "places": self._places(top),
                "answers": self._answers(),
                "overdue": self._overdue(top * 2),
                "recurrence": self._recurrence(window, top),
                "largest": self._largest(top),
            }
        except BaseException:
            self._drop_report_tables()
            raise
        # On success the tables stay until the next report or the connection's end (which
        # drops them at once; dropping them one by one took a second of a million posts').

    # -- the working set ----------------------------------------------------------------
    def _pg_report_settings(self) -> None:
        """Room for this session's sorts and temporary tables (PostgreSQL's defaults, 4 MB
        and 8 MB, send a million posts' worth to disk: a report took 33 s instead of 22 s).
        ``temp_buffers`` can only be set before the session's first temporary table."""
        self._execute(f"SET work_mem = '{PG_WORK_MEM}'")
        if not getattr(self, "_report_buffers_set", False):
            self._execute(f"SET temp_buffers = '{PG_TEMP_BUFFERS}'")
            self._report_buffers_set = True

    def _drop_report_tables(self) -> None:
        for name in TEMP_TABLES:
            self._execute(f"DROP TABLE IF EXISTS {name}")

    def _fill_posts(self, w: Window, inside: int) -> None:
        d = self._report_dialect
        at = "coalesce(p.published_at, p.first_seen_at)"  # the posts_at index's expression
        ranged = self._range_hint(at, inside)
        where = (
            f"{ranged} >= ? AND {ranged} < ? AND p.author_is_official = 0 "
            "AND coalesce(p.is_complaint, 1) = 1"
        )
        params: list[Any] = [w.since, w.previous, w.until]
        if w.municipality is not None:
            where += " AND p.municipality = ?"
            params.append(w.municipality)
        self._execute(
            f"""CREATE TEMP TABLE report_posts AS
            SELECT p.cluster_id, p.platform{d.c} AS platform,
                (p.platform || ':' || p.author_id){d.c} AS resident,
                {self._epoch(at)} AS ts, CASE WHEN {at} >= ? THEN 1 ELSE 0 END AS cur,
                coalesce(p.municipality, ''){d.c} AS municipality,
                {d.topics.format("p.topics")} AS topics,
                p.places, {d.day.format(at, w.offset_seconds)} AS day
            FROM posts AS p WHERE {where}""",
            params,
        )
        self._execute(
            f"""CREATE TEMP TABLE report_topics AS
            SELECT r.cluster_id, r.resident, r.cur, r.municipality, r.day, t.value{d.c} AS topic
            FROM report_posts AS r CROSS JOIN {d.each_text.format("r.topics", "t")}"""
        )
        kinds = ", ".join(f"'{k}'" for k in PLACE_KINDS)
        self._execute(
            f"""CREATE TEMP TABLE report_places AS
            SELECT r.cluster_id, r.resident, r.cur, r.ts, r.municipality,
                ({d.field.format("pl", "name")}){d.c} AS place,
                {d.field.format("pl", "kind")} AS kind, t.value{d.c} AS topic
            FROM report_posts AS r
            CROSS JOIN {d.each_object.format("r.places", "pl")}
            CROSS JOIN {d.each_text.format("r.topics", "t")}
            WHERE r.places IS NOT NULL AND {d.field.format("pl", "kind")} IN ({kinds})"""
        )

    def _posts_inside(self, w: Window) -> int:
        """Posts in the two periods, counted from the ``posts_at`` index alone (SQLite)."""
        at = "coalesce(published_at, first_seen_at)"
        return int(
            self._execute(
                f"SELECT count(*) FROM posts WHERE {at} >= ? AND {at} < ?",
                (w.previous, w.until),
            ).fetchone()[0]
        )

    def _range_hint(self, at: str, inside: int) -> str:
        """``at``, or ``+at`` when most posts lie in the two periods: SQLite's planner, without
        statistics, would read them through the ``posts_at`` index one lookup at a time
        (3.9 s for a million posts, against 0.3 s for reading the table through).
        PostgreSQL's planner weighs this itself."""
        if self.dialect != "sqlite":
            return at
        total = self._execute("SELECT max(id) FROM posts").fetchone()[0] or 0
        return f"+{at}" if inside * 5 > total else at

    def _fill_cases(
        self,
        w: Window,
        route: Callable[[list[str], str | None, str | None], tuple[str | None, int]],
    ) -> None:
        """Complaint cases first seen in the period, with their norm and responsible body
        (one ``route`` call per distinct topics, municipality and platform)."""
        import json

        d = self._report_dialect
        where = (
            "c.size > 0 AND c.merged_into IS NULL AND coalesce(c.is_complaint, 1) = 1 "
            "AND c.first_seen >= ? AND c.first_seen < ?"
        )
        params: list[Any] = [w.since, w.until]
        if w.municipality is not None:
            where += " AND c.municipality = ?"
            params.append(w.municipality)
        self._execute(
            f"""CREATE TEMP TABLE report_cases AS
            SELECT c.cluster_id, {self._epoch("c.first_seen")} AS first_ts,
                {self._epoch("c.answered_at")} AS answered_ts,
                {d.text.format(d.topics.format("c.topics"))} AS topics,
                coalesce(c.municipality, '') AS municipality,
                coalesce(c.canonical_platform, '') AS platform,
                coalesce(p.source_id, '') AS source_id
            FROM clusters AS c LEFT JOIN posts AS p
                ON p.platform = c.canonical_platform AND p.native_id = c.canonical_native_id
            WHERE {where}""",
            params,
        )
        combos = self._execute(
            "SELECT DISTINCT topics, municipality, platform FROM report_cases"
        ).fetchall()
        self._execute(
            "CREATE TEMP TABLE report_routes (topics TEXT, municipality TEXT, platform TEXT, "
            "topic TEXT, agency TEXT, norm INTEGER)"
        )
        rows = []
        for topics, municipality, platform in combos:
            codes = [str(t) for t in json.loads(topics)] or ["other"]
            agency, norm = route(codes, municipality or None, platform or None)
            rows.append((topics, municipality, platform, codes[0], agency or "", norm))
        self._executemany(
            "INSERT INTO report_routes (topics, municipality, platform, topic, agency, norm) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._execute(
            """CREATE TEMP TABLE report_answered AS
            SELECT c.cluster_id, c.first_ts, c.answered_ts, c.answered_ts - c.first_ts AS secs,
                c.municipality, r.topic, c.platform, c.source_id, r.agency, r.norm,
                CASE WHEN c.answered_ts IS NOT NULL AND c.answered_ts - c.first_ts <= r.norm
                    THEN 1 ELSE 0 END AS in_norm,
                CASE WHEN c.answered_ts IS NULL AND ? - c.first_ts > r.norm
                    THEN 1 ELSE 0 END AS overdue
            FROM report_cases AS c JOIN report_routes AS r
                ON r.topics = c.topics AND r.municipality = c.municipality
                AND r.platform = c.platform""",
            (w.now,),
        )

    # -- sections -----------------------------------------------------------------------
    def _totals(self) -> dict[str, int]:
        totals = dict.fromkeys(
            ("posts", "posts_before", "residents", "residents_before", "cases", "cases_before"),
            0,
        )
        for cur, posts, residents, cases in self._execute(
            "SELECT cur, count(*), count(DISTINCT resident), count(DISTINCT cluster_id) "
            "FROM report_posts GROUP BY cur"
        ).fetchall():
            suffix = "" if cur == 1 else "_before"
            totals["posts" + suffix] = int(posts)
            totals["residents" + suffix] = int(residents)
            totals["cases" + suffix] = int(cases)
        return totals

    def _heat_map(self) -> list[dict[str, Any]]:
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for municipality, topic, cur, residents, cases in self._execute(
            """SELECT municipality, topic, cur, count(DISTINCT resident),
                count(DISTINCT cluster_id)
            FROM report_topics GROUP BY municipality, topic, cur"""
        ).fetchall():
            cell = cells.setdefault(
                (municipality, topic),
                {
                    "municipality": municipality,
                    "topic": topic,
                    "residents": 0,
                    "cases": 0,
                    "residents_before": 0,
                    "cases_before": 0,
                },
            )
            suffix = "" if cur == 1 else "_before"
            cell["residents" + suffix] = int(residents)
            cell["cases" + suffix] = int(cases)
        return [cells[key] for key in sorted(cells)]

    def _trend(self) -> list[dict[str, Any]]:
        return self.query_dicts(
            """SELECT day, topic, count(DISTINCT resident) AS residents, count(*) AS posts
            FROM report_topics WHERE cur = 1 GROUP BY day, topic ORDER BY day, topic"""
        )

    def _places(self, top: int) -> dict[str, list[dict[str, Any]]]:
        self._execute(
            """CREATE TEMP TABLE report_points AS
            SELECT municipality, place, min(kind) AS kind, topic,
                count(DISTINCT CASE WHEN cur = 1 THEN resident END) AS residents,
                count(DISTINCT CASE WHEN cur = 0 THEN resident END) AS residents_before,
                count(DISTINCT CASE WHEN cur = 1 THEN cluster_id END) AS cases
            FROM report_places GROUP BY municipality, place, topic"""
        )
        most = self.query_dicts(
            "SELECT * FROM report_points WHERE residents > 0 "
            "ORDER BY residents DESC, residents - residents_before DESC, municipality, place, "
            f"topic LIMIT {int(top)}"
        )
        growing = self.query_dicts(
            "SELECT * FROM report_points WHERE residents > residents_before "
            "ORDER BY residents - residents_before DESC, residents DESC, municipality, place, "
            f"topic LIMIT {int(top)}"
        )
        chosen = {(p["municipality"], p["place"], p["topic"]) for p in most + growing}
        self._execute("CREATE TEMP TABLE report_chosen (municipality TEXT, place TEXT, topic TEXT)")
        self._executemany(
            "INSERT INTO report_chosen (municipality, place, topic) VALUES (?, ?, ?)",
            sorted(chosen),
        )
        self._execute(
            "CREATE INDEX report_chosen_key ON report_chosen (municipality, place, topic)"
        )
        found: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
        for municipality, place, topic, case, residents in self._execute(
            """SELECT l.municipality, l.place, l.topic, l.cluster_id, count(DISTINCT l.resident)
            FROM report_places AS l JOIN report_chosen AS k
                ON k.municipality = l.municipality AND k.place = l.place AND k.topic = l.topic
            WHERE l.cur = 1 AND l.cluster_id IS NOT NULL
            GROUP BY l.municipality, l.place, l.topic, l.cluster_id"""
        ).fetchall():
            found.setdefault((municipality, place, topic), []).append((-residents, case))
        for point in most + growing:
            ranked = sorted(found.get((point["municipality"], point["place"], point["topic"]), []))
            point["case_ids"] = [case for _, case in ranked[:5]]
        return {"most": most, "growing": growing}

    def _answers(self) -> list[dict[str, Any]]:
        """Per dimension and key: cases, answered, within the norm, overdue, waiting, and the
        median and 90th percentile of the time to answer (nearest rank)."""
        keys = {
            "all": "''",
            "municipality": "municipality",
            "topic": "topic",
            "platform": "platform",
            "source": "source_id",
            "agency": "agency",
        }
        unfolded = " UNION ALL ".join(
            f"SELECT '{dim}' AS dim, {expr} AS k, answered_ts, secs, in_norm, overdue "
            "FROM report_answered"
            for dim, expr in keys.items()
        )
        counts = self.query_dicts(
            f"""SELECT dim, k AS key, count(*) AS cases, count(answered_ts) AS answered,
                sum(in_norm) AS in_norm, sum(overdue) AS overdue
            FROM ({unfolded}) AS u GROUP BY dim, k"""
        )
        ranks = {
            (row[0], row[1]): (row[2], row[3])
            for row in self._execute(
                f"""SELECT dim, k, min(CASE WHEN 2 * rn >= n THEN secs END),
                    min(CASE WHEN 10 * rn >= 9 * n THEN secs END)
                FROM (SELECT dim, k, secs,
                        row_number() OVER (PARTITION BY dim, k ORDER BY secs) AS rn,
                        count(*) OVER (PARTITION BY dim, k) AS n
                    FROM ({unfolded}) AS u WHERE answered_ts IS NOT NULL) AS ranked
                GROUP BY dim, k"""
            ).fetchall()
        }
        for row in counts:
            row["in_norm"] = int(row["in_norm"] or 0)
            row["overdue"] = int(row["overdue"] or 0)
            row["median_seconds"], row["p90_seconds"] = ranks.get(
                (row["dim"], row["key"]), (None, None)
            )
        return counts

    def _overdue(self, limit: int) -> list[dict[str, Any]]:
        rows = self.query_dicts(
            f"""SELECT a.cluster_id, a.first_ts, a.norm, a.municipality, a.topic, a.platform,
                a.source_id, a.agency
            FROM report_answered AS a WHERE a.overdue = 1
            ORDER BY a.first_ts, a.cluster_id LIMIT {int(limit)}"""
        )
        return rows

    def _recurrence(self, w: Window, top: int) -> dict[str, Any]:
        """Answered cases whose place and topic came up again, in another case, within the
        window after the answer (the new post in the period)."""
        d = self._report_dialect
        kinds = ", ".join(f"'{k}'" for k in PLACE_KINDS)
        where = "c.answered_at >= ? AND c.answered_at < ? AND c.size > 0"
        params: list[Any] = [w.recurrence_from, w.until]
        if w.municipality is not None:
            where += " AND c.municipality = ?"
            params.append(w.municipality)
        self._execute("DROP TABLE IF EXISTS report_done")
        self._execute("DROP TABLE IF EXISTS report_again")
        self._execute(
            f"""CREATE TEMP TABLE report_done AS
            SELECT DISTINCT c.cluster_id, {self._epoch("c.answered_at")} AS answered_ts,
                coalesce(p.municipality, ''){d.c} AS municipality,
                ({d.field.format("pl", "name")}){d.c} AS place, t.value{d.c} AS topic
            FROM clusters AS c JOIN posts AS p ON p.cluster_id = c.cluster_id
            CROSS JOIN {d.each_object.format("p.places", "pl")}
            CROSS JOIN {d.each_text.format(d.topics.format("p.topics"), "t")}
            WHERE {where} AND p.author_is_official = 0 AND p.places IS NOT NULL
                AND {d.field.format("pl", "kind")} IN ({kinds})""",
            params,
        )
        try:
            span = int(w.recurrence_days) * 86400
            self._execute(
                f"""CREATE TEMP TABLE report_again AS
                SELECT a.cluster_id AS answered_case, a.answered_ts, a.municipality,
                    a.place, a.topic, l.cluster_id AS later_case, l.resident, l.ts
                FROM report_done AS a JOIN report_places AS l
                    ON l.municipality = a.municipality AND l.place = a.place
                    AND l.topic = a.topic
                WHERE l.cur = 1 AND l.cluster_id <> a.cluster_id
                    AND l.ts > a.answered_ts AND l.ts <= a.answered_ts + {span}"""
            )
            pairs = "SELECT * FROM report_again"
            answered = self._execute(
                "SELECT count(DISTINCT cluster_id) FROM report_done"
            ).fetchone()[0]
            recurred = self._execute(
                f"SELECT count(DISTINCT answered_case) FROM ({pairs}) AS x"
            ).fetchone()[0]
            items = self.query_dicts(
                f"""SELECT municipality, place, topic, answered_case, answered_ts,
                    min(ts) - answered_ts AS after_seconds,
                    count(DISTINCT later_case) AS later_cases,
                    count(DISTINCT resident) AS residents, min(later_case) AS first_later_case
                FROM ({pairs}) AS x
                GROUP BY municipality, place, topic, answered_case, answered_ts
                ORDER BY count(DISTINCT resident) DESC, min(ts) - answered_ts, answered_case,
                    place, topic
                LIMIT {int(top)}"""
            )
        finally:
            self._execute("DROP TABLE IF EXISTS report_done")
            self._execute("DROP TABLE IF EXISTS report_again")
        return {"answered_cases": int(answered), "recurred_cases": int(recurred), "items": items}

    def _largest(self, top: int) -> list[dict[str, Any]]:
        return self.query_dicts(
            f"""SELECT cluster_id, count(DISTINCT resident) AS residents, count(*) AS posts,
                count(DISTINCT platform) AS platform_count
            FROM report_posts WHERE cur = 1 AND cluster_id IS NOT NULL GROUP BY cluster_id
            ORDER BY count(DISTINCT resident) DESC, count(DISTINCT platform) DESC,
                count(*) DESC, cluster_id
            LIMIT {int(top)}"""
        )

    def report_cases(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Cases by id with their canonical post's link, title and text (for the report's
        lists)."""
        found: dict[int, dict[str, Any]] = {}
        wanted = sorted({int(i) for i in ids})
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            for row in self.query_dicts(
                f"""SELECT c.cluster_id, c.size, c.authors, c.platforms, c.sources, c.topics,
                    c.municipality, c.first_seen, c.last_seen, c.answered_at, p.url, p.title,
                    substr(p.text, 1, 300) AS text, p.platform, p.source_id
                FROM clusters AS c LEFT JOIN posts AS p
                    ON p.platform = c.canonical_platform AND p.native_id = c.canonical_native_id
                WHERE c.cluster_id IN ({", ".join("?" for _ in chunk)})""",
                chunk,
            ):
                found[int(row["cluster_id"])] = row
        return found
