"""``glas worker``: one of several harvesters sharing a PostgreSQL inbox, on Procrastinate.

Every worker (one per machine, or several) reads the same sources.yaml and runs a
Procrastinate worker (https://procrastinate.readthedocs.io, 3.x) on the inbox's database.
A collection is a job of the task ``glas.collect`` whose ``lock`` and ``queueing_lock`` are
the source id: Procrastinate never runs two jobs of one lock at once and never queues two
(see :mod:`crawler.cluster_db`). Each job runs in the worker's warm
:class:`~crawler.harvester.Harvester`, which records the run in ``runs`` as ``glas run`` and
the daemon do; when it ends, the job defers the source's next collection at its next due
time (:func:`crawler.schedule.next_due`), so every source always has one job waiting or
running.

Besides (:mod:`crawler.cluster_upkeep`), every ``heartbeat`` seconds one worker at a time
(an advisory lock):

- schedules the sources that have no job (new ones, a first start) at their first due time;
- deletes finished jobs older than an hour (every ten minutes: ``runs`` keeps the history);
- recovers the collections of dead workers: a job still ``doing`` on a worker whose
  heartbeat is older than ``3 × heartbeat`` has its ``running`` run closed ``interrupted``
  (unless the source's lock is still held: then its holder is alive) and is put back in the
  queue, where another worker takes it at once.

A thread delivers the webhooks of surge alerts, as the daemon does (each delivery is claimed
with a lease: any worker may send it, none twice).

SIGTERM or SIGINT stop a worker within seconds: running collections are recorded
interrupted and queued again for the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler import cluster_db, polite, reactor
from crawler.cluster_limits import SharedPacer
from crawler.cluster_upkeep import Upkeep
from crawler.config import load_config
from crawler.harvester import Harvester
from crawler.lock import holder_name, source_locks
from crawler.schedule import next_due
from spiders import vk_client
from storage import open_inbox
from storage.inbox import RunRecord

log = logging.getLogger("glas.cluster")
POLL = 1.0  # seconds between two looks for jobs come due (new ones are notified at once)
POOL = 4  # connections of a worker's Procrastinate pool


class ClusterError(Exception):
    """The worker cannot start (not a PostgreSQL inbox, the engine not installed)."""


class ClusterWorker(Upkeep):
    """Collects jobs of the inbox's Procrastinate queue until SIGTERM/SIGINT."""

    def __init__(
        self, sources: str, db: str, *, heartbeat: float = 10.0, parallel: int | None = None
    ) -> None:
        self.sources = Path(sources)
        self.parallel = parallel  # collections at once (default: defaults.parallel)
        self.db = db
        self.heartbeat = heartbeat
        self.stall = 3 * heartbeat
        self.rng = random.Random()
        self.stopping: asyncio.Event | None = None
        self.stamp: tuple[int, int] | None = None
        self.pruned = 0.0  # monotonic time of the last deletion of finished jobs
        self.failed = False  # the engine's worker ended without being asked to

    # -- life cycle ---------------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped: 0, or 1 when the engine's worker ended on its own (its
        database connection lost: systemd's Restart=on-failure starts it again)."""
        reactor.run(self.serve, on_signal=self.terminated)
        return 1 if self.failed else 0

    def terminated(self, signum: int) -> None:
        """SIGTERM/SIGINT (main thread): stop within seconds."""
        if self.stopping is not None:
            reactor.call_soon(self.stopping.set)

    async def serve(self) -> None:
        import procrastinate
        import psycopg
        from procrastinate.worker import Worker

        self.stopping = asyncio.Event()
        self.done = threading.Event()  # the worker stops: the webhook thread too
        self.reloading = asyncio.Lock()
        self.config = load_config(self.sources)
        self.stamp = _stamp(self.sources)
        self.control = await asyncio.to_thread(
            psycopg.connect, self.db, autocommit=True, application_name=holder_name()
        )
        connector = procrastinate.PsycopgConnector(
            conninfo=self.db,
            min_size=1,
            max_size=POOL,
            kwargs={"application_name": holder_name()},
        )
        self.app = procrastinate.App(connector=connector)
        self.task = self.app.task(name=cluster_db.TASK, queue=cluster_db.QUEUE)(self.collect)
        await asyncio.to_thread(cluster_db.ensure_schema, self.control, _apply_procrastinate)
        pacer = SharedPacer(self.db)
        vk_client.share_limits(pacer)  # VK's 3 requests a second per token, for the cluster
        polite.share_site_limits(pacer)  # and each site's delay and concurrency
        async with self.app.open_async():
            with open_inbox(self.db) as inbox, source_locks(self.db) as locks:
                self.harvester = Harvester(self.config, inbox, locks=locks)
                await self.harvester.open()
                self.worker = Worker(
                    self.app,
                    queues=[cluster_db.QUEUE],
                    name=f"glas-{os.getpid()}",
                    concurrency=self.parallel or self.config.defaults.parallel,
                    fetch_job_polling_interval=POLL,
                    install_signal_handlers=False,
                    update_heartbeat_interval=self.heartbeat,
                    stalled_worker_timeout=self.stall,
                )
                working = asyncio.ensure_future(self.worker.run())
                keeping = asyncio.ensure_future(self._keep())
                delivering = threading.Thread(target=self._deliver, name="glas-webhooks")
                delivering.start()
                log.info(
                    "worker started: %d sources in %s (pid %d)",
                    len(self.config.enabled),
                    self.sources,
                    os.getpid(),
                )
                await _first(self.stopping.wait(), working)
                if working.done() and not self.stopping.is_set():
                    self.failed = True
                    problem = working.exception() if not working.cancelled() else None
                    log.error("the worker stopped on its own: %s", problem or "cancelled")
                keeping.cancel()
                self.worker.stop()
                await self.harvester.interrupt()  # every run recorded and queued again
                with contextlib.suppress(Exception):
                    await working
                self.done.set()
                await asyncio.to_thread(delivering.join, 30)
                await self.harvester.close()
        vk_client.share_limits(None)
        polite.share_site_limits(None)
        pacer.close()
        self.control.close()
        log.info("worker stopped (pid %d)", os.getpid())

    # -- one collection: the task ---------------------------------------------------------
    async def collect(self, source_id: str) -> str:
        """The job of one source: collect it, then queue its next collection."""
        await self._reload()  # a source queued by a worker that read a newer file
        config = self.harvester.config
        try:
            source = config.source(source_id)
        except KeyError:
            log.info("%s: not in sources.yaml any more: dropped", source_id)
            return "removed"
        launched = datetime.now(UTC)
        try:
            record = await self.harvester.collect(source)
        except Exception as exc:  # the inbox failed: this collection only
            record = RunRecord(source_id, "failed", error=f"{type(exc).__name__}: {exc}")
        if record is None:  # another process holds the source (glas run, a stale session)
            log.info("%s: skipped: being collected by another process", source_id)
            await self._defer(source_id, datetime.now(UTC) + timedelta(seconds=self.heartbeat))
            return "skipped"
        _log_record(record)
        if record.status == "interrupted":
            at = datetime.now(UTC)  # another worker takes it at once
        else:
            state = await self.harvester.writer.call(self.harvester.inbox.source_state, source_id)
            state = state or {}
            at = next_due(
                source,
                config.defaults,
                started=launched,
                failures=int(state.get("consecutive_failures") or 0),
                gone=bool(state.get("gone")) and record.status == "failed",
                now=datetime.now(UTC),
                rng=self.rng,
            ).at
        await self._defer(source_id, at)
        return record.status

    async def _defer(self, source_id: str, at: datetime) -> bool:
        """Queue a collection of ``source_id`` at ``at``; False when one is queued already."""
        from procrastinate.exceptions import AlreadyEnqueued

        job = self.task.configure(lock=source_id, queueing_lock=source_id, schedule_at=at)
        try:
            await job.defer_async(source_id=source_id)
        except AlreadyEnqueued:
            return False
        return True

    async def _reload(self) -> None:
        """Read sources.yaml again when it changed (the old config stays when it is invalid)."""
        async with self.reloading:
            stamp = _stamp(self.sources)
            if stamp == self.stamp:
                return
            self.stamp = stamp
            await self._read_config()

    async def _read_config(self) -> None:
        try:
            config = await asyncio.to_thread(load_config, self.sources)
        except Exception as exc:
            log.error("%s: could not reload, keeping the old sources: %s", self.sources, exc)
            return
        await self.harvester.reconfigure(config)
        log.info("%s reloaded: %d sources", self.sources, len(config.enabled))


def _apply_procrastinate(conn: Any) -> None:
    from procrastinate.schema import SchemaManager

    conn.execute(SchemaManager.get_schema())


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)


def _log_record(record: RunRecord) -> None:
    stored = record.stored
    text = (
        f"{record.source_id}: {record.status}: {stored.new} new, {stored.updated} updated, "
        f"{stored.unchanged} unchanged in {record.duration:.1f}s"
    )
    if record.error:
        text += f": {record.error}"
    log.log(logging.INFO if record.status == "ok" else logging.WARNING, text)


def main(sources: str, db: str, heartbeat: float, parallel: int | None = None) -> int:
    """``glas worker``: the exit status."""
    from storage import sqlite_path

    if sqlite_path(db) is not None:
        raise ClusterError(
            "glas worker needs a PostgreSQL inbox (--db postgresql://…); a SQLite inbox has "
            "one harvester: use glas daemon"
        )
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        raise ClusterError(
            "glas worker needs Procrastinate: pip install 'glas[cluster]' (make setup does)"
        ) from None
    with open_inbox(db):  # creates or checks the schema; one line when it cannot connect
        pass
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # sources.yaml is re-read when it changes
    try:
        return ClusterWorker(sources, db, heartbeat=heartbeat, parallel=parallel).run()
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled in run
        return 0
    finally:
        sys.stderr.flush()
