"""What the cluster keeps in PostgreSQL beside Procrastinate's own tables.

Procrastinate (https://procrastinate.readthedocs.io, 3.x: ``procrastinate_jobs`` with
``lock``/``queueing_lock``, ``procrastinate_workers`` with ``last_heartbeat``; see its
``sql/schema.sql``) keeps the jobs and the workers' heartbeats. Glas adds one small table,
``glas_cluster_workers``: the host and pid of each registered worker, removed with its
Procrastinate row (a stalled worker pruned, or one that stopped cleanly).

Every function here takes a psycopg connection in autocommit mode; none keeps state.
"""

from __future__ import annotations

import socket
from typing import Any

from crawler.cluster_limits import FLIGHTS_SQL, SLOTS_SQL
from crawler.lock import _advisory_key

QUEUE = "glas-collect"  # the Procrastinate queue of collections
TASK = "glas.collect"  # the task: collect one source (``source_id``)

WORKERS_SQL = """
CREATE TABLE IF NOT EXISTS glas_cluster_workers (
    worker_id bigint PRIMARY KEY REFERENCES procrastinate_workers(id) ON DELETE CASCADE,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
)"""


def ensure_schema(conn: Any, apply_procrastinate: Any) -> None:
    """Create Procrastinate's schema (once: workers starting together take turns under an
    advisory lock), Glas's worker table, the shared request slots and flights.
    ``apply_procrastinate(conn)`` runs the Procrastinate schema on ``conn``."""
    key = _advisory_key("cluster-schema")
    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        found = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if found is None or found[0] is None:
            apply_procrastinate(conn)
        conn.execute(WORKERS_SQL)
        conn.execute(SLOTS_SQL)
        conn.execute(FLIGHTS_SQL)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def register(conn: Any, worker_id: int, pid: int) -> None:
    conn.execute(
        "INSERT INTO glas_cluster_workers (worker_id, host, pid) VALUES (%s, %s, %s) "
        "ON CONFLICT (worker_id) DO NOTHING",
        (worker_id, socket.gethostname(), pid),
    )


def scheduled_sources(conn: Any) -> set[str]:
    """Sources with a collection waiting or running (its job's lock is the source id)."""
    rows = conn.execute(
        "SELECT DISTINCT lock FROM procrastinate_jobs "
        "WHERE queue_name = %s AND status IN ('todo', 'doing') AND lock IS NOT NULL",
        (QUEUE,),
    ).fetchall()
    return {row[0] for row in rows}


def try_lock(conn: Any, name: str) -> bool:
    """A session advisory lock ``glas:<name>`` if free (one worker at a time does it)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_advisory_key(name),)).fetchone()
    return bool(row[0])


def unlock(conn: Any, name: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (_advisory_key(name),))


def workers(conn: Any) -> list[dict[str, Any]]:
    """Every registered worker: id, host, pid, seconds since its last heartbeat (the
    server's clock), the sources it collects."""
    if not _has_cluster(conn):
        return []
    rows = conn.execute(
        """
        SELECT w.id, g.host, g.pid,
               CAST(extract(epoch FROM now() - w.last_heartbeat) AS float8) AS age,
               coalesce(array_agg(j.lock ORDER BY j.lock) FILTER (WHERE j.id IS NOT NULL),
                        '{}') AS running
        FROM procrastinate_workers w
        LEFT JOIN glas_cluster_workers g ON g.worker_id = w.id
        LEFT JOIN procrastinate_jobs j ON j.worker_id = w.id AND j.status = 'doing'
             AND j.queue_name = %s
        GROUP BY w.id, g.host, g.pid, w.last_heartbeat
        ORDER BY g.host, g.pid""",
        (QUEUE,),
    ).fetchall()
    keys = ("worker_id", "host", "pid", "heartbeat_age", "running")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def backlog(conn: Any, grace: float = 60.0) -> tuple[int, int, int, float]:
    """Collections queued: all, those due now, those due more than ``grace`` seconds ago
    (late), and how long the oldest due one has waited, in seconds."""
    if not _has_cluster(conn):
        return 0, 0, 0, 0.0
    row = conn.execute(
        """
        SELECT count(*),
               count(*) FILTER (WHERE coalesce(scheduled_at, now()) <= now()),
               count(*) FILTER (WHERE coalesce(scheduled_at, now()) < now() - make_interval(
                   secs => %s)),
               CAST(coalesce(extract(epoch FROM now() - min(scheduled_at)
                   FILTER (WHERE scheduled_at < now())), 0) AS float8)
        FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'""",
        (grace, QUEUE),
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), float(row[3])


def _has_cluster(conn: Any) -> bool:
    found = conn.execute("SELECT to_regclass('glas_cluster_workers')").fetchone()
    return found is not None and found[0] is not None
