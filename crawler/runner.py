"""Collect sources once (``glas run``, cron mode) on the warm harvester.

Every chosen source is collected once, most overdue first, at most ``defaults.parallel`` at a
time and ``per_site`` per site (:class:`crawler.schedule.Queue`), in this process's one
:class:`~crawler.harvester.Harvester`. A failing source is recorded in ``runs`` and
``source_state`` with a one-line error and never stops the others. SIGINT or SIGTERM stops at
once: "stopping…" is printed, requests in flight are dropped, each running collection stores
what it had and is recorded as interrupted; a second signal ends the process immediately.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crawler import reactor
from crawler.config import Config
from crawler.harvester import Harvester, Reporter
from crawler.lock import Locks
from crawler.model import SourceConfig
from crawler.schedule import Queue
from storage import Inbox
from storage.inbox import RunRecord, StoreResult

log = logging.getLogger("glas.run")


class UnknownSource(Exception):
    """``--source`` named an id that sources.yaml does not have."""


@dataclass
class RunSummary:
    """Every source's outcome in one run."""

    records: list[RunRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # held by another process
    duration: float = 0.0
    signal: int | None = None  # the signal that stopped the run

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def interrupted(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "interrupted"]

    @property
    def totals(self) -> StoreResult:
        total = StoreResult()
        for record in self.records:
            total += record.stored
        return total

    @property
    def exit_code(self) -> int:
        if self.failed or self.interrupted or self.signal:
            return 1
        return 1 if self.skipped and not self.records else 0


def select_sources(config: Config, only: Iterable[str] | None) -> list[SourceConfig]:
    """Enabled sources, or exactly those named (enabled or not: asking is explicit)."""
    if not only:
        return config.enabled
    return named_sources(config, only)


def due_sources(config: Config, inbox: Inbox, now: datetime) -> list[SourceConfig]:
    """The enabled sources due at ``now`` by their schedule and backoff (:mod:`crawler.health`)."""
    from crawler.health import due_sources as due

    return due(config, inbox.source_health(now), now)


def named_sources(config: Config, only: Iterable[str]) -> list[SourceConfig]:
    """Exactly the sources named (enabled or not: asking is explicit)."""
    chosen = []
    known = [s.id for s in config.sources]
    for source_id in only:
        try:
            chosen.append(config.source(source_id))
        except KeyError:
            raise UnknownSource(
                f"{config.path}: no source with id '{source_id}' (known: {', '.join(known)})"
            ) from None
    return chosen


def run_sources(
    config: Config,
    inbox: Inbox,
    sources: list[SourceConfig],
    reporter: Reporter,
    *,
    locks: Locks | None = None,
) -> RunSummary:
    """Collect every source in ``sources`` once and record how each went.

    With ``locks`` each source is locked while it is collected (one held by another process
    is skipped and reported); without, the caller holds them. Runs of a locked source left
    'running' can only be a killed process's, and are closed as interrupted.
    """
    stop = _Stop()
    summary = RunSummary()
    began = time.monotonic()
    try:
        reactor.run(
            lambda: _harvest(config, inbox, sources, reporter, locks, stop, summary),
            on_signal=stop.signalled,
        )
    finally:
        summary.duration = time.monotonic() - began
        summary.signal = stop.signum
    return summary


class _Stop:
    """SIGINT/SIGTERM while harvesting: say so at once, stop the harvest; twice: exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.event: asyncio.Event | None = None

    def signalled(self, signum: int) -> None:
        if self.signum is not None:
            print("glas: stopped at once (second signal)", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(128 + signum)
        self.signum = signum
        print("glas: stopping… (what was collected so far is kept)", file=sys.stderr, flush=True)
        if self.event is not None:
            reactor.call_soon(self.event.set)


async def _harvest(
    config: Config,
    inbox: Inbox,
    sources: list[SourceConfig],
    reporter: Reporter,
    locks: Locks | None,
    stop: _Stop,
    summary: RunSummary,
) -> None:
    stop.event = asyncio.Event()
    if stop.signum is not None:
        return
    harvester = Harvester(config, inbox, locks=locks, reporter=_Counting(reporter, summary))
    await harvester.open()
    if locks is not None:  # runs of sources this process holds can only be a dead one's
        await harvester.writer.call(_close_dead_runs, inbox, locks, [s.id for s in sources])
    queue = Queue(config.defaults.parallel)
    rows = await harvester.writer.call(inbox.source_health, datetime.now(UTC))
    health = {row["source_id"]: row for row in rows}
    by_id = {s.id: s for s in sources}
    from crawler.health import due_at

    for source in sources:
        due = due_at(source, config.defaults, health.get(source.id)).timestamp()
        queue.put(source.id, due, source.site(), config.collections_at_once(source))
    tasks: set[asyncio.Task[RunRecord | None]] = set()
    stopping = asyncio.ensure_future(stop.event.wait())
    try:
        while (len(queue) or tasks) and not stop.event.is_set():
            for source_id, _due in queue.take(float("inf")):
                task = asyncio.ensure_future(harvester.collect(by_id[source_id]))
                task.source_id = source_id  # type: ignore[attr-defined]
                tasks.add(task)
            if not tasks:
                break
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                tasks.discard(task)  # type: ignore[arg-type]
                queue.finished(task.source_id)  # type: ignore[attr-defined]
                task.result()
    finally:
        stopping.cancel()
        await harvester.interrupt()  # after a signal: record the running ones interrupted
        for task in tasks:
            if task.done():
                task.result()
        if stop.signum is None:
            await harvester.close()


def _close_dead_runs(inbox: Inbox, locks: Locks, source_ids: list[str]) -> None:
    """Close runs left 'running' of the sources no other process holds now."""
    busy = locks.take(source_ids)
    free = [s for s in source_ids if s not in busy]
    try:
        inbox.close_interrupted_runs(free)
    finally:
        for source_id in free:
            locks.release_one(source_id)


class _Counting:
    """The reporter, with each outcome also kept in the summary."""

    def __init__(self, reporter: Reporter, summary: RunSummary) -> None:
        self.reporter = reporter
        self.summary = summary

    def started(self, source: SourceConfig) -> None:
        self.reporter.started(source)

    def finished(self, record: RunRecord) -> None:
        self.summary.records.append(record)
        self.reporter.finished(record)

    def skipped(self, source_id: str, pid: str) -> None:
        self.summary.skipped.append(source_id)
        self.reporter.skipped(source_id, pid)
