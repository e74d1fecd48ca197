"""Which collection starts next: earliest due first, a few at a time per site.

:class:`Queue` holds sources waiting for their turn. It starts the one due earliest, whatever
its id, as long as fewer than ``parallel`` collections run in all and fewer than its site's
limit run on its site; a site that is full does not hold up the others (its sources wait,
still in due order). ``glas run`` and the daemon both take collections from it.

The daemon's due times (:func:`first_due`, :func:`next_due`) follow :mod:`crawler.health`:
one interval after a collection started (the schedule, stretched while a source fails), so a
source is never collected more often than its schedule says and one that fell behind runs
once, not once per missed interval. Jitter is added to each due time, never carried into the
next; lateness is measured from the jittered time.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crawler import health
from crawler.config import Defaults
from crawler.model import SourceConfig


class Queue:
    """Sources waiting to be collected, taken earliest due first within the limits."""

    def __init__(self, parallel: int) -> None:
        self.parallel = parallel
        self.running: dict[str, str] = {}  # source id → its site
        self._site_running: dict[str, int] = {}
        self._caps: dict[str, int] = {}
        self._waiting: dict[str, list[tuple[float, int, str]]] = {}  # site → heap
        self._due: dict[str, float] = {}  # source id → due time (seconds) while waiting
        self._site_of: dict[str, str] = {}
        self._open: list[tuple[float, int, str]] = []  # heap of sites with room: (due, n, site)
        self._held: set[str] = set()
        self._count = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, source_id: str) -> bool:
        return source_id in self._due

    def put(self, source_id: str, due: float, site: str, cap: int) -> None:
        """Wait for ``due`` (seconds since the epoch); replaces an earlier entry."""
        self._due[source_id] = due
        self._site_of[source_id] = site
        self._caps[site] = cap
        heapq.heappush(self._waiting.setdefault(site, []), (due, next(self._count), source_id))
        self._offer(site)

    def remove(self, source_id: str) -> None:
        """Stop waiting (a source removed from the config); a running one is let finish."""
        self._due.pop(source_id, None)

    def hold(self, site: str) -> None:
        """Start nothing of ``site`` until :meth:`release` (its worker is being replaced)."""
        self._held.add(site)

    def release(self, site: str) -> None:
        self._held.discard(site)
        self._offer(site)

    def due_of(self, source_id: str) -> float | None:
        return self._due.get(source_id)

    def take(self, now: float) -> list[tuple[str, float]]:
        """Start what may start at ``now``: ``(source id, due time)`` pairs, in due order."""
        started: list[tuple[str, float]] = []
        while self._open and len(self.running) < self.parallel:
            due, _, site = self._open[0]
            if due > now:
                break
            heapq.heappop(self._open)
            entry = self._head(site)
            if entry is None or entry[0] != due or not self._room(site):
                self._offer(site)  # stale: offer the site's true head again, if any
                continue
            heapq.heappop(self._waiting[site])
            source_id = entry[2]
            del self._due[source_id]
            self.running[source_id] = site
            self._site_running[site] = self._site_running.get(site, 0) + 1
            started.append((source_id, due))
            self._offer(site)
        return started

    def finished(self, source_id: str) -> None:
        """A collection ended: its site (and the whole) have room again."""
        site = self.running.pop(source_id, None)
        if site is None:
            return
        self._site_running[site] -= 1
        self._offer(site)

    def next_due(self) -> float | None:
        """When the earliest waiting source that could start is due (None: nothing can)."""
        if len(self.running) >= self.parallel:
            return None
        while self._open:
            due, _, site = self._open[0]
            entry = self._head(site)
            if entry is not None and entry[0] == due and self._room(site):
                return due
            heapq.heappop(self._open)
            self._offer(site)
        return None

    def late(self, now: float, grace: dict[str, float]) -> tuple[int, float]:
        """How many waiting sources are past their due time by more than their ``grace``
        (seconds, by source id; 60 when absent), and how long the oldest has waited."""
        count, oldest = 0, 0.0
        for source_id, due in self._due.items():
            waited = now - due
            if waited > grace.get(source_id, 60.0):
                count += 1
                oldest = max(oldest, waited)
        return count, oldest

    # -- internals ---------------------------------------------------------------------------
    def _head(self, site: str) -> tuple[float, int, str] | None:
        """The site's earliest entry still wanted (dropping replaced and removed ones)."""
        heap = self._waiting.get(site)
        while heap:
            due, _, source_id = heap[0]
            if self._due.get(source_id) == due and self._site_of.get(source_id) == site:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _room(self, site: str) -> bool:
        if site in self._held:
            return False
        return self._site_running.get(site, 0) < self._caps.get(site, 1)

    def _offer(self, site: str) -> None:
        if not self._room(site):
            return
        entry = self._head(site)
        if entry is not None:
            heapq.heappush(self._open, (entry[0], next(self._count), site))


# -- the daemon's due times ----------------------------------------------------------------
@dataclass
class Plan:
    """When a source is due next: ``base`` by its schedule, ``at`` with jitter added."""

    base: datetime
    at: datetime


def jitter_of(source: SourceConfig, defaults: Defaults, rng: random.Random) -> timedelta:
    spread = health.schedule_of(source, defaults).jitter
    if not spread:
        return timedelta(0)
    return timedelta(seconds=rng.uniform(0, spread.total_seconds()))


def spread_offset(source_id: str, interval: timedelta) -> timedelta:
    """A stable place for a source within its interval (the same after every restart)."""
    digest = hashlib.blake2b(source_id.encode(), digest_size=4).digest()
    return interval * (int.from_bytes(digest) / 2**32)


def first_due(
    source: SourceConfig,
    defaults: Defaults,
    row: dict[str, Any] | None,
    now: datetime,
    *,
    spread: bool,
    rng: random.Random,
) -> Plan:
    """When the daemon first collects a source: as its health says (overdue ones now); one
    that never ran now, or, with ``spread`` (many new at once), at its own place within its
    first interval so that they do not all start together."""
    due = health.due_at(source, defaults, row)
    if due == health.EPOCH:
        due = now
        if spread:
            due = now + spread_offset(source.id, health.interval(source, defaults, now))
    due = max(due, now)
    return Plan(due, due + jitter_of(source, defaults, rng))


def next_due(
    source: SourceConfig,
    defaults: Defaults,
    *,
    started: datetime,
    failures: int,
    gone: bool,
    now: datetime,
    rng: random.Random,
) -> Plan:
    """The next due time after a collection that started at ``started``: one interval later
    (a cron source: its next fire time), stretched while the source fails, as
    :func:`crawler.health.due_at` says for ``glas run``; never in the past. A source is never
    collected more often than its schedule says, however late a run started."""
    row = {"consecutive_failures": failures, "gone": gone, "last_status": "failed"}
    due = max(health.due_at(source, defaults, row, reference=started), now)
    return Plan(due, due + jitter_of(source, defaults, rng))


def late_after(source: SourceConfig, defaults: Defaults, now: datetime) -> float:
    """Seconds past its due time after which a collection not started counts as late: a
    tenth of its interval, at least a second, at most a minute."""
    tenth = health.interval(source, defaults, now).total_seconds() / 10
    return min(60.0, max(1.0, tenth))


def backlog(
    config_sources: list[SourceConfig], defaults: Defaults, rows: dict[str, Any], now: datetime
) -> tuple[int, float]:
    """How many enabled sources are late by their health rows (``glas status``), and how
    late the oldest is: due, not backing off or gone, and not started in time."""
    count, oldest = 0, 0.0
    for source in config_sources:
        row = rows.get(source.id)
        if not source.enabled or row is None or health.is_gone(row):
            continue
        if int(row.get("consecutive_failures") or 0):
            continue  # backing off: its wait is on purpose
        waited = (now - health.due_at(source, defaults, row)).total_seconds()
        if waited > late_after(source, defaults, now):
            count += 1
            oldest = max(oldest, waited)
    return count, oldest


def human(seconds: float) -> str:
    """``6m``, ``1h12m``, ``40s``: how long, as an operator reads it."""
    whole = int(seconds)
    if whole >= 3600:
        hours, rest = divmod(whole, 3600)
        return f"{hours}h{rest // 60}m" if rest >= 60 else f"{hours}h"
    if whole >= 60:
        return f"{whole // 60}m"
    return f"{whole}s"


def backlog_line(count: int, oldest: float) -> str:
    """``412 collections late, oldest 6m`` (or that none is)."""
    if not count:
        return "no collection is late"
    noun = "collection" if count == 1 else "collections"
    return f"{count} {noun} late, oldest {human(oldest)}"
