"""Request limits held for the whole cluster: slots and flights handed out by PostgreSQL.

A limit of one request every ``interval`` seconds on a key (a VK token: 3 a second; a web
site's ``delay``: ``site:<host>``) is one row of ``glas_rate_slots``: the time its next
request may go. Taking a slot is one atomic
statement on the server's clock (``greatest(next_at, now) + interval``, returning how long
to wait for the slot taken), so workers on several machines share the limit without a clock
of their own and without a lease. The key of a token is a hash of it: no secret in the
database.

A limit of ``concurrency`` requests in flight at once to a site (``site:<host>``) is held by
the rows of ``glas_flights``, one per request in flight. Taking a flight is one short
transaction serialised per key (a transaction advisory lock on the key's hash): the key's dead
flights are deleted and a row is inserted only if fewer than ``concurrency`` are live; the
request's end deletes it. A flight older than its lease (the download timeout and a margin)
is dead: the flights of a SIGKILLed worker expire on their own.

On a lost connection the pacer says so once and falls back to the process's own pacing
(the caller's): a limit per worker instead of per cluster until the database is back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("glas.cluster")
T = TypeVar("T")

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
FLIGHTS_SQL = """
CREATE TABLE IF NOT EXISTS glas_flights (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    holder text NOT NULL,
    taken_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS glas_flights_key ON glas_flights (key)"""
FLIGHT_LOCK = 0x676C6173  # "glas": the two-key advisory locks of flights, hashtext(key) second
BOARD_SQL = """
WITH dead AS (
    DELETE FROM glas_flights WHERE key = %(key)s AND lease_until < clock_timestamp()
)
INSERT INTO glas_flights (key, holder, taken_at, lease_until)
SELECT %(key)s, %(holder)s, clock_timestamp(),
       clock_timestamp() + make_interval(secs => %(lease)s)
WHERE (SELECT count(*) FROM glas_flights
       WHERE key = %(key)s AND lease_until >= clock_timestamp()) < %(limit)s
RETURNING id
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

    def _ask(self, work: Callable[[Any], T]) -> T | None:
        """``work(connection)`` under the lock; None when the database could not be asked
        (said once until it answers again)."""
        try:
            with self._lock:
                done = work(self._connection())
        except Exception as exc:
            if not self._failed:
                log.warning("shared request limits unavailable, pacing alone: %s", exc)
            self._failed = True
            self._conn = None
            return None
        self._failed = False
        return done

    def take(self, key: str, interval: float) -> float | None:
        """Take the next slot of ``key``: seconds until it (0 for now); None when the
        database could not be asked (the caller paces alone)."""

        def slot(conn: Any) -> float:
            row = conn.execute(TAKE_SQL, {"key": key, "interval": interval}).fetchone()
            return max(0.0, float(row[0]))

        return self._ask(slot)

    def board(self, key: str, limit: int, lease: float) -> int | None:
        """Take a flight of ``key`` if fewer than ``limit`` are live: its id, to give to
        :meth:`land`; 0 when all are taken; None when the database could not be asked (the
        caller holds its own limit). The flight is dead after ``lease`` seconds."""
        from crawler.lock import _holder_name

        def flight(conn: Any) -> int:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (FLIGHT_LOCK, key))
                params = {"key": key, "holder": _holder_name(), "lease": lease, "limit": limit}
                row = conn.execute(BOARD_SQL, params).fetchone()
            return int(row[0]) if row else 0

        return self._ask(flight)

    def land(self, flight: int) -> None:
        """The request of ``flight`` has ended: the flight is free (lost with the
        connection, it expires with its lease)."""
        self._ask(lambda conn: conn.execute("DELETE FROM glas_flights WHERE id = %s", (flight,)))

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
        """Give back the flights still held and close the connection."""
        from crawler.lock import _holder_name

        if self._conn is not None:
            self._ask(
                lambda conn: conn.execute(
                    "DELETE FROM glas_flights WHERE holder = %s", (_holder_name(),)
                )
            )
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
