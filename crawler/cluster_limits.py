"""Request rates held for the whole cluster: slots handed out by PostgreSQL.

A limit of one request every ``interval`` seconds on a key (a VK token: 3 a second; a web
site's ``delay``: ``site:<host>``) is one row of ``glas_rate_slots``: the time its next
request may go. Taking a slot is one atomic
statement on the server's clock (``greatest(next_at, now) + interval``, returning how long
to wait for the slot taken), so workers on several machines share the limit without a clock
of their own and without a lease. The key of a token is a hash of it: no secret in the
database.

On a lost connection the pacer says so once and falls back to the process's own pacing
(the caller's): a limit per worker instead of per cluster until the database is back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

log = logging.getLogger("glas.cluster")

SLOTS_SQL = """
CREATE TABLE IF NOT EXISTS glas_rate_slots (
    key text PRIMARY KEY,
    next_at timestamptz NOT NULL
)"""
TAKE_SQL = """
INSERT INTO glas_rate_slots AS s (key, next_at)
VALUES (%(key)s, clock_timestamp() + make_interval(secs => %(interval)s))
ON CONFLICT (key) DO UPDATE
SET next_at = greatest(s.next_at, clock_timestamp()) + make_interval(secs => %(interval)s)
RETURNING CAST(extract(epoch FROM s.next_at - clock_timestamp()) AS float8) - %(interval)s
"""


def key_of(kind: str, secret: str) -> str:
    """``vk:<16 hex>``: names a token's limit without holding the token."""
    digest = hashlib.blake2b(secret.encode(), digest_size=8, person=b"glas-rate").hexdigest()
    return f"{kind}:{digest}"


class SharedPacer:
    """Hands out request slots of the cluster, on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.Lock()
        self._failed = False

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            from crawler.lock import control_connection

            self._conn = control_connection(self.url)
        return self._conn

    def take(self, key: str, interval: float) -> float | None:
        """Take the next slot of ``key``: seconds until it (0 for now); None when the
        database could not be asked (the caller paces alone)."""
        try:
            with self._lock:
                row = self._connection().execute(TAKE_SQL, {"key": key, "interval": interval})
                wait = float(row.fetchone()[0])
        except Exception as exc:
            if not self._failed:
                log.warning("shared request limits unavailable, pacing alone: %s", exc)
            self._failed = True
            self._conn = None
            return None
        self._failed = False
        return max(0.0, wait)

    def wait(self, key: str, interval: float) -> bool:
        """Take the next slot of ``key`` and sleep until it; False when the database could
        not be asked (the caller paces alone)."""
        wait = self.take(key, interval)
        if wait is None:
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
