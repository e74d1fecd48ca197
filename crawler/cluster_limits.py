"""Request limits held for the whole cluster: slots and flights handed out by PostgreSQL.

A limit of one request every ``interval`` seconds on a key (a VK token: 3 a second; a web
site's ``delay``: ``site:<host>``) is one row of ``glas_rate_slots``: the time its next
request may go. Taking a slot is one atomic
statement on the server's clock (``greatest(next_at, now) + interval``, returning how long
to wait for the slot taken), so workers on several machines share the limit without a clock
of their own and without a lease. The key of a token is a hash of it: no secret in the
database.

A limit of ``concurrency`` requests in flight at once to a site (``site:<host>``) is held by
the rows of ``glas_flights``, one per request in flight. Taking a flight is one call of
``glas_board``, serialised per key (a transaction advisory lock on the key's hash): the key's
dead rows are deleted and a flight inserted only if fewer than ``concurrency`` are live; the
request's end deletes it. A flight older than its lease (the download timeout and a margin)
is dead: the flights of a SIGKILLed worker expire on their own. A worker refused a flight
keeps its place in the site's line (a ``waiting`` row, renewed by each ask, dead after
:data:`WAITING_LEASE`): a free flight goes to the workers waiting longest first, so a worker
whose request just ended cannot take its flight back over and over while others wait.

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
FLIGHT_LOCK = 0x676C6173  # "glas": the two-key advisory locks of flights, hashtext(key) second
WAITING_LEASE = 1.0  # seconds a worker keeps its place in a site's line without asking again
RETRY_AFTER = 5.0  # seconds without asking the database after it failed to answer
FLIGHTS_SQL = f"""
CREATE TABLE IF NOT EXISTS glas_flights (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    holder text NOT NULL,
    waiting boolean NOT NULL,
    taken_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS glas_flights_key ON glas_flights (key);
CREATE OR REPLACE FUNCTION glas_board(
    p_key text, p_holder text, p_limit integer, p_lease float8, p_wait float8
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    moment timestamptz;
    since timestamptz;
    flying integer;
    ahead integer;
    taken bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({FLIGHT_LOCK}, hashtext(p_key));
    moment := clock_timestamp();
    DELETE FROM glas_flights WHERE key = p_key AND lease_until < moment;
    SELECT taken_at INTO since FROM glas_flights
    WHERE key = p_key AND holder = p_holder AND waiting;
    SELECT count(*) FILTER (WHERE NOT waiting),
           count(*) FILTER (WHERE waiting AND holder <> p_holder
                            AND taken_at < coalesce(since, 'infinity'))
    INTO flying, ahead FROM glas_flights WHERE key = p_key;
    IF flying + ahead < p_limit THEN
        DELETE FROM glas_flights WHERE key = p_key AND holder = p_holder AND waiting;
        INSERT INTO glas_flights (key, holder, waiting, taken_at, lease_until)
        VALUES (p_key, p_holder, false, moment, moment + make_interval(secs => p_lease))
        RETURNING id INTO taken;
        RETURN taken;
    END IF;
    IF since IS NULL THEN
        INSERT INTO glas_flights (key, holder, waiting, taken_at, lease_until)
        VALUES (p_key, p_holder, true, moment, moment + make_interval(secs => p_wait));
    ELSE
        UPDATE glas_flights SET lease_until = moment + make_interval(secs => p_wait)
        WHERE key = p_key AND holder = p_holder AND waiting;
    END IF;
    RETURN 0;
END $$"""


def key_of(kind: str, secret: str) -> str:
    """``vk:<16 hex>``: names a token's limit without holding the token."""
    digest = hashlib.blake2b(secret.encode(), digest_size=8, person=b"glas-rate").hexdigest()
    return f"{kind}:{digest}"


class SharedPacer:
    """Hands out the cluster's request slots and flights, on a connection of its own."""

    def __init__(self, url: str, holder: str | None = None) -> None:
        from crawler.lock import holder_name

        self.url = url
        self.holder = holder or holder_name()  # who holds its flights: this process
        self._conn: Any = None
        self._lock = threading.Lock()
        self._failed = False
        self._retry_at = 0.0

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            from crawler.lock import control_connection

            self._conn = control_connection(self.url)
        return self._conn

    def _ask(self, work: Callable[[Any], T]) -> T | None:
        """``work(connection)`` under the lock; None when the database could not be asked
        (said once until it answers again; after a failure asked again only after
        :data:`RETRY_AFTER`, so that a dead server does not hold up every request)."""
        if self._failed and time.monotonic() < self._retry_at:
            return None
        try:
            with self._lock:
                done = work(self._connection())
        except Exception as exc:
            if not self._failed:
                log.warning("shared request limits unavailable, pacing alone: %s", exc)
            self._failed = True
            self._retry_at = time.monotonic() + RETRY_AFTER
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
        """Take a flight of ``key`` if fewer than ``limit`` are live and no worker waiting
        longer wants it: its id, to give to :meth:`land`; 0 when none is free (this worker
        keeps its place in line if it asks again within :data:`WAITING_LEASE`); None when
        the database could not be asked (the caller holds its own limit). The flight is dead
        after ``lease`` seconds."""

        def flight(conn: Any) -> int:
            row = conn.execute(
                "SELECT glas_board(%s, %s, %s, %s, %s)",
                (key, self.holder, limit, lease, WAITING_LEASE),
            ).fetchone()
            return int(row[0])

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
        if self._conn is not None:
            self._ask(
                lambda conn: conn.execute(
                    "DELETE FROM glas_flights WHERE holder = %s", (self.holder,)
                )
            )
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
