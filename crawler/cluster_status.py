"""The cluster part of ``glas status`` on a PostgreSQL inbox: the workers and the backlog."""

from __future__ import annotations

from typing import Any

from crawler import cluster_db
from crawler.schedule import human
from crawler.tables import format_table

SHOWN = 5  # sources named per worker; the rest counted


def lines(conn: Any) -> list[str]:
    """What ``glas status`` prints about the cluster (nothing when no worker ever ran)."""
    workers = cluster_db.workers(conn)
    waiting, due, late, oldest = cluster_db.backlog(conn)
    if not workers and not waiting:
        return []
    rows: list[tuple[str, ...]] = [("worker", "host", "pid", "last heartbeat", "collecting")]
    for worker in workers:
        running = list(worker["running"])
        shown = ", ".join(running[:SHOWN])
        if len(running) > SHOWN:
            shown += f", … ({len(running)} in all)"
        age = max(0.0, worker["heartbeat_age"])
        rows.append(
            (
                str(worker["worker_id"]),
                worker["host"] or "?",
                str(worker["pid"] or "?"),
                f"{human(age)} ago",
                shown or "-",
            )
        )
    out = [f"cluster: {len(workers)} worker{'' if len(workers) == 1 else 's'}"]
    if workers:
        out.append(format_table(rows))
    text = f"cluster backlog: {waiting} collection{'' if waiting == 1 else 's'} queued, {due} due"
    if late:
        text += f", {late} late (oldest {human(oldest)})"
    out.append(text)
    return out
